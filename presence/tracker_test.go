package presence_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"go.uber.org/goleak"

	"github.com/vigilhq/vigil/presence"
	"github.com/vigilhq/vigil/store/memory"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var ctx = context.Background()

func newStore(t *testing.T) *memory.Store {
	t.Helper()
	s, err := memory.New(memory.Config{})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func newTracker(t *testing.T, store presence.Store, cfg presence.Config) *presence.Tracker {
	t.Helper()
	if cfg.Node == "" {
		cfg.Node = "n1"
	}
	tr, err := presence.New(ctx, store, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Close(ctx) })
	return tr
}

// events collects hook calls.
type events struct {
	mu  sync.Mutex
	evs []presence.Event
}

func (e *events) hook(_ context.Context, ev presence.Event) {
	e.mu.Lock()
	e.evs = append(e.evs, ev)
	e.mu.Unlock()
}

func (e *events) list() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []string
	for _, ev := range e.evs {
		out = append(out, ev.ClientID+":"+ev.Transition.String())
	}
	return out
}

// timing: the relations New enforces (TTL > 2×SweepInterval, SweepInterval ≤
// 1s), each on its own.
func TestConfigValidation(t *testing.T) {
	store := newStore(t)
	for _, tc := range []struct {
		name string
		cfg  presence.Config
		want error
	}{
		{"bad node", presence.Config{Node: "a\x00b"}, presence.ErrInvalidID},
		{"ttl not above two sweeps", presence.Config{TTL: time.Second, SweepInterval: 500 * time.Millisecond}, presence.ErrInvalidArgument},
		{"sweep too slow", presence.Config{SweepInterval: 2 * time.Second}, presence.ErrInvalidArgument},
		{"negative sweep", presence.Config{SweepInterval: -time.Second}, presence.ErrInvalidArgument},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := presence.New(ctx, store, tc.cfg); !errors.Is(err, tc.want) {
				t.Fatalf("New(%+v) = %v, want %v", tc.cfg, err, tc.want)
			}
		})
	}
	if _, err := presence.New(ctx, nil, presence.Config{}); !errors.Is(err, presence.ErrInvalidArgument) {
		t.Fatalf("New(nil store) = %v, want ErrInvalidArgument", err)
	}
}

func TestConfigDefaults(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := presence.Config{Grace: -1}
		tr := newTracker(t, newStore(t), cfg)
		got := tr.Config()
		if got.TTL != presence.DefaultTTL || got.Grace != 0 || got.SweepInterval != presence.DefaultSweepInterval ||
			got.HookTimeout != presence.DefaultHookTimeout || got.Logger == nil || got.Node != "n1" {
			t.Fatalf("Config() = %+v", got)
		}
		if cfg.TTL != 0 {
			t.Fatal("New modified the caller's Config")
		}
	})
}

// A steady stream of transitions (clients connecting one after another, as
// in a ramp) runs its hooks on a few reused goroutines, not on a new one per
// hook call: a new goroutine costs a start and a stack that grows again in
// every hook. Each hook gets a context with the HookTimeout deadline, done
// once the call returns.
//
// timing: HookTimeout (a minute) is far longer than any call here takes, so
// no hook is abandoned; the test checks the deadline the context carries.
func TestHooksReuseGoroutines(t *testing.T) {
	tr := newTracker(t, newStore(t), presence.Config{HookTimeout: time.Minute})
	var mu sync.Mutex
	goroutines := map[string]bool{}
	var ctxs []context.Context
	called := make(chan struct{}, 1)
	tr.OnOnline(func(ctx context.Context, ev presence.Event) {
		buf := make([]byte, 64)
		id, _, _ := strings.Cut(strings.TrimPrefix(string(buf[:runtime.Stack(buf, false)]), "goroutine "), " ")
		if d, ok := ctx.Deadline(); !ok || time.Until(d) < 50*time.Second || ctx.Err() != nil {
			t.Errorf("hook context: deadline %v, %v, err %v; want HookTimeout away, live", d, ok, ctx.Err())
		}
		mu.Lock()
		goroutines[id] = true
		ctxs = append(ctxs, ctx)
		mu.Unlock()
		called <- struct{}{}
	})
	const n = 200
	for i := range n {
		if _, err := tr.Connect(ctx, fmt.Sprintf("c%d", i), presence.SessionOptions{}); err != nil {
			t.Fatal(err)
		}
		<-called
	}
	if err := tr.Close(ctx); err != nil { // waits for every hook call to return
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(goroutines) > 4 {
		t.Errorf("%d hook calls ran on %d goroutines; want the few idle workers reused", n, len(goroutines))
	}
	for _, c := range ctxs {
		select {
		case <-c.Done():
		default:
			t.Fatal("a hook's context is not done after its call returned")
		}
		if !errors.Is(c.Err(), context.Canceled) {
			t.Fatalf("a returned hook's context: %v; want context.Canceled", c.Err())
		}
	}
}

// A hook that panics or blocks stops neither beats nor other clients' hooks,
// and the other hooks of the same event still run.
//
// timing: HookTimeout < TTL, so an abandoned hook is seen before any session
// could expire.
func TestHookPanicsAndBlocks(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var logs strings.Builder
		var logMu sync.Mutex
		log := slog.New(slog.NewTextHandler(writerFunc(func(p []byte) (int, error) {
			logMu.Lock()
			defer logMu.Unlock()
			return logs.Write(p)
		}), nil))
		tr := newTracker(t, newStore(t), presence.Config{TTL: 3 * time.Second, HookTimeout: 2 * time.Second, Logger: log})
		release := make(chan struct{})
		tr.OnOnline(func(ctx context.Context, ev presence.Event) {
			switch ev.ClientID {
			case "panics":
				panic("boom")
			case "blocks":
				select {
				case <-release:
				case <-ctx.Done(): // the Tracker cancels it when it gives up
					<-release
				}
			}
		})
		rec := &events{}
		tr.OnOnline(rec.hook)

		blocked, err := tr.Connect(ctx, "blocks", presence.SessionOptions{})
		if err != nil {
			t.Fatal(err)
		}
		tr.Connect(ctx, "panics", presence.SessionOptions{})
		tr.Connect(ctx, "fine", presence.SessionOptions{})
		synctest.Wait()
		if got := rec.list(); !equal(got, "panics:online", "fine:online") {
			t.Fatalf("second hook saw %v, want the panicking and the fine client at once", got)
		}
		// Beats of the client whose hook blocks keep its session alive.
		for range 4 {
			time.Sleep(time.Second)
			blocked.Beat()
		}
		synctest.Wait()
		if got := rec.list(); !equal(got, "panics:online", "fine:online", "blocks:online") {
			t.Fatalf("after the hook timeout the second hook saw %v", got)
		}
		if p, err := tr.Presence(ctx, "blocks"); err != nil || !p.Online {
			t.Fatalf("client with a blocked hook: %+v, %v; want online", p, err)
		}
		st := tr.Stats()
		if st.HookPanics != 1 || st.HookTimeouts != 1 {
			t.Fatalf("Stats = %+v; want one panic and one timeout", st)
		}
		logMu.Lock()
		for _, want := range []string{"hook panicked", "panic=boom", "client_id=panics", "abandoned", "client_id=blocks"} {
			if !strings.Contains(logs.String(), want) {
				t.Errorf("log lacks %q:\n%s", want, logs.String())
			}
		}
		logMu.Unlock()
		close(release)
	})
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// equal compares event lists per client: each client's events in order,
// clients in any order (different clients' hooks run concurrently).
func equal(got []string, want ...string) bool {
	return fmt.Sprint(byClient(got)) == fmt.Sprint(byClient(want))
}

func byClient(evs []string) map[string][]string {
	m := map[string][]string{}
	for _, ev := range evs {
		client, _, _ := strings.Cut(ev, ":")
		m[client] = append(m[client], ev)
	}
	return m
}

// With HookTimeout negative, a blocked hook holds back its own client's later
// events, in order, and never anyone else's.
func TestBlockedHookKeepsOrder(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tr := newTracker(t, newStore(t), presence.Config{Grace: -1, HookTimeout: -1})
		release := make(chan struct{})
		rec := &events{}
		tr.OnOnline(func(ctx context.Context, ev presence.Event) {
			if ev.ClientID == "slow" {
				<-release
			}
			rec.hook(ctx, ev)
		})
		tr.OnOffline(rec.hook)
		s, _ := tr.Connect(ctx, "slow", presence.SessionOptions{})
		s.End(ctx, presence.ReasonClosed)
		o, _ := tr.Connect(ctx, "other", presence.SessionOptions{})
		o.End(ctx, presence.ReasonClosed)
		synctest.Wait()
		if got := rec.list(); !equal(got, "other:online", "other:offline") {
			t.Fatalf("while slow's hook blocks: %v", got)
		}
		close(release)
		synctest.Wait()
		if got := rec.list(); !equal(got, "other:online", "other:offline", "slow:online", "slow:offline") {
			t.Fatalf("after release: %v; want slow's online before its offline", got)
		}
	})
}

func TestUnregister(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tr := newTracker(t, newStore(t), presence.Config{})
		a, b := &events{}, &events{}
		unA := tr.OnOnline(a.hook)
		tr.OnOnline(b.hook)
		tr.Connect(ctx, "x", presence.SessionOptions{})
		synctest.Wait()
		unA()
		unA() // twice is fine
		tr.Connect(ctx, "y", presence.SessionOptions{})
		synctest.Wait()
		if got := a.list(); !equal(got, "x:online") {
			t.Errorf("unregistered hook saw %v", got)
		}
		if got := b.list(); !equal(got, "x:online", "y:online") {
			t.Errorf("remaining hook saw %v", got)
		}
	})
}

// failing wraps a Store and fails every call while down is set, as a Store
// whose backend is unreachable does.
type failing struct {
	presence.Store
	down atomic.Bool
}

var errDown = errors.New("backend unreachable")

func (f *failing) Add(ctx context.Context, l presence.Lease) ([]presence.Event, error) {
	if f.down.Load() {
		return nil, errDown
	}
	return f.Store.Add(ctx, l)
}

func (f *failing) Touch(ctx context.Context, ls []presence.Lease) ([]presence.Gone, error) {
	if f.down.Load() {
		return nil, errDown
	}
	return f.Store.Touch(ctx, ls)
}

func (f *failing) End(ctx context.Context, e presence.Ending) ([]presence.Event, error) {
	if f.down.Load() {
		return nil, errDown
	}
	return f.Store.End(ctx, e)
}

func (f *failing) Sweep(ctx context.Context) ([]presence.Event, error) {
	if f.down.Load() {
		return nil, errDown
	}
	return f.Store.Sweep(ctx)
}

// While the store is unreachable, sessions stay up and beat, nothing is
// lost: a connect during the outage goes online when the store returns, an
// end during the outage goes offline once, and no false offline fires.
//
// timing: Grace < TTL as at the defaults, on fake time; the outage is the
// subject.
func TestStoreOutage(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := &failing{Store: newStore(t)}
		tr := newTracker(t, store, presence.Config{TTL: 3 * time.Second, Grace: time.Second})
		rec := &events{}
		tr.OnOnline(rec.hook)
		tr.OnOffline(rec.hook)
		stays, _ := tr.Connect(ctx, "stays", presence.SessionOptions{})
		leaves, _ := tr.Connect(ctx, "leaves", presence.SessionOptions{})
		synctest.Wait()

		store.down.Store(true)
		late, err := tr.Connect(ctx, "late", presence.SessionOptions{})
		if err != nil {
			t.Fatalf("Connect during outage = %v; want the session kept", err)
		}
		if err := leaves.End(ctx, presence.ReasonClosed); err != nil {
			t.Fatalf("End during outage = %v", err)
		}
		for range 10 { // 10s of outage, far past TTL
			time.Sleep(time.Second)
			stays.Beat()
			late.Beat()
		}
		synctest.Wait()
		if got := rec.list(); !equal(got, "stays:online", "leaves:online") {
			t.Fatalf("during outage: %v; want no transition", got)
		}
		if st := tr.Stats(); st.StoreErrors == 0 || st.Pending != 2 {
			t.Fatalf("Stats during outage = %+v; want errors counted and 2 pending", st)
		}
		store.down.Store(false)
		time.Sleep(3 * time.Second)
		stays.Beat()
		late.Beat()
		synctest.Wait()
		if got := rec.list(); !equal(got, "stays:online", "leaves:online", "late:online", "leaves:offline") {
			t.Fatalf("after outage: %v", got)
		}
		if st := tr.Stats(); st.Pending != 0 {
			t.Fatalf("Stats after outage = %+v; want nothing pending", st)
		}
	})
}

// timing: Grace alone, on fake time.
func TestCloseEndsSessionsAndStopsGoroutines(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := newStore(t)
		tr, err := presence.New(ctx, store, presence.Config{Node: "n1", Grace: time.Second})
		if err != nil {
			t.Fatal(err)
		}
		gone := make(chan presence.Reason, 2)
		tr.Connect(ctx, "a", presence.SessionOptions{OnGone: func(r presence.Reason) { gone <- r }})
		tr.Connect(ctx, "b", presence.SessionOptions{OnGone: func(r presence.Reason) { gone <- r }})
		if err := tr.Close(ctx); err != nil {
			t.Fatal(err)
		}
		if err := tr.Close(ctx); err != nil {
			t.Fatalf("second Close = %v", err)
		}
		if r1, r2 := <-gone, <-gone; r1 != presence.ReasonShutdown || r2 != presence.ReasonShutdown {
			t.Fatalf("OnGone reasons %q %q; want shutdown", r1, r2)
		}
		infos, err := store.Sessions(ctx, "a")
		if err != nil || len(infos) != 1 || !infos[0].Ending || infos[0].Reason != presence.ReasonShutdown {
			t.Fatalf("after Close the session is %+v, %v; want ending through grace with reason shutdown", infos, err)
		}
		if _, err := tr.Connect(ctx, "c", presence.SessionOptions{}); !errors.Is(err, presence.ErrClosed) {
			t.Fatalf("Connect after Close = %v, want ErrClosed", err)
		}
		if err := tr.Kick(ctx, "a"); !errors.Is(err, presence.ErrClosed) {
			t.Fatalf("Kick after Close = %v, want ErrClosed", err)
		}
		// A second node takes over the store and fires the offlines after grace.
		rec := &events{}
		other := newTracker(t, store, presence.Config{Node: "n2"})
		other.OnOffline(rec.hook)
		time.Sleep(2 * time.Second)
		synctest.Wait()
		if got := rec.list(); len(got) != 2 {
			t.Fatalf("offlines after the first node closed: %v", got)
		}
	})
}

// Close gives up on a hook that never returns once ctx is done.
func TestCloseBoundedByContext(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tr, err := presence.New(ctx, newStore(t), presence.Config{Node: "n1", HookTimeout: -1})
		if err != nil {
			t.Fatal(err)
		}
		release := make(chan struct{})
		tr.OnOnline(func(context.Context, presence.Event) { <-release })
		tr.Connect(ctx, "x", presence.SessionOptions{})
		cctx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		if err := tr.Close(cctx); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Close = %v, want DeadlineExceeded", err)
		}
		close(release)
		synctest.Wait()
	})
}

func TestConnectSameSessionIDBeats(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tr := newTracker(t, newStore(t), presence.Config{})
		a, _ := tr.Connect(ctx, "x", presence.SessionOptions{ID: "tab"})
		b, _ := tr.Connect(ctx, "x", presence.SessionOptions{ID: "tab"})
		if a != b {
			t.Fatal("second Connect with the same session ID made a new session")
		}
		if st := tr.Stats(); st.Sessions != 1 || st.Connects != 1 {
			t.Fatalf("Stats = %+v; want one session", st)
		}
		// A session whose lease ran out is replaced, not beaten.
		gone := make(chan presence.Reason, 1)
		c, _ := tr.Connect(ctx, "y", presence.SessionOptions{ID: "tab", OnGone: func(r presence.Reason) { gone <- r }})
		time.Sleep(tr.Config().TTL + time.Millisecond)
		d, _ := tr.Connect(ctx, "y", presence.SessionOptions{ID: "tab"})
		if c == d {
			t.Fatal("Connect beat a session past its TTL")
		}
		if r := <-gone; r != presence.ReasonExpired {
			t.Fatalf("OnGone(%q), want expired", r)
		}
	})
}

func TestEventID(t *testing.T) {
	ev := presence.Event{ClientID: "alice", Seq: 42}
	if got := ev.ID(); got != "alice#42" {
		t.Fatalf("ID() = %q", got)
	}
	if presence.Online.String() != "online" || presence.Offline.String() != "offline" || presence.Transition(9).String() != "transition(9)" {
		t.Fatal("Transition.String")
	}
}

func TestLookupLimits(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tr := newTracker(t, newStore(t), presence.Config{})
		ids := make([]string, presence.MaxLookup+1)
		for i := range ids {
			ids[i] = fmt.Sprint(i)
		}
		if _, err := tr.Lookup(ctx, ids); !errors.Is(err, presence.ErrInvalidArgument) {
			t.Fatalf("Lookup of %d ids = %v", len(ids), err)
		}
		if _, err := tr.List(ctx, "", 0); !errors.Is(err, presence.ErrInvalidArgument) {
			t.Fatalf("List(limit 0) = %v", err)
		}
		if err := tr.KickSession(ctx, "x", ""); !errors.Is(err, presence.ErrInvalidID) {
			t.Fatalf("KickSession(empty) = %v", err)
		}
	})
}

// A node that starts while its store is unreachable still starts; it clears
// what its previous process left before recording any session of its own.
//
// timing: Grace alone, on fake time.
func TestStartDuringOutage(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := &failing{Store: newStore(t)}
		// What the previous process of node n1 left.
		store.Add(ctx, presence.Lease{ClientID: "ghost", SessionID: "old", Node: "n1", TTL: time.Hour})
		store.Add(ctx, presence.Lease{ClientID: "back", SessionID: "old", Node: "n1", TTL: time.Hour})
		store.down.Store(true)
		tr := newTracker(t, store, presence.Config{Node: "n1", Grace: time.Second})
		rec := &events{}
		tr.OnOnline(rec.hook)
		tr.OnOffline(rec.hook)
		s, err := tr.Connect(ctx, "back", presence.SessionOptions{})
		if err != nil {
			t.Fatalf("Connect during outage: %v", err)
		}
		time.Sleep(5 * time.Second)
		s.Beat()
		synctest.Wait()
		if got := rec.list(); len(got) != 0 {
			t.Fatalf("during outage: %v", got)
		}
		store.down.Store(false)
		for range 4 {
			time.Sleep(time.Second)
			s.Beat()
		}
		synctest.Wait()
		// The ghost goes; "back" reconnected, so its new session keeps it
		// online through the clearing: no events at all.
		if got := rec.list(); !equal(got, "ghost:offline") {
			t.Fatalf("after outage: %v", got)
		}
		if p, err := tr.Presence(ctx, "back"); err != nil || !p.Online || p.Sessions != 1 {
			t.Fatalf("back = %+v, %v; want online with its one new session", p, err)
		}
	})
}

// A burst of transitions queues behind a bounded set of hook workers rather
// than starting a goroutine per client, and every event is still delivered
// in order.
func TestHookBurstBoundedGoroutines(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tr := newTracker(t, newStore(t), presence.Config{HookTimeout: -1, Grace: -1})
		release := make(chan struct{})
		var delivered atomic.Int64
		tr.OnOnline(func(context.Context, presence.Event) {
			<-release
			delivered.Add(1)
		})
		tr.OnOffline(func(context.Context, presence.Event) { delivered.Add(1) })
		synctest.Wait()
		before := runtime.NumGoroutine()
		const n = 2000
		for i := range n {
			s, err := tr.Connect(ctx, fmt.Sprint("c", i), presence.SessionOptions{})
			if err != nil {
				t.Fatal(err)
			}
			s.End(ctx, presence.ReasonClosed)
		}
		synctest.Wait()
		if g := runtime.NumGoroutine() - before; g > 300 {
			t.Fatalf("%d goroutines for a burst of %d clients' events, want at most ~256", g, n)
		}
		close(release)
		synctest.Wait()
		if got := delivered.Load(); got != 2*n {
			t.Fatalf("delivered %d events, want %d", got, 2*n)
		}
	})
}

// An End that failed for a transient reason and waits for the loop's retry
// is not dropped by Close: Close makes it, with its own reason and grace,
// before it ends the node's other sessions through Grace, and reports it
// when the Store still refuses.
func TestCloseRepeatsFailedEnds(t *testing.T) {
	for _, tc := range []struct {
		name    string
		recover bool // the Store answers again by Close
	}{
		{"store back", true},
		{"store still down", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				mem := newStore(t)
				st := &failEnd{Store: mem, clientsOnly: true}
				tr, err := presence.New(ctx, st, presence.Config{Node: "n1"})
				if err != nil {
					t.Fatal(err)
				}
				var evs events
				tr.OnOffline(evs.hook)
				s, err := tr.Connect(ctx, "alice", presence.SessionOptions{})
				if err != nil {
					t.Fatal(err)
				}
				st.fail.Store(true)
				if err := s.End(ctx, presence.ReasonExpired); err != nil {
					t.Fatalf("End while the Store is down: %v, want nil (retried)", err)
				}
				if n := tr.Stats().Pending; n != 1 {
					t.Fatalf("Stats().Pending = %d, want the failed End", n)
				}
				st.fail.Store(!tc.recover)
				err = tr.Close(ctx)
				if !tc.recover {
					if !errors.Is(err, errDown) {
						t.Fatalf("Close = %v, want the failed End reported (errDown)", err)
					}
					return
				}
				if err != nil {
					t.Fatalf("Close: %v", err)
				}
				// Expired: gone at once, not through the Grace of the
				// node's shutdown.
				if got := evs.list(); len(got) != 1 || got[0] != "alice:offline" {
					t.Errorf("events after Close = %v, want alice offline", got)
				}
				ps, err := mem.Lookup(ctx, []string{"alice"})
				if err != nil || ps[0].Online {
					t.Errorf("Lookup after Close = %+v, %v; want alice offline", ps, err)
				}
			})
		})
	}
}

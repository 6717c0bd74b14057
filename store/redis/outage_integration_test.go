//go:build integration

package redis_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/vigilhq/vigil/internal/redistest"
	"github.com/vigilhq/vigil/presence"
	redisstore "github.com/vigilhq/vigil/store/redis"
)

// client returns a client of the test's own server that gives up fast.
func client(t *testing.T, s *redistest.Server) *goredis.Client {
	c := goredis.NewClient(&goredis.Options{
		Addr: s.Addr(), MaxRetries: -1, DialTimeout: 200 * time.Millisecond,
		ReadTimeout: 500 * time.Millisecond, WriteTimeout: 500 * time.Millisecond,
	})
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// events records the hook calls of several trackers.
type events struct {
	mu  sync.Mutex
	all []presence.Event
}

func (r *events) hook(_ context.Context, ev presence.Event) {
	r.mu.Lock()
	r.all = append(r.all, ev)
	r.mu.Unlock()
}

func (r *events) of(id string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, ev := range r.all {
		if ev.ClientID == id {
			out = append(out, ev.Transition.String()+"/"+string(ev.Reason))
		}
	}
	return out
}

func (r *events) seqs(id string) []uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []uint64
	for _, ev := range r.all {
		if ev.ClientID == id {
			out = append(out, ev.Seq)
		}
	}
	return out
}

type timing struct{ ttl, grace, sweep time.Duration }

var fast = timing{ttl: 2 * time.Second, grace: 500 * time.Millisecond, sweep: 200 * time.Millisecond}

func startTracker(t *testing.T, st presence.Store, node string, tm timing, rec *events) *presence.Tracker {
	t.Helper()
	tr, err := presence.New(context.Background(), st, presence.Config{
		Node: node, TTL: tm.ttl, Grace: tm.grace, SweepInterval: tm.sweep,
	})
	if err != nil {
		t.Fatalf("presence.New(%s): %v", node, err)
	}
	if rec != nil {
		tr.OnOnline(rec.hook)
		tr.OnOffline(rec.hook)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = tr.Close(ctx) // may fail when the test broke the node's Redis
	})
	return tr
}

// beater beats sessions every period, as pongs would, until the test ends.
func beater(t *testing.T, period time.Duration, sessions ...*presence.Session) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(period)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
				for _, s := range sessions {
					s.Beat()
				}
			}
		}
	}()
	t.Cleanup(func() { cancel(); wg.Wait() })
}

func waitUntil(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %v: %s", within, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func connect(t *testing.T, tr *presence.Tracker, id string) *presence.Session {
	t.Helper()
	s, err := tr.Connect(context.Background(), id, presence.SessionOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestOutageRestartEmpty stops Redis for longer than a TTL while clients
// stay connected, then restarts it with no data: no offline fires for
// clients that stayed, the clients that left meanwhile get exactly one
// offline, and presence converges within one TTL.
func TestOutageRestartEmpty(t *testing.T) {
	srv := redistest.StartServer(t)
	rec := &events{}
	const window = time.Second // re-assertion window, scaled with the sweep
	mk := func(node string) *presence.Tracker {
		st := redistest.Store(t, client(t, srv), redisstore.Config{Prefix: "outage", Reassert: window})
		return startTracker(t, st, node, fast, rec)
	}
	a, b := mk("a"), mk("b")
	alice := connect(t, a, "alice")
	bob := connect(t, a, "bob")
	carol := connect(t, b, "carol")
	daveA := connect(t, a, "dave")
	daveB := connect(t, b, "dave")
	erin := connect(t, a, "erin") // leaves without grace (timeout) during the outage
	beater(t, 300*time.Millisecond, alice, bob, carol, daveA, daveB, erin)
	ids := []string{"alice", "bob", "carol", "dave", "erin"}
	waitUntil(t, 2*time.Second, "everyone online", func() bool {
		for _, id := range ids {
			if len(rec.of(id)) != 1 {
				return false
			}
		}
		return true
	})
	before := map[string]uint64{}
	for _, id := range ids {
		before[id] = rec.seqs(id)[0]
	}

	srv.Kill()
	time.Sleep(fast.ttl / 2)
	ctx := context.Background()
	if err := bob.End(ctx, presence.ReasonClosed); err != nil {
		t.Fatal(err)
	}
	if err := daveA.End(ctx, presence.ReasonClosed); err != nil {
		t.Fatal(err)
	}
	if err := erin.End(ctx, presence.ReasonExpired); err != nil {
		t.Fatal(err)
	}
	time.Sleep(fast.ttl) // longer than a TTL without Redis
	for _, id := range ids {
		if got := rec.of(id); len(got) != 1 {
			t.Fatalf("during the outage %s got %v; want nothing new", id, got)
		}
	}
	if st := a.Stats(); st.StoreErrors == 0 {
		t.Errorf("no store errors counted during the outage: %+v", st)
	}

	srv.Start() // empty
	restarted := time.Now()
	// Their offlines are decided in the re-assertion window, so held to its
	// end.
	waitUntil(t, fast.ttl+fast.grace+window+4*fast.sweep, "bob and erin offline", func() bool {
		return len(rec.of("bob")) == 2 && len(rec.of("erin")) == 2
	})
	converged := time.Since(restarted)
	time.Sleep(fast.ttl) // let anything wrong happen
	want := map[string][]string{
		"alice": {"online/connect"},
		"bob":   {"online/connect", "offline/closed"},
		"carol": {"online/connect"},
		"dave":  {"online/connect"},
		"erin":  {"online/connect", "offline/expired"},
	}
	for id, w := range want {
		if got := rec.of(id); !slices.Equal(got, w) {
			t.Errorf("%s: events %v, want %v", id, got, w)
		}
	}
	for _, id := range []string{"bob", "erin"} {
		if s := rec.seqs(id); len(s) == 2 && s[1] <= s[0] {
			t.Errorf("%s: offline seq %d not after online seq %d", id, s[1], s[0])
		}
	}
	ps, err := a.Lookup(ctx, ids)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, p := range ps {
		got[p.ClientID] = fmt.Sprintf("online=%v sessions=%d", p.Online, p.Sessions)
	}
	wantP := map[string]string{
		"alice": "online=true sessions=1", "bob": "online=false sessions=0", "carol": "online=true sessions=1",
		"dave": "online=true sessions=1", "erin": "online=false sessions=0",
	}
	for id, w := range wantP {
		if got[id] != w {
			t.Errorf("Lookup %s = %s, want %s", id, got[id], w)
		}
	}
	if n, err := a.Count(ctx); err != nil || n != 3 {
		t.Errorf("Count = %d, %v; want 3", n, err)
	}
	t.Logf("the clients that left went offline %v after the restart (TTL %v, window %v)", converged, fast.ttl, window)
}

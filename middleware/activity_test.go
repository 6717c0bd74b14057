package middleware_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/gorilla/websocket"

	"github.com/vigilhq/vigil/middleware"
	"github.com/vigilhq/vigil/presence"
	"github.com/vigilhq/vigil/store/memory"
)

// stateFake is the memory store with a SetActivity that records its calls
// and decides no transitions: it lets the middleware's side of activity
// reports be tested apart from a Store's rules.
type stateFake struct {
	*memory.Store
	mu    sync.Mutex
	calls []presence.SessionActivity
	adds  []presence.Lease
}

var _ presence.StateStore = (*stateFake)(nil)

func (f *stateFake) Add(ctx context.Context, l presence.Lease) ([]presence.Event, error) {
	f.mu.Lock()
	f.adds = append(f.adds, l)
	f.mu.Unlock()
	l.Activity, l.IdleFor = "", 0
	return f.Store.Add(ctx, l)
}

func (f *stateFake) SetActivity(_ context.Context, a presence.SessionActivity) ([]presence.Event, error) {
	if err := a.Validate(); err != nil {
		return nil, err
	}
	f.mu.Lock()
	f.calls = append(f.calls, a)
	f.mu.Unlock()
	return nil, nil
}

func (f *stateFake) recorded() []presence.SessionActivity {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]presence.SessionActivity(nil), f.calls...)
}

// waitCall polls, with a deadline, until the last call records a.
func (f *stateFake) waitCall(t *testing.T, a presence.Activity) presence.SessionActivity {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		if c := f.recorded(); len(c) > 0 && c[len(c)-1].Activity == a {
			return c[len(c)-1]
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %q recorded within 5s; calls %+v", a, f.recorded())
		}
		time.Sleep(10 * time.Millisecond) // polling with a deadline
	}
}

func newStateEnv(t *testing.T, cfg middleware.Config) (*env, *stateFake) {
	t.Helper()
	st, err := memory.New(memory.Config{})
	if err != nil {
		t.Fatal(err)
	}
	f := &stateFake{Store: st}
	return newEnvOn(t, f, fastTracker(), cfg), f
}

func TestActivityMessages(t *testing.T) {
	e, f := newStateEnv(t, fastServer())
	if !e.tr.HasStates() {
		t.Fatal("the fake is not a StateStore")
	}
	ts := startHTTP(t, e.mux(echo))
	c := mustDial(t, wsURL(ts, "/ws?id=alice"))
	e.waitEvent(t, "alice", 2*time.Second)

	for _, m := range []string{"vigil:active", "vigil:away 5000", "hello"} {
		if err := c.WriteMessage(websocket.TextMessage, []byte(m)); err != nil {
			t.Fatal(err)
		}
	}
	// Only "hello" reaches the application (echo).
	in := readAll(t, c)
	if m := <-in; m != "hello" {
		t.Fatalf("the application got %q", m)
	}
	got := f.waitCall(t, presence.ActivityAway)
	if got.ClientID != "alice" || got.IdleFor < 5*time.Second || got.IdleFor > 6*time.Second {
		t.Fatalf("recorded %+v, want alice away for 5s", got)
	}
	// "vigil:active" while active costs no Store call.
	if n := len(f.recorded()); n != 1 {
		t.Fatalf("%d SetActivity calls, want 1: %+v", n, f.recorded())
	}
	if err := c.WriteMessage(websocket.TextMessage, []byte("vigil:active")); err != nil {
		t.Fatal(err)
	}
	f.waitCall(t, presence.ActivityActive)
}

// A client flipping its state 1000 times in a second, at the defaults,
// costs at most three Store calls (one at once, one when the first second
// is over, one for the change that came after it), counted on fake time;
// the last records the state it ended on.
func TestSynctestActivityCoalesced(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st, _ := memory.New(memory.Config{})
		f := &stateFake{Store: st}
		b := newBubbleOn(t, f, presence.Config{}, middleware.Config{}, nil)
		c := b.connect(t, "flip")
		b.next(t) // online
		for i := range 1000 {
			m := "vigil:away 10"
			if i%2 == 1 {
				m = "vigil:active"
			}
			if err := c.WriteMessage(websocket.TextMessage, []byte(m)); err != nil {
				t.Fatal(err)
			}
			time.Sleep(time.Millisecond)
		}
		if err := c.WriteMessage(websocket.TextMessage, []byte("vigil:away 7")); err != nil {
			t.Fatal(err)
		}
		time.Sleep(5 * time.Second)
		synctest.Wait()
		calls := f.recorded()
		if len(calls) == 0 || len(calls) > 3 {
			t.Fatalf("%d SetActivity calls for 1001 reports in a second, want 1 to 3: %+v", len(calls), calls)
		}
		t.Logf("%d SetActivity calls for 1001 reports", len(calls))
		if last := calls[len(calls)-1]; last.Activity != presence.ActivityAway || last.IdleFor < 7*time.Millisecond {
			t.Fatalf("last call %+v, want away, idle at least 7ms", last)
		}
		c.Close()
		b.close(t)
	})
}

// A client flipping its state as fast as it can write costs about one
// Store call per second, the last one recording its latest report.
func TestActivityCoalesced(t *testing.T) {
	e, f := newStateEnv(t, fastServer())
	ts := startHTTP(t, e.mux(nil))
	c := mustDial(t, wsURL(ts, "/ws?id=alice"))
	e.waitEvent(t, "alice", 2*time.Second)
	readAll(t, c) // answers pings
	start := time.Now()
	for i := range 1000 {
		m := "vigil:away 10"
		if i%2 == 1 {
			m = "vigil:active"
		}
		if err := c.WriteMessage(websocket.TextMessage, []byte(m)); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.WriteMessage(websocket.TextMessage, []byte("vigil:away 7")); err != nil {
		t.Fatal(err)
	}
	f.waitCall(t, presence.ActivityAway)
	// Let a change that had to wait land, then count.
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond) // polling with a deadline
	}
	calls := f.recorded()
	if max := 2 + int(time.Since(start)/time.Second); len(calls) > max {
		t.Fatalf("%d SetActivity calls for 1001 reports in %v, want at most %d", len(calls), time.Since(start), max)
	}
	if last := calls[len(calls)-1]; last.Activity != presence.ActivityAway {
		t.Fatalf("last call %+v, want away", last)
	}
}

func TestActivityMalformed(t *testing.T) {
	for _, m := range []string{"vigil:", "vigil:busy", "vigil:away ", "vigil:away -1", "vigil:away 01", "vigil:away 1e3",
		"vigil:away 1000000000000", "vigil:active 5", "vigil:Away", "vigil:away\t5"} {
		t.Run(m, func(t *testing.T) {
			e, f := newStateEnv(t, fastServer())
			ts := startHTTP(t, e.mux(echo))
			c := mustDial(t, wsURL(ts, "/ws?id=alice"))
			e.waitEvent(t, "alice", 2*time.Second)
			if err := c.WriteMessage(websocket.TextMessage, []byte(m)); err != nil {
				t.Fatal(err)
			}
			code, text := closeCode(t, c, 2*time.Second)
			if code != middleware.ClosePolicy || text != "bad state" {
				t.Fatalf("closed with %d %q, want 1008 \"bad state\"", code, text)
			}
			if n := len(f.recorded()); n != 0 {
				t.Fatalf("%d SetActivity calls", n)
			}
		})
	}
}

// With DisableActivity, "vigil:" messages are the application's.
func TestActivityDisabled(t *testing.T) {
	cfg := fastServer()
	cfg.DisableActivity = true
	e, f := newStateEnv(t, cfg)
	ts := startHTTP(t, e.mux(echo))
	c := mustDial(t, wsURL(ts, "/ws?id=alice"))
	if err := c.WriteMessage(websocket.TextMessage, []byte("vigil:bogus")); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(2 * time.Second))
	if _, data, err := c.ReadMessage(); err != nil || string(data) != "vigil:bogus" {
		t.Fatalf("read %q, %v; want the echo", data, err)
	}
	if n := len(f.recorded()); n != 0 {
		t.Fatalf("%d SetActivity calls", n)
	}
}

// Over a Store without states reports are swallowed, not delivered, and
// close nothing.
func TestActivityWithoutStates(t *testing.T) {
	st, err := memory.New(memory.Config{})
	if err != nil {
		t.Fatal(err)
	}
	e := newEnvOn(t, plainStore{st}, fastTracker(), fastServer())
	if e.tr.HasStates() {
		t.Fatal("plainStore keeps states")
	}
	ts := startHTTP(t, e.mux(echo))
	c := mustDial(t, wsURL(ts, "/ws?id=alice"))
	for _, m := range []string{"vigil:away 5", "hi"} {
		if err := c.WriteMessage(websocket.TextMessage, []byte(m)); err != nil {
			t.Fatal(err)
		}
	}
	c.SetReadDeadline(time.Now().Add(2 * time.Second))
	if _, data, err := c.ReadMessage(); err != nil || string(data) != "hi" {
		t.Fatalf("read %q, %v; want the echo of hi", data, err)
	}
	resp := post(t, ts.URL+"/presence/heartbeat?id=bob&state=away", "", "")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("heartbeat with state over a Store without states: %d", resp.StatusCode)
	}
	// Checked all the same: a bad state is refused, not ignored.
	resp = post(t, ts.URL+"/presence/heartbeat?id=bob&state=busy", "", "")
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("heartbeat with state=busy over a Store without states: %d, want 400", resp.StatusCode)
	}
}

// plainStore hides every ability of its Store but presence.Store's.
type plainStore struct{ presence.Store }

// Over the memory store: away and back from WebSocket reports and HTTP
// heartbeats, seen in the hooks and the status endpoints.
func TestAwayAndBack(t *testing.T) {
	e := newEnv(t, fastTracker(), fastServer())
	ts := startHTTP(t, e.mux(echo))
	c := mustDial(t, wsURL(ts, "/ws?id=alice"))
	readAll(t, c)
	if ev := e.waitEvent(t, "alice", 2*time.Second); ev.Transition != presence.Online {
		t.Fatalf("event %+v, want online", ev)
	}
	before := time.Now()
	if err := c.WriteMessage(websocket.TextMessage, []byte("vigil:away 60000")); err != nil {
		t.Fatal(err)
	}
	away := e.waitEvent(t, "alice", 2*time.Second)
	if away.Transition != presence.Away {
		t.Fatalf("event %+v, want away", away)
	}
	var st middleware.ClientStatus
	if code := getJSON(t, ts.URL+"/presence/alice", &st); code != http.StatusOK || st.State != "away" || !st.Online {
		t.Fatalf("GET /presence/alice: %d %+v, want online and away", code, st)
	}
	la, err := time.Parse(time.RFC3339Nano, st.LastActive)
	if err != nil || la.After(before.Add(-59*time.Second)) || la.Before(before.Add(-62*time.Second)) {
		t.Fatalf("last_active %q (%v), want a minute before %v", st.LastActive, err, before)
	}
	var page middleware.OnlinePage
	if code := getJSON(t, ts.URL+"/presence", &page); code != http.StatusOK || len(page.Clients) != 1 || page.Clients[0].State != "away" {
		t.Fatalf("GET /presence: %d %+v, want alice away", code, page)
	}
	if err := c.WriteMessage(websocket.TextMessage, []byte("vigil:active")); err != nil {
		t.Fatal(err)
	}
	back := e.waitEvent(t, "alice", 3*time.Second)
	if back.Transition != presence.Back || back.Seq <= away.Seq {
		t.Fatalf("event %+v, want back after away (seq %d)", back, away.Seq)
	}

	// HTTP: a first heartbeat away opens the session away; back with the
	// next one.
	hb := ts.URL + "/presence/heartbeat?id=bob"
	if resp := post(t, hb+"&state=away&idle_ms=1000", "", ""); resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d", resp.StatusCode)
	}
	if ev := e.waitEvent(t, "bob", 2*time.Second); ev.Transition != presence.Online {
		t.Fatalf("event %+v, want online", ev)
	}
	if ev := e.waitEvent(t, "bob", 2*time.Second); ev.Transition != presence.Away {
		t.Fatalf("event %+v, want away", ev)
	}
	if code := getJSON(t, ts.URL+"/presence/bob", &st); code != http.StatusOK || st.State != "away" {
		t.Fatalf("GET /presence/bob: %d %+v, want away", code, st)
	}
	if resp := post(t, hb, "application/json", `{"state":"active"}`); resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d", resp.StatusCode)
	}
	if ev := e.waitEvent(t, "bob", 3*time.Second); ev.Transition != presence.Back {
		t.Fatalf("event %+v, want back", ev)
	}
	if code := getJSON(t, ts.URL+"/presence/bob", &st); code != http.StatusOK || st.State != "online" {
		t.Fatalf("GET /presence/bob: %d %+v, want online", code, st)
	}
}

func TestHeartbeatState(t *testing.T) {
	e, f := newStateEnv(t, fastServer())
	ts := startHTTP(t, e.mux(nil))
	hb := ts.URL + "/presence/heartbeat?id=alice&session=tab"

	// The first beat opens the session away.
	if resp := post(t, hb+"&state=away&idle_ms=60000", "", ""); resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d", resp.StatusCode)
	}
	f.mu.Lock()
	add := f.adds[len(f.adds)-1]
	f.mu.Unlock()
	if add.Activity != presence.ActivityAway || add.IdleFor < time.Minute || add.IdleFor > time.Minute+time.Second {
		t.Fatalf("Add %+v, want away for 1m", add)
	}
	// Back, in the JSON body.
	if resp := post(t, hb, "application/json", `{"session":"tab","state":"active"}`); resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d", resp.StatusCode)
	}
	f.waitCall(t, presence.ActivityActive)
	var st middleware.ClientStatus
	if code := getJSON(t, ts.URL+"/presence/alice", &st); code != http.StatusOK || st.State != "online" {
		t.Fatalf("GET /presence/alice: %d %+v, want state online", code, st)
	}

	for _, tc := range []struct{ query, body, code string }{
		{"&state=busy", "", middleware.CodeInvalidState},
		{"&state=away&idle_ms=-1", "", middleware.CodeInvalidState},
		{"&state=away&idle_ms=1.5", "", middleware.CodeInvalidState},
		{"&state=active&idle_ms=5", "", middleware.CodeInvalidState},
		{"&idle_ms=5", "", middleware.CodeInvalidState},
		{"&state=away", `{"state":"active"}`, middleware.CodeInvalidState},
		{"", `{"state":"away","idle_ms":1.5}`, middleware.CodeInvalidState},
		{"", `{"state":"away","idle_ms":-3}`, middleware.CodeInvalidState},
		{"", `{"state":7}`, middleware.CodeInvalidBody},
		{"", `{"state":"AWAY"}`, middleware.CodeInvalidState},
	} {
		t.Run(tc.query+tc.body, func(t *testing.T) {
			resp := post(t, hb+tc.query, "application/json", tc.body)
			if resp.StatusCode != http.StatusBadRequest {
				t.Fatalf("status %d, want 400", resp.StatusCode)
			}
			var er middleware.ErrorReply
			if err := jsonDecode(resp, &er); err != nil || er.Error.Code != tc.code {
				t.Fatalf("answer %+v (%v), want code %s", er, err, tc.code)
			}
			if !strings.Contains(er.Error.Message, "activity") && tc.code == middleware.CodeInvalidState {
				t.Fatalf("message %q does not say what is wrong", er.Error.Message)
			}
		})
	}
}

func jsonDecode(resp *http.Response, v any) error {
	return json.NewDecoder(resp.Body).Decode(v)
}

// readAll reads c (answering pings) on a goroutine until it fails, and
// passes on the text it gets.
func readAll(t *testing.T, c *websocket.Conn) <-chan string {
	t.Helper()
	ch := make(chan string, 100)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			_, data, err := c.ReadMessage()
			if err != nil {
				close(ch)
				return
			}
			select {
			case ch <- string(data):
			default:
			}
		}
	}()
	t.Cleanup(func() { c.Close(); <-done })
	return ch
}

package middleware_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"reflect"
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

func TestFeedQueryRefused(t *testing.T) {
	e := newEnv(t, fastTracker(), fastServer())
	f := newFeed(t, e, middleware.FeedConfig{MaxIDs: 2})
	ts := startHTTP(t, f)
	tests := []struct {
		name, query string
		status      int
		code        string
	}{
		{"empty room", "room=", 400, middleware.CodeInvalidRoom},
		{"control character in room", "room=a%01", 400, middleware.CodeInvalidRoom},
		{"two rooms", "room=a&room=b", 400, middleware.CodeInvalidRoom},
		{"too many ids", "ids=a,b,c", 400, middleware.CodeInvalidQuery},
		{"too many ids, repeated", "id=a&id=b&ids=c", 400, middleware.CodeInvalidQuery},
		{"empty ids", "ids=", 400, middleware.CodeInvalidQuery},
		{"invalid id", "ids=a,", 400, middleware.CodeInvalidClientID},
		{"room and ids", "room=a&ids=b", 400, middleware.CodeInvalidQuery},
		{"window below the Feed's", "window=10", 400, middleware.CodeInvalidQuery},
		{"window too long", "window=3600000", 400, middleware.CodeInvalidQuery},
		{"window not a number", "window=1s", 400, middleware.CodeInvalidQuery},
		{"unknown version", "v=3", 400, middleware.CodeInvalidQuery},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for _, ws := range []bool{false, true} {
				var res *http.Response
				var err error
				if ws {
					var c *websocket.Conn
					c, res, err = websocket.DefaultDialer.Dial(wsURL(ts, "/?"+tc.query), nil)
					if err == nil {
						c.Close()
						t.Fatal("WebSocket upgraded")
					}
				} else {
					res, err = http.Get(ts.URL + "/?" + tc.query)
					if err != nil {
						t.Fatal(err)
					}
				}
				var body middleware.ErrorReply
				json.NewDecoder(res.Body).Decode(&body)
				res.Body.Close()
				if res.StatusCode != tc.status || body.Error.Code != tc.code || body.Error.Message == "" {
					t.Errorf("ws %v: %d %+v, want %d %s with a message", ws, res.StatusCode, body.Error, tc.status, tc.code)
				}
			}
		})
	}
}

// connectIn opens a session of id in rooms, with meta.
func connectIn(t *testing.T, tr *presence.Tracker, id string, meta string, rooms ...string) *presence.Session {
	t.Helper()
	s, err := tr.Connect(context.Background(), id, presence.SessionOptions{Rooms: rooms, Meta: json.RawMessage(meta)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.End(context.Background(), presence.ReasonClosed) })
	return s
}

func ids(ms []any) []string {
	var out []string
	for _, m := range ms {
		out = append(out, m.(map[string]any)["id"].(string))
	}
	return out
}

// timing: a 20ms feed Window, shorter than the fast Tracker's
// SweepInterval, so that each change shows in the next diff.
func TestFeedRoomDiffs(t *testing.T) {
	e := newEnv(t, fastTracker(), fastServer())
	f := newFeed(t, e, middleware.FeedConfig{Window: 20 * time.Millisecond})
	ts := startHTTP(t, f)
	connectIn(t, e.tr, "alice", `{"name":"Ada"}`, "general")
	connectIn(t, e.tr, "bob", ``, "other")
	ch, _ := readSSE(t, ts.URL+"?room=general")
	snap := nextSSE(t, ch, "snapshot")
	ms := snap["members"].([]any)
	if snap["scope"] != "room" || snap["room"] != "general" || snap["count"].(float64) != 1 || len(ms) != 1 ||
		ms[0].(map[string]any)["meta"].(map[string]any)["name"] != "Ada" || ms[0].(map[string]any)["state"] != "online" {
		t.Fatalf("snapshot %v, want alice (Ada) alone", snap)
	}
	carol := connectIn(t, e.tr, "carol", `{"name":"Carol"}`, "general")
	d := nextSSE(t, ch, "diff")
	if got := ids(d["set"].([]any)); len(got) != 1 || got[0] != "carol" || d["count"].(float64) != 2 {
		t.Fatalf("diff %v, want carol set, count 2", d)
	}
	if err := carol.SetMeta(context.Background(), json.RawMessage(`{"name":"Caroline"}`)); err != nil {
		t.Fatal(err)
	}
	d = nextSSE(t, ch, "diff")
	if m := d["set"].([]any)[0].(map[string]any); m["id"] != "carol" || m["meta"].(map[string]any)["name"] != "Caroline" {
		t.Fatalf("diff %v, want carol's new meta", d)
	}
	if err := carol.Leave(context.Background(), "general"); err != nil {
		t.Fatal(err)
	}
	d = nextSSE(t, ch, "diff")
	if g, _ := d["gone"].([]any); len(g) != 1 || g[0] != "carol" || d["count"].(float64) != 1 || d["set"] != nil {
		t.Fatalf("diff %v, want carol gone, count 1", d)
	}
}

// timing: a 20ms feed Window, as TestFeedRoomDiffs.
func TestFeedIDsAndNode(t *testing.T) {
	e := newEnv(t, fastTracker(), fastServer())
	f := newFeed(t, e, middleware.FeedConfig{Window: 20 * time.Millisecond})
	ts := startHTTP(t, f)
	connectIn(t, e.tr, "dave", ``)
	ch, _ := readSSE(t, ts.URL+"?ids=alice,bob&id=alice")
	snap := nextSSE(t, ch, "snapshot")
	ms := snap["members"].([]any)
	if snap["scope"] != "ids" || len(ms) != 2 || ms[0].(map[string]any)["id"] != "alice" || ms[1].(map[string]any)["state"] != "offline" {
		t.Fatalf("snapshot %v, want alice and bob offline", snap)
	}
	node, _ := readSSE(t, ts.URL+"?v=2")
	if snap := nextSSE(t, node, "snapshot"); snap["scope"] != "node" || len(snap["members"].([]any)) != 1 {
		t.Fatalf("node snapshot %v, want dave", snap)
	}
	connectIn(t, e.tr, "carol", ``) // not followed
	time.Sleep(50 * time.Millisecond)
	connectIn(t, e.tr, "bob", ``)
	for {
		d := nextSSE(t, ch, "diff")
		got := ids(d["set"].([]any))
		if len(got) != 1 || got[0] != "bob" {
			t.Fatalf("diff %v, want bob alone", d)
		}
		if d["set"].([]any)[0].(map[string]any)["state"] == "online" && d["count"].(float64) == 1 {
			break
		}
	}
	seen := map[string]bool{}
	for !seen["bob"] || !seen["carol"] {
		for _, id := range ids(nextSSE(t, node, "diff")["set"].([]any)) {
			seen[id] = true
		}
	}
}

// timing: a 20ms feed Window, as TestFeedRoomDiffs.
func TestFeedCountOnly(t *testing.T) {
	e := newEnv(t, fastTracker(), fastServer())
	f := newFeed(t, e, middleware.FeedConfig{Window: 20 * time.Millisecond, CountOnlyAbove: 2})
	ts := startHTTP(t, f)
	connectIn(t, e.tr, "a", ``, "big")
	connectIn(t, e.tr, "b", ``, "big")
	ch, _ := readSSE(t, ts.URL+"?room=big")
	if snap := nextSSE(t, ch, "snapshot"); snap["count_only"] != false || snap["count"].(float64) != 2 {
		t.Fatalf("snapshot %v, want 2 members in full", snap)
	}
	c := connectIn(t, e.tr, "c", ``, "big")
	// Past CountOnlyAbove the feed switches to counts, with a snapshot.
	if snap := nextSSE(t, ch, "snapshot"); snap["count_only"] != true || snap["count"].(float64) != 3 || len(snap["members"].([]any)) != 0 {
		t.Fatalf("snapshot %v, want count 3 only", snap)
	}
	ch2, _ := readSSE(t, ts.URL+"?room=big")
	if snap := nextSSE(t, ch2, "snapshot"); snap["count_only"] != true || snap["count"].(float64) != 3 {
		t.Fatalf("second subscriber's snapshot %v, want count 3 only", snap)
	}
	c.Leave(context.Background(), "big")
	for _, ch := range []<-chan sseEvent{ch, ch2} {
		if d := nextSSE(t, ch, "diff"); d["count"].(float64) != 2 || d["set"] != nil {
			t.Fatalf("diff %v, want count 2 alone", d)
		}
	}
}

// timing: a 20ms feed Window, as TestFeedRoomDiffs.
func TestFeedOverWebSocket(t *testing.T) {
	e := newEnv(t, fastTracker(), fastServer())
	m, err := e.srv.Mount(http.NewServeMux(), "/presence", middleware.MountConfig{Feed: middleware.FeedConfig{Window: 20 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	ts := startHTTP(t, m.Feed())
	connectIn(t, e.tr, "alice", `{"name":"Ada"}`, "general")
	read := func(c *websocket.Conn) map[string]any {
		t.Helper()
		c.SetReadDeadline(time.Now().Add(3 * time.Second))
		var v map[string]any
		if err := c.ReadJSON(&v); err != nil {
			t.Fatal(err)
		}
		return v
	}
	c := mustDial(t, wsURL(ts, "/?room=general"))
	if v := read(c); v["type"] != "snapshot" || v["count"].(float64) != 1 {
		t.Fatalf("first message %v, want the snapshot", v)
	}
	connectIn(t, e.tr, "bob", ``, "general")
	if v := read(c); v["type"] != "diff" || ids(v["set"].([]any))[0] != "bob" {
		t.Fatalf("message %v, want bob's diff", v)
	}
	c.WriteMessage(websocket.TextMessage, []byte("ping"))
	c.SetReadDeadline(time.Now().Add(3 * time.Second))
	if _, msg, err := c.ReadMessage(); err != nil || string(msg) != "pong" {
		t.Fatalf("after ping: %q %v, want pong", msg, err)
	}
	c.WriteMessage(websocket.TextMessage, []byte(`{"subscribe":"x"}`))
	_, _, err = c.ReadMessage()
	if ce := (*websocket.CloseError)(nil); !errors.As(err, &ce) || ce.Code != websocket.ClosePolicyViolation {
		t.Fatalf("after an unexpected message: %v, want close 1008", err)
	}

	// The version-1 feed over a WebSocket.
	c1 := mustDial(t, wsURL(ts, "/"))
	if v := read(c1); v["type"] != "snapshot" || len(v["clients"].([]any)) != 2 {
		t.Fatalf("first message %v, want the version-1 snapshot", v)
	}
	// A foreign page may not open it.
	_, res, err := websocket.DefaultDialer.Dial(wsURL(ts, "/?room=general"), http.Header{"Origin": {"https://evil.example"}})
	if err == nil || res.StatusCode != http.StatusForbidden {
		t.Fatalf("foreign origin: %v %v, want 403", res, err)
	}
}

// A subscriber whose connection does not drain holds the latest state of
// what changed, and once that is more than its room, a fresh snapshot.
//
// timing: the feed's default Window and WriteTimeout on fake time; the
// subscriber resumes reading well within the WriteTimeout.
func TestFeedFallsBehindGetsSnapshot(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		st, _ := memory.New(memory.Config{})
		tr, err := presence.New(ctx, st, presence.Config{Node: "n1"})
		if err != nil {
			t.Fatal(err)
		}
		f, err := middleware.NewFeed(tr, middleware.FeedConfig{Buffer: 1})
		if err != nil {
			t.Fatal(err)
		}
		l := newPipeListener()
		hs := &http.Server{Handler: f}
		go hs.Serve(l)
		conn, _ := l.dial(ctx, "", "")
		t.Cleanup(func() {
			conn.Close()
			f.Close()
			hs.Close()
			tr.Close(ctx)
		})
		connectIn(t, tr, "a", ``, "r")
		synctest.Wait()
		go conn.Write([]byte("GET /?room=r HTTP/1.1\r\nHost: pipe\r\n\r\n"))
		var got bytes.Buffer
		buf := make([]byte, 1<<16)
		for !strings.Contains(got.String(), "event: snapshot\ndata: {") || !strings.HasSuffix(got.String(), "\n\n\r\n") {
			n, err := conn.Read(buf)
			if err != nil {
				t.Fatal(err)
			}
			got.Write(buf[:n])
		}
		// Stop reading: x0..x4 each join in one window, leave in the next.
		for i := range 5 {
			s := connectIn(t, tr, "x"+string(rune('0'+i)), ``, "r")
			time.Sleep(middleware.DefaultFeedWindow)
			s.Leave(ctx, "r")
			time.Sleep(middleware.DefaultFeedWindow)
		}
		synctest.Wait()
		got.Reset()
		done := make(chan struct{})
		go func() {
			defer close(done)
			for strings.Count(got.String(), "event: snapshot") == 0 || !strings.HasSuffix(got.String(), "\n\n\r\n") {
				n, err := conn.Read(buf)
				if err != nil {
					return
				}
				got.Write(buf[:n])
			}
		}()
		select {
		case <-done:
		case <-time.After(time.Minute):
			t.Fatalf("no fresh snapshot after falling behind; read %q", got.String())
		}
		if s := got.String(); strings.Count(s, "event: diff") > 1 || !strings.Contains(s, `"members":[{"id":"a"`) {
			t.Fatalf("after falling behind: %q, want at most the diff being written, then a snapshot of a alone", s)
		}
	})
}

// A subscriber that asks for a longer window gets at most one message per
// its window, and still every change.
//
// timing: the feed's default Window (250ms) and a subscriber's 1s window,
// against a change every 100ms, on fake time.
func TestFeedSubscriberWindow(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		st, _ := memory.New(memory.Config{})
		tr, err := presence.New(ctx, st, presence.Config{Node: "n1"})
		if err != nil {
			t.Fatal(err)
		}
		f, err := middleware.NewFeed(tr, middleware.FeedConfig{})
		if err != nil {
			t.Fatal(err)
		}
		l := newPipeListener()
		hs := &http.Server{Handler: f}
		go hs.Serve(l)
		hc := &http.Client{Transport: &http.Transport{DialContext: l.dial}}
		reqCtx, cancel := context.WithCancel(ctx)
		done := make(chan struct{})
		t.Cleanup(func() {
			cancel()
			<-done
			hc.CloseIdleConnections()
			f.Close()
			hs.Close()
			tr.Close(ctx)
		})
		connectIn(t, tr, "a", ``, "r")
		req, _ := http.NewRequestWithContext(reqCtx, "GET", "http://pipe/?room=r&window=1000", nil)
		res, err := hc.Do(req)
		if err != nil || res.StatusCode != 200 {
			t.Fatalf("subscribe: %v %v", res, err)
		}
		v := &view{}
		errs := make(chan error, 1)
		go func() { defer close(done); follow(res, v, errs) }()
		synctest.Wait()
		start := time.Now()
		for i := range 50 {
			time.Sleep(100 * time.Millisecond)
			connectIn(t, tr, "x"+strings.Repeat("y", i), `{"i":1}`, "r")
		}
		time.Sleep(2 * time.Second)
		synctest.Wait()
		seconds := int(time.Since(start) / time.Second)
		v.mu.Lock()
		defer v.mu.Unlock()
		if v.snapshots != 1 || v.diffs > seconds+1 || v.diffs < seconds-2 {
			t.Errorf("%d snapshots and %d diffs in %ds, want 1 and at most one a second", v.snapshots, v.diffs, seconds)
		}
		if truth := roomTruth(t, tr, "r"); !reflect.DeepEqual(v.members, truth) || len(truth) != 51 {
			t.Errorf("view of %d members, room of %d", len(v.members), len(truth))
		}
	})
}

// timing: Window values NewFeed must refuse; no stream runs.
func TestNewFeedRefusesConfig(t *testing.T) {
	e := newEnv(t, fastTracker(), fastServer())
	for _, cfg := range []middleware.FeedConfig{
		{Window: -time.Millisecond},
		{Window: middleware.MaxFeedWindow + time.Millisecond},
		{MaxIDs: -1},
		{Buffer: -1},
	} {
		if f, err := middleware.NewFeed(e.tr, cfg); !errors.Is(err, middleware.ErrInvalidConfig) {
			if f != nil {
				f.Close()
			}
			t.Errorf("NewFeed(%+v): %v, want ErrInvalidConfig", cfg, err)
		}
	}
	f, err := middleware.NewFeed(e.tr, middleware.FeedConfig{CountOnlyAbove: -1})
	if err != nil {
		t.Fatalf("CountOnlyAbove -1 (never counts only): %v", err)
	}
	f.Close()
}

// awayStore is store/memory with the states of one-session clients, enough
// to send Away and Back through a Tracker (store/memory on this branch
// keeps none; storetest checks the real ones).
type awayStore struct {
	*memory.Store
	mu   sync.Mutex
	away map[string]time.Time // client: when it went away
	seq  uint64
}

func (s *awayStore) SetActivity(ctx context.Context, a presence.SessionActivity) ([]presence.Event, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, was := s.away[a.ClientID]
	now := time.Now()
	s.seq++
	ev := presence.Event{ClientID: a.ClientID, SessionID: a.SessionID, Time: now, Seq: 1<<60 + s.seq}
	switch {
	case a.Activity == presence.ActivityAway && !was:
		s.away[a.ClientID] = now.Add(-a.IdleFor)
		ev.Transition = presence.Away
	case a.Activity != presence.ActivityAway && was:
		delete(s.away, a.ClientID)
		ev.Transition = presence.Back
	default:
		return nil, nil
	}
	return []presence.Event{ev}, nil
}

func (s *awayStore) state(id string, online bool) (presence.State, time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if t, ok := s.away[id]; ok && online {
		return presence.StateAway, t
	}
	return "", time.Time{}
}

func (s *awayStore) Lookup(ctx context.Context, ids []string) ([]presence.Presence, error) {
	ps, err := s.Store.Lookup(ctx, ids)
	for i := range ps {
		if st, la := s.state(ps[i].ClientID, ps[i].Online); st != "" {
			ps[i].State, ps[i].LastActive = st, la
		}
	}
	return ps, err
}

func (s *awayStore) MembersAmong(ctx context.Context, room string, ids []string) ([]presence.Member, error) {
	ms, err := s.Store.MembersAmong(ctx, room, ids)
	for i := range ms {
		if st, la := s.state(ms[i].ClientID, ms[i].In); st != "" {
			ms[i].State, ms[i].LastActive = st, la
		}
	}
	return ms, err
}

// Away and back reach a room's feed (which learns them from its members,
// as Away and Back name no room) and a friends list.
//
// timing: a 20ms feed Window, as TestFeedRoomDiffs.
func TestFeedAwayAndBack(t *testing.T) {
	mem, _ := memory.New(memory.Config{})
	st := &awayStore{Store: mem, away: make(map[string]time.Time)}
	tr, err := presence.New(context.Background(), st, presence.Config{Node: "n1"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Close(context.Background()) })
	f, err := middleware.NewFeed(tr, middleware.FeedConfig{Window: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	ts := startHTTP(t, f)
	alice := connectIn(t, tr, "alice", `{"name":"Ada"}`, "general")
	connectIn(t, tr, "bob", ``, "other")
	room, _ := readSSE(t, ts.URL+"?room=general")
	nextSSE(t, room, "snapshot")
	friends, _ := readSSE(t, ts.URL+"?ids=alice")
	nextSSE(t, friends, "snapshot")
	if err := alice.SetActivity(context.Background(), presence.ActivityAway, time.Minute); err != nil {
		t.Fatal(err)
	}
	for _, ch := range []<-chan sseEvent{room, friends} {
		d := nextSSE(t, ch, "diff")
		if m := d["set"].([]any)[0].(map[string]any); m["id"] != "alice" || m["state"] != "away" || m["last_active"] == nil {
			t.Fatalf("diff %v, want alice away with her last active time", d)
		}
	}
	if err := alice.SetActivity(context.Background(), presence.ActivityActive, 0); err != nil {
		t.Fatal(err)
	}
	for _, ch := range []<-chan sseEvent{room, friends} {
		if m := nextSSE(t, ch, "diff")["set"].([]any)[0].(map[string]any); m["id"] != "alice" || m["state"] != "online" {
			t.Fatalf("diff %v, want alice back online", m)
		}
	}
}

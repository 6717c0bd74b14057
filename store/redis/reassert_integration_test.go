//go:build integration

package redis_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/vigilhq/vigil/internal/redistest"
	"github.com/vigilhq/vigil/presence"
	redisstore "github.com/vigilhq/vigil/store/redis"
)

// TestDataLossExactlyOnce restarts Redis empty while two nodes hold
// sessions, and checks every client's transitions stay exactly once:
//   - alice, online on a, connects on b right after the restart, before a
//     beat would have re-asserted her session: no second Online;
//   - bob's session on a ended just before the restart and lingers in its
//     grace: exactly one Offline, once the grace is over;
//   - carol, offline before, connects on b in the window: one Online, late;
//   - erin, online on a, leaves in the window: exactly one Offline;
//   - frank connects twice on b in the window and stays: one Online,
//     naming one of his sessions.
//
// Nobody beats: the TTL outlasts the test, so only the re-assertion that
// follows the new generation can tell b's Redis about a's sessions.
func TestDataLossExactlyOnce(t *testing.T) {
	srv := redistest.StartServer(t)
	rec := &events{}
	// A long TTL (no beat is needed), a grace that outlasts the restart.
	tm := timing{ttl: 20 * time.Second, grace: 1500 * time.Millisecond, sweep: 200 * time.Millisecond}
	const window = time.Second
	mk := func(node string) *presence.Tracker {
		st := redistest.Store(t, client(t, srv), redisstore.Config{Prefix: "loss", Reassert: window})
		return startTracker(t, st, node, tm, rec)
	}
	a, b := mk("a"), mk("b")
	ctx := context.Background()
	connect(t, a, "alice")
	bob := connect(t, a, "bob")
	carol := connect(t, b, "carol")
	erin := connect(t, a, "erin")
	waitUntil(t, 2*time.Second, "everyone online", func() bool {
		for _, id := range []string{"alice", "bob", "carol", "erin"} {
			if len(rec.of(id)) != 1 {
				return false
			}
		}
		return true
	})
	if err := carol.End(ctx, presence.ReasonClosed); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, tm.grace+time.Second, "carol offline", func() bool { return len(rec.of("carol")) == 2 })
	time.Sleep(3 * tm.sweep) // both nodes have swept: they know every bucket's generation

	if err := bob.End(ctx, presence.ReasonClosed); err != nil {
		t.Fatal(err)
	}
	srv.Kill()
	srv.Start() // empty
	restarted := time.Now()
	again := func(tr *presence.Tracker, id string) *presence.Session {
		for {
			s, err := tr.Connect(ctx, id, presence.SessionOptions{})
			if err == nil {
				return s
			}
			if time.Since(restarted) > 5*time.Second {
				t.Fatalf("connect %s after the restart: %v", id, err)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	again(b, "alice")
	carolAt := time.Now()
	again(b, "carol")
	again(b, "frank")
	again(b, "frank")
	time.Sleep(2 * tm.sweep) // a has re-asserted erin: her end is held
	if err := erin.End(ctx, presence.ReasonClosed); err != nil {
		t.Fatal(err)
	}

	waitUntil(t, window+tm.grace+time.Second, "carol online again, bob and erin offline", func() bool {
		return len(rec.of("carol")) == 3 && len(rec.of("bob")) == 2 && len(rec.of("erin")) == 2
	})
	var carolLate time.Duration
	rec.mu.Lock()
	for _, ev := range rec.all {
		if ev.ClientID == "carol" && ev.Transition == presence.Online && ev.Time.After(restarted) {
			carolLate = ev.Time.Sub(carolAt)
		}
	}
	rec.mu.Unlock()
	time.Sleep(window + 3*tm.sweep) // let anything doubled show
	want := map[string][]string{
		"alice": {"online/connect"},
		"bob":   {"online/connect", "offline/closed"},
		"carol": {"online/connect", "offline/closed", "online/connect"},
		"erin":  {"online/connect", "offline/closed"},
		"frank": {"online/connect"},
	}
	for id, w := range want {
		if got := rec.of(id); !slices.Equal(got, w) {
			t.Errorf("%s: events %v, want %v", id, got, w)
		}
		if s := rec.seqs(id); !slices.IsSorted(s) {
			t.Errorf("%s: seqs %v not increasing", id, s)
		}
	}
	rec.mu.Lock()
	for _, ev := range rec.all {
		if ev.ClientID == "frank" && ev.SessionID == "" {
			t.Errorf("frank's %v names no session", ev.Transition)
		}
	}
	rec.mu.Unlock()
	if n, err := a.Count(ctx); err != nil || n != 3 {
		t.Errorf("Count = %d, %v; want 3 (alice, carol, frank)", n, err)
	}
	t.Logf("carol's Online, decided in the window (%v), came %v after her connect", window, carolLate)
}

// TestDataLossOwedOffline pins how the window tells an ending session
// that still owes its Offline from one whose Offline was decided: node a
// ended hana's session (it lingers in a's memory), node b's Sweep decided
// her Offline, then Redis lost everything. hana connects on b in the
// window: one Online at its end, as for any client that was offline. ivan
// ended on a too, but Redis lost his session before any Sweep: his
// Offline is owed, and comes at the window's end. jack is hana on one
// node: a ended his session, b decided his Offline, and after the loss he
// comes back on a, whose memory of his ending session must not count as
// a live one.
func TestDataLossOwedOffline(t *testing.T) {
	ctx := context.Background()
	rdb := redistest.Standalone(t)
	const window = 500 * time.Millisecond
	cfg := redisstore.Config{Prefix: "owed", Reassert: window}
	a := redistest.Store(t, rdb, cfg)
	b := redistest.Store(t, rdb, cfg)
	lease := func(id string) presence.Lease {
		return presence.Lease{ClientID: id, SessionID: "s", Node: "a", TTL: 10 * time.Second}
	}
	var evs []presence.Event
	do := func(got []presence.Event, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		evs = append(evs, got...)
	}
	for _, st := range []*redisstore.Store{a, b} {
		do(st.Sweep(ctx)) // both know every bucket's generation
	}
	do(a.Add(ctx, lease("hana")))
	do(a.Add(ctx, lease("ivan")))
	do(a.Add(ctx, lease("jack")))
	do(a.End(ctx, presence.Ending{ClientID: "hana", SessionID: "s", Grace: 50 * time.Millisecond}))
	do(a.End(ctx, presence.Ending{ClientID: "jack", SessionID: "s", Grace: 50 * time.Millisecond}))
	time.Sleep(100 * time.Millisecond)
	do(b.Sweep(ctx)) // hana's Offline, decided by b; a still holds her session as ending
	do(a.End(ctx, presence.Ending{ClientID: "ivan", SessionID: "s", Grace: time.Hour}))
	if err := rdb.FlushAll(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	do(a.Sweep(ctx)) // opens the window; re-asserts hana's and ivan's ending sessions
	do(b.Sweep(ctx)) // re-asserts hana's Offline
	do(b.Add(ctx, presence.Lease{ClientID: "hana", SessionID: "t", Node: "b", TTL: 10 * time.Second}))
	do(a.Add(ctx, presence.Lease{ClientID: "jack", SessionID: "t", Node: "a", TTL: 10 * time.Second}))
	do(a.End(ctx, presence.Ending{ClientID: "ivan", SessionID: "s"})) // ivan's session ends for good in the window
	time.Sleep(window + 100*time.Millisecond)
	do(a.Sweep(ctx))
	do(b.Sweep(ctx))
	got := map[string][]string{}
	for _, ev := range evs {
		got[ev.ClientID] = append(got[ev.ClientID], ev.Transition.String())
	}
	want := map[string][]string{
		"hana": {"online", "offline", "online"},
		"ivan": {"online", "offline"},
		"jack": {"online", "offline", "online"},
	}
	for id, w := range want {
		if !slices.Equal(got[id], w) {
			t.Errorf("%s: transitions %v, want %v", id, got[id], w)
		}
	}
}

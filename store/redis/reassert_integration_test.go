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
//   - frank connects on b in the window and stays: one Online.
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
	if n, err := a.Count(ctx); err != nil || n != 3 {
		t.Errorf("Count = %d, %v; want 3 (alice, carol, frank)", n, err)
	}
	t.Logf("carol's Online, decided in the window (%v), came %v after her connect", window, carolLate)
}

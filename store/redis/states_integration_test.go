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

// TestDataLossAwayBack restarts Redis empty while two Stores (nodes a and
// b) hold sessions with their activity, and checks that Away and Back stay
// exactly once, decided after the re-assertion window against the state
// the nodes held before:
//   - gus, away before, does nothing: no second Away, no Back, and he is
//     still away;
//   - hana, away before, becomes active in the window: one Back, late;
//   - ivy, active before, goes away in the window: one Away, late;
//   - jon, active on a and away on b, loses his active session in the
//     window: one Away, late, with the session's reason;
//   - kim connects away on b in the window: Online then Away, late;
//   - ned, active through a session ending in its grace on a and away on
//     b, loses the ending session in the window (its grace ran out while
//     nobody swept: a's re-assertion removes it before b re-asserts his
//     away one, so the window sees him offline, then online): one Away,
//     late, with no reason, and no Offline or Online;
//   - lou connects away on c, new to Redis, before the window opens
//     (Online and Away at once) and comes back in it: one Back, late.
func TestDataLossAwayBack(t *testing.T) {
	ctx := context.Background()
	srv := redistest.StartServer(t)
	const window = 500 * time.Millisecond
	cfg := redisstore.Config{Prefix: "awayloss", Reassert: window}
	a := redistest.Store(t, client(t, srv), cfg)
	b := redistest.Store(t, client(t, srv), cfg)
	lease := func(id, sid, node string, act presence.Activity) presence.Lease {
		return presence.Lease{ClientID: id, SessionID: sid, Node: node, TTL: 20 * time.Second, Activity: act}
	}
	var before, after []presence.Event
	evs := &before
	do := func(got []presence.Event, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		*evs = append(*evs, got...)
	}
	// retry runs f until Redis, restarting, answers.
	retry := func(what string, f func() ([]presence.Event, error)) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for {
			got, err := f()
			if err == nil {
				*evs = append(*evs, got...)
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s after the restart: %v", what, err)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	setActivity := func(st *redisstore.Store, id string, act presence.Activity) {
		t.Helper()
		retry("set activity of "+id, func() ([]presence.Event, error) {
			return st.SetActivity(ctx, presence.SessionActivity{ClientID: id, SessionID: "s", Activity: act})
		})
	}
	for _, st := range []*redisstore.Store{a, b} {
		do(st.Sweep(ctx)) // both know every bucket's generation
	}
	do(a.Add(ctx, presence.Lease{ClientID: "gus", SessionID: "s", Node: "a", TTL: 20 * time.Second,
		Activity: presence.ActivityAway, IdleFor: time.Second}))
	do(a.Add(ctx, lease("hana", "s", "a", "")))
	do(a.SetActivity(ctx, presence.SessionActivity{ClientID: "hana", SessionID: "s", Activity: presence.ActivityAway}))
	do(a.Add(ctx, lease("ivy", "s", "a", "")))
	do(a.Add(ctx, lease("jon", "s", "a", "")))
	do(b.Add(ctx, lease("jon", "t", "b", presence.ActivityAway)))
	gusActive := time.Now().Add(-time.Second)
	// ned: active on a, ending there in its grace, and away on b.
	do(a.Add(ctx, lease("ned", "s", "a", "")))
	do(b.Add(ctx, lease("ned", "t", "b", presence.ActivityAway)))
	do(a.End(ctx, presence.Ending{ClientID: "ned", SessionID: "s", Reason: presence.ReasonClosed, Grace: 300 * time.Millisecond}))

	// A client record re-created from nothing starts its Seq from Redis's
	// clock in seconds (see "Sequence numbers" in the package
	// documentation): a restart within the second the records were made
	// would repeat Seqs, which no real restart is quick enough to do.
	time.Sleep(time.Second)
	srv.Kill()
	srv.Start() // empty
	// lou connects away on a node new to Redis, before any node that knew
	// the lost data calls: no window yet, so his Online and Away come at
	// once.
	c := redistest.Store(t, client(t, srv), cfg)
	evs = &before
	retry("add lou", func() ([]presence.Event, error) { return c.Add(ctx, lease("lou", "s", "c", presence.ActivityAway)) })
	evs = &after
	retry("sweep a", func() ([]presence.Event, error) { return a.Sweep(ctx) }) // opens the window, re-asserts a's sessions
	retry("sweep b", func() ([]presence.Event, error) { return b.Sweep(ctx) })
	setActivity(a, "hana", presence.ActivityActive)
	setActivity(a, "ivy", presence.ActivityAway)
	do(a.End(ctx, presence.Ending{ClientID: "jon", SessionID: "s", Reason: presence.ReasonClosed}))
	do(b.Add(ctx, lease("kim", "s", "b", presence.ActivityAway)))
	setActivity(c, "lou", presence.ActivityActive)
	if len(after) != 0 {
		t.Fatalf("transitions inside the window: %v", after)
	}
	time.Sleep(window + 100*time.Millisecond)
	do(a.Sweep(ctx))
	do(b.Sweep(ctx))
	do(a.Sweep(ctx))

	got := map[string][]string{}
	seqs := map[string][]uint64{}
	for _, ev := range append(slices.Clone(before), after...) {
		got[ev.ClientID] = append(got[ev.ClientID], ev.Transition.String()+"/"+string(ev.Reason))
		seqs[ev.ClientID] = append(seqs[ev.ClientID], ev.Seq)
	}
	want := map[string][]string{
		"gus":  {"online/connect", "away/connect"},
		"hana": {"online/connect", "away/", "back/"},
		"ivy":  {"online/connect", "away/"},
		"jon":  {"online/connect", "away/closed"},
		"kim":  {"online/connect", "away/connect"},
		"lou":  {"online/connect", "away/connect", "back/"},
		"ned":  {"online/connect", "away/"},
	}
	for id, w := range want {
		if !slices.Equal(got[id], w) {
			t.Errorf("%s: transitions %v, want %v", id, got[id], w)
		}
		if !slices.IsSorted(seqs[id]) || len(slices.Compact(slices.Clone(seqs[id]))) != len(seqs[id]) {
			t.Errorf("%s: seqs %v not increasing", id, seqs[id])
		}
	}
	ids := []string{"gus", "hana", "ivy", "jon", "kim", "ned"}
	ps, err := b.Lookup(ctx, ids)
	if err != nil {
		t.Fatal(err)
	}
	wantState := []presence.State{presence.StateAway, presence.StateOnline, presence.StateAway, presence.StateAway, presence.StateAway, presence.StateAway}
	for i, p := range ps {
		if p.State != wantState[i] {
			t.Errorf("Lookup(%s).State = %q, want %q", ids[i], p.State, wantState[i])
		}
	}
	// gus's last active time came back with his session, give or take
	// the milliseconds between his Add and gusActive.
	if d := ps[0].LastActive.Sub(gusActive); d < -100*time.Millisecond || d > 100*time.Millisecond {
		t.Errorf("gus's LastActive is %v from when he was last active", d)
	}
}

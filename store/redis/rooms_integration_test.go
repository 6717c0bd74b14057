//go:build integration

package redis_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/vigilhq/vigil/internal/redistest"
	"github.com/vigilhq/vigil/presence"
	redisstore "github.com/vigilhq/vigil/store/redis"
)

// kinds renders events as "transition:room@seq" strings, in order, with
// the Seqs relative to the first one.
func kinds(evs []presence.Event, base uint64) []string {
	var out []string
	for _, ev := range evs {
		s := ev.Transition.String()
		if ev.Room != "" {
			s += ":" + ev.Room
		}
		out = append(out, fmt.Sprintf("%s@%d", s, ev.Seq-base))
	}
	return out
}

func must[T any](t *testing.T) func(T, error) T {
	t.Helper()
	return func(v T, err error) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}

// TestRoomsLifecycle checks, on a single server and a Cluster, that Join,
// Leave, SetMeta, Add with rooms and a session's removal decide their
// events in the client's one Seq: Online, Joins, Updates, Leaves, Offline.
func TestRoomsLifecycle(t *testing.T) {
	for _, srv := range redistest.Servers {
		t.Run(srv.Name, func(t *testing.T) {
			ctx := context.Background()
			st := redistest.Store(t, srv.Client(t), redisstore.Config{})
			evs := must[[]presence.Event](t)
			meta := json.RawMessage(`{"name":"Alice"}`)
			l := presence.Lease{ClientID: "alice", SessionID: "s1", Node: "a", TTL: time.Minute,
				Rooms: []string{"general", "random"}, Meta: meta}
			got := evs(st.Add(ctx, l))
			base := got[0].Seq
			if d := slices.Compare(kinds(got, base), []string{"online@0", "join:general@1", "join:random@2"}); d != 0 {
				t.Fatalf("add: %v", kinds(got, base))
			}
			if string(got[1].Meta) != string(meta) {
				t.Errorf("join meta %s", got[1].Meta)
			}
			// A second session in general: no event; joins game.
			got = evs(st.Add(ctx, presence.Lease{ClientID: "alice", SessionID: "s2", Node: "b", TTL: time.Minute, Rooms: []string{"general"}}))
			if len(got) != 0 {
				t.Fatalf("second session: %v", kinds(got, base))
			}
			got = evs(st.Join(ctx, presence.Membership{ClientID: "alice", SessionID: "s2", Room: "game"}))
			if d := slices.Compare(kinds(got, base), []string{"join:game@3"}); d != 0 {
				t.Fatalf("join: %v", kinds(got, base))
			}
			if got := evs(st.Join(ctx, presence.Membership{ClientID: "alice", SessionID: "s2", Room: "game"})); len(got) != 0 {
				t.Fatalf("join again: %v", kinds(got, base))
			}
			got = evs(st.SetMeta(ctx, presence.SessionMeta{ClientID: "alice", SessionID: "s2", Meta: json.RawMessage(`"phone"`)}))
			if d := slices.Compare(kinds(got, base), []string{"update:game@4", "update:general@5"}); d != 0 {
				t.Fatalf("set meta: %v", kinds(got, base))
			}
			if got := evs(st.SetMeta(ctx, presence.SessionMeta{ClientID: "alice", SessionID: "s2", Meta: json.RawMessage(`"phone"`)})); len(got) != 0 {
				t.Fatalf("same meta: %v", kinds(got, base))
			}
			if n := must[int](t)(st.RoomCount(ctx, "general")); n != 1 {
				t.Errorf("count %d", n)
			}
			ms := must[[]presence.Member](t)(st.MembersAmong(ctx, "general", []string{"alice", "bob"}))
			if !ms[0].In || ms[0].Sessions != 2 || len(ms[0].Metas) != 2 || string(ms[0].Meta()) != `"phone"` || ms[1].In {
				t.Errorf("among: %+v", ms)
			}
			rooms := must[[]string](t)(st.ClientRooms(ctx, "alice"))
			if !slices.Equal(rooms, []string{"game", "general", "random"}) {
				t.Errorf("rooms %v", rooms)
			}
			// Leave of a room the session is not in.
			if _, err := st.Leave(ctx, presence.Membership{ClientID: "alice", SessionID: "s2", Room: "random"}); !errors.Is(err, presence.ErrNotFound) {
				t.Errorf("leave not in: %v", err)
			}
			got = evs(st.Leave(ctx, presence.Membership{ClientID: "alice", SessionID: "s2", Room: "game"}))
			if d := slices.Compare(kinds(got, base), []string{"leave:game@6"}); d != 0 || got[0].Reason != presence.ReasonLeft {
				t.Fatalf("leave: %v %v", kinds(got, base), got)
			}
			// Ending s2 with grace: nothing; s1 without: leaves random, not
			// general (s2 still in it through its grace).
			evs(st.End(ctx, presence.Ending{ClientID: "alice", SessionID: "s2", Grace: 300 * time.Millisecond}))
			got = evs(st.End(ctx, presence.Ending{ClientID: "alice", SessionID: "s1", Reason: presence.ReasonKicked}))
			if d := slices.Compare(kinds(got, base), []string{"leave:random@7"}); d != 0 || got[0].Reason != presence.ReasonKicked {
				t.Fatalf("end s1: %v", kinds(got, base))
			}
			ms = must[[]presence.Member](t)(st.MembersAmong(ctx, "random", []string{"alice"}))
			if ms[0].In || ms[0].LastSeen.IsZero() {
				t.Errorf("among after leaving: %+v", ms)
			}
			deadline := time.Now().Add(3 * time.Second)
			var swept []presence.Event
			for len(swept) == 0 && time.Now().Before(deadline) {
				swept = append(swept, evs(st.Sweep(ctx))...)
				time.Sleep(50 * time.Millisecond)
			}
			if d := slices.Compare(kinds(swept, base), []string{"leave:general@8", "offline@9"}); d != 0 || swept[0].Reason != presence.ReasonClosed {
				t.Fatalf("sweep: %v", kinds(swept, base))
			}
			if n := must[int](t)(st.RoomCount(ctx, "general")); n != 0 {
				t.Errorf("count after %d", n)
			}
		})
	}
}

// TestRoomsJournal checks that room events are journaled with their room
// and metadata: Read sees them, and an event never acknowledged is
// reclaimed by a Sweep once ReclaimAfter is over.
func TestRoomsJournal(t *testing.T) {
	ctx := context.Background()
	rdb := redistest.Standalone(t)
	cfg := redisstore.Config{ReclaimAfter: 200 * time.Millisecond}
	st := redistest.Store(t, rdb, cfg)
	cfg.Prefix = st.Config().Prefix
	other := redistest.Store(t, rdb, cfg)
	_, cursor, err := other.Read(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	evs := must[[]presence.Event](t)
	added := evs(st.Add(ctx, presence.Lease{ClientID: "bob", SessionID: "s", Node: "a", TTL: time.Minute}))
	joined := evs(st.Join(ctx, presence.Membership{ClientID: "bob", SessionID: "s", Room: "lobby"}))
	updated := evs(st.SetMeta(ctx, presence.SessionMeta{ClientID: "bob", SessionID: "s", Meta: json.RawMessage(`{"a":1}`)}))
	if err := st.Ack(ctx, added); err != nil {
		t.Fatal(err)
	}
	read, _, err := other.Read(ctx, cursor)
	if err != nil {
		t.Fatal(err)
	}
	want := append(append(added, joined...), updated...)
	if len(read) != len(want) {
		t.Fatalf("read %v, want %v", read, want)
	}
	for i := range want {
		r, w := read[i], want[i]
		if r.ID() != w.ID() || r.Transition != w.Transition || r.Room != w.Room || string(r.Meta) != string(w.Meta) || r.SessionID != w.SessionID {
			t.Errorf("read %d: %+v, want %+v", i, r, w)
		}
	}
	// joined and updated were never acknowledged: other reclaims them.
	var got []presence.Event
	deadline := time.Now().Add(5 * time.Second)
	for len(got) < 2 && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
		if _, err := other.Sweep(ctx); err != nil {
			t.Fatal(err)
		}
		more, _ := other.Reclaim(ctx)
		got = append(got, more...)
	}
	if len(got) != 2 || got[0].ID() != joined[0].ID() || got[0].Room != "lobby" || got[1].Transition != presence.Update || string(got[1].Meta) != `{"a":1}` {
		t.Fatalf("reclaimed %+v", got)
	}
}

// TestRoomsDataLoss empties Redis while two Stores (nodes a and b) hold
// sessions in rooms, and checks that every room transition stays exactly
// once through the re-assertion window:
//   - alice (in general and random on a) connects on b in the window, in
//     general: no second Online or Join; she leaves random on a in the
//     window: one Leave;
//   - bob's session on a ended just before the loss and lingers in its
//     grace, in general: one Leave, then one Offline, once it is over;
//   - erin leaves general on a right after the loss, before any Sweep
//     re-asserted her session: one Leave;
//   - dave, new, connects on b in the window, in general: one Online and
//     one Join, late;
//   - carol (general, on b) stays: nothing.
//
// Then general's members are alice, carol, dave and erin's still online:
// no ghost.
func TestRoomsDataLoss(t *testing.T) {
	for _, srv := range redistest.Servers {
		t.Run(srv.Name, func(t *testing.T) { testRoomsDataLoss(t, srv.Client(t)) })
	}
}

func testRoomsDataLoss(t *testing.T, rdb goredis.UniversalClient) {
	ctx := context.Background()
	const window = 500 * time.Millisecond
	cfg := redisstore.Config{Reassert: window}
	a := redistest.Store(t, rdb, cfg)
	cfg.Prefix = a.Config().Prefix
	b := redistest.Store(t, rdb, cfg)
	lease := func(id, sid, node string, rooms ...string) presence.Lease {
		return presence.Lease{ClientID: id, SessionID: sid, Node: node, TTL: 10 * time.Second, Rooms: rooms,
			Meta: json.RawMessage(`{"n":"` + id + `"}`)}
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
	do(a.Add(ctx, lease("alice", "s", "a", "general", "random")))
	do(a.Add(ctx, lease("bob", "s", "a", "general")))
	do(a.Add(ctx, lease("erin", "s", "a", "general")))
	do(b.Add(ctx, lease("carol", "s", "b", "general")))
	// Records re-created after the loss start their Seq from Redis's
	// clock in seconds (see "Sequence numbers" in the package
	// documentation): lost in the second they were made, they would
	// repeat the Seqs of that second.
	time.Sleep(time.Second)
	do(a.End(ctx, presence.Ending{ClientID: "bob", SessionID: "s", Grace: 2 * window}))
	before := len(evs)
	// Redis loses the namespace's data (every key of it, as a restart
	// without persistence would; other tests' keys are left alone).
	if err := redistest.ForEachServer(ctx, rdb, func(ctx context.Context, c *goredis.Client) error {
		keys, err := redistest.Keys(ctx, c, a.Config().Prefix)
		for _, k := range keys {
			if err == nil {
				err = c.Del(ctx, k).Err()
			}
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	do(a.Leave(ctx, presence.Membership{ClientID: "erin", SessionID: "s", Room: "general"}))
	do(b.Add(ctx, lease("alice", "t", "b", "general")))
	do(a.Sweep(ctx)) // re-asserts alice, erin and bob (ending), with their rooms
	do(b.Sweep(ctx)) // re-asserts carol
	do(a.Leave(ctx, presence.Membership{ClientID: "alice", SessionID: "s", Room: "random"}))
	do(b.Add(ctx, lease("dave", "s", "b", "general")))
	time.Sleep(window + 100*time.Millisecond)
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		do(a.Sweep(ctx))
		do(b.Sweep(ctx))
		if n, _ := a.RoomCount(ctx, "general"); n == 3 {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	do(a.Sweep(ctx))
	got := map[string][]string{}
	seqs := map[string][]uint64{}
	for i, ev := range evs {
		seqs[ev.ClientID] = append(seqs[ev.ClientID], ev.Seq)
		if i < before {
			continue
		}
		s := ev.Transition.String()
		if ev.Room != "" {
			s += ":" + ev.Room
		}
		got[ev.ClientID] = append(got[ev.ClientID], s)
	}
	want := map[string][]string{
		"alice": {"leave:random"},
		"bob":   {"leave:general", "offline"},
		"erin":  {"leave:general"},
		"dave":  {"online", "join:general"},
	}
	for _, id := range []string{"alice", "bob", "carol", "dave", "erin"} {
		if !slices.Equal(got[id], want[id]) {
			t.Errorf("%s: transitions after the loss %v, want %v", id, got[id], want[id])
		}
		if !slices.IsSorted(seqs[id]) || len(slices.Compact(slices.Clone(seqs[id]))) != len(seqs[id]) {
			t.Errorf("%s: seqs %v", id, seqs[id])
		}
	}
	page, err := b.Members(ctx, "general", "", 10)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, m := range page.Members {
		ids = append(ids, m.ClientID)
		if len(m.Metas) == 0 {
			t.Errorf("%s: no metadata after the loss", m.ClientID)
		}
	}
	slices.Sort(ids)
	if !slices.Equal(ids, []string{"alice", "carol", "dave"}) {
		t.Errorf("general's members %v, want alice, carol, dave", ids)
	}
	rooms, err := a.ClientRooms(ctx, "alice")
	if err != nil || !slices.Equal(rooms, []string{"general"}) {
		t.Errorf("alice's rooms %v, %v", rooms, err)
	}
}

// TestRoomsRestartEmpty restarts Redis empty under two Trackers whose
// sessions are in rooms, and checks the room hooks end to end: no second
// Join for anyone who stayed (alice, on a, comes back on b in the window
// too), one Leave for the room a client left during the window (carol, on
// b), one Leave and one Offline for a session lingering in its grace when
// Redis lost it (bob), and the room's members after it all: no ghost.
func TestRoomsRestartEmpty(t *testing.T) {
	srv := redistest.StartServer(t)
	rec := &events{}
	tm := timing{ttl: 20 * time.Second, grace: 1500 * time.Millisecond, sweep: 200 * time.Millisecond}
	const window = time.Second
	mk := func(node string) *presence.Tracker {
		st := redistest.Store(t, client(t, srv), redisstore.Config{Prefix: "roomloss", Reassert: window})
		tr := startTracker(t, st, node, tm, rec)
		tr.OnJoin("", rec.hook)
		tr.OnLeave("", rec.hook)
		tr.OnUpdate("", rec.hook)
		return tr
	}
	a, b := mk("a"), mk("b")
	ctx := context.Background()
	join := func(tr *presence.Tracker, id string, rooms ...string) *presence.Session {
		t.Helper()
		s, err := tr.Connect(ctx, id, presence.SessionOptions{Rooms: rooms, Meta: json.RawMessage(`{"n":"` + id + `"}`)})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	join(a, "alice", "general")
	bob := join(a, "bob", "general")
	carol := join(b, "carol", "general", "random")
	waitUntil(t, 2*time.Second, "everyone in", func() bool {
		return len(rec.of("alice")) == 2 && len(rec.of("bob")) == 2 && len(rec.of("carol")) == 3
	})
	// Records re-created after the loss start their Seq from Redis's clock
	// in seconds: lost in the second they were made, they would repeat it.
	time.Sleep(time.Second)
	if err := bob.End(ctx, presence.ReasonClosed); err != nil {
		t.Fatal(err)
	}
	srv.Kill()
	srv.Start() // empty
	restarted := time.Now()
	for {
		_, err := b.Connect(ctx, "alice", presence.SessionOptions{Rooms: []string{"general"}})
		if err == nil {
			break
		}
		if time.Since(restarted) > 5*time.Second {
			t.Fatalf("connect alice after the restart: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(2 * tm.sweep) // b has re-asserted carol
	if err := carol.Leave(ctx, "random"); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, window+tm.grace+2*time.Second, "bob offline, carol out of random", func() bool {
		return len(rec.of("bob")) == 4 && len(rec.of("carol")) == 4
	})
	time.Sleep(window + 3*tm.sweep) // let anything doubled show
	want := map[string][]string{
		"alice": {"online/connect", "join/connect"},
		"bob":   {"online/connect", "join/connect", "leave/closed", "offline/closed"},
		"carol": {"online/connect", "join/connect", "join/connect", "leave/left"},
	}
	for id, w := range want {
		if got := rec.of(id); !slices.Equal(got, w) {
			t.Errorf("%s: events %v, want %v", id, got, w)
		}
		if s := rec.seqs(id); !slices.IsSorted(s) || len(slices.Compact(slices.Clone(s))) != len(s) {
			t.Errorf("%s: seqs %v", id, s)
		}
	}
	page, err := a.Members(ctx, "general", "", 10)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, m := range page.Members {
		ids = append(ids, m.ClientID)
	}
	slices.Sort(ids)
	if !slices.Equal(ids, []string{"alice", "carol"}) {
		t.Errorf("general's members %v, want alice and carol", ids)
	}
	if n, err := b.RoomCount(ctx, "random"); err != nil || n != 0 {
		t.Errorf("random's count %d, %v; want 0", n, err)
	}
}

// TestRoomsDataLossEndClient: after Redis lost its data, a beat (Touch)
// re-creates a session without its rooms (Touch reads none); ending all of
// its client's sessions then still gives the room's Leave, before the
// Offline, once the window is over.
func TestRoomsDataLossEndClient(t *testing.T) {
	ctx := context.Background()
	rdb := redistest.Standalone(t)
	const window = 300 * time.Millisecond
	st := redistest.Store(t, rdb, redisstore.Config{Reassert: window})
	if _, err := st.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	l := presence.Lease{ClientID: "gus", SessionID: "s", Node: "a", TTL: 10 * time.Second, Rooms: []string{"general"}}
	if _, err := st.Add(ctx, l); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second) // a new second for the re-created record's Seq
	keys, err := redistest.Keys(ctx, rdb, st.Config().Prefix)
	if err != nil || rdb.Del(ctx, keys...).Err() != nil {
		t.Fatal(err)
	}
	l.Rooms = nil
	if gone, err := st.Touch(ctx, []presence.Lease{l}); err != nil || len(gone) != 0 {
		t.Fatalf("touch after the loss: %v, %v", gone, err)
	}
	var evs []presence.Event
	got, err := st.End(ctx, presence.Ending{ClientID: "gus"})
	if err != nil {
		t.Fatal(err)
	}
	evs = append(evs, got...)
	time.Sleep(window + 50*time.Millisecond)
	got, err = st.Sweep(ctx)
	if err != nil {
		t.Fatal(err)
	}
	evs = append(evs, got...)
	var kinds []string
	for _, ev := range evs {
		kinds = append(kinds, ev.Transition.String()+":"+ev.Room)
	}
	if !slices.Equal(kinds, []string{"leave:general", "offline:"}) {
		t.Errorf("transitions %v, want the Leave of general then the Offline", kinds)
	}
}

// TestRoomsDataLossLeaveRemembered pins how the window tells an ending
// session's room whose Leave was decided from one whose Leave is owed
// (faults TestDataLossAlternation found it): kim is in r1 and r2 through
// session s1 on b and in r2 through s2 on b; b ends s1 with a grace, and
// a's Sweep removes it when the grace is over, deciding kim's Leave of r1
// (no Offline: s2 keeps her online). Then Redis loses everything while b
// still holds s1 as ending, and re-asserts it with its rooms. kim joins
// r1 again on a in the window: she was not in r1 before (she had left),
// so the window's end owes her a Join of r1, which a's memory of the
// Leave it decided tells. lea is kim without the Leave remembered: her s1
// ends on b and Redis loses it before any Sweep, so her Leave of r1 is
// owed and comes at the window's end, as her Offline would.
func TestRoomsDataLossLeaveRemembered(t *testing.T) {
	ctx := context.Background()
	rdb := redistest.Standalone(t)
	const window = 500 * time.Millisecond
	cfg := redisstore.Config{Prefix: "left", Reassert: window}
	a := redistest.Store(t, rdb, cfg)
	b := redistest.Store(t, rdb, cfg)
	var evs []presence.Event
	do := func(got []presence.Event, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		evs = append(evs, got...)
	}
	lease := func(id, sid, node string, rooms ...string) presence.Lease {
		return presence.Lease{ClientID: id, SessionID: sid, Node: node, TTL: 10 * time.Second, Rooms: rooms}
	}
	for _, st := range []*redisstore.Store{a, b} {
		do(st.Sweep(ctx)) // both know every bucket's generation
	}
	for _, id := range []string{"kim", "lea"} {
		do(b.Add(ctx, lease(id, "s1", "b", "r1", "r2")))
		do(b.Add(ctx, lease(id, "s2", "b", "r2")))
	}
	do(b.End(ctx, presence.Ending{ClientID: "kim", SessionID: "s1", Reason: presence.ReasonClosed, Grace: 50 * time.Millisecond}))
	time.Sleep(100 * time.Millisecond)
	do(a.Sweep(ctx)) // kim's Leave of r1, decided by a; b still holds s1 as ending
	do(b.End(ctx, presence.Ending{ClientID: "lea", SessionID: "s1", Reason: presence.ReasonClosed, Grace: time.Hour}))
	time.Sleep(time.Second) // a new second for the re-created records' Seqs
	if err := rdb.FlushAll(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	do(b.Sweep(ctx)) // opens the window; re-asserts s2 live and s1 ending, with their rooms
	do(a.Sweep(ctx)) // re-asserts kim's Leave of r1
	do(a.Add(ctx, lease("kim", "s3", "a", "r1")))
	do(b.End(ctx, presence.Ending{ClientID: "lea", SessionID: "s1", Reason: presence.ReasonClosed}))
	time.Sleep(window + 100*time.Millisecond)
	do(a.Sweep(ctx))
	do(b.Sweep(ctx))
	got := map[string][]string{}
	for _, ev := range evs {
		got[ev.ClientID] = append(got[ev.ClientID], ev.Transition.String()+":"+ev.Room)
	}
	want := map[string][]string{
		"kim": {"online:", "join:r1", "join:r2", "leave:r1", "join:r1"},
		"lea": {"online:", "join:r1", "join:r2", "leave:r1"},
	}
	for id, w := range want {
		if !slices.Equal(got[id], w) {
			t.Errorf("%s: transitions %v, want %v", id, got[id], w)
		}
	}
	if ms, err := a.MembersAmong(ctx, "r1", []string{"kim", "lea"}); err != nil {
		t.Fatal(err)
	} else {
		for _, m := range ms {
			if in := m.ClientID == "kim"; m.In != in {
				t.Errorf("MembersAmong r1: %+v", m)
			}
		}
	}
}

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

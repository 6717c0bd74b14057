package memory_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"testing/synctest"
	"time"

	"go.uber.org/goleak"

	"github.com/vigilhq/vigil/presence"
	"github.com/vigilhq/vigil/store/memory"
	"github.com/vigilhq/vigil/store/storetest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func newStore(t *testing.T, cfg memory.Config) *memory.Store {
	t.Helper()
	s, err := memory.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestConformance(t *testing.T) {
	storetest.Run(t, storetest.Config{
		New: func(t *testing.T) presence.Store { return newStore(t, memory.Config{}) },
		NewCapped: func(t *testing.T, maxClients, maxSessions int) presence.Store {
			return newStore(t, memory.Config{MaxClients: maxClients, MaxSessions: maxSessions})
		},
		Synctest: true,
	})
}

var ctx = context.Background()

func lease(client, session string) presence.Lease {
	return presence.Lease{ClientID: client, SessionID: session, Node: "n1", TTL: time.Hour}
}

func TestCaps(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newStore(t, memory.Config{MaxClients: 3, MaxSessions: 4})
		for _, c := range []string{"a", "b", "c"} {
			if _, err := s.Add(ctx, lease(c, "s")); err != nil {
				t.Fatal(err)
			}
		}
		// Every client online: a fourth is refused, nothing else changes.
		if _, err := s.Add(ctx, lease("d", "s")); !errors.Is(err, presence.ErrLimit) {
			t.Fatalf("Add past MaxClients = %v, want ErrLimit", err)
		}
		if n, _ := s.Count(ctx); n != 3 {
			t.Fatalf("Count = %d after a refused Add", n)
		}
		if _, err := s.Add(ctx, lease("a", "s2")); err != nil {
			t.Fatalf("second session of a known client: %v", err)
		}
		if _, err := s.Add(ctx, lease("b", "s2")); !errors.Is(err, presence.ErrLimit) {
			t.Fatalf("Add past MaxSessions = %v, want ErrLimit", err)
		}
		// An offline client is remembered, then forgotten to make room.
		time.Sleep(time.Second)
		if _, err := s.End(ctx, presence.Ending{ClientID: "c", Reason: presence.ReasonClosed}); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Add(ctx, lease("d", "s")); err != nil {
			t.Fatalf("Add with an offline client to forget: %v", err)
		}
		ps, _ := s.Lookup(ctx, []string{"c", "d"})
		if !ps[0].LastSeen.IsZero() || !ps[1].Online {
			t.Fatalf("Lookup = %+v; want c forgotten, d online", ps)
		}
	})
}

func TestRetention(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newStore(t, memory.Config{Retention: time.Hour})
		for _, c := range []string{"old", "new"} {
			s.Add(ctx, lease(c, "s"))
		}
		s.End(ctx, presence.Ending{ClientID: "old", Reason: presence.ReasonClosed})
		time.Sleep(30 * time.Minute)
		s.End(ctx, presence.Ending{ClientID: "new", Reason: presence.ReasonClosed})
		time.Sleep(31 * time.Minute)
		s.Sweep(ctx)
		ps, _ := s.Lookup(ctx, []string{"old", "new"})
		if !ps[0].LastSeen.IsZero() || ps[1].LastSeen.IsZero() {
			t.Fatalf("after 61 min: %+v; want old forgotten, new remembered", ps)
		}
		// Coming back online takes a client off the forget list.
		l := lease("new", "s")
		l.TTL = 24 * time.Hour
		s.Add(ctx, l)
		time.Sleep(2 * time.Hour)
		s.Sweep(ctx)
		if ps, _ := s.Lookup(ctx, []string{"new"}); !ps[0].Online {
			t.Fatalf("online client forgotten: %+v", ps)
		}
		if ev, _ := s.Add(ctx, lease("new", "s2")); ev != nil {
			t.Fatalf("second session fired %+v", ev)
		}
	})
}

// Sequence numbers survive going offline while the client is remembered.
func TestSeqSurvivesOffline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newStore(t, memory.Config{})
		var seqs []uint64
		for range 3 {
			evs, _ := s.Add(ctx, lease("a", "s"))
			seqs = append(seqs, evs[0].Seq)
			evs, _ = s.End(ctx, presence.Ending{ClientID: "a", Reason: presence.ReasonClosed})
			seqs = append(seqs, evs[0].Seq)
		}
		for i, q := range seqs {
			if q != uint64(i+1) {
				t.Fatalf("seqs = %v, want 1..6", seqs)
			}
		}
	})
}

func TestForgetAtOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newStore(t, memory.Config{Retention: -1})
		s.Add(ctx, lease("a", "s"))
		s.End(ctx, presence.Ending{ClientID: "a", Reason: presence.ReasonClosed})
		if ps, _ := s.Lookup(ctx, []string{"a"}); !ps[0].LastSeen.IsZero() {
			t.Fatalf("Retention -1 kept %+v", ps[0])
		}
	})
}

func TestNewRejectsNegativeCaps(t *testing.T) {
	if _, err := memory.New(memory.Config{MaxClients: -1}); !errors.Is(err, presence.ErrInvalidArgument) {
		t.Fatalf("New(MaxClients -1) = %v", err)
	}
}

func FuzzCursor(f *testing.F) {
	s, err := memory.New(memory.Config{})
	if err != nil {
		f.Fatal(err)
	}
	for i := range 50 {
		s.Add(ctx, lease(fmt.Sprintf("c%d", i), "s"))
	}
	page, _ := s.List(ctx, "", 3)
	f.Add(page.Next)
	f.Add("")
	f.Add("AAA")
	f.Add("__8")
	f.Fuzz(func(t *testing.T, cursor string) {
		page, err := s.List(ctx, cursor, 5)
		if err != nil {
			if !errors.Is(err, presence.ErrInvalidArgument) {
				t.Fatalf("List(%q) = %v, want ErrInvalidArgument", cursor, err)
			}
			return
		}
		if len(page.Clients) > 5 {
			t.Fatalf("page of %d", len(page.Clients))
		}
	})
}

// Applications' own end reasons are kept exactly, however many there are
// (the Store interns the first ones and keeps the rest beside).
func TestManyEndReasons(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newStore(t, memory.Config{})
		const n = 300
		leases := make([]presence.Lease, n)
		for i := range leases {
			leases[i] = lease(fmt.Sprintf("c%d", i), "s")
			s.Add(ctx, leases[i])
			reason := presence.Reason(fmt.Sprintf("app-%d", i))
			if _, err := s.End(ctx, presence.Ending{ClientID: leases[i].ClientID, Reason: reason, Grace: time.Hour}); err != nil {
				t.Fatal(err)
			}
		}
		gone, err := s.Touch(ctx, leases)
		if err != nil || len(gone) != n {
			t.Fatalf("Touch = %d gone, %v; want %d", len(gone), err, n)
		}
		for i, g := range gone {
			if want := presence.Reason(fmt.Sprintf("app-%d", i)); g.Reason != want {
				t.Fatalf("Touch reports %q for session %d, want %q", g.Reason, i, want)
			}
		}
		// Revived, a session is live again; ended, it reports its new reason.
		s.Add(ctx, leases[n-1])
		if infos, _ := s.Sessions(ctx, leases[n-1].ClientID); infos[0].Ending {
			t.Fatalf("revived session = %+v, want live", infos[0])
		}
		s.End(ctx, presence.Ending{ClientID: leases[n-1].ClientID, Reason: "last-word", Grace: time.Hour})
		if infos, _ := s.Sessions(ctx, leases[n-1].ClientID); infos[0].Reason != "last-word" {
			t.Fatalf("session = %+v, want ending with reason last-word", infos[0])
		}
		time.Sleep(2 * time.Hour)
		evs, _ := s.Sweep(ctx)
		if len(evs) != n || evs[0].Reason == "" {
			t.Fatalf("Sweep = %d events, first %+v; want %d Offlines with their reasons", len(evs), evs[0], n)
		}
	})
}

func FuzzMemberCursor(f *testing.F) {
	s, err := memory.New(memory.Config{})
	if err != nil {
		f.Fatal(err)
	}
	for i := range 50 {
		s.Add(ctx, presence.Lease{ClientID: fmt.Sprintf("c%d", i), SessionID: "s", Node: "n1", TTL: time.Hour, Rooms: []string{"r"}})
	}
	page, _ := s.Members(ctx, "r", "", 3)
	f.Add(page.Next)
	f.Add("")
	f.Add("AAAAAAAAAAA")
	f.Fuzz(func(t *testing.T, cursor string) {
		page, err := s.Members(ctx, "r", cursor, 5)
		if err != nil {
			if !errors.Is(err, presence.ErrInvalidArgument) {
				t.Fatalf("Members(%q) = %v, want ErrInvalidArgument", cursor, err)
			}
			return
		}
		if len(page.Members) > 5 {
			t.Fatalf("page of %d", len(page.Members))
		}
	})
}

package memory

import (
	"context"
	"testing"
	"time"
	"unsafe"

	"github.com/vigilhq/vigil/presence"
)

// TestLayout keeps a session and a client in 64-byte allocations: a Store
// may hold a million of each (docs/BENCHMARKS.md).
func TestLayout(t *testing.T) {
	if n := unsafe.Sizeof(session{}); n > 64 {
		t.Errorf("session is %d bytes, want at most 64", n)
	}
	if n := unsafe.Sizeof(client{}); n > 64 {
		t.Errorf("client is %d bytes, want at most 64", n)
	}
}

// TestStateEntriesForgotten: the map entries of states go with the
// sessions and clients they are about.
func TestStateEntriesForgotten(t *testing.T) {
	ctx := context.Background()
	s, err := New(Config{Retention: -1})
	if err != nil {
		t.Fatal(err)
	}
	add := func(client, session string, a presence.Activity) {
		t.Helper()
		if _, err := s.Add(ctx, presence.Lease{ClientID: client, SessionID: session, Node: "n", TTL: time.Hour, Activity: a}); err != nil {
			t.Fatal(err)
		}
	}
	add("a", "1", presence.ActivityAway)
	add("a", "2", "")
	add("b", "1", "")
	if _, err := s.SetActivity(ctx, presence.SessionActivity{ClientID: "b", SessionID: "1", Activity: presence.ActivityAway, IdleFor: time.Minute}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.End(ctx, presence.Ending{ClientID: "a", SessionID: "2", Reason: presence.ReasonClosed}); err != nil {
		t.Fatal(err)
	}
	if len(s.states.awayAt) != 2 || len(s.states.activeAt) != 1 {
		t.Fatalf("awayAt %d, activeAt %d entries; want 2 away sessions, 1 client that lost a session", len(s.states.awayAt), len(s.states.activeAt))
	}
	for _, c := range []string{"a", "b"} {
		if _, err := s.End(ctx, presence.Ending{ClientID: c, Reason: presence.ReasonClosed}); err != nil {
			t.Fatal(err)
		}
	}
	if len(s.states.awayAt) != 0 || len(s.states.activeAt) != 0 || len(s.states.pending) != 0 {
		t.Fatalf("after every client was forgotten: awayAt %d, activeAt %d, pending %d entries; want none", len(s.states.awayAt), len(s.states.activeAt), len(s.states.pending))
	}
}

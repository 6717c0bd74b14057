package middleware

import (
	"slices"
	"testing"
	"time"
)

// A connection that ended leaves the scheduler at once, not at its next
// visit a ping interval later: under churn, the closed connections of the
// last ping interval stayed reachable, with their buffers (seen in the e2e
// churn soak as the demo's heap growing by 512 KiB of gorilla connections).
func TestEndedConnLeavesWheel(t *testing.T) {
	s, ts := newTestServer(t, nil) // the defaults: the next visit is 25s away
	ws := dialTestServer(t, ts, "a")
	inWheel := func() int {
		s.sched.mu.Lock()
		defer s.sched.mu.Unlock()
		n := 0
		for _, slot := range s.sched.slots {
			n += len(slices.DeleteFunc(slices.Clone(slot), func(c *Conn) bool { return c == nil }))
		}
		return n
	}
	for deadline := time.Now().Add(2 * time.Second); inWheel() != 1; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d connections in the wheel, want 1", inWheel())
		}
	}
	ws.Close()
	for deadline := time.Now().Add(2 * time.Second); s.Stats().Open != 0; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("connection still open")
		}
	}
	if n := inWheel(); n != 0 {
		t.Errorf("%d ended connections still in the wheel", n)
	}
}

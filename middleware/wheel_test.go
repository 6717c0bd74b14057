package middleware

import (
	"context"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/vigilhq/vigil/presence"
	"github.com/vigilhq/vigil/store/memory"
)

// A connection that ended leaves the scheduler at once, not at its next
// visit a ping interval later: under churn, the closed connections of the
// last ping interval stayed reachable, with their buffers (seen in the e2e
// churn soak as the demo's heap growing by 512 KiB of gorilla connections).
func TestEndedConnLeavesWheel(t *testing.T) {
	st, _ := memory.New(memory.Config{})
	tr, err := presence.New(context.Background(), st, presence.Config{Node: "n"})
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(tr, Config{Identify: IdentifyQuery("id")}) // the defaults: the next visit is 25s away
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(s.WebSocket(nil))
	defer func() {
		ts.Close()
		_ = s.Shutdown(context.Background())
		_ = tr.Close(context.Background())
	}()
	ws, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(ts.URL, "http")+"?id=a", http.Header{})
	if err != nil {
		t.Fatal(err)
	}
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

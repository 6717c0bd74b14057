package middleware

import (
	"testing"
	"time"
	"unsafe"
)

// TestConnSize keeps a Conn in the 240-byte size class of the allocator
// on 64-bit systems: each connection holds one for its life, and the next
// class up is 288 bytes (issue 17).
func TestConnSize(t *testing.T) {
	if unsafe.Sizeof(uintptr(0)) != 8 {
		t.Skip("sizes are for 64-bit systems")
	}
	if got := unsafe.Sizeof(Conn{}); got > 240 {
		t.Errorf("a Conn takes %d bytes, want at most 240", got)
	}
}

// TestIdleConnHasNoReporter checks that a connection makes its activity
// reporter only at its first report: most never send one, and a reporter
// is 112 bytes of each connection's life (issue 17).
func TestIdleConnHasNoReporter(t *testing.T) {
	s, ts := newTestServer(t, nil)
	dialTestServer(t, ts, "c")
	var c *Conn
	deadline := time.Now().Add(10 * time.Second)
	for c == nil {
		s.mu.Lock()
		for k := range s.conns {
			c = k
		}
		s.mu.Unlock()
		if time.Now().After(deadline) {
			t.Fatal("no connection registered")
		}
	}
	// Nothing was read: the reader has not touched c.act.
	if c.act != nil {
		t.Error("a connection that sent no activity report has a reporter")
	}
}

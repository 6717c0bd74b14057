//go:build unix

package middleware

import (
	"bufio"
	"context"
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// parkedIdle counts the readers parked in waitIdle's wait for readability.
func parkedIdle() int {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	n := 0
	for g := range strings.SplitSeq(string(buf), "\n\n") {
		if strings.Contains(g, "middleware.(*Conn).waitIdle") && strings.Contains(g, "(*rawConn).Read") {
			n++
		}
	}
	return n
}

// TestIdleConnHoldsNoReadBuffer checks that idle connections have given
// their read buffers back to the Server's pool (issue 17: 512 bytes of each
// idle connection), that an upgrade takes its buffer from there (a ramp of
// connections would otherwise make one per connection, which the pool
// holds until the next GC, and the one after frees), and that a connection
// reads as before once it has data again.
func TestIdleConnHoldsNoReadBuffer(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(-1)) // a GC empties sync.Pools
	// One P: sync.Pool keeps an object Put on another P where no Get from
	// this one finds it.
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	echo := func(ctx context.Context, c *Conn) {
		for {
			m, err := c.Receive(ctx)
			if err != nil || c.Send(m.Type, m.Data) != nil {
				return
			}
		}
	}
	s, ts := newTestServer(t, echo)
	const n = 4
	var cs []*websocket.Conn
	for i := range n {
		ws := dialTestServer(t, ts, fmt.Sprintf("c%d", i))
		cs = append(cs, ws)
		// One after the other, each upgrade takes the buffer the
		// connection before it lent.
		deadline := time.Now().Add(10 * time.Second)
		for parkedIdle() < i+1 {
			if time.Now().After(deadline) {
				t.Fatalf("%d readers parked idle, want %d", parkedIdle(), i+1)
			}
			runtime.Gosched()
		}
	}
	pooled := 0
	for {
		r, ok := s.readers.Get().(*bufio.Reader)
		if !ok {
			break
		}
		if r.Size() != s.cfg.ReadBufferSize {
			t.Errorf("pooled reader of %d bytes, want %d", r.Size(), s.cfg.ReadBufferSize)
		}
		pooled++
	}
	// Under -race, sync.Pool drops a quarter of what is Put, at random.
	if pooled != 1 && !(raceOn && pooled == 0) {
		t.Errorf("%d read buffers in the pool, want 1: the %d idle connections hold none, and each upgrade took the one the last idle connection lent", pooled, n)
	}
	for i, ws := range cs {
		msg := strings.Repeat("m", 700*i) // up to past the read buffer
		if err := ws.WriteMessage(websocket.TextMessage, []byte(msg)); err != nil {
			t.Fatal(err)
		}
		_ = ws.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, got, err := ws.ReadMessage(); err != nil || string(got) != msg {
			t.Fatalf("echo %d: %d bytes, %v", i, len(got), err)
		}
	}
}

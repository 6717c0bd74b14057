//go:build unix

package middleware_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/vigilhq/vigil/middleware"
	"github.com/vigilhq/vigil/presence"
)

// readerStacks returns the stacks of the goroutines inside Conn.Receive.
func readerStacks() []string {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	var out []string
	for g := range strings.SplitSeq(string(buf), "\n\n") {
		if strings.Contains(g, "middleware.(*Conn).Receive") {
			out = append(out, g)
		}
	}
	return out
}

// waitIdleReaders polls the goroutine stacks until n readers are parked in
// Conn.waitIdle (outside gorilla's read path), and fails if any reader
// waits inside gorilla's read.
func waitIdleReaders(t *testing.T, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		var idle, deep int
		var sample string
		for _, g := range readerStacks() {
			switch {
			case strings.Contains(g, "websocket.(*Conn).NextReader"):
				deep++
				sample = g
			case strings.Contains(g, "middleware.(*Conn).waitIdle"):
				idle++
			}
		}
		if idle == n && deep == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d readers parked in waitIdle and %d inside gorilla's read, want %d and 0; one of these:\n%s", idle, deep, n, sample)
		}
		runtime.Gosched()
	}
}

// TestIdleReaderParksShallow checks that an idle connection's reader waits
// for data outside gorilla's read path, both before its first frame and
// after messages went through that path: parked deep inside it, the
// goroutine's stack stays grown to 4 KiB for the connection's idle life
// (docs/BENCHMARKS.md, issue 17).
func TestIdleReaderParksShallow(t *testing.T) {
	const n = 8
	e := newEnv(t, presence.Config{}, middleware.Config{})
	ts := startHTTP(t, e.mux(echo))
	var cs []*websocket.Conn
	for i := range n {
		cs = append(cs, mustDial(t, wsURL(ts, fmt.Sprintf("/ws?id=c%d", i))))
	}
	waitIdleReaders(t, n)
	for i, c := range cs {
		msg := []byte(strings.Repeat("x", 100*i)) // up to past the 512-byte read buffer
		if err := c.WriteMessage(websocket.TextMessage, msg); err != nil {
			t.Fatal(err)
		}
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, got, err := c.ReadMessage(); err != nil || !bytes.Equal(got, msg) {
			t.Fatalf("echo %d: %d bytes, %v", i, len(got), err)
		}
	}
	waitIdleReaders(t, n)
}

// TestIdleReaderBufferedFrames sends several frames in one TCP write, so that
// gorilla's read buffer holds the next frames when a message returns: the
// reader must not wait for the socket then (nothing more will arrive), and
// every message is delivered.
func TestIdleReaderBufferedFrames(t *testing.T) {
	e := newEnv(t, presence.Config{}, middleware.Config{})
	ts := startHTTP(t, e.mux(echo))
	c := mustDial(t, wsURL(ts, "/ws?id=c"))
	waitIdleReaders(t, 1)
	msgs := []string{"a", "b", strings.Repeat("c", 1500), "d"}
	var seg []byte
	for _, m := range msgs {
		seg = append(seg, clientFrame(m)...)
	}
	if _, err := c.NetConn().Write(seg); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	for _, want := range msgs {
		_, got, err := c.ReadMessage()
		if err != nil {
			t.Fatalf("waiting for %.10q: %v", want, err)
		}
		if string(got) != want {
			t.Fatalf("got %.10q, want %.10q", got, want)
		}
	}
}

// clientFrame is a masked text frame (mask key zero) carrying text.
func clientFrame(text string) []byte {
	f := []byte{0x81}
	switch n := len(text); {
	case n < 126:
		f = append(f, 0x80|byte(n))
	default:
		f = append(f, 0x80|126, byte(n>>8), byte(n))
	}
	f = append(f, 0, 0, 0, 0)
	return append(f, text...)
}

// chatHub is a Handler shaped like the chat demo's: it registers the
// connection in a map under a lock, reads in a loop and encodes each message
// for everyone, which gives its frame a few hundred bytes on the stack.
type chatHub struct {
	mu    sync.Mutex
	conns map[*middleware.Conn][]string
}

func (h *chatHub) serve(ctx context.Context, c *middleware.Conn) {
	rooms := []string{"lobby"}
	h.mu.Lock()
	h.conns[c] = rooms
	h.mu.Unlock()
	defer func() {
		h.mu.Lock()
		delete(h.conns, c)
		h.mu.Unlock()
	}()
	for {
		m, err := c.Receive(ctx)
		if err != nil {
			return
		}
		data, _ := json.Marshal(struct {
			From, Text string
			TS         int64
			Rooms      []string
		}{c.ClientID(), string(m.Data), time.Now().UnixMilli(), rooms})
		h.mu.Lock()
		for other := range h.conns {
			_ = other.Send(middleware.Text, data)
		}
		h.mu.Unlock()
	}
}

// TestIdleReaderStackStaysSmall checks the goroutine stack of idle
// connections whose Handler is the demo's shape: 2 KiB each, the smallest
// (issue 17). With more than about 1.1 KiB of frames in use where the
// reader parks, the runtime grows the stack to 4 KiB, and does not shrink
// it at a GC while more than 1 KiB is in use: what Receive and its wait add
// there must stay small. Stack sizes differ under -race.
func TestIdleReaderStackStaysSmall(t *testing.T) {
	if raceEnabled {
		t.Skip("frames are larger under -race")
	}
	const n = 200
	e := newEnv(t, presence.Config{}, middleware.Config{})
	hub := &chatHub{conns: make(map[*middleware.Conn][]string)}
	ts := startHTTP(t, e.mux(hub.serve))
	addr := strings.TrimPrefix(ts.URL, "http://")
	stacks := func() uint64 {
		runtime.GC()
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.StackInuse
	}
	before := stacks()
	for i := range n {
		c, err := rawDial(addr, fmt.Sprintf("/ws?id=s%d", i))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
	}
	waitIdleReaders(t, n)
	perConn := float64(stacks()-before) / n
	if perConn > 3<<10 {
		t.Errorf("%.0f bytes of stack per idle connection, want 2 KiB", perConn)
	}
	t.Logf("%.0f bytes of stack per idle connection", perConn)
}

//go:build unix

package middleware_test

import (
	"bytes"
	"fmt"
	"runtime"
	"strings"
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

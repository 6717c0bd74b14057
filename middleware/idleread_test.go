//go:build unix

package middleware_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
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
// for everyone, which gives its frame a few hundred bytes on the stack, as
// many as the demo's (examples/chat: 384 bytes with Go 1.26).
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
			From, Text, Session, Addr string
			TS                        int64
			Rooms                     []string
		}{c.ClientID(), string(m.Data), c.SessionID(), c.RemoteAddr().String(), time.Now().UnixMilli(), rooms})
		h.mu.Lock()
		for other := range h.conns {
			_ = other.Send(middleware.Text, data)
		}
		h.mu.Unlock()
	}
}

// stackInuse returns the bytes of goroutine stacks in use after two GCs,
// which shrink the stacks that can be.
func stackInuse() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.StackInuse
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
	before := stackInuse()
	for i := range n {
		c, err := rawDial(addr, fmt.Sprintf("/ws?id=s%d", i))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
	}
	waitIdleReaders(t, n)
	perConn := float64(stackInuse()-before) / n
	if perConn > 3<<10 {
		t.Errorf("%.0f bytes of stack per idle connection, want 2 KiB", perConn)
	}
	t.Logf("%.0f bytes of stack per idle connection", perConn)
}

// TestIdleReaderControlFrames checks that the control frames an idle
// connection receives (pongs to the server's pings every PingInterval, and
// pings) leave its reader parked outside gorilla's read path with a 2 KiB
// stack, while each still counts as a beat and a ping is still answered:
// read through gorilla, a pong left the reader waiting for the next data
// frame deep inside NextReader, on a stack grown to 4 KiB, which the
// runtime does not shrink while more than 224 bytes of it are in use
// (runtime.shrinkstack), that is never (issue 17). The clients send their
// frames one after the other, as pongs come in the steady state (each
// connection's every PingInterval, spread out): readers beating at the same
// instant contend for the Tracker's lock, deeper (see takeControl).
func TestIdleReaderControlFrames(t *testing.T) {
	if raceEnabled {
		t.Skip("frames are larger under -race")
	}
	const n = 300
	var beats beatCounter
	e := newEnv(t, presence.Config{Observer: &beats}, middleware.Config{})
	hub := &chatHub{conns: make(map[*middleware.Conn][]string)}
	ts := startHTTP(t, e.mux(hub.serve))
	addr := strings.TrimPrefix(ts.URL, "http://")
	var cs []net.Conn
	for i := range n {
		c, err := rawDial(addr, fmt.Sprintf("/ws?id=p%d", i))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		cs = append(cs, c)
	}
	waitIdleReaders(t, n)
	var before uint64
	waitBeats := func(want int64) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for beats.n.Load() < want {
			if time.Now().After(deadline) {
				t.Fatalf("%d beats counted, want %d", beats.n.Load(), want)
			}
			runtime.Gosched()
		}
	}
	for round := range 4 {
		for i, c := range cs {
			// An unsolicited pong (a unidirectional heartbeat), then a ping
			// the server must answer with its payload; on odd connections
			// both in one TCP write, which gives both to one wait.
			b := beats.n.Load()
			payload := fmt.Sprintf("r%d-c%d", round, i)
			pong, ping := controlFrame(websocket.PongMessage, ""), controlFrame(websocket.PingMessage, payload)
			if i%2 == 1 {
				pong, ping = append(pong, ping...), nil
			}
			if _, err := c.Write(pong); err != nil {
				t.Fatal(err)
			}
			if ping != nil {
				waitBeats(b + 1)
				if _, err := c.Write(ping); err != nil {
					t.Fatal(err)
				}
			}
			want := append([]byte{0x80 | websocket.PongMessage, byte(len(payload))}, payload...)
			got := make([]byte, len(want))
			_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
			if _, err := io.ReadFull(c, got); err != nil || !bytes.Equal(got, want) {
				t.Fatalf("round %d, conn %d: pong %q, %v; want %q", round, i, got, err, want)
			}
			waitBeats(b + 2)
		}
		waitIdleReaders(t, n)
		if round == 0 {
			// The first beats grow the Tracker's queue of beaten sessions
			// (Session.Beat), and allocating, deeper, grows the stacks of
			// a few readers; the steady state comes after.
			before = stackInuse()
		}
	}
	// A reader's stack that grew adds 2 KiB; the test's goroutine may
	// add some of its own.
	perConn := (float64(stackInuse()) - float64(before)) / n
	if perConn > 1<<10 {
		t.Errorf("stacks grew by %.0f bytes per idle connection after pongs and pings, want about 0 (2 KiB each)", perConn)
	}
	t.Logf("stacks grew by %.0f bytes per idle connection after pongs and pings", perConn)
}

// controlFrame is a masked control frame (mask key zero) from a client.
func controlFrame(op byte, payload string) []byte {
	return append([]byte{0x80 | op, 0x80 | byte(len(payload)), 0, 0, 0, 0}, payload...)
}

// beatCounter counts the beats of WebSocket connections.
type beatCounter struct {
	presence.NopObserver
	n atomic.Int64
}

func (b *beatCounter) Beat(transport string) {
	if transport == presence.TransportWS {
		b.n.Add(1)
	}
}

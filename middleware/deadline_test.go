package middleware_test

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/vigilhq/vigil/internal/timing"
)

// Issue 10: at the defaults, a write left its deadline (now+WriteTimeout) on
// the socket, and the next raw ping, PingInterval later, failed on it and
// dropped the connection (1006, offline). The defaults scaled by 1/10 keep
// the relation that matters (WriteTimeout shorter than PingInterval); real
// sockets, because net.Pipe has no raw write path.
func TestWriteDeadlineDoesNotOutliveWrite(t *testing.T) {
	sc := timing.Scale(0.1) // ping 2.5s, write 1s, pong 1s, TTL 3.5s
	for _, tc := range []struct {
		name string
		poke func(c *websocket.Conn) error // something the server writes an answer to
	}{
		{"message", func(c *websocket.Conn) error { return c.WriteMessage(websocket.TextMessage, []byte("hi")) }},
		{"app ping", func(c *websocket.Conn) error { return c.WriteMessage(websocket.TextMessage, []byte("ping")) }},
		{"protocol ping", func(c *websocket.Conn) error {
			return c.WriteControl(websocket.PingMessage, []byte("p"), time.Now().Add(time.Second))
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, sc.Tracker(), sc.Server())
			ts := startHTTP(t, e.mux(echo))
			c := mustDial(t, wsURL(ts, "/ws?id=alice"))
			e.waitEvent(t, "alice", 2*time.Second)
			var pings atomic.Int32
			c.SetPingHandler(func(data string) error {
				pings.Add(1)
				return c.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(time.Second))
			})
			if err := tc.poke(c); err != nil {
				t.Fatal(err)
			}
			// Silence past two pings (and past TTL): the connection stays
			// open, answering the server's pings.
			quiet := 2*sc.PingInterval + sc.PongTimeout
			c.SetReadDeadline(time.Now().Add(quiet))
			for {
				_, _, err := c.ReadMessage()
				if err == nil {
					continue // the echo, or the app pong
				}
				if ne, ok := err.(interface{ Timeout() bool }); !ok || !ne.Timeout() {
					t.Fatalf("connection dropped after %d pings: %v", pings.Load(), err)
				}
				break
			}
			if n := pings.Load(); n < 2 {
				t.Errorf("%d pings in %v, want 2 (PingInterval %v)", n, quiet, sc.PingInterval)
			}
			e.noEvent(t, 10*time.Millisecond)
		})
	}
}

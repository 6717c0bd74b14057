package middleware_test

import (
	"bufio"
	"context"
	"net"
	"net/http"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/gorilla/websocket"

	"github.com/vigilhq/vigil/middleware"
	"github.com/vigilhq/vigil/presence"
)

func TestHandshakeRefusals(t *testing.T) {
	cfg := fastServer()
	cfg.AllowedOrigins = []string{"https://app.example"}
	cfg.MaxConnsPerClient = 1
	e := newEnv(t, fastTracker(), cfg)
	ts := startHTTP(t, e.mux(nil))
	host := strings.TrimPrefix(ts.URL, "http://")

	keep := mustDial(t, wsURL(ts, "/ws?id=limited")) // the one allowed connection
	go closeCode(t, keep, 5*time.Second)
	e.waitEvent(t, "limited", 2*time.Second)

	for _, tc := range []struct {
		name   string
		path   string
		origin string
		status int
	}{
		{"no id", "/ws", "", http.StatusUnauthorized},
		{"empty id", "/ws?id=", "", http.StatusUnauthorized},
		{"control char id", "/ws?id=a%00b", "", http.StatusBadRequest},
		{"invalid utf-8 id", "/ws?id=%ff", "", http.StatusBadRequest},
		{"long id", "/ws?id=" + strings.Repeat("x", 257), "", http.StatusBadRequest},
		{"foreign origin", "/ws?id=a", "https://evil.example", http.StatusForbidden},
		{"scheme mismatch", "/ws?id=a", "https://" + host, http.StatusForbidden},
		{"null origin", "/ws?id=a", "null", http.StatusForbidden},
		{"sibling port", "/ws?id=a", "http://127.0.0.1:1", http.StatusForbidden},
		{"same origin", "/ws?id=a", "http://" + host, http.StatusSwitchingProtocols},
		{"allowed origin", "/ws?id=b", "https://app.example", http.StatusSwitchingProtocols},
		{"allowed origin default port", "/ws?id=c", "https://APP.example:443", http.StatusSwitchingProtocols},
		{"over per-client limit", "/ws?id=limited", "", http.StatusTooManyRequests},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := http.Header{}
			if tc.origin != "" {
				h.Set("Origin", tc.origin)
			}
			c, resp, err := dial(t, wsURL(ts, tc.path), h)
			if resp == nil {
				t.Fatalf("no response: %v", err)
			}
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d (%v)", resp.StatusCode, tc.status, err)
			}
			if tc.status == http.StatusTooManyRequests && resp.Header.Get("Retry-After") == "" {
				t.Error("429 without Retry-After")
			}
			if c != nil {
				c.Close()
			}
		})
	}
	// Bad handshakes are gorilla's to answer.
	for _, tc := range []struct {
		name   string
		method string
		header map[string]string
		status int
	}{
		{"post", http.MethodPost, nil, http.StatusMethodNotAllowed},
		{"plain get", http.MethodGet, nil, http.StatusBadRequest},
		{"bad version", http.MethodGet, map[string]string{"Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "8", "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="}, http.StatusBadRequest},
		{"bad key", http.MethodGet, map[string]string{"Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13", "Sec-WebSocket-Key": "short"}, http.StatusBadRequest},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(tc.method, ts.URL+"/ws?id=x", nil)
			for k, v := range tc.header {
				req.Header.Set(k, v)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d", resp.StatusCode, tc.status)
			}
		})
	}
	// Nothing above disturbed the live connection or opened a session for x.
	if _, err := e.tr.Presence(context.Background(), "x"); err == nil {
		t.Error("refused client x has presence")
	}
	if err := keep.WriteMessage(websocket.TextMessage, []byte("still here")); err != nil {
		t.Fatal(err)
	}
}

func TestOversizedFrameCloses1009(t *testing.T) {
	cfg := fastServer()
	cfg.ReadLimit = 1024
	e := newEnv(t, fastTracker(), cfg)
	ts := startHTTP(t, e.mux(echo))
	other := mustDial(t, wsURL(ts, "/ws?id=bystander"))
	c := mustDial(t, wsURL(ts, "/ws?id=big"))
	if err := c.WriteMessage(websocket.BinaryMessage, make([]byte, 1025)); err != nil {
		t.Fatal(err)
	}
	if code, _ := closeCode(t, c, 2*time.Second); code != middleware.CloseTooBig {
		t.Fatalf("close %d, want 1009", code)
	}
	// The bystander still echoes.
	other.WriteMessage(websocket.TextMessage, []byte("ok"))
	other.SetReadDeadline(time.Now().Add(2 * time.Second))
	if _, got, err := other.ReadMessage(); err != nil || string(got) != "ok" {
		t.Fatalf("bystander: %q %v", got, err)
	}
}

func TestInvalidUTF8Closes1007(t *testing.T) {
	e := newEnv(t, fastTracker(), fastServer())
	ts := startHTTP(t, e.mux(echo))
	c := mustDial(t, wsURL(ts, "/ws?id=utf"))
	if err := c.WriteMessage(websocket.TextMessage, []byte{'a', 0xff, 'b'}); err != nil {
		t.Fatal(err)
	}
	if code, _ := closeCode(t, c, 2*time.Second); code != middleware.CloseInvalidPayload {
		t.Fatalf("close %d, want 1007", code)
	}
	// Binary frames carry any bytes.
	c2 := mustDial(t, wsURL(ts, "/ws?id=bin"))
	c2.WriteMessage(websocket.BinaryMessage, []byte{0xff})
	c2.SetReadDeadline(time.Now().Add(2 * time.Second))
	if _, got, err := c2.ReadMessage(); err != nil || len(got) != 1 {
		t.Fatalf("binary echo: %v %v", got, err)
	}
}

// A client that cannot see protocol pings (a browser page) and sends an
// application ping every 100ms stays online: each ping is answered with
// "pong" and counts as a beat, well inside PingInterval + PongTimeout
// (300ms). On fake time, so a loaded machine cannot stretch the client's
// 100ms past the server's 300ms.
func TestClassicPingClient(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBubble(t, fastTracker(), fastServer(), echo)
		c := b.connect(t, "classic")
		c.SetPingHandler(func(string) error { return nil }) // a browser page cannot see pings
		if ev := b.next(t); ev.Transition != presence.Online {
			t.Fatalf("event %+v, want online", ev)
		}
		for range 10 { // 1s: more than twice the TTL
			if err := c.WriteMessage(websocket.TextMessage, []byte("ping")); err != nil {
				t.Fatal(err)
			}
			c.SetReadDeadline(time.Now().Add(time.Second))
			_, got, err := c.ReadMessage()
			if err != nil || string(got) != "pong" {
				t.Fatalf("got %q, %v; want pong", got, err)
			}
			time.Sleep(100 * time.Millisecond) // the client's ping interval, on fake time
		}
		b.noEvent(t)
		c.Close()
		b.close(t)
	})
}

// A raw TCP client sends a frame header announcing more than the read limit:
// the server refuses it from the header alone.
func TestFrameHeaderOverLimit(t *testing.T) {
	cfg := fastServer()
	cfg.ReadLimit = 100
	e := newEnv(t, fastTracker(), cfg)
	ts := startHTTP(t, e.mux(nil))
	nc, err := net.Dial("tcp", strings.TrimPrefix(ts.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.Write([]byte("GET /ws?id=raw HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"))
	br := bufio.NewReader(nc)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != 101 {
		t.Fatalf("handshake: %v %v", resp, err)
	}
	// FIN+binary, masked, 64-bit length 2^40.
	nc.Write([]byte{0x82, 0xff, 0, 0, 1, 0, 0, 0, 0, 0, 1, 2, 3, 4})
	nc.SetReadDeadline(time.Now().Add(2 * time.Second))
	hdr := make([]byte, 4)
	if _, err := br.Read(hdr); err != nil {
		t.Fatal(err)
	}
	if hdr[0] != 0x88 || int(hdr[2])<<8|int(hdr[3]) != 1009 {
		t.Fatalf("frame % x, want close 1009", hdr)
	}
	if ev := e.waitEvent(t, "raw", 2*time.Second); ev.Transition != presence.Online {
		t.Fatalf("event %+v", ev)
	}
}

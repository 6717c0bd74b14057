package middleware_test

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	"github.com/gorilla/websocket"

	"github.com/vigilhq/vigil/middleware"
	"github.com/vigilhq/vigil/presence"
)

// timing: compressed for speed, not scaled: TTL (400ms) ≥ PingInterval +
// PongTimeout (fastServer, 300ms), SweepInterval ≪ TTL, Grace < TTL as at
// the defaults. The defaults' proportions are tested in
// TestWriteDeadlineDoesNotOutliveWrite (internal/timing.Scale) and the e2e
// soak.
func fastTracker() presence.Config {
	return presence.Config{TTL: 400 * time.Millisecond, Grace: 200 * time.Millisecond, SweepInterval: 50 * time.Millisecond}
}

// timing: compressed for speed, not scaled: PingInterval < PongTimeout here
// (the defaults have 25s > 10s); WriteTimeout defaults to PongTimeout. Tests
// that need the defaults' proportions use internal/timing.Scale.
func fastServer() middleware.Config {
	return middleware.Config{PingInterval: 100 * time.Millisecond, PongTimeout: 200 * time.Millisecond}
}

func TestEchoAndAppPing(t *testing.T) {
	e := newEnv(t, fastTracker(), fastServer())
	ts := startHTTP(t, e.mux(echo))
	c := mustDial(t, wsURL(ts, "/ws?id=alice"))
	if ev := e.waitEvent(t, "alice", 2*time.Second); ev.Transition != presence.Online {
		t.Fatalf("event %+v, want online", ev)
	}
	for _, msg := range []string{"hello", "ping", "world"} {
		if err := c.WriteMessage(websocket.TextMessage, []byte(msg)); err != nil {
			t.Fatal(err)
		}
	}
	for _, want := range []string{"hello", "pong", "world"} {
		_, got, err := c.ReadMessage()
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != want {
			t.Fatalf("got %q, want %q", got, want)
		}
	}
	if st := e.srv.Stats(); st.AppPings != 1 || st.MessagesIn != 2 {
		t.Errorf("stats %+v: want 1 app ping, 2 messages in", st)
	}
	c.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(1000, ""))
	code, _ := closeCode(t, c, 2*time.Second)
	if code != 1000 {
		t.Errorf("close code %d, want 1000 echoed", code)
	}
	ev := e.waitEvent(t, "alice", 2*time.Second)
	if ev.Transition != presence.Offline || ev.Reason != presence.ReasonClosed {
		t.Fatalf("event %+v, want offline closed", ev)
	}
}

// A client that answers pings (gorilla answers them while reading) but sends
// nothing else stays open far past PongTimeout.
func TestPingsKeepSilentClientOpen(t *testing.T) {
	e := newEnv(t, fastTracker(), fastServer())
	ts := startHTTP(t, e.mux(nil))
	c := mustDial(t, wsURL(ts, "/ws?id=quiet"))
	pings := 0
	c.SetPingHandler(func(data string) error {
		pings++
		return c.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(time.Second))
	})
	e.waitEvent(t, "quiet", 2*time.Second)
	c.SetReadDeadline(time.Now().Add(1500 * time.Millisecond)) // 5×(P+PongTimeout)
	_, _, err := c.ReadMessage()
	if ne, ok := err.(interface{ Timeout() bool }); !ok || !ne.Timeout() {
		t.Fatalf("read: %v, want our own deadline", err)
	}
	if pings < 10 {
		t.Errorf("%d pings in 1.5s, want about 15", pings)
	}
	e.noEvent(t, 10*time.Millisecond)
}

// A client that stops answering is dropped and goes offline within
// PingInterval+PongTimeout plus one sweep step, without Grace.
func TestDeadPeerDropped(t *testing.T) {
	e := newEnv(t, fastTracker(), fastServer())
	ts := startHTTP(t, e.mux(nil))
	c := mustDial(t, wsURL(ts, "/ws?id=dead"))
	e.waitEvent(t, "dead", 2*time.Second)
	// Never read again: pings go unanswered.
	start := time.Now()
	ev := e.waitEvent(t, "dead", 2*time.Second)
	took := time.Since(start)
	if ev.Transition != presence.Offline || ev.Reason != presence.ReasonExpired {
		t.Fatalf("event %+v, want offline timeout", ev)
	}
	if max := 300*time.Millisecond + 2*50*time.Millisecond + 50*time.Millisecond; took > max {
		t.Errorf("offline after %v, want within %v", took, max)
	}
	if st := e.srv.Stats(); st.HeartbeatTimeouts != 1 {
		t.Errorf("stats %+v: want 1 heartbeat timeout", st)
	}
	_ = c
}

func TestIdleTimeout(t *testing.T) {
	cfg := fastServer()
	cfg.IdleTimeout = 300 * time.Millisecond
	e := newEnv(t, fastTracker(), cfg)
	ts := startHTTP(t, e.mux(echo))
	c := mustDial(t, wsURL(ts, "/ws?id=idler"))
	e.waitEvent(t, "idler", 2*time.Second)
	// App pings are not activity: the client pings until the connection
	// closes, and it still closes as idle.
	go func() {
		for c.WriteMessage(websocket.TextMessage, []byte("ping")) == nil {
			time.Sleep(50 * time.Millisecond)
		}
	}()
	code, text := closeCode(t, c, 2*time.Second)
	if code != middleware.CloseIdle || text != "idle" {
		t.Fatalf("close %d %q, want 4501 idle", code, text)
	}
	ev := e.waitEvent(t, "idler", 2*time.Second)
	if ev.Transition != presence.Offline || ev.Reason != presence.ReasonIdle {
		t.Fatalf("event %+v, want offline idle", ev)
	}
}

func TestReconnectInsideGraceFiresNothing(t *testing.T) {
	tcfg := fastTracker()
	tcfg.Grace = time.Second
	e := newEnv(t, tcfg, fastServer())
	ts := startHTTP(t, e.mux(nil))
	c := mustDial(t, wsURL(ts, "/ws?id=bob"))
	e.waitEvent(t, "bob", 2*time.Second)
	c.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(1001, "reload"))
	closeCode(t, c, time.Second)
	c2 := mustDial(t, wsURL(ts, "/ws?id=bob"))
	go closeCode(t, c2, 3*time.Second) // read, so pings are answered
	e.noEvent(t, 1500*time.Millisecond)
}

// Tracker.Kick closes the client's connection with 4500 and the client goes
// offline (reason kicked) once its session's Grace has passed: within
// Grace + 2×SweepInterval of the kick. On fake time.
func TestKickClosesWith4500(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tcfg := fastTracker()
		b := newBubble(t, tcfg, fastServer(), nil)
		c := b.connect(t, "kicked")
		go func() { // answer pings, and see the close frame
			for {
				if _, _, err := c.ReadMessage(); err != nil {
					return
				}
			}
		}()
		if ev := b.next(t); ev.Transition != presence.Online {
			t.Fatalf("event %+v, want online", ev)
		}
		closed := make(chan int, 1)
		c.SetCloseHandler(func(code int, _ string) error { closed <- code; return nil })
		kicked := time.Now()
		if err := b.tr.Kick(context.Background(), "kicked"); err != nil {
			t.Fatal(err)
		}
		select {
		case code := <-closed:
			if code != middleware.CloseKicked {
				t.Fatalf("close %d, want 4500", code)
			}
		case <-time.After(time.Hour):
			t.Fatal("no close frame")
		}
		ev := b.next(t)
		if ev.Transition != presence.Offline || ev.Reason != presence.ReasonKicked {
			t.Fatalf("event %+v, want offline kicked", ev)
		}
		if took := time.Since(kicked); took > tcfg.Grace+2*tcfg.SweepInterval {
			t.Errorf("offline %v after the kick, want within Grace+2×SweepInterval = %v", took, tcfg.Grace+2*tcfg.SweepInterval)
		}
		c.Close()
		b.close(t)
	})
}

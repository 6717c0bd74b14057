package middleware_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/vigilhq/vigil/middleware"
	"github.com/vigilhq/vigil/presence"
)

// TestCloseRaces drives every move of a Conn's life (close.go) against the
// others, on real sockets with the race detector: the scheduler's pings
// (raw), a flush writing a burst, the peer's close frame, the peer dropping
// TCP, Kick, Close from the application, the Handler returning, the
// Tracker's Kick (gone) and Shutdown, each started at a random moment. Every
// round, whatever wins: the Handler's Receive fails with a *CloseError, the
// Conn's context is cancelled with the same cause, the session ends exactly
// once (one Online, then one Offline), and nothing stays open.
func TestCloseRaces(t *testing.T) {
	rounds := 60
	if testing.Short() {
		rounds = 10
	}
	moves := []string{"peer close", "peer drop", "kick", "close", "handler returns", "tracker kick", "shutdown"}
	for round := range rounds {
		t.Run(fmt.Sprint(round), func(t *testing.T) {
			closeRound(t, round, moves)
		})
	}
}

// closeRound is one round of TestCloseRaces.
//
// timing: PingInterval 10ms so that a ping is due in nearly every round and
// races the other moves; TTL ≥ PingInterval + PongTimeout and WriteTimeout =
// PongTimeout, as New requires.
func closeRound(t *testing.T, round int, moves []string) {
	e := newEnv(t, presence.Config{TTL: time.Second, Grace: 20 * time.Millisecond, SweepInterval: 10 * time.Millisecond},
		middleware.Config{PingInterval: 10 * time.Millisecond, PongTimeout: 200 * time.Millisecond, DrainWindow: -1})
	type result struct {
		err   error
		cause error
	}
	conns := make(chan *middleware.Conn, 1)
	results := make(chan result, 1)
	burst := make([]byte, 2048)
	h := func(ctx context.Context, c *middleware.Conn) {
		conns <- c
		go func() { // a flush racing everything else
			for range 50 {
				if c.Send(middleware.Binary, burst) != nil {
					return
				}
			}
		}()
		for {
			m, err := c.Receive(ctx)
			if err != nil {
				results <- result{err, context.Cause(c.Context())}
				return
			}
			if string(m.Data) == "return" {
				results <- result{nil, nil}
				return
			}
		}
	}
	ts := startHTTP(t, e.mux(h))
	id := fmt.Sprintf("r%d", round)
	ws := mustDial(t, wsURL(ts, "/ws?id="+id))
	c := <-conns
	if ev := e.waitEvent(t, id, 2*time.Second); ev.Transition != presence.Online {
		t.Fatalf("event %+v, want online", ev)
	}
	go func() { // the peer reads (and answers pings) until the end
		for {
			if _, _, err := ws.ReadMessage(); err != nil {
				return
			}
		}
	}()

	// Two different moves at random moments within a few pings of each
	// other (the same one twice would race gorilla's writes in the test).
	rnd := rand.New(rand.NewPCG(uint64(round), 1))
	var wg sync.WaitGroup
	for _, i := range rnd.Perm(len(moves))[:2] {
		move := moves[i]
		delay := time.Duration(rnd.IntN(30)) * time.Millisecond
		wg.Go(func() {
			time.Sleep(delay) // not synchronisation: a random moment for the move
			switch move {
			case "peer close":
				_ = ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(1000, ""), time.Now().Add(time.Second))
			case "peer drop":
				_ = ws.NetConn().Close()
			case "kick":
				c.Kick()
			case "close":
				c.Close(4002, "app")
			case "handler returns":
				_ = ws.WriteMessage(websocket.TextMessage, []byte("return"))
			case "tracker kick":
				_ = e.tr.Kick(context.Background(), id)
			case "shutdown":
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				_ = e.srv.Shutdown(ctx)
			}
		})
	}
	wg.Wait()
	// Whatever happened, the connection ends: the peer drops it at last.
	_ = ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(1000, ""), time.Now().Add(time.Second))

	var r result
	select {
	case r = <-results:
	case <-time.After(5 * time.Second):
		_ = ws.NetConn().Close()
		t.Fatal("the Handler did not return")
	}
	if r.err != nil {
		var ce *middleware.CloseError
		if !errors.As(r.err, &ce) || !errors.Is(r.err, middleware.ErrClosed) {
			t.Fatalf("Receive: %v, want a *CloseError matching ErrClosed", r.err)
		}
		if !errors.Is(r.cause, ce) && r.cause != error(ce) {
			t.Errorf("context cause %v, Receive's error %v: want the same cause", r.cause, ce)
		}
	}
	ev := e.waitEvent(t, id, 3*time.Second)
	if ev.Transition != presence.Offline {
		t.Fatalf("event %+v, want offline", ev)
	}
	select {
	case ev := <-e.evCh:
		t.Fatalf("second event %+v after the offline", ev)
	case <-time.After(50 * time.Millisecond): // not synchronisation: a window for a duplicate
	}
	deadline := time.Now().Add(2 * time.Second)
	for e.srv.Stats().Open != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d connections still open", e.srv.Stats().Open)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

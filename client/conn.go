package client

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
)

// liveness is what the reader tells the heartbeat about one connection.
type liveness struct {
	lastRead atomic.Int64 // Client.now() of the last frame received
	blocked  atomic.Bool  // the reader waits for Receive
}

// serve runs one connection until it ends, and returns why: the reader's
// error, ErrTimeout, or ErrClosed after Close.
//
// The heartbeat looks at the age of the last frame on every tick, and once
// more PongTimeout after each ping, instead of trusting that timer alone: a
// connection is dead when a ping it sent went unanswered for PongTimeout,
// however late the ticks come.
func (c *Client) serve(ws *websocket.Conn) error {
	defer func() {
		c.mu.Lock()
		if c.ws == ws {
			c.ws = nil
		}
		c.mu.Unlock()
	}()
	lv := &liveness{}
	lv.lastRead.Store(c.now())
	touch := func(string) error { lv.lastRead.Store(c.now()); return nil }
	ws.SetPongHandler(touch)
	ws.SetPingHandler(func(data string) error {
		touch(data)
		err := ws.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(c.cfg.WriteTimeout))
		// As gorilla's default handler: a pong that cannot be written now
		// is not worth ending the connection over.
		var ne net.Error
		if err == nil || errors.Is(err, websocket.ErrCloseSent) || errors.As(err, &ne) {
			return nil
		}
		return err
	})
	readDone := make(chan error, 1)
	go c.read(ws, lv, readDone)

	var tick, pongDue <-chan time.Time
	var pongTimer *time.Timer
	if c.cfg.PingInterval > 0 {
		t := time.NewTicker(max(min(c.cfg.PingInterval, c.cfg.PongTimeout)/4, 5*time.Millisecond))
		defer t.Stop()
		tick = t.C
		// pongTimer fires PongTimeout after the ping in flight. The check
		// period is spent between the last frame and the ping; on ticks
		// alone, the deadline would wait for the next tick whenever the
		// tick due at it ran a little sooner after its due time than the
		// ping's had, one check period past the documented bound.
		pongTimer = time.NewTimer(c.cfg.PongTimeout)
		pongTimer.Stop()
		defer pongTimer.Stop()
	}
	var pingSent int64 = -1
	for {
		select {
		case err := <-readDone:
			_ = ws.Close()
			return err
		case <-pongDue:
			pongDue = nil
			if !lv.blocked.Load() && pingSent > lv.lastRead.Load() {
				_ = ws.Close() // as on a tick, below
				<-readDone
				return ErrTimeout
			}
		case <-tick:
			if lv.blocked.Load() {
				continue
			}
			now, last := c.now(), lv.lastRead.Load()
			switch {
			case pingSent > last:
				if time.Duration(now-pingSent) >= c.cfg.PongTimeout {
					_ = ws.Close() // drop at once: a dead server answers no close frame
					<-readDone
					return ErrTimeout
				}
			case time.Duration(now-last) >= c.cfg.PingInterval:
				pingSent = now
				pongTimer.Reset(c.cfg.PongTimeout) // fires no sooner than pingSent + PongTimeout
				pongDue = pongTimer.C
				ctx, cancel := context.WithTimeout(c.ctx, c.cfg.WriteTimeout)
				err := c.write(ctx, ws, Text, []byte(c.cfg.AppPing))
				cancel()
				if err != nil && c.ctx.Err() == nil {
					c.log.LogAttrs(c.ctx, slog.LevelDebug, "client: ping failed", slog.Any("err", err))
				}
			}
		case <-c.ctx.Done():
			c.mu.Lock()
			c.ws = nil
			c.mu.Unlock()
			wait := min(c.cfg.WriteTimeout, 2*time.Second)
			msg := websocket.FormatCloseMessage(websocket.CloseNormalClosure, "")
			if ws.WriteControl(websocket.CloseMessage, msg, time.Now().Add(wait)) == nil {
				t := time.NewTimer(wait)
				select {
				case <-readDone: // the server answered the close frame
					t.Stop()
					_ = ws.Close()
					return ErrClosed
				case <-t.C:
				}
			}
			_ = ws.Close()
			<-readDone
			return ErrClosed
		}
	}
}

// read is the reading goroutine of one connection. It hands messages to
// Receive and sends the reason the connection ended on done.
func (c *Client) read(ws *websocket.Conn, lv *liveness, done chan<- error) {
	for {
		typ, data, err := ws.ReadMessage()
		if err != nil {
			var ce *websocket.CloseError
			if errors.As(err, &ce) {
				done <- &CloseError{Code: ce.Code, Text: ce.Text}
			} else {
				done <- &CloseError{Code: websocket.CloseAbnormalClosure}
			}
			return
		}
		lv.lastRead.Store(c.now())
		if typ == websocket.TextMessage && string(data) == c.cfg.AppPong {
			continue
		}
		m := Message{Type: MessageType(typ), Data: data}
		select {
		case c.recv <- m:
			continue
		default:
		}
		lv.blocked.Store(true)
		select {
		case c.recv <- m:
		case <-c.ctx.Done():
			// Close: the run goroutine closes ws; read until that fails.
		}
		lv.lastRead.Store(c.now())
		lv.blocked.Store(false)
	}
}

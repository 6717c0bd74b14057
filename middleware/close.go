package middleware

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/gorilla/websocket"

	"github.com/vigilhq/vigil/presence"
)

// A Conn's life, and its one close path (this file).
//
// States (Conn.state, moving forward only):
//
//	open ──setCause──▶ closing ──finish──▶ ended
//
//   - open: the reader reads; Send queues and a flush goroutine writes;
//     the scheduler (wheel.visit) pings and checks deadlines.
//   - closing: the first cause is set (setCause; later ones are ignored)
//     and the context is cancelled with it (both in setCause). Send and Receive fail with it;
//     no ping is sent. The reader waits at most closeWait for the peer's
//     close frame, or fails at once if TCP was closed.
//   - ended: finish ran (once, on the reader's goroutine, or in Finish for
//     an attached connection): TCP closed, session ended with the cause's
//     reason, Conn unregistered. The scheduler forgets it at its next visit.
//
// Moves from open to closing, each through setCause:
//
//   - closeWith(ce, false): write the close frame of ce, then let the
//     reader wait for the answer. Callers: Close, Kick, sessionGone (the Tracker
//     ended the session: kicked, expired, restart, shutdown), the idle
//     timeout, Receive's ctx, invalid UTF-8, a Handler panic, and finish
//     itself (1000 when the Handler returned first). closeAsync runs it
//     on a goroutine of its own for callers that must not wait for a write
//     (Send's slow consumer, the scheduler while a flush is in progress,
//     Shutdown).
//   - closeWith(ce, true): a write failed (flush, ping) or Shutdown's ctx
//     expired (closeAsyncDrop): TCP is closed at once, after a close frame
//     only if nothing is being written.
//   - dropSilent (wheel.go): no frame from the peer for PingInterval +
//     PongTimeout; a dead peer answers no handshake, so the 4000 frame is
//     written raw if that can be done at once, and TCP closed.
//   - readFailed: the reader saw the peer's close frame (gorilla has
//     answered it), a frame over ReadLimit (gorilla has sent 1009) or a
//     broken connection (1006).
//
// Alongside the state, two things run on their own: the flush goroutine
// (flushing, queue; it exists only while messages wait) and the write
// exclusion (wmu, beginWrite): writes through gorilla share it, a raw ping
// or drop takes it alone with TryLock. readBroken belongs to the reader's
// goroutine: once set, the gorilla connection is not read again. finishing
// makes Finish run once.

// The states of a Conn.
const (
	stateOpen int32 = iota
	stateClosing
	stateEnded
)

// isClosing reports whether c left the open state.
func (c *Conn) isClosing() bool { return c.state.Load() >= stateClosing }

// isEnded reports whether finish ran.
func (c *Conn) isEnded() bool { return c.state.Load() == stateEnded }

// readFailed records why a read failed. The gorilla connection cannot be read
// again.
func (c *Conn) readFailed(err error) {
	c.readBroken = true
	var ce *websocket.CloseError
	switch {
	case errors.As(err, &ce): // gorilla has answered the close frame
		c.setCause(&CloseError{Code: ce.Code, Text: ce.Text, Remote: true, Reason: presence.ReasonClosed})
	case errors.Is(err, websocket.ErrReadLimit): // gorilla has sent 1009
		c.setCause(&CloseError{Code: CloseTooBig, Reason: presence.ReasonClosed})
	default:
		c.setCause(&CloseError{Code: closeAbnormal, Remote: true, Reason: presence.ReasonClosed})
	}
}

// Close closes the connection with code and reason text (at most 123
// bytes). It returns at once; the Handler's Receive then fails. Use the
// codes of docs/PROTOCOL.md: 4000–4499 ask the client to reconnect,
// 4500–4999 ask it not to.
func (c *Conn) Close(code int, text string) {
	if len(text) > 123 {
		text = text[:123]
	}
	c.closeAsync(&CloseError{Code: code, Text: text, Reason: presence.ReasonClosed})
}

// Kick closes the connection with 4500 "kicked" and ends its session with
// presence.ReasonKicked. To kick every connection of a client on every
// node, use Tracker.Kick.
func (c *Conn) Kick() {
	c.closeAsync(&CloseError{Code: CloseKicked, Text: "kicked", Reason: presence.ReasonKicked})
}

// sessionGone is the session's OnGone: the Tracker ended the session.
func (c *Conn) sessionGone(r presence.Reason) {
	ce := &CloseError{Code: CloseInternal, Text: string(r), Reason: r}
	switch r {
	case presence.ReasonKicked:
		ce.Code, ce.Text = CloseKicked, "kicked"
	case presence.ReasonShutdown:
		ce.Code, ce.Text = CloseGoingAway, "shutdown"
	case presence.ReasonExpired:
		ce.Code, ce.Text = CloseTimeout, "timeout"
	case presence.ReasonRestart, presence.ReasonNodeLost:
		ce.Code, ce.Text = CloseRestart, "restart"
	}
	if len(ce.Text) > 123 {
		ce.Text = ce.Text[:123]
	}
	c.closeAsync(ce)
}

// setCause is the move from open to closing: it records why the connection
// ends and cancels its context with that cause. It reports whether ce is
// the first cause; later ones change nothing.
func (c *Conn) setCause(ce *CloseError) bool {
	c.causeMu.Lock()
	if c.cause != nil {
		c.causeMu.Unlock()
		return false
	}
	c.cause = ce
	c.state.Store(stateClosing)
	c.causeMu.Unlock()
	c.cancel(ce)
	return true
}

func (c *Conn) closeErr() error {
	c.causeMu.Lock()
	defer c.causeMu.Unlock()
	if c.cause == nil {
		return &CloseError{Code: closeAbnormal, Reason: presence.ReasonClosed}
	}
	return c.cause
}

// closeAsync is closeWith on its own goroutine, for callers that must not
// block on a write.
func (c *Conn) closeAsync(ce *CloseError) {
	if c.isClosing() {
		return
	}
	go c.closeWith(ce, false)
}

// closeWith starts closing the connection for ce, unless it is already
// closing. With drop, or when the close frame cannot be written, the TCP
// connection is closed at once; otherwise the reader waits for the client's
// close frame for at most closeWait.
func (c *Conn) closeWith(ce *CloseError, drop bool) {
	if !c.setCause(ce) {
		return
	}
	if drop {
		if ce.Code != closeAbnormal && !c.flushing.Load() {
			_ = c.writeClose(ce)
		}
		_ = c.ws.NetConn().Close()
		return
	}
	if err := c.writeClose(ce); err != nil {
		_ = c.ws.NetConn().Close()
		return
	}
	_ = c.ws.NetConn().SetReadDeadline(time.Now().Add(c.s.cfg.closeWait()))
}

// writeClose writes the close frame of ce. c is closing, so the scheduler
// sends no ping after it.
func (c *Conn) writeClose(ce *CloseError) error {
	c.beginWrite()
	defer c.endWrite()
	return c.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(ce.Code, ce.Text),
		time.Now().Add(c.s.cfg.controlTimeout()))
}

// run is the connection's goroutine: the Handler, then the end.
func (c *Conn) run(h Handler) {
	defer c.finish()
	defer func() {
		if r := recover(); r != nil {
			c.s.obs.HandlerPanic()
			c.s.log.LogAttrs(c.ctx, slog.LevelError, "middleware: handler panicked",
				slog.String("client_id", c.clientID), slog.Any("panic", r))
			c.closeWith(&CloseError{Code: CloseInternal, Text: "internal error", Reason: presence.ReasonClosed}, false)
		}
	}()
	h(c.ctx, c)
}

// finish closes the connection (1000 if nothing else closed it), waits for
// the client's close frame within closeWait, and ends the session.
func (c *Conn) finish() {
	c.closeWith(&CloseError{Code: CloseNormal, Reason: presence.ReasonClosed}, false)
	if !c.attached {
		for !c.readBroken {
			if _, _, err := c.ws.NextReader(); err != nil {
				c.readBroken = true
			}
		}
	}
	_ = c.ws.NetConn().Close()
	c.state.Store(stateEnded)
	ce := c.closeErr().(*CloseError)
	if c.act != nil {
		c.act.stop()
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.s.cfg.WriteTimeout)
	if err := c.sess.End(ctx, ce.Reason); err != nil {
		c.s.log.LogAttrs(ctx, slog.LevelWarn, "middleware: end session",
			slog.String("client_id", c.clientID), slog.Any("err", err))
	}
	cancel()
	if ce.Code == closeAbnormal { // dropped: no close frame either way
		c.s.connDropped(ctx, time.Duration(c.s.now()-c.opened))
	}
	c.s.obs.ConnClosed(presence.TransportWS, ce.Code, ce.Reason)
	c.s.log.LogAttrs(ctx, slog.LevelDebug, "middleware: connection closed",
		slog.String("client_id", c.clientID), slog.String("session_id", c.sess.ID()),
		slog.Int("close_code", ce.Code), slog.Bool("remote", ce.Remote), slog.String("reason", string(ce.Reason)))
	c.s.unregister(c)
}

// closeAsyncDrop closes with ce and drops TCP without waiting for the
// client's answer.
func (c *Conn) closeAsyncDrop(ce *CloseError) {
	if c.isClosing() {
		_ = c.ws.NetConn().Close()
		return
	}
	go c.closeWith(ce, true)
}

package middleware

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/gorilla/websocket"

	"github.com/vigilhq/vigil/presence"
)

// MessageType is the type of a WebSocket data message.
type MessageType int

// The data message types.
const (
	Text   MessageType = websocket.TextMessage
	Binary MessageType = websocket.BinaryMessage
)

// Message is one application message.
type Message struct {
	Type MessageType
	Data []byte
}

// outMsg is one queued write: a data message, or (ping) a protocol ping the
// scheduler found due while a flush was writing.
type outMsg struct {
	typ  MessageType
	data []byte
	ping bool
}

// Conn is one WebSocket connection with its presence session. Send, Close
// and the accessors are safe for concurrent use; Receive must be called from
// one goroutine at a time (the Handler's).
type Conn struct {
	s        *Server
	ws       *websocket.Conn
	nc       net.Conn
	sess     *presence.Session
	clientID string
	attached bool // Attach: the application reads

	ctx    context.Context
	cancel context.CancelCauseFunc

	lastRead  atomic.Int64 // Server.now() of the last frame received
	lastApp   atomic.Int64 // of the last application message
	flushing  atomic.Bool  // a goroutine is writing queued messages
	closing   atomic.Bool  // cause is set
	ended     atomic.Bool  // finish ran; the scheduler forgets the Conn
	finishing atomic.Bool  // Finish was called

	// raw writes the scheduler's pings straight to the socket (see
	// wheel.ping); nil for attached connections, for sockets that are not
	// syscall.Conns (TLS) and on systems without the raw path (rawConn),
	// which are all pinged with WriteControl. pinging
	// and writers keep those raw pings and vigil's own gorilla writes
	// apart: see beginWrite.
	raw     syscall.RawConn
	pinging atomic.Bool
	writers atomic.Int32

	// Used only by the scheduler goroutine.
	nextPing int64
	due      int64

	// Used only by the reading goroutine.
	readBroken bool

	// qmu guards queue.
	qmu   sync.Mutex
	queue []outMsg

	// causeMu guards cause: why the connection ends; the first one set wins.
	causeMu sync.Mutex
	cause   *CloseError
}

// newConn wraps ws; attached is for Attach, where the application reads and
// writes through ws itself (without beginWrite), so it is never pinged raw.
func (s *Server) newConn(ws *websocket.Conn, clientID string, attached bool) *Conn {
	c := &Conn{s: s, ws: ws, nc: ws.NetConn(), clientID: clientID, attached: attached}
	c.ctx, c.cancel = context.WithCancelCause(context.Background())
	now := s.now()
	c.lastRead.Store(now)
	c.lastApp.Store(now)
	c.nextPing = now + int64(s.cfg.PingInterval)
	if !attached {
		c.raw = rawConn(c.nc)
	}
	ws.SetReadLimit(s.cfg.ReadLimit)
	ws.SetPongHandler(c.onControl)
	ws.SetPingHandler(func(data string) error {
		c.onControl(data)
		c.beginWrite()
		err := ws.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(s.cfg.controlTimeout()))
		c.endWrite()
		if err != nil && !errors.Is(err, websocket.ErrCloseSent) {
			return err
		}
		return nil
	})
	return c
}

// beginWrite and endWrite bracket every write vigil makes through gorilla on
// a connection the scheduler pings raw. The scheduler skips a ping while a
// write is in progress (so it never waits behind one, and never writes into
// the middle of a frame), and a write waits for a raw ping in progress, a
// single non-blocking system call. Sequentially consistent atomics make this
// a mutual exclusion: each side announces itself, then checks the other.
func (c *Conn) beginWrite() {
	c.writers.Add(1)
	for c.pinging.Load() {
		runtime.Gosched()
	}
}

func (c *Conn) endWrite() { c.writers.Add(-1) }

// onControl records a ping or pong from the client as a beat.
func (c *Conn) onControl(string) error {
	c.beat(c.s.now())
	return nil
}

// beat records a frame from the client at now: the dead-peer deadline, the
// counters and the presence session.
func (c *Conn) beat(now int64) {
	c.lastRead.Store(now)
	c.s.countBeat(presence.TransportWS)
	if c.sess != nil {
		c.sess.Beat()
	}
}

// ClientID returns the ID of the connection's client.
func (c *Conn) ClientID() string { return c.clientID }

// SessionID returns the ID of the connection's presence session.
func (c *Conn) SessionID() string { return c.sess.ID() }

// RemoteAddr returns the network address of the peer.
func (c *Conn) RemoteAddr() net.Addr { return c.nc.RemoteAddr() }

// Context returns the connection's context, cancelled when it starts
// closing, with the CloseError as its cause.
func (c *Conn) Context() context.Context { return c.ctx }

// WS returns the underlying gorilla connection, for Subprotocol and the
// like. Reading from it or writing data to it bypasses vigil and breaks the
// connection.
func (c *Conn) WS() *websocket.Conn { return c.ws }

// Receive returns the next application message. Pongs, pings and
// application pings are handled inside it and never returned; each frame
// counts as a beat. It fails with a *CloseError (matching ErrClosed) once
// the connection ends. If ctx is cancelled while Receive waits, the
// connection is closed with 1000: a WebSocket read cannot be abandoned
// half-way.
func (c *Conn) Receive(ctx context.Context) (Message, error) {
	if ctx != c.ctx && ctx.Done() != nil {
		stop := context.AfterFunc(ctx, func() {
			c.closeWith(&CloseError{Code: CloseNormal, Reason: presence.ReasonClosed}, false)
		})
		defer stop()
	}
	for {
		if c.readBroken {
			return Message{}, c.closeErr()
		}
		typ, data, err := c.ws.ReadMessage()
		if err != nil {
			c.readFailed(err)
			return Message{}, c.closeErr()
		}
		if deliver := c.received(MessageType(typ), data); deliver {
			return Message{Type: MessageType(typ), Data: data}, nil
		}
		if c.closing.Load() {
			return Message{}, c.closeErr()
		}
	}
}

// received handles one data message: it beats, rejects invalid UTF-8 with
// 1007, answers application pings, and reports whether the message is for
// the application.
func (c *Conn) received(typ MessageType, data []byte) bool {
	now := c.s.now()
	c.beat(now)
	if typ == Text {
		if !utf8.Valid(data) {
			c.s.stats.invalidUTF8.Add(1)
			c.closeWith(&CloseError{Code: CloseInvalidPayload, Text: "invalid utf-8", Reason: presence.ReasonClosed}, false)
			return false
		}
		if !c.s.cfg.DisableAppPing && string(data) == c.s.cfg.AppPing {
			c.s.stats.appPings.Add(1)
			_ = c.Send(Text, c.s.pongMsg)
			return false
		}
	}
	c.lastApp.Store(now)
	c.s.stats.messagesIn.Add(1)
	return true
}

// readFailed records why a read failed. The gorilla connection cannot be read
// again.
func (c *Conn) readFailed(err error) {
	c.readBroken = true
	var ce *websocket.CloseError
	switch {
	case errors.As(err, &ce): // gorilla has answered the close frame
		c.setCause(&CloseError{Code: ce.Code, Text: ce.Text, Remote: true, Reason: presence.ReasonClosed})
	case errors.Is(err, websocket.ErrReadLimit): // gorilla has sent 1009
		c.s.stats.tooBig.Add(1)
		c.setCause(&CloseError{Code: CloseTooBig, Reason: presence.ReasonClosed})
	default:
		c.setCause(&CloseError{Code: closeAbnormal, Remote: true, Reason: presence.ReasonClosed})
	}
}

// Send queues a message for the client and returns without waiting for the
// write. Messages are written in order, each within Config.WriteTimeout.
// data must not be modified afterwards; the same slice may be sent to many
// connections. Send fails with ErrSlowConsumer when Config.SendQueueSize
// messages are already waiting (the connection is then closed with 4001),
// and with a *CloseError once the connection is closing.
func (c *Conn) Send(typ MessageType, data []byte) error {
	if c.closing.Load() {
		return c.closeErr()
	}
	c.qmu.Lock()
	if len(c.queue) >= c.s.cfg.SendQueueSize {
		c.qmu.Unlock()
		c.s.stats.slow.Add(1)
		c.closeAsync(&CloseError{Code: CloseSlowConsumer, Text: "slow", Reason: presence.ReasonClosed})
		return ErrSlowConsumer
	}
	c.queue = append(c.queue, outMsg{typ: typ, data: data})
	start := !c.flushing.Load()
	if start {
		c.flushing.Store(true)
	}
	c.qmu.Unlock()
	if start {
		go c.flush()
	}
	return nil
}

// flush writes queued messages until the queue is empty, then exits; an idle
// connection has no writer goroutine.
func (c *Conn) flush() {
	for {
		c.qmu.Lock()
		if len(c.queue) == 0 {
			c.queue = nil
			c.flushing.Store(false)
			c.qmu.Unlock()
			return
		}
		m := c.queue[0]
		c.queue[0] = outMsg{}
		c.queue = c.queue[1:]
		c.qmu.Unlock()

		c.beginWrite()
		deadline := time.Now().Add(c.s.cfg.WriteTimeout)
		var err error
		if m.ping {
			err = c.ws.WriteControl(websocket.PingMessage, nil, deadline)
		} else {
			_ = c.ws.SetWriteDeadline(deadline)
			err = c.ws.WriteMessage(int(m.typ), m.data)
		}
		c.endWrite()
		if err != nil {
			c.qmu.Lock()
			c.queue = nil // flushing stays set: nothing more is written
			c.qmu.Unlock()
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				c.s.stats.slow.Add(1)
				c.closeWith(&CloseError{Code: CloseSlowConsumer, Text: "slow", Reason: presence.ReasonClosed}, true)
			} else {
				c.closeWith(&CloseError{Code: closeAbnormal, Remote: true, Reason: presence.ReasonClosed}, true)
			}
			return
		}
		if !m.ping {
			c.s.stats.messagesOut.Add(1)
		}
	}
}

// queuePing queues a ping behind the message being written, and reports
// whether it did: only while a flush is in progress, which then writes it.
// A connection busy writing for longer than PingInterval+PongTimeout (a
// broadcast stream to a client that only reads) would otherwise get no ping,
// send no pong, and be dropped as dead.
func (c *Conn) queuePing() bool {
	c.qmu.Lock()
	defer c.qmu.Unlock()
	if !c.flushing.Load() {
		return false
	}
	if len(c.queue) == 0 || !c.queue[0].ping {
		// First in line: the ping waits for the write in progress only,
		// which WriteTimeout (at most PongTimeout) bounds.
		c.queue = slices.Insert(c.queue, 0, outMsg{ping: true})
	}
	return true
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

// gone is the session's OnGone: the Tracker ended the session.
func (c *Conn) gone(r presence.Reason) {
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

// setCause records why the connection ends; it reports whether ce is the
// first cause.
func (c *Conn) setCause(ce *CloseError) bool {
	c.causeMu.Lock()
	defer c.causeMu.Unlock()
	if c.cause != nil {
		return false
	}
	c.cause = ce
	c.closing.Store(true)
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
	if c.closing.Load() {
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
	c.cancel(ce)
	if drop {
		if ce.Code != closeAbnormal && !c.flushing.Load() {
			_ = c.writeClose(ce)
		}
		_ = c.nc.Close()
		return
	}
	if err := c.writeClose(ce); err != nil {
		_ = c.nc.Close()
		return
	}
	_ = c.nc.SetReadDeadline(time.Now().Add(c.s.cfg.closeWait()))
}

// writeClose writes the close frame of ce. closing is set, so the scheduler
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
			c.s.stats.panics.Add(1)
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
	_ = c.nc.Close()
	c.ended.Store(true)
	ce := c.closeErr().(*CloseError)
	c.cancel(ce)
	ctx, cancel := context.WithTimeout(context.Background(), c.s.cfg.WriteTimeout)
	if err := c.sess.End(ctx, ce.Reason); err != nil {
		c.s.log.LogAttrs(ctx, slog.LevelWarn, "middleware: end session",
			slog.String("client_id", c.clientID), slog.Any("err", err))
	}
	cancel()
	c.s.stats.closed(ce.Code)
	c.s.obs.ConnClosed(presence.TransportWS, ce.Code, ce.Reason)
	c.s.log.LogAttrs(ctx, slog.LevelDebug, "middleware: connection closed",
		slog.String("client_id", c.clientID), slog.String("session_id", c.sess.ID()),
		slog.Int("close_code", ce.Code), slog.Bool("remote", ce.Remote), slog.String("reason", string(ce.Reason)))
	c.s.unregister(c)
}

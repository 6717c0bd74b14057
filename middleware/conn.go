package middleware

import (
	"bufio"
	"context"
	"errors"
	"net"
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
	ws       *websocket.Conn // its NetConn is the socket
	sess     *presence.Session
	clientID string
	// act takes the session's activity reports. The reading goroutine
	// makes it at the first report (most connections never send one) and
	// stops it in finish; Attach makes it at once.
	act *reporter

	ctx    context.Context
	cancel context.CancelCauseFunc

	opened    int64        // Server.now() when it opened
	lastRead  atomic.Int64 // Server.now() of the last frame received
	lastApp   atomic.Int64 // of the last application message
	state     atomic.Int32 // open, closing or ended: see close.go
	flushing  atomic.Bool  // a goroutine is writing queued messages
	finishing atomic.Bool  // Finish was called (Attach)
	attached  bool         // Attach: the application reads

	// Used only by the reading goroutine; here, it fills the padding.
	readBroken bool

	// raw writes the scheduler's pings straight to the socket (see
	// wheel.ping); nil for attached connections, for sockets that are not
	// syscall.Conns (TLS) and on systems without the raw path (rawConn),
	// which are all pinged with WriteControl. wmu keeps those raw pings
	// and vigil's own gorilla writes apart: see beginWrite.
	raw syscall.RawConn
	wmu sync.RWMutex

	// Used only by the scheduler goroutine.
	nextPing int64
	due      int64

	// Used only by the reading goroutine.
	//
	// br is gorilla's read buffer (see hijacker); nil when gorilla made
	// its own (attached connections, small ReadBufferSize). lent is the
	// pooled reader whose buffer br holds, nil while waitIdle has given it
	// back.
	br   *bufio.Reader
	lent *bufio.Reader

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
	c := &Conn{s: s, ws: ws, clientID: clientID, attached: attached}
	c.ctx, c.cancel = context.WithCancelCause(context.Background())
	now := s.now()
	c.opened = now
	c.lastRead.Store(now)
	c.lastApp.Store(now)
	c.nextPing = now + int64(s.cfg.PingInterval)
	if !attached {
		c.raw = rawConn(c.ws.NetConn())
	}
	ws.SetReadLimit(s.cfg.ReadLimit)
	ws.SetPongHandler(c.onControl)
	ws.SetPingHandler(c.onPing)
	return c
}

// beginWrite and endWrite bracket every write vigil makes through gorilla.
// Writes share wmu (gorilla orders them among themselves); the scheduler's
// raw ping takes it alone, with TryLock: it skips a ping while a write is in
// progress (it never waits behind one, never clears a deadline a write is
// using, and never follows a close frame), and a write waits for a raw ping
// in progress, a single non-blocking system call.
func (c *Conn) beginWrite() { c.wmu.RLock() }

func (c *Conn) endWrite() { c.wmu.RUnlock() }

// onControl records a ping or pong from the client as a beat.
func (c *Conn) onControl(string) error {
	c.heard(c.s.now())
	return nil
}

// onPing answers a ping from the client, which counts as a beat.
func (c *Conn) onPing(data string) error {
	c.onControl(data)
	return c.writePong(data)
}

// writePong answers a ping with data.
func (c *Conn) writePong(data string) error {
	c.beginWrite()
	err := c.ws.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(c.s.cfg.controlTimeout()))
	c.endWrite()
	if err != nil && !errors.Is(err, websocket.ErrCloseSent) {
		return err
	}
	return nil
}

// pong answers, on a goroutine of its own, a ping that takeControl read:
// a pong that cannot be written drops the connection, as a failed read
// does.
func (c *Conn) pong(data string) {
	if err := c.writePong(data); err != nil {
		c.closeWith(&CloseError{Code: closeAbnormal, Remote: true, Reason: presence.ReasonClosed}, true)
	}
}

// heard records a frame from the client at now (a beat): the dead-peer deadline, the
// counters and the presence session.
func (c *Conn) heard(now int64) {
	c.lastRead.Store(now)
	c.s.obs.Beat(presence.TransportWS)
	if c.sess != nil {
		c.sess.Beat()
	}
}

// ClientID returns the ID of the connection's client.
func (c *Conn) ClientID() string { return c.clientID }

// SessionID returns the ID of the connection's presence session.
func (c *Conn) SessionID() string { return c.sess.ID() }

// RemoteAddr returns the network address of the peer.
func (c *Conn) RemoteAddr() net.Addr { return c.ws.NetConn().RemoteAddr() }

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
		if c.waitIdle(); c.readBroken {
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
		if c.isClosing() {
			return Message{}, c.closeErr()
		}
	}
}

// waitIdle returns once the socket has data to read, or its read fails (a
// deadline, a close), when gorilla's read buffer is empty: the read that
// follows would otherwise wait inside gorilla's read path, several frames
// deep, and the goroutine's stack would stay grown (4 KiB where 2 KiB do)
// for as long as the connection is idle. Parked here, the stack stays
// shallow. (Once grown, it stays so: runtime.shrinkstack halves a stack
// only while less than a quarter of it, its 800-byte guard included, is in
// use, never with the Handler's frames on it. Messages through gorilla
// grow it; the pings and pongs of an idle connection must not.)
// Waiting consumes nothing but the pings and pongs it handles itself
// (takeControl), and a failed wait leaves the error to the read that
// follows, so gorilla still sees every other frame, deadline and close.
// When answering a ping fails, the read fails (readFailed).
//
// While it waits, the empty read buffer goes back to the Server's pool
// (an idle connection holds none) and a buffer comes back before gorilla
// reads again. bufio.Reader cannot swap buffers, so the reader gorilla
// holds is swapped by value with a pooled one; only this goroutine reads
// through it, and gorilla keeps no slice of the buffer between messages.
func (c *Conn) waitIdle() {
	if c.br == nil || c.raw == nil || c.br.Buffered() > 0 {
		return
	}
	c.lendReader()
	for c.raw.Read(readable) == nil {
		op := c.takeControl()
		if op == 0 {
			break
		}
		if op == websocket.PongMessage {
			c.pongBeat()
		}
	}
	c.borrowReader()
}

// pongBeat records a pong that takeControl read, one frame shallower than
// there (the Observer's Beat is deep). It is not inlined, so that what
// heard needs takes no room in waitIdle's frame.
//
//go:noinline
func (c *Conn) pongBeat() { c.heard(c.s.now()) }

// lendReader gives gorilla's empty reader's buffer to the Server's pool.
// It and borrowReader are functions of their own (too large to be inlined)
// so that their bufio.Reader copies take no room in waitIdle's frame, which
// stays on the stack while the connection is idle: with the Handler's
// frames above it, more than about 1.1 KiB in use there grows the stack to
// 4 KiB, and a GC does not shrink it back while 1 KiB is in use.
func (c *Conn) lendReader() {
	if c.lent == nil { // br's buffer came with the hijacker's reader
		c.lent = new(bufio.Reader)
	}
	*c.lent = *c.br
	*c.br = bufio.Reader{}
	c.s.readers.Put(c.lent)
	c.lent = nil
}

// borrowReader gives gorilla's reader a buffer again.
func (c *Conn) borrowReader() {
	if r, ok := c.s.readers.Get().(*bufio.Reader); ok {
		c.lent = r
	} else {
		c.lent = bufio.NewReaderSize(c.ws.NetConn(), c.s.ownReader)
	}
	*c.br = *c.lent
	c.br.Reset(c.ws.NetConn())
}

// received handles one data message: it beats, rejects invalid UTF-8 with
// 1007, answers application pings, records activity reports, and reports whether the message is for
// the application.
func (c *Conn) received(typ MessageType, data []byte) bool {
	now := c.s.now()
	c.heard(now)
	if typ == Text {
		if !utf8.Valid(data) {
			c.closeWith(&CloseError{Code: CloseInvalidPayload, Text: "invalid utf-8", Reason: presence.ReasonClosed}, false)
			return false
		}
		if !c.s.cfg.DisableAppPing && string(data) == c.s.cfg.AppPing {
			c.s.obs.AppPing()
			_ = c.Send(Text, c.s.pongMsg)
			return false
		}
		if !c.s.cfg.DisableActivity && len(data) >= len(ActivityPrefix) && string(data[:len(ActivityPrefix)]) == ActivityPrefix {
			c.activityMessage(data)
			return false
		}
	}
	c.lastApp.Store(now)
	c.s.obs.MessageReceived()
	return true
}

// Send queues a message for the client and returns without waiting for the
// write. Messages are written in order, each within Config.WriteTimeout.
// data must not be modified afterwards; the same slice may be sent to many
// connections. Send fails with ErrSlowConsumer when Config.SendQueueSize
// messages are already waiting (the connection is then closed with 4001),
// and with a *CloseError once the connection is closing.
func (c *Conn) Send(typ MessageType, data []byte) error {
	if c.isClosing() {
		return c.closeErr()
	}
	c.qmu.Lock()
	if len(c.queue) >= c.s.cfg.SendQueueSize {
		c.qmu.Unlock()
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
				c.closeWith(&CloseError{Code: CloseSlowConsumer, Text: "slow", Reason: presence.ReasonClosed}, true)
			} else {
				c.closeWith(&CloseError{Code: closeAbnormal, Remote: true, Reason: presence.ReasonClosed}, true)
			}
			return
		}
		if !m.ping {
			c.s.obs.MessageSent()
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

package middleware

import (
	"slices"
	"sync"
	"time"

	"github.com/gorilla/websocket"

	"github.com/vigilhq/vigil/presence"
)

// wheel is the one ping scheduler of a Server: a timing wheel that wakes once
// per tick and visits the connections due then. A visit sends the ping that
// is due, drops a connection whose client sent no frame for
// PingInterval+PongTimeout, closes one idle for IdleTimeout, and schedules
// the next visit. No connection has a timer or goroutine of its own for
// this.
type wheel struct {
	s    *Server
	tick int64 // nanoseconds

	// mu guards the fields below.
	mu      sync.Mutex
	slots   [][]*Conn
	cur     int64 // the last tick processed
	running bool
	stop    chan struct{}
	done    chan struct{}

	// Used only by the wheel goroutine.
	work []*Conn
	rawWriter
}

func newWheel(s *Server) *wheel {
	tick := int64(s.cfg.tick())
	horizon := int64(s.cfg.PingInterval + s.cfg.PongTimeout)
	n := min(horizon/tick+2, 1<<14)
	w := &wheel{s: s, tick: tick, slots: make([][]*Conn, n)}
	w.rawWriter.init()
	return w
}

// add schedules c's first visit and starts the wheel if it is not running.
func (w *wheel) add(c *Conn) {
	due := c.nextPing
	w.mu.Lock()
	if !w.running {
		w.running = true
		w.cur = w.s.now() / w.tick
		w.stop = make(chan struct{})
		w.done = make(chan struct{})
		go w.loop(w.stop, w.done)
	}
	w.insert(c, due)
	w.mu.Unlock()
}

// insert files c under the tick of due, never in the past. w.mu must be held.
func (w *wheel) insert(c *Conn, due int64) {
	t := max((due+w.tick-1)/w.tick, w.cur+1)
	c.due = t
	i := t % int64(len(w.slots))
	w.slots[i] = append(w.slots[i], c)
}

// remove forgets c, which ended, at once rather than at its next visit (up
// to PingInterval later): under churn, every connection closed within the
// last ping interval would otherwise stay reachable from its slot, with its
// gorilla connection and read buffer (about 1.5 KiB each; 3,000 closes a
// second would hold over 100 MB). A c being visited right now is not in
// any slot; its visit sees it ended and forgets it.
func (w *wheel) remove(c *Conn) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.running {
		return
	}
	i := c.due % int64(len(w.slots))
	slot := w.slots[i]
	if j := slices.Index(slot, c); j >= 0 {
		last := len(slot) - 1
		slot[j] = slot[last]
		slot[last] = nil
		w.slots[i] = slot[:last]
	}
}

// shutdown stops the wheel goroutine and waits for it.
func (w *wheel) shutdown() {
	w.mu.Lock()
	if !w.running {
		w.mu.Unlock()
		return
	}
	w.running = false
	stop, done := w.stop, w.done
	for i := range w.slots {
		clear(w.slots[i])
		w.slots[i] = nil
	}
	w.mu.Unlock()
	close(stop)
	<-done
}

// loop wakes at each tick boundary of Server.now (not at a ticker's own
// phase, which would add up to one tick of delay to every deadline).
func (w *wheel) loop(stop, done chan struct{}) {
	defer close(done)
	t := time.NewTimer(w.untilNextTick())
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		w.advance()
		t.Reset(w.untilNextTick())
	}
}

func (w *wheel) untilNextTick() time.Duration {
	now := w.s.now()
	return time.Duration((now/w.tick+1)*w.tick - now)
}

// advance processes every tick up to now.
func (w *wheel) advance() {
	now := w.s.now()
	target := now / w.tick
	for {
		w.mu.Lock()
		if !w.running || w.cur >= target {
			w.mu.Unlock()
			return
		}
		w.cur++
		i := w.cur % int64(len(w.slots))
		slot := w.slots[i]
		keep := slot[:0]
		for _, c := range slot {
			switch {
			case c.isEnded():
			case c.due > w.cur:
				keep = append(keep, c) // a later turn of the wheel
			default:
				w.work = append(w.work, c)
			}
		}
		clear(slot[len(keep):])
		if len(keep) == 0 {
			keep = nil // let an emptied slot's array go
		}
		w.slots[i] = keep
		w.mu.Unlock()

		for j, c := range w.work {
			w.work[j] = nil
			if next, ok := w.visit(c, now); ok {
				w.mu.Lock()
				if w.running {
					w.insert(c, next)
				}
				w.mu.Unlock()
			}
		}
		w.work = w.work[:0]
	}
}

// visit does what is due on c at now and returns when to visit it next, or
// false to forget it.
func (w *wheel) visit(c *Conn, now int64) (int64, bool) {
	cfg := &w.s.cfg
	if c.isEnded() {
		return 0, false
	}
	if c.isClosing() {
		// The reader waits for the close frame with a read deadline; look
		// again in case it never gets there (an attached connection).
		return now + int64(cfg.closeWait()), true
	}
	last := c.lastRead.Load()
	deadline := last + int64(cfg.PingInterval+cfg.PongTimeout)
	if now >= deadline {
		w.s.obs.HeartbeatTimeout()
		w.dropSilent(c)
		return 0, false
	}
	if cfg.IdleTimeout > 0 {
		idleAt := c.lastApp.Load() + int64(cfg.IdleTimeout)
		if now >= idleAt {
			ce := &CloseError{Code: CloseIdle, Text: "idle", Reason: presence.ReasonIdle}
			if c.flushing.Load() {
				c.closeAsync(ce) // its write could wait behind the flush
			} else {
				c.closeWith(ce, false)
			}
			return now + int64(cfg.closeWait()), true
		}
		deadline = min(deadline, idleAt)
	}
	if now >= c.nextPing {
		sent, err := w.ping(c)
		if err != nil {
			c.closeWith(&CloseError{Code: closeAbnormal, Reason: presence.ReasonClosed}, true)
			return 0, false
		}
		if !sent {
			// A write of vigil's was in progress, or the socket's send
			// buffer was full: the ping stays due, for the next tick.
			return min(deadline, now+w.tick), true
		}
		w.s.obs.PingSent()
		c.nextPing += int64(cfg.PingInterval)
		if c.nextPing <= now {
			c.nextPing = now + int64(cfg.PingInterval)
		}
	}
	return min(deadline, c.nextPing), true
}

// pingFrame is a server's ping frame with no payload: FIN, opcode 9, length
// 0, unmasked. timeoutFrame is the close frame of a connection dropped for
// silence: 4000 "timeout".
var (
	pingFrame    = []byte{0x80 | websocket.PingMessage, 0}
	timeoutFrame = append([]byte{0x80 | websocket.CloseMessage, 2 + 7, CloseTimeout >> 8, CloseTimeout & 0xff}, "timeout"...)
)

// ping sends a ping on c, or queues it behind the messages a flush is
// writing, and reports whether it did. On a plain TCP connection it writes
// the frame with one non-blocking system call (see writeRaw); it sends
// nothing, without error, while vigil is writing to c (its frame must not be
// split) and once c is closing (no frame may follow the close frame). Other
// connections get gorilla's WriteControl.
func (w *wheel) ping(c *Conn) (bool, error) {
	if c.queuePing() {
		return true, nil
	}
	if c.raw == nil {
		err := c.ws.WriteControl(websocket.PingMessage, nil, time.Now().Add(w.s.cfg.controlTimeout()))
		return err == nil, err
	}
	if !c.wmu.TryLock() {
		return false, nil // a write is in progress
	}
	defer c.wmu.Unlock()
	if c.isClosing() {
		return false, nil
	}
	return w.writeRaw(c.ws.NetConn(), c.raw, pingFrame)
}

// dropSilent closes c, whose client sent no frame within
// PingInterval+PongTimeout: a dead peer will not answer a close handshake,
// so it writes the close frame (4000 "timeout") the way ping writes a ping,
// if it can at once, and closes TCP.
func (w *wheel) dropSilent(c *Conn) {
	ce := &CloseError{Code: CloseTimeout, Text: "timeout", Reason: presence.ReasonExpired}
	if c.raw == nil {
		c.closeWith(ce, true)
		return
	}
	if !c.setCause(ce) {
		return
	}
	if c.wmu.TryLock() {
		_, _ = w.writeRaw(c.ws.NetConn(), c.raw, timeoutFrame)
		c.wmu.Unlock()
	}
	_ = c.ws.NetConn().Close()
}

//go:build unix

package middleware

import (
	"sync/atomic"
	"syscall"

	"github.com/gorilla/websocket"
)

// takeControl reads the ping or pong at the front of the socket, if a whole
// one is there, and returns its opcode, or 0. It answers a ping as onPing
// does; for a pong, the caller records the beat (pongBeat), one frame
// shallower than here. It runs between messages, with gorilla's read buffer
// empty, so that gorilla's next read starts at the following frame. When
// the frame cannot be read whole or the pong written, the read fails
// (readFailed) and it returns 0.
//
// An idle connection's control frames (a pong to each of the scheduler's
// pings) then never enter gorilla's read path, which would grow the
// reader's stack to 4 KiB for good: runtime.shrinkstack halves a stack only
// while less than a quarter of it, its 800-byte guard included, is in use,
// never with the Handler's frames on it. So what runs here must stay about
// as shallow as the wait in waitIdle: it is a function of its own (its
// frame is not on the stack while the reader waits), it reads and writes in
// one RawConn.Control call each (shallower than Read and Write; the socket
// is readable, and a write that cannot be made at once is left to a
// goroutine), and it allocates nothing in the steady state
// (controlReaders). The beat of a pong, the deepest of it (the Observer's
// Beat), is left to the caller.
//
//go:noinline
func (c *Conn) takeControl() byte {
	r := getControlReader()
	if c.raw.Control(r.read) != nil || r.size == 0 {
		putControlReader(r)
		return 0 // the read that follows reports any error
	}
	op := r.buf[0] & 0xf
	err := error(nil)
	if r.errno != 0 {
		err = r.errno
	} else if op == websocket.PingMessage {
		err = c.answerPing(r)
	}
	putControlReader(r)
	if err != nil {
		c.readFailed(err)
		return 0
	}
	return op
}

// answerPing answers the ping in r, as onPing does. It writes the pong
// with one non-blocking system call, the way the scheduler pings (see
// wheel.ping), unless a write of vigil's is in progress (wmu's TryLock
// excludes them), c is closing (no frame may follow the close frame;
// gorilla would not write it either) or the send buffer is full: then
// gorilla writes it, on a goroutine of its own. The pong (FIN, opcode 10,
// the payload unmasked) is built in place, over the ping's mask key.
//
//go:noinline
func (c *Conn) answerPing(r *controlReader) error {
	c.heard(c.s.now())
	if !c.wmu.TryLock() {
		go c.pong(string(r.buf[6:r.size]))
		return nil
	}
	if c.isClosing() {
		c.wmu.Unlock()
		return nil
	}
	r.buf[4], r.buf[5] = 0x80|websocket.PongMessage, byte(r.size-6)
	err := c.raw.Control(r.write)
	c.wmu.Unlock()
	switch {
	case err != nil:
		return err
	case r.errno == syscall.EAGAIN || r.errno == syscall.EINTR:
		go c.pong(string(r.buf[6:r.size]))
		return nil
	case r.errno != 0:
		return r.errno
	case r.n != uintptr(r.size-4):
		return errPartialWrite
	}
	return nil
}

// maxControlFrame is the size of the largest control frame a client may
// send: a 2-byte header, a 4-byte mask key and 125 bytes of payload
// (RFC 6455, 5.5).
const maxControlFrame = 2 + 4 + 125

// controlReader is the state of one takeControl. Its system calls are
// closures rather than method values, which would add a wrapper's frame to
// the stack.
type controlReader struct {
	read, write func(fd uintptr) // made once
	buf         [maxControlFrame]byte
	size        int     // of the control frame read into buf, or 0
	n           uintptr // what the last system call read or wrote
	errno       syscall.Errno
}

// controlReaders keeps takeControl's controlReaders, so that a pong
// allocates nothing and an idle connection holds none. Unlike a sync.Pool,
// which each GC empties, it keeps them: an allocation at the depth of
// takeControl (mallocgc's slow path) could grow the reader's stack. Only
// readers between two frames use one, for a system call or two, so few are
// taken at once; beyond len(controlReaders), one is made and dropped.
var controlReaders [16]atomic.Pointer[controlReader]

// getControlReader and putControlReader are not inlined, so that their
// loops take no room in takeControl's frame.
//
//go:noinline
func getControlReader() *controlReader {
	for i := range controlReaders {
		if controlReaders[i].Load() != nil {
			if r := controlReaders[i].Swap(nil); r != nil {
				return r
			}
		}
	}
	r := new(controlReader)
	r.read = func(fd uintptr) {
		// Peek: a whole ping or pong is consumed, anything else left
		// to gorilla.
		r.size = 0
		r.n, r.errno = recvFD(fd, r.buf[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		if r.errno != 0 {
			r.errno = 0 // gorilla's read reports it
			return
		}
		if r.size = controlSize(r.buf[:r.n]); r.size == 0 {
			return
		}
		// peek saw it and only this goroutine reads: recv takes it all.
		r.n, r.errno = recvFD(fd, r.buf[:r.size], syscall.MSG_DONTWAIT)
		if r.errno == 0 && r.n != uintptr(r.size) {
			r.errno = syscall.EIO
		}
		payload := r.buf[6:r.size]
		for i := range payload {
			payload[i] ^= r.buf[2+(i&3)]
		}
	}
	r.write = func(fd uintptr) {
		var n int
		n, r.errno = writeFD(fd, r.buf[4:r.size])
		r.n = uintptr(n)
	}
	return r
}

//go:noinline
func putControlReader(r *controlReader) {
	for i := range controlReaders {
		if controlReaders[i].CompareAndSwap(nil, r) {
			return
		}
	}
}

// controlSize returns the size of the ping or pong frame at the front of
// p, or 0 when p does not start with a whole one with FIN, no RSV bit, a
// mask and at most 125 bytes of payload, which gorilla then reads (and
// rejects if it must). An extended length (126, 127) does not fit in a
// controlReader's buffer.
func controlSize(p []byte) int {
	if len(p) < 2 {
		return 0
	}
	if p[0] != 0x80|websocket.PingMessage && p[0] != 0x80|websocket.PongMessage || p[1]&0x80 == 0 {
		return 0
	}
	if size := 6 + int(p[1]&0x7f); size <= len(p) {
		return size
	}
	return 0
}

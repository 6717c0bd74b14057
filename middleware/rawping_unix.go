//go:build unix

package middleware

import (
	"errors"
	"net"
	"syscall"
	"time"
)

// rawConn returns the raw socket of nc for the scheduler's pings, or nil
// when nc is not a plain socket (TLS), which is then pinged with
// WriteControl.
func rawConn(nc net.Conn) syscall.RawConn {
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return nil
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	return raw
}

var errPartialWrite = errors.New("middleware: control frame written in part")

// rawWriter is the wheel goroutine's state for writeRaw, kept in the wheel
// so that a raw write allocates nothing.
type rawWriter struct {
	fn    func(fd uintptr) bool // w.rawWrite, made once
	frame []byte                // what rawWrite writes
	n     int                   // what its system call returned
	errno syscall.Errno
}

func (w *rawWriter) init() { w.fn = w.rawWrite }

// writeRaw writes frame to raw, nc's socket, with one non-blocking system
// call: no frame buffer, no write deadline of its own (a runtime timer per
// connection and ping), no wait. When the socket's send buffer is full (the
// client reads nothing; its deadline will drop it), it writes nothing and
// reports false. The caller must hold c.wmu alone (TryLock).
//
// Every write through gorilla sets a write deadline on the socket and leaves
// it there when done; RawConn.Write fails on a deadline that has passed. So
// writeRaw first clears it: no write of vigil's is in progress (wmu
// excludes them), and the next one sets its own. Without this, a message
// written at the defaults (WriteTimeout 10s) broke the next ping 25s later
// (issue 10). RawConn.Write takes the socket's write lock, so the frame
// cannot land inside one that gorilla writes on its own (the close frame it
// answers a client's close with).
func (w *rawWriter) writeRaw(nc net.Conn, raw syscall.RawConn, frame []byte) (bool, error) {
	if err := nc.SetWriteDeadline(time.Time{}); err != nil {
		return false, err
	}
	w.frame, w.n, w.errno = frame, 0, 0
	if err := raw.Write(w.fn); err != nil {
		return false, err
	}
	switch {
	case w.errno == syscall.EAGAIN || w.errno == syscall.EINTR:
		return false, nil
	case w.errno != 0:
		return false, w.errno
	case w.n != len(frame):
		return false, errPartialWrite
	}
	return true, nil
}

// rawWrite is writeRaw's system call; it never asks RawConn.Write to wait.
func (w *rawWriter) rawWrite(fd uintptr) bool {
	w.n, w.errno = writeFD(fd, w.frame)
	return true
}

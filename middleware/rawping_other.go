//go:build !unix

package middleware

import (
	"errors"
	"net"
	"syscall"
)

// rawConn returns nil: on Windows and other systems without non-blocking
// socket writes from Go, every connection is pinged with WriteControl.
func rawConn(net.Conn) syscall.RawConn { return nil }

// readable is never called: rawConn returns nil.
func readable(uintptr) bool { return true }

// takeControl is never called: rawConn returns nil.
func (c *Conn) takeControl() byte { return 0 }

type rawWriter struct{}

func (*rawWriter) init() {}

func (*rawWriter) writeRaw(net.Conn, syscall.RawConn, []byte) (bool, error) {
	return false, errors.ErrUnsupported
}

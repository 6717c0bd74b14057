//go:build unix && !linux

package middleware

import (
	"errors"
	"syscall"
)

// writeFD writes p to the non-blocking socket fd with syscall.Write: the
// system calls of macOS and the BSDs go through libc or differ per system,
// and a raw system call is the one optimisation kept to Linux.
func writeFD(fd uintptr, p []byte) (int, syscall.Errno) {
	n, err := syscall.Write(int(fd), p)
	return max(n, 0), errnoOf(err)
}

// errnoOf returns the syscall.Errno of err: 0 for nil, EIO for an error
// that is none.
func errnoOf(err error) syscall.Errno {
	var errno syscall.Errno
	if err != nil && !errors.As(err, &errno) {
		errno = syscall.EIO
	}
	return errno
}

// readable reports whether the non-blocking socket fd has data to read (or
// an end or error to report), consuming nothing: RawConn.Read then waits
// for readability while it reports false.
func readable(fd uintptr) bool {
	var b [1]byte
	_, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
	return !errors.Is(err, syscall.EAGAIN)
}

// recvFD reads into p what the non-blocking socket fd has, with flags
// (MSG_DONTWAIT, and MSG_PEEK to consume nothing).
func recvFD(fd uintptr, p []byte, flags uintptr) (uintptr, syscall.Errno) {
	n, _, err := syscall.Recvfrom(int(fd), p, int(flags))
	if err != nil {
		return 0, errnoOf(err)
	}
	return uintptr(n), 0
}

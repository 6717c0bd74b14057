package middleware

import (
	"syscall"
	"unsafe"
)

// writeFD writes p to the non-blocking socket fd without releasing the
// calling goroutine's P: the call cannot block, and RawSyscall skips the
// scheduler's bookkeeping that syscall.Write pays for, on every ping.
func writeFD(fd uintptr, p []byte) (int, syscall.Errno) {
	n, _, errno := syscall.RawSyscall(syscall.SYS_WRITE, fd, uintptr(unsafe.Pointer(unsafe.SliceData(p))), uintptr(len(p)))
	return int(n), errno
}

// readable reports whether the non-blocking socket fd has data to read (or
// an end or error to report), consuming nothing: RawConn.Read then waits
// for readability while it reports false.
func readable(fd uintptr) bool {
	var b byte
	_, _, errno := syscall.RawSyscall6(syscall.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(&b)), 1,
		syscall.MSG_PEEK|syscall.MSG_DONTWAIT, 0, 0)
	return errno != syscall.EAGAIN
}

// recvFD reads into p what the non-blocking socket fd has, with flags
// (MSG_DONTWAIT, and MSG_PEEK to consume nothing). It is small enough to
// be inlined (see takeControl).
func recvFD(fd uintptr, p []byte, flags uintptr) (uintptr, syscall.Errno) {
	n, _, errno := syscall.RawSyscall6(syscall.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(unsafe.SliceData(p))), uintptr(len(p)), flags, 0, 0)
	return n, errno
}

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

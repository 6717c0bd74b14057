//go:build unix

package middleware_test

import (
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// cpuTime returns the process's user and total (user+system) CPU time.
func cpuTime() (user, total time.Duration) {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano()), time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkPingCPU: process CPU time per protocol ping sent, with every
// connection pinged every 100ms for 3s (the clients never answer, as if
// frozen, so nothing else happens).
func BenchmarkPingCPU(b *testing.B) {
	for _, variant := range []string{"vigil", "handwritten"} {
		b.Run(variant, func(b *testing.B) {
			n := min(b.N, maxBenchConns)
			const every = 100 * time.Millisecond
			var (
				h       http.Handler
				count   func() uint64
				cleanup func()
				wg      sync.WaitGroup
				pings   atomic.Uint64
			)
			if variant == "vigil" {
				srv, stop := newBenchVigil(b, every, 10*time.Second)
				h, count, cleanup = srv.WebSocket(nil), func() uint64 { return srv.Stats().Pings }, stop
			} else {
				h, count, cleanup = handwritten(every, time.Minute, &pings, &wg), pings.Load, func() {}
			}
			addr, stopHTTP := serveTCP(b, h)
			conns := make([]net.Conn, 0, n)
			for range n {
				c, err := rawDial(addr, "/ws")
				if err != nil {
					b.Fatal(err)
				}
				conns = append(conns, c)
			}
			time.Sleep(time.Second) // everyone is pinging
			b.ResetTimer()
			p0 := count()
			u0, c0 := cpuTime()
			time.Sleep(3 * time.Second)
			p1 := count()
			u1, c1 := cpuTime()
			b.StopTimer()
			b.ReportMetric(float64(c1-c0)/float64(p1-p0), "cpu-ns/ping")
			b.ReportMetric(float64(u1-u0)/float64(p1-p0), "user-ns/ping")
			b.ReportMetric(float64(p1-p0)/3, "pings/s")
			for _, c := range conns {
				c.Close()
			}
			cleanup()
			wg.Wait()
			stopHTTP()
		})
	}
}

package middleware_test

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/vigilhq/vigil/middleware"
	"github.com/vigilhq/vigil/presence"
	"github.com/vigilhq/vigil/store/memory"
)

// The benchmarks open one connection per iteration and report per-connection
// figures; run them with a fixed count, e.g.
//
//	go test -run '^$' -bench 'Idle|PingCPU' -benchtime 2000x ./middleware
//
// Clients are raw TCP connections that did the handshake and hold no
// buffers or goroutines, so the figures are the server's (plus one client
// socket, the same in every variant).

const maxBenchConns = 8000 // two descriptors each; the process may open 20,000

// rawDial opens a WebSocket with a bare handshake and returns the socket.
func rawDial(addr, path string) (net.Conn, error) {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: %s\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"+
		"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n", path, addr)
	var resp []byte
	var b [1]byte
	for !bytes.HasSuffix(resp, []byte("\r\n\r\n")) {
		if _, err := c.Read(b[:]); err != nil {
			c.Close()
			return nil, err
		}
		resp = append(resp, b[0])
	}
	if !bytes.HasPrefix(resp, []byte("HTTP/1.1 101")) {
		c.Close()
		return nil, fmt.Errorf("handshake: %q", resp)
	}
	return c, nil
}

// serveTCP serves h on a fresh loopback listener.
func serveTCP(b *testing.B, h http.Handler) (addr string, stop func()) {
	b.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	hs := &http.Server{Handler: h}
	go hs.Serve(ln)
	return ln.Addr().String(), func() { hs.Close() }
}

func liveBytes() (heapStack uint64, goroutines int) {
	for range 3 {
		runtime.GC()
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc + ms.StackInuse, runtime.NumGoroutine()
}

// handwritten is the usual gorilla pattern: stay in the handler, read there,
// and ping from a writer goroutine with a ticker per connection.
func handwritten(pingEvery, pongWait time.Duration, pings *atomic.Uint64, wg *sync.WaitGroup) http.Handler {
	up := websocket.Upgrader{}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		wg.Add(1)
		defer wg.Done()
		ws.SetReadLimit(64 << 10)
		ws.SetReadDeadline(time.Now().Add(pongWait))
		ws.SetPongHandler(func(string) error { return ws.SetReadDeadline(time.Now().Add(pongWait)) })
		done := make(chan struct{})
		go func() {
			t := time.NewTicker(pingEvery)
			defer t.Stop()
			for {
				select {
				case <-t.C:
					ws.SetWriteDeadline(time.Now().Add(10 * time.Second))
					if ws.WriteMessage(websocket.PingMessage, nil) != nil {
						return
					}
					pings.Add(1)
				case <-done:
					return
				}
			}
		}()
		for {
			if _, _, err := ws.ReadMessage(); err != nil {
				break
			}
		}
		close(done)
		ws.Close()
	})
}

// timing: TTL = PingInterval + PongTimeout, the shortest New allows; the
// benchmark chooses ping and pong.
func newBenchVigil(b *testing.B, ping, pong time.Duration) (*middleware.Server, func()) {
	b.Helper()
	st, _ := memory.New(memory.Config{})
	tr, err := presence.New(context.Background(), st, presence.Config{Node: "bench", TTL: ping + pong})
	if err != nil {
		b.Fatal(err)
	}
	srv, err := middleware.New(tr, middleware.Config{
		Identify:     func(*http.Request) (string, error) { return "u" + fmt.Sprint(time.Now().UnixNano()), nil },
		PingInterval: ping, PongTimeout: pong,
	})
	if err != nil {
		b.Fatal(err)
	}
	return srv, func() {
		ctx := context.Background()
		srv.Shutdown(ctx)
		tr.Close(ctx)
	}
}

func benchIdle(b *testing.B, variant string) {
	n := min(b.N, maxBenchConns)
	var (
		h       http.Handler
		open    func() int
		cleanup func()
		wg      sync.WaitGroup
		pings   atomic.Uint64
	)
	switch variant {
	case "vigil":
		srv, stop := newBenchVigil(b, 25*time.Second, 10*time.Second)
		h, open, cleanup = srv.WebSocket(nil), func() int { return int(srv.Stats().Open) }, stop
	case "handwritten":
		h = handwritten(25*time.Second*9/10, 60*time.Second, &pings, &wg)
		var started atomic.Int64
		inner := h
		h = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { started.Add(1); inner.ServeHTTP(w, r) })
		open, cleanup = func() int { return int(started.Load()) }, func() {}
	}
	addr, stopHTTP := serveTCP(b, h)
	before, g0 := liveBytes()
	conns := make([]net.Conn, 0, n)
	b.ResetTimer()
	for range n {
		c, err := rawDial(addr, "/ws")
		if err != nil {
			b.Fatal(err)
		}
		conns = append(conns, c)
	}
	for deadline := time.Now().Add(10 * time.Second); open() < n && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond) // let handshake garbage and handler exits settle
	after, g1 := liveBytes()
	b.StopTimer()
	b.ReportMetric(float64(after-before)/float64(n), "B/conn")
	b.ReportMetric(float64(g1-g0)/float64(n), "goroutines/conn")
	for _, c := range conns {
		c.Close()
	}
	cleanup()
	wg.Wait()
	stopHTTP()
}

// BenchmarkIdleMemory: live heap and stack per idle WebSocket connection.
func BenchmarkIdleMemory(b *testing.B) {
	b.Run("vigil", func(b *testing.B) { benchIdle(b, "vigil") })
	b.Run("handwritten", func(b *testing.B) { benchIdle(b, "handwritten") })
}

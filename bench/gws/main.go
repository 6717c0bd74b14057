// Command gws is a lxzan/gws server for bench/compare's side-by-side runs:
// each connection is read by gws's ReadLoop on a goroutine of its own (the
// HTTP handler returns after the upgrade), and one scheduler goroutine
// pings every connection once per -ping-interval, spread over the interval.
// Every pong, ping or message pushes the read deadline to
// now+ping-interval+pong-timeout. It tracks no presence.
//
// It lives in a module of its own so that vigil's module does not require
// gws. From this directory:
//
//	go run . -addr 127.0.0.1:8082 -debug-addr 127.0.0.1:6062
//
// It serves /ws (any query), /metrics (vigil_connections{transport="ws"} and
// vigil_ws_pings_total, under the names the demo uses, so that one load
// tool reads both) and, on -debug-addr, net/http/pprof.
package main

import (
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"net/http/pprof"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lxzan/gws"
)

var open, pings atomic.Int64

type handler struct {
	gws.BuiltinEventHandler
	wait time.Duration

	mu    sync.Mutex
	conns map[*gws.Conn]uint64 // the ping step of each
	next  uint64
}

func (h *handler) OnOpen(c *gws.Conn) {
	_ = c.SetDeadline(time.Now().Add(h.wait))
	h.mu.Lock()
	h.conns[c] = h.next
	h.next++
	h.mu.Unlock()
	open.Add(1)
}

func (h *handler) OnClose(c *gws.Conn, _ error) {
	h.mu.Lock()
	delete(h.conns, c)
	h.mu.Unlock()
	open.Add(-1)
}

func (h *handler) OnPing(c *gws.Conn, p []byte) {
	_ = c.SetDeadline(time.Now().Add(h.wait))
	_ = c.WritePong(p)
}

func (h *handler) OnPong(c *gws.Conn, _ []byte) { _ = c.SetDeadline(time.Now().Add(h.wait)) }

func (h *handler) OnMessage(c *gws.Conn, m *gws.Message) {
	_ = c.SetDeadline(time.Now().Add(h.wait))
	_ = m.Close()
}

// pingAll pings every connection once per interval, in 100 steps.
func (h *handler) pingAll(interval time.Duration) {
	const steps = 100
	t := time.NewTicker(interval / steps)
	defer t.Stop()
	var step uint64
	for range t.C {
		h.mu.Lock()
		batch := make([]*gws.Conn, 0, len(h.conns)/steps+1)
		for c, slot := range h.conns {
			if slot%steps == step%steps {
				batch = append(batch, c)
			}
		}
		h.mu.Unlock()
		step++
		for _, c := range batch {
			if c.WritePing(nil) == nil {
				pings.Add(1)
			}
		}
	}
}

func main() {
	addr := flag.String("addr", "127.0.0.1:8082", "listen address")
	debugAddr := flag.String("debug-addr", "", "serve net/http/pprof on this address (default: off)")
	pingInterval := flag.Duration("ping-interval", 25*time.Second, "protocol ping interval")
	pongTimeout := flag.Duration("pong-timeout", 20*time.Second, "wait for a pong after a ping")
	flag.Parse()

	h := &handler{wait: *pingInterval + *pongTimeout, conns: make(map[*gws.Conn]uint64)}
	up := gws.NewUpgrader(h, &gws.ServerOption{
		ReadBufferSize: 512,
		Authorize:      func(*http.Request, gws.SessionStorage) bool { return true },
	})
	go h.pingAll(*pingInterval)

	mux := http.NewServeMux()
	mux.HandleFunc("/ws", func(w http.ResponseWriter, r *http.Request) {
		c, err := up.Upgrade(w, r)
		if err != nil {
			return
		}
		go c.ReadLoop()
	})
	mux.HandleFunc("/metrics", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "vigil_connections{transport=\"ws\"} %d\nvigil_ws_pings_total %d\n", open.Load(), pings.Load())
	})
	if *debugAddr != "" {
		dbg := http.NewServeMux()
		dbg.HandleFunc("/debug/pprof/", pprof.Index)
		dbg.HandleFunc("/debug/pprof/profile", pprof.Profile)
		ln, err := net.Listen("tcp", *debugAddr)
		if err != nil {
			log.Fatal(err)
		}
		go func() { log.Fatal(http.Serve(ln, dbg)) }()
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatal(err)
	}
	log.Printf("listening on %s", ln.Addr())
	log.Fatal(http.Serve(ln, mux))
}

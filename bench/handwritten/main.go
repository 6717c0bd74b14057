// Command handwritten is the usual hand-written gorilla/websocket server, the
// baseline that bench/compare measures vigil's demo against: each
// connection stays in its HTTP handler and reads there, and a writer
// goroutine with a ticker of its own sends a protocol ping every
// -ping-interval. The deadlines are the ones of gorilla's chat example: the
// read deadline is pushed to now+ping-interval+pong-timeout on every pong,
// and each write carries a 10 s deadline. It tracks no presence.
//
//	go run ./bench/handwritten -addr 127.0.0.1:8081 -debug-addr 127.0.0.1:6061
//
// It serves /ws (any query), /metrics (vigil_connections{transport="ws"} and
// vigil_ws_pings_total, under the names the demo uses, so that one load
// tool reads both) and, on -debug-addr, net/http/pprof.
//
// With -lean it is instead the minimal one-goroutine gorilla server that
// DESIGN.md describes: the handler returns after the upgrade and a fresh
// goroutine reads, the read buffer is 512 bytes and write buffers come from a
// pool (idle connections hold none), and one scheduler goroutine pings every
// connection with WriteControl, spread over the interval.
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

	"github.com/gorilla/websocket"
)

const writeWait = 10 * time.Second

var open, pings atomic.Int64

func main() {
	addr := flag.String("addr", "127.0.0.1:8081", "listen address")
	debugAddr := flag.String("debug-addr", "", "serve net/http/pprof on this address (default: off)")
	pingInterval := flag.Duration("ping-interval", 25*time.Second, "protocol ping interval")
	pongTimeout := flag.Duration("pong-timeout", 20*time.Second, "wait for a pong after a ping")
	lean := flag.Bool("lean", false, "one goroutine per connection, small buffers, one ping scheduler")
	flag.Parse()

	pongWait := *pingInterval + *pongTimeout
	mux := http.NewServeMux()
	if *lean {
		l := &leanServer{wait: pongWait, conns: make(map[*websocket.Conn]uint64)}
		go l.pingAll(*pingInterval)
		mux.HandleFunc("/ws", l.serveWS)
	} else {
		mux.HandleFunc("/ws", func(w http.ResponseWriter, r *http.Request) { serveWS(w, r, *pingInterval, pongWait) })
	}
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
		go http.Serve(ln, dbg)
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatal(err)
	}
	log.Printf("listening on %s", ln.Addr())
	log.Fatal(http.Serve(ln, mux))
}

var upgrader = websocket.Upgrader{CheckOrigin: func(*http.Request) bool { return true }}

func serveWS(w http.ResponseWriter, r *http.Request, pingInterval, pongWait time.Duration) {
	ws, err := upgrader.Upgrade(w, r, nil)
	if err != nil {
		return
	}
	open.Add(1)
	defer open.Add(-1)
	defer ws.Close()
	done := make(chan struct{})
	defer close(done)
	go writePump(ws, pingInterval, done)

	ws.SetReadLimit(64 << 10)
	_ = ws.SetReadDeadline(time.Now().Add(pongWait))
	ws.SetPongHandler(func(string) error { return ws.SetReadDeadline(time.Now().Add(pongWait)) })
	for {
		if _, _, err := ws.ReadMessage(); err != nil {
			return
		}
	}
}

func writePump(ws *websocket.Conn, pingInterval time.Duration, done <-chan struct{}) {
	t := time.NewTicker(pingInterval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			_ = ws.SetWriteDeadline(time.Now().Add(writeWait))
			if err := ws.WriteMessage(websocket.PingMessage, nil); err != nil {
				_ = ws.Close()
				return
			}
			pings.Add(1)
		case <-done:
			return
		}
	}
}

// leanServer is the -lean variant.
type leanServer struct {
	wait time.Duration

	mu    sync.Mutex
	conns map[*websocket.Conn]uint64 // the ping step of each
	next  uint64
}

var leanUpgrader = websocket.Upgrader{
	ReadBufferSize:  512,
	WriteBufferPool: &sync.Pool{},
	CheckOrigin:     func(*http.Request) bool { return true },
}

func (l *leanServer) serveWS(w http.ResponseWriter, r *http.Request) {
	ws, err := leanUpgrader.Upgrade(w, r, nil)
	if err != nil {
		return
	}
	l.mu.Lock()
	l.conns[ws] = l.next
	l.next++
	l.mu.Unlock()
	open.Add(1)
	go l.read(ws)
}

func (l *leanServer) read(ws *websocket.Conn) {
	defer func() {
		l.mu.Lock()
		delete(l.conns, ws)
		l.mu.Unlock()
		open.Add(-1)
		_ = ws.Close()
	}()
	ws.SetReadLimit(64 << 10)
	_ = ws.SetReadDeadline(time.Now().Add(l.wait))
	ws.SetPongHandler(func(string) error { return ws.SetReadDeadline(time.Now().Add(l.wait)) })
	for {
		if _, _, err := ws.NextReader(); err != nil {
			return
		}
	}
}

// pingAll pings every connection once per interval, in 100 steps.
func (l *leanServer) pingAll(interval time.Duration) {
	const steps = 100
	t := time.NewTicker(interval / steps)
	defer t.Stop()
	var step uint64
	for range t.C {
		l.mu.Lock()
		batch := make([]*websocket.Conn, 0, len(l.conns)/steps+1)
		for ws, slot := range l.conns {
			if slot%steps == step%steps {
				batch = append(batch, ws)
			}
		}
		l.mu.Unlock()
		step++
		for _, ws := range batch {
			if ws.WriteControl(websocket.PingMessage, nil, time.Now().Add(writeWait)) == nil {
				pings.Add(1)
			}
		}
	}
}

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
package main

import (
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"net/http/pprof"
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
	flag.Parse()

	pongWait := *pingInterval + *pongTimeout
	mux := http.NewServeMux()
	mux.HandleFunc("/ws", func(w http.ResponseWriter, r *http.Request) { serveWS(w, r, *pingInterval, pongWait) })
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

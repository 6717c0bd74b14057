//go:build unix

// Command load opens many idle WebSocket connections to one server and keeps
// them open: each answers protocol pings with a pong (as gorilla's default
// ping handler does) and sends nothing else. bench/compare starts several of
// these, each bound to its own 127.0.0.x source addresses, since one process
// may open at most 20,000 files and one source address has about 28,000
// ephemeral ports.
//
//	go run ./bench/load -url ws://127.0.0.1:8080/ws -n 3000 -src 127.0.0.2,127.0.0.3 -id l0-
//
// With -rate the dials are open-loop, started at that many per second whatever
// the server's answers (a ramp or a reconnect storm), rather than by -dialers
// goroutines one after the other; -latencies then gets each dial's time, from
// the TCP connect to the handshake's answer, one line of nanoseconds each.
//
// Connection i of the process identifies itself as ?id=PREFIXi. The process
// prints one line to stdout when every dial is done:
//
//	connected N failed M
//
// On SIGUSR1 every connection freezes: it stops reading, so it answers no
// more pings and leaves the server's frames in the socket buffers, like a
// frozen client; then, if -lastpong is set, the process writes to that file
// one line per connection, "ID UNIXNANO", the time of the last pong it sent,
// and prints "frozen". SIGINT or SIGTERM closes everything and exits.
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gorilla/websocket"
)

type conn struct {
	id       string
	ws       *websocket.Conn
	lastPong atomic.Int64 // unix nanoseconds of the last pong sent
}

var frozen atomic.Bool

// freeze never returns: a frozen connection's reader parks here for good.
var freeze = make(chan struct{})

func main() {
	rawURL := flag.String("url", "ws://127.0.0.1:8080/ws", "WebSocket URL; ?id= is added")
	n := flag.Int("n", 1000, "connections to open")
	src := flag.String("src", "", "comma-separated local addresses to dial from, round robin (default: any)")
	prefix := flag.String("id", "load-", "client ID prefix")
	dialers := flag.Int("dialers", 32, "concurrent dials")
	lastPongPath := flag.String("lastpong", "", "on SIGUSR1, write each connection's last pong time to this file")
	rate := flag.Float64("rate", 0, "start this many dials per second, open-loop (default: -dialers at a time)")
	latPath := flag.String("latencies", "", "write each successful dial's time in nanoseconds to this file, a line each")
	flag.Parse()
	log.SetFlags(0)
	log.SetPrefix("load: ")

	u, err := url.Parse(*rawURL)
	if err != nil {
		log.Fatal(err)
	}
	var srcs []*net.TCPAddr
	if *src != "" {
		for s := range strings.SplitSeq(*src, ",") {
			ip := net.ParseIP(strings.TrimSpace(s))
			if ip == nil {
				log.Fatalf("-src: bad address %q", s)
			}
			srcs = append(srcs, &net.TCPAddr{IP: ip})
		}
	}

	conns := make([]*conn, *n)
	lats := make([]time.Duration, *n)
	var failed atomic.Int64
	dialOne := func(i int) {
		start := time.Now()
		c, err := dial(u, fmt.Sprintf("%s%d", *prefix, i), srcs, i)
		if err != nil {
			if failed.Add(1) <= 5 {
				log.Printf("dial %d: %v", i, err)
			}
			return
		}
		lats[i] = time.Since(start)
		conns[i] = c
		go c.read()
	}
	var wg sync.WaitGroup
	if *rate > 0 {
		// Open loop: dial i starts at i/rate seconds, on a 1 ms tick.
		t0 := time.Now()
		tick := time.NewTicker(time.Millisecond)
		for i := 0; i < *n; {
			due := min(*n, int(time.Since(t0).Seconds()**rate)+1)
			for ; i < due; i++ {
				j := i
				wg.Go(func() { dialOne(j) })
			}
			if i < *n {
				<-tick.C
			}
		}
		tick.Stop()
	} else {
		next := make(chan int)
		for range *dialers {
			wg.Go(func() {
				for i := range next {
					dialOne(i)
				}
			})
		}
		for i := range *n {
			next <- i
		}
		close(next)
	}
	wg.Wait()
	if *latPath != "" {
		if err := writeLatencies(*latPath, lats); err != nil {
			log.Fatal(err)
		}
	}
	fmt.Printf("connected %d failed %d\n", int64(*n)-failed.Load(), failed.Load())

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGUSR1, syscall.SIGINT, syscall.SIGTERM)
	for s := range sig {
		if s != syscall.SIGUSR1 {
			break
		}
		if frozen.Swap(true) {
			continue
		}
		// A ping handler that passed the frozen check just before it
		// was set is writing its pong now; let it finish.
		time.Sleep(100 * time.Millisecond)
		if *lastPongPath != "" {
			if err := writeLastPongs(*lastPongPath, conns); err != nil {
				log.Fatal(err)
			}
		}
		fmt.Println("frozen")
	}
	for _, c := range conns {
		if c != nil {
			_ = c.ws.NetConn().Close()
		}
	}
}

func dial(u *url.URL, id string, srcs []*net.TCPAddr, i int) (*conn, error) {
	d := websocket.Dialer{
		ReadBufferSize:   512,
		WriteBufferPool:  &sync.Pool{},
		HandshakeTimeout: 30 * time.Second,
	}
	if len(srcs) > 0 {
		nd := &net.Dialer{LocalAddr: srcs[i%len(srcs)], Timeout: 30 * time.Second}
		d.NetDialContext = nd.DialContext
	}
	cu := *u
	q := cu.Query()
	q.Set("id", id)
	cu.RawQuery = q.Encode()
	var err error
	for attempt := range 5 {
		if attempt > 0 {
			time.Sleep(time.Duration(attempt) * 200 * time.Millisecond)
		}
		var ws *websocket.Conn
		var resp *http.Response
		ws, resp, err = d.DialContext(context.Background(), cu.String(), nil)
		if resp != nil && resp.Body != nil {
			resp.Body.Close()
		}
		if err == nil {
			c := &conn{id: id, ws: ws}
			c.lastPong.Store(time.Now().UnixNano())
			ws.SetPingHandler(c.onPing)
			return c, nil
		}
	}
	return nil, err
}

// onPing answers a ping as gorilla's default handler does, and remembers
// when; once frozen, it never returns, so the connection reads no more.
func (c *conn) onPing(data string) error {
	if frozen.Load() {
		<-freeze
	}
	c.lastPong.Store(time.Now().UnixNano())
	err := c.ws.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(time.Second))
	if err == websocket.ErrCloseSent {
		return nil
	}
	return err
}

// read reads until the connection fails; the ping handler runs inside it.
// Frames other than pings are discarded.
func (c *conn) read() {
	for {
		if _, _, err := c.ws.NextReader(); err != nil {
			_ = c.ws.NetConn().Close()
			return
		}
	}
}

func writeLastPongs(path string, conns []*conn) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := bufio.NewWriter(f)
	for _, c := range conns {
		if c != nil {
			fmt.Fprintf(w, "%s %d\n", c.id, c.lastPong.Load())
		}
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func writeLatencies(path string, lats []time.Duration) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := bufio.NewWriter(f)
	for _, d := range lats {
		if d > 0 {
			fmt.Fprintf(w, "%d\n", d.Nanoseconds())
		}
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

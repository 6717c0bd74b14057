//go:build unix

// Command load opens many idle WebSocket connections to one or more servers
// and keeps them open: each answers protocol pings with a pong (as gorilla's
// default ping handler does) and sends nothing else. bench/compare and
// bench/scale start several of these, each bound to its own 127.0.0.x
// source addresses, since one process may open at most 20,000 files and one
// source address has about 28,000 ephemeral ports.
//
//	go run ./bench/load -url ws://127.0.0.1:8080/ws -n 3000 -src 127.0.0.2,127.0.0.3 -id l0-
//
// -url may list several servers, comma-separated: connection i dials the
// (i mod len)-th. Connection i of the process identifies itself as
// ?id=PREFIXi. The process prints one line to stdout when every dial is
// done:
//
//	connected N failed M
//
// With -latency FILE it first writes there the connect latency of each
// connection that opened, in microseconds, one a line: from the start of
// its first dial attempt to the end of the WebSocket handshake (retries
// included).
//
// With -rate R the dials are open-loop: dial k starts k/R seconds in,
// whatever the server answers (a ramp, a reconnect storm), rather than
// -dialers at a time.
//
// On SIGUSR1 every connection freezes: it stops reading, so it answers no
// more pings and leaves the server's frames in the socket buffers, like a
// frozen client; then, if -lastpong is set, the process writes to that file
// one line per connection, "ID UNIXNANO", the time of the last pong it sent,
// and prints "frozen". SIGINT or SIGTERM closes everything and exits.
//
// Commands on standard input, one a line, each answered by one line:
//
//   - "churn F": closes the share F (0 to 1) of the open connections, spread
//     evenly over them, then dials each again: every second one under the
//     same ID (a reload: the client should not go offline), the others under a
//     new ID (PREFIXi.G, G counting the churns: the old ID should go
//     offline after the server's Grace, the new one online). Answer:
//     "churned N failed M".
//   - "ids FILE": writes the IDs of the open connections to FILE, one a
//     line. Answer: "ids N dropped D", D counting the connections that
//     failed without this process closing them.
//
// A connection the server closes stops counting as open; with -redial it
// is dialled again under its ID, with backoff (from 0.5-1.5 s, doubling to
// 30 s).
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"log"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gorilla/websocket"
)

type conn struct {
	id       string
	i        int // its index
	ws       *websocket.Conn
	lastPong atomic.Int64 // unix nanoseconds of the last pong sent
	closed   atomic.Bool  // its reader has exited
	done     chan struct{}
}

var frozen atomic.Bool

// freeze never returns: a frozen connection's reader parks here for good.
var freeze = make(chan struct{})

type loader struct {
	urls    []*url.URL
	srcs    []*net.TCPAddr
	prefix  string
	dialers int
	rate    float64
	redial  bool

	connsMu sync.Mutex
	conns   []*conn // by index i; nil where the dial failed
	churns  int
}

func main() {
	rawURL := flag.String("url", "ws://127.0.0.1:8080/ws", "WebSocket URL, or comma-separated URLs dialled round robin; ?id= is added")
	n := flag.Int("n", 1000, "connections to open")
	src := flag.String("src", "", "comma-separated local addresses to dial from, round robin (default: any)")
	prefix := flag.String("id", "load-", "client ID prefix")
	dialers := flag.Int("dialers", 32, "concurrent dials")
	rate := flag.Float64("rate", 0, "start this many dials per second, open-loop (0: -dialers at a time)")
	redial := flag.Bool("redial", false, "dial a dropped connection again, under the same ID, with backoff (1 s doubling to 30 s, jittered)")
	lastPongPath := flag.String("lastpong", "", "on SIGUSR1, write each connection's last pong time to this file")
	latencyPath := flag.String("latency", "", "write each connection's connect latency (µs) to this file")
	flag.Parse()
	log.SetFlags(0)
	log.SetPrefix("load: ")

	l := &loader{prefix: *prefix, dialers: *dialers, rate: *rate, redial: *redial}
	for s := range strings.SplitSeq(*rawURL, ",") {
		u, err := url.Parse(strings.TrimSpace(s))
		if err != nil {
			log.Fatal(err)
		}
		l.urls = append(l.urls, u)
	}
	if *src != "" {
		for s := range strings.SplitSeq(*src, ",") {
			ip := net.ParseIP(strings.TrimSpace(s))
			if ip == nil {
				log.Fatalf("-src: bad address %q", s)
			}
			l.srcs = append(l.srcs, &net.TCPAddr{IP: ip})
		}
	}

	l.conns = make([]*conn, *n)
	idx := make([]int, *n)
	for i := range idx {
		idx[i] = i
	}
	lat, failed := l.dialAll(idx, func(i int) string { return fmt.Sprintf("%s%d", l.prefix, i) })
	if *latencyPath != "" {
		if err := writeLatencies(*latencyPath, lat); err != nil {
			log.Fatal(err)
		}
	}
	fmt.Printf("connected %d failed %d\n", *n-failed, failed)

	go l.commands(os.Stdin)

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
			if err := writeLastPongs(*lastPongPath, l.snapshot()); err != nil {
				log.Fatal(err)
			}
		}
		fmt.Println("frozen")
	}
	stopping.Store(true)
	for _, c := range l.snapshot() {
		if c != nil {
			_ = c.ws.NetConn().Close()
		}
	}
}

func (l *loader) snapshot() []*conn {
	l.connsMu.Lock()
	defer l.connsMu.Unlock()
	return append([]*conn(nil), l.conns...)
}

// dialAll dials connection i of idx under the ID id(i), storing it in
// l.conns[i], and returns the connect latencies and the failed count.
func (l *loader) dialAll(idx []int, id func(int) string) (lat []time.Duration, failed int) {
	var nfailed atomic.Int64
	var latMu sync.Mutex
	var wg sync.WaitGroup
	dialOne := func(i int) {
		start := time.Now()
		c, err := l.dial(id(i), i)
		if err != nil {
			if nfailed.Add(1) <= 5 {
				log.Printf("dial %d: %v", i, err)
			}
			return
		}
		d := time.Since(start)
		latMu.Lock()
		lat = append(lat, d)
		latMu.Unlock()
		l.connsMu.Lock()
		l.conns[i] = c
		l.connsMu.Unlock()
		go l.read(c)
	}
	if l.rate > 0 {
		// Open loop: dial k starts k/rate seconds in, on a 1 ms tick,
		// whatever the server answers (a ramp, a reconnect storm), so a
		// slow server's latencies are not hidden by dials held back.
		t0 := time.Now()
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		for k := 0; k < len(idx); {
			due := min(len(idx), int(time.Since(t0).Seconds()*l.rate)+1)
			for ; k < due; k++ {
				i := idx[k]
				wg.Go(func() { dialOne(i) })
			}
			if k < len(idx) {
				<-tick.C
			}
		}
	} else {
		next := make(chan int)
		for range l.dialers {
			wg.Go(func() {
				for i := range next {
					dialOne(i)
				}
			})
		}
		for _, i := range idx {
			next <- i
		}
		close(next)
	}
	wg.Wait()
	return lat, int(nfailed.Load())
}

func (l *loader) dial(id string, i int) (*conn, error) {
	d := websocket.Dialer{
		ReadBufferSize:   512,
		WriteBufferPool:  &sync.Pool{},
		HandshakeTimeout: 30 * time.Second,
	}
	if len(l.srcs) > 0 {
		nd := &net.Dialer{LocalAddr: l.srcs[i%len(l.srcs)], Timeout: 30 * time.Second}
		d.NetDialContext = nd.DialContext
	}
	cu := *l.urls[i%len(l.urls)]
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
			c := &conn{id: id, i: i, ws: ws, done: make(chan struct{})}
			c.lastPong.Store(time.Now().UnixNano())
			ws.SetPingHandler(c.onPing)
			return c, nil
		}
	}
	return nil, err
}

// commands answers the commands read from r (the package doc lists them).
func (l *loader) commands(r *os.File) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		cmd, arg, _ := strings.Cut(strings.TrimSpace(sc.Text()), " ")
		switch cmd {
		case "churn":
			f, err := strconv.ParseFloat(arg, 64)
			if err != nil || f < 0 || f > 1 {
				log.Printf("churn: bad share %q", arg)
				fmt.Println("churned 0 failed 0")
				continue
			}
			n, failed := l.churn(f)
			fmt.Printf("churned %d failed %d\n", n, failed)
		case "ids":
			n, err := l.writeIDs(arg)
			if err != nil {
				log.Fatal(err)
			}
			fmt.Printf("ids %d dropped %d\n", n, dropped.Load())
		default:
			log.Printf("unknown command %q", sc.Text())
		}
	}
}

func (l *loader) churn(share float64) (n, failed int) {
	var idx []int
	l.connsMu.Lock()
	l.churns++
	gen := l.churns
	var open []int
	for i, c := range l.conns {
		if c != nil && !c.closed.Load() {
			open = append(open, i)
		}
	}
	k := int(float64(len(open))*share + 0.5)
	for j := range k { // k of the open ones, evenly spread
		idx = append(idx, open[j*len(open)/k])
	}
	old := make([]*conn, len(idx))
	reuse := make(map[int]string, len(idx)) // index -> the ID it dials again under
	for j, i := range idx {
		old[j] = l.conns[i]
		l.conns[i] = nil
		if j%2 == 1 {
			reuse[i] = old[j].id
		}
	}
	l.connsMu.Unlock()
	for _, c := range old {
		closing.Store(c, struct{}{})
		_ = c.ws.NetConn().Close()
	}
	for _, c := range old {
		<-c.done
	}
	_, failed = l.dialAll(idx, func(i int) string {
		if id, ok := reuse[i]; ok {
			return id
		}
		return fmt.Sprintf("%s%d.%d", l.prefix, i, gen)
	})
	return len(idx), failed
}

func (l *loader) writeIDs(path string) (int, error) {
	f, err := os.Create(path)
	if err != nil {
		return 0, err
	}
	w := bufio.NewWriter(f)
	n := 0
	for _, c := range l.snapshot() {
		if c != nil && !c.closed.Load() {
			fmt.Fprintln(w, c.id)
			n++
		}
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return 0, err
	}
	return n, f.Close()
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

// dropped counts the connections that failed while this process did not
// close them; the first few are logged with their error.
var dropped atomic.Int64

// closing holds the connections a churn closes, and stopping is set when
// the process closes them all: their errors are not drops.
var (
	closing  sync.Map // *conn -> struct{}
	stopping atomic.Bool
)

// read reads until the connection fails; the ping handler runs inside it.
// Frames other than pings are discarded.
func (l *loader) read(c *conn) {
	defer close(c.done)
	for {
		if _, _, err := c.ws.NextReader(); err != nil {
			c.closed.Store(true)
			_ = c.ws.NetConn().Close()
			if _, ok := closing.Load(c); !ok && !stopping.Load() {
				if n := dropped.Add(1); n <= 5 || n%1000 == 0 {
					log.Printf("connection %s dropped (%d so far): %v", c.id, n, err)
				}
				if l.redial {
					go l.again(c)
				}
			}
			closing.Delete(c)
			return
		}
	}
}

// again dials dropped connection c again under its ID, as a client that
// reconnects would, unless a churn or the end took its place meanwhile.
func (l *loader) again(c *conn) {
	// Backoff with full jitter, 1 s doubling to 30 s, as clients do: a
	// fixed delay made the drops of an overloaded machine a storm.
	backoff := time.Second
	for !stopping.Load() {
		time.Sleep(backoff/2 + time.Duration(mrand.Int64N(int64(backoff))))
		backoff = min(2*backoff, 30*time.Second)
		n, err := l.dial(c.id, c.i)
		if err != nil {
			continue
		}
		l.connsMu.Lock()
		if l.conns[c.i] != c || stopping.Load() {
			l.connsMu.Unlock()
			_ = n.ws.NetConn().Close()
			return
		}
		l.conns[c.i] = n
		l.connsMu.Unlock()
		go l.read(n)
		return
	}
}

func writeLatencies(path string, lat []time.Duration) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := bufio.NewWriter(f)
	for _, d := range lat {
		fmt.Fprintln(w, d.Microseconds())
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
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

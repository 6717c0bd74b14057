package client

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/vigilhq/vigil/middleware"
	"github.com/vigilhq/vigil/presence"
	"github.com/vigilhq/vigil/store/memory"
)

// node is one vigil server process on a fixed address, which a test can
// crash (every TCP connection dropped, no close frames) or shut down
// (1001), and start again on the same address.
type node struct {
	t     *testing.T
	addr  string
	store presence.Store
	tcfg  presence.Config
	cfg   middleware.Config
	h     middleware.Handler

	tr  *presence.Tracker
	srv *middleware.Server
	hs  *http.Server
	ln  net.Listener

	// mu guards the fields below.
	mu       sync.Mutex
	conns    map[net.Conn]struct{}
	arrivals []time.Time // of WebSocket upgrade requests
	events   chan presence.Event
}

// timing: compressed for speed, not scaled: TTL (400ms) ≥ the server's
// PingInterval + PongTimeout (fastServer, 300ms), SweepInterval ≪ TTL, Grace
// < TTL as at the defaults. The defaults' proportions are tested in
// middleware's TestWriteDeadlineDoesNotOutliveWrite and the e2e soak.
func fastTracker() presence.Config {
	return presence.Config{Node: "n1", TTL: 400 * time.Millisecond, Grace: 200 * time.Millisecond, SweepInterval: 50 * time.Millisecond}
}

// timing: compressed for speed, not scaled: PingInterval < PongTimeout here
// (the defaults have 25s > 10s); WriteTimeout defaults to PongTimeout. Tests
// that need the defaults' proportions use internal/timing.Scale.
func fastServer() middleware.Config {
	return middleware.Config{PingInterval: 100 * time.Millisecond, PongTimeout: 200 * time.Millisecond}
}

// newNode starts a node on a free port, with a memory store that survives
// its restarts (as a Redis store would).
func newNode(t *testing.T, tcfg presence.Config, cfg middleware.Config, h middleware.Handler) *node {
	t.Helper()
	st, err := memory.New(memory.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Identify == nil {
		cfg.Identify = middleware.IdentifyHeader(DefaultClientIDHeader)
	}
	n := &node{t: t, store: st, tcfg: tcfg, cfg: cfg, h: h, events: make(chan presence.Event, 10000)}
	n.start("127.0.0.1:0")
	n.addr = n.ln.Addr().String()
	t.Cleanup(func() { n.shutdown(10 * time.Second) })
	return n
}

func (n *node) url() string { return "ws://" + n.addr + "/ws" }

func (n *node) start(addr string) {
	t := n.t
	t.Helper()
	tr, err := presence.New(context.Background(), n.store, n.tcfg)
	if err != nil {
		t.Fatal(err)
	}
	rec := func(_ context.Context, ev presence.Event) { n.events <- ev }
	tr.OnOnline(rec)
	tr.OnOffline(rec)
	srv, err := middleware.New(tr, n.cfg)
	if err != nil {
		t.Fatal(err)
	}
	ws := srv.WebSocket(n.h)
	mux := http.NewServeMux()
	mux.Handle("GET /ws", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.mu.Lock()
		n.arrivals = append(n.arrivals, time.Now())
		n.mu.Unlock()
		ws.ServeHTTP(w, r)
	}))
	var ln net.Listener
	// The port of a listener closed a moment ago may take a few tries.
	for i := 0; ; i++ {
		ln, err = net.Listen("tcp", addr)
		if err == nil {
			break
		}
		if i == 100 {
			t.Fatalf("listen %s: %v", addr, err)
		}
		<-time.After(10 * time.Millisecond)
	}
	n.mu.Lock()
	n.conns = make(map[net.Conn]struct{})
	n.mu.Unlock()
	hs := &http.Server{Handler: mux, ConnState: func(c net.Conn, s http.ConnState) {
		n.mu.Lock()
		defer n.mu.Unlock()
		switch s {
		case http.StateNew:
			n.conns[c] = struct{}{}
		case http.StateClosed:
			delete(n.conns, c)
		}
	}}
	go hs.Serve(ln)
	n.tr, n.srv, n.hs, n.ln = tr, srv, hs, ln
}

// crash drops every connection without a close frame, as a node that dies
// does, and stops the node.
func (n *node) crash() {
	n.ln.Close()
	n.mu.Lock()
	for c := range n.conns {
		c.Close()
	}
	n.mu.Unlock()
	// Let the handlers see their connections die, as they do in a process
	// that dies: Shutdown then has nothing left to drain. Stopping at once
	// raced them, and Shutdown spread its close frames to connections
	// still ending over the DrainWindow, past stop's deadline (seen on a
	// loaded machine as a restart a second late and a failed Shutdown).
	for deadline := time.Now().Add(5 * time.Second); n.srv.Stats().Open > 0 && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
	n.stop(time.Second)
}

// shutdown drains the node (1001) and stops it.
func (n *node) shutdown(d time.Duration) {
	if n.hs == nil {
		return
	}
	n.ln.Close()
	n.stop(d)
}

func (n *node) stop(d time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	n.hs.Close()
	if err := n.srv.Shutdown(ctx); err != nil {
		n.t.Errorf("Shutdown: %v", err)
	}
	if err := n.tr.Close(ctx); err != nil {
		n.t.Errorf("tracker Close: %v", err)
	}
	n.hs = nil
}

func (n *node) restart() {
	n.mu.Lock()
	n.arrivals = nil
	n.mu.Unlock()
	n.start(n.addr)
}

func (n *node) upgrades() []time.Time {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]time.Time(nil), n.arrivals...)
}

// waitEvent waits for the next event of client with transition tr.
func (n *node) waitEvent(client string, tr presence.Transition, d time.Duration) presence.Event {
	n.t.Helper()
	return waitFor(n.t, n.events, d, func(ev presence.Event) bool { return ev.ClientID == client && ev.Transition == tr },
		fmt.Sprintf("%v event for %q", tr, client))
}

// waitFor receives from ch, skipping values that do not match, and returns
// the first that does; it fails the test after d.
func waitFor[T any](t *testing.T, ch <-chan T, d time.Duration, match func(T) bool, what string) T {
	t.Helper()
	timer := time.NewTimer(d)
	defer timer.Stop()
	for {
		select {
		case v := <-ch:
			if match(v) {
				return v
			}
		case <-timer.C:
			t.Fatalf("no %s within %v", what, d)
		}
	}
}

// echo is a Handler that sends every message back.
func echo(ctx context.Context, c *middleware.Conn) {
	for {
		m, err := c.Receive(ctx)
		if err != nil {
			return
		}
		if err := c.Send(m.Type, m.Data); err != nil {
			return
		}
	}
}

// states records a Client's state changes.
type states struct {
	mu  sync.Mutex
	all []StateChange
	ch  chan StateChange
}

func newStates() *states { return &states{ch: make(chan StateChange, 1000)} }

func (s *states) record(sc StateChange) {
	s.mu.Lock()
	s.all = append(s.all, sc)
	s.mu.Unlock()
	s.ch <- sc
}

// wait waits for a change to st and returns it.
func (s *states) wait(t *testing.T, st State, d time.Duration) StateChange {
	t.Helper()
	return waitFor(t, s.ch, d, func(sc StateChange) bool { return sc.To == st }, "state "+st.String())
}

// countDials returns a Dialer that counts the Client's connection attempts.
func countDials() (*websocket.Dialer, *atomic.Int64) {
	var n atomic.Int64
	var nd net.Dialer
	return &websocket.Dialer{
		HandshakeTimeout: 10 * time.Second,
		NetDialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			n.Add(1)
			return nd.DialContext(ctx, network, addr)
		},
	}, &n
}

func dialT(t *testing.T, url string, cfg Config) *Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := Dial(ctx, url, cfg)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func recvT(t *testing.T, c *Client, d time.Duration) Message {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	m, err := c.Receive(ctx)
	if err != nil {
		t.Fatalf("Receive: %v", err)
	}
	return m
}

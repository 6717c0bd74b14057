// Package wsclient is the disconnect suite's stand-in for a vigil WebSocket
// client: it dials, treats any frame from the server (a protocol ping
// included) as proof of life, drops a connection silent for longer than its
// Timeout, and reconnects with full-jitter backoff, as docs/PROTOCOL.md asks
// of every client. It reports each state change on a channel, with the time
// it happened.
//
// It exists because the suite must run a client inside a network namespace
// (a helper process) and count reconnects; it is not a product. When the
// client package offers the same observations, the suite should use it.
package wsclient

import (
	"context"
	"errors"
	"math/rand/v2"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

// Kind is what happened.
type Kind string

// The kinds of State.
const (
	Connected Kind = "connected"
	// Dead: the connection was silent for Timeout and was dropped.
	Dead Kind = "dead"
	// Closed: the server closed the connection or it broke.
	Closed Kind = "closed"
	// Refused: a dial failed.
	Refused Kind = "refused"
)

// State is one change of a client's connection.
type State struct {
	Kind Kind
	At   time.Time
	// Silent is, for Dead, how long the connection had been silent.
	Silent time.Duration
	// Code is the close code received, for Closed; 1006 when none.
	Code int
	// Status is the HTTP status of a refused upgrade, if any.
	Status int
	Err    error
}

// Config tunes a Client.
type Config struct {
	URL    string
	Header http.Header
	// Timeout: a connection with no frame from the server for this long is
	// dead.
	Timeout time.Duration
	// DialTimeout bounds one dial and handshake. Default: Timeout.
	DialTimeout time.Duration
	// MinBackoff and MaxBackoff bound the full-jitter reconnect delay.
	MinBackoff, MaxBackoff time.Duration
	// Once: do not reconnect.
	Once bool
}

// Client is one reconnecting connection.
type Client struct {
	cfg    Config
	states chan State
	cancel context.CancelFunc
	done   chan struct{}

	mu sync.Mutex
	ws *websocket.Conn
}

// Start runs a client until Close. States are delivered on States, which
// holds 1024; the client blocks when nobody reads it.
func Start(cfg Config) *Client {
	if cfg.DialTimeout == 0 {
		cfg.DialTimeout = cfg.Timeout
	}
	if cfg.MinBackoff == 0 {
		cfg.MinBackoff = 50 * time.Millisecond
	}
	if cfg.MaxBackoff < cfg.MinBackoff {
		cfg.MaxBackoff = cfg.MinBackoff
	}
	ctx, cancel := context.WithCancel(context.Background())
	c := &Client{cfg: cfg, states: make(chan State, 1024), cancel: cancel, done: make(chan struct{})}
	go c.run(ctx)
	return c
}

// States returns the channel of state changes; it is closed after Close.
func (c *Client) States() <-chan State { return c.states }

// Close stops the client, closing its connection abruptly (no close frame,
// as a killed process would), and waits for its goroutine.
func (c *Client) Close() {
	c.cancel()
	c.mu.Lock()
	if c.ws != nil {
		_ = c.ws.NetConn().Close()
	}
	c.mu.Unlock()
	<-c.done
}

// Send writes a text message on the current connection, if any.
func (c *Client) Send(msg string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ws == nil {
		return errors.New("wsclient: not connected")
	}
	_ = c.ws.SetWriteDeadline(time.Now().Add(c.cfg.Timeout))
	return c.ws.WriteMessage(websocket.TextMessage, []byte(msg))
}

func (c *Client) emit(ctx context.Context, s State) {
	s.At = time.Now()
	select {
	case c.states <- s:
	case <-ctx.Done():
	}
}

func (c *Client) run(ctx context.Context) {
	defer close(c.done)
	defer close(c.states)
	attempt := 0
	for ctx.Err() == nil {
		ok := c.session(ctx)
		if ok {
			attempt = 0
		}
		if c.cfg.Once || ctx.Err() != nil {
			return
		}
		attempt++
		ceil := min(c.cfg.MaxBackoff, c.cfg.MinBackoff<<min(attempt, 20))
		d := c.cfg.MinBackoff + rand.N(ceil-c.cfg.MinBackoff+1)
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
		case <-t.C:
		}
		t.Stop()
	}
}

// session dials and reads until the connection ends; it reports whether it
// connected.
func (c *Client) session(ctx context.Context) bool {
	d := websocket.Dialer{
		HandshakeTimeout: c.cfg.DialTimeout,
		NetDialContext:   (&net.Dialer{Timeout: c.cfg.DialTimeout}).DialContext,
	}
	dctx, cancel := context.WithTimeout(ctx, c.cfg.DialTimeout)
	ws, resp, err := d.DialContext(dctx, c.cfg.URL, c.cfg.Header)
	cancel()
	if err != nil {
		st := State{Kind: Refused, Err: err}
		if resp != nil {
			st.Status = resp.StatusCode
		}
		c.emit(ctx, st)
		return false
	}
	c.mu.Lock()
	c.ws = ws
	c.mu.Unlock()
	if ctx.Err() != nil {
		_ = ws.NetConn().Close()
	}
	c.emit(ctx, State{Kind: Connected})

	last := time.Now()
	beat := func() { last = time.Now(); _ = ws.SetReadDeadline(last.Add(c.cfg.Timeout)) }
	beat()
	ws.SetPingHandler(func(data string) error {
		beat()
		c.mu.Lock()
		defer c.mu.Unlock()
		err := ws.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(c.cfg.Timeout))
		if err != nil && !errors.Is(err, websocket.ErrCloseSent) {
			var ne net.Error
			if !errors.As(err, &ne) || !ne.Timeout() {
				return err
			}
		}
		return nil
	})
	ws.SetPongHandler(func(string) error { beat(); return nil })
	for {
		_, _, err := ws.ReadMessage()
		if err == nil {
			beat()
			continue
		}
		c.mu.Lock()
		c.ws = nil
		c.mu.Unlock()
		_ = ws.NetConn().Close()
		var ne net.Error
		var ce *websocket.CloseError
		switch {
		case ctx.Err() != nil:
		case errors.As(err, &ne) && ne.Timeout():
			c.emit(ctx, State{Kind: Dead, Silent: time.Since(last), Err: err})
		case errors.As(err, &ce):
			c.emit(ctx, State{Kind: Closed, Code: ce.Code, Err: err})
		default:
			c.emit(ctx, State{Kind: Closed, Code: 1006, Err: err})
		}
		return true
	}
}

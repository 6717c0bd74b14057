package client

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	neturl "net/url"
	"strconv"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

// MessageType is the type of a WebSocket data message.
type MessageType int

// The data message types.
const (
	Text   MessageType = websocket.TextMessage
	Binary MessageType = websocket.BinaryMessage
)

// Message is one application message.
type Message struct {
	Type MessageType
	Data []byte
}

// Client is a WebSocket connection to a vigil server that stays connected:
// it sends application pings, drops a connection whose server went silent,
// and reconnects with backoff until Close, or until the server asks it not
// to (see Retryable).
//
// A Client has one goroutine of its own, plus one reading while it is
// connected; Close stops both. Send, Receive, State, Err and Close are safe
// for concurrent use. Use Dial to make one.
type Client struct {
	url   string
	cfg   Config
	log   *slog.Logger
	epoch time.Time // monotonic origin of now()

	ctx    context.Context // cancelled by Close
	cancel context.CancelFunc
	done   chan struct{} // closed when the Client has stopped
	recv   chan Message
	wsem   chan struct{} // held while writing a data message

	// actMu guards the user's activity (activity.go), and is held while
	// it is sent: by SetAway and SetActive, and by opened until the new
	// connection is published, so that reports reach the server in order.
	actMu     sync.Mutex
	away      bool
	idleSince int64 // now() when the user went idle

	// mu guards the fields below.
	mu    sync.Mutex
	ws    *websocket.Conn // nil while not connected
	queue []Message
	state State // Initial until Dial's first attempt
	err   error // why the Client stopped

	// Used only by Dial, then by the run goroutine.
	// failed counts the failed attempts in a row: StateChange.Attempt and
	// what MaxAttempts limits. A drop is not an attempt, so it is 0 for
	// the first attempt after one.
	failed int
	// step is the backoff exponent of the next reconnect: the reconnects
	// since the last stable connection. Unlike failed it keeps growing
	// across connections that close before StableAfter, so a server that
	// accepts and drops at once is not hammered.
	step int
}

// Dial connects to the WebSocket endpoint url (ws:// or wss://) and
// returns a Client that keeps the connection alive and reconnects by
// itself. It retries failed attempts with backoff until one succeeds, ctx
// ends, or the server refuses for good (401, 403, or another 4xx other than
// 408 and 429; a close code that Retryable rejects), and returns that
// error. When ctx ends first, the error matches ctx's error and the last
// failed attempt's error, both with errors.Is and errors.As: a server that
// is down gives "client: dial ws://host/ws: context deadline exceeded
// (last attempt: dial tcp ...: connection refused)". ctx bounds only the
// dialing, not the Client's life: call Close.
func Dial(ctx context.Context, url string, cfg Config) (*Client, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	c := &Client{
		url:   url,
		cfg:   cfg,
		log:   cfg.Logger,
		epoch: time.Now(),
		done:  make(chan struct{}),
		recv:  make(chan Message, cfg.ReceiveBuffer),
		wsem:  make(chan struct{}, 1),
	}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	ws, err := c.connect(ctx, Connecting, nil, 0)
	if err != nil {
		c.cancel()
		return nil, err
	}
	c.opened(ws)
	go c.run(ws)
	return c, nil
}

// Send sends a message. While the Client is reconnecting it queues the
// message instead (see Config.SendQueueSize) and returns nil; queued
// messages are sent in order once a connection opens. A message written to
// a connection that drops at the same moment may be lost; Send then
// returns the write error. ctx bounds the wait for other writers and the
// write itself (together with Config.WriteTimeout). After the Client has
// stopped, Send fails with ErrClosed.
func (c *Client) Send(ctx context.Context, typ MessageType, data []byte) error {
	c.mu.Lock()
	if c.state == Closed {
		c.mu.Unlock()
		return ErrClosed
	}
	ws := c.ws
	if ws == nil {
		defer c.mu.Unlock()
		switch {
		case c.cfg.SendQueueSize < 0:
			return ErrNotConnected
		case len(c.queue) >= c.cfg.SendQueueSize:
			return ErrQueueFull
		}
		c.queue = append(c.queue, Message{typ, bytes.Clone(data)})
		return nil
	}
	c.mu.Unlock()
	return c.write(ctx, ws, typ, data)
}

// Receive returns the next message from the server, from whichever
// connection it came. Application pongs are not returned. It fails with
// ctx's error, or with Err once the Client has stopped and every message
// received before has been returned.
func (c *Client) Receive(ctx context.Context) (Message, error) {
	select {
	case m := <-c.recv:
		return m, nil
	case <-ctx.Done():
		return Message{}, ctx.Err()
	case <-c.done:
		select {
		case m := <-c.recv:
			return m, nil
		default:
			return Message{}, c.Err()
		}
	}
}

// State returns the Client's current state.
func (c *Client) State() State {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.state
}

// Err returns why the Client stopped: ErrClosed after Close, a *CloseError
// or *HandshakeError the server answered (errors.As), or an error matching
// ErrGaveUp. It returns nil while the Client runs.
func (c *Client) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// Done returns a channel closed when the Client has stopped.
func (c *Client) Done() <-chan struct{} { return c.done }

// Close closes the connection with 1000 (waiting briefly for the server to
// answer), stops reconnecting, and returns once the Client's goroutines
// have exited. Messages still queued are dropped. Calling it again is safe.
func (c *Client) Close() error {
	c.cancel()
	<-c.done
	return nil
}

// run is the Client's goroutine: it serves one connection after another.
func (c *Client) run(ws *websocket.Conn) {
	defer close(c.done)
	for {
		opened := time.Now()
		cause := c.serve(ws)
		if time.Since(opened) >= c.cfg.StableAfter {
			c.step = 0
		}
		if c.ctx.Err() != nil {
			c.stop(ErrClosed)
			return
		}
		c.log.LogAttrs(c.ctx, slog.LevelDebug, "client: connection lost", slog.String("url", c.url), slog.Any("err", cause))
		if permanent(cause) {
			c.stop(cause)
			return
		}
		var err error
		ws, err = c.connect(c.ctx, Reconnecting, cause, c.nextDelay(cause))
		if err != nil {
			if c.ctx.Err() != nil {
				err = ErrClosed
			}
			c.stop(err)
			return
		}
		c.opened(ws)
	}
}

// nextDelay returns the wait before the next attempt after cause, and
// counts it as a step of the backoff.
func (c *Client) nextDelay(cause error) time.Duration {
	defer func() { c.step++ }()
	var ce *CloseError
	if errors.As(cause, &ce) && ce.Code == websocket.CloseGoingAway && c.step == 0 {
		// The server drains its connections over its drain window; spread
		// the reconnects over it too, rather than all at once.
		return time.Duration(rand.Float64() * float64(c.cfg.DrainWindow))
	}
	d := backoff(c.step, c.cfg.BackoffBase, c.cfg.BackoffMax, rand.Float64)
	var he *HandshakeError
	if errors.As(cause, &he) {
		d += he.RetryAfter
	}
	return d
}

// connect makes attempts, the first after delay, until one succeeds, ctx
// ends, an error is permanent or MaxAttempts is reached.
func (c *Client) connect(ctx context.Context, st State, cause error, delay time.Duration) (*websocket.Conn, error) {
	for {
		if c.cfg.MaxAttempts > 0 && c.failed >= c.cfg.MaxAttempts {
			return nil, fmt.Errorf("%w after %d attempts: %w", ErrGaveUp, c.failed, cause)
		}
		c.setState(StateChange{To: st, Attempt: c.failed, Delay: delay, Err: cause})
		if delay > 0 {
			t := time.NewTimer(delay)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				return nil, c.dialError(ctx, cause)
			}
		}
		ws, resp, err := c.cfg.Dialer.DialContext(ctx, c.url, c.cfg.Header)
		if err == nil {
			return ws, nil
		}
		if ctx.Err() != nil || pastDeadline(ctx) {
			// An attempt cut short by ctx failed because of ctx, not of
			// the server; past the deadline, ctx is done at once.
			<-ctx.Done()
			return nil, c.dialError(ctx, cause)
		}
		err = handshakeError(err, resp)
		c.log.LogAttrs(ctx, slog.LevelDebug, "client: dial failed", slog.String("url", c.url),
			slog.Int("attempt", c.failed), slog.Any("err", err))
		c.failed++
		if permanent(err) {
			return nil, err
		}
		cause = err
		delay = c.nextDelay(err)
	}
}

// dialError is the error of attempts cut short by ctx: ctx's error, with
// the last failed attempt's error (cause, nil if none failed) beside it, so
// that a Dial that timed out against a server that is down says why
// ("connection refused") and both match with errors.Is.
func (c *Client) dialError(ctx context.Context, cause error) error {
	if cause == nil {
		return fmt.Errorf("client: dial %s: %w", redact(c.url), ctx.Err())
	}
	return fmt.Errorf("client: dial %s: %w (last attempt: %w)", redact(c.url), ctx.Err(), cause)
}

// pastDeadline reports whether ctx's deadline has passed. The net dialer
// fails with "i/o timeout" at the deadline itself, a moment before
// ctx.Err is set.
func pastDeadline(ctx context.Context) bool {
	d, ok := ctx.Deadline()
	return ok && !time.Now().Before(d)
}

// redact returns rawURL without its query and password, which may carry a
// token, for error texts.
func redact(rawURL string) string {
	u, err := neturl.Parse(rawURL)
	if err != nil {
		return "(invalid URL)"
	}
	u.RawQuery, u.ForceQuery, u.Fragment = "", false, ""
	return u.Redacted()
}

// handshakeError turns a refused handshake into a *HandshakeError.
func handshakeError(err error, resp *http.Response) error {
	if resp == nil || !errors.Is(err, websocket.ErrBadHandshake) {
		return err
	}
	he := &HandshakeError{Status: resp.StatusCode}
	if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s > 0 {
		he.RetryAfter = time.Duration(s) * time.Second
	}
	return he
}

// opened sends the user's activity, if away (a new session starts active),
// and the queued messages on ws, and makes it the connection.
func (c *Client) opened(ws *websocket.Conn) {
	c.actMu.Lock()
	if c.away {
		if err := c.write(c.ctx, ws, Text, c.activityMsg()); err != nil {
			c.log.LogAttrs(c.ctx, slog.LevelDebug, "client: activity report lost", slog.Any("err", err))
		}
	}
	defer c.actMu.Unlock()
	for {
		c.mu.Lock()
		q := c.queue
		c.queue = nil
		if len(q) == 0 {
			c.ws = ws
			c.mu.Unlock()
			break
		}
		c.mu.Unlock()
		for _, m := range q {
			if err := c.write(c.ctx, ws, m.Type, m.Data); err != nil {
				c.log.LogAttrs(c.ctx, slog.LevelDebug, "client: queued message lost", slog.Any("err", err))
				break // the reader sees the broken connection
			}
		}
	}
	c.log.LogAttrs(c.ctx, slog.LevelDebug, "client: connected", slog.String("url", c.url))
	c.setState(StateChange{To: Open, Attempt: c.failed})
	c.failed = 0
}

// stop ends the Client with err.
func (c *Client) stop(err error) {
	c.mu.Lock()
	c.ws = nil
	c.queue = nil
	c.err = err
	c.mu.Unlock()
	c.setState(StateChange{To: Closed, Attempt: c.failed, Err: err})
}

// setState records the state and calls OnState, never under the lock.
func (c *Client) setState(sc StateChange) {
	c.mu.Lock()
	sc.From = c.state
	c.state = sc.To
	c.mu.Unlock()
	if c.cfg.OnState != nil {
		c.cfg.OnState(sc)
	}
}

// write writes one data message, holding wsem.
func (c *Client) write(ctx context.Context, ws *websocket.Conn, typ MessageType, data []byte) error {
	select {
	case c.wsem <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-c.wsem }()
	deadline := time.Now().Add(c.cfg.WriteTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	_ = ws.SetWriteDeadline(deadline)
	return ws.WriteMessage(int(typ), data)
}

func (c *Client) now() int64 { return int64(time.Since(c.epoch)) }

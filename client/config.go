package client

import (
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/gorilla/websocket"
)

// Defaults of Config. The heartbeat defaults match the server's
// (middleware.DefaultPingInterval and DefaultPongTimeout), the backoff
// defaults are those of docs/PROTOCOL.md.
const (
	DefaultPingInterval   = 25 * time.Second
	DefaultPongTimeout    = 10 * time.Second
	DefaultWriteTimeout   = 10 * time.Second
	DefaultBackoffBase    = 500 * time.Millisecond
	DefaultBackoffMax     = 30 * time.Second
	DefaultStableAfter    = 10 * time.Second
	DefaultDrainWindow    = 5 * time.Second
	DefaultSendQueueSize  = 64
	DefaultReceiveBuffer  = 64
	DefaultAppPing        = "ping"
	DefaultAppPong        = "pong"
	DefaultClientIDHeader = "X-Client-ID"
)

// Config tunes a Client. Every zero field takes the default its comment
// names; where a feature can be turned off, a negative value turns it off.
type Config struct {
	// Header is sent with every handshake: an Authorization header, a
	// cookie, whatever the server's Identify reads. Default: none.
	Header http.Header

	// ClientID, if set, is sent in the header ClientIDHeader, for a server
	// that identifies clients with middleware.IdentifyHeader. Default: none.
	ClientID string
	// ClientIDHeader names the header that carries ClientID.
	// Default: "X-Client-ID".
	ClientIDHeader string

	// Dialer opens connections. Default: a Dialer with a 10s handshake
	// timeout and the proxy from the environment.
	Dialer *websocket.Dialer

	// PingInterval is how long the connection may be silent before the
	// Client sends an application ping (AppPing); the server answers it
	// with AppPong. Any message or frame from the server counts as proof
	// of life, so on a busy connection no pings are sent. Negative: never
	// ping (then the server's own pings must keep the connection alive and
	// dead-server detection is off). Default: 25s.
	PingInterval time.Duration
	// PongTimeout is how long after an application ping the Client waits
	// for any frame before it drops the connection as dead and reconnects.
	// Default: 10s.
	PongTimeout time.Duration
	// AppPing and AppPong are the application ping and its answer. Text
	// messages equal to AppPong are proof of life and are not returned by
	// Receive. Default: "ping" and "pong".
	AppPing, AppPong string

	// WriteTimeout bounds each write. An application ping waits for the
	// write in progress, so WriteTimeout must not exceed PongTimeout: a
	// longer one could hold the ping back past its own deadline and drop a
	// live server. Default: 10s, or PongTimeout if that is shorter.
	WriteTimeout time.Duration

	// BackoffBase and BackoffMax shape the reconnect delay: reconnect n
	// since the last stable connection (n from 0: the first attempt after
	// a drop, or Dial's second attempt) waits a uniformly random time in
	// [0, min(BackoffMax, BackoffBase·2^n)) (full jitter). Defaults: 500ms
	// and 30s.
	BackoffBase, BackoffMax time.Duration
	// StableAfter is how long a connection must stay open for the backoff
	// to start again from n = 0; after a connection that closed sooner, n
	// keeps growing. Default: 10s.
	StableAfter time.Duration
	// DrainWindow is the spread of the first reconnect after the server
	// closed with 1001 (draining): it waits a uniformly random time in
	// [0, DrainWindow). Use the server's middleware.Config.DrainWindow.
	// Default: 5s.
	DrainWindow time.Duration
	// MaxAttempts stops the Client, with ErrGaveUp, after that many failed
	// attempts in a row: Dial makes at most MaxAttempts attempts, and so
	// does the Client after each drop (the drop is not one of them). An
	// attempt that opens a connection succeeds, however soon the
	// connection drops. Zero or negative: never give up. Default: never.
	MaxAttempts int

	// SendQueueSize is how many messages Send holds while the Client is
	// not connected; they are sent, in order, once it reconnects. When the
	// queue is full Send fails with ErrQueueFull. Negative: no queue, Send
	// fails with ErrNotConnected. Default: 64.
	SendQueueSize int
	// ReceiveBuffer is how many received messages wait for Receive. When
	// it is full, the Client stops reading until Receive is called (frames
	// are not lost, and the dead-server check pauses). Default: 64.
	ReceiveBuffer int

	// OnState, if set, is called with each change of state, and again
	// before each attempt in Connecting and Reconnecting. Calls are
	// serialised, on the goroutine that called Dial (during Dial) and then
	// on the Client's own goroutine; the Client waits for it, so it must
	// not block for long and must not call Close. Default: none.
	OnState func(StateChange)

	// Logger receives the Client's logs. Nil: nothing is logged.
	Logger *slog.Logger
}

// withDefaults returns a copy of c with the defaults filled in.
func (c Config) withDefaults() (Config, error) {
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&c.PingInterval, DefaultPingInterval)
	def(&c.PongTimeout, DefaultPongTimeout)
	if c.PongTimeout > 0 {
		def(&c.WriteTimeout, min(DefaultWriteTimeout, c.PongTimeout))
	}
	def(&c.BackoffBase, DefaultBackoffBase)
	def(&c.BackoffMax, DefaultBackoffMax)
	def(&c.StableAfter, DefaultStableAfter)
	def(&c.DrainWindow, DefaultDrainWindow)
	if c.ClientIDHeader == "" {
		c.ClientIDHeader = DefaultClientIDHeader
	}
	if c.AppPing == "" {
		c.AppPing = DefaultAppPing
	}
	if c.AppPong == "" {
		c.AppPong = DefaultAppPong
	}
	if c.SendQueueSize == 0 {
		c.SendQueueSize = DefaultSendQueueSize
	}
	if c.ReceiveBuffer <= 0 {
		c.ReceiveBuffer = DefaultReceiveBuffer
	}
	if c.Dialer == nil {
		c.Dialer = &websocket.Dialer{Proxy: http.ProxyFromEnvironment, HandshakeTimeout: 10 * time.Second}
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	h := c.Header.Clone()
	if h == nil {
		h = http.Header{}
	}
	if c.ClientID != "" {
		h.Set(c.ClientIDHeader, c.ClientID)
	}
	c.Header = h
	switch {
	case c.PongTimeout < 0, c.WriteTimeout < 0, c.StableAfter < 0, c.DrainWindow < 0:
		return c, fmt.Errorf("%w: PongTimeout, WriteTimeout, StableAfter and DrainWindow must not be negative", ErrInvalidConfig)
	case c.WriteTimeout > c.PongTimeout:
		return c, fmt.Errorf("%w: WriteTimeout %v must not exceed PongTimeout %v (a ping waits behind a write for up to WriteTimeout; a live server would miss its deadline)",
			ErrInvalidConfig, c.WriteTimeout, c.PongTimeout)
	case c.BackoffBase <= 0 || c.BackoffMax < c.BackoffBase:
		return c, fmt.Errorf("%w: backoff base %v and max %v: want 0 < base <= max", ErrInvalidConfig, c.BackoffBase, c.BackoffMax)
	}
	return c, nil
}

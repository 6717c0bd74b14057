package middleware

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/vigilhq/vigil/presence"
)

// Defaults of Config.
const (
	DefaultPingInterval   = 25 * time.Second
	DefaultPongTimeout    = 10 * time.Second
	DefaultWriteTimeout   = 10 * time.Second
	DefaultReadLimit      = 64 << 10
	DefaultReadBufferSize = 512
	DefaultSendQueueSize  = 64
	DefaultDrainWindow    = 5 * time.Second
	DefaultRetryAfter     = 5 * time.Second
	DefaultAppPing        = "ping"
	DefaultAppPong        = "pong"
	DefaultMaxBodyBytes   = 1 << 10
)

// Config tunes a Server. Every zero field takes the default its comment
// names; where a feature can be turned off, a negative value turns it off.
type Config struct {
	// Identify derives the client ID from a request, before any upgrade.
	// It returns an error wrapping ErrNoIdentity when the request carries
	// no identity (answered 401), and an ID that fails presence.ValidateID
	// is answered 400. See IdentifyHeader, IdentifyQuery, IdentifyCookie
	// and IdentifyContext. Required.
	Identify func(*http.Request) (string, error)

	// AllowedOrigins lists the exact origins ("https://app.example",
	// "http://localhost:8080") allowed besides the request's own origin.
	// Scheme, host and port must all match; a missing port means the
	// scheme's default. Requests without an Origin header (non-browser
	// clients) are always allowed. Default: only same-origin requests.
	AllowedOrigins []string

	// InsecureSkipOriginCheck accepts WebSocket upgrades and heartbeat
	// requests from every origin. It lets any web page a user visits open
	// connections in that user's name with the user's cookies (cross-site
	// WebSocket hijacking). Set it only when Identify uses no ambient
	// credentials (cookies, HTTP auth). Default: false.
	InsecureSkipOriginCheck bool

	// PingInterval is how often the server sends a protocol ping on every
	// WebSocket connection. It must be less than IdleTimeout, if set.
	// Default: 25s.
	PingInterval time.Duration

	// PongTimeout is how long after a ping the server waits for a frame
	// (a pong or anything else) before it drops the connection as dead.
	// The deadline counts from the last frame received: a connection with
	// no frame for PingInterval+PongTimeout is dropped. The Tracker's TTL
	// must be at least PingInterval+PongTimeout. Default: 10s.
	PongTimeout time.Duration

	// IdleTimeout closes a WebSocket connection (code 4501, reason "idle")
	// whose client sent no application message for that long; pongs and
	// application pings do not count. Zero or negative: no idle timeout.
	// Default: off.
	IdleTimeout time.Duration

	// WriteTimeout bounds each write of a message or control frame. A
	// client that does not take a message within it is dropped as a slow
	// consumer. A ping due while a message is being written waits for that
	// write, so WriteTimeout must not exceed PongTimeout: a longer one
	// could hold a live client's ping back until its deadline passed.
	// Default: 10s, or PongTimeout if that is shorter.
	WriteTimeout time.Duration

	// ReadLimit is the largest message, in bytes, a client may send; a
	// larger one closes the connection with 1009. Default: 64 KiB.
	ReadLimit int64

	// ReadBufferSize is the size of each connection's read buffer. Small
	// buffers keep connections cheap; large messages are read in several
	// steps. Above 256 bytes, an idle connection (on a plain TCP socket)
	// gives its buffer back to a pool until data arrives. Default: 512.
	ReadBufferSize int

	// SendQueueSize is how many messages Conn.Send may hold for a
	// connection that is busy writing. When a message arrives with the
	// queue full the client is a slow consumer: the connection is closed
	// with 4001 and Send returns ErrSlowConsumer. Default: 64.
	SendQueueSize int

	// AppPing and AppPong are the application-level heartbeat: a text
	// message exactly AppPing is answered with the text AppPong and is
	// never delivered to the application. DisableAppPing turns it off.
	// Default: "ping" and "pong".
	AppPing, AppPong string
	// DisableAppPing delivers "ping" text messages to the application like
	// any other. Default: false.
	DisableAppPing bool

	// DisableActivity delivers text messages starting with ActivityPrefix
	// ("vigil:") to the application like any other, and records no
	// "state" of HTTP heartbeats (it is still checked): clients cannot
	// report away. Reports are
	// also ignored (but still checked) when the Tracker's Store keeps no
	// activity (see presence.Tracker.HasStates). Default: false.
	DisableActivity bool

	// MaxConnsPerClient caps the WebSocket connections plus HTTP-heartbeat
	// sessions one client may hold on this node. Over it, an upgrade or a
	// new heartbeat session is answered 429 with Retry-After. N nodes allow
	// N times it: the Tracker's presence.Config.MaxSessionsPerClient caps a
	// client across every node sharing the Store, answered the same way.
	// Zero or negative: no cap. Default: no cap.
	MaxConnsPerClient int

	// DrainWindow is the time over which Shutdown spreads the close frames
	// (1001) it sends, so that clients do not all reconnect at the same
	// instant. Negative: close every connection at once. Default: 5s.
	DrainWindow time.Duration

	// RetryAfter is the Retry-After value of 429 and 503 answers, rounded
	// up to whole seconds. Default: 5s.
	RetryAfter time.Duration

	// MaxBodyBytes limits the body of heartbeat and leave requests; a
	// larger one is answered 413. Default: 1 KiB.
	MaxBodyBytes int64

	// CountRequest decides whether a request TrackRequests watched counts
	// as a beat, from the request and the status its handler answered. It
	// is asked only about requests of an identified client, from an allowed
	// origin, that were not WebSocket upgrades nor served by the Server's
	// own endpoints (see TrackRequests). Return true to count, say, only
	// requests under /app/, or also 404s. It runs on the request's
	// goroutine, after the handler. Default: DefaultCountRequest (a status
	// below 400).
	CountRequest func(r *http.Request, status int) bool

	// ConnContext, if set, derives the context a WebSocket Handler gets
	// from the upgrade request, to carry request-scoped values (the
	// authenticated user, say) into the connection. The request's own
	// context must not be kept: routers such as chi recycle the values it
	// holds once the request handler returns. base is cancelled when the
	// connection ends. Default: base.
	ConnContext func(base context.Context, r *http.Request) context.Context

	// Rooms, if set, names the rooms a new session joins and the metadata
	// it carries, from the request that opens it and its client's ID
	// (found by Identify): WebSocket upgrades, Attach and the HTTP
	// heartbeat endpoint call it. The session joins them in the same Store
	// step as its Online (presence.SessionOptions.Rooms and Meta), so a
	// page that joins "general" never shows its client online and not yet
	// in the room. A heartbeat of a session this node holds joins the
	// rooms it is not in yet and sets new metadata; it never leaves a
	// room (see Server.HTTPSession and Conn.Session to leave one). The
	// application authorises here: return only rooms the client may be
	// in. An error, or a room or metadata that presence.ValidateRoom or
	// presence.ValidateMeta rejects, or more than
	// presence.MaxRoomsPerSession rooms, is answered 400 (codes
	// invalid_room and invalid_meta) before any upgrade, and logged. It
	// runs on the request's goroutine and must not keep r. It needs a
	// Tracker whose Store keeps rooms (a presence.RoomStore: store/memory,
	// store/redis); New fails otherwise. Default: sessions join no room
	// unless the application calls Conn.Session().Join.
	Rooms func(r *http.Request, clientID string) (SessionRooms, error)

	// Logger receives the Server's logs. Nil: nothing is logged.
	Logger *slog.Logger
}

// withDefaults returns a copy of c with the defaults filled in, checked
// against the Tracker's configuration.
func (c Config) withDefaults(tc presence.Config) (Config, error) {
	if c.Identify == nil {
		return c, fmt.Errorf("%w: config Identify is nil", ErrInvalidConfig)
	}
	c.PingInterval = cmp.Or(c.PingInterval, DefaultPingInterval)
	c.PongTimeout = cmp.Or(c.PongTimeout, DefaultPongTimeout)
	if c.WriteTimeout == 0 && c.PongTimeout > 0 {
		c.WriteTimeout = min(DefaultWriteTimeout, c.PongTimeout)
	}
	c.DrainWindow = max(cmp.Or(c.DrainWindow, DefaultDrainWindow), 0)
	c.RetryAfter = cmp.Or(c.RetryAfter, DefaultRetryAfter)
	c.IdleTimeout = max(c.IdleTimeout, 0)
	c.ReadLimit = cmp.Or(c.ReadLimit, DefaultReadLimit)
	c.ReadBufferSize = cmp.Or(c.ReadBufferSize, DefaultReadBufferSize)
	c.SendQueueSize = cmp.Or(c.SendQueueSize, DefaultSendQueueSize)
	c.MaxBodyBytes = cmp.Or(c.MaxBodyBytes, DefaultMaxBodyBytes)
	c.AppPing = cmp.Or(c.AppPing, DefaultAppPing)
	c.AppPong = cmp.Or(c.AppPong, DefaultAppPong)
	c.MaxConnsPerClient = max(c.MaxConnsPerClient, 0)
	if c.CountRequest == nil {
		c.CountRequest = DefaultCountRequest
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	switch {
	case c.PingInterval < 0:
		return c, fmt.Errorf("%w: config PingInterval %v is negative", ErrInvalidConfig, c.PingInterval)
	case c.PongTimeout < 0:
		return c, fmt.Errorf("%w: config PongTimeout %v is negative", ErrInvalidConfig, c.PongTimeout)
	case c.WriteTimeout < 0:
		return c, fmt.Errorf("%w: config WriteTimeout %v is negative", ErrInvalidConfig, c.WriteTimeout)
	case c.RetryAfter < 0:
		return c, fmt.Errorf("%w: config RetryAfter %v is negative", ErrInvalidConfig, c.RetryAfter)
	case c.ReadLimit < 0 || c.ReadBufferSize < 0 || c.SendQueueSize < 0 || c.MaxBodyBytes < 0:
		return c, fmt.Errorf("%w: config ReadLimit, ReadBufferSize, SendQueueSize and MaxBodyBytes must not be negative", ErrInvalidConfig)
	}
	// The relations between timings (docs/PROTOCOL.md, "Timing relations").
	// Each message names the relation and why it must hold.
	switch {
	case c.IdleTimeout > 0 && c.IdleTimeout <= c.PingInterval:
		return c, fmt.Errorf("%w: config IdleTimeout %v must be longer than PingInterval %v (an idle connection must outlast a ping interval in which a quiet client only answers pings)",
			ErrInvalidConfig, c.IdleTimeout, c.PingInterval)
	case c.WriteTimeout > c.PongTimeout:
		return c, fmt.Errorf("%w: config WriteTimeout %v must not exceed PongTimeout %v (a ping waits behind a write for up to WriteTimeout; a live client would miss its deadline)",
			ErrInvalidConfig, c.WriteTimeout, c.PongTimeout)
	case tc.TTL < c.PingInterval+c.PongTimeout:
		return c, fmt.Errorf("%w: tracker TTL %v must be at least PingInterval+PongTimeout %v (a live client beats once per ping; a shorter TTL expires healthy sessions)",
			ErrInvalidConfig, tc.TTL, c.PingInterval+c.PongTimeout)
	}
	for _, o := range c.AllowedOrigins {
		if _, ok := parseOrigin(o); !ok {
			return c, fmt.Errorf("%w: config AllowedOrigins: %q is not scheme://host[:port]", ErrInvalidConfig, o)
		}
	}
	return c, nil
}

// tick is the step of the ping scheduler: fine enough that a dead peer is
// dropped within a small fraction of PongTimeout after its deadline.
func (c Config) tick() time.Duration {
	t := min(c.PingInterval, c.PongTimeout) / 16
	return min(max(t, 5*time.Millisecond), 500*time.Millisecond)
}

// closeWait bounds the wait for the peer's answer to a close frame we sent.
func (c Config) closeWait() time.Duration { return min(c.WriteTimeout, 2*time.Second) }

// controlTimeout bounds writes of pings and close frames from shared
// goroutines, so one stuck client cannot hold up the others for long.
func (c Config) controlTimeout() time.Duration { return min(c.WriteTimeout, time.Second) }

package presence

import (
	"fmt"
	"log/slog"
	"os"
	"time"
)

// Defaults of Config.
const (
	DefaultTTL           = 35 * time.Second
	DefaultGrace         = 5 * time.Second
	DefaultSweepInterval = 500 * time.Millisecond
	DefaultHookTimeout   = 10 * time.Second
)

// Config tunes a Tracker. The zero value is ready to use: every zero field
// takes the default its comment names.
type Config struct {
	// Node identifies this process among the nodes sharing the Store. Give
	// a node the same ID when it restarts, so it can clear what its previous
	// incarnation left; two live nodes must never share one. It must pass
	// ValidateID. Default: the host name, or "node" if it is unknown.
	Node string

	// TTL is how long a session stays live after its last beat. Beats never
	// more than TTL apart keep a session alive. It must be more than twice
	// SweepInterval. Default: 35s (the middleware's default ping interval of
	// 25s plus its pong timeout of 10s).
	TTL time.Duration

	// Grace is how long a session that ended (closed, left, kicked, cleared
	// at a node restart, shut down) lingers before it counts as gone, so
	// that a reload or a quick reconnect fires no Offline/Online pair. A
	// session that timed out goes at once. Negative: no grace. Default: 5s.
	Grace time.Duration

	// SweepInterval is how often the Tracker removes expired sessions from
	// the Store. Beats are written to the Store, in batches, twice as often.
	// An Offline lands within TTL + Grace + 2×SweepInterval of the last beat.
	// It must not exceed 1s. Default: 500ms.
	SweepInterval time.Duration

	// HookTimeout bounds one hook call. A hook still running after it is
	// abandoned: it is logged at Warn level, its context is cancelled and
	// the client's next hook call starts. Negative: hooks are never
	// abandoned, and a hook that blocks holds back that client's later
	// events (never beats; other clients' events only once 256 clients'
	// hooks block at once). Default: 10s.
	HookTimeout time.Duration

	// MaxSessionsPerClient caps the live sessions one client may hold
	// across every node sharing the Store. The Store decides it atomically
	// when Connect records a new session, so nodes racing to open sessions
	// for one client never exceed it; over it, Connect fails with
	// ErrTooManySessions and nothing is recorded. Ending sessions, lingering
	// through their Grace, do not count: a client that reloads its page
	// reconnects at once. Reconnecting with the ID of a session the Store
	// holds is never refused. While the Store cannot be reached, or before
	// a restarted node has cleared its previous sessions, Connect records
	// the session later: it is then refused (OnGone with ReasonKicked) if
	// the client is over the cap by that time. The middleware's
	// Config.MaxConnsPerClient caps this node alone. Zero or negative: no
	// cap. Default: no cap.
	MaxSessionsPerClient int

	// Observer receives counts and latencies for metrics (see Observer);
	// a middleware Server built on this Tracker reports through it too.
	// Nil: nothing is reported.
	Observer Observer

	// Logger receives the Tracker's logs. Nil: nothing is logged.
	Logger *slog.Logger
}

// withDefaults returns a copy of c with defaults filled in, or an error
// describing the first invalid field.
func (c Config) withDefaults() (Config, error) {
	if c.Node == "" {
		c.Node = "node"
		if h, err := os.Hostname(); err == nil && ValidateID(h) == nil {
			c.Node = h
		}
	}
	if err := ValidateID(c.Node); err != nil {
		return c, fmt.Errorf("presence: config Node: %w", err)
	}
	if c.TTL == 0 {
		c.TTL = DefaultTTL
	}
	switch {
	case c.Grace == 0:
		c.Grace = DefaultGrace
	case c.Grace < 0:
		c.Grace = 0
	}
	if c.SweepInterval == 0 {
		c.SweepInterval = DefaultSweepInterval
	}
	c.MaxSessionsPerClient = max(c.MaxSessionsPerClient, 0)
	if c.HookTimeout == 0 {
		c.HookTimeout = DefaultHookTimeout
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.SweepInterval < 0 || c.SweepInterval > time.Second {
		return c, fmt.Errorf("%w: config SweepInterval %v not in (0, 1s]", ErrInvalidArgument, c.SweepInterval)
	}
	if c.TTL <= 2*c.SweepInterval {
		return c, fmt.Errorf("%w: config TTL %v not more than twice SweepInterval %v", ErrInvalidArgument, c.TTL, c.SweepInterval)
	}
	return c, nil
}

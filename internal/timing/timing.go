// Package timing gives tests the library's default timings scaled by one
// factor, so that compressed tests keep every relation the defaults have (a
// write timeout shorter than the ping interval, a TTL longer than ping plus
// pong timeout, a sweep step far below the TTL). Scaling each timing on its
// own is how the suite once proved the library at settings nobody runs
// (issue 10): a 1 s ping with the default 10 s write timeout inverted the
// relation that broke connections at the real 25 s ping.
package timing

import (
	"time"

	"github.com/vigilhq/vigil/middleware"
	"github.com/vigilhq/vigil/presence"
)

// Scaled holds the defaults of every timing knob, each multiplied by the
// same factor.
type Scaled struct {
	Factor float64

	// middleware.Config
	PingInterval, PongTimeout, WriteTimeout, DrainWindow time.Duration
	// presence.Config
	TTL, Grace, SweepInterval time.Duration
}

// Scale returns the defaults multiplied by f. SweepInterval is the one
// timing that is not scaled below its floor: the Tracker requires TTL to be
// more than twice SweepInterval, which holds at every f ≥ 1/35.
func Scale(f float64) Scaled {
	d := func(v time.Duration) time.Duration { return time.Duration(float64(v) * f) }
	return Scaled{
		Factor:        f,
		PingInterval:  d(middleware.DefaultPingInterval),
		PongTimeout:   d(middleware.DefaultPongTimeout),
		WriteTimeout:  d(middleware.DefaultWriteTimeout),
		DrainWindow:   d(middleware.DefaultDrainWindow),
		TTL:           d(presence.DefaultTTL),
		Grace:         d(presence.DefaultGrace),
		SweepInterval: min(d(presence.DefaultSweepInterval), presence.DefaultSweepInterval),
	}
}

// Server returns a middleware.Config with the scaled timings.
func (s Scaled) Server() middleware.Config {
	return middleware.Config{PingInterval: s.PingInterval, PongTimeout: s.PongTimeout,
		WriteTimeout: s.WriteTimeout, DrainWindow: s.DrainWindow}
}

// Tracker returns a presence.Config with the scaled timings.
func (s Scaled) Tracker() presence.Config {
	return presence.Config{TTL: s.TTL, Grace: s.Grace, SweepInterval: s.SweepInterval}
}

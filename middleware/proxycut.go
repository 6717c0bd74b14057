package middleware

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"sync"
	"time"
)

// The proxy-cut diagnosis. The failure users of every WebSocket system
// report most is a proxy or load balancer in front (nginx's
// proxy_read_timeout, 60s by default; AWS ALB's idle timeout, 60s;
// Cloudflare's 100s) closing connections that carried nothing for its idle
// timeout. From the server, each such cut is a connection that ends without
// a close frame (1006), and they all end at the same age: the proxy's
// timeout. Clients that vanish for other reasons (a tab closed, a phone
// going out of range) end at scattered ages. So the Server keeps the ages of
// the last abnormal ends, and when enough of them, and most of them, fall
// within a second of each other, it logs one warning naming that age and
// the fix.
const (
	// cutWindow is how far back abnormal ends are compared.
	cutWindow = 10 * time.Minute
	// cutKeep is how many recent abnormal ends are kept.
	cutKeep = 32
	// cutMin is how many ends at about the same age make a diagnosis, and
	// they must also be at least half of the abnormal ends in the window.
	cutMin = 5
	// cutSpread is how close "about the same age" is.
	cutSpread = time.Second
	// cutRepeat is the least time between two warnings for the same age.
	cutRepeat = 10 * time.Minute
)

type cutEnd struct {
	at  time.Time     // when the connection ended
	age time.Duration // how long it had been open
}

// cutDetector holds the recent abnormal ends. (Their ages are also
// reported to the Observer, for the vigil_ws_dropped_age_seconds histogram.)
type cutDetector struct {
	// mu guards the fields below.
	mu     sync.Mutex
	ends   []cutEnd
	warned map[int64]time.Time // by age in whole seconds
}

// ended records a connection that ended without a close frame after age,
// and returns the age to warn about, if this end completes a diagnosis.
func (d *cutDetector) ended(now time.Time, age time.Duration) (time.Duration, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.ends = append(d.ends, cutEnd{now, age})
	d.ends = slices.DeleteFunc(d.ends, func(e cutEnd) bool { return now.Sub(e.at) > cutWindow })
	if len(d.ends) > cutKeep {
		d.ends = d.ends[len(d.ends)-cutKeep:]
	}
	// The ends within cutSpread of this one's age, around their median.
	var near []time.Duration
	for _, e := range d.ends {
		if (e.age - age).Abs() <= cutSpread {
			near = append(near, e.age)
		}
	}
	if len(near) < cutMin || 2*len(near) < len(d.ends) {
		return 0, false
	}
	slices.Sort(near)
	cut := near[len(near)/2]
	key := int64(math.Round(cut.Seconds()))
	if last, ok := d.warned[key]; ok && now.Sub(last) < cutRepeat {
		return 0, false
	}
	if d.warned == nil {
		d.warned = make(map[int64]time.Time)
	}
	d.warned[key] = now
	return cut, true
}

// connDropped is called by finish for a connection that ended without a
// close frame from either side after it had been open for age.
func (s *Server) connDropped(ctx context.Context, age time.Duration) {
	s.obs.ConnDropped(age)
	cut, ok := s.cuts.ended(time.Now(), age)
	if !ok {
		return
	}
	secs := math.Round(cut.Seconds()*10) / 10
	s.log.LogAttrs(ctx, slog.LevelWarn, fmt.Sprintf(
		"middleware: connections keep ending without a close frame after about %v s: a proxy or load balancer in front "+
			"closes idle connections; set PingInterval (now %v) below %v s, or raise the proxy's idle timeout",
		secs, s.cfg.PingInterval, secs),
		slog.String("event", "proxy_cut"), slog.Float64("age_s", secs), slog.Duration("ping_interval", s.cfg.PingInterval))
}

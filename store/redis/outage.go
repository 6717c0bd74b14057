package redis

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/vigilhq/vigil/presence"
)

// outageLogGap is the least time between two "unreachable" lines: a Redis
// that flaps logs one line a minute, not one per flap.
const outageLogGap = time.Minute

// outage follows whether Redis answers the Store's calls, and logs one line
// when it stops answering and one when it answers again, instead of a line
// per failed call: the Tracker retries every SweepInterval, and go-redis
// retries each call, so an outage makes many errors a second.
type outage struct {
	log  *slog.Logger
	addr string
	gap  time.Duration
	now  func() time.Time
	// reload, for a Cluster client, has go-redis reload the slot map. It
	// does so by itself only on a MOVED or ASK reply and every
	// ClusterStateReloadInterval (60s by default), so after a failover it
	// would send the failed shard's calls to its dead master, which answers
	// neither, for up to a minute (go-redis issue 3979). Nil otherwise.
	reload func()

	// mu guards the fields below.
	mu       sync.Mutex
	down     bool
	since    time.Time // when the current outage began
	failed   int       // calls failed in the current outage
	logged   bool      // the current outage's start was logged
	lastLog  time.Time // when an outage's start was last logged
	unlogged int       // outages not logged since (within gap of lastLog)
}

func newOutage(log *slog.Logger, rdb goredis.UniversalClient) *outage {
	o := &outage{log: log, addr: addrOf(rdb), gap: outageLogGap, now: time.Now}
	if c, ok := rdb.(*goredis.ClusterClient); ok {
		// ReloadState reloads in the background, at most once per 200ms
		// however often it is asked.
		o.reload = func() { c.ReloadState(context.Background()) }
	}
	return o
}

// addrOf names the server(s) rdb talks to, for log lines.
func addrOf(rdb goredis.UniversalClient) string {
	switch c := rdb.(type) {
	case *goredis.Client:
		return c.Options().Addr
	case *goredis.ClusterClient:
		return strings.Join(c.Options().Addrs, ",")
	case *goredis.Ring:
		var addrs []string
		for _, a := range c.Options().Addrs {
			addrs = append(addrs, a)
		}
		slices.Sort(addrs)
		return strings.Join(addrs, ",")
	}
	return ""
}

// observe records the result of one call of the Store: err is what the
// call returns (nil on success).
func (o *outage) observe(ctx context.Context, err error) {
	reached, known := answered(err)
	if !known {
		return
	}
	if !reached && o.reload != nil {
		o.reload()
	}
	o.mu.Lock()
	now := o.now()
	if reached {
		if !o.down {
			o.mu.Unlock()
			return
		}
		o.down = false
		logged, failed, down := o.logged, o.failed, now.Sub(o.since)
		o.mu.Unlock()
		if logged {
			o.log.LogAttrs(ctx, slog.LevelWarn, "redis: reachable again", slog.String("addr", o.addr),
				slog.Duration("down", down.Round(time.Millisecond)), slog.Int("failed_calls", failed))
		}
		return
	}
	o.failed++
	if o.down {
		o.mu.Unlock()
		return
	}
	o.down, o.since, o.failed = true, now, 1
	o.logged = o.lastLog.IsZero() || now.Sub(o.lastLog) >= o.gap
	if !o.logged {
		o.unlogged++
		o.mu.Unlock()
		return
	}
	o.lastLog = now
	attrs := []slog.Attr{slog.String("addr", o.addr), slog.Any("err", err)}
	if o.unlogged > 0 {
		attrs = append(attrs, slog.Int("outages_not_logged", o.unlogged))
		o.unlogged = 0
	}
	o.mu.Unlock()
	// Warn: the Tracker retries, connections stay up and no presence is
	// lost while it lasts (see the package doc's Redis outages).
	o.log.LogAttrs(ctx, slog.LevelWarn, "redis: unreachable, retrying", attrs...)
}

// answered reports whether err shows that Redis answered (reached) and
// whether err tells at all (known): a call refused before any I/O, or
// cancelled by its caller, tells nothing.
func answered(err error) (reached, known bool) {
	var rerr goredis.Error
	switch {
	case err == nil:
		return true, true
	case errors.Is(err, presence.ErrInvalidArgument), errors.Is(err, presence.ErrInvalidID),
		errors.Is(err, presence.ErrLimit), errors.Is(err, context.Canceled), errors.Is(err, goredis.ErrClosed):
		return false, false
	case errors.Is(err, presence.ErrNotFound), errors.Is(err, errReply), errors.As(err, &rerr):
		return true, true // Redis answered, if not as hoped
	}
	return false, true // no answer: refused, reset, timed out
}

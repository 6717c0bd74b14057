package redis

import (
	"fmt"
	"log/slog"
	"strings"
	"time"
	"unicode"

	"github.com/vigilhq/vigil/presence"
)

// Defaults of Config.
const (
	DefaultPrefix       = "vigil"
	DefaultBuckets      = 32
	DefaultRetention    = 24 * time.Hour
	DefaultJournalLen   = 10_000
	DefaultReclaimAfter = 30 * time.Second
	DefaultReassert     = 5 * time.Second
	DefaultMaxClients   = 1_000_000
	DefaultMaxSessions  = 2_000_000
)

// MaxBuckets is the largest Config.Buckets.
const MaxBuckets = 4096

// sweepBatch bounds the sessions (and forgotten clients) one script call
// removes, over all the buckets it sweeps, so that one call never holds
// Redis for long: about 10ms here, against 40ms for 1000. Sweep calls again
// while a bucket has more due. It was once per bucket: on a single server,
// where one call sweeps all 32 buckets, that let one call run for 100ms and
// more (bench/redis TestFigureSlowStore).
const sweepBatch = 250

// Config tunes a Store. The zero value is ready to use. Every node sharing
// a namespace must use the same Prefix and Buckets.
type Config struct {
	// Prefix names the namespace: every key of the Store starts with
	// "{" + Prefix + ":b". It must be 1 to 64 bytes with no braces, spaces
	// or control characters. Default: "vigil".
	Prefix string

	// Buckets is the number of hash-tagged buckets clients are spread over.
	// Each bucket is one Redis Cluster slot, so more buckets spread a
	// namespace over more shards; fewer buckets make fewer commands per
	// beat on a Cluster, where each bucket written in a batch costs one
	// command. Changing it orphans the data of the old layout. At most
	// MaxBuckets. Default: 32.
	Buckets int

	// MaxClients caps the clients the Store holds, online ones plus offline
	// ones remembered for their last-seen time, over every node sharing
	// the namespace. It is enforced per bucket: each bucket holds at most
	// MaxClients / Buckets clients (see "Limits" in the package
	// documentation). When a new client would take its bucket past that,
	// the bucket's client offline the longest is forgotten to make room;
	// when all of them are online, Add fails with presence.ErrLimit and
	// writes nothing. Sweep forgets the offline clients of a bucket over
	// its share (after a lower cap, say), longest offline first. It must
	// be at least Buckets. Negative: no cap. Default: 1,000,000.
	MaxClients int

	// MaxSessions caps the sessions the Store holds, live and ending, over
	// every node sharing the namespace, each bucket at most MaxSessions /
	// Buckets: past that, Add of a new session fails with
	// presence.ErrLimit and writes nothing. Refreshing or reviving a
	// session the Store holds is never refused. It must be at least
	// Buckets. Negative: no cap. Default: 2,000,000.
	MaxSessions int

	// Retention is how long an offline client's last-seen time (and its
	// Seq) is kept, unless MaxClients needs the room first. Sweep forgets
	// clients offline for longer. Negative: forget a client as soon as it
	// goes offline. Default: 24h.
	Retention time.Duration

	// JournalLen is about how many transitions each bucket's journal
	// stream keeps (XADD MAXLEN ~): the history a lagging watcher or a
	// reclaim can still read. Default: 10,000.
	JournalLen int

	// ReclaimAfter is how long a transition may stay unacknowledged (its
	// hooks not yet run by the node that claimed it) before a Sweep of any
	// node claims it again to deliver it: a node that died between claiming
	// a transition and running its hooks loses nothing. Keep it above the
	// longest time hooks may take, or live nodes' events are delivered
	// twice. Negative: transitions are never left pending and never
	// reclaimed. Default: 30s.
	ReclaimAfter time.Duration

	// Reassert is the re-assertion window: how long after Redis lost a
	// bucket's data (a restart without persistence, a new generation) the
	// bucket holds its transitions while every node writes again the
	// sessions it holds there. Each node notices the loss at its next
	// Sweep (every presence.Config.SweepInterval) and re-asserts at once;
	// the first Sweep after the window decides each held client once,
	// against the re-asserted state: a client that connected on one node
	// while another still held it gets no second Online, one whose
	// lingering session ends gets its Offline. The cost is delay: a
	// transition decided in the window fires up to Reassert +
	// SweepInterval after it happened. Keep it above SweepInterval plus
	// the time a node takes to reconnect and re-assert. Negative: no
	// window (a client can then get a second Online after Redis lost its
	// data). Default: 5s.
	Reassert time.Duration

	// Logger receives the Store's logs: data loss detected in Redis,
	// reclaimed transitions, and Redis outages: one Warn line, with the
	// address, when Redis stops answering ("redis: unreachable, retrying")
	// and one when it answers again, however many calls failed between;
	// a Redis that flaps logs at most one outage a minute. Nil: nothing is
	// logged.
	Logger *slog.Logger
}

func (c Config) withDefaults() (Config, error) {
	if c.Prefix == "" {
		c.Prefix = DefaultPrefix
	}
	if c.Buckets == 0 {
		c.Buckets = DefaultBuckets
	}
	if c.Retention == 0 {
		c.Retention = DefaultRetention
	}
	if c.MaxClients == 0 {
		c.MaxClients = DefaultMaxClients
	}
	if c.MaxSessions == 0 {
		c.MaxSessions = DefaultMaxSessions
	}
	if c.JournalLen == 0 {
		c.JournalLen = DefaultJournalLen
	}
	if c.ReclaimAfter == 0 {
		c.ReclaimAfter = DefaultReclaimAfter
	}
	if c.Reassert == 0 {
		c.Reassert = DefaultReassert
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if len(c.Prefix) > 64 || strings.ContainsFunc(c.Prefix, func(r rune) bool {
		return r == '{' || r == '}' || unicode.IsSpace(r) || unicode.IsControl(r) || r == 0xFFFD
	}) {
		return c, fmt.Errorf("%w: redis: config Prefix %q", presence.ErrInvalidArgument, c.Prefix)
	}
	if c.Buckets < 0 || c.Buckets > MaxBuckets {
		return c, fmt.Errorf("%w: redis: config Buckets %d not in [1, %d]", presence.ErrInvalidArgument, c.Buckets, MaxBuckets)
	}
	// A bucket's share is a whole number: below one per bucket, some
	// buckets could hold nothing at all.
	if c.MaxClients > 0 && c.MaxClients < c.Buckets || c.MaxSessions > 0 && c.MaxSessions < c.Buckets {
		return c, fmt.Errorf("%w: redis: config MaxClients %d or MaxSessions %d below Buckets %d", presence.ErrInvalidArgument, c.MaxClients, c.MaxSessions, c.Buckets)
	}
	if c.JournalLen < 0 {
		return c, fmt.Errorf("%w: redis: config JournalLen %d", presence.ErrInvalidArgument, c.JournalLen)
	}
	return c, nil
}

package prometheus

import (
	"context"
	"errors"
	"strconv"
	"time"

	prom "github.com/prometheus/client_golang/prometheus"

	"github.com/vigilhq/vigil/presence"
)

// Config tunes the metrics.
type Config struct {
	// Namespace is the first part of every metric name. Default: "vigil".
	Namespace string

	// Buckets are the upper bounds, in seconds, of the Store latency
	// histogram. Default: 0.5ms to 2.5s, about ×2.5 apart.
	Buckets []float64

	// CountTimeout bounds the Store count NewTrackerCollector makes at each
	// scrape; when it fails, the online-clients gauge is left out of that
	// scrape. Default: 1s.
	CountTimeout time.Duration
}

// DefaultBuckets are the default bounds of the Store latency histogram.
var DefaultBuckets = []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5}

func (c Config) withDefaults() Config {
	if c.Namespace == "" {
		c.Namespace = "vigil"
	}
	if len(c.Buckets) == 0 {
		c.Buckets = DefaultBuckets
	}
	if c.CountTimeout <= 0 {
		c.CountTimeout = time.Second
	}
	return c
}

// Observer is a presence.Observer that counts into Prometheus metrics. It is
// safe for concurrent use; use New to make one.
type Observer struct {
	open        *prom.GaugeVec
	opened      *prom.CounterVec
	closed      *prom.CounterVec
	beats       *prom.CounterVec
	transitions *prom.CounterVec
	storeErrors *prom.CounterVec
	storeTime   *prom.HistogramVec

	// Children of the hot paths, resolved once.
	beatWS, beatHTTP prom.Counter
}

var _ presence.Observer = (*Observer)(nil)

// New returns an Observer whose metrics are registered on reg. It fails when
// reg is nil or refuses a metric (prom.AlreadyRegisteredError when the same
// names are registered twice: use another Namespace or registry).
func New(reg prom.Registerer, cfg Config) (*Observer, error) {
	if reg == nil {
		return nil, errors.New("prometheus: nil Registerer")
	}
	cfg = cfg.withDefaults()
	ns := cfg.Namespace
	o := &Observer{
		open: prom.NewGaugeVec(prom.GaugeOpts{Namespace: ns, Name: "connections",
			Help: "Open WebSocket connections (transport ws) and HTTP-heartbeat sessions (http) on this node."}, []string{"transport"}),
		opened: prom.NewCounterVec(prom.CounterOpts{Namespace: ns, Name: "connections_opened_total",
			Help: "WebSocket connections and HTTP-heartbeat sessions opened."}, []string{"transport"}),
		closed: prom.NewCounterVec(prom.CounterOpts{Namespace: ns, Name: "connections_closed_total",
			Help: "WebSocket connections and HTTP-heartbeat sessions ended, by close code (1006: dropped; none: HTTP) and presence reason."},
			[]string{"transport", "code", "reason"}),
		beats: prom.NewCounterVec(prom.CounterOpts{Namespace: ns, Name: "beats_total",
			Help: "Beats received: frames, pongs, HTTP heartbeats and tracked requests."}, []string{"transport"}),
		transitions: prom.NewCounterVec(prom.CounterOpts{Namespace: ns, Subsystem: "presence", Name: "transitions_total",
			Help: "Presence transitions observed by this node."}, []string{"to", "reason"}),
		storeErrors: prom.NewCounterVec(prom.CounterOpts{Namespace: ns, Subsystem: "presence", Name: "store_errors_total",
			Help: "Failed Store calls, by method."}, []string{"op"}),
		storeTime: prom.NewHistogramVec(prom.HistogramOpts{Namespace: ns, Subsystem: "presence", Name: "store_duration_seconds",
			Help: "Latency of Store calls, by method.", Buckets: cfg.Buckets}, []string{"op"}),
	}
	for _, c := range []prom.Collector{o.open, o.opened, o.closed, o.beats, o.transitions, o.storeErrors, o.storeTime} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	o.beatWS = o.beats.WithLabelValues(presence.TransportWS)
	o.beatHTTP = o.beats.WithLabelValues(presence.TransportHTTP)
	for _, t := range transports {
		o.open.WithLabelValues(t)
		o.opened.WithLabelValues(t)
	}
	return o, nil
}

var transports = []string{presence.TransportWS, presence.TransportHTTP}

func transport(t string) string {
	switch t {
	case presence.TransportWS, presence.TransportHTTP:
		return t
	}
	return "other"
}

// closeCodes are the codes of docs/PROTOCOL.md and the standard ones vigil
// sends or sees; a client can send any code, so others count as "other".
var closeCodes = map[int]string{}

func init() {
	for _, c := range []int{1000, 1001, 1006, 1007, 1008, 1009, 1011, 1012, 1013, 4000, 4001, 4500, 4501} {
		closeCodes[c] = strconv.Itoa(c)
	}
	closeCodes[0] = "none"
}

func code(c int) string {
	if s, ok := closeCodes[c]; ok {
		return s
	}
	return "other"
}

func reason(r presence.Reason) string {
	switch r {
	case presence.ReasonConnect, presence.ReasonClosed, presence.ReasonLeft, presence.ReasonExpired,
		presence.ReasonIdle, presence.ReasonShutdown, presence.ReasonRestart, presence.ReasonNodeLost,
		presence.ReasonKicked:
		return string(r)
	}
	return "other"
}

func op(s string) string {
	switch s {
	case "add", "end", "touch", "sweep", "lookup", "sessions", "list", "count":
		return s
	}
	return "other"
}

// Connections returns the gauge of open connections of transport ("ws",
// "http" or "other"), for tests.
func (o *Observer) Connections(transport string) prom.Gauge { return o.open.WithLabelValues(transport) }

// Beats returns the counter of beats of transport, for tests.
func (o *Observer) Beats(transport string) prom.Counter { return o.beats.WithLabelValues(transport) }

// ConnOpened counts a connection or HTTP session opening.
func (o *Observer) ConnOpened(t string) {
	t = transport(t)
	o.open.WithLabelValues(t).Inc()
	o.opened.WithLabelValues(t).Inc()
}

// ConnClosed counts a connection or HTTP session ending.
func (o *Observer) ConnClosed(t string, c int, r presence.Reason) {
	t = transport(t)
	o.open.WithLabelValues(t).Dec()
	o.closed.WithLabelValues(t, code(c), reason(r)).Inc()
}

// Beat counts a beat.
func (o *Observer) Beat(t string) {
	switch t {
	case presence.TransportWS:
		o.beatWS.Inc()
	case presence.TransportHTTP:
		o.beatHTTP.Inc()
	default:
		o.beats.WithLabelValues("other").Inc()
	}
}

// Transition counts a transition.
func (o *Observer) Transition(t presence.Transition, r presence.Reason) {
	o.transitions.WithLabelValues(t.String(), reason(r)).Inc()
}

// StoreCall records a Store call's latency and counts its failure.
func (o *Observer) StoreCall(name string, d time.Duration, err error) {
	name = op(name)
	o.storeTime.WithLabelValues(name).Observe(d.Seconds())
	if err != nil {
		o.storeErrors.WithLabelValues(name).Inc()
	}
}

// NewTrackerCollector returns a collector of gauges read from tr at each
// scrape: clients online on all nodes (one Store count, bounded by
// Config.CountTimeout), sessions on this node, and Store retries pending.
// Register it on the same registry as the Observer.
func NewTrackerCollector(tr *presence.Tracker, cfg Config) prom.Collector {
	cfg = cfg.withDefaults()
	ns := cfg.Namespace
	return &trackerCollector{
		tr:      tr,
		timeout: cfg.CountTimeout,
		online: prom.NewDesc(prom.BuildFQName(ns, "presence", "online_clients"),
			"Clients online on all nodes sharing the store.", nil, nil),
		sessions: prom.NewDesc(prom.BuildFQName(ns, "presence", "sessions"),
			"Presence sessions open on this node.", nil, nil),
		pending: prom.NewDesc(prom.BuildFQName(ns, "presence", "store_pending"),
			"Sessions and ends waiting for a Store retry.", nil, nil),
	}
}

type trackerCollector struct {
	tr                        *presence.Tracker
	timeout                   time.Duration
	online, sessions, pending *prom.Desc
}

func (c *trackerCollector) Describe(ch chan<- *prom.Desc) {
	ch <- c.online
	ch <- c.sessions
	ch <- c.pending
}

func (c *trackerCollector) Collect(ch chan<- prom.Metric) {
	st := c.tr.Stats()
	ch <- prom.MustNewConstMetric(c.sessions, prom.GaugeValue, float64(st.Sessions))
	ch <- prom.MustNewConstMetric(c.pending, prom.GaugeValue, float64(st.Pending))
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	if n, err := c.tr.Count(ctx); err == nil {
		ch <- prom.MustNewConstMetric(c.online, prom.GaugeValue, float64(n))
	}
}

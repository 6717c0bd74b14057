package prometheus

import (
	"context"
	"errors"
	"strings"
	"time"

	prom "github.com/prometheus/client_golang/prometheus"

	"github.com/vigilhq/vigil/metrics"
	"github.com/vigilhq/vigil/presence"
)

// Config tunes the metrics.
type Config struct {
	// Namespace replaces "vigil", the first part of every metric name.
	// Default: "vigil".
	Namespace string

	// Buckets are the upper bounds, in seconds, of the Store latency
	// histogram. Default: metrics.StoreBuckets (0.5ms to 2.5s).
	Buckets []float64

	// CountTimeout bounds the Store count NewTrackerCollector makes at each
	// scrape; when it fails, the online-clients gauge is left out of that
	// scrape. Default: 1s.
	CountTimeout time.Duration
}

// DefaultBuckets are the default bounds of the Store latency histogram.
var DefaultBuckets = metrics.StoreBuckets

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

// name returns d's name in namespace ns.
func (c Config) name(d *metrics.Desc) string {
	return c.Namespace + strings.TrimPrefix(d.Name, "vigil")
}

// Observer is a presence.Observer that counts into Prometheus metrics: the
// families of package metrics fed by events. It is safe for concurrent use;
// use New to make one.
type Observer struct {
	counters   map[*metrics.Desc]*prom.CounterVec
	open       *prom.GaugeVec
	histograms map[*metrics.Desc]*prom.HistogramVec

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
	o := &Observer{counters: make(map[*metrics.Desc]*prom.CounterVec), histograms: make(map[*metrics.Desc]*prom.HistogramVec)}
	for _, d := range metrics.Families {
		if d.Source != metrics.Events {
			continue
		}
		var c prom.Collector
		switch d.Kind {
		case metrics.Counter:
			v := prom.NewCounterVec(prom.CounterOpts{Name: cfg.name(d), Help: d.Help}, d.LabelNames())
			o.counters[d], c = v, v
			if len(d.Labels) == 0 {
				v.WithLabelValues() // exposed at zero, like the built-in handler
			}
		case metrics.Gauge: // only metrics.Connections
			o.open = prom.NewGaugeVec(prom.GaugeOpts{Name: cfg.name(d), Help: d.Help}, d.LabelNames())
			c = o.open
		case metrics.Histogram:
			b := d.Buckets
			if d == metrics.StoreDuration {
				b = cfg.Buckets
			}
			v := prom.NewHistogramVec(prom.HistogramOpts{Name: cfg.name(d), Help: d.Help, Buckets: b}, d.LabelNames())
			o.histograms[d], c = v, v
			if len(d.Labels) == 0 {
				v.WithLabelValues()
			}
		}
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	o.beatWS = o.counters[metrics.Beats].WithLabelValues(presence.TransportWS)
	o.beatHTTP = o.counters[metrics.Beats].WithLabelValues(presence.TransportHTTP)
	return o, nil
}

func (o *Observer) inc(d *metrics.Desc, vals ...string) {
	for i, l := range d.Labels {
		vals[i] = l.Value(vals[i])
	}
	o.counters[d].WithLabelValues(vals...).Inc()
}

func (o *Observer) observe(d *metrics.Desc, v float64, vals ...string) {
	for i, l := range d.Labels {
		vals[i] = l.Value(vals[i])
	}
	o.histograms[d].WithLabelValues(vals...).Observe(v)
}

// Connections returns the gauge of open connections of transport ("ws",
// "http" or "other"), for tests.
func (o *Observer) Connections(transport string) prom.Gauge {
	return o.open.WithLabelValues(metrics.LabelTransport.Value(transport))
}

// Beats returns the counter of beats of transport, for tests.
func (o *Observer) Beats(transport string) prom.Counter {
	return o.counters[metrics.Beats].WithLabelValues(metrics.LabelTransport.Value(transport))
}

// ConnOpened counts a connection or HTTP session opening.
func (o *Observer) ConnOpened(t string) {
	o.Connections(t).Inc()
	o.inc(metrics.ConnectionsOpened, t)
}

// ConnClosed counts a connection or HTTP session ending.
func (o *Observer) ConnClosed(t string, c int, r presence.Reason) {
	o.Connections(t).Dec()
	o.inc(metrics.ConnectionsClosed, t, metrics.CloseCode(c), string(r))
}

// Beat counts a beat.
func (o *Observer) Beat(t string) {
	switch t {
	case presence.TransportWS:
		o.beatWS.Inc()
	case presence.TransportHTTP:
		o.beatHTTP.Inc()
	default:
		o.inc(metrics.Beats, t)
	}
}

// Transition counts a transition.
func (o *Observer) Transition(t presence.Transition, r presence.Reason) {
	o.inc(metrics.Transitions, t.String(), string(r))
}

// StoreCall records a Store call's latency and counts its failure.
func (o *Observer) StoreCall(op string, d time.Duration, err error) {
	o.observe(metrics.StoreDuration, d.Seconds(), op)
	if err != nil {
		o.inc(metrics.StoreErrors, op)
	}
}

// PingSent counts a protocol ping.
func (o *Observer) PingSent() { o.inc(metrics.Pings) }

// HeartbeatTimeout counts a connection dropped for silence.
func (o *Observer) HeartbeatTimeout() { o.inc(metrics.HeartbeatTimeouts) }

// AppPing counts an application ping answered.
func (o *Observer) AppPing() { o.inc(metrics.AppPings) }

// MessageReceived counts an application message received.
func (o *Observer) MessageReceived() { o.inc(metrics.MessagesReceived) }

// MessageSent counts an application message sent.
func (o *Observer) MessageSent() { o.inc(metrics.MessagesSent) }

// HandlerPanic counts a recovered Handler panic.
func (o *Observer) HandlerPanic() { o.inc(metrics.HandlerPanics) }

// ConnDropped records the age of a dropped connection.
func (o *Observer) ConnDropped(age time.Duration) { o.observe(metrics.DroppedAge, age.Seconds()) }

// Refused counts a refused request by code.
func (o *Observer) Refused(code string) { o.inc(metrics.Refusals, code) }

// NewTrackerCollector returns a collector of the families read from tr at
// each scrape (metrics.TrackerRead): clients online on all nodes (one Store
// count, bounded by Config.CountTimeout), sessions on this node, Store
// retries pending, sessions opened, hook panics and hook timeouts. Register
// it on the same registry as the Observer.
func NewTrackerCollector(tr *presence.Tracker, cfg Config) prom.Collector {
	cfg = cfg.withDefaults()
	c := &trackerCollector{tr: tr, timeout: cfg.CountTimeout, descs: make(map[*metrics.Desc]*prom.Desc)}
	for _, d := range metrics.Families {
		if d.Source == metrics.TrackerRead {
			c.descs[d] = prom.NewDesc(cfg.name(d), d.Help, nil, nil)
		}
	}
	return c
}

type trackerCollector struct {
	tr      *presence.Tracker
	timeout time.Duration
	descs   map[*metrics.Desc]*prom.Desc
}

func (c *trackerCollector) Describe(ch chan<- *prom.Desc) {
	for _, d := range c.descs {
		ch <- d
	}
}

func (c *trackerCollector) Collect(ch chan<- prom.Metric) {
	st := c.tr.Stats()
	emit := func(d *metrics.Desc, v float64) {
		t := prom.GaugeValue
		if d.Kind == metrics.Counter {
			t = prom.CounterValue
		}
		ch <- prom.MustNewConstMetric(c.descs[d], t, v)
	}
	emit(metrics.Sessions, float64(st.Sessions))
	emit(metrics.StorePending, float64(st.Pending))
	emit(metrics.Connects, float64(st.Connects))
	emit(metrics.HookPanics, float64(st.HookPanics))
	emit(metrics.HookTimeouts, float64(st.HookTimeouts))
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	if n, err := c.tr.Count(ctx); err == nil {
		emit(metrics.OnlineClients, float64(n))
	}
}

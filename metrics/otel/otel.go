package otel

import (
	"context"
	"errors"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/vigilhq/vigil/metrics"
	"github.com/vigilhq/vigil/presence"
)

// ScopeName is the name of the Meter the instruments are made by.
const ScopeName = "github.com/vigilhq/vigil/metrics/otel"

// Config tunes the instruments.
type Config struct {
	// CountTimeout bounds the Store count RegisterTracker's callback makes
	// at each collection; when it fails, vigil_presence_online_clients is
	// left out of that collection. Default: 1s.
	CountTimeout time.Duration
}

func (c Config) withDefaults() Config {
	if c.CountTimeout <= 0 {
		c.CountTimeout = time.Second
	}
	return c
}

// Observer is a presence.Observer that records into OpenTelemetry
// instruments. It is safe for concurrent use; use New to make one.
type Observer struct {
	counters   map[*metrics.Desc]metric.Int64Counter
	open       metric.Int64UpDownCounter
	histograms map[*metrics.Desc]metric.Float64Histogram

	// Attributes of the hot paths, built once.
	transport map[string]metric.MeasurementOption
}

var _ presence.Observer = (*Observer)(nil)

// New returns an Observer whose instruments are made by a Meter of mp named
// ScopeName. It fails when mp is nil or refuses an instrument.
func New(mp metric.MeterProvider, cfg Config) (*Observer, error) {
	if mp == nil {
		return nil, errors.New("otel: nil MeterProvider")
	}
	m := mp.Meter(ScopeName)
	o := &Observer{
		counters:   make(map[*metrics.Desc]metric.Int64Counter),
		histograms: make(map[*metrics.Desc]metric.Float64Histogram),
		transport:  make(map[string]metric.MeasurementOption),
	}
	var err error
	for _, d := range metrics.Families {
		if d.Source != metrics.Events {
			continue
		}
		desc, unit := metric.WithDescription(d.Help), metric.WithUnit(d.Unit)
		switch d.Kind {
		case metrics.Counter:
			o.counters[d], err = m.Int64Counter(d.BaseName(), desc, unit)
			if err == nil && len(d.Labels) == 0 {
				// Exported at zero, as by the other two paths.
				o.counters[d].Add(context.Background(), 0)
			}
		case metrics.Gauge: // only metrics.Connections
			o.open, err = m.Int64UpDownCounter(d.BaseName(), desc, unit)
		case metrics.Histogram:
			o.histograms[d], err = m.Float64Histogram(d.BaseName(), desc, unit,
				metric.WithExplicitBucketBoundaries(d.Buckets...))
		}
		if err != nil {
			return nil, err
		}
	}
	for _, t := range metrics.LabelTransport.Values {
		o.transport[t] = metric.WithAttributeSet(attribute.NewSet(attribute.String(metrics.LabelTransport.Name, t)))
	}
	return o, nil
}

// attrs returns the attributes of d for label values vals, normalised by
// the labels' sets.
func attrs(d *metrics.Desc, vals ...string) metric.MeasurementOption {
	kv := make([]attribute.KeyValue, len(d.Labels))
	for i, l := range d.Labels {
		kv[i] = attribute.String(l.Name, l.Value(vals[i]))
	}
	return metric.WithAttributeSet(attribute.NewSet(kv...))
}

func (o *Observer) inc(d *metrics.Desc, vals ...string) {
	if len(vals) == 0 {
		o.counters[d].Add(context.Background(), 1)
		return
	}
	o.counters[d].Add(context.Background(), 1, attrs(d, vals...))
}

func (o *Observer) tr(t string) metric.MeasurementOption {
	return o.transport[metrics.LabelTransport.Value(t)]
}

// ConnOpened counts a connection or HTTP session opening.
func (o *Observer) ConnOpened(t string) {
	o.open.Add(context.Background(), 1, o.tr(t))
	o.counters[metrics.ConnectionsOpened].Add(context.Background(), 1, o.tr(t))
}

// ConnClosed counts a connection or HTTP session ending.
func (o *Observer) ConnClosed(t string, c int, r presence.Reason) {
	o.open.Add(context.Background(), -1, o.tr(t))
	o.inc(metrics.ConnectionsClosed, t, metrics.CloseCode(c), string(r))
}

// Beat counts a beat.
func (o *Observer) Beat(t string) { o.counters[metrics.Beats].Add(context.Background(), 1, o.tr(t)) }

// Transition counts a transition.
func (o *Observer) Transition(t presence.Transition, r presence.Reason) {
	o.inc(metrics.Transitions, t.String(), string(r))
}

// StoreCall records a Store call's latency and counts its failure.
func (o *Observer) StoreCall(op string, d time.Duration, err error) {
	o.histograms[metrics.StoreDuration].Record(context.Background(), d.Seconds(), attrs(metrics.StoreDuration, op))
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
func (o *Observer) ConnDropped(age time.Duration) {
	o.histograms[metrics.DroppedAge].Record(context.Background(), age.Seconds())
}

// Refused counts a refused request by code.
func (o *Observer) Refused(code string) { o.inc(metrics.Refusals, code) }

// RegisterTracker registers the instruments read from tr at each
// collection (metrics.TrackerRead): clients online on all nodes (one Store
// count, bounded by Config.CountTimeout), sessions on this node, Store
// retries pending, sessions opened, hook panics and hook timeouts. Call
// Unregister on the result when tr is closed.
func RegisterTracker(mp metric.MeterProvider, tr *presence.Tracker, cfg Config) (metric.Registration, error) {
	if mp == nil || tr == nil {
		return nil, errors.New("otel: nil MeterProvider or Tracker")
	}
	cfg = cfg.withDefaults()
	m := mp.Meter(ScopeName)
	inst := make(map[*metrics.Desc]metric.Int64Observable)
	var all []metric.Observable
	for _, d := range metrics.Families {
		if d.Source != metrics.TrackerRead {
			continue
		}
		desc, unit := metric.WithDescription(d.Help), metric.WithUnit(d.Unit)
		var (
			i   metric.Int64Observable
			err error
		)
		if d.Kind == metrics.Counter {
			i, err = m.Int64ObservableCounter(d.BaseName(), desc, unit)
		} else {
			i, err = m.Int64ObservableGauge(d.BaseName(), desc, unit)
		}
		if err != nil {
			return nil, err
		}
		inst[d] = i
		all = append(all, i)
	}
	return m.RegisterCallback(func(ctx context.Context, ob metric.Observer) error {
		st := tr.Stats()
		ob.ObserveInt64(inst[metrics.Sessions], int64(st.Sessions))
		ob.ObserveInt64(inst[metrics.StorePending], int64(st.Pending))
		ob.ObserveInt64(inst[metrics.Connects], int64(st.Connects))
		ob.ObserveInt64(inst[metrics.HookPanics], int64(st.HookPanics))
		ob.ObserveInt64(inst[metrics.HookTimeouts], int64(st.HookTimeouts))
		ctx, cancel := context.WithTimeout(ctx, cfg.CountTimeout)
		defer cancel()
		if n, err := tr.Count(ctx); err == nil {
			ob.ObserveInt64(inst[metrics.OnlineClients], int64(n))
		}
		return nil
	}, all...)
}

package metrics

import (
	"math"
	"slices"
	"sync/atomic"
	"time"
)

// Recorder counts the families fed by events in memory, for the built-in
// handler: every presence.Tracker keeps one (Tracker.Metrics). Its methods
// mirror presence.Observer's with plain arguments; they are safe for
// concurrent use, lock-free and never block. Use NewRecorder to make one.
type Recorder struct {
	series map[*Desc]*series // read-only after NewRecorder

	// Resolved once: the hot paths.
	beats, opened, open *series
}

// series holds the values of one family, one slot per combination of its
// label values.
type series struct {
	d    *Desc
	n    []atomic.Int64 // counters and gauges
	h    []histogram    // histograms
	size []int          // len(Values) of each label
}

type histogram struct {
	counts []atomic.Uint64 // per bucket, +Inf last; not cumulative
	sum    atomic.Uint64   // float64 bits
}

// NewRecorder returns a Recorder with every events family at zero.
func NewRecorder() *Recorder {
	r := &Recorder{series: make(map[*Desc]*series)}
	for _, d := range Families {
		if d.Source != Events {
			continue
		}
		s := &series{d: d}
		combos := 1
		for _, l := range d.Labels {
			s.size = append(s.size, len(l.Values))
			combos *= len(l.Values)
		}
		if d.Kind == Histogram {
			s.h = make([]histogram, combos)
			for i := range s.h {
				s.h[i].counts = make([]atomic.Uint64, len(d.Buckets)+1)
			}
		} else {
			s.n = make([]atomic.Int64, combos)
		}
		r.series[d] = s
	}
	r.beats, r.opened, r.open = r.series[Beats], r.series[ConnectionsOpened], r.series[Connections]
	return r
}

// slot returns the slot of the label values vals (normalised by the
// labels' sets).
func (s *series) slot(vals ...string) int {
	i := 0
	for k, l := range s.d.Labels {
		i = i*s.size[k] + l.Index(vals[k])
	}
	return i
}

func (r *Recorder) add(d *Desc, n int64, vals ...string) {
	s := r.series[d]
	s.n[s.slot(vals...)].Add(n)
}

func (r *Recorder) observe(d *Desc, v float64, vals ...string) {
	s := r.series[d]
	h := &s.h[s.slot(vals...)]
	i, _ := slices.BinarySearch(d.Buckets, v)
	h.counts[i].Add(1)
	for {
		old := h.sum.Load()
		if h.sum.CompareAndSwap(old, math.Float64bits(math.Float64frombits(old)+v)) {
			return
		}
	}
}

// ConnOpened counts a session of transport opening.
func (r *Recorder) ConnOpened(transport string) {
	i := r.open.slot(transport)
	r.open.n[i].Add(1)
	r.opened.n[i].Add(1)
}

// ConnClosed counts a session of transport ending with close code (0 for
// HTTP) and reason.
func (r *Recorder) ConnClosed(transport string, code int, reason string) {
	r.open.n[r.open.slot(transport)].Add(-1)
	r.add(ConnectionsClosed, 1, transport, CloseCode(code), reason)
}

// Beat counts a beat of transport.
func (r *Recorder) Beat(transport string) { r.beats.n[r.beats.slot(transport)].Add(1) }

// Transition counts a transition to "online" or "offline" for reason.
func (r *Recorder) Transition(to, reason string) { r.add(Transitions, 1, to, reason) }

// StoreCall records a Store call's latency and counts its failure.
func (r *Recorder) StoreCall(op string, d time.Duration, failed bool) {
	r.observe(StoreDuration, d.Seconds(), op)
	if failed {
		r.add(StoreErrors, 1, op)
	}
}

// PingSent counts a protocol ping sent.
func (r *Recorder) PingSent() { r.add(Pings, 1) }

// HeartbeatTimeout counts a connection dropped for silence.
func (r *Recorder) HeartbeatTimeout() { r.add(HeartbeatTimeouts, 1) }

// AppPing counts an application ping answered.
func (r *Recorder) AppPing() { r.add(AppPings, 1) }

// MessageReceived counts an application message received.
func (r *Recorder) MessageReceived() { r.add(MessagesReceived, 1) }

// MessageSent counts an application message sent.
func (r *Recorder) MessageSent() { r.add(MessagesSent, 1) }

// HandlerPanic counts a recovered handler panic.
func (r *Recorder) HandlerPanic() { r.add(HandlerPanics, 1) }

// Refused counts a refused request by the code of its answer.
func (r *Recorder) Refused(code string) { r.add(Refusals, 1, code) }

// ConnDropped records the age of a connection that ended without a close
// frame.
func (r *Recorder) ConnDropped(age time.Duration) { r.observe(DroppedAge, age.Seconds()) }

// Family is a collected metric family.
type Family struct {
	Desc    *Desc
	Samples []Sample
}

// Sample is one series of a family.
type Sample struct {
	// Labels are the values of Desc.Labels, in order.
	Labels []string
	// Value is a counter's or gauge's value.
	Value float64
	// Buckets are a histogram's counts per Desc.Buckets, cumulative, then
	// the count of all; Sum is the sum of the observed values.
	Buckets []uint64
	Sum     float64
}

// Gather returns the events families with their samples. A family without
// labels has one sample; a family with labels has one for each combination
// of values that was ever counted (for a gauge: ever moved).
func (r *Recorder) Gather() []Family {
	var fams []Family
	for _, d := range Families {
		s, ok := r.series[d]
		if !ok {
			continue
		}
		f := Family{Desc: d}
		n := len(s.n)
		if d.Kind == Histogram {
			n = len(s.h)
		}
		for i := range n {
			var smp Sample
			if d.Kind == Histogram {
				h := &s.h[i]
				var cum uint64
				for j := range h.counts {
					cum += h.counts[j].Load()
					smp.Buckets = append(smp.Buckets, cum)
				}
				smp.Sum = math.Float64frombits(h.sum.Load())
				if cum == 0 && len(d.Labels) > 0 {
					continue
				}
			} else {
				v := s.n[i].Load()
				smp.Value = float64(v)
				if v == 0 && len(d.Labels) > 0 && !(d.Kind == Gauge && s.touched(i, r)) {
					continue
				}
			}
			smp.Labels = s.labels(i)
			f.Samples = append(f.Samples, smp)
		}
		fams = append(fams, f)
	}
	return fams
}

// touched reports whether gauge slot i ever moved: for the connections
// gauge, whether a connection of its transport ever opened.
func (s *series) touched(i int, r *Recorder) bool {
	return s == r.open && r.opened.n[i].Load() > 0
}

// labels returns the label values of slot i.
func (s *series) labels(i int) []string {
	vals := make([]string, len(s.d.Labels))
	for k := len(s.d.Labels) - 1; k >= 0; k-- {
		vals[k] = s.d.Labels[k].Values[i%s.size[k]]
		i /= s.size[k]
	}
	return vals
}

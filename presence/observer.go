package presence

import (
	"errors"
	"time"

	"github.com/vigilhq/vigil/metrics"
)

// Observer receives what operators watch: connections opening and closing,
// beats, transitions, and the latency and errors of Store calls. Set it in
// Config.Observer; the Tracker reports transitions and Store calls, and a
// middleware Server built on the Tracker reports connections and beats
// through the same Observer. Each event is reported once; package metrics
// names the metric families each one feeds (docs/METRICS.md). The Tracker
// also counts every event in its own metrics.Recorder (Tracker.Metrics),
// which a Server's MetricsHandler serves; packages metrics/prometheus and
// metrics/otel (each its own Go module) turn the same events into the same
// families for client_golang and OpenTelemetry.
//
// Its methods are called from many goroutines, some on the path of every
// beat: they must be safe for concurrent use, quick, and must not block.
// Every argument comes from a small fixed set (a transport, a close code, a
// Reason, a Store operation): none carries a client or session ID. Embed
// NopObserver to implement only some methods and stay compatible when
// methods are added.
type Observer interface {
	// ConnOpened reports a session of transport ("ws" for a WebSocket
	// connection, "http" for an HTTP-heartbeat session) opening on this
	// node.
	ConnOpened(transport string)
	// ConnClosed reports one ending: code is the WebSocket close code sent
	// or received (1006 for a dropped connection, 0 for HTTP sessions) and
	// reason why its presence session ended.
	ConnClosed(transport string, code int, reason Reason)
	// Beat reports one beat: a frame or pong received, an HTTP heartbeat
	// or a tracked request.
	Beat(transport string)
	// Transition reports an Online or Offline event this node observed.
	Transition(t Transition, reason Reason)
	// StoreCall reports one Store call: op is the method's name in lower
	// case ("add", "end", "touch", "sweep", "lookup", "sessions", "list",
	// "count"), d its latency and err its error; ErrNotFound, an answer
	// rather than a failure, is reported as nil.
	StoreCall(op string, d time.Duration, err error)

	// PingSent reports a protocol ping sent on a WebSocket connection.
	PingSent()
	// HeartbeatTimeout reports a WebSocket connection dropped because it
	// sent no frame within PingInterval+PongTimeout; ConnClosed follows.
	HeartbeatTimeout()
	// AppPing reports an application ping answered.
	AppPing()
	// MessageReceived and MessageSent report one application message.
	MessageReceived()
	MessageSent()
	// HandlerPanic reports a recovered panic of a WebSocket Handler.
	HandlerPanic()
	// ConnDropped reports a WebSocket connection that ended without a
	// close frame either way after age (a proxy's idle timeout cuts many
	// at one age); ConnClosed follows with 1006.
	ConnDropped(age time.Duration)
	// Refused reports a request refused before any upgrade or beat, by
	// the code of its JSON answer (docs/PROTOCOL.md).
	Refused(code string)
}

// Transports named in Observer calls.
const (
	TransportWS   = "ws"
	TransportHTTP = "http"
)

// NopObserver is an Observer that does nothing, to embed.
type NopObserver struct{}

// ConnOpened does nothing.
func (NopObserver) ConnOpened(string) {}

// ConnClosed does nothing.
func (NopObserver) ConnClosed(string, int, Reason) {}

// Beat does nothing.
func (NopObserver) Beat(string) {}

// Transition does nothing.
func (NopObserver) Transition(Transition, Reason) {}

// StoreCall does nothing.
func (NopObserver) StoreCall(string, time.Duration, error) {}

// PingSent does nothing.
func (NopObserver) PingSent() {}

// HeartbeatTimeout does nothing.
func (NopObserver) HeartbeatTimeout() {}

// AppPing does nothing.
func (NopObserver) AppPing() {}

// MessageReceived does nothing.
func (NopObserver) MessageReceived() {}

// MessageSent does nothing.
func (NopObserver) MessageSent() {}

// HandlerPanic does nothing.
func (NopObserver) HandlerPanic() {}

// ConnDropped does nothing.
func (NopObserver) ConnDropped(time.Duration) {}

// Refused does nothing.
func (NopObserver) Refused(string) {}

// recorderObserver counts events in a metrics.Recorder, then passes them to
// next (Config.Observer, or a NopObserver).
type recorderObserver struct {
	r    *metrics.Recorder
	next Observer
}

func (o recorderObserver) ConnOpened(t string) { o.r.ConnOpened(t); o.next.ConnOpened(t) }
func (o recorderObserver) ConnClosed(t string, code int, r Reason) {
	o.r.ConnClosed(t, code, string(r))
	o.next.ConnClosed(t, code, r)
}
func (o recorderObserver) Beat(t string) { o.r.Beat(t); o.next.Beat(t) }
func (o recorderObserver) Transition(t Transition, r Reason) {
	o.r.Transition(t.String(), string(r))
	o.next.Transition(t, r)
}
func (o recorderObserver) StoreCall(op string, d time.Duration, err error) {
	o.r.StoreCall(op, d, err != nil)
	o.next.StoreCall(op, d, err)
}
func (o recorderObserver) PingSent()         { o.r.PingSent(); o.next.PingSent() }
func (o recorderObserver) HeartbeatTimeout() { o.r.HeartbeatTimeout(); o.next.HeartbeatTimeout() }
func (o recorderObserver) AppPing()          { o.r.AppPing(); o.next.AppPing() }
func (o recorderObserver) MessageReceived()  { o.r.MessageReceived(); o.next.MessageReceived() }
func (o recorderObserver) MessageSent()      { o.r.MessageSent(); o.next.MessageSent() }
func (o recorderObserver) HandlerPanic()     { o.r.HandlerPanic(); o.next.HandlerPanic() }
func (o recorderObserver) ConnDropped(age time.Duration) {
	o.r.ConnDropped(age)
	o.next.ConnDropped(age)
}
func (o recorderObserver) Refused(code string) { o.r.Refused(code); o.next.Refused(code) }

// Observer returns the Observer the Tracker reports to: its own Recorder
// (Metrics), then Config.Observer. A middleware Server built on the Tracker
// reports its connections and beats through it, so that each event is
// counted once in each.
func (t *Tracker) Observer() Observer { return t.obs }

// Metrics returns the Recorder that counts this Tracker's events, and those
// of the middleware Servers built on it, for the built-in metrics handler.
func (t *Tracker) Metrics() *metrics.Recorder { return t.rec }

// observed reports a Store call that started at start.
func (t *Tracker) observed(op string, start time.Time, err error) {
	if errors.Is(err, ErrNotFound) {
		err = nil
	}
	t.obs.StoreCall(op, time.Since(start), err)
}

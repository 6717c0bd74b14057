package presence

import (
	"errors"
	"time"
)

// Observer receives what operators watch: connections opening and closing,
// beats, transitions, and the latency and errors of Store calls. Set it in
// Config.Observer; the Tracker reports transitions and Store calls, and a
// middleware Server built on the Tracker reports connections and beats
// through the same Observer. Package metrics/prometheus (its own Go module)
// turns it into Prometheus collectors.
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

// observed reports a Store call that started at start.
func (t *Tracker) observed(op string, start time.Time, err error) {
	if errors.Is(err, ErrNotFound) {
		err = nil
	}
	t.obs.StoreCall(op, time.Since(start), err)
}

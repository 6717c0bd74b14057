package metrics

import (
	"slices"
	"strconv"
	"strings"
)

// Kind is the type of a metric family.
type Kind int

// Kinds of metric families.
const (
	Counter   Kind = iota // only goes up; its name ends in _total
	Gauge                 // goes up and down
	Histogram             // a distribution, with Desc.Buckets
)

// String returns the kind's name in the Prometheus text format.
func (k Kind) String() string {
	switch k {
	case Counter:
		return "counter"
	case Gauge:
		return "gauge"
	case Histogram:
		return "histogram"
	}
	return "untyped"
}

// Source tells where the values of a family come from.
type Source int

// Sources of metric families.
const (
	// Events families are fed by presence.Observer events.
	Events Source = iota
	// TrackerRead families are read from the Tracker (Tracker.Stats,
	// Tracker.Count) each time metrics are collected.
	TrackerRead
)

// Label is a label of a metric family and every value it takes.
type Label struct {
	// Name is the label's name.
	Name string
	// Values are the values the label takes. When Other is set, a value
	// outside them is counted as "other", the last of Values.
	Values []string
	// Other reports whether "other" (the last of Values) stands for values
	// outside the set.
	Other bool
}

// Index returns the position of v in l.Values, or that of "other" for a
// value outside the set.
func (l *Label) Index(v string) int {
	for i, x := range l.Values {
		if x == v {
			return i
		}
	}
	if l.Other {
		return len(l.Values) - 1
	}
	return 0
}

// Value returns v, or "other" when v is outside the set.
func (l *Label) Value(v string) string { return l.Values[l.Index(v)] }

// Desc describes one metric family.
type Desc struct {
	// Name is the family's name in Prometheus form: vigil_, then the
	// subject, then the unit; counters end in _total.
	Name string
	// Kind is the family's type.
	Kind Kind
	// Help is the family's help text.
	Help string
	// Labels are the family's labels, in order.
	Labels []*Label
	// Buckets are a histogram's upper bounds, in seconds.
	Buckets []float64
	// Source tells where the values come from.
	Source Source
	// Unit is the unit of the values in UCUM form, as OpenTelemetry wants
	// it: "s", or a count in braces ("{beat}").
	Unit string
}

// LabelNames returns the names of d's labels.
func (d *Desc) LabelNames() []string {
	names := make([]string, len(d.Labels))
	for i, l := range d.Labels {
		names[i] = l.Name
	}
	return names
}

// BaseName returns d's name without the _total of a counter: the name of
// the OpenTelemetry instrument, to which a Prometheus exporter adds _total
// again.
func (d *Desc) BaseName() string {
	if d.Kind == Counter {
		return strings.TrimSuffix(d.Name, "_total")
	}
	return d.Name
}

// CloseCodes are the WebSocket close codes counted by code: the standard
// codes vigil sends or sees and those of docs/PROTOCOL.md. A client can send
// any code; others are counted as "other".
var CloseCodes = []int{1000, 1001, 1006, 1007, 1008, 1009, 1011, 1012, 1013, 4000, 4001, 4500, 4501}

// RefusalCodes are the codes of the JSON error answers of the middleware
// (middleware.CodeOriginNotAllowed, …), as in docs/PROTOCOL.md.
var RefusalCodes = []string{
	"bad_handshake", "invalid_client_id", "invalid_body", "invalid_session", "invalid_query",
	"no_identity", "origin_not_allowed", "unknown_client", "method_not_allowed", "body_too_large",
	"too_many_connections", "internal_error", "draining", "unavailable",
	"invalid_room", "invalid_meta", "rooms_unsupported", "invalid_state",
}

// CloseCode returns the value of the code label for close code c: the
// code in decimal, "none" for 0 (an HTTP-heartbeat session, which has no
// close code) or "other".
func CloseCode(c int) string {
	if c == 0 {
		return "none"
	}
	if slices.Contains(CloseCodes, c) {
		return strconv.Itoa(c)
	}
	return "other"
}

// The labels.
var (
	// LabelTransport is "ws" for a WebSocket connection, "http" for an
	// HTTP-heartbeat session.
	LabelTransport = &Label{Name: "transport", Values: []string{"ws", "http", "other"}, Other: true}
	// LabelCloseCode is the close code sent or received ("1006": none
	// either way, the connection dropped; "none": an HTTP session).
	LabelCloseCode = &Label{Name: "code", Values: closeCodeValues(), Other: true}
	// LabelReason is the presence.Reason a session ended or a transition
	// happened for.
	LabelReason = &Label{Name: "reason", Values: []string{"connect", "closed", "left", "expired", "idle",
		"shutdown", "restart", "node_lost", "kicked", "other"}, Other: true}
	// LabelTo is the state a transition went to.
	LabelTo = &Label{Name: "to", Values: []string{"online", "offline"}}
	// LabelOp is the Store method, in lower case.
	LabelOp = &Label{Name: "op", Values: []string{"add", "end", "touch", "sweep", "lookup", "sessions",
		"list", "count", "other"}, Other: true}
	// LabelRefusal is the code of a refused request's JSON answer.
	LabelRefusal = &Label{Name: "code", Values: append(slices.Clone(RefusalCodes), "other"), Other: true}
)

func closeCodeValues() []string {
	v := make([]string, 0, len(CloseCodes)+2)
	for _, c := range CloseCodes {
		v = append(v, strconv.Itoa(c))
	}
	return append(v, "none", "other")
}

// StoreBuckets are the bounds of the Store latency histogram: 0.5ms to
// 2.5s, about ×2.5 apart.
var StoreBuckets = []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5}

// AgeBuckets are the bounds of the histogram of the ages of dropped
// connections: dense around the idle timeouts of common proxies (60s nginx
// and AWS ALB, 100s Cloudflare).
var AgeBuckets = []float64{1, 5, 10, 30, 55, 60, 65, 90, 100, 110, 300, 600, 1800, 3600}

// The families fed by presence.Observer events.
var (
	Connections = &Desc{Name: "vigil_connections", Kind: Gauge, Unit: "{connection}",
		Help:   "Open WebSocket connections (transport ws) and HTTP-heartbeat sessions (http) on this node.",
		Labels: []*Label{LabelTransport}}
	ConnectionsOpened = &Desc{Name: "vigil_connections_opened_total", Kind: Counter, Unit: "{connection}",
		Help:   "WebSocket connections and HTTP-heartbeat sessions opened.",
		Labels: []*Label{LabelTransport}}
	ConnectionsClosed = &Desc{Name: "vigil_connections_closed_total", Kind: Counter, Unit: "{connection}",
		Help:   "WebSocket connections and HTTP-heartbeat sessions ended, by close code (1006: dropped; none: HTTP) and presence reason.",
		Labels: []*Label{LabelTransport, LabelCloseCode, LabelReason}}
	Beats = &Desc{Name: "vigil_beats_total", Kind: Counter, Unit: "{beat}",
		Help:   "Beats received: frames, pongs, HTTP heartbeats and tracked requests.",
		Labels: []*Label{LabelTransport}}
	Pings = &Desc{Name: "vigil_ws_pings_total", Kind: Counter, Unit: "{ping}",
		Help: "Protocol pings sent."}
	HeartbeatTimeouts = &Desc{Name: "vigil_ws_heartbeat_timeouts_total", Kind: Counter, Unit: "{connection}",
		Help: "Connections dropped for sending no frame within the pong timeout."}
	AppPings = &Desc{Name: "vigil_ws_app_pings_total", Kind: Counter, Unit: "{ping}",
		Help: "Application pings answered."}
	MessagesReceived = &Desc{Name: "vigil_ws_messages_received_total", Kind: Counter, Unit: "{message}",
		Help: "Application messages received."}
	MessagesSent = &Desc{Name: "vigil_ws_messages_sent_total", Kind: Counter, Unit: "{message}",
		Help: "Application messages sent."}
	HandlerPanics = &Desc{Name: "vigil_ws_handler_panics_total", Kind: Counter, Unit: "{panic}",
		Help: "Recovered WebSocket handler panics."}
	DroppedAge = &Desc{Name: "vigil_ws_dropped_age_seconds", Kind: Histogram, Unit: "s", Buckets: AgeBuckets,
		Help: "Age of WebSocket connections that ended without a close frame (1006); many at one age mean a proxy's idle timeout."}
	Refusals = &Desc{Name: "vigil_http_refusals_total", Kind: Counter, Unit: "{request}",
		Help:   "Requests refused, by the code of the JSON answer (docs/PROTOCOL.md); origin_not_allowed and no_identity usually mean a misconfiguration.",
		Labels: []*Label{LabelRefusal}}
	Transitions = &Desc{Name: "vigil_presence_transitions_total", Kind: Counter, Unit: "{transition}",
		Help:   "Presence transitions observed by this node.",
		Labels: []*Label{LabelTo, LabelReason}}
	StoreErrors = &Desc{Name: "vigil_presence_store_errors_total", Kind: Counter, Unit: "{call}",
		Help:   "Failed Store calls, by method (each is retried).",
		Labels: []*Label{LabelOp}}
	StoreDuration = &Desc{Name: "vigil_presence_store_duration_seconds", Kind: Histogram, Unit: "s", Buckets: StoreBuckets,
		Help:   "Latency of Store calls, by method.",
		Labels: []*Label{LabelOp}}
)

// The families read from the Tracker at each collection.
var (
	OnlineClients = &Desc{Name: "vigil_presence_online_clients", Kind: Gauge, Source: TrackerRead, Unit: "{client}",
		Help: "Clients online on all nodes sharing the store (one Store count per collection)."}
	Sessions = &Desc{Name: "vigil_presence_sessions", Kind: Gauge, Source: TrackerRead, Unit: "{session}",
		Help: "Presence sessions open on this node."}
	StorePending = &Desc{Name: "vigil_presence_store_pending", Kind: Gauge, Source: TrackerRead, Unit: "{session}",
		Help: "Sessions and ends waiting for a Store retry."}
	Connects = &Desc{Name: "vigil_presence_connects_total", Kind: Counter, Source: TrackerRead, Unit: "{session}",
		Help: "Presence sessions opened on this node."}
	HookPanics = &Desc{Name: "vigil_presence_hook_panics_total", Kind: Counter, Source: TrackerRead, Unit: "{call}",
		Help: "Recovered hook panics."}
	HookTimeouts = &Desc{Name: "vigil_presence_hook_timeouts_total", Kind: Counter, Source: TrackerRead, Unit: "{call}",
		Help: "Hook calls abandoned after the hook timeout."}
)

// Families are all the families, in the order of the exposition.
var Families = []*Desc{
	Connections, ConnectionsOpened, ConnectionsClosed, Beats, Pings, HeartbeatTimeouts, AppPings,
	MessagesReceived, MessagesSent, HandlerPanics, DroppedAge, Refusals,
	Transitions, StoreErrors, StoreDuration,
	OnlineClients, Sessions, StorePending, Connects, HookPanics, HookTimeouts,
}

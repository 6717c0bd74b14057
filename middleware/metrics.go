package middleware

import (
	"context"
	"net/http"

	"github.com/vigilhq/vigil/metrics"
	"github.com/vigilhq/vigil/presence"
)

// Stats is a snapshot of the counters of a Server's node. Apart from Open,
// its counts are read from the Tracker's Recorder (presence.Tracker.Metrics),
// which the Tracker and every Server built on it feed: two Servers on one
// Tracker see the same counts.
type Stats struct {
	// Open is the number of open WebSocket connections of this Server.
	Open int64
	// Upgrades counts WebSocket connections opened (with a session).
	Upgrades uint64
	// Beats counts proofs of life: frames and pongs received, HTTP
	// heartbeats and tracked requests.
	Beats uint64
	// Pings counts protocol pings sent.
	Pings uint64
	// HeartbeatTimeouts counts connections dropped for silence
	// (PingInterval+PongTimeout without a frame).
	HeartbeatTimeouts uint64
	// IdleTimeouts counts connections closed by IdleTimeout.
	IdleTimeouts uint64
	// AppPings counts application pings answered.
	AppPings uint64
	// MessagesIn and MessagesOut count application messages.
	MessagesIn, MessagesOut uint64
	// SlowConsumers counts connections closed with 4001.
	SlowConsumers uint64
	// TooBig and InvalidUTF8 count connections closed with 1009 and 1007.
	TooBig, InvalidUTF8 uint64
	// HandlerPanics counts recovered Handler panics.
	HandlerPanics uint64
	// HTTPHeartbeats counts the beats of HTTP sessions: heartbeats and
	// tracked requests.
	HTTPHeartbeats uint64
	// Leaves counts HTTP sessions ended by the leave endpoint.
	Leaves uint64
	// Closes counts ended WebSocket connections by close code; code 0
	// stands for codes outside metrics.CloseCodes.
	Closes map[int]uint64
	// Rejected counts refused requests by HTTP status.
	Rejected map[int]uint64
	// Refusals counts refused requests by the code of their answer
	// (CodeOriginNotAllowed, CodeNoIdentity, …): a growing
	// origin_not_allowed or no_identity count usually means a
	// misconfiguration (AllowedOrigins behind a proxy, vigil mounted
	// before the authentication middleware).
	Refusals map[string]uint64
}

// Stats returns the counters.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	open := len(s.conns)
	s.mu.Unlock()
	st := Stats{Open: int64(open), Closes: make(map[int]uint64), Rejected: make(map[int]uint64), Refusals: make(map[string]uint64)}
	ws := func(smp metrics.Sample) bool { return smp.Labels[0] == presence.TransportWS }
	for _, f := range s.tr.Metrics().Gather() {
		for _, smp := range f.Samples {
			n := uint64(smp.Value)
			switch f.Desc {
			case metrics.ConnectionsOpened:
				if ws(smp) {
					st.Upgrades += n
				}
			case metrics.Beats:
				st.Beats += n
				if smp.Labels[0] == presence.TransportHTTP {
					st.HTTPHeartbeats += n
				}
			case metrics.Pings:
				st.Pings += n
			case metrics.HeartbeatTimeouts:
				st.HeartbeatTimeouts += n
			case metrics.AppPings:
				st.AppPings += n
			case metrics.MessagesReceived:
				st.MessagesIn += n
			case metrics.MessagesSent:
				st.MessagesOut += n
			case metrics.HandlerPanics:
				st.HandlerPanics += n
			case metrics.Refusals:
				st.Refusals[smp.Labels[0]] += n
				status, ok := codeStatus[smp.Labels[0]]
				if !ok {
					status = http.StatusInternalServerError
				}
				st.Rejected[status] += n
			case metrics.ConnectionsClosed:
				code, reason := smp.Labels[1], smp.Labels[2]
				if !ws(smp) {
					if reason == string(presence.ReasonLeft) {
						st.Leaves += n
					}
					continue
				}
				c := closeCode(code)
				st.Closes[c] += n
				switch {
				case reason == string(presence.ReasonIdle):
					st.IdleTimeouts += n
				case c == CloseSlowConsumer:
					st.SlowConsumers += n
				case c == CloseTooBig:
					st.TooBig += n
				case c == CloseInvalidPayload:
					st.InvalidUTF8 += n
				}
			}
		}
	}
	return st
}

// closeCode returns the close code of a code label value, 0 for "other".
func closeCode(v string) int {
	for _, c := range metrics.CloseCodes {
		if metrics.CloseCode(c) == v {
			return c
		}
	}
	return 0
}

// MetricsHandler serves the metrics of the Server's node in the Prometheus
// text exposition format (version 0.0.4), for a scraper or a human: the
// families of package metrics (docs/METRICS.md), the same names, labels
// and help texts as metrics/prometheus and metrics/otel. The counts come
// from the Tracker's Recorder, which counts the Tracker's events and those
// of every Server built on it; the online-clients gauge costs one
// Store.Count per scrape. No label carries a client ID.
func (s *Server) MetricsHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ownEndpoint(r)
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			s.refuseMethod(w, r, "GET, HEAD")
			return
		}
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		_ = metrics.WriteText(w, append(s.tr.Metrics().Gather(), trackerFamilies(r.Context(), s.tr)...))
	})
}

// trackerFamilies returns the families read from tr (metrics.TrackerRead).
func trackerFamilies(ctx context.Context, tr *presence.Tracker) []metrics.Family {
	ts := tr.Stats()
	one := func(d *metrics.Desc, v float64) metrics.Family {
		return metrics.Family{Desc: d, Samples: []metrics.Sample{{Value: v}}}
	}
	fams := []metrics.Family{
		one(metrics.Sessions, float64(ts.Sessions)),
		one(metrics.StorePending, float64(ts.Pending)),
		one(metrics.Connects, float64(ts.Connects)),
		one(metrics.HookPanics, float64(ts.HookPanics)),
		one(metrics.HookTimeouts, float64(ts.HookTimeouts)),
	}
	if n, err := tr.Count(ctx); err == nil {
		fams = append([]metrics.Family{one(metrics.OnlineClients, float64(n))}, fams...)
	}
	return fams
}

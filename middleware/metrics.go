package middleware

import (
	"bufio"
	"net/http"
	"strconv"
	"sync/atomic"
)

// closeCodes are the close codes counted by code; others count as "other",
// so a client cannot grow the label set.
var closeCodes = [...]int{1000, 1001, 1006, 1007, 1008, 1009, 1011, 1012, 1013, 4000, 4001, 4500, 4501}

// rejectStatuses are the HTTP statuses counted by status.
var rejectStatuses = [...]int{400, 401, 403, 404, 405, 413, 426, 429, 500, 503}

type counters struct {
	upgrades    atomic.Uint64
	beats       atomic.Uint64
	pings       atomic.Uint64
	timeouts    atomic.Uint64
	idle        atomic.Uint64
	appPings    atomic.Uint64
	messagesIn  atomic.Uint64
	messagesOut atomic.Uint64
	slow        atomic.Uint64
	tooBig      atomic.Uint64
	invalidUTF8 atomic.Uint64
	panics      atomic.Uint64
	httpBeats   atomic.Uint64
	leaves      atomic.Uint64
	closes      [len(closeCodes) + 1]atomic.Uint64
	rejects     [len(rejectStatuses) + 1]atomic.Uint64
	refusals    [len(refusalCodes)]atomic.Uint64
}

func (c *counters) closed(code int) { bump(c.closes[:], closeCodes[:], code) }

// rejected counts a refusal by status and by code; codes are the fixed set
// of refusalCodes.
func (c *counters) rejected(status int, code string) {
	bump(c.rejects[:], rejectStatuses[:], status)
	for i, k := range refusalCodes {
		if k == code {
			c.refusals[i].Add(1)
			return
		}
	}
}

// bump counts k in the slot of its key, or in the last slot ("other") for a
// key not listed: labels stay a fixed set.
func bump(slots []atomic.Uint64, keys []int, k int) {
	for i, key := range keys {
		if key == k {
			slots[i].Add(1)
			return
		}
	}
	slots[len(keys)].Add(1)
}

// Stats is a snapshot of a Server's counters.
type Stats struct {
	// Open is the number of open WebSocket connections.
	Open int64
	// Upgrades counts WebSocket connections opened.
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
	// HTTPHeartbeats and Leaves count the HTTP endpoints' requests served.
	HTTPHeartbeats, Leaves uint64
	// Closes counts ended connections by close code; code 0 stands for
	// codes outside the documented table.
	Closes map[int]uint64
	// Rejected counts refused requests by HTTP status; 0 stands for
	// others.
	Rejected map[int]uint64
	// Refusals counts refused requests by the code of their answer
	// (CodeOriginNotAllowed, CodeNoIdentity, …): a growing
	// origin_not_allowed or no_identity count usually means a
	// misconfiguration (AllowedOrigins behind a proxy, vigil mounted
	// before the authentication middleware).
	Refusals map[string]uint64
}

// Stats returns the Server's counters.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	open := len(s.conns)
	s.mu.Unlock()
	c := &s.stats
	st := Stats{
		Open: int64(open), Upgrades: c.upgrades.Load(), Beats: c.beats.Load(), Pings: c.pings.Load(),
		HeartbeatTimeouts: c.timeouts.Load(), IdleTimeouts: c.idle.Load(), AppPings: c.appPings.Load(),
		MessagesIn: c.messagesIn.Load(), MessagesOut: c.messagesOut.Load(), SlowConsumers: c.slow.Load(),
		TooBig: c.tooBig.Load(), InvalidUTF8: c.invalidUTF8.Load(), HandlerPanics: c.panics.Load(),
		HTTPHeartbeats: c.httpBeats.Load(), Leaves: c.leaves.Load(),
		Closes: byKey(c.closes[:], closeCodes[:]), Rejected: byKey(c.rejects[:], rejectStatuses[:]),
		Refusals: make(map[string]uint64),
	}
	for i, k := range refusalCodes {
		if n := c.refusals[i].Load(); n > 0 {
			st.Refusals[k] = n
		}
	}
	return st
}

// byKey returns the non-zero slots of a bump table by key, 0 standing for
// the last slot ("other").
func byKey(slots []atomic.Uint64, keys []int) map[int]uint64 {
	m := make(map[int]uint64)
	for i := range slots {
		if n := slots[i].Load(); n > 0 {
			k := 0
			if i < len(keys) {
				k = keys[i]
			}
			m[k] = n
		}
	}
	return m
}

// MetricsHandler serves the Server's and its Tracker's counters in the
// Prometheus text exposition format (version 0.0.4), for a scraper or a
// human. Metric names start with vigil_; no label carries a client ID. The
// online-client gauge costs one Store.Count per scrape.
func (s *Server) MetricsHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ownEndpoint(r)
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			s.refuseMethod(w, r, "GET, HEAD")
			return
		}
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		b := bufio.NewWriter(w)
		defer b.Flush()
		st, ts := s.Stats(), s.tr.Stats()
		head := func(name, typ, help string) {
			b.WriteString("# HELP " + name + " " + help + "\n# TYPE " + name + " " + typ + "\n")
		}
		sample := func(name, labels string, v uint64) {
			b.WriteString(name + labels + " " + strconv.FormatUint(v, 10) + "\n")
		}
		metric := func(name, typ, help string, v uint64) {
			head(name, typ, help)
			sample(name, "", v)
		}
		// byKey writes one sample per key of a bump table, then "other".
		byKey := func(name, help, label string, keys []int, n map[int]uint64) {
			head(name, "counter", help)
			for _, k := range keys {
				sample(name, "{"+label+`="`+strconv.Itoa(k)+`"}`, n[k])
			}
			sample(name, "{"+label+`="other"}`, n[0])
		}
		metric("vigil_ws_connections", "gauge", "Open WebSocket connections on this node.", uint64(st.Open))
		metric("vigil_ws_upgrades_total", "counter", "WebSocket connections opened.", st.Upgrades)
		metric("vigil_beats_total", "counter", "Beats received: frames, pongs, HTTP heartbeats and tracked requests.", st.Beats)
		metric("vigil_ws_pings_total", "counter", "Protocol pings sent.", st.Pings)
		metric("vigil_ws_heartbeat_timeouts_total", "counter", "Connections dropped for sending no frame within the pong timeout.", st.HeartbeatTimeouts)
		metric("vigil_ws_idle_timeouts_total", "counter", "Connections closed for sending no application message within the idle timeout.", st.IdleTimeouts)
		metric("vigil_ws_app_pings_total", "counter", "Application pings answered.", st.AppPings)
		metric("vigil_ws_messages_received_total", "counter", "Application messages received.", st.MessagesIn)
		metric("vigil_ws_messages_sent_total", "counter", "Application messages sent.", st.MessagesOut)
		metric("vigil_ws_slow_consumers_total", "counter", "Connections closed as slow consumers (4001).", st.SlowConsumers)
		metric("vigil_ws_handler_panics_total", "counter", "Recovered WebSocket handler panics.", st.HandlerPanics)
		metric("vigil_http_heartbeats_total", "counter", "HTTP heartbeats served.", st.HTTPHeartbeats)
		metric("vigil_http_leaves_total", "counter", "HTTP leaves served.", st.Leaves)
		byKey("vigil_ws_closes_total", "Connections ended, by close code (sent or received; 1006: dropped).", "code", closeCodes[:], st.Closes)
		byKey("vigil_http_rejected_total", "Requests refused before any upgrade or beat, by HTTP status.", "status", rejectStatuses[:], st.Rejected)
		head("vigil_ws_dropped_age_seconds", "histogram", "Age of WebSocket connections that ended without a close frame (1006); many at one age mean a proxy's idle timeout.")
		var cum uint64
		for i, le := range ageBuckets {
			cum += s.cuts.hist[i].Load()
			sample("vigil_ws_dropped_age_seconds_bucket", `{le="`+strconv.FormatFloat(le, 'g', -1, 64)+`"}`, cum)
		}
		cum += s.cuts.hist[len(ageBuckets)].Load()
		sample("vigil_ws_dropped_age_seconds_bucket", `{le="+Inf"}`, cum)
		b.WriteString("vigil_ws_dropped_age_seconds_sum " + strconv.FormatFloat(float64(s.cuts.sumMS.Load())/1000, 'f', 3, 64) + "\n")
		sample("vigil_ws_dropped_age_seconds_count", "", cum)
		head("vigil_http_refusals_total", "counter", "Requests refused, by the code of the JSON answer (docs/PROTOCOL.md); origin_not_allowed and no_identity usually mean a misconfiguration.")
		for _, k := range refusalCodes {
			sample("vigil_http_refusals_total", `{code="`+k+`"}`, st.Refusals[k])
		}

		metric("vigil_presence_sessions", "gauge", "Presence sessions open on this node.", uint64(ts.Sessions))
		metric("vigil_presence_connects_total", "counter", "Presence sessions opened on this node.", ts.Connects)
		head("vigil_presence_transitions_total", "counter", "Presence transitions observed by this node.")
		sample("vigil_presence_transitions_total", `{to="online"}`, ts.Onlines)
		sample("vigil_presence_transitions_total", `{to="offline"}`, ts.Offlines)
		metric("vigil_presence_store_errors_total", "counter", "Failed store calls (each is retried).", ts.StoreErrors)
		metric("vigil_presence_store_pending", "gauge", "Sessions and ends waiting for a store retry.", uint64(ts.Pending))
		metric("vigil_presence_hook_panics_total", "counter", "Recovered hook panics.", ts.HookPanics)
		metric("vigil_presence_hook_timeouts_total", "counter", "Hook calls abandoned after the hook timeout.", ts.HookTimeouts)
		if n, err := s.tr.Count(r.Context()); err == nil {
			metric("vigil_presence_online_clients", "gauge", "Clients online on all nodes sharing the store.", uint64(n))
		}
	})
}

// Package prometheus turns vigil's presence.Observer into Prometheus
// metrics. It lives in its own Go module, so that an application that does
// not use Prometheus never downloads client_golang.
//
// Register the metrics on the registry your application serves (never the
// global one unless you pass it), give the Observer to the Tracker, and
// optionally add the gauges read from the Tracker at scrape time:
//
//	reg := prometheus.NewRegistry()
//	obs, err := vigilprom.New(reg, vigilprom.Config{})
//	...
//	tr, err := presence.New(ctx, store, presence.Config{Observer: obs})
//	...
//	reg.MustRegister(vigilprom.NewTrackerCollector(tr, vigilprom.Config{}))
//	vs, err := middleware.New(tr, middleware.Config{...}) // reports through obs too
//
// # Metrics
//
// The families are those of package metrics (github.com/vigilhq/vigil/metrics),
// the same names, labels and help texts as the built-in
// middleware.Server.MetricsHandler and metrics/otel; docs/METRICS.md lists
// them. The Observer exports the families fed by events (vigil_connections,
// vigil_beats_total, vigil_connections_closed_total{transport,code,reason},
// vigil_ws_*, vigil_http_refusals_total, vigil_presence_transitions_total,
// the Store latency and errors); NewTrackerCollector adds those read from
// the Tracker at each scrape (vigil_presence_online_clients, _sessions,
// _store_pending, _connects_total, _hook_panics_total,
// _hook_timeouts_total). No label carries a client or session ID: every
// label takes its value from a small fixed set, anything else is counted as
// "other".
//
// # Concurrency
//
// An Observer is safe for concurrent use; its methods never block.
package prometheus

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
// Names follow namespace_subsystem_name_unit, with the namespace "vigil" by
// default; counters end in _total. No label carries a client or session ID:
// every label takes its value from a small fixed set, anything else is
// counted as "other".
//
//	vigil_connections{transport}                          gauge: open WebSocket connections ("ws") and HTTP-heartbeat sessions ("http")
//	vigil_connections_opened_total{transport}             counter
//	vigil_connections_closed_total{transport,code,reason} counter: code is the close code ("none" for HTTP), reason the presence reason
//	vigil_beats_total{transport}                          counter: frames, pongs, HTTP heartbeats and tracked requests
//	vigil_presence_transitions_total{to,reason}           counter: to is "online" or "offline"
//	vigil_presence_store_errors_total{op}                 counter: failed Store calls by method
//	vigil_presence_store_duration_seconds{op}             histogram: Store call latency by method
//
// NewTrackerCollector adds, read at each scrape:
//
//	vigil_presence_online_clients   gauge: clients online on all nodes sharing the store (one Store count per scrape)
//	vigil_presence_sessions         gauge: presence sessions open on this node
//	vigil_presence_store_pending    gauge: sessions and ends waiting for a Store retry
//
// # Concurrency
//
// An Observer is safe for concurrent use; its methods never block.
package prometheus

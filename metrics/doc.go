// Package metrics is vigil's one metrics vocabulary: the name, type, help
// text and labels of every metric vigil exposes, defined once in this
// package and used by every exporter, so that a dashboard keeps working when
// an application moves from one to another:
//
//   - the built-in handler, middleware.Server.MetricsHandler (Prometheus
//     text, no dependency), fed by a Recorder every Tracker keeps;
//   - metrics/prometheus (its own Go module), client_golang collectors;
//   - metrics/otel (its own Go module), OpenTelemetry instruments.
//
// All three are fed by the same presence.Observer events, each event
// counted once, and read the same Tracker counts at collection time
// (Families lists which family comes from where). docs/METRICS.md lists the
// families with example alerts.
//
// # Labels
//
// Every label takes its values from a fixed set (Label.Values); a value
// outside it is counted as "other". No label carries a client or session
// ID, so the number of series is bounded.
//
// # Concurrency
//
// The table is read-only. A Recorder is safe for concurrent use and never
// blocks.
package metrics

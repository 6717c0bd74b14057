// Package otel turns vigil's presence.Observer into OpenTelemetry metrics:
// the families of package metrics (docs/METRICS.md), with the same names,
// units, help texts (as descriptions) and labels (as attributes) as the
// built-in handler and metrics/prometheus. It lives in its own Go module,
// so that an application that does not use OpenTelemetry never downloads
// it.
//
// The application passes its MeterProvider in; give the Observer to the
// Tracker, then register the instruments read from the Tracker:
//
//	obs, err := vigilotel.New(mp, vigilotel.Config{})
//	...
//	tr, err := presence.New(ctx, store, presence.Config{Observer: obs})
//	...
//	reg, err := vigilotel.RegisterTracker(mp, tr, vigilotel.Config{})
//	defer reg.Unregister()
//	vs, err := middleware.New(tr, middleware.Config{...}) // reports through obs too
//
// # Names
//
// Instrument names are the Prometheus names of package metrics without the
// _total of counters (metrics.Desc.BaseName): vigil_beats, not
// vigil_beats_total. An OpenTelemetry Prometheus exporter adds _total to
// monotonic counters, so a dashboard written against the built-in handler
// keeps working. Counters are Int64Counters, vigil_connections an
// Int64UpDownCounter, histograms Float64Histograms in seconds with the
// buckets of package metrics as explicit boundaries, and the families read
// from the Tracker observable gauges and counters.
//
// # Concurrency
//
// An Observer is safe for concurrent use; its methods never block.
package otel

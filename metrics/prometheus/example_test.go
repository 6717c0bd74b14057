package prometheus_test

import (
	"context"
	"net/http"

	prom "github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	vigilprom "github.com/vigilhq/vigil/metrics/prometheus"
	"github.com/vigilhq/vigil/middleware"
	"github.com/vigilhq/vigil/presence"
	"github.com/vigilhq/vigil/store/memory"
)

// Example wires the metrics into an application: one registry of its own,
// the Observer given to the Tracker (the middleware Server reports through
// it too), and the gauges read from the Tracker at scrape time.
func Example() {
	ctx := context.Background()
	reg := prom.NewRegistry()
	obs, err := vigilprom.New(reg, vigilprom.Config{})
	if err != nil {
		panic(err)
	}
	st, _ := memory.New(memory.Config{})
	tr, err := presence.New(ctx, st, presence.Config{Observer: obs})
	if err != nil {
		panic(err)
	}
	defer tr.Close(ctx)
	reg.MustRegister(vigilprom.NewTrackerCollector(tr, vigilprom.Config{}))
	vs := middleware.MustNew(tr, middleware.Config{Identify: middleware.IdentifyQuery("id")})

	mux := http.NewServeMux()
	mux.Handle("GET /ws", vs.WebSocket(nil))
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	_ = mux // http.ListenAndServe(":8080", mux)
}

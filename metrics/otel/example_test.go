package otel_test

import (
	"context"
	"fmt"
	"log"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	vigilotel "github.com/vigilhq/vigil/metrics/otel"
	"github.com/vigilhq/vigil/presence"
	"github.com/vigilhq/vigil/store/memory"
)

// The Observer goes in presence.Config.Observer; the app's MeterProvider
// (here the SDK's, with a manual reader standing in for an exporter)
// exports vigil's instruments beside its own.
func Example() {
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	defer mp.Shutdown(context.Background())

	obs, err := vigilotel.New(mp, vigilotel.Config{})
	if err != nil {
		log.Fatal(err)
	}
	store, _ := memory.New(memory.Config{})
	tr, err := presence.New(context.Background(), store, presence.Config{Node: "web-1", Observer: obs})
	if err != nil {
		log.Fatal(err)
	}
	defer tr.Close(context.Background())
	s, _ := tr.Connect(context.Background(), "alice", presence.SessionOptions{})
	s.Beat()

	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		log.Fatal(err)
	}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name == "vigil_presence_transitions" {
				for _, p := range m.Data.(metricdata.Sum[int64]).DataPoints {
					to, _ := p.Attributes.Value("to")
					fmt.Println(m.Name, to.AsString(), p.Value)
				}
			}
		}
	}
	// Output:
	// vigil_presence_transitions online 1
}

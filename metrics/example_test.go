package metrics_test

import (
	"fmt"

	"github.com/vigilhq/vigil/metrics"
)

// Every metric vigil exports, whichever exporter serves it (the built-in
// /metrics handler, metrics/prometheus, metrics/otel), comes from this one
// table; docs/METRICS.md explains each and suggests alerts.
func Example() {
	for _, d := range metrics.Families[:4] {
		fmt.Println(d.Kind, d.Name, d.LabelNames())
	}
	// Output:
	// gauge vigil_connections [transport]
	// counter vigil_connections_opened_total [transport]
	// counter vigil_connections_closed_total [transport code reason]
	// counter vigil_beats_total [transport]
}

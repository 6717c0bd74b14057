//go:build integration && unix

package redis_test

import (
	"context"
	"testing"
	"time"

	"github.com/vigilhq/vigil/internal/redistest"
	"github.com/vigilhq/vigil/presence"
	redisstore "github.com/vigilhq/vigil/store/redis"
)

// BenchmarkSweep measures the sweep every node makes every SweepInterval
// at steady state: 100,000 live sessions, none due, every bucket swept
// (and the node's lease renewed in each, presence.NodeSweeper). Metrics:
// the microseconds Redis spent running the scripts per sweep, and the CPU
// the server used per sweep.
func BenchmarkSweep(b *testing.B) {
	for _, tc := range redistest.Servers {
		b.Run(tc.Name, func(b *testing.B) {
			rdb := tc.Client(b)
			// The adds' Online transitions stay pending in the journal:
			// none is old enough to reclaim, whatever the adds took.
			st := redistest.Store(b, rdb, redisstore.Config{ReclaimAfter: time.Hour})
			addSessions(b, st, 100_000, time.Hour)
			ctx := context.Background()
			l := presence.NodeLease{Node: "bench", TTL: presence.DefaultTTL / 4}
			before := readStats(b, rdb)
			for b.Loop() {
				evs, err := st.SweepNode(ctx, l)
				if err != nil {
					b.Fatal(err)
				}
				if len(evs) != 0 {
					b.Fatalf("%d sessions swept", len(evs))
				}
			}
			d := readStats(b, rdb).sub(before)
			b.ReportMetric(float64(d.usec)/float64(b.N), "redis-µs/sweep")
			b.ReportMetric(float64(d.cpu)/float64(b.N), "redis-cpu-µs/sweep")
		})
	}
}

//go:build integration && unix

package redis_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/vigilhq/vigil/internal/redistest"
	redisstore "github.com/vigilhq/vigil/store/redis"
)

// BenchmarkTouch measures how many sessions one node can refresh per second
// through one Redis: Touch of batches as a Tracker's flush sends them (every
// session beaten since the last flush, 250ms earlier), over 100,000 live
// sessions. Metrics: sessions refreshed per second, the microseconds Redis
// spent running the scripts per session, and the CPU the server used per
// session, reading and parsing the calls included (one Redis thread's CPU
// is the ceiling of the figure), and the CPU this process used per session.
func BenchmarkTouch(b *testing.B) { benchmarkTouch(b, nil) }

// BenchmarkTouchRooms is BenchmarkTouch with every session in five rooms
// (500,000 memberships): a refresh reads none of them.
func BenchmarkTouchRooms(b *testing.B) { benchmarkTouch(b, fiveRooms) }

func benchmarkTouch(b *testing.B, rooms []string) {
	for _, tc := range redistest.Servers {
		for _, batch := range []int{1_000, 10_000, 50_000} {
			b.Run(fmt.Sprintf("%s/batch=%d", tc.Name, batch), func(b *testing.B) {
				rdb := tc.Client(b)
				st := redistest.Store(b, rdb, redisstore.Config{})
				const n = 100_000
				leases := addSessionsIn(b, st, n, time.Hour, rooms)
				ctx := context.Background()
				before := readStats(b, rdb)
				cpu0 := processCPU(b)
				next := 0
				b.ResetTimer()
				for b.Loop() {
					if next+batch > n {
						next = 0
					}
					gone, err := st.Touch(ctx, leases[next:next+batch])
					if err != nil {
						b.Fatal(err)
					}
					if len(gone) != 0 {
						b.Fatalf("%d sessions gone", len(gone))
					}
					next += batch
				}
				b.StopTimer()
				client := processCPU(b) - cpu0
				total := float64(b.N * batch)
				d := readStats(b, rdb).sub(before)
				b.ReportMetric(total/b.Elapsed().Seconds(), "sessions/s")
				b.ReportMetric(float64(d.usec)/total, "redis-µs/session")
				b.ReportMetric(float64(d.cpu)/total, "redis-cpu-µs/session")
				b.ReportMetric(float64(client.Microseconds())/total, "client-cpu-µs/session")
				b.ReportMetric(0, "ns/op")
			})
		}
	}
}

// BenchmarkLookup measures Lookup of 1,000 online clients (one session
// each) among 100,000: their last seen is read from their sessions'
// deadlines, a few Redis calls per client inside one script.
func BenchmarkLookup(b *testing.B) {
	rdb := redistest.Standalone(b)
	st := redistest.Store(b, rdb, redisstore.Config{})
	const n = 100_000
	leases := addSessions(b, st, n, time.Hour)
	ids := make([]string, 1000)
	for i := range ids {
		ids[i] = leases[i*(n/len(ids))].ClientID
	}
	ctx := context.Background()
	before := readStats(b, rdb)
	for b.Loop() {
		ps, err := st.Lookup(ctx, ids)
		if err != nil {
			b.Fatal(err)
		}
		if !ps[0].Online || ps[0].LastSeen.IsZero() {
			b.Fatalf("lookup = %+v", ps[0])
		}
	}
	d := readStats(b, rdb).sub(before)
	b.ReportMetric(float64(d.cpu)/float64(b.N*len(ids)), "redis-cpu-µs/client")
}

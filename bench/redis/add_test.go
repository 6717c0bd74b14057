//go:build integration && unix

package redis_test

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/vigilhq/vigil/internal/redistest"
	"github.com/vigilhq/vigil/presence"
	redisstore "github.com/vigilhq/vigil/store/redis"
)

// BenchmarkAdd measures Add and End, the calls of a client connecting and
// leaving, on a single server holding 100,000 live sessions, with the
// Store's defaults: "new" adds a session of a client the Store never saw
// ("new-uncapped" the same with MaxClients and MaxSessions off);
// "churn" ends a session at once (no grace: its client goes offline) and
// adds one of a client offline since, cycling over 100,000 clients;
// "forget" adds new clients at the cap of clients (MaxClients 200,000,
// 100,000 of them offline), so that each takes the place of a client
// offline the longest. Metrics: the microseconds Redis spent in scripts
// per call, and the CPU the server used per call.
func BenchmarkAdd(b *testing.B) {
	for _, tc := range []struct {
		name          string
		churn, forget bool
		cfg           redisstore.Config
	}{
		{name: "new"},
		{name: "new-uncapped", cfg: redisstore.Config{MaxClients: -1, MaxSessions: -1}},
		{name: "churn", churn: true},
		{name: "forget", forget: true},
	} {
		b.Run(tc.name, func(b *testing.B) {
			rdb := redistest.Standalone(b)
			st := redistest.Store(b, rdb, tc.cfg)
			const n = 100_000
			addSessions(b, st, n, time.Hour)
			ctx := context.Background()
			pool := make([]presence.Lease, n)
			for i := range pool {
				pool[i] = presence.Lease{ClientID: "c" + strconv.Itoa(i), SessionID: "s", Node: "bench", TTL: time.Hour}
			}
			if tc.churn || tc.forget {
				for _, l := range pool {
					if _, err := st.Add(ctx, l); err != nil {
						b.Fatal(err)
					}
				}
			}
			if tc.forget {
				for _, l := range pool {
					if _, err := st.End(ctx, presence.Ending{ClientID: l.ClientID}); err != nil {
						b.Fatal(err)
					}
				}
				capped, err := redisstore.New(rdb, redisstore.Config{Prefix: st.Config().Prefix, MaxClients: 2 * n})
				if err != nil {
					b.Fatal(err)
				}
				st = capped
				// Records a second old (see the Seq section of store/redis's
				// doc), then the excess of buckets over their share forgotten.
				time.Sleep(time.Second)
				if _, err := st.Sweep(ctx); err != nil {
					b.Fatal(err)
				}
			}
			before := readStats(b, rdb)
			calls := 0
			i := 0
			for b.Loop() {
				l := presence.Lease{ClientID: "n" + strconv.Itoa(i), SessionID: "s", Node: "bench", TTL: time.Hour}
				if tc.churn {
					l = pool[i%n]
					if _, err := st.End(ctx, presence.Ending{ClientID: l.ClientID, SessionID: l.SessionID}); err != nil {
						b.Fatal(err)
					}
					calls++
				}
				if _, err := st.Add(ctx, l); err != nil {
					b.Fatal(err)
				}
				calls++
				i++
			}
			d := readStats(b, rdb).sub(before)
			b.ReportMetric(float64(d.usec)/float64(calls), "redis-µs/call")
			b.ReportMetric(float64(d.cpu)/float64(calls), "redis-cpu-µs/call")
		})
	}
}

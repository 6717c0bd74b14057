//go:build integration

package redis_test

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/vigilhq/vigil/presence"
	redisstore "github.com/vigilhq/vigil/store/redis"
)

// topLevel are the commands the Store sends on the beat path and its
// journal; commands that scripts run inside Redis (ZADD, HMGET...) are not
// round trips and are not counted. (Lookup's HMGET is left out for that
// reason: nothing here calls Lookup.)
var topLevel = []string{"evalsha", "eval", "evalsha_ro", "xread", "xack", "zcard", "xrevrange", "script"}

// commands sums the top-level command calls of the servers behind rdb.
func commands(t testing.TB, rdb goredis.UniversalClient) int64 {
	t.Helper()
	ctx := context.Background()
	var mu sync.Mutex
	var n int64
	count := func(ctx context.Context, c *goredis.Client) error {
		info, err := c.Info(ctx, "commandstats").Result()
		if err != nil {
			return err
		}
		for _, line := range strings.Split(info, "\n") {
			for _, cmd := range topLevel {
				if rest, ok := strings.CutPrefix(line, "cmdstat_"+cmd+":calls="); ok {
					v, _, _ := strings.Cut(rest, ",")
					k, _ := strconv.ParseInt(v, 10, 64)
					mu.Lock()
					n += k
					mu.Unlock()
				}
			}
		}
		return nil
	}
	var err error
	switch c := rdb.(type) {
	case *goredis.ClusterClient:
		err = c.ForEachMaster(ctx, count)
	case *goredis.Client:
		err = count(ctx, c)
	}
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestCommandsPerBeat measures Redis round-trip commands per beat at steady
// state: 10,000 sessions on one node, each beating every 25s (the
// middleware's default ping interval), Tracker defaults otherwise.
func TestCommandsPerBeat(t *testing.T) {
	const sessions, period, window = 10_000, 25 * time.Second, 3 * time.Second
	for _, tc := range []struct {
		name    string
		rdb     func(*testing.T) goredis.UniversalClient
		buckets int
	}{
		{"standalone", func(t *testing.T) goredis.UniversalClient { return startServer(t).client(t) }, 0},
		{"cluster-32-buckets", func(t *testing.T) goredis.UniversalClient { return cluster(t) }, 32},
		{"cluster-8-buckets", func(t *testing.T) goredis.UniversalClient { return cluster(t) }, 8},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rdb := tc.rdb(t)
			st := newStore(t, rdb, redisstore.Config{Buckets: tc.buckets})
			tr, err := presence.New(context.Background(), st, presence.Config{Node: "bench"})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = tr.Close(context.Background()) })
			ss := make([]*presence.Session, sessions)
			for i := range ss {
				ss[i], err = tr.Connect(context.Background(), fmt.Sprintf("u%d", i), presence.SessionOptions{})
				if err != nil {
					t.Fatal(err)
				}
			}
			time.Sleep(time.Second) // the connects' first flushes
			perTick := sessions * 10 * int(time.Millisecond) / int(period)
			before := commands(t, rdb)
			beats, next := 0, 0
			tick := time.NewTicker(10 * time.Millisecond)
			for end := time.Now().Add(window); time.Now().Before(end); {
				<-tick.C
				for range perTick {
					ss[next%sessions].Beat()
					next++
					beats++
				}
			}
			tick.Stop()
			cmds := commands(t, rdb) - before
			per := float64(cmds) / float64(beats)
			t.Logf("%d beats in %v, %d Redis commands: %.4f commands per beat", beats, window, cmds, per)
			if tc.name == "standalone" && per > 0.05 {
				t.Errorf("%.4f commands per beat, want at most 0.05", per)
			}
		})
	}
}

// BenchmarkTouch measures Touch of batches of 1,000 leases spread over
// every bucket: the cost of one Tracker flush.
func BenchmarkTouch(b *testing.B) {
	for _, tc := range []struct {
		name string
		rdb  func(testing.TB) goredis.UniversalClient
	}{
		{"standalone", func(t testing.TB) goredis.UniversalClient { return standalone(t) }},
		{"cluster", func(t testing.TB) goredis.UniversalClient { return cluster(t) }},
	} {
		b.Run(tc.name, func(b *testing.B) {
			rdb := tc.rdb(b)
			st := newStore(b, rdb, redisstore.Config{})
			ctx := context.Background()
			const n = 1000
			leases := make([]presence.Lease, n)
			for i := range leases {
				leases[i] = presence.Lease{ClientID: fmt.Sprintf("u%d", i), SessionID: "s", Node: "bench", TTL: time.Hour}
				if _, err := st.Add(ctx, leases[i]); err != nil {
					b.Fatal(err)
				}
			}
			before := commands(b, rdb)
			b.ResetTimer()
			for b.Loop() {
				if _, err := st.Touch(ctx, leases); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			el := b.Elapsed()
			b.ReportMetric(float64(b.N*n)/el.Seconds(), "leases/s")
			b.ReportMetric(float64(commands(b, rdb)-before-1)/float64(b.N*n), "cmds/lease")
		})
	}
}

//go:build integration && unix

// Package redis_test holds the benchmarks of store/redis against real
// Redis servers. They need REDIS_ADDR (and REDIS_CLUSTER_ADDRS for the
// Cluster figures), as ./scripts/lib/redis.sh sets them; see
// docs/BENCHMARKS.md for the commands and figures.
package redis_test

import (
	"context"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/vigilhq/vigil/internal/redistest"
	"github.com/vigilhq/vigil/presence"
	redisstore "github.com/vigilhq/vigil/store/redis"
)

// topLevel are the commands a Store sends as round trips. INFO counts the
// commands scripts run inside Redis under their own names, so those
// (HMGET, ZADD...) are left out.
var topLevel = []string{"evalsha", "eval", "evalsha_ro", "xread", "xack", "zcard", "mget", "xrevrange", "script"}

// stats are INFO commandstats figures summed over the servers behind rdb.
type stats struct {
	calls int64 // top-level commands
	usec  int64 // microseconds Redis spent in scripts (evalsha, eval)
	cpu   int64 // microseconds of CPU the servers used, reading requests included
}

func readStats(t testing.TB, rdb goredis.UniversalClient) stats {
	t.Helper()
	var mu sync.Mutex
	var st stats
	err := redistest.ForEachServer(context.Background(), rdb, func(ctx context.Context, c *goredis.Client) error {
		info, err := c.Info(ctx, "commandstats", "cpu").Result()
		if err != nil {
			return err
		}
		for _, line := range strings.Split(info, "\n") {
			if k, v, ok := strings.Cut(strings.TrimSpace(line), ":"); ok && (k == "used_cpu_user" || k == "used_cpu_sys") {
				sec, _ := strconv.ParseFloat(v, 64)
				mu.Lock()
				st.cpu += int64(sec * 1e6)
				mu.Unlock()
				continue
			}
			name, rest, ok := strings.Cut(strings.TrimPrefix(strings.TrimSpace(line), "cmdstat_"), ":")
			if !ok {
				continue
			}
			var calls, usec int64
			for _, kv := range strings.Split(rest, ",") {
				k, v, _ := strings.Cut(kv, "=")
				n, _ := strconv.ParseInt(v, 10, 64)
				switch k {
				case "calls":
					calls = n
				case "usec":
					usec = n
				}
			}
			mu.Lock()
			for _, c := range topLevel {
				if name == c {
					st.calls += calls
				}
			}
			if name == "evalsha" || name == "eval" {
				st.usec += usec
			}
			mu.Unlock()
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func (s stats) sub(o stats) stats {
	return stats{calls: s.calls - o.calls, usec: s.usec - o.usec, cpu: s.cpu - o.cpu}
}

// addSessions records n sessions of n clients ("u0"...), ttl each, from 16
// goroutines.
func addSessions(t testing.TB, st *redisstore.Store, n int, ttl time.Duration) []presence.Lease {
	t.Helper()
	return addSessionsIn(t, st, n, ttl, nil)
}

// addSessionsIn is addSessions with every session in rooms; the leases
// returned carry none (Touch ignores them).
func addSessionsIn(t testing.TB, st *redisstore.Store, n int, ttl time.Duration, rooms []string) []presence.Lease {
	t.Helper()
	leases := make([]presence.Lease, n)
	for i := range leases {
		leases[i] = presence.Lease{ClientID: "u" + strconv.Itoa(i), SessionID: "s", Node: "bench", TTL: ttl, Rooms: rooms}
	}
	defer func() {
		for i := range leases {
			leases[i].Rooms = nil
		}
	}()
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for w := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += 16 {
				if _, err := st.Add(context.Background(), leases[i]); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	return leases
}

// processCPU returns the CPU time this process has used, user and system.
func processCPU(t testing.TB) time.Duration {
	t.Helper()
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		t.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

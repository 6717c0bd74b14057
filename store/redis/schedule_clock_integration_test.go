//go:build integration

package redis

import (
	"context"
	"crypto/rand"
	"os"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/vigilhq/vigil/presence"
)

// TestRegistryClockOff: on a single server, a Store writes its registry
// entry and renews its node's leases at the Redis time it infers from its
// last reading of Redis's clock; when TIME, read in the same round trip,
// says the inference was off (Redis's clock stepped, or a failover to
// another host), it writes them again from TIME, so that an entry never
// outlives its three SweepIntervals and a lease its TTL, and the Store
// still counts itself live.
func TestRegistryClockOff(t *testing.T) {
	addr := os.Getenv("REDIS_ADDR")
	if addr == "" {
		t.Fatal("REDIS_ADDR is not set: run ./scripts/test, or source scripts/lib/redis.sh and run redis_setup")
	}
	rdb := goredis.NewClient(&goredis.Options{Addr: addr})
	t.Cleanup(func() { _ = rdb.Close() })
	for _, tc := range []struct {
		name string
		off  time.Duration // how far ahead the Store's inference runs
	}{
		{"ahead", 5 * time.Second},
		{"behind", -5 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			prefix := "vt-" + rand.Text()[:10]
			s, err := New(rdb, Config{Prefix: prefix, Buckets: 2})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() {
				keys, _ := rdb.Keys(ctx, "{"+prefix+":*").Result()
				for _, k := range keys {
					rdb.Del(ctx, k)
				}
			})
			lease := presence.NodeLease{Node: "n", TTL: 1200 * time.Millisecond}
			for range 2 {
				if _, err := s.SweepNode(ctx, lease); err != nil {
					t.Fatal(err)
				}
				time.Sleep(100 * time.Millisecond)
			}
			// Every lease due for renewal in the registry's round trip, and
			// Redis's time inferred off by tc.off.
			s.sched.mu.Lock()
			if !s.single || s.sched.now == 0 {
				s.sched.mu.Unlock()
				t.Fatal("no reading of Redis's clock after two SweepNodes on a single server")
			}
			for b := range s.sched.lease["n"] {
				s.sched.lease["n"][b] = time.Now().Add(-lease.TTL / 2)
			}
			s.sched.at = s.sched.at.Add(-tc.off)
			s.sched.mu.Unlock()
			if _, err := s.SweepNode(ctx, lease); err != nil {
				t.Fatal(err)
			}
			now, err := rdb.Time(ctx).Result()
			if err != nil {
				t.Fatal(err)
			}
			left := func(key, member string) time.Duration {
				t.Helper()
				d, err := rdb.ZScore(ctx, key, member).Result()
				if err != nil {
					t.Fatalf("%s %s: %v", key, member, err)
				}
				return time.Duration(int64(d)-now.UnixMilli()) * time.Millisecond
			}
			// The entry lasts three SweepIntervals, at least 300ms.
			if d := left(registryKey(prefix), s.consumer); d <= 0 || d > time.Second {
				t.Errorf("registry entry runs %v more, want at most a second", d)
			}
			for b := range s.buckets {
				if d := left(s.buckets[b][keyLeases], "n"); d <= lease.TTL/2 || d > lease.TTL {
					t.Errorf("bucket %d: lease runs %v more, want about its TTL (%v)", b, d, lease.TTL)
				}
			}
			s.sched.mu.Lock()
			view := s.sched.view
			s.sched.mu.Unlock()
			if len(view) != 1 || view[0] != s.consumer {
				t.Errorf("registry as read: %v, want this Store alone", view)
			}
		})
	}
}

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

	"github.com/vigilhq/vigil/internal/redistest"
	"github.com/vigilhq/vigil/presence"
	redisstore "github.com/vigilhq/vigil/store/redis"
)

// TestSweepShared (issue 17 §5): Stores that sweep through SweepNode share
// the buckets. Sessions of a node that never sweeps expire; their Offlines
// come once each, from one of the sweepers, with node_lost; when one
// sweeper stops, the other takes its buckets over within its registry
// entry's life (three sweep intervals) and a sweep interval.
func TestSweepShared(t *testing.T) {
	for _, srv := range redistest.Servers {
		t.Run(srv.Name, func(t *testing.T) {
			rdb := srv.Client(t)
			cfg := redisstore.Config{Prefix: redistest.Prefix(t, rdb)}
			writer := redistest.Store(t, rdb, cfg)
			ctx := context.Background()
			const interval = 100 * time.Millisecond
			var mu sync.Mutex
			got := make(map[string][]string) // client -> "sweeper/reason" of its Offlines
			type sweeper struct {
				name string
				st   *redisstore.Store
				stop chan struct{}
				done chan struct{}
			}
			start := func(name string) *sweeper {
				sw := &sweeper{name, redistest.Store(t, rdb, cfg), make(chan struct{}), make(chan struct{})}
				go func() {
					defer close(sw.done)
					for {
						evs, err := sw.st.SweepNode(ctx, presence.NodeLease{Node: sw.name, TTL: 2 * time.Second})
						if err != nil {
							t.Errorf("%s: %v", sw.name, err)
						}
						mu.Lock()
						for _, ev := range evs {
							if ev.Transition == presence.Offline {
								got[ev.ClientID] = append(got[ev.ClientID], sw.name+"/"+string(ev.Reason))
							}
						}
						mu.Unlock()
						select {
						case <-sw.stop:
							return
						case <-time.After(interval):
						}
					}
				}()
				return sw
			}
			halt := func(sw *sweeper) {
				select {
				case <-sw.stop:
				default:
					close(sw.stop)
				}
				<-sw.done
			}
			a, b := start("a"), start("b")
			t.Cleanup(func() { halt(a); halt(b) })
			time.Sleep(5 * interval) // both registered and swept once

			// A node that never sweeps: its lease (Add's) runs out with its
			// sessions, which go as node_lost.
			add := func(batch string, n int) []string {
				var ids []string
				for i := range n {
					id := fmt.Sprintf("%s-%d", batch, i)
					if _, err := writer.Add(ctx, presence.Lease{ClientID: id, SessionID: "s", Node: "gone", TTL: 500 * time.Millisecond}); err != nil {
						t.Fatal(err)
					}
					ids = append(ids, id)
				}
				return ids
			}
			check := func(ids []string, within time.Duration, sweepers ...string) map[string]int {
				t.Helper()
				waitUntil(t, within, "every Offline", func() bool {
					mu.Lock()
					defer mu.Unlock()
					for _, id := range ids {
						if len(got[id]) == 0 {
							return false
						}
					}
					return true
				})
				time.Sleep(3 * interval) // a second Offline would come by now
				mu.Lock()
				defer mu.Unlock()
				by := make(map[string]int)
				for _, id := range ids {
					if len(got[id]) != 1 {
						t.Errorf("%s: Offlines %v, want one", id, got[id])
						continue
					}
					by[got[id][0]]++
				}
				t.Logf("Offlines by sweeper: %v", by)
				for k := range by {
					ok := false
					for _, sw := range sweepers {
						ok = ok || k == sw+"/"+string(presence.ReasonNodeLost)
					}
					if !ok {
						t.Errorf("Offlines %q, want node_lost from %v", k, sweepers)
					}
				}
				return by
			}
			// 64 clients over 32 buckets, about 16 buckets each: both
			// sweepers decide some (one alone deciding all 64 means the
			// buckets were not shared).
			both := add("both", 64)
			if by := check(both, 3*time.Second, "a", "b"); len(by) != 2 {
				t.Errorf("Offlines by sweeper %v, want some from each of a and b", by)
			}
			// A bucket is swept by the one sweeper that ranks first for it.
			mu.Lock()
			sweptBy := make(map[int]string)
			for _, id := range both {
				if len(got[id]) == 0 {
					continue
				}
				b := bucketOfTest(id, redisstore.DefaultBuckets)
				if w, ok := sweptBy[b]; ok && w != got[id][0] {
					t.Errorf("bucket %d: Offlines from %s and %s, want one sweeper", b, w, got[id][0])
				}
				sweptBy[b] = got[id][0]
			}
			mu.Unlock()

			halt(b)
			// b's entry runs out (at most 3s), then a takes its buckets over.
			check(add("alone", 64), 5*time.Second, "a")
		})
	}
}

// TestSweepNodeIdle (issue 17 §5): on a single server, an idle Store's
// SweepNode, once it has read Redis's clock, runs no script: its registry
// entry and its node's leases are written with plain commands in its one
// round trip (a script call costs Redis several times the commands it
// runs), and its periodic look at Retention, MaxClients and the journal's
// reclaiming (every ReclaimAfter/3 here) finds nothing to sweep. The
// leases are still renewed (one ZADD per bucket, about every third of
// their TTL), and the first SweepNode still goes through nodes.lua.
func TestSweepNodeIdle(t *testing.T) {
	srv := redistest.StartServer(t)
	rdb := goredis.NewClient(&goredis.Options{Addr: srv.Addr()})
	t.Cleanup(func() { _ = rdb.Close() })
	ctx := context.Background()
	const buckets = 4
	st := redistest.Store(t, rdb, redisstore.Config{Prefix: "t", Buckets: buckets, ReclaimAfter: 600 * time.Millisecond})
	// The lease's TTL sets the cadence of its renewals (every TTL/3);
	// the sweeps come every 100ms, as a Tracker's would with a 1.2s TTL.
	lease := presence.NodeLease{Node: "n", TTL: 1200 * time.Millisecond}
	sweep := func() {
		t.Helper()
		if _, err := st.SweepNode(ctx, lease); err != nil {
			t.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	sweep() // through nodes.lua, then sweeps every bucket (taken over)
	if got := commandCalls(t, rdb)["evalsha"]; got == 0 {
		t.Errorf("first SweepNode: no script call, want nodes.lua's and sweep.lua's")
	}
	sweep() // renews the leases with lease.lua: none renewed lately by this Store
	// The entry of a Store gone two minutes ago: dropped within 20 calls.
	now, err := rdb.Time(ctx).Result()
	if err != nil {
		t.Fatal(err)
	}
	if err := rdb.ZAdd(ctx, "{t:b0}:sw", goredis.Z{Score: float64(now.UnixMilli() - 120_000), Member: "gone"}).Err(); err != nil {
		t.Fatal(err)
	}
	before := commandCalls(t, rdb)
	const calls = 20 // 2s: leases renewed about five times, no full sweep (10s)
	for range calls {
		sweep()
	}
	after := commandCalls(t, rdb)
	diff := func(cmd string) int64 { return after[cmd] - before[cmd] }
	if n := diff("evalsha") + diff("eval"); n != 0 {
		t.Errorf("%d idle SweepNodes ran %d scripts, want none", calls, n)
	}
	// Every 200ms (ReclaimAfter/3), each bucket's chores are read.
	if n := diff("xpending"); n < 5*buckets {
		t.Errorf("%d idle SweepNodes read the journal's pending entries %d times in %d buckets, want about %d", calls, n, buckets, 10*buckets)
	}
	if n := diff("time"); n != calls {
		t.Errorf("%d idle SweepNodes read Redis's clock %d times, want once each", calls, n)
	}
	// Registry entries: one a call; leases: 4 buckets, renewed 4 to 6
	// times in 2s of a 1.2s TTL.
	if n := diff("zadd") - calls; n < 3*buckets || n > 7*buckets {
		t.Errorf("%d idle SweepNodes renewed %d leases in %d buckets, want about %d", calls, n, buckets, 5*buckets)
	}
	var till float64
	for b := range buckets {
		d, err := rdb.ZScore(ctx, fmt.Sprintf("{t:b%d}:l", b), "n").Result()
		if err != nil {
			t.Fatalf("bucket %d: lease of n: %v", b, err)
		}
		till = max(till, d)
	}
	if err := rdb.ZScore(ctx, "{t:b0}:sw", "gone").Err(); err != goredis.Nil {
		t.Errorf("registry entry gone for two minutes: %v, want it dropped", err)
	}
	now, err = rdb.Time(ctx).Result()
	if err != nil {
		t.Fatal(err)
	}
	if left := time.Duration(int64(till)-now.UnixMilli()) * time.Millisecond; left < lease.TTL/3 || left > lease.TTL {
		t.Errorf("lease runs %v more, want between a third of its TTL (%v) and its TTL", left, lease.TTL)
	}
}

// commandCalls reads INFO commandstats: the calls of each command so far.
func commandCalls(t *testing.T, rdb *goredis.Client) map[string]int64 {
	t.Helper()
	info, err := rdb.Info(context.Background(), "commandstats").Result()
	if err != nil {
		t.Fatal(err)
	}
	calls := make(map[string]int64)
	for _, line := range strings.Split(info, "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(line), ":")
		if !ok || !strings.HasPrefix(k, "cmdstat_") {
			continue
		}
		v, _, _ = strings.Cut(strings.TrimPrefix(v, "calls="), ",")
		calls[strings.TrimPrefix(k, "cmdstat_")], _ = strconv.ParseInt(v, 10, 64)
	}
	return calls
}

// TestSweepNodeChores: the Store that sweeps a bucket through SweepNode
// still forgets the clients offline for longer than Retention, and the
// clients over the bucket's share of MaxClients (a cap lowered), though it
// sweeps a quiet bucket in full only when its periodic look finds such
// work.
func TestSweepNodeChores(t *testing.T) {
	for _, srv := range redistest.Servers {
		for _, tc := range []struct {
			name   string
			cfg    redisstore.Config // of the sweeper; the writer's has no caps
			offIDs int               // clients made offline
			keep   int               // clients the bucket keeps
		}{
			{"retention", redisstore.Config{Retention: 300 * time.Millisecond}, 3, 0},
			{"max-clients", redisstore.Config{MaxClients: 1}, 3, 1},
		} {
			t.Run(srv.Name+"/"+tc.name, func(t *testing.T) {
				rdb := srv.Client(t)
				ctx := context.Background()
				p := redistest.Prefix(t, rdb)
				cfg := tc.cfg
				cfg.Prefix, cfg.Buckets, cfg.ReclaimAfter = p, 1, 600*time.Millisecond
				sweeper := redistest.Store(t, rdb, cfg)
				writer := redistest.Store(t, rdb, redisstore.Config{Prefix: p, Buckets: 1})
				stop := make(chan struct{})
				done := make(chan struct{})
				go func() {
					defer close(done)
					for {
						if _, err := sweeper.SweepNode(ctx, presence.NodeLease{Node: "n", TTL: 2 * time.Second}); err != nil {
							t.Error(err)
						}
						select {
						case <-stop:
							return
						case <-time.After(100 * time.Millisecond):
						}
					}
				}()
				t.Cleanup(func() { close(stop); <-done })
				time.Sleep(300 * time.Millisecond) // the sweeper took the bucket over
				for i := range tc.offIDs {
					id := "c" + itoa(i)
					if _, err := writer.Add(ctx, presence.Lease{ClientID: id, SessionID: "s", Node: "w", TTL: time.Minute}); err != nil {
						t.Fatal(err)
					}
					if _, err := writer.End(ctx, presence.Ending{ClientID: id, SessionID: "s"}); err != nil {
						t.Fatal(err)
					}
				}
				clients := "{" + p + ":b0}:c"
				if n, err := rdb.HLen(ctx, clients).Result(); err != nil || n != int64(tc.offIDs) {
					t.Fatalf("clients held: %d (%v), want %d", n, err, tc.offIDs)
				}
				waitUntil(t, 3*time.Second, "clients forgotten", func() bool {
					n, err := rdb.HLen(ctx, clients).Result()
					return err == nil && n == int64(tc.keep)
				})
			})
		}
	}
}

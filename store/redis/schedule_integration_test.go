//go:build integration

package redis_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

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
			check := func(ids []string, within time.Duration, sweepers ...string) {
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
			}
			check(add("both", 64), 3*time.Second, "a", "b")

			halt(b)
			// b's entry runs out (at most 3s), then a takes its buckets over.
			check(add("alone", 64), 5*time.Second, "a")
		})
	}
}

//go:build integration

package redis_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/vigilhq/vigil/internal/redistest"
	"github.com/vigilhq/vigil/presence"
	redisstore "github.com/vigilhq/vigil/store/redis"
)

// TestDeadNode: a node that vanishes (its Redis link gone for good) loses
// its sessions by TTL, and a survivor fires exactly one offline for each
// client that had no other session, with reason node_lost (the node's
// lease ran out: see NodeSweeper); a client also on the survivor stays
// online with no event, and a session of the survivor that stopped beating
// meanwhile expires (reason expired). A restart of the dead node leaves no
// ghost.
func TestDeadNode(t *testing.T) {
	rdb := redistest.Standalone(t)
	p := redistest.Prefix(t, rdb)
	rec := &events{}
	// Node a has a client of its own, so it can be cut off alone.
	ownA := goredis.NewClient(&goredis.Options{Addr: rdb.Options().Addr, MaxRetries: -1})
	t.Cleanup(func() { _ = ownA.Close() })
	a := startTracker(t, redistest.Store(t, ownA, redisstore.Config{Prefix: p}), "a", fast, rec)
	b := startTracker(t, redistest.Store(t, rdb, redisstore.Config{Prefix: p}), "b", fast, rec)
	solo := connect(t, a, "solo")
	both := connect(t, a, "both")
	bothB := connect(t, b, "both")
	beater(t, 300*time.Millisecond, solo, both, bothB)
	waitUntil(t, time.Second, "online", func() bool { return len(rec.of("solo")) == 1 && len(rec.of("both")) == 1 })

	_ = ownA.Close() // node a is gone: no beats, no ends, no sweeps
	died := time.Now()
	connect(t, b, "quiet") // on the live node; never beats
	waitUntil(t, fast.ttl+fast.sweep*4, "solo offline", func() bool { return len(rec.of("solo")) == 2 })
	took := time.Since(died)
	waitUntil(t, fast.ttl+fast.sweep*4, "quiet offline", func() bool { return len(rec.of("quiet")) == 2 })
	time.Sleep(fast.ttl / 2)
	if got := rec.of("solo"); !slices.Equal(got, []string{"online/connect", "offline/node_lost"}) {
		t.Errorf("solo: %v", got)
	}
	if got := rec.of("both"); !slices.Equal(got, []string{"online/connect"}) {
		t.Errorf("both: %v", got)
	}
	if got := rec.of("quiet"); !slices.Equal(got, []string{"online/connect", "offline/expired"}) {
		t.Errorf("quiet: %v", got)
	}
	t.Logf("offline on the survivor %v after the node died (TTL %v)", took, fast.ttl)

	// a restarts with the same node ID: nothing it held survives.
	a2 := startTracker(t, redistest.Store(t, rdb, redisstore.Config{Prefix: p}), "a", fast, rec)
	time.Sleep(fast.grace + 3*fast.sweep)
	ps, err := a2.Lookup(context.Background(), []string{"solo", "both"})
	if err != nil {
		t.Fatal(err)
	}
	if ps[0].Online || !ps[1].Online || ps[1].Sessions != 1 {
		t.Errorf("after restart: %+v; want solo offline, both online once", ps)
	}
}

// TestExactlyOnceFourNodes churns sessions on four nodes, each with a Store
// value (and so a journal consumer) of its own, and checks that per client
// all nodes' hooks together see strictly alternating transitions with
// consecutive Seq, and that every transition was acknowledged.
func TestExactlyOnceFourNodes(t *testing.T) {
	for _, tc := range redistest.Servers {
		t.Run(tc.Name, func(t *testing.T) {
			rdb := tc.Client(t)
			p := redistest.Prefix(t, rdb)
			rec := &events{}
			tm := timing{ttl: time.Second, grace: 200 * time.Millisecond, sweep: 100 * time.Millisecond}
			var trs []*presence.Tracker
			for i := range 4 {
				st := redistest.Store(t, rdb, redisstore.Config{Prefix: p, Buckets: 8})
				trs = append(trs, startTracker(t, st, fmt.Sprintf("node-%d", i), tm, rec))
			}
			ctx := context.Background()
			var wg sync.WaitGroup
			for g := range 32 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					r := rand.New(rand.NewPCG(uint64(g), 3))
					for range 15 {
						tr := trs[r.IntN(len(trs))]
						id := fmt.Sprintf("c%d", r.IntN(24))
						s, err := tr.Connect(ctx, id, presence.SessionOptions{})
						if err != nil {
							t.Error(err)
							return
						}
						time.Sleep(time.Duration(r.IntN(int(tm.grace))))
						switch r.IntN(6) {
						case 0:
							_ = tr.Kick(ctx, id)
						case 1:
							_ = s.End(ctx, presence.ReasonExpired)
						default:
							_ = s.End(ctx, presence.ReasonClosed)
						}
					}
				}()
			}
			wg.Wait()
			waitUntil(t, tm.ttl+tm.grace+10*tm.sweep, "all offline", func() bool {
				n, err := trs[0].Count(ctx)
				return err == nil && n == 0
			})
			time.Sleep(4 * tm.sweep) // hooks run, acks flushed
			rec.mu.Lock()
			byClient := map[string][]presence.Event{}
			for _, ev := range rec.all {
				byClient[ev.ClientID] = append(byClient[ev.ClientID], ev)
			}
			rec.mu.Unlock()
			total := 0
			for id, evs := range byClient {
				slices.SortFunc(evs, func(a, b presence.Event) int { return int(a.Seq - b.Seq) })
				for i, ev := range evs {
					want := presence.Online
					if i%2 == 1 {
						want = presence.Offline
					}
					if ev.Transition != want || ev.Seq != evs[0].Seq+uint64(i) {
						t.Fatalf("%s: event %d = %v seq %d; want %v seq %d", id, i, ev.Transition, ev.Seq, want, evs[0].Seq+uint64(i))
					}
				}
				total += len(evs)
			}
			if total == 0 {
				t.Fatal("no events")
			}
			for b := range 8 {
				key := fmt.Sprintf("{%s:b%d}:j", p, b)
				waitUntil(t, 2*time.Second, "no pending journal entries in "+key, func() bool {
					n, err := rdb.XPending(ctx, key, "hooks").Result()
					return err == nil && n.Count == 0
				})
			}
			t.Logf("%d transitions, each delivered once and acknowledged", total)
		})
	}
}

// TestOldNodeLeasesForgotten: a bucket's node leases hold the nodes seen
// lately. A lease that ran out more than a day ago goes when a node new to
// the bucket gets one, by its first sweep or its first session there; a
// node that renews its lease forgets nothing.
func TestOldNodeLeasesForgotten(t *testing.T) {
	rdb := redistest.Standalone(t)
	p := redistest.Prefix(t, rdb)
	st := redistest.Store(t, rdb, redisstore.Config{Prefix: p, Buckets: 1})
	ctx := context.Background()
	key := "{" + p + ":b0}:l"
	now, err := rdb.Time(ctx).Result()
	if err != nil {
		t.Fatal(err)
	}
	ancient := goredis.Z{Score: float64(now.Add(-25 * time.Hour).UnixMilli()), Member: "ancient"}
	recent := goredis.Z{Score: float64(now.Add(-time.Hour).UnixMilli()), Member: "recent"}
	sweep := func(node string) {
		t.Helper()
		if _, err := st.SweepNode(ctx, presence.NodeLease{Node: node, TTL: time.Minute}); err != nil {
			t.Fatal(err)
		}
	}
	nodes := func() []string {
		t.Helper()
		m, err := rdb.ZRange(ctx, key, 0, -1).Result()
		if err != nil {
			t.Fatal(err)
		}
		slices.Sort(m)
		return m
	}
	sweep("known")
	rdb.ZAdd(ctx, key, ancient, recent)
	sweep("known")
	if got, want := nodes(), []string{"ancient", "known", "recent"}; !slices.Equal(got, want) {
		t.Errorf("after a renewal: leases of %v, want %v", got, want)
	}
	sweep("new")
	if got, want := nodes(), []string{"known", "new", "recent"}; !slices.Equal(got, want) {
		t.Errorf("after a new node's sweep: leases of %v, want %v", got, want)
	}
	rdb.ZAdd(ctx, key, ancient)
	if _, err := st.Add(ctx, presence.Lease{ClientID: "c", SessionID: "s", Node: "adder", TTL: time.Minute}); err != nil {
		t.Fatal(err)
	}
	if got, want := nodes(), []string{"adder", "known", "new", "recent"}; !slices.Equal(got, want) {
		t.Errorf("after a new node's first session: leases of %v, want %v", got, want)
	}
}

// TestNodeLostAcrossRounds: a Sweep that takes several script calls
// (rounds) to remove what is due judges all of it alike. A sweeper whose
// own lease had run out (it was cut off, or Redis stalled) reports every
// session of a silent node expired, in its later rounds too, though its
// first round renews nothing until the bucket is swept; a live sweeper
// reports them all node_lost.
func TestNodeLostAcrossRounds(t *testing.T) {
	for _, tc := range []struct {
		name  string
		lease time.Duration // the sweeper's, from its sweep before
		want  presence.Reason
	}{
		{"sweeper lease ran out", time.Millisecond, presence.ReasonExpired},
		{"sweeper live", time.Minute, presence.ReasonNodeLost},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rdb := redistest.Standalone(t)
			st := redistest.Store(t, rdb, redisstore.Config{Buckets: 1})
			ctx := context.Background()
			sweeper := presence.NodeLease{Node: "sweeper", TTL: tc.lease}
			for _, l := range []presence.NodeLease{{Node: "dead", TTL: time.Millisecond}, sweeper} {
				if _, err := st.SweepNode(ctx, l); err != nil {
					t.Fatal(err)
				}
			}
			const n, ttl = 600, 500 * time.Millisecond // more than two rounds of 250
			for i := range n {
				l := presence.Lease{ClientID: "c" + itoa(i), SessionID: "s", Node: "dead", TTL: ttl}
				if _, err := st.Add(ctx, l); err != nil {
					t.Fatal(err)
				}
			}
			added, err := rdb.Time(ctx).Result()
			if err != nil {
				t.Fatal(err)
			}
			waitUntil(t, 2*ttl, "every lease ran out on Redis's clock", func() bool {
				now, err := rdb.Time(ctx).Result()
				return err == nil && now.Sub(added) > ttl
			})
			sweeper.TTL = time.Minute
			evs, err := st.SweepNode(ctx, sweeper)
			if err != nil {
				t.Fatal(err)
			}
			reasons := map[presence.Reason]int{}
			for _, ev := range evs {
				reasons[ev.Reason]++
			}
			if len(evs) != n || reasons[tc.want] != n {
				t.Errorf("one sweep: %d offline events, by reason %v; want %d, all %s", len(evs), reasons, n, tc.want)
			}
		})
	}
}

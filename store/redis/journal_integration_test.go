//go:build integration

package redis_test

import (
	"context"
	"slices"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/vigilhq/vigil/internal/redistest"
	"github.com/vigilhq/vigil/presence"
	redisstore "github.com/vigilhq/vigil/store/redis"
)

// TestReclaimFromDeadNode: a node claims a transition (the Store decided
// it and returned it) and dies before its hooks run. Another node delivers
// it, with the same ID.
func TestReclaimFromDeadNode(t *testing.T) {
	rdb := redistest.Standalone(t)
	p := redistest.Prefix(t, rdb)
	cfg := redisstore.Config{Prefix: p, ReclaimAfter: time.Second}
	dead := redistest.Store(t, rdb, cfg)
	ctx := context.Background()
	evs, err := dead.Add(ctx, presence.Lease{ClientID: "zed", SessionID: "s1", Node: "dead", TTL: time.Hour})
	if err != nil || len(evs) != 1 {
		t.Fatalf("Add = %v, %v; want one online", evs, err)
	}
	// "dead" never runs its hooks nor acknowledges.
	rec := &events{}
	start := time.Now()
	live := startTracker(t, redistest.Store(t, rdb, cfg), "live", fast, rec)
	_ = live
	waitUntil(t, cfg.ReclaimAfter+10*fast.sweep, "the survivor delivers the online", func() bool {
		return len(rec.of("zed")) == 1
	})
	rec.mu.Lock()
	got := rec.all[0]
	rec.mu.Unlock()
	if got.ID() != evs[0].ID() || got.Transition != presence.Online || got.Node != "live" {
		t.Errorf("reclaimed %+v; want ID %s online, run by node live", got, evs[0].ID())
	}
	t.Logf("delivered by the survivor %v after it started (ReclaimAfter %v)", time.Since(start), cfg.ReclaimAfter)
	waitUntil(t, time.Second, "acknowledged", func() bool {
		n, err := rdb.XPending(ctx, "{"+p+":b"+itoa(bucketOfTest("zed", redisstore.DefaultBuckets))+"}:j", "hooks").Result()
		return err == nil && n.Count == 0
	})
}

// TestWatchSeesEveryNode: Watch hooks on one node see the transitions that
// other nodes observed, Away and Back included, in order per client.
func TestWatchSeesEveryNode(t *testing.T) {
	rdb := redistest.Cluster(t)
	p := redistest.Prefix(t, rdb)
	a := startTracker(t, redistest.Store(t, rdb, redisstore.Config{Prefix: p}), "a", fast, nil)
	b := startTracker(t, redistest.Store(t, rdb, redisstore.Config{Prefix: p}), "b", fast, nil)
	watched := &events{}
	b.Watch(watched.hook)
	ctx := context.Background()
	s := connect(t, a, "wanda")
	waitUntil(t, time.Second, "b watches wanda online", func() bool { return len(watched.of("wanda")) == 1 })
	for _, act := range []presence.Activity{presence.ActivityAway, presence.ActivityActive} {
		if err := s.SetActivity(ctx, act, 0); err != nil {
			t.Fatal(err)
		}
	}
	waitUntil(t, time.Second, "b watches wanda away and back", func() bool { return len(watched.of("wanda")) == 3 })
	if err := s.End(ctx, presence.ReasonClosed); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, fast.grace+2*time.Second, "b watches wanda offline", func() bool { return len(watched.of("wanda")) == 4 })
	if got := watched.of("wanda"); !slices.Equal(got, []string{"online/connect", "away/", "back/", "offline/closed"}) {
		t.Errorf("watched %v", got)
	}
	if s := watched.seqs("wanda"); !slices.Equal(s, []uint64{s[0], s[0] + 1, s[0] + 2, s[0] + 3}) {
		t.Errorf("seqs %v", s)
	}
}

// TestReadTail: on a single server Read leaves a blocked XREAD gathering
// what comes next; every transition still comes once, in order, by the
// next Reads; Close stops it, and later Reads read by themselves.
func TestReadTail(t *testing.T) {
	for _, srv := range redistest.Servers {
		t.Run(srv.Name, func(t *testing.T) {
			rdb := srv.Client(t)
			st := redistest.Store(t, rdb, redisstore.Config{})
			ctx := context.Background()
			_, cursor, err := st.Read(ctx, "")
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			read := func() {
				t.Helper()
				evs, next, err := st.Read(ctx, cursor)
				if err != nil {
					t.Fatal(err)
				}
				cursor = next
				for _, ev := range evs {
					got = append(got, ev.ClientID+"/"+ev.Transition.String())
				}
			}
			var want []string
			for round := range 3 {
				read()
				id := "tail-" + itoa(round)
				if _, err := st.Add(ctx, presence.Lease{ClientID: id, SessionID: "s", Node: "n", TTL: time.Minute}); err != nil {
					t.Fatal(err)
				}
				if _, err := st.End(ctx, presence.Ending{ClientID: id, SessionID: "s"}); err != nil {
					t.Fatal(err)
				}
				want = append(want, id+"/online", id+"/offline")
				waitUntil(t, 2*time.Second, "read "+id, func() bool { read(); return len(got) >= len(want) })
			}
			start := time.Now()
			if err := st.Close(); err != nil {
				t.Fatal(err)
			}
			// On a single server Close unblocks the tail's XREAD (it would
			// wait 10s).
			if d := time.Since(start); d > 3*time.Second {
				t.Errorf("Close took %v", d)
			}
			if _, err := st.Add(ctx, presence.Lease{ClientID: "after", SessionID: "s", Node: "n", TTL: time.Minute}); err != nil {
				t.Fatal(err)
			}
			want = append(want, "after/online")
			waitUntil(t, 2*time.Second, "read after Close", func() bool { read(); return len(got) >= len(want) })
			if !slices.Equal(got, want) {
				t.Errorf("read %v\nwant %v", got, want)
			}
		})
	}
}

// TestReadTailIdle (issue 17 §5): on a single server an idle tail costs
// Redis one XREAD per 10s, and Close unblocks it at once; where the ACL
// denies the client CLIENT UNBLOCK, or its pool is too small to spare a
// connection, the tail's XREAD times out every 2s, which Close then waits
// for.
func TestReadTailIdle(t *testing.T) {
	for _, tc := range []struct {
		name  string
		user  []any // ACL SETUSER rules of the Store's user; nil: default
		pool  int   // the client's PoolSize; 0: go-redis's default
		reads int64 // most XREADs in 3s: one Read's, then the tail's
		close time.Duration
	}{
		{"unblock", nil, 0, 2, time.Second},
		{"acl-denied", []any{"on", ">pw", "~*", "&*", "+@all", "-client|unblock"}, 0, 3, 3 * time.Second},
		{"small-pool", nil, 2, 3, 3 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := redistest.StartServer(t)
			admin := goredis.NewClient(&goredis.Options{Addr: srv.Addr()})
			t.Cleanup(func() { _ = admin.Close() })
			ctx := context.Background()
			opts := &goredis.Options{Addr: srv.Addr(), PoolSize: tc.pool}
			if tc.user != nil {
				if err := admin.Do(ctx, append([]any{"ACL", "SETUSER", "vt"}, tc.user...)...).Err(); err != nil {
					t.Fatal(err)
				}
				opts.Username, opts.Password = "vt", "pw"
			}
			rdb := goredis.NewClient(opts)
			t.Cleanup(func() { _ = rdb.Close() })
			st, err := redisstore.New(rdb, redisstore.Config{Prefix: "t"})
			if err != nil {
				t.Fatal(err)
			}
			_, cursor, err := st.Read(ctx, "")
			if err != nil {
				t.Fatal(err)
			}
			before := commandCalls(t, admin)["xread"]
			for range 12 { // a Tracker's Reads: every 250ms
				if _, cursor, err = st.Read(ctx, cursor); err != nil {
					t.Fatal(err)
				}
				time.Sleep(250 * time.Millisecond)
			}
			n := commandCalls(t, admin)["xread"] - before
			if n > tc.reads {
				t.Errorf("%d XREADs in 3s of idle Reads, want at most %d", n, tc.reads)
			}
			start := time.Now()
			if err := st.Close(); err != nil {
				t.Fatal(err)
			}
			d := time.Since(start)
			if d > tc.close {
				t.Errorf("Close took %v, want at most %v", d, tc.close)
			}
			t.Logf("%d XREADs in 3s, Close took %v", n, d)
		})
	}
}

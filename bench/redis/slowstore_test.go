//go:build integration && unix

package redis_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/vigilhq/vigil/internal/redistest"
	"github.com/vigilhq/vigil/presence"
	redisstore "github.com/vigilhq/vigil/store/redis"
)

// TestFigureSlowStore (issue 16 §3): what a slow store does to a node's
// Connect and End, at the Tracker's defaults on a real redis-server.
//
//   - pause: redis-server stopped (SIGSTOP) for 2s; a Connect and an End
//     issued 100ms into the pause. They wait for Redis itself; the figure
//     says whether they wait longer than that.
//   - sweep: 100,000 expired sessions of another node, which the Tracker's
//     sweep reaps in many rounds; Connects and Ends of other clients issued
//     meanwhile, every 20ms. The figure: their latency against the same
//     calls with nothing to sweep.
func TestFigureSlowStore(t *testing.T) {
	t.Run("pause", func(t *testing.T) {
		srv := redistest.StartServer(t)
		rdb := goredis.NewClient(&goredis.Options{Addr: srv.Addr()})
		t.Cleanup(func() { _ = rdb.Close() })
		st := redistest.Store(t, rdb, redisstore.Config{})
		tr := newSlowTracker(t, st)
		old, err := tr.Connect(context.Background(), "old", presence.SessionOptions{})
		if err != nil {
			t.Fatal(err)
		}
		srv.Signal(syscall.SIGSTOP)
		paused := time.Now()
		time.Sleep(100 * time.Millisecond)
		var wg sync.WaitGroup
		var connect, end time.Duration
		wg.Go(func() {
			start := time.Now()
			_, _ = tr.Connect(context.Background(), "new", presence.SessionOptions{})
			connect = time.Since(start)
		})
		wg.Go(func() {
			start := time.Now()
			_ = old.End(context.Background(), presence.ReasonClosed)
			end = time.Since(start)
		})
		time.Sleep(2*time.Second - time.Since(paused))
		srv.Signal(syscall.SIGCONT)
		wg.Wait()
		t.Logf("Redis paused 2s; issued 100ms in: Connect took %v, End took %v (Redis itself answers 1.9s in)",
			connect.Round(time.Millisecond), end.Round(time.Millisecond))
	})
	t.Run("sweep", func(t *testing.T) {
		rdb := redistest.Standalone(t)
		st := redistest.Store(t, rdb, redisstore.Config{})
		tr := newSlowTracker(t, st)
		base := calls(t, tr, "base", 50)
		const n = 100_000
		addSessions(t, st, n, time.Second)  // node "bench", not the Tracker's
		time.Sleep(1100 * time.Millisecond) // they expire; the Tracker's sweep reaps them
		during := calls(t, tr, "during", 100)
		t.Logf("Connect+End of another client every 20ms: p50 %v, p90 %v, max %v with nothing to sweep; p50 %v, p90 %v, max %v while %d expired sessions are swept",
			pct(base, 50), pct(base, 90), pct(base, 100), pct(during, 50), pct(during, 90), pct(during, 100), n)
	})
}

func newSlowTracker(t *testing.T, st presence.Store) *presence.Tracker {
	t.Helper()
	tr, err := presence.New(context.Background(), st, presence.Config{Node: "slow"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tr.Close(context.Background()) })
	return tr
}

// calls makes n Connect+End pairs, one every 20ms, and returns their
// durations.
func calls(t *testing.T, tr *presence.Tracker, prefix string, n int) []time.Duration {
	t.Helper()
	var out []time.Duration
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for i := range n {
		<-tick.C
		start := time.Now()
		s, err := tr.Connect(context.Background(), fmt.Sprintf("%s%d", prefix, i), presence.SessionOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if err := s.End(context.Background(), presence.ReasonClosed); err != nil {
			t.Fatal(err)
		}
		out = append(out, time.Since(start))
	}
	return out
}

func pct(ds []time.Duration, p int) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[min(len(s)-1, len(s)*p/100)].Round(100 * time.Microsecond)
}

//go:build integration && unix

package redis_test

import (
	"context"
	"fmt"
	"sort"
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

// TestFigureClientMemory (issue 17 §4): Redis memory per online client,
// 100,000 clients ("u0"...) of one session each connected through a
// Tracker (defaults: its session IDs, the default journal length) to an
// empty redis-server of the test's own. Figures: the growth of INFO
// memory used_memory per client, once every Online is acknowledged, and
// MEMORY USAGE (every element counted) of each kind of key of the
// buckets, summed over the buckets, per client.
//
// timing: a TTL of ten minutes only so that no session expires while the
// clients connect (the figure is of what is stored, not of its timing).
func TestFigureClientMemory(t *testing.T) {
	const n = 100_000
	ctx := context.Background()
	srv := redistest.StartServer(t)
	rdb := goredis.NewClient(&goredis.Options{Addr: srv.Addr()})
	t.Cleanup(func() { _ = rdb.Close() })
	st := redistest.Store(t, rdb, redisstore.Config{})
	used0 := usedMemory(t, rdb)
	tr, err := presence.New(ctx, st, presence.Config{Node: "bench", TTL: 10 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tr.Close(context.Background()) })
	var wg sync.WaitGroup
	for w := range 16 {
		wg.Go(func() {
			for i := w; i < n; i += 16 {
				if _, err := tr.Connect(ctx, "u"+strconv.Itoa(i), presence.SessionOptions{}); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	cfg := st.Config()
	waitAcked(t, rdb, cfg)
	used := usedMemory(t, rdb) - used0
	t.Logf("%d online clients of one session: used_memory grew %d bytes, %.0f bytes per client", n, used, float64(used)/n)
	// MEMORY USAGE per kind of key (its suffix), summed over the buckets.
	bySuffix := map[string]int64{}
	var total int64
	for b := range cfg.Buckets {
		tag := "{" + cfg.Prefix + ":b" + strconv.Itoa(b) + "}"
		keys, err := rdb.Keys(ctx, tag+"*").Result()
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range keys {
			v, err := rdb.MemoryUsage(ctx, k, 0).Result()
			if err != nil && err != goredis.Nil {
				t.Fatal(err)
			}
			bySuffix[strings.TrimPrefix(k, tag)] += v
			total += v
		}
	}
	sufs := make([]string, 0, len(bySuffix))
	for s := range bySuffix {
		sufs = append(sufs, s)
	}
	sort.Strings(sufs)
	var parts []string
	for _, s := range sufs {
		parts = append(parts, fmt.Sprintf("%s %.0f", s, float64(bySuffix[s])/n))
	}
	t.Logf("MEMORY USAGE per client: %.0f bytes (%s)", float64(total)/n, strings.Join(parts, ", "))
	ent, err := rdb.XLen(ctx, "{"+cfg.Prefix+":b0}:j").Result()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("journal: %d entries in bucket 0 (Config.JournalLen %d), %.0f bytes each by MEMORY USAGE",
		ent, cfg.JournalLen, float64(bySuffix[":j"])/float64(max(1, ent*int64(cfg.Buckets))))
}

// waitAcked waits until the journals of the namespace of cfg have no
// transition pending.
func waitAcked(t testing.TB, rdb goredis.UniversalClient, cfg redisstore.Config) {
	t.Helper()
	for deadline := time.Now().Add(3 * time.Minute); ; {
		pending := int64(0)
		for b := range cfg.Buckets {
			p, err := rdb.XPending(context.Background(), "{"+cfg.Prefix+":b"+strconv.Itoa(b)+"}:j", "hooks").Result()
			if err != nil {
				t.Fatal(err)
			}
			pending += p.Count
		}
		if pending == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d transitions still pending", pending)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// usedMemory reads used_memory from INFO memory.
func usedMemory(t testing.TB, rdb *goredis.Client) int64 {
	t.Helper()
	info, err := rdb.Info(context.Background(), "memory").Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "used_memory:"); ok {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatal("no used_memory in INFO memory")
	return 0
}

//go:build integration && unix

package redis_test

import (
	"context"
	"errors"
	"flag"
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
// Then a second session for 20,000 of the clients, and then those clients
// offline (no grace).
//
// Skipped unless -run names tests: it is a figure, not a check, and takes
// a minute or more.
//
// timing: a TTL of ten minutes only so that no session expires while the
// clients connect (the figure is of what is stored, not of its timing).
func TestFigureClientMemory(t *testing.T) {
	if flag.Lookup("test.run").Value.String() == "" {
		t.Skip("100,000 clients, a minute or more: run it by name (-run 'Figure' or -run TestFigureClientMemory)")
	}
	const n = 100_000
	ctx := context.Background()
	srv := redistest.StartServer(t)
	rdb := goredis.NewClient(&goredis.Options{Addr: srv.Addr()})
	t.Cleanup(func() { _ = rdb.Close() })
	// The server is the test's own, killed at the end: no keys to delete.
	st := redistest.Store(t, rdb, redisstore.Config{Prefix: "mem"})
	used0 := usedMemory(t, rdb)
	// No grace: the sessions ended below go at once.
	tr, err := presence.New(ctx, st, presence.Config{Node: "bench", TTL: 10 * time.Minute, Grace: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tr.Close(context.Background()) })
	first := make([]*presence.Session, n)
	inParallel(t, n, func(i int) (err error) {
		first[i], err = tr.Connect(ctx, "u"+strconv.Itoa(i), presence.SessionOptions{})
		return err
	})
	cfg := st.Config()
	waitAcked(t, rdb, cfg)
	used := usedMemory(t, rdb) - used0
	t.Logf("%d online clients of one session: used_memory grew %d bytes, %.0f bytes per client", n, used, float64(used)/n)
	mu := memoryUsage(t, rdb, cfg)
	t.Logf("MEMORY USAGE per client: %s", mu.per(nil, n))
	ent, err := rdb.XLen(ctx, "{"+cfg.Prefix+":b0}:j").Result()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("journal: %d entries in bucket 0 (Config.JournalLen %d), %.0f bytes each by MEMORY USAGE",
		ent, cfg.JournalLen, float64(mu[":j"])/float64(max(1, ent*int64(cfg.Buckets))))

	// A second session for the first m clients: no transition, so no
	// journal entry.
	const m = 20_000
	second := make([]*presence.Session, m)
	inParallel(t, m, func(i int) (err error) {
		second[i], err = tr.Connect(ctx, "u"+strconv.Itoa(i), presence.SessionOptions{})
		return err
	})
	used1 := usedMemory(t, rdb) - used0
	mu1 := memoryUsage(t, rdb, cfg)
	t.Logf("a second session for %d clients: used_memory %.0f bytes per session; MEMORY USAGE %s",
		m, float64(used1-used)/m, mu1.per(mu, m))

	// Then both sessions of those clients end, without grace: m clients
	// go offline (an Offline each, in the journal), and their records stay
	// (Config.Retention).
	inParallel(t, m, func(i int) error {
		return errors.Join(second[i].End(ctx, presence.ReasonClosed), first[i].End(ctx, presence.ReasonClosed))
	})
	waitAcked(t, rdb, cfg)
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(100 * time.Millisecond) {
		c, err := st.Count(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if c == n-m {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d clients online, want %d", c, n-m)
		}
	}
	used2 := usedMemory(t, rdb) - used0
	t.Logf("%d of them offline (and an Offline each in the journal): used_memory changed %.0f bytes per client "+
		"from online with one session; MEMORY USAGE %s", m, float64(used2-used)/m, memoryUsage(t, rdb, cfg).per(mu, m))
}

// keyUsage is MEMORY USAGE (every element counted) by kind of key (its
// suffix), summed over the buckets.
type keyUsage map[string]int64

// memoryUsage reads the MEMORY USAGE of every key of the namespace of
// cfg, on a single server.
func memoryUsage(t testing.TB, rdb *goredis.Client, cfg redisstore.Config) keyUsage {
	t.Helper()
	ctx := context.Background()
	u := keyUsage{}
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
			// A kind of key is its suffix up to a second ':' (the online
			// sets :on:0, :on:1... count as :on).
			suf := strings.TrimPrefix(k, tag)
			if i := strings.Index(suf[1:], ":"); i >= 0 {
				suf = suf[:i+1]
			}
			u[suf] += v
		}
	}
	return u
}

// per formats the growth of u since before (nil: from nothing) divided
// by n: the total, then by kind of key.
func (u keyUsage) per(before keyUsage, n int) string {
	sufs := make([]string, 0, len(u))
	var total int64
	for s, v := range u {
		sufs = append(sufs, s)
		total += v - before[s]
	}
	sort.Strings(sufs)
	var parts []string
	for _, s := range sufs {
		if d := u[s] - before[s]; d != 0 {
			parts = append(parts, fmt.Sprintf("%s %.0f", s, float64(d)/float64(n)))
		}
	}
	return fmt.Sprintf("%.0f bytes (%s)", float64(total)/float64(n), strings.Join(parts, ", "))
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
// inParallel runs fn(i) for every i below n, on 16 goroutines, and fails
// the test at the first error.
func inParallel(t *testing.T, n int, fn func(i int) error) {
	t.Helper()
	var wg sync.WaitGroup
	for w := range 16 {
		wg.Go(func() {
			for i := w; i < n; i += 16 {
				if err := fn(i); err != nil {
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
}

func usedMemory(t testing.TB, rdb *goredis.Client) int64 {
	t.Helper()
	n, err := redistest.UsedMemory(context.Background(), rdb)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

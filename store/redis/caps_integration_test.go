//go:build integration

package redis_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/vigilhq/vigil/internal/redistest"
	"github.com/vigilhq/vigil/presence"
	redisstore "github.com/vigilhq/vigil/store/redis"
)

func hour(client, session string) presence.Lease {
	return presence.Lease{ClientID: client, SessionID: session, Node: "n1", TTL: time.Hour}
}

// isCap reports whether err is a refusal by the Store's caps: ErrLimit,
// not the per-client ErrTooManySessions.
func isCap(err error) bool {
	return errors.Is(err, presence.ErrLimit) && !errors.Is(err, presence.ErrTooManySessions)
}

// TestCapsPerBucket: nodes adding clients and sessions at once, each
// through a Store of its own, fill every bucket to exactly its share of
// MaxClients and MaxSessions, never past it, on a single server and on a
// Cluster; what is refused leaves nothing behind.
func TestCapsPerBucket(t *testing.T) {
	for _, srv := range redistest.Servers {
		t.Run(srv.Name, func(t *testing.T) {
			rdb := srv.Client(t)
			const buckets, maxClients, maxSessions = 4, 8, 12
			cfg := redisstore.Config{Prefix: redistest.Prefix(t, rdb), Buckets: buckets, MaxClients: maxClients, MaxSessions: maxSessions}
			nodes := make([]*redisstore.Store, 4)
			for i := range nodes {
				nodes[i] = redistest.Store(t, rdb, cfg)
			}
			ctx := context.Background()
			var mu sync.Mutex
			accepted := make(map[int][]string) // bucket -> clients
			var refused []string
			var wg sync.WaitGroup
			for w := range 16 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := w; i < 200; i += 16 {
						id := "c" + itoa(i)
						_, err := nodes[w%len(nodes)].Add(ctx, hour(id, "s"))
						mu.Lock()
						switch {
						case err == nil:
							b := bucketOfTest(id, buckets)
							accepted[b] = append(accepted[b], id)
						case isCap(err):
							refused = append(refused, id)
						default:
							t.Errorf("Add(%s) = %v, want nil or ErrLimit", id, err)
						}
						mu.Unlock()
					}
				}()
			}
			wg.Wait()
			for b := range buckets {
				if len(accepted[b]) != maxClients/buckets {
					t.Errorf("bucket %d took %d clients, want its share %d", b, len(accepted[b]), maxClients/buckets)
				}
			}
			if n, err := nodes[0].Count(ctx); err != nil || n != maxClients {
				t.Fatalf("Count = %d, %v; want %d", n, err, maxClients)
			}
			ps, err := nodes[0].Lookup(ctx, refused)
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range ps {
				if p.Online || !p.LastSeen.IsZero() {
					t.Fatalf("refused client %+v is in the Store", p)
				}
			}

			// Sessions: 2 per bucket now, share 3. The first client of
			// each bucket gets a second session; the next is refused.
			for b := range buckets {
				first, second := accepted[b][0], accepted[b][1]
				if _, err := nodes[1].Add(ctx, hour(first, "t")); err != nil {
					t.Fatalf("second session of %s: %v", first, err)
				}
				if _, err := nodes[2].Add(ctx, hour(second, "t")); !isCap(err) {
					t.Fatalf("session past bucket %d's share: %v, want ErrLimit", b, err)
				}
				// Refreshing and reviving what the Store holds: never refused.
				if _, err := nodes[3].Add(ctx, hour(second, "s")); err != nil {
					t.Fatalf("refresh of %s at the caps: %v", second, err)
				}
				if _, err := nodes[3].End(ctx, presence.Ending{ClientID: second, SessionID: "s", Grace: time.Hour}); err != nil {
					t.Fatal(err)
				}
				if _, err := nodes[3].Add(ctx, hour(second, "s")); err != nil {
					t.Fatalf("revival of %s at the caps: %v", second, err)
				}
			}
		})
	}
}

// TestCapsForgetOldestOffline: a new client takes the place of the
// bucket's client offline the longest; when a lower cap leaves a bucket
// over its share, Add refuses new clients, writing nothing, until Sweep has
// forgotten the excess, longest offline first.
func TestCapsForgetOldestOffline(t *testing.T) {
	rdb := redistest.Standalone(t)
	p := redistest.Prefix(t, rdb)
	ctx := context.Background()
	wide := redistest.Store(t, rdb, redisstore.Config{Prefix: p, Buckets: 1, MaxClients: 10})
	ids := make([]string, 10)
	for i := range ids {
		ids[i] = "o" + itoa(i)
		if _, err := wide.Add(ctx, hour(ids[i], "s")); err != nil {
			t.Fatal(err)
		}
	}
	for _, id := range ids {
		if _, err := wide.End(ctx, presence.Ending{ClientID: id}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(2 * time.Millisecond) // distinct offline times (ms)
	}
	time.Sleep(time.Second) // records a second old: see "Sequence numbers"
	remembered := func(want ...bool) {
		t.Helper()
		ps, err := wide.Lookup(ctx, ids)
		if err != nil {
			t.Fatal(err)
		}
		for i, p := range ps {
			if got := !p.LastSeen.IsZero(); got != want[i] {
				t.Fatalf("%s remembered: %v, want %v", ids[i], got, want[i])
			}
		}
	}

	narrow := redistest.Store(t, rdb, redisstore.Config{Prefix: p, Buckets: 1, MaxClients: 4})
	if _, err := narrow.Add(ctx, hour("new", "s")); !isCap(err) {
		t.Fatalf("Add over a share (10 of 4) = %v, want ErrLimit", err)
	}
	remembered(true, true, true, true, true, true, true, true, true, true)
	if _, err := narrow.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	remembered(false, false, false, false, false, false, true, true, true, true)
	if _, err := narrow.Add(ctx, hour("new", "s")); err != nil {
		t.Fatalf("Add at the share with offline clients: %v", err)
	}
	remembered(false, false, false, false, false, false, false, true, true, true)
}

// TestCapsSameSecond: the cap never forgets a client record made in the
// current second: the client, back within it, would repeat its Seqs. Once
// the second is over it does, and the client comes back with higher Seqs.
func TestCapsSameSecond(t *testing.T) {
	rdb := redistest.Standalone(t)
	ctx := context.Background()
	st := redistest.Store(t, rdb, redisstore.Config{Buckets: 1, MaxClients: 1})
	// Start early in a second of Redis's clock: the steps below take
	// milliseconds.
	for {
		now, err := rdb.Time(ctx).Result()
		if err != nil {
			t.Fatal(err)
		}
		if now.Nanosecond() < 300_000_000 {
			break
		}
		time.Sleep(time.Second - time.Duration(now.Nanosecond()))
	}
	if _, err := st.Add(ctx, hour("x", "s")); err != nil {
		t.Fatal(err)
	}
	off, err := st.End(ctx, presence.Ending{ClientID: "x"})
	if err != nil || len(off) != 1 {
		t.Fatalf("End = %+v, %v", off, err)
	}
	if _, err := st.Add(ctx, hour("y", "s")); !isCap(err) {
		t.Fatalf("Add forgetting a record of this second = %v, want ErrLimit", err)
	}
	time.Sleep(time.Second)
	if _, err := st.Add(ctx, hour("y", "s")); err != nil {
		t.Fatalf("Add a second later: %v", err)
	}
	if _, err := st.End(ctx, presence.Ending{ClientID: "y"}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second)
	on, err := st.Add(ctx, hour("x", "s"))
	if err != nil || len(on) != 1 {
		t.Fatalf("x back = %+v, %v", on, err)
	}
	if on[0].Seq <= off[0].Seq {
		t.Fatalf("x came back with Seq %d, not above its Offline's %d", on[0].Seq, off[0].Seq)
	}
}

// TestCapsAfterDataLoss: sessions nodes re-assert after Redis lost its data
// are never refused, even past the caps; the bucket then takes no new
// client until what is over its share is gone, and nothing keeps count
// apart from the data, so nothing is left wrong.
func TestCapsAfterDataLoss(t *testing.T) {
	rdb := redistest.Standalone(t)
	p := redistest.Prefix(t, rdb)
	ctx := context.Background()
	cfg := redisstore.Config{Prefix: p, Buckets: 1, MaxClients: 2, MaxSessions: 2}
	a, b := redistest.Store(t, rdb, cfg), redistest.Store(t, rdb, cfg)
	held := []presence.Lease{hour("x", "s"), hour("y", "s")}
	for _, l := range held {
		if _, err := a.Add(ctx, l); err != nil {
			t.Fatal(err)
		}
	}
	lose(t, rdb, p)
	for _, id := range []string{"z1", "z2"} {
		if _, err := b.Add(ctx, hour(id, "s")); err != nil {
			t.Fatalf("Add(%s) after the loss: %v", id, err)
		}
	}
	if gone, err := a.Touch(ctx, held); err != nil || len(gone) != 0 {
		t.Fatalf("re-asserting past the caps: gone %+v, %v; want none", gone, err)
	}
	if n, _ := b.Count(ctx); n != 4 {
		t.Fatalf("Count = %d after re-assertion, want 4", n)
	}
	if _, err := b.Add(ctx, hour("w", "s")); !isCap(err) {
		t.Fatalf("Add over the caps = %v, want ErrLimit", err)
	}
	for _, l := range held {
		if _, err := a.End(ctx, presence.Ending{ClientID: l.ClientID}); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(time.Second) // records a second old: see "Sequence numbers"
	if _, err := b.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	ps, err := b.Lookup(ctx, []string{"x", "y", "z1", "z2"})
	if err != nil {
		t.Fatal(err)
	}
	if !ps[0].LastSeen.IsZero() || !ps[1].LastSeen.IsZero() || !ps[2].Online || !ps[3].Online {
		t.Fatalf("after Sweep: %+v; want x and y forgotten, z1 and z2 online", ps)
	}
	if _, err := b.Add(ctx, hour("w", "s")); !isCap(err) {
		t.Fatalf("Add with every client online = %v, want ErrLimit", err)
	}
}

// lose deletes every key of namespace p, as a restart without persistence
// would.
func lose(t *testing.T, rdb *goredis.Client, p string) {
	t.Helper()
	ctx := context.Background()
	keys, err := redistest.Keys(ctx, rdb, p)
	if err != nil {
		t.Fatal(err)
	}
	if err := rdb.Del(ctx, keys...).Err(); err != nil {
		t.Fatal(err)
	}
}

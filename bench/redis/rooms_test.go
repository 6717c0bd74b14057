//go:build integration && unix

package redis_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
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

// fiveRooms are the rooms every session of the rooms figures is in.
var fiveRooms = []string{"general", "random", "lobby", "game:1", "game:2"}

// TestFigureRoomsCommandsPerBeat: TestFigureCommandsPerBeat with every
// session in five rooms: a beat refreshes the session, never its
// memberships, so the figure must not move (issue 12 §5: ≤ 0.05).
func TestFigureRoomsCommandsPerBeat(t *testing.T) { commandsPerBeat(t, fiveRooms) }

// TestFigureRoomsSustainedBeats: TestFigureSustainedBeats with every
// session in five rooms (issue 12 §5: ≥ 200,000 sessions/s). The TTL is
// 10 minutes: on a 2-core VM shared with Redis, connecting 150,000
// sessions in five rooms each (an Online and five Joins per Add, each
// journaled, delivered and acknowledged) takes minutes, and with the
// default TTL the sessions connected first expired before the flushes
// caught up, so the window measured the sweep of their Leaves instead of
// refreshes. The TTL does not change what a refresh costs.
func TestFigureRoomsSustainedBeats(t *testing.T) { sustainedBeats(t, fiveRooms, 10*time.Minute) }

// TestFigureBigRoom: a room of 100,000 clients (one session each, with
// metadata) on the Cluster, 32 buckets (the default): how its members
// spread over the shards, RoomCount's latency (issue 12 §5: ≤ 2 ms), and a
// walk of its members by pages of 1,000 (each member exactly once).
func TestFigureBigRoom(t *testing.T) {
	const n, room = 100_000, "big"
	ctx := context.Background()
	rdb := redistest.Cluster(t)
	st := redistest.Store(t, rdb, redisstore.Config{})
	leases := make([]presence.Lease, n)
	for i := range leases {
		leases[i] = presence.Lease{ClientID: "u" + strconv.Itoa(i), SessionID: "s", Node: "bench", TTL: time.Hour,
			Rooms: []string{room}, Meta: json.RawMessage(`{"name":"user ` + strconv.Itoa(i) + `"}`)}
	}
	start := time.Now()
	var wg sync.WaitGroup
	for w := range 16 {
		wg.Go(func() {
			for i := w; i < n; i += 16 {
				if _, err := st.Add(ctx, leases[i]); err != nil {
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
	t.Logf("%d Adds with a room and metadata in %v", n, time.Since(start).Round(time.Millisecond))

	// Spread: each master's share of the room, read from the per-bucket
	// counts of the buckets it serves.
	prefix := st.Config().Prefix
	var mu sync.Mutex
	var shares []int
	err := redistest.ForEachServer(ctx, rdb, func(ctx context.Context, c *goredis.Client) error {
		sum, buckets := 0, 0
		for b := range st.Config().Buckets {
			v, err := c.HGet(ctx, "{"+prefix+":b"+strconv.Itoa(b)+"}:rc", room).Int()
			if err != nil {
				continue // MOVED: another master's bucket
			}
			sum += v
			buckets++
		}
		mu.Lock()
		shares = append(shares, sum)
		mu.Unlock()
		t.Logf("master %s: %d buckets, %d members", c.Options().Addr, buckets, sum)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	total := 0
	for _, s := range shares {
		total += s
		if s == 0 || s > n/2 {
			t.Errorf("a master holds %d of %d members: not spread", s, n)
		}
	}
	if total != n {
		t.Errorf("masters hold %d members, want %d", total, n)
	}

	// RoomCount latency.
	const calls = 1000
	lat := make([]time.Duration, calls)
	for i := range lat {
		t0 := time.Now()
		c, err := st.RoomCount(ctx, room)
		lat[i] = time.Since(t0)
		if err != nil || c != n {
			t.Fatalf("RoomCount = %d, %v", c, err)
		}
	}
	slices.Sort(lat)
	t.Logf("RoomCount of %d members over %d shards: median %v, p99 %v, max %v", n, len(shares),
		lat[calls/2].Round(time.Microsecond), lat[calls*99/100].Round(time.Microsecond), lat[calls-1].Round(time.Microsecond))
	if lat[calls/2] > 2*time.Millisecond {
		t.Errorf("RoomCount median %v, target 2ms", lat[calls/2])
	}

	// Members, by pages of 1,000.
	seen := make(map[string]bool, n)
	cursor, pages := "", 0
	var slowest time.Duration
	start = time.Now()
	for {
		t0 := time.Now()
		p, err := st.Members(ctx, room, cursor, 1000)
		slowest = max(slowest, time.Since(t0))
		if err != nil {
			t.Fatal(err)
		}
		pages++
		for _, m := range p.Members {
			if seen[m.ClientID] {
				t.Fatalf("%s listed twice", m.ClientID)
			}
			if len(m.Metas) != 1 || m.Sessions != 1 {
				t.Fatalf("member %+v", m)
			}
			seen[m.ClientID] = true
		}
		if cursor = p.Next; cursor == "" {
			break
		}
	}
	walk := time.Since(start)
	if len(seen) != n {
		t.Errorf("the walk listed %d members, want %d", len(seen), n)
	}
	t.Logf("Members by pages of 1,000: %d pages in %v (%v a page on average, slowest %v)", pages,
		walk.Round(time.Millisecond), (walk / time.Duration(pages)).Round(time.Microsecond), slowest.Round(time.Microsecond))
}

// BenchmarkJoinLeave measures Join then Leave of one room by a session
// (a Join and a Leave event each, journaled), on one server: Redis
// microseconds per call.
func BenchmarkJoinLeave(b *testing.B) {
	rdb := redistest.Standalone(b)
	st := redistest.Store(b, rdb, redisstore.Config{})
	const n = 10_000
	leases := addSessions(b, st, n, time.Hour)
	ctx := context.Background()
	before := readStats(b, rdb)
	i := 0
	for b.Loop() {
		l := leases[i%n]
		i++
		m := presence.Membership{ClientID: l.ClientID, SessionID: l.SessionID, Room: fmt.Sprintf("r%d", i%100)}
		if _, err := st.Join(ctx, m); err != nil {
			b.Fatal(err)
		}
		if _, err := st.Leave(ctx, m); err != nil {
			b.Fatal(err)
		}
	}
	d := readStats(b, rdb).sub(before)
	b.ReportMetric(float64(d.usec)/float64(2*b.N), "redis-µs/call")
}

// TestFigureRoomsMemory: Redis memory per room membership, 10,000
// clients of one session each ("u0"...) joining five rooms (names of 4 to
// 7 bytes): MEMORY USAGE (every element counted) of the keys that hold
// memberships (:sr, :rm, :rz, :rc) over every bucket; then, once they left
// them, of the left times (:rl) per room left; then of the metadata (:sm)
// per session.
func TestFigureRoomsMemory(t *testing.T) {
	const n = 10_000
	ctx := context.Background()
	rdb := redistest.Standalone(t)
	st := redistest.Store(t, rdb, redisstore.Config{})
	leases := addSessions(t, st, n, time.Hour)
	prefix := st.Config().Prefix
	usage := func(suffixes ...string) int64 {
		var sum int64
		for b := range st.Config().Buckets {
			for _, suf := range suffixes {
				v, err := rdb.MemoryUsage(ctx, "{"+prefix+":b"+strconv.Itoa(b)+"}"+suf, 0).Result()
				if err != nil && err != goredis.Nil {
					t.Fatal(err)
				}
				sum += v
			}
		}
		return sum
	}
	each := func(fn func(l presence.Lease, room string) error) {
		for _, l := range leases {
			for _, r := range fiveRooms {
				if err := fn(l, r); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	member := []string{":sr", ":rm", ":rz", ":rc"}
	m0 := usage(member...)
	each(func(l presence.Lease, room string) error {
		_, err := st.Join(ctx, presence.Membership{ClientID: l.ClientID, SessionID: l.SessionID, Room: room})
		return err
	})
	memberships := float64(n * len(fiveRooms))
	m1 := usage(member...)
	t.Logf("%d memberships: %.0f bytes each (%s)", int(memberships), float64(m1-m0)/memberships, strings.Join(member, " "))
	l0 := usage(":rl")
	each(func(l presence.Lease, room string) error {
		_, err := st.Leave(ctx, presence.Membership{ClientID: l.ClientID, SessionID: l.SessionID, Room: room})
		return err
	})
	t.Logf("after leaving: %.0f bytes per room left (:rl)", float64(usage(":rl")-l0)/memberships)
	meta := json.RawMessage(`{"name":"a display name"}`)
	s0 := usage(":sm")
	for _, l := range leases {
		if _, err := st.SetMeta(ctx, presence.SessionMeta{ClientID: l.ClientID, SessionID: l.SessionID, Meta: meta}); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("metadata of %d bytes: %.0f bytes per session (:sm)", len(meta), float64(usage(":sm")-s0)/float64(n))
}

//go:build integration && unix

package redis_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/vigilhq/vigil/internal/redistest"
	"github.com/vigilhq/vigil/presence"
	redisstore "github.com/vigilhq/vigil/store/redis"
)

// The figures below are measurements, not tests: each logs its figure and
// fails only when the thing it measures did not happen. Run them with
//
//	go test -tags integration -run Figure -v ./bench/redis

// TestFigureCommandsPerBeat: Redis round-trip commands per beat at steady
// state, 10,000 sessions on one node beating every 25s (the middleware's
// default ping interval), Tracker defaults otherwise, for 10s.
func TestFigureCommandsPerBeat(t *testing.T) { commandsPerBeat(t, nil) }

// TestFigureAwayCommandsPerBeat: TestFigureCommandsPerBeat with every
// session away (issue #13: an away session costs no more per beat).
func TestFigureAwayCommandsPerBeat(t *testing.T) {
	commandsPerBeatWith(t, presence.SessionOptions{Activity: presence.ActivityAway, IdleFor: time.Minute})
}

// commandsPerBeat is TestFigureCommandsPerBeat with every session in rooms.
func commandsPerBeat(t *testing.T, rooms []string) {
	commandsPerBeatWith(t, presence.SessionOptions{Rooms: rooms})
}

// commandsPerBeatWith is TestFigureCommandsPerBeat with every session
// opened with opts.
func commandsPerBeatWith(t *testing.T, opts presence.SessionOptions) {
	rooms := opts.Rooms
	const sessions, period, window = 10_000, 25 * time.Second, 10 * time.Second
	for _, tc := range []struct {
		name    string
		rdb     func(testing.TB) goredis.UniversalClient
		buckets int
	}{
		{"standalone", func(t testing.TB) goredis.UniversalClient { return redistest.Standalone(t) }, 0},
		{"cluster-32-buckets", func(t testing.TB) goredis.UniversalClient { return redistest.Cluster(t) }, 32},
		{"cluster-8-buckets", func(t testing.TB) goredis.UniversalClient { return redistest.Cluster(t) }, 8},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rdb := tc.rdb(t)
			st := redistest.Store(t, rdb, redisstore.Config{Buckets: tc.buckets})
			tr, err := presence.New(context.Background(), st, presence.Config{Node: "bench"})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = tr.Close(context.Background()) })
			ss := make([]*presence.Session, sessions)
			for i := range ss {
				if ss[i], err = tr.Connect(context.Background(), fmt.Sprintf("u%d", i), opts); err != nil {
					t.Fatal(err)
				}
			}
			time.Sleep(time.Second) // the connects' first flushes
			perTick := sessions * int(10*time.Millisecond) / int(period)
			before := readStats(t, rdb)
			beats, next := 0, 0
			tick := time.NewTicker(10 * time.Millisecond)
			for end := time.Now().Add(window); time.Now().Before(end); {
				<-tick.C
				for range perTick {
					ss[next%sessions].Beat()
					next++
					beats++
				}
			}
			tick.Stop()
			d := readStats(t, rdb).sub(before)
			per := float64(d.calls) / float64(beats)
			t.Logf("%s, %d rooms per session, activity %q: %d beats in %v, %d Redis commands: %.4f commands per beat", tc.name, len(rooms), opts.Activity, beats, window, d.calls, per)
			// A count, not a timing: batching must keep it this low on one
			// server (issue #4's target).
			if tc.buckets == 0 && per > 0.05 {
				t.Errorf("%.4f commands per beat, want at most 0.05", per)
			}
		})
	}
}

// TestFigureReap: time for Sweep to reap 100,000 expired sessions (of
// 100,000 clients, so 100,000 Offline transitions, journal entries
// included), from one node, as a surviving Tracker does: the sessions'
// node had swept (it has a lease, which ran out) and the sweepers sweep as
// live nodes (SweepNode), so every removal is node_lost.
func TestFigureReap(t *testing.T) {
	for _, nodes := range []int{1} {
		t.Run(fmt.Sprintf("nodes=%d", nodes), func(t *testing.T) {
			rdb := redistest.Standalone(t)
			st := redistest.Store(t, rdb, redisstore.Config{})
			const n = 100_000
			ctx := context.Background()
			survivor := presence.NodeLease{Node: "survivor", TTL: 10 * time.Minute}
			for _, l := range []presence.NodeLease{{Node: "bench", TTL: time.Millisecond}, survivor} {
				if _, err := st.SweepNode(ctx, l); err != nil {
					t.Fatal(err)
				}
			}
			addSessions(t, st, n, 2*time.Second)
			sweepers := []*redisstore.Store{st}
			for range nodes - 1 {
				o, err := redisstore.New(rdb, st.Config())
				if err != nil {
					t.Fatal(err)
				}
				sweepers = append(sweepers, o)
			}
			// The adds took longer than the TTL: wait until the last has
			// expired too.
			time.Sleep(2100 * time.Millisecond)
			before := readStats(t, rdb)
			start := time.Now()
			var mu sync.Mutex
			total, lost := 0, 0
			var wg sync.WaitGroup
			for _, s := range sweepers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for {
						evs, err := s.SweepNode(ctx, survivor)
						if err != nil {
							t.Error(err)
							return
						}
						mu.Lock()
						total += len(evs)
						for _, ev := range evs {
							if ev.Reason == presence.ReasonNodeLost {
								lost++
							}
						}
						done := total >= n || time.Since(start) > time.Minute
						mu.Unlock()
						if done {
							return
						}
					}
				}()
			}
			wg.Wait()
			took := time.Since(start)
			d := readStats(t, rdb).sub(before)
			if total != n || lost != n {
				t.Fatalf("%d offline events, %d of them node_lost; want %d, all node_lost", total, lost, n)
			}
			t.Logf("reaped %d expired sessions in %v with %d node(s) (%.0f sessions/s; %d Redis commands, Redis busy %v)",
				n, took.Round(time.Millisecond), nodes, n/took.Seconds(), d.calls, time.Duration(d.usec)*time.Microsecond)
		})
	}
}

// TestFigureKillToOffline: a node's Redis link is cut for good (as if the
// process was killed) while it holds 1,000 clients; the survivor's Offline
// hook fires for each. Figure: time from the cut to each hook, against the
// target TTL + 1s. TTL 5s, Tracker defaults otherwise.
//
// timing: TTL alone is shortened, to measure kill-to-offline against TTL +
// 1s; no other timing takes part.
func TestFigureKillToOffline(t *testing.T) {
	rdb := redistest.Standalone(t)
	st := redistest.Store(t, rdb, redisstore.Config{})
	cut := goredis.NewClient(&goredis.Options{Addr: rdb.Options().Addr, MaxRetries: -1})
	t.Cleanup(func() { _ = cut.Close() })
	stA, err := redisstore.New(cut, st.Config())
	if err != nil {
		t.Fatal(err)
	}
	const ttl, clients = 5 * time.Second, 1000
	cfg := presence.Config{TTL: ttl}
	cfg.Node = "a"
	a, err := presence.New(context.Background(), stA, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = a.Close(context.Background()) })
	cfg.Node = "b"
	b, err := presence.New(context.Background(), st, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close(context.Background()) })
	var mu sync.Mutex
	offline := map[string]time.Time{}
	reasons := map[presence.Reason]int{}
	b.OnOffline(func(_ context.Context, ev presence.Event) {
		mu.Lock()
		offline[ev.ClientID] = time.Now()
		reasons[ev.Reason]++
		mu.Unlock()
	})
	ss := make([]*presence.Session, clients)
	for i := range ss {
		if ss[i], err = a.Connect(context.Background(), fmt.Sprintf("c%d", i), presence.SessionOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	// Beat every 100ms until the cut, as pongs would.
	for range 20 {
		for _, s := range ss {
			s.Beat()
		}
		time.Sleep(100 * time.Millisecond)
	}
	_ = cut.Close()
	killed := time.Now()
	deadline := killed.Add(ttl + 10*time.Second)
	for {
		mu.Lock()
		n := len(offline)
		mu.Unlock()
		if n == clients {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d offline", n, clients)
		}
		time.Sleep(10 * time.Millisecond)
	}
	var lo, hi time.Duration
	for _, at := range offline {
		d := at.Sub(killed)
		if lo == 0 || d < lo {
			lo = d
		}
		hi = max(hi, d)
	}
	t.Logf("kill to offline hook on the survivor: %v to %v for %d clients (TTL %v; target TTL + 1s = %v); reasons %v",
		lo.Round(time.Millisecond), hi.Round(time.Millisecond), clients, ttl, ttl+time.Second, reasons)
}

// timedStore counts the leases a Tracker's flushes write and how long the
// Touch calls take.
type timedStore struct {
	*redisstore.Store
	mu      sync.Mutex
	leases  int
	flushes int
	longest time.Duration
}

func (s *timedStore) Touch(ctx context.Context, leases []presence.Lease) ([]presence.Gone, error) {
	start := time.Now()
	gone, err := s.Store.Touch(ctx, leases)
	took := time.Since(start)
	s.mu.Lock()
	s.leases += len(leases)
	s.flushes++
	s.longest = max(s.longest, took)
	s.mu.Unlock()
	return gone, err
}

func (s *timedStore) take() (leases, flushes int, longest time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	leases, flushes, longest = s.leases, s.flushes, s.longest
	s.leases, s.flushes, s.longest = 0, 0, 0
	return leases, flushes, longest
}

// TestFigureSustainedBeats: sessions one node refreshes per second through
// one Redis, end to end: a Tracker (defaults: a flush every 250ms) holds
// 150,000 sessions, all beaten every 100ms, so each flush has every
// session to write: 600,000 refreshes a second are asked for, and the
// figure is how many the node's flushes write, over 10s.
func TestFigureSustainedBeats(t *testing.T) { sustainedBeats(t, nil, 0) }

// sustainedBeats is TestFigureSustainedBeats with every session in rooms,
// and the Tracker's TTL ttl (0: its default).
//
// timing: a TTL longer than the default only so that no session expires
// while 150,000 sessions in rooms are connected (about two minutes); beats
// stay far more frequent than any TTL, as in production.
func sustainedBeats(t *testing.T, rooms []string, ttl time.Duration) {
	const sessions, window = 150_000, 10 * time.Second
	rdb := redistest.Standalone(t)
	st := &timedStore{Store: redistest.Store(t, rdb, redisstore.Config{})}
	tr, err := presence.New(context.Background(), st, presence.Config{Node: "bench", TTL: ttl})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tr.Close(context.Background()) })
	// Sessions are beaten from the moment they connect: connecting them
	// all can take longer than a TTL.
	ss := make([]atomic.Pointer[presence.Session], sessions)
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			for i := range ss {
				if s := ss[i].Load(); s != nil {
					s.Beat()
				}
			}
			select {
			case <-stop:
				return
			case <-tick.C:
			}
		}
	}()
	connecting := time.Now()
	var wg sync.WaitGroup
	for w := range 16 {
		wg.Go(func() {
			for i := w; i < sessions; i += 16 {
				s, err := tr.Connect(context.Background(), fmt.Sprintf("u%d", i), presence.SessionOptions{Rooms: rooms})
				if err != nil {
					t.Error(err)
					return
				}
				ss[i].Store(s)
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		close(stop)
		<-done
		t.FailNow()
	}
	t.Logf("%d connects in %v", sessions, time.Since(connecting).Round(time.Millisecond))
	// The connects' transitions (an Online, and a Join per room) are
	// delivered and acknowledged by the Tracker's loop, the one that
	// flushes: wait until the journals have none pending, beating all
	// along (the sessions connected first would expire otherwise).
	waitAcked(t, rdb, st.Config())
	time.Sleep(2 * time.Second) // past the connects' first flushes
	st.take()
	before := readStats(t, rdb)
	cpu0 := processCPU(t)
	time.Sleep(window)
	leases, flushes, longest := st.take()
	client := processCPU(t) - cpu0
	d := readStats(t, rdb).sub(before)
	close(stop)
	<-done
	if leases == 0 {
		t.Fatalf("no flush wrote a lease (tracker: %+v)", tr.Stats())
	}
	t.Logf("tracker at the end: %+v", tr.Stats())
	if ts := tr.Stats(); ts.Sessions != sessions {
		t.Errorf("%d sessions live at the end, want %d (tracker: %+v)", ts.Sessions, sessions, ts)
	}
	t.Logf("%d sessions in %d rooms each, beaten every 100ms: %d refreshes in %v = %.0f sessions/s, %d flushes (longest %v), "+
		"Redis CPU %.2f µs/session, this process's CPU %.2f µs/session",
		sessions, len(rooms), leases, window, float64(leases)/window.Seconds(), flushes, longest.Round(time.Millisecond),
		float64(d.cpu)/float64(leases), float64(client.Microseconds())/float64(leases))
}

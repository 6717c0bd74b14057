//go:build faults && linux

package faults

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/vigilhq/vigil/client"
	"github.com/vigilhq/vigil/internal/redistest"
	"github.com/vigilhq/vigil/middleware"
	"github.com/vigilhq/vigil/presence"
	redisstore "github.com/vigilhq/vigil/store/redis"
)

// Timings of the Redis fault tests.
const (
	rfPing  = 500 * time.Millisecond
	rfPong  = 500 * time.Millisecond
	rfTTL   = 1500 * time.Millisecond
	rfGrace = 500 * time.Millisecond
	rfSweep = 100 * time.Millisecond
)

// redisFleet is one node on a Redis store with reconnecting clients.
type redisFleet struct {
	n       *node
	clients map[string]*watched
	ids     []string
}

// timing: TTL ≥ PingInterval + PongTimeout on the server and the same
// heartbeat on the clients; backoff short so reconnects land within the
// outage tests.
func startRedisFleet(t *testing.T, rdb goredis.UniversalClient, ttl time.Duration, ids ...string) *redisFleet {
	t.Helper()
	st, err := redisstore.New(rdb, redisstore.Config{Prefix: uniq("rf")})
	if err != nil {
		t.Fatal(err)
	}
	f := &redisFleet{ids: ids, clients: map[string]*watched{}}
	f.n = startNode(t, st,
		presence.Config{TTL: ttl, Grace: rfGrace, SweepInterval: rfSweep},
		middleware.Config{PingInterval: rfPing, PongTimeout: rfPong}, nil)
	for _, id := range ids {
		f.clients[id] = dialClient(t, f.n.wsURL(id), client.Config{PingInterval: rfPing, PongTimeout: rfPong,
			BackoffBase: 100 * time.Millisecond, BackoffMax: 500 * time.Millisecond})
	}
	for _, id := range ids {
		f.n.rec.wait(t, 0, 5*time.Second, "online of "+id, func(ev stamped) bool {
			return ev.ClientID == id && ev.Transition == presence.Online
		})
	}
	return f
}

// noDisconnects fails if any client's connection changed state.
func (f *redisFleet) noDisconnects(t *testing.T, what string) {
	t.Helper()
	for id, c := range f.clients {
		untouched(t, c, what+": client "+id)
	}
}

// converged waits until every id in want is online in the Store (read back
// through a Lookup in Redis) and every other id of the fleet is offline,
// and returns how long that took.
func (f *redisFleet) converged(t *testing.T, d time.Duration, want map[string]bool) time.Duration {
	t.Helper()
	return f.convergedOn(t, d, f.ids, want)
}

// convergedOn is converged for some of the fleet's ids only.
func (f *redisFleet) convergedOn(t *testing.T, d time.Duration, ids []string, want map[string]bool) time.Duration {
	t.Helper()
	return eventually(t, d, "presence in Redis converged", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel()
		ps, err := f.n.tr.Lookup(ctx, ids)
		if err != nil {
			return false
		}
		for _, p := range ps {
			if p.Online != want[p.ClientID] {
				return false
			}
		}
		return true
	})
}

// R9, R10: redis-server killed with SIGKILL mid-traffic, down for twice
// the TTL, and restarted empty (no persistence) on the same port.
// Connections stay up, no false Offline fires, the client that left during
// the outage gets exactly one Offline, and presence in Redis converges
// within one TTL of Redis's return.
func TestRedisKilledAndRestarted(t *testing.T) {
	t.Parallel()
	r := redistest.StartServer(t)
	stay := []string{"r1", "r2", "r3", "r4"}
	f := startRedisFleet(t, redisClient(t, r.Addr()), rfTTL, append(stay, "leaver")...)

	r.Kill()
	time.Sleep(rfTTL) // the outage's length is the fault under test
	// The leaver closes its connection while Redis is down.
	leaver := f.clients["leaver"]
	delete(f.clients, "leaver")
	_ = leaver.Close()
	time.Sleep(rfTTL)
	if n := f.n.rec.count("", presence.Offline); n != 0 {
		t.Fatalf("%d Offline events while Redis was down, want none: %v", n, f.n.rec.all())
	}
	f.noDisconnects(t, "Redis down for 2×TTL")
	if errs := f.n.tr.Stats().StoreErrors; errs == 0 {
		t.Error("no store errors counted while Redis was down")
	}

	r.Start() // empty: no RDB, no AOF
	want := map[string]bool{}
	for _, id := range stay {
		want[id] = true
	}
	reassert := f.convergedOn(t, rfTTL+time.Second, stay, want)
	if reassert > rfTTL+2*rfSweep {
		t.Errorf("live sessions re-asserted %v after Redis returned, want within TTL %v", reassert, rfTTL)
	}
	conv := f.converged(t, rfTTL+rfGrace+time.Second, want)
	if conv > rfTTL+rfGrace+2*rfSweep {
		t.Errorf("converged %v after Redis returned, want within TTL (+Grace for the leaver) %v", conv, rfTTL+rfGrace)
	}
	f.n.rec.wait(t, 0, 5*time.Second, "offline of leaver", func(ev stamped) bool {
		return ev.ClientID == "leaver" && ev.Transition == presence.Offline
	})
	time.Sleep(rfTTL) // nothing more may happen: watch for one TTL
	for _, id := range stay {
		if n := f.n.rec.count(id, 0); n != 1 {
			t.Errorf("client %s: %d transitions, want only its first Online: %v", id, n, f.n.rec.all())
		}
	}
	if n := f.n.rec.count("leaver", presence.Offline); n != 1 {
		t.Errorf("leaver: %d Offline events, want 1", n)
	}
	checkAlternation(t, f.n.rec.all())
	f.noDisconnects(t, "after Redis returned")
	t.Logf("FIGURE redis-restart: down %v (2×TTL), 0 false offline, 0 connections lost; live sessions back in Redis %v after the restart, leaver offline (once) and all converged %v after it (TTL %v, Grace %v)",
		2*rfTTL, reassert.Round(time.Millisecond), conv.Round(time.Millisecond), rfTTL, rfGrace)
}

// R11: redis-server frozen with SIGSTOP for longer than a heartbeat (and,
// in the second case, longer than the TTL), then resumed. Nothing may
// change: no connection lost, no transition, presence intact.
func TestRedisPaused(t *testing.T) {
	t.Parallel()
	for _, pause := range []time.Duration{2 * rfPing, rfTTL + rfPing} {
		t.Run(pause.String(), func(t *testing.T) {
			t.Parallel()
			r := redistest.StartServer(t)
			ids := []string{"p1", "p2", "p3"}
			f := startRedisFleet(t, redisClient(t, r.Addr()), rfTTL, ids...)
			r.Signal(syscall.SIGSTOP)
			time.Sleep(pause) // the pause's length is the fault under test
			r.Signal(syscall.SIGCONT)
			want := map[string]bool{"p1": true, "p2": true, "p3": true}
			conv := f.converged(t, rfTTL, want)
			time.Sleep(rfTTL) // watch for one TTL
			if n := f.n.rec.count("", presence.Offline); n != 0 {
				t.Errorf("%d Offline events after a %v pause, want none: %v", n, pause, f.n.rec.all())
			}
			f.noDisconnects(t, "Redis paused")
			f.converged(t, time.Second, want)
			t.Logf("FIGURE redis-pause-%v: 0 false offline, 0 connections lost, presence read back %v after SIGCONT",
				pause, conv.Round(time.Millisecond))
		})
	}
}

// R12: a Sentinel failover. A primary, a replica and one Sentinel (quorum
// 1) on loopback; the nodes reach Redis through a go-redis failover
// client. The primary is killed with SIGKILL; Sentinel promotes the
// replica; the failover client follows. No false Offline, connections stay
// up, presence converges within one TTL of the promotion.
func TestRedisSentinelFailover(t *testing.T) {
	t.Parallel()
	sentinelBin := requireBin(t, "redis-sentinel")
	const ttl = 3 * time.Second
	primary := redistest.StartServer(t)
	replica := redistest.StartServer(t, "--replicaof", "127.0.0.1", strconv.Itoa(primary.Port()))
	sport := freePort(t)
	conf := filepath.Join(t.TempDir(), "sentinel.conf")
	writeFile(t, conf, fmt.Sprintf(`port %d
bind 127.0.0.1
sentinel monitor vigil 127.0.0.1 %d 1
sentinel down-after-milliseconds vigil 1000
sentinel failover-timeout vigil 5000
sentinel parallel-syncs vigil 1
`, sport, primary.Port()))
	sentinel := exec.Command(sentinelBin, conf)
	if err := sentinel.Start(); err != nil {
		t.Fatalf("start redis-sentinel: %v", err)
	}
	t.Cleanup(func() { _ = sentinel.Process.Kill(); _ = sentinel.Wait() })
	saddr := "127.0.0.1:" + strconv.Itoa(sport)
	sc := goredis.NewSentinelClient(&goredis.Options{Addr: saddr, DialTimeout: 500 * time.Millisecond})
	t.Cleanup(func() { _ = sc.Close() })
	eventually(t, 15*time.Second, "sentinel knows the replica", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		defer cancel()
		rs, err := sc.Replicas(ctx, "vigil").Result()
		return err == nil && len(rs) == 1 && rs[0]["flags"] == "slave"
	})
	rdb := goredis.NewFailoverClient(&goredis.FailoverOptions{
		MasterName: "vigil", SentinelAddrs: []string{saddr},
		DialTimeout: 500 * time.Millisecond, ReadTimeout: 500 * time.Millisecond, WriteTimeout: 500 * time.Millisecond,
		MaxRetries: -1,
	})
	t.Cleanup(func() { _ = rdb.Close() })
	ids := []string{"f1", "f2", "f3", "f4"}
	f := startRedisFleet(t, rdb, ttl, ids...)
	// Let the replica catch up, as it would in steady state.
	eventually(t, 20*time.Second, "replica in sync", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		defer cancel()
		a := redisClient(t, primary.Addr()).DBSize(ctx).Val()
		b := redisClient(t, replica.Addr()).DBSize(ctx).Val()
		return a > 0 && a == b
	})

	primary.Kill()
	killed := time.Now()
	var promoted time.Time
	eventually(t, 20*time.Second, "sentinel promotes the replica", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		defer cancel()
		a, err := sc.GetMasterAddrByName(ctx, "vigil").Result()
		if err == nil && len(a) == 2 && a[1] == strconv.Itoa(replica.Port()) {
			promoted = time.Now()
			return true
		}
		return false
	})
	want := map[string]bool{"f1": true, "f2": true, "f3": true, "f4": true}
	conv := f.converged(t, ttl+time.Second, want)
	time.Sleep(ttl) // watch for one TTL
	if n := f.n.rec.count("", presence.Offline); n != 0 {
		t.Errorf("%d Offline events across the failover, want none: %v", n, f.n.rec.all())
	}
	checkAlternation(t, f.n.rec.all())
	f.noDisconnects(t, "Sentinel failover")
	f.converged(t, time.Second, want)
	t.Logf("FIGURE sentinel: primary killed, replica promoted %v later; 0 false offline, 0 connections lost; converged %v after the promotion (TTL %v)",
		promoted.Sub(killed).Round(time.Millisecond), conv.Round(time.Millisecond), ttl)
}

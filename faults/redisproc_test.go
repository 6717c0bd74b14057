//go:build faults && linux

package faults

import (
	"bytes"
	"context"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/vigilhq/vigil/internal/redistest"
)

func init() { goredis.SetLogger(quietLog{}) }

// go-redis logs failed dials; the Redis faults make many on purpose.
type quietLog struct{}

func (quietLog) Printf(context.Context, string, ...any) {}

// redisClient is a client of addr tuned for outages: short timeouts, no
// retries, closed when the test ends.
func redisClient(t testing.TB, addr string) *goredis.Client {
	c := goredis.NewClient(&goredis.Options{Addr: addr, DialTimeout: 500 * time.Millisecond,
		ReadTimeout: 500 * time.Millisecond, WriteTimeout: 500 * time.Millisecond, MaxRetries: -1})
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// redisCluster is a Redis Cluster of the test's own: masters[i] is
// replicated by replicas[i]. Its servers are redistest.Servers (killed when
// the test ends), joined by redis-cli --cluster create as
// scripts/lib/redis.sh's redis_start_cluster joins the integration tests'
// Cluster.
type redisCluster struct {
	masters, replicas []*redistest.Server
}

// startCluster starts a Cluster of n masters with one replica each, whose
// nodes mark a peer failing after nodeTimeout (cluster-node-timeout), and
// waits until every node sees it whole: all slots served, every replica
// linked to its master.
func startCluster(t testing.TB, n int, nodeTimeout time.Duration) *redisCluster {
	t.Helper()
	var servers []*redistest.Server
	var addrs []string
	byPort := map[string]*redistest.Server{}
	rdbs := map[*redistest.Server]*goredis.Client{}
	for range 2 * n {
		// The bus port is named: the default (port + 10000) may be past
		// 65535 for a port from the ephemeral range.
		s := redistest.StartServer(t, "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
			"--cluster-node-timeout", strconv.FormatInt(nodeTimeout.Milliseconds(), 10),
			"--cluster-port", strconv.Itoa(freePort(t)))
		servers = append(servers, s)
		addrs = append(addrs, s.Addr())
		byPort[strconv.Itoa(s.Port())] = s
		rdbs[s] = redisClient(t, s.Addr())
	}
	// The first n become masters, the others their replicas.
	out, err := exec.Command("redis-cli", append(append([]string{"--cluster", "create"}, addrs...),
		"--cluster-replicas", "1", "--cluster-yes")...).CombinedOutput()
	if err != nil {
		t.Fatalf("redis-cli --cluster create: %v\n%s", err, out)
	}
	t.Cleanup(dialProbesEnded) // after the test's clients are closed
	c := &redisCluster{}
	eventually(t, 30*time.Second, "Cluster formed", func() bool {
		c.masters, c.replicas = nil, nil
		for _, s := range servers {
			ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
			info, err := rdbs[s].ClusterInfo(ctx).Result()
			cancel()
			if err != nil || !strings.Contains(info, "cluster_state:ok") ||
				!strings.Contains(info, "cluster_known_nodes:"+strconv.Itoa(2*n)) {
				return false
			}
		}
		// Pair each replica with its master from one node's view.
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		defer cancel()
		nodes, err := rdbs[servers[0]].ClusterNodes(ctx).Result()
		if err != nil {
			return false
		}
		ids := map[string]*redistest.Server{} // node ID -> server
		masterOf := map[*redistest.Server]string{}
		for _, line := range strings.Split(strings.TrimSpace(nodes), "\n") {
			f := strings.Fields(line) // id ip:port@bus flags master ...
			if len(f) < 4 {
				return false
			}
			hostPort, _, _ := strings.Cut(f[1], "@")
			_, port, _ := strings.Cut(hostPort, ":")
			s := byPort[port]
			if s == nil {
				return false
			}
			ids[f[0]] = s
			if strings.Contains(f[2], "slave") {
				masterOf[s] = f[3]
			}
		}
		for r, mid := range masterOf {
			m := ids[mid]
			if m == nil {
				return false
			}
			ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
			repl, err := rdbs[r].Info(ctx, "replication").Result()
			cancel()
			if err != nil || !strings.Contains(repl, "master_link_status:up") {
				return false
			}
			c.masters = append(c.masters, m)
			c.replicas = append(c.replicas, r)
		}
		return len(c.masters) == n
	})
	return c
}

// dialProbesEnded waits, for up to 3s, until no go-redis pool probes a
// dead server any more. A pool whose dials keep failing probes the server
// every second from a goroutine of its own until the pool is closed
// (internal/pool's tryDial), and ends it at its next wake-up only, after the
// test, which goleak's check at the end of the suite may not wait for.
func dialProbesEnded() {
	buf := make([]byte, 1<<20)
	for deadline := time.Now().Add(3 * time.Second); time.Now().Before(deadline); {
		n := runtime.Stack(buf, true)
		for n == len(buf) { // every goroutine's stack, however many
			buf = make([]byte, 2*len(buf))
			n = runtime.Stack(buf, true)
		}
		if !bytes.Contains(buf[:n], []byte("pool.(*ConnPool).tryDial")) {
			return
		}
		time.Sleep(50 * time.Millisecond) // polling another package's goroutine: nothing to wait on
	}
}

// addrs lists every node of the Cluster, masters first.
func (c *redisCluster) addrs() []string {
	var out []string
	for _, s := range append(append([]*redistest.Server{}, c.masters...), c.replicas...) {
		out = append(out, s.Addr())
	}
	return out
}

// clusterClient is a Cluster client of c, closed when the test ends, with
// go-redis's timings compressed like the suite's: short timeouts as
// redisClient's, and dial retries (5 × 100 ms by default) and retry
// backoff (at most 512 ms) about a seventh of go-redis's defaults. At
// those defaults a call routed to a dead master holds the calling node
// about 2.5 s (four attempts, each of five dials): 7% of vigil's default
// TTL, half of a TTL compressed to 5 s. Redirects are left at go-redis's
// default: following a promotion is their job.
func clusterClient(t testing.TB, c *redisCluster) *goredis.ClusterClient {
	rdb := goredis.NewClusterClient(&goredis.ClusterOptions{Addrs: c.addrs(), DialTimeout: 500 * time.Millisecond,
		ReadTimeout: 500 * time.Millisecond, WriteTimeout: 500 * time.Millisecond,
		DialerRetryTimeout: 15 * time.Millisecond, MaxRetryBackoff: 75 * time.Millisecond})
	t.Cleanup(func() { _ = rdb.Close() })
	return rdb
}

// replOffset reads a field (master_repl_offset, slave_repl_offset) of
// rdb's INFO replication; -1 if it cannot.
func replOffset(rdb *goredis.Client, field string) int64 {
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	info, err := rdb.Info(ctx, "replication").Result()
	if err != nil {
		return -1
	}
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), field+":"); ok {
			n, err := strconv.ParseInt(v, 10, 64)
			if err == nil {
				return n
			}
		}
	}
	return -1
}

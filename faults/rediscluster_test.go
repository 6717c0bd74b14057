//go:build faults && linux

package faults

import (
	"context"
	"fmt"
	"hash/fnv"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/vigilhq/vigil/client"
	"github.com/vigilhq/vigil/internal/redistest"
	"github.com/vigilhq/vigil/internal/timing"
	"github.com/vigilhq/vigil/presence"
	redisstore "github.com/vigilhq/vigil/store/redis"
)

// checkAlternationAcross is checkAlternation over the events that several
// nodes' hooks saw: each client's events, wherever they ran, put in Seq
// order. A transition delivered twice (on one node or two) shows as a Seq
// seen twice, a lost one as the same transition twice in a row.
func checkAlternationAcross(t testing.TB, recs ...*recorder) []stamped {
	t.Helper()
	var all []stamped
	for _, r := range recs {
		all = append(all, r.all()...)
	}
	sort.SliceStable(all, func(i, j int) bool {
		if all[i].ClientID != all[j].ClientID {
			return all[i].ClientID < all[j].ClientID
		}
		return all[i].Seq < all[j].Seq
	})
	checkAlternation(t, all)
	return all
}

// A Redis Cluster failover. Three masters with one replica each
// (redis-server processes of the test's own); three in-process nodes, each
// with its own go-redis ClusterClient, share one namespace spread over the
// three shards; 24 clients (the Go client) are connected across the nodes.
// The master serving most of them is killed with SIGKILL once its replica
// has caught up; the Cluster promotes the replica. Meanwhile one client on
// the failed shard and one elsewhere close their connections, and two new
// ones connect. The promise: nobody who stays connected goes offline, no
// connection is lost, each client's transitions alternate strictly across
// the nodes (none twice, none lost: the leavers get exactly one Offline,
// the joiners exactly one Online), and Count, List and Lookup on every
// node give exactly the connected clients within one TTL of the promotion.
//
// timing: the defaults scaled by 1/7 (TTL 5 s, ping 3.6 s), and the
// failover in the same proportion to the TTL as at the defaults: at
// Redis's default cluster-node-timeout (15 s) a failover takes about 17 s,
// half the default TTL (35 s); at cluster-node-timeout 1 s it takes 2–2.5 s
// here. So, as in production, the leases of some sessions (those whose
// last beat was more than TTL − failover before the kill) run out while
// their shard cannot be written. go-redis's own retry timings are scaled
// with the rest (clusterClient). The clients' backoff is short so that
// nothing waits on it.
func TestRedisClusterFailover(t *testing.T) {
	t.Parallel()
	sc := timing.Scale(1.0 / 7) // TTL 5s, ping 3.6s, pong 1.4s, Grace 0.7s, sweep 71ms
	ttl := sc.TTL
	const nodeTimeout = time.Second
	rc := startCluster(t, 3, nodeTimeout)
	prefix := uniq("cf")
	var nodes []*node
	var recs []*recorder
	var rdbs []*goredis.ClusterClient
	for i := range 3 {
		rdb := clusterClient(t, rc)
		st, err := redisstore.New(rdb, redisstore.Config{Prefix: prefix})
		if err != nil {
			t.Fatal(err)
		}
		tc := sc.Tracker()
		tc.Node = fmt.Sprintf("c%d", i+1)
		n := startNode(t, st, tc, sc.Server(), nil)
		nodes, recs, rdbs = append(nodes, n), append(recs, n.rec), append(rdbs, rdb)
	}
	t.Cleanup(func() { // the namespace's keys on the masters left alive
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = rdbs[0].ForEachMaster(ctx, func(ctx context.Context, c *goredis.Client) error {
			keys, _ := redistest.Keys(ctx, c, prefix)
			for _, k := range keys {
				c.Del(ctx, k)
			}
			return nil
		})
	})
	ccfg := client.Config{PingInterval: sc.PingInterval, PongTimeout: sc.PongTimeout,
		BackoffBase: 100 * time.Millisecond, BackoffMax: 500 * time.Millisecond}

	// clientsKey is the key of the client records of id's bucket:
	// store/redis spreads clients over Buckets buckets by FNV-1a of the ID,
	// each bucket one slot (store/redis/keys.go).
	clientsKey := func(id string) string {
		h := fnv.New32a()
		h.Write([]byte(id))
		return fmt.Sprintf("{%s:b%d}:c", prefix, h.Sum32()%redisstore.DefaultBuckets)
	}
	// shardOf names the master serving id's bucket.
	shardOf := func(id string) string {
		t.Helper()
		key := clientsKey(id)
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		m, err := rdbs[0].MasterForKey(ctx, key)
		if err != nil {
			t.Fatalf("master of %s: %v", key, err)
		}
		return m.Options().Addr
	}
	online := func(id string, on *node) {
		t.Helper()
		on.rec.wait(t, 0, 10*time.Second, "online of "+id, func(ev stamped) bool {
			return ev.ClientID == id && ev.Transition == presence.Online
		})
	}

	clients := map[string]*watched{}
	owner := map[string]string{} // client -> the node its session is on
	var stay []string
	perShard := map[string][]string{}
	for i := range 24 {
		id := fmt.Sprintf("k%02d", i+1)
		stay = append(stay, id)
		clients[id] = dialClient(t, nodes[i%3].wsURL(id), ccfg)
		owner[id] = nodes[i%3].tr.Node()
		perShard[shardOf(id)] = append(perShard[shardOf(id)], id)
	}
	for i, id := range stay {
		online(id, nodes[i%3])
	}
	// The victim is the master serving most clients.
	victim := -1
	for i, m := range rc.masters {
		if victim < 0 || len(perShard[m.Addr()]) > len(perShard[rc.masters[victim].Addr()]) {
			victim = i
		}
	}
	master, replica := rc.masters[victim], rc.replicas[victim]
	rm, rr := redisClient(t, master.Addr()), redisClient(t, replica.Addr())
	onVictim := perShard[master.Addr()]
	// Check the layout read above against Redis itself.
	for _, id := range onVictim {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		ok, err := rm.HExists(ctx, clientsKey(id), id).Result()
		cancel()
		if err != nil || !ok {
			t.Fatalf("client %s is not where store/redis's layout puts it (master %s): %v, %v", id, master.Addr(), ok, err)
		}
	}
	// Leavers and joiners, on the failed shard and on another one.
	pick := func(stem string, onVictim bool) string {
		for i := range 1000 {
			id := fmt.Sprintf("%s%03d", stem, i)
			if (shardOf(id) == master.Addr()) == onVictim {
				return id
			}
		}
		t.Fatalf("no ID %s… on the right shard", stem)
		return ""
	}
	leavers := []string{pick("lv", true), pick("ls", false)}
	joiners := []string{pick("jv", true), pick("js", false)}
	failed := map[string]bool{leavers[0]: true, joiners[0]: true} // clients of the failed shard
	for _, id := range onVictim {
		failed[id] = true
	}
	for i, id := range leavers {
		clients[id] = dialClient(t, nodes[i].wsURL(id), ccfg)
		online(id, nodes[i])
	}

	// Steady state: the replica has every write the master has.
	eventually(t, 20*time.Second, "replica in sync", func() bool {
		m := replOffset(rm, "master_repl_offset")
		return m > 0 && replOffset(rr, "slave_repl_offset") >= m
	})
	errsBefore := 0
	for _, n := range nodes {
		errsBefore += int(n.tr.Stats().StoreErrors)
	}

	master.Kill()
	killed := time.Now()
	time.Sleep(200 * time.Millisecond) // the leavers go, and the joiners come, during the failover
	for _, id := range leavers {
		_ = clients[id].Close()
		delete(clients, id)
	}
	for i, id := range joiners {
		clients[id] = dialClient(t, nodes[2-i].wsURL(id), ccfg)
		owner[id] = nodes[2-i].tr.Node()
	}
	joined := time.Since(killed)
	var promoted time.Duration
	eventually(t, 20*time.Second, "replica promoted", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		defer cancel()
		role, err := rr.Do(ctx, "ROLE").Slice()
		if err != nil || len(role) == 0 || role[0] != "master" {
			return false
		}
		if promoted == 0 {
			promoted = time.Since(killed)
		}
		info, err := rr.ClusterInfo(ctx).Result()
		return err == nil && strings.Contains(info, "cluster_state:ok")
	})
	serving := time.Since(killed)

	want := map[string]bool{}
	for id := range clients {
		want[id] = true
	}
	all := append(append(slices.Clone(stay), leavers...), joiners...)
	converged := func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		for _, n := range nodes {
			if c, err := n.tr.Count(ctx); err != nil || c != len(want) {
				return false
			}
			listed := map[string]bool{}
			for cursor := ""; ; {
				page, err := n.tr.List(ctx, cursor, 10)
				if err != nil {
					return false
				}
				for _, p := range page.Clients {
					listed[p.ClientID] = true
				}
				if cursor = page.Next; cursor == "" {
					break
				}
			}
			if len(listed) != len(want) {
				return false
			}
			for id := range want {
				if !listed[id] {
					return false
				}
			}
			ps, err := n.tr.Lookup(ctx, all)
			if err != nil {
				return false
			}
			for _, p := range ps {
				if p.Online != want[p.ClientID] {
					return false
				}
			}
		}
		return true
	}
	eventually(t, ttl+5*time.Second, "presence converged after the promotion", converged)
	conv := time.Since(killed) - promoted
	if conv > ttl {
		t.Errorf("presence converged %v after the failover, want within one TTL (%v)", conv, ttl)
	}
	time.Sleep(ttl) // nothing more may happen: watch for one TTL

	errs := -errsBefore
	for _, n := range nodes {
		errs += int(n.tr.Stats().StoreErrors)
	}
	count := func(id string, tr presence.Transition) int {
		k := 0
		for _, r := range recs {
			k += r.count(id, tr)
		}
		return k
	}
	falseOff := 0
	for _, id := range append(slices.Clone(stay), joiners...) {
		if n := count(id, presence.Offline); n != 0 {
			falseOff += n
			t.Errorf("client %s stayed connected but went offline %d times", id, n)
		}
		if n := count(id, presence.Online); n != 1 {
			t.Errorf("client %s: %d Online events, want 1", id, n)
		}
	}
	for _, id := range leavers {
		if on, off := count(id, presence.Online), count(id, presence.Offline); on != 1 || off != 1 {
			t.Errorf("leaver %s: %d Online and %d Offline events, want 1 and 1", id, on, off)
		}
	}
	evs := checkAlternationAcross(t, recs...)
	for _, ev := range evs {
		if ev.Transition == presence.Offline && !slices.Contains(leavers, ev.ClientID) {
			t.Logf("false Offline of %s (session on node %s, %s shard): reason %s, decided by node %s %v after the kill; last beat in Redis %v after the kill",
				ev.ClientID, owner[ev.ClientID], map[bool]string{true: "the failed", false: "a surviving"}[failed[ev.ClientID]],
				ev.Reason, ev.Node, ev.Time.Sub(killed).Round(time.Millisecond), ev.LastSeen.Sub(killed).Round(time.Millisecond))
		}
	}
	lost := 0
	for id, c := range clients {
		if len(c.states) > 0 {
			lost++
		}
		untouched(t, c, "Cluster failover: client "+id)
	}
	if !converged() {
		t.Error("presence no longer matches the connected clients one TTL after converging")
	}
	if t.Failed() {
		t.Logf("replica promoted %v after the kill; events: %v", promoted, evs)
	}
	t.Logf("FIGURE cluster: master with %d of 24 clients killed; replica promoted %v after the kill, Cluster serving again at %v; leavers and joiners at %v; %d false offline, %d connections lost, %d store errors meanwhile; converged %v after the promotion (TTL %v, cluster-node-timeout %v)",
		len(onVictim), promoted.Round(time.Millisecond), serving.Round(time.Millisecond), joined.Round(time.Millisecond),
		falseOff, lost, errs, conv.Round(time.Millisecond), ttl, nodeTimeout)
}

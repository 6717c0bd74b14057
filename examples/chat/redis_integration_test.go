//go:build integration

package main

import (
	"cmp"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vigilhq/vigil/internal/redistest"
	redisstore "github.com/vigilhq/vigil/store/redis"
)

// The tests in this file run demo processes on the Redis store. They need
// REDIS_ADDR (./scripts/test starts a server and sets it) and redis-server
// on PATH; with the integration tag and no server, they fail.

// Timings of the demo nodes: TTL = ping + pong = 1.5s; the Tracker sweeps
// every 500ms (its default) and writes beats every 250ms, so a sweep step,
// the most a sweep can lag behind an expiry it must see plus the lease's
// slack for the batch that wrote it, is 2 × 500ms.
const (
	pingInterval = 500 * time.Millisecond
	pongTimeout  = time.Second
	ttl          = pingInterval + pongTimeout
	grace        = 300 * time.Millisecond
	sweepStep    = time.Second
)

func nodeArgs(url, prefix, node string) []string {
	return []string{"-store", "redis", "-redis-url", url, "-redis-prefix", prefix, "-node-id", node,
		"-ping-interval", pingInterval.String(), "-pong-timeout", pongTimeout.String(),
		"-grace", grace.String(), "-drain-window", "100ms"}
}

// sharedRedis returns the address of the server at REDIS_ADDR and a key
// prefix unique to the test, whose keys are deleted when it ends.
func sharedRedis(t *testing.T) (addr, prefix string) {
	t.Helper()
	rdb := redistest.Standalone(t)
	return rdb.Options().Addr, redistest.Prefix(t, rdb)
}

// transitions returns, per client, the online and offline log lines of the
// given nodes, each as "event/reason", in the client's order (its Seq):
// which node logs a transition depends on which node decided it (for an
// expiry, the node that sweeps the client's bucket).
func transitions(nodes ...*demo) map[string][]string {
	type line struct {
		seq float64
		s   string
	}
	byClient := map[string][]line{}
	for _, d := range nodes {
		d.mu.Lock()
		for _, l := range d.lines {
			ev, _ := l["event"].(string)
			if ev != "online" && ev != "offline" {
				continue
			}
			c, _ := l["client"].(string)
			r, _ := l["reason"].(string)
			seq, _ := l["seq"].(float64) // below 2^53: exact
			byClient[c] = append(byClient[c], line{seq, ev + "/" + r})
		}
		d.mu.Unlock()
	}
	out := map[string][]string{}
	for c, ls := range byClient {
		slices.SortStableFunc(ls, func(a, b line) int { return cmp.Compare(a.seq, b.seq) })
		for _, l := range ls {
			out[c] = append(out[c], l.s)
		}
	}
	return out
}

// firstLine returns when the first line of any of nodes matching want was
// logged (its time attribute, from the node's clock, which is the test's:
// one machine), and whether there is one.
func firstLine(want map[string]string, nodes ...*demo) (time.Time, bool) {
	var first time.Time
	for _, d := range nodes {
		d.mu.Lock()
		for _, l := range d.lines {
			if matches(l, want) {
				at := l[recvKey].(time.Time)
				if ts, ok := l["time"].(string); ok {
					if logged, err := time.Parse(time.RFC3339Nano, ts); err == nil {
						at = logged
					}
				}
				if first.IsZero() || at.Before(first) {
					first = at
				}
				break
			}
		}
		d.mu.Unlock()
	}
	return first, !first.IsZero()
}

// online reads the list endpoint of d, every page: client -> sessions.
func online(t *testing.T, d *demo) map[string]int {
	t.Helper()
	out := map[string]int{}
	cursor := ""
	for {
		var page struct {
			Clients []status `json:"clients"`
			Next    string   `json:"next"`
		}
		if st := d.get(t, "/presence?limit=1000&cursor="+cursor, &page); st != 200 {
			t.Fatalf("GET /presence on %s: %d", d.addr, st)
		}
		for _, c := range page.Clients {
			if c.Online {
				out[c.ID] = c.Sessions
			}
		}
		if page.Next == "" {
			return out
		}
		cursor = page.Next
	}
}

// tryOnline is online without failing the test: ok is false while the
// node cannot answer (its store is down).
func tryOnline(d *demo) (map[string]int, bool) {
	out := map[string]int{}
	hc := &http.Client{Timeout: 2 * time.Second}
	cursor := ""
	for {
		var page struct {
			Clients []status `json:"clients"`
			Next    string   `json:"next"`
		}
		resp, err := hc.Get("http://" + d.addr + "/presence?limit=1000&cursor=" + cursor)
		if err != nil {
			return nil, false
		}
		err = json.NewDecoder(resp.Body).Decode(&page)
		resp.Body.Close()
		if err != nil || resp.StatusCode != 200 {
			return nil, false
		}
		for _, c := range page.Clients {
			if c.Online {
				out[c.ID] = c.Sessions
			}
		}
		if page.Next == "" {
			return out, true
		}
		cursor = page.Next
	}
}

// truth is what the status endpoints must say: client -> live sessions.
type truth map[string]int

func (w truth) String() string {
	keys := slices.Sorted(maps.Keys(w))
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "%s:%d ", k, w[k])
	}
	return b.String()
}

// checkStatus checks that every node's list endpoint, and each client's
// status endpoint, match want.
func checkStatus(t *testing.T, want truth, ids []string, nodes ...*demo) {
	t.Helper()
	for _, d := range nodes {
		if got := truth(online(t, d)); !maps.Equal(got, want) {
			t.Errorf("node %s lists %v; want %v", d.addr, got, want)
		}
		for _, id := range ids {
			var one status
			st := d.get(t, "/presence/"+id, &one)
			if st != 200 || one.Online != (want[id] > 0) || one.Sessions != want[id] {
				t.Errorf("node %s: /presence/%s = %d %+v; want %d sessions", d.addr, id, st, one, want[id])
			}
		}
	}
}

// waitTruth polls the list endpoint of every node until all match want,
// give or take the clients of lingering, which may still be listed with
// that many sessions.
func waitTruth(within time.Duration, want, lingering truth, nodes ...*demo) (time.Duration, bool) {
	start := time.Now()
	for {
		ok := true
		for _, d := range nodes {
			got, answered := tryOnline(d)
			for id, n := range lingering {
				if got[id] == n {
					delete(got, id)
				}
			}
			if !answered || !maps.Equal(truth(got), want) {
				ok = false
				break
			}
		}
		if ok {
			return time.Since(start), true
		}
		if time.Since(start) > within {
			return time.Since(start), false
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// TestMultiNode runs three demo processes on one Redis with clients spread
// over them, some on two nodes. A node killed with SIGKILL takes offline,
// on a survivor, exactly the clients that had no session elsewhere, within
// TTL + one sweep step, with reason node_lost; the others see no event. A node restarted with the
// same node ID leaves no ghost, also when it restarts before its sessions
// expired.
func TestMultiNode(t *testing.T) {
	addr, prefix := sharedRedis(t)
	url := "redis://" + addr + "/0"
	nodes := map[string]*demo{}
	for _, n := range []string{"a", "b", "c"} {
		nodes[n] = startDemo(t, nodeArgs(url, prefix, n)...)
	}
	dumpOnFailure(t, nodes["a"], nodes["b"], nodes["c"])
	a, b := nodes["a"], nodes["b"]
	// Solo clients have one session; dual clients one on each of two
	// nodes. s-c* and the duals with c are the ones the kill of c affects.
	layout := map[string][]string{
		"s-a1": {"a"}, "s-a2": {"a"}, "s-b1": {"b"}, "s-b2": {"b"}, "s-c1": {"c"}, "s-c2": {"c"}, "s-c3": {"c"},
		"d-ab": {"a", "b"}, "d-ac": {"a", "c"}, "d-bc": {"b", "c"}, "d-ca": {"c", "a"}, "d-cc": {"c", "c"},
	}
	ids := slices.Sorted(maps.Keys(layout))
	want := truth{}
	for _, id := range ids {
		for _, n := range layout[id] {
			nodes[n].connect(t, id)
		}
		want[id] = len(layout[id])
	}
	for _, id := range ids {
		waitAny(t, map[string]string{"event": "online", "client": id}, 5*time.Second, a, b, nodes["c"])
	}
	if took, ok := waitTruth(5*time.Second, want, nil, a, b, nodes["c"]); !ok {
		t.Fatalf("status endpoints did not show %v within %v", want, took)
	}
	checkStatus(t, want, ids, a, b, nodes["c"])
	before := transitions(a, b, nodes["c"])
	for _, id := range ids {
		if got := before[id]; !slices.Equal(got, []string{"online/connect"}) {
			t.Fatalf("%s: %v before the kill; want one online", id, got)
		}
	}

	// kill -9 of c.
	c := nodes["c"]
	if err := c.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	<-c.done
	gone := []string{"s-c1", "s-c2", "s-c3", "d-cc"}
	limit := ttl + sweepStep
	for _, id := range gone {
		at, ok := time.Time{}, false
		for !ok && time.Since(killed) < limit+5*time.Second {
			at, ok = firstLine(map[string]string{"event": "offline", "client": id}, a, b)
			time.Sleep(10 * time.Millisecond)
		}
		if !ok {
			t.Fatalf("%s: no offline on a survivor", id)
		}
		took := at.Sub(killed)
		t.Logf("%s offline on a survivor %v after the kill (TTL %v, limit TTL + sweep step = %v)", id, took.Round(time.Millisecond), ttl, limit)
		if took > limit {
			t.Errorf("%s offline %v after the kill; want at most %v", id, took, limit)
		}
	}
	time.Sleep(ttl) // let anything wrong happen
	after := transitions(a, b)
	for _, id := range ids {
		w := []string{"online/connect"}
		if slices.Contains(gone, id) {
			w = append(w, "offline/node_lost")
		}
		// c's log is gone with it: count its online lines from before.
		got := append(slices.Clone(transitions(c)[id]), after[id]...)
		if !slices.Equal(got, w) {
			t.Errorf("%s: transitions %v; want %v", id, got, w)
		}
	}
	for _, id := range gone {
		delete(want, id)
	}
	for _, id := range []string{"d-ac", "d-bc", "d-ca"} {
		want[id] = 1
	}
	checkStatus(t, want, ids, a, b)

	// c restarts with the same node ID: nothing of its first life shows.
	c2 := startDemo(t, nodeArgs(url, prefix, "c")...)
	time.Sleep(grace + sweepStep)
	checkStatus(t, want, ids, a, b, c2)

	// c2 gets clients, is killed and restarted at once, before their
	// sessions expired: the new process clears them at start-up, through
	// Grace; the client also on a stays online without an event.
	c2.connect(t, "g-solo")
	c2.connect(t, "g-dual")
	a.connect(t, "g-dual")
	for _, id := range []string{"g-solo", "g-dual"} {
		waitAny(t, map[string]string{"event": "online", "client": id}, 5*time.Second, a, b, c2)
	}
	if err := c2.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-c2.done
	restarted := time.Now()
	c3 := startDemo(t, nodeArgs(url, prefix, "c")...)
	waitAny(t, map[string]string{"event": "offline", "client": "g-solo"}, ttl, a, b, c3)
	at, _ := firstLine(map[string]string{"event": "offline", "client": "g-solo"}, a, b, c3)
	t.Logf("g-solo offline %v after its node restarted (before its TTL %v ran out)", at.Sub(restarted).Round(time.Millisecond), ttl)
	time.Sleep(ttl)
	all := transitions(a, b, c2, c3)
	if got := all["g-solo"]; !slices.Equal(got, []string{"online/connect", "offline/restart"}) {
		t.Errorf("g-solo: %v; want online, offline/restart", got)
	}
	if got := all["g-dual"]; !slices.Equal(got, []string{"online/connect"}) {
		t.Errorf("g-dual: %v; want one online", got)
	}
	want["g-dual"] = 1
	checkStatus(t, want, append(ids, "g-solo", "g-dual"), a, b, c3)
}

// dumpOnFailure logs every line of the nodes if the test fails.
func dumpOnFailure(t *testing.T, nodes ...*demo) {
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		for _, d := range nodes {
			d.mu.Lock()
			for _, l := range d.lines {
				t.Logf("%s: %v", d.addr, l)
			}
			d.mu.Unlock()
		}
	})
}

// waitAny waits for a line matching want on any of nodes.
func waitAny(t *testing.T, want map[string]string, within time.Duration, nodes ...*demo) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		if _, ok := firstLine(want, nodes...); ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no log line %v on any node within %v", want, within)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestRedisOutage stops the demo nodes' Redis for 10s while clients stay
// connected: no offline fires. Redis then comes back empty; presence
// converges within one TTL, the list endpoint matches the truth, and a
// client that left during the outage gets exactly one offline.
func TestRedisOutage(t *testing.T) {
	srv := redistest.StartServer(t)
	url := "redis://" + srv.Addr() + "/0"
	a := startDemo(t, nodeArgs(url, "outage", "a")...)
	b := startDemo(t, nodeArgs(url, "outage", "b")...)
	dumpOnFailure(t, a, b)
	layout := map[string][]string{
		"alice": {"a"}, "bob": {"b"}, "carol": {"a", "b"}, "dave": {"a", "a"}, "erin": {"b"},
		"leaver": {"a"},
	}
	ids := slices.Sorted(maps.Keys(layout))
	want := truth{}
	var leaver *client
	for _, id := range ids {
		for _, n := range layout[id] {
			c := map[string]*demo{"a": a, "b": b}[n].connect(t, id)
			if id == "leaver" {
				leaver = c
			}
		}
		want[id] = len(layout[id])
	}
	for _, id := range ids {
		waitAny(t, map[string]string{"event": "online", "client": id}, 5*time.Second, a, b)
	}
	if took, ok := waitTruth(5*time.Second, want, nil, a, b); !ok {
		t.Fatalf("status endpoints did not show %v within %v", want, took)
	}

	srv.Kill()
	down := time.Now()
	time.Sleep(3 * time.Second)
	leaver.ws.Close() // leaves while nobody can record it
	delete(want, "leaver")
	time.Sleep(10*time.Second - time.Since(down))
	for id, got := range transitions(a, b) {
		if !slices.Equal(got, []string{"online/connect"}) {
			t.Errorf("%s: %v during the outage; want the one online from before", id, got)
		}
	}

	srv.Start() // empty
	back := time.Now()
	// The leaver's session, re-created by its node's retried End, lingers
	// at least one lease (TTL + 500ms of slack for the batch that writes
	// it) so that sessions of its client on other nodes are re-asserted
	// first: it may be listed meanwhile.
	took, ok := waitTruth(ttl, want, truth{"leaver": 1}, a, b)
	if !ok {
		t.Errorf("the list endpoints did not match %v within one TTL (%v) of Redis's return", want, ttl)
	}
	t.Logf("presence converged %v after Redis came back empty (TTL %v)", took.Round(time.Millisecond), ttl)
	// Its Offline is decided in the buckets' re-assertion window after the
	// data loss (store/redis, "Data loss"), so it fires once the window is
	// over, if that is later.
	lease := ttl + 500*time.Millisecond
	waitAny(t, map[string]string{"event": "offline", "client": "leaver"}, max(lease+grace, redisstore.DefaultReassert)+2*sweepStep, a, b)
	at, _ := firstLine(map[string]string{"event": "offline", "client": "leaver"}, a, b)
	t.Logf("the client that left during the outage went offline %v after Redis came back (lease %v)", at.Sub(back).Round(time.Millisecond), lease)
	if took, ok := waitTruth(time.Second, want, nil, a, b); !ok {
		t.Errorf("the list endpoints did not match %v %v after the leaver's offline", want, took)
	}
	time.Sleep(ttl) // let anything wrong happen
	for _, id := range ids {
		w := []string{"online/connect"}
		if id == "leaver" {
			w = append(w, "offline/closed")
		}
		if got := transitions(a, b)[id]; !slices.Equal(got, w) {
			t.Errorf("%s: %v; want %v", id, got, w)
		}
	}
	checkStatus(t, want, ids, a, b)
}

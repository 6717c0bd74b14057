//go:build faults && linux

package faults

import (
	"errors"
	"fmt"
	"net/http"
	"syscall"
	"testing"
	"time"

	"github.com/vigilhq/vigil/client"
	"github.com/vigilhq/vigil/internal/redistest"
	"github.com/vigilhq/vigil/middleware"
	"github.com/vigilhq/vigil/presence"
	redisstore "github.com/vigilhq/vigil/store/redis"
)

// Timings of the crash tests. The crashed node is the chat demo
// (examples/chat), whose session TTL is ping interval + pong timeout and
// whose Tracker sweeps at presence.DefaultSweepInterval.
const (
	crashPing  = 500 * time.Millisecond
	crashPong  = time.Second
	crashTTL   = crashPing + crashPong
	crashGrace = 3 * time.Second
	crashSweep = presence.DefaultSweepInterval
)

// startDemo runs the chat demo on addr with the crash tests' timings and
// JSON logs, and waits until it listens.
func startDemo(t testing.TB, addr, nodeID string, store ...string) *proc {
	t.Helper()
	args := append([]string{"-addr", addr, "-node-id", nodeID,
		"-ping-interval", crashPing.String(), "-pong-timeout", crashPong.String(),
		"-grace", crashGrace.String()}, store...)
	p, _ := runDemo(t, args...)
	return p
}

// isEv matches the demo's log line of event ev (online, offline) for client
// (any client if "").
func isEv(ev, client string) func(procLine) bool {
	return func(l procLine) bool { return l.str("event") == ev && (client == "" || l.str("client") == client) }
}

// crashClient is the configuration of the crash tests' clients: the real
// client, with the demo's heartbeat and a short backoff.
//
// timing: the demo's heartbeat compressed as the crash tests' node; backoff
// shortened so reconnects land within the test.
func crashClient() client.Config {
	return client.Config{PingInterval: crashPing, PongTimeout: crashPong,
		BackoffBase: 100 * time.Millisecond, BackoffMax: 500 * time.Millisecond}
}

// crashAndRestart is the crash scenario on one store. Seven clients (the
// real client) are online on the chat demo; it is killed with SIGKILL; two
// clients vanish with it (closed, they never come back); the demo restarts
// on the same address with the same -node-id; the five others reconnect by
// themselves. Then exactly the five are online, on the demo's own status
// endpoint, and stay so; nobody else is; and the log lines of both
// incarnations together show strictly alternating transitions per client.
//
// With shared (Redis) presence the alternation must hold across both
// incarnations; with memory presence, which dies with the process, each
// incarnation starts afresh (acrossRestart false).
func crashAndRestart(t *testing.T, acrossRestart bool, store ...string) (reconnect time.Duration, ghostsGone time.Duration, events []procLine) {
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	n1 := startDemo(t, addr, "crash", store...)
	stay := []string{"s1", "s2", "s3", "s4", "s5"}
	gone := []string{"g1", "g2"}
	clients := map[string]*watched{}
	for _, id := range append(append([]string{}, stay...), gone...) {
		clients[id] = dialClient(t, "ws://"+addr+"/ws?id="+id, crashClient())
	}
	for id := range clients {
		n1.find(10*time.Second, "online of "+id, isEv("online", id))
	}

	// Crash: SIGKILL, no shutdown, no close frames.
	if err := n1.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-n1.done
	for _, id := range gone {
		_ = clients[id].Close()
	}
	n2 := startDemo(t, addr, "crash", store...)
	base := "http://" + addr
	want := map[string]bool{}
	for _, id := range stay {
		want[id] = true
	}
	sameSet := func() bool {
		got := onlineIDs(t, base)
		if len(got) != len(want) {
			return false
		}
		for id := range want {
			if !got[id] {
				return false
			}
		}
		return true
	}
	up := time.Now()
	for _, id := range stay {
		lost := waitState(t, clients[id], client.Reconnecting, 5*time.Second)
		var ce *client.CloseError
		if !errors.As(lost.Err, &ce) || ce.Code != 1006 {
			t.Errorf("client %s: connection ended with %v, want 1006 (the node died without a close frame)", id, lost.Err)
		}
		st := waitState(t, clients[id], client.Open, 10*time.Second)
		reconnect = max(reconnect, st.At.Sub(up))
	}
	// The sessions the dead incarnation left are cleared through Grace.
	eventually(t, crashGrace+crashTTL+2*time.Second, "ghosts cleared", sameSet)
	ghostsGone = time.Since(up)
	// And it stays that way for longer than TTL + Grace.
	hold := time.Now().Add(crashTTL + crashGrace)
	for time.Now().Before(hold) {
		if !sameSet() {
			t.Fatalf("online set changed to %s, want %s", fmtIDs(onlineIDs(t, base)), fmtIDs(want))
		}
		time.Sleep(200 * time.Millisecond) // sampling a state that must not change
	}
	for _, id := range stay {
		var cs middleware.ClientStatus
		if httpGet(t, base+"/presence/"+id, &cs) != http.StatusOK || !cs.Online || cs.Sessions != 1 {
			t.Errorf("client %s: %+v, want online with its one new session", id, cs)
		}
		untouched(t, clients[id], "after the reconnect")
	}
	events = append(n1.lines(), n2.lines()...)
	// Per client, the transitions alternate strictly.
	last := map[string]string{}
	for i, l := range events {
		if i == len(n1.lines()) && !acrossRestart {
			clear(last)
		}
		ev, c := l.str("event"), l.str("client")
		if ev != "online" && ev != "offline" {
			continue
		}
		if l.str("node") != "crash" {
			t.Errorf("client %s: %s logged with node %q, want crash", c, ev, l.str("node"))
		}
		if last[c] == ev || (last[c] == "" && ev != "online") {
			t.Errorf("client %s: %s after %q", c, ev, last[c])
		}
		last[c] = ev
	}
	for _, id := range stay {
		if last[id] != "online" {
			t.Errorf("client %s: last transition %q, want online", id, last[id])
		}
	}
	return reconnect, ghostsGone, events
}

// R14, memory store: a node killed with SIGKILL and restarted with the same
// node ID. Memory presence dies with the process, so the restarted node
// starts empty; the clients that reconnect are online again and the ones
// that vanished are not. (No Offline hook ever fires for those: no process
// is left to fire it. docs/RELIABILITY.md says so.)
func TestCrashRestartMemory(t *testing.T) {
	t.Parallel()
	reconnect, ghosts, _ := crashAndRestart(t, false, "-store", "memory")
	t.Logf("FIGURE crash-memory: 5/5 clients online again %v after the restart; exact online set after %v",
		reconnect.Round(time.Millisecond), ghosts.Round(time.Millisecond))
}

// R14, Redis store: presence outlives the node. The restarted node clears
// what its previous incarnation left, through Grace: the clients that
// reconnect in time never look offline (no transition at all), and the two
// that vanished get exactly one Offline each (reason restart) from the
// restarted node.
func TestCrashRestartRedis(t *testing.T) {
	t.Parallel()
	r := redistest.StartServer(t) // a server of its own: the faults block of scripts/test sets no REDIS_ADDR
	reconnect, ghosts, events := crashAndRestart(t, true, "-store", "redis", "-redis-url", "redis://"+r.Addr()+"/0")
	offline := map[string][]string{}
	for _, l := range events {
		if l.str("event") == "offline" {
			offline[l.str("client")] = append(offline[l.str("client")], l.str("reason"))
		}
	}
	for _, id := range []string{"s1", "s2", "s3", "s4", "s5"} {
		if len(offline[id]) != 0 {
			t.Errorf("client %s reconnected within Grace but went offline: %v", id, offline[id])
		}
	}
	for _, id := range []string{"g1", "g2"} {
		if len(offline[id]) != 1 || offline[id][0] != string(presence.ReasonRestart) {
			t.Errorf("client %s vanished with the node: offline events %v, want one restart", id, offline[id])
		}
	}
	t.Logf("FIGURE crash-redis: 5/5 clients online again %v after the restart, none ever offline; the 2 vanished ones offline once (restart), exact online set after %v",
		reconnect.Round(time.Millisecond), ghosts.Round(time.Millisecond))
}

// R14, a node that dies for good: its clients move to a surviving node
// sharing the Redis store, and the clients that vanished with it are
// declared offline by the survivor's sweep once their leases run out,
// exactly once each, with reason node_lost (the dead node's lease ran out
// first: presence.NodeSweeper); the ones that moved never look offline.
// The node that dies is the chat demo; the survivor runs in-process with
// the same timings, so the test reads its hooks.
//
// timing: the survivor runs the crash tests' timings (TTL ≥ PingInterval +
// PongTimeout), those of the demo it is compared with.
func TestNodeDiesForGood(t *testing.T) {
	t.Parallel()
	r := redistest.StartServer(t) // a server of its own: the faults block of scripts/test sets no REDIS_ADDR
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	a := startDemo(t, addr, "node-a", "-store", "redis", "-redis-url", "redis://"+r.Addr()+"/0")
	st, err := redisstore.New(redisClient(t, r.Addr()), redisstore.Config{}) // the demo's default prefix
	if err != nil {
		t.Fatal(err)
	}
	b := startNode(t, st,
		presence.Config{Node: "node-b", TTL: crashTTL, Grace: crashGrace, SweepInterval: crashSweep},
		middleware.Config{PingInterval: crashPing, PongTimeout: crashPong}, nil)
	oneShot := crashClient()
	oneShot.MaxAttempts = once
	var onA []*watched
	for _, id := range []string{"m1", "m2", "v1", "v2"} {
		onA = append(onA, dialClient(t, "ws://"+addr+"/ws?id="+id, oneShot))
		a.next(10*time.Second, "online of "+id, isEv("online", id))
	}
	if err := a.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-a.done
	killed := time.Now()
	for _, c := range onA {
		_ = c.Close()
	}
	// m1 and m2 move to node b at once (a load balancer's retry).
	for _, id := range []string{"m1", "m2"} {
		dialClient(t, b.wsURL(id), oneShot)
	}
	// A lease is written for TTL + the writer's SweepInterval past its
	// beat; the survivor sweeps every SweepInterval.
	bound := crashTTL + 2*crashSweep
	for _, id := range []string{"v1", "v2"} {
		ev := b.rec.wait(t, 0, bound+3*time.Second, "offline of "+id, func(ev stamped) bool {
			return ev.ClientID == id && ev.Transition == presence.Offline
		})
		if d := ev.At.Sub(killed); d > bound+time.Second {
			t.Errorf("%s offline %v after the kill, want within TTL + 2×SweepInterval = %v", id, d, bound)
		}
		if ev.Reason != presence.ReasonNodeLost {
			t.Errorf("%s offline reason %q, want %q", id, ev.Reason, presence.ReasonNodeLost)
		}
	}
	// Let every lease of the dead node run out, then check.
	time.Sleep(crashTTL) // leases expire on Redis's clock: nothing to wait on
	for _, id := range []string{"m1", "m2"} {
		if !online(t, b.tr, id) {
			t.Errorf("%s moved to node b but is not online", id)
		}
		if n := b.rec.count(id, presence.Offline); n != 0 {
			t.Errorf("%s moved to node b but went offline %d times", id, n)
		}
	}
	for _, id := range []string{"v1", "v2"} {
		if n := b.rec.count(id, presence.Offline); n != 1 {
			t.Errorf("%s: %d offline events on the survivor, want 1", id, n)
		}
		if online(t, b.tr, id) {
			t.Errorf("%s vanished but is online", id)
		}
	}
	var worst time.Duration
	for _, ev := range b.rec.all() {
		if ev.Transition == presence.Offline {
			worst = max(worst, ev.At.Sub(killed))
		}
	}
	t.Logf("FIGURE node-dead: vanished clients offline (node_lost) on the survivor at most %v after the kill (TTL %v, bound TTL + 2×SweepInterval = %v); moved clients never offline",
		worst.Round(time.Millisecond), crashTTL, bound)
}

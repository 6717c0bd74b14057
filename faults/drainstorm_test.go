//go:build faults && linux

package faults

import (
	"bufio"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vigilhq/vigil/client"
	"github.com/vigilhq/vigil/internal/redistest"
	"github.com/vigilhq/vigil/middleware"
	"github.com/vigilhq/vigil/presence"
)

// The chat demo's defaults that the drain storm keeps (examples/chat
// README, Flags).
const (
	demoGrace       = 5 * time.Second
	demoDrainWindow = 5 * time.Second
	demoSweep       = presence.DefaultSweepInterval
)

// R15, R16: a drain storm over three nodes. Three chat demo processes
// (examples/chat) share presence on one redis-server, behind a real nginx
// balancing over all three (examples/cluster/nginx.conf); a few hundred Go
// clients (package client) connect through nginx. One node gets SIGTERM: it
// stops listening and closes its WebSockets with 1001 spread over
// -drain-window; its clients reconnect through nginx, which sends them to
// the two others, and the sessions they left behind linger for Grace. The
// promise: not one Offline on any node (each demo's JSON log records every
// transition it decides), every client connected again, presence exact
// afterwards (GET /presence on each survivor lists exactly the clients,
// one session each), strictly alternating transitions.
//
// timing: the demo's defaults on the nodes (ping 25s, pong timeout 20s,
// grace 5s, drain window 5s, sweep 500ms); the clients' DrainWindow is 4s,
// a second under Grace, which keeps "client DrainWindow + reconnect time <
// Grace" (docs/PROTOCOL.md, Timing relations): the relation a drain with
// no Offline rests on. At the clients' default (5s, equal to Grace) a
// client that draws the end of its window may flap, as that row says.
func TestDrainStorm(t *testing.T) {
	t.Parallel()
	const (
		clients           = 300
		clientDrainWindow = 4 * time.Second
		// slack covers nginx, the handshake and the scheduler of a loaded
		// 2-core machine under the race detector.
		slack = time.Second
	)
	r := redistest.StartServer(t) // a server of its own: the faults block of scripts/test sets no REDIS_ADDR
	type demoNode struct {
		id   string
		p    *proc
		addr string
	}
	var nodes []*demoNode
	for _, id := range []string{"d1", "d2", "d3"} {
		p, addr := runDemo(t, "-addr", "127.0.0.1:0", "-node-id", id,
			"-store", "redis", "-redis-url", "redis://"+r.Addr()+"/0")
		nodes = append(nodes, &demoNode{id, p, addr})
	}
	proxy := startNginxUpstream(t, nodes[0].addr, nodes[1].addr, nodes[2].addr)

	cfg := client.Config{DrainWindow: clientDrainWindow}
	ids := make([]string, clients)
	cs := map[string]*watched{}
	for i := range ids {
		ids[i] = fmt.Sprintf("s%03d", i)
		cs[ids[i]] = dialClient(t, "ws://"+proxy+"/ws?id="+ids[i], cfg)
	}
	// Where each client came online: the node that logged it.
	home := map[string]string{}
	eventually(t, 20*time.Second, "every client online", func() bool {
		for _, n := range nodes {
			for _, l := range n.p.lines() {
				if l.str("event") == "online" {
					home[l.str("client")] = n.id
				}
			}
		}
		return len(home) == clients
	})
	perNode := map[string]int{}
	for _, node := range home {
		perNode[node]++
	}
	for _, n := range nodes {
		if perNode[n.id] < clients/10 {
			t.Fatalf("nginx did not balance: clients per node %v", perNode)
		}
	}

	// Drain the first node.
	x, survivors := nodes[0], nodes[1:]
	var moved []string
	for _, id := range ids {
		if home[id] == x.id {
			moved = append(moved, id)
		}
	}
	sigAt := time.Now()
	if err := x.p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	x.p.next(5*time.Second, "shutdown line", func(l procLine) bool { return l.str("event") == "shutdown" })

	// Every client of the drained node gets 1001 and, after the delay it
	// drew in its DrainWindow, is connected again through nginx.
	var lastClose, lastOpen time.Time
	var maxLatency, maxGap time.Duration
	for _, id := range moved {
		c := cs[id]
		// Its events wait in its channel while the loop reads the others':
		// the bounds are checked on their times, not on how long this
		// waits.
		lost := waitState(t, c, client.Reconnecting, max(time.Until(sigAt.Add(demoDrainWindow+20*time.Second)), time.Second))
		if d := lost.At.Sub(sigAt); d > demoDrainWindow+slack {
			t.Errorf("client %s: 1001 %v after SIGTERM, want within the drain window %v (+%v slack)", id, d, demoDrainWindow, slack)
		}
		var ce *client.CloseError
		if !errors.As(lost.Err, &ce) || ce.Code != middleware.CloseGoingAway {
			t.Fatalf("client %s: connection ended with %v, want 1001 (the node drains)", id, lost.Err)
		}
		if lost.Delay >= clientDrainWindow {
			t.Errorf("client %s: waits %v after 1001, want less than its DrainWindow %v", id, lost.Delay, clientDrainWindow)
		}
		// The last attempt's announcement and the Open it led to.
		last := lost
		var open stateAt
		for open.To != client.Open {
			st := nextState(t, c, max(time.Until(sigAt.Add(demoDrainWindow+clientDrainWindow+20*time.Second)), time.Second))
			switch st.To {
			case client.Reconnecting:
				last = st
			case client.Open:
				open = st
			default:
				t.Fatalf("client %s: %v -> %v (%v) while reconnecting", id, st.From, st.To, st.Err)
			}
		}
		lastClose = later(lastClose, lost.At)
		lastOpen = later(lastOpen, open.At)
		maxLatency = max(maxLatency, open.At.Sub(last.At.Add(last.Delay)))
		maxGap = max(maxGap, open.At.Sub(lost.At))
	}
	allBack := lastOpen.Sub(sigAt)
	if bound := demoDrainWindow + clientDrainWindow + slack; allBack > bound {
		t.Errorf("the %d moved clients connected again %v after SIGTERM, want within the drain window, the clients' DrainWindow and %v slack: %v",
			len(moved), allBack, slack, bound)
	}
	stopped := x.p.next(demoDrainWindow+10*time.Second, "stopped line", func(l procLine) bool { return l.str("event") == "stopped" })
	drain := stopped.At.Sub(sigAt)
	<-x.p.done
	if x.p.err != nil {
		t.Errorf("drained node exited with %v, want 0", x.p.err)
	}
	if drain < demoDrainWindow*(time.Duration(len(moved))-1)/time.Duration(len(moved)) || drain > demoDrainWindow+slack {
		t.Errorf("drain took %v, want about the drain window %v", drain, demoDrainWindow)
	}

	// Once every session the drained node left has outlived Grace (and a
	// survivor's sweep has seen it), presence is exact on both survivors:
	// every client online with exactly its one new session.
	settle := time.Until(lastClose.Add(demoGrace + 2*demoSweep + slack))
	exact := func(n *demoNode) bool {
		got := onlineSessions(t, "http://"+n.addr)
		if len(got) != clients {
			return false
		}
		for _, id := range ids {
			if got[id] != 1 {
				return false
			}
		}
		return true
	}
	eventually(t, max(settle, 0)+5*time.Second, "presence exact on the survivors", func() bool {
		return exact(survivors[0]) && exact(survivors[1])
	})
	if d := time.Until(lastClose.Add(demoGrace + 2*demoSweep + slack)); d > 0 {
		time.Sleep(d) // a lingering session that flapped would go offline by now
	}
	for _, n := range survivors {
		if !exact(n) {
			t.Errorf("node %s: presence not exact after Grace: %d online", n.id, len(onlineSessions(t, "http://"+n.addr)))
		}
	}
	// nginx spread the moved clients over both survivors: their
	// connections add up to every client.
	total := 0
	for _, n := range survivors {
		k := wsConnections(t, "http://"+n.addr)
		if k <= perNode[n.id] {
			t.Errorf("node %s holds %d connections, had %d before: no moved client landed there", n.id, k, perNode[n.id])
		}
		total += k
	}
	if total != clients {
		t.Errorf("survivors hold %d WebSocket connections, want %d", total, clients)
	}
	for _, id := range ids {
		if home[id] != x.id {
			untouched(t, cs[id], "client "+id+" of a surviving node")
		}
	}

	// Every transition any node decided: one online per client, no
	// offline, alternating per client in seq order.
	var evs []procLine
	for _, n := range nodes {
		for _, l := range n.p.lines() {
			if ev := l.str("event"); ev == "online" || ev == "offline" {
				evs = append(evs, l)
			}
		}
	}
	checkLogAlternation(t, evs)
	online, offline := 0, 0
	for _, l := range evs {
		if l.str("event") == "online" {
			online++
		} else {
			offline++
			t.Errorf("offline of %s (reason %s) logged by %s", l.str("client"), l.str("reason"), l.str("node"))
		}
	}
	if online != clients {
		t.Errorf("%d online transitions, want %d (one per client)", online, clients)
	}
	t.Logf("FIGURE drain-storm: %d clients over 3 nodes through nginx; node %s (%d clients) drained in %v (drain window %v); "+
		"all %d connected again %v after SIGTERM; 1001 to open at most %v (client DrainWindow %v), reconnect latency after the drawn delay at most %v; "+
		"transitions: %d online, %d offline; presence exact on both survivors",
		clients, x.id, len(moved), drain.Round(time.Millisecond), demoDrainWindow,
		len(moved), allBack.Round(time.Millisecond), maxGap.Round(time.Millisecond), clientDrainWindow, maxLatency.Round(time.Millisecond),
		online, offline)
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// checkLogAlternation fails unless, per client, the demo log lines of
// transitions (from every node) alternate strictly in seq order, starting
// with online, with seq growing. (Not by one: over a store that keeps
// rooms, the demo joins every client to a room, and its join and leave
// take seqs between its online and offline.)
func checkLogAlternation(t testing.TB, evs []procLine) {
	t.Helper()
	byClient := map[string][]procLine{}
	for _, l := range evs {
		byClient[l.str("client")] = append(byClient[l.str("client")], l)
	}
	for c, ls := range byClient {
		seq := func(l procLine) float64 { f, _ := l.M["seq"].(float64); return f }
		sort.Slice(ls, func(i, j int) bool { return seq(ls[i]) < seq(ls[j]) })
		for i, l := range ls {
			want := "online"
			if i%2 == 1 {
				want = "offline"
			}
			if l.str("event") != want || (i > 0 && seq(l) <= seq(ls[i-1])) {
				t.Errorf("client %s: transition %d is %s seq %v (node %s), want %s after seq %v", c, i, l.str("event"), seq(l), l.str("node"), want, seq(ls[max(i-1, 0)]))
			}
		}
	}
}

// wsConnections reads vigil_connections{transport="ws"} (open WebSockets
// on this node) from a node's /metrics.
func wsConnections(t testing.TB, base string) int {
	t.Helper()
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(base + "/metrics")
	if err != nil {
		t.Fatalf("GET /metrics: %v", err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), `vigil_connections{transport="ws"} `); ok {
			n, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("GET /metrics: %q: %v", sc.Text(), err)
			}
			return int(n)
		}
	}
	t.Fatalf("GET /metrics: no vigil_connections{transport=\"ws\"}")
	return 0
}

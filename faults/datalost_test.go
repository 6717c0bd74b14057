//go:build faults && linux

package faults

import (
	"cmp"
	"context"
	"flag"
	"fmt"
	"maps"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/vigilhq/vigil/client"
	"github.com/vigilhq/vigil/internal/redistest"
	"github.com/vigilhq/vigil/presence"
)

// datalostSeed replays the random choices of a TestDataLossAlternation run
// (which node each session goes to, how long it lasts, how it ends, which
// node is killed); the timing of the processes still differs from run to
// run.
var datalostSeed = flag.Uint64("datalost.seed", 0, "TestDataLossAlternation: seed of the churn (0: a new one per run)")

// Timings of the data-loss test. The nodes are the chat demo, whose session
// TTL is ping interval + pong timeout, whose WriteTimeout is the middleware
// default (10s, or PongTimeout if shorter: here 1s, so WriteTimeout ≤
// PongTimeout) and whose Tracker sweeps at presence.DefaultSweepInterval.
//
// timing: not the defaults scaled by one factor (ping 25s, pong 20s, grace
// 5s would give a grace below one sweep step); the relations that hold, as
// with the defaults: TTL = PingInterval + PongTimeout, WriteTimeout ≤
// PongTimeout, Grace < TTL, and Grace ≥ 2×SweepInterval so that an ended
// session really lingers. The clients beat as the nodes do.
const (
	dlPing  = time.Second
	dlPong  = time.Second
	dlTTL   = dlPing + dlPong
	dlGrace = time.Second
	dlSweep = presence.DefaultSweepInterval
	// dlReclaim is the nodes' -redis-reclaim-after: well above what the
	// demo's hooks take, well below the time from the node kill to the
	// wipe.
	dlReclaim = 3 * time.Second
)

// The scenario of the data-loss test, in time from the start of the churn.
const (
	dlNodes     = 3
	dlClients   = 40
	dlTwoLanes  = 24               // clients that may hold two sessions at once, on different nodes
	dlNodeKill  = 10 * time.Second // one node is killed with SIGKILL
	dlNodeDown  = time.Second      // and restarted (same -node-id) this much later
	dlRedisKill = 20 * time.Second // redis-server is killed with SIGKILL
	dlRedisDown = 500 * time.Millisecond
	dlChurn     = 30 * time.Second // then every client closes (10 s after the wipe)
	// dlRooms are the rooms sessions join: each session a random
	// non-empty subset, so that a client's two lanes share some rooms and
	// not others.
	// dlLinger is how long a client may hold no connection and still
	// rightly stay online: an ended session lingers for Grace, and the
	// sweep that ends it comes at most one step later.
	dlLinger = dlGrace + dlSweep
)

var dlRooms = []string{"general", "r1", "r2"}

// TestDataLossAlternation: Redis comes back empty while clients churn over
// several nodes; no client gets two Onlines in a row, no Offline is lost,
// none is doubled (DESIGN: "Hooks see strict online/offline alternation per
// client, always").
//
// Three chat demo nodes share one redis-server (no persistence). Forty
// clients churn for 30 s: each has one or two lanes, and each lane opens a
// session on a random node (avoiding the node the client's other lane is
// on), holds it for a random while, ends it (the real client's Close, a raw
// WebSocket's close frame, or a raw WebSocket's TCP connection reset),
// waits a random while (shorter or longer than Grace) and starts again. At
// 10 s one node is killed with SIGKILL and restarted with the same -node-id
// a second later; at 20 s redis-server is killed with SIGKILL and restarted
// empty on the same port. Then every client closes and the test waits for
// the Offlines. Every node's log lines (one per transition) make the record:
// per client, ordered by Seq across all nodes, the transitions must
// alternate Online, Offline, ..., end with Offline, and every node's
// /presence must list nobody. Every session joins some of three rooms (the
// demo's ?room=): per (client, room), Joins and Leaves must alternate
// likewise, inside the client's Online ... Offline (checkRooms), and every
// node's /rooms/{room} must count nobody at the end. Each violation is reported with the events
// and connections around it; a figure says how long after their connection
// the Onlines after the wipe were logged.
//
// store/redis/doc.go lists, as limits of today's code, the two ways this
// test sees alternation broken: a client that opens a session on one node
// while online on another, before that node re-asserted its sessions, gets
// a second Online ("duplicate online"); a session lingering through Grace
// at the wipe is forgotten, so its Offline is lost ("lost offline") or, if
// the client came back within Grace, a second Online fires ("duplicate
// online in grace").
//
// Limits designed around. A node that is dead (killed and not yet
// restarted and cleaned up) when Redis loses its data leaves sessions that
// nobody remembers, so their Offline cannot be reported: the killed node is
// restarted, and its clean-up (Grace after the restart) done, well before
// the wipe (about 9 s; the wipe waits for TTL + Grace + 2 s after the
// restart if the node was slow to start). A transition the killed node
// decided but had not delivered when it died is delivered by another node
// after the Store's ReclaimAfter: 30 s by default, after the wipe, which
// would lose it with the journal; the nodes run -redis-reclaim-after
// dlReclaim, so it is delivered before.
func TestDataLossAlternation(t *testing.T) {
	t.Parallel()
	seed := *datalostSeed
	if seed == 0 {
		seed = rand.Uint64()
	}
	t.Logf("seed %d (replay the same choices with -datalost.seed=%d)", seed, seed)
	rng := rand.New(rand.NewPCG(seed, 0))

	r := redistest.StartServer(t) // a server of its own, killed and restarted below
	redisURL := "redis://" + r.Addr() + "/0"
	f := &dlFleet{spans: map[string][]dlSpan{}}
	for i := range dlNodes {
		n := &dlNode{id: fmt.Sprintf("dl%d", i+1), addr: fmt.Sprintf("127.0.0.1:%d", freePort(t))}
		n.start(t, redisURL)
		f.nodes = append(f.nodes, n)
	}

	ctx, stop := context.WithCancel(context.Background())
	var lanes sync.WaitGroup
	t.Cleanup(func() { // also when a step below fails the test
		stop()
		lanes.Wait()
	})
	f.t0 = time.Now()
	for c := range dlClients {
		cl := &dlClient{id: fmt.Sprintf("c%02d", c)}
		cl.node[0].Store(-1)
		cl.node[1].Store(-1)
		n := 1
		if c < dlTwoLanes {
			n = 2
		}
		for lane := range n {
			lanes.Add(1)
			go func() {
				defer lanes.Done()
				f.lane(ctx, cl, lane, rand.New(rand.NewPCG(seed, uint64(1+2*c+lane))))
			}()
		}
	}

	// The faults, at fixed times: their timing is the scenario.
	time.Sleep(time.Until(f.t0.Add(dlNodeKill)))
	victim := f.nodes[rng.IntN(dlNodes)]
	victim.last().kill()
	f.mark("node %s killed (SIGKILL)", victim.id)
	time.Sleep(dlNodeDown)
	victim.start(t, redisURL)
	f.mark("node %s restarted", victim.id)

	// The wipe comes once the restarted node has cleaned up, even if it
	// was slow to start.
	wipe := f.t0.Add(dlRedisKill)
	if ready := time.Now().Add(dlTTL + dlGrace + 2*time.Second); ready.After(wipe) {
		wipe = ready
	}
	time.Sleep(time.Until(wipe))
	r.Kill()
	redisKilled := time.Now()
	f.mark("redis-server killed (SIGKILL)")
	time.Sleep(dlRedisDown)
	r.Start() // empty: no RDB, no AOF; returns once it answers
	redisBack := time.Now()
	f.mark("redis-server back, empty")

	time.Sleep(time.Until(wipe.Add(dlChurn - dlRedisKill)))
	stop()
	lanes.Wait()
	f.mark("churn stopped, every client closed")

	// Settle: every ended session goes within TTL + Grace + a sweep step.
	settled := false
	deadline := time.Now().Add(dlTTL + dlGrace + 2*dlSweep + 3*time.Second)
	for !settled && time.Now().Before(deadline) {
		settled = f.settled(t)
		if !settled {
			time.Sleep(100 * time.Millisecond) // polling the nodes' state
		}
	}
	if settled {
		f.mark("settled: nobody online, every client's last transition an Offline")
	} else {
		f.mark("not settled")
	}
	time.Sleep(dlTTL + dlGrace + dlSweep) // nothing more may happen: watch for a while

	evs := f.events()
	byClient, redelivered, vs := checkDataLoss(evs, f.spanCopy(), dlLinger)
	for _, n := range f.nodes {
		if ids := onlineIDs(t, "http://"+n.addr); len(ids) != 0 {
			t.Errorf("node %s: GET /presence lists %s after every client closed, want nobody", n.id, fmtIDs(ids))
		}
		for _, room := range dlRooms {
			if c := roomCount(t, "http://"+n.addr, room); c != 0 {
				t.Errorf("node %s: GET /rooms/%s counts %d members after every client closed, want none", n.id, room, c)
			}
		}
	}
	joins, leaves, roomVs := checkRooms(evs, f)
	t.Logf("rooms: %d joins, %d leaves; %d violations of the room rules", joins, leaves, len(roomVs))
	for i, v := range roomVs {
		if i == 25 {
			t.Errorf("... and %d more room violations", len(roomVs)-i)
			break
		}
		t.Error(v)
	}
	if joins == 0 {
		t.Error("no join logged: the sessions joined no room")
	}

	kinds := map[string]int{}
	early := 0 // violations at events logged before the wipe
	for _, v := range vs {
		kinds[v.kind]++
		if byClient[v.client][v.i].At.Before(redisKilled) {
			early++
		}
	}
	perNode := map[string]int{}
	for _, ev := range evs {
		perNode[ev.Node]++
	}
	t.Logf("%d events (%d redelivered, same Seq) of %d clients, per node %v; timeline: %s",
		len(evs), redelivered, len(byClient), perNode, strings.Join(f.marks(), "; "))
	t.Logf("violations: %d %v, %d of them at events logged before Redis was killed", len(vs), kinds, early)
	for i, v := range vs {
		if i == 25 {
			t.Errorf("... and %d more violations", len(vs)-i)
			break
		}
		t.Error(f.describe(v, byClient[v.client]))
	}
	if len(byClient) != dlClients {
		t.Errorf("%d clients have transitions, want all %d", len(byClient), dlClients)
	}
	f.figure(t, byClient, redisKilled, redisBack)
}

// dlNode is one chat demo node: its address and node ID stay across
// restarts.
type dlNode struct {
	id, addr string
	procs    []*proc // each incarnation; only the test goroutine touches it
}

// start starts an incarnation of the node on Redis at url.
func (n *dlNode) start(t *testing.T, url string) {
	t.Helper()
	// startDemo passes the crash tests' timings; ours come after them and
	// win (the flag package keeps the last value). The listening line says
	// which were taken.
	p := startDemo(t, n.addr, n.id, "-store", "redis", "-redis-url", url,
		"-ping-interval", dlPing.String(), "-pong-timeout", dlPong.String(), "-grace", dlGrace.String(),
		"-redis-reclaim-after", dlReclaim.String())
	l := p.find(time.Second, "listening", isEv("listening", ""))
	ttl, _ := l.M["ttl"].(float64)     // slog's JSON handler writes a Duration
	grace, _ := l.M["grace"].(float64) // as nanoseconds
	if time.Duration(ttl) != dlTTL || time.Duration(grace) != dlGrace {
		t.Fatalf("node %s runs TTL %v, grace %v; want %v, %v", n.id, time.Duration(ttl), time.Duration(grace), dlTTL, dlGrace)
	}
	n.procs = append(n.procs, p)
}

func (n *dlNode) last() *proc { return n.procs[len(n.procs)-1] }

// dlFleet is the churn: the nodes, and when each client held a connection.
type dlFleet struct {
	nodes []*dlNode
	t0    time.Time // the churn's start

	// mu guards the fields below.
	mu       sync.Mutex
	spans    map[string][]dlSpan // client -> its connections
	timeline []string
}

// dlSpan is one connection of a client, as the client saw it: open from
// from until to (zero while open).
type dlSpan struct {
	node     string
	rooms    string // the rooms it joined, joined by +
	from, to time.Time
}

// dlClient is one client ID; node[lane] is the index of the node the lane
// holds a session on, or -1.
type dlClient struct {
	id   string
	node [2]atomic.Int32
}

func (f *dlFleet) mark(format string, args ...any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.timeline = append(f.timeline, fmt.Sprintf("%s %s", f.rel(time.Now()), fmt.Sprintf(format, args...)))
}

func (f *dlFleet) marks() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.timeline)
}

// rel formats at as seconds since the churn started.
func (f *dlFleet) rel(at time.Time) string {
	return fmt.Sprintf("%.3fs", at.Sub(f.t0).Seconds())
}

// opened records a connection of client to node and returns its index.
func (f *dlFleet) opened(client, node, rooms string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.spans[client] = append(f.spans[client], dlSpan{node: node, rooms: rooms, from: time.Now()})
	return len(f.spans[client]) - 1
}

// closed records the end of connection i of client.
func (f *dlFleet) closed(client string, i int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if s := &f.spans[client][i]; s.to.IsZero() {
		s.to = time.Now()
	}
}

func (f *dlFleet) spanCopy() map[string][]dlSpan {
	f.mu.Lock()
	defer f.mu.Unlock()
	m := make(map[string][]dlSpan, len(f.spans))
	for c, s := range f.spans {
		m[c] = slices.Clone(s)
	}
	return m
}

// lane opens one session after another for cl until ctx ends.
func (f *dlFleet) lane(ctx context.Context, cl *dlClient, lane int, rng *rand.Rand) {
	dur := func(lo, hi time.Duration) time.Duration { return lo + time.Duration(rng.Int64N(int64(hi-lo))) }
	for ctx.Err() == nil {
		// A node the client's other lane is not on.
		other := cl.node[1-lane].Load()
		node := rng.IntN(dlNodes)
		for int32(node) == other {
			node = rng.IntN(dlNodes)
		}
		hold := dur(300*time.Millisecond, 4*time.Second)
		kind := rng.IntN(10)
		cl.node[lane].Store(int32(node))
		switch {
		case kind < 4:
			f.goSession(ctx, cl.id, f.nodes[node], hold, rng)
		default:
			f.rawSession(ctx, cl.id, f.nodes[node], hold, kind >= 7, rng)
		}
		cl.node[lane].Store(-1)
		// Offline for a while: shorter than Grace (no transition) or
		// longer.
		pause(ctx, dur(100*time.Millisecond, 2500*time.Millisecond))
	}
}

// roomQuery is the query of a session of client id that joins a random
// non-empty subset of dlRooms.
func roomQuery(id string, rng *rand.Rand) url.Values {
	q := url.Values{"id": {id}}
	pick := 1 + rng.IntN(1<<len(dlRooms)-1)
	for i, room := range dlRooms {
		if pick&(1<<i) != 0 {
			q.Add("room", room)
		}
	}
	return q
}

// roomCount returns the member count of room from a node's /rooms/{room}.
func roomCount(t testing.TB, base, room string) int {
	t.Helper()
	var page struct {
		Count *int `json:"count"`
	}
	if st := httpGet(t, base+"/rooms/"+url.PathEscape(room), &page); st != http.StatusOK || page.Count == nil {
		t.Fatalf("GET /rooms/%s: status %d, count %v", room, st, page.Count)
	}
	return *page.Count
}

// pause waits for d or until ctx ends.
func pause(ctx context.Context, d time.Duration) {
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
	case <-ctx.Done():
	}
}

// dlDialTimeout bounds a dial, the real client's retries included (a node
// may be down).
const dlDialTimeout = 3 * time.Second

// goSession is a session of the real client: it reconnects by itself if
// its node dies, and ends with Close (close code 1000).
//
// timing: the client beats as the nodes do (dlPing, dlPong: the demo's
// heartbeat compressed, its relations kept); backoff shortened so
// reconnects land within the churn.
func (f *dlFleet) goSession(ctx context.Context, id string, n *dlNode, hold time.Duration, rng *rand.Rand) {
	span := -1
	q := roomQuery(id, rng)
	rooms := strings.Join(q["room"], "+")
	cfg := client.Config{PingInterval: dlPing, PongTimeout: dlPong,
		BackoffBase: 100 * time.Millisecond, BackoffMax: 500 * time.Millisecond,
		Dialer: &websocket.Dialer{HandshakeTimeout: dlDialTimeout},
		// OnState calls are serialised: span needs no lock.
		OnState: func(sc client.StateChange) {
			switch {
			case sc.To == client.Open:
				span = f.opened(id, n.id, rooms)
			case sc.From == client.Open:
				f.closed(id, span)
			}
		}}
	dctx, cancel := context.WithTimeout(ctx, dlDialTimeout)
	defer cancel()
	c, err := client.Dial(dctx, "ws://"+n.addr+"/ws?"+q.Encode(), cfg)
	if err != nil {
		return // the node is down, or the churn is over
	}
	pause(ctx, hold)
	_ = c.Close()
}

// rawSession is a session of a plain gorilla WebSocket that answers the
// server's pings; it ends with a close frame, or, if drop, with a TCP reset
// and no close frame.
func (f *dlFleet) rawSession(ctx context.Context, id string, n *dlNode, hold time.Duration, drop bool, rng *rand.Rand) {
	dctx, cancel := context.WithTimeout(ctx, dlDialTimeout)
	defer cancel()
	d := websocket.Dialer{HandshakeTimeout: dlDialTimeout}
	q := roomQuery(id, rng)
	rooms := strings.Join(q["room"], "+")
	ws, resp, err := d.DialContext(dctx, "ws://"+n.addr+"/ws?"+q.Encode(), nil)
	if resp != nil && resp.Body != nil {
		resp.Body.Close()
	}
	if err != nil {
		return
	}
	span := f.opened(id, n.id, rooms)
	done := make(chan struct{})
	go func() { // the reader: gorilla answers pings while it reads
		defer close(done)
		for {
			if _, _, err := ws.ReadMessage(); err != nil {
				return
			}
		}
	}()
	timer := time.NewTimer(hold)
	defer timer.Stop()
	select {
	case <-timer.C:
	case <-ctx.Done():
	case <-done: // the node closed it, or died
	}
	f.closed(id, span)
	if drop {
		if tc, ok := ws.NetConn().(*net.TCPConn); ok {
			_ = tc.SetLinger(0) // close sends a reset
		}
	} else {
		_ = ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""),
			time.Now().Add(time.Second))
		wait := time.NewTimer(time.Second) // for the server's close frame
		select {
		case <-done:
		case <-wait.C:
		}
		wait.Stop()
	}
	ws.Close()
	<-done
}

// dlEvent is one transition a node logged.
type dlEvent struct {
	Transition string // online, offline, join, leave or update
	Client     string
	Room       string // of join, leave and update
	Node       string
	Reason     string
	Seq        uint64
	At         time.Time // when the test read the log line
}

// events returns the transitions every incarnation of every node logged.
func (f *dlFleet) events() []dlEvent {
	var evs []dlEvent
	for _, n := range f.nodes {
		for _, p := range n.procs {
			for _, l := range p.lines() {
				ev := l.str("event")
				switch ev {
				case "online", "offline", "join", "leave", "update":
				default:
					continue
				}
				// encoding/json reads seq as a float64: exact, as Seq stays
				// far below 2^53 (about 2^47 from Redis's clock).
				seq, _ := l.M["seq"].(float64)
				evs = append(evs, dlEvent{Transition: ev, Client: l.str("client"), Room: l.str("room"), Node: l.str("node"),
					Reason: l.str("reason"), Seq: uint64(seq), At: l.At})
			}
		}
	}
	return evs
}

// settled reports whether every node's /presence lists nobody and every
// client's last transition is an Offline.
func (f *dlFleet) settled(t *testing.T) bool {
	t.Helper()
	for _, n := range f.nodes {
		if len(onlineIDs(t, "http://"+n.addr)) != 0 {
			return false
		}
	}
	byClient, _, _ := checkDataLoss(f.events(), nil, dlLinger)
	for _, evs := range byClient {
		if evs[len(evs)-1].Transition != "offline" {
			return false
		}
	}
	for _, n := range f.nodes {
		for _, room := range dlRooms {
			if roomCount(t, "http://"+n.addr, room) != 0 {
				return false
			}
		}
	}
	return true
}

// checkRooms orders each client's events of every kind by Seq, drops
// repeats (a journal redelivery: same Seq, transition and room) and
// describes every break of the room rules: per (client, room), Join and
// Leave alternate, starting with a Join and ending with a Leave; a Join
// comes while the client is online (after an Online, before the Offline
// that ends it), and every room the client is in is left before its
// Offline; no Seq numbers two transitions.
func checkRooms(all []dlEvent, f *dlFleet) (joins, leaves int, vs []string) {
	byClient := map[string][]dlEvent{}
	for _, ev := range all {
		byClient[ev.Client] = append(byClient[ev.Client], ev)
	}
	for _, c := range bySeq(byClient) {
		evs := byClient[c]
		bad := func(i int, what string) {
			lo, hi := max(0, i-6), min(len(evs), i+3)
			var around []string
			for j := lo; j < hi; j++ {
				mark := " "
				if j == i {
					mark = ">"
				}
				logged := evs[j].At.Format("15:04:05.000")
				if f != nil {
					logged = f.rel(evs[j].At)
				}
				around = append(around, fmt.Sprintf("%s%s %s seq %d node %s reason %s logged %s", mark, evs[j].Transition, evs[j].Room,
					evs[j].Seq, evs[j].Node, evs[j].Reason, logged))
			}
			v := fmt.Sprintf("client %s: %s\n\t%s", c, what, strings.Join(around, "\n\t"))
			if f != nil {
				v += f.connections(c, evs[lo].At.Add(-2*time.Second), evs[hi-1].At.Add(2*time.Second))
			}
			vs = append(vs, v)
		}
		online := false
		in := map[string]bool{}
		var prev *dlEvent
		for i := range evs {
			ev := &evs[i]
			if prev != nil && prev.Seq == ev.Seq {
				if prev.Transition == ev.Transition && prev.Room == ev.Room {
					continue // redelivered
				}
				bad(i, "seq reused")
			}
			prev = ev
			switch ev.Transition {
			case "online":
				online = true
			case "offline":
				for _, room := range slices.Sorted(maps.Keys(in)) {
					if in[room] {
						bad(i, "offline while in room "+room+" (its leave lost, or after the offline)")
						in[room] = false
					}
				}
				online = false
			case "join":
				joins++
				switch {
				case in[ev.Room]:
					bad(i, "duplicate join")
				case !online:
					bad(i, "join while offline")
				}
				in[ev.Room] = true
			case "leave":
				leaves++
				if !in[ev.Room] {
					bad(i, "leave without a join (a doubled leave, or a lost join)")
				}
				in[ev.Room] = false
			}
		}
		for _, room := range slices.Sorted(maps.Keys(in)) {
			if in[room] {
				bad(len(evs)-1, "in room "+room+" at the end")
			}
		}
	}
	return joins, leaves, vs
}

// bySeq sorts each client's events by Seq (then by when they were logged)
// and returns the clients in order.
func bySeq(byClient map[string][]dlEvent) []string {
	for _, evs := range byClient {
		slices.SortStableFunc(evs, func(a, b dlEvent) int {
			if c := cmp.Compare(a.Seq, b.Seq); c != 0 {
				return c
			}
			return a.At.Compare(b.At)
		})
	}
	return slices.Sorted(maps.Keys(byClient))
}

// dlViolation is one break of strict alternation: the client's event at
// index i (of its events ordered by Seq) should not be there, or, for
// "online at the end", should have been followed by an Offline.
type dlViolation struct {
	kind   string
	client string
	i      int
}

// The kinds of violation. Two Onlines in a row are told apart by what the
// client did: it held no connection for longer than linger between them
// (its Offline was lost), or else it was online all along, and the
// connection that brought the second one opened while another of its
// connections was open (a duplicate Online, the client being online
// elsewhere) or less than linger after its last one ended (a duplicate
// Online in Grace: the ended session was still lingering).
const (
	dlDuplicateOnline = "duplicate online"
	dlDuplicateGrace  = "duplicate online in grace"
	dlLostOffline     = "lost offline"
	dlDoubledOffline  = "doubled offline"
	dlLostOnline      = "lost online"
	dlOfflineFirst    = "offline first"
	dlSeqReused       = "seq reused"
	dlOnlineAtEnd     = "online at the end"
)

// checkDataLoss orders each client's events by Seq, drops repeats of an
// event (same Seq and transition: a journal redelivery, which Event.ID tells
// apart) and returns the events by client, how many repeats it dropped, and
// every violation of strict alternation. spans (nil: do not classify) tell
// a duplicate Online from a lost Offline.
func checkDataLoss(all []dlEvent, spans map[string][]dlSpan, linger time.Duration) (map[string][]dlEvent, int, []dlViolation) {
	byClient := map[string][]dlEvent{}
	for _, ev := range all {
		if ev.Transition == "online" || ev.Transition == "offline" {
			byClient[ev.Client] = append(byClient[ev.Client], ev)
		}
	}
	redelivered := 0
	var vs []dlViolation
	for _, c := range bySeq(byClient) {
		evs := byClient[c]
		kept := evs[:0]
		for _, ev := range evs {
			if n := len(kept); n > 0 && kept[n-1].Seq == ev.Seq && kept[n-1].Transition == ev.Transition {
				redelivered++
				continue
			}
			kept = append(kept, ev)
		}
		evs = kept
		byClient[c] = evs
		for i, ev := range evs {
			var kind string
			switch {
			case i == 0 && ev.Transition != "online":
				kind = dlOfflineFirst
			case i == 0:
			case ev.Seq == evs[i-1].Seq:
				kind = dlSeqReused
			case ev.Transition == "online" && evs[i-1].Transition == "online":
				kind = dlDuplicateOnline
				switch {
				case spans == nil:
				case longestGap(spans[c], evs[i-1].At, ev.At) > linger:
					kind = dlLostOffline
				default:
					if k := broughtBy(spans[c], ev); k >= 0 && !openElsewhere(spans[c], k) {
						kind = dlDuplicateGrace
					}
				}
			case ev.Transition == "offline" && evs[i-1].Transition == "offline":
				kind = dlDoubledOffline
				if spans != nil && openedBetween(spans[c], evs[i-1].At, ev.At) {
					kind = dlLostOnline
				}
			}
			if kind != "" {
				vs = append(vs, dlViolation{kind: kind, client: c, i: i})
			}
		}
		if n := len(evs); evs[n-1].Transition == "online" {
			vs = append(vs, dlViolation{kind: dlOnlineAtEnd, client: c, i: n - 1})
		}
	}
	return byClient, redelivered, vs
}

// longestGap returns the longest time within [from, to] when none of spans
// was open.
func longestGap(spans []dlSpan, from, to time.Time) time.Duration {
	spans = slices.Clone(spans)
	slices.SortFunc(spans, func(a, b dlSpan) int { return a.from.Compare(b.from) })
	var gap time.Duration
	covered := from // everything before it is covered or outside the window
	for _, s := range spans {
		end := s.to
		if end.IsZero() {
			end = to
		}
		if !end.After(covered) {
			continue
		}
		if s.from.After(to) {
			break
		}
		if s.from.After(covered) {
			gap = max(gap, s.from.Sub(covered))
		}
		covered = end
	}
	if to.After(covered) {
		gap = max(gap, to.Sub(covered))
	}
	return gap
}

// broughtBy returns the index in spans of the connection that brought
// Online ev: the latest on the node that logged it, or -1. The node may log
// the Online a little before the client sees its handshake's answer.
func broughtBy(spans []dlSpan, ev dlEvent) int {
	k := -1
	for i, s := range spans {
		if s.node == ev.Node && !s.from.After(ev.At.Add(dlSkew)) && (k < 0 || s.from.After(spans[k].from)) {
			k = i
		}
	}
	return k
}

// openElsewhere reports whether another of spans was open when spans[k]
// opened.
func openElsewhere(spans []dlSpan, k int) bool {
	at := spans[k].from
	for i, s := range spans {
		if i != k && !s.from.After(at) && (s.to.IsZero() || s.to.After(at)) {
			return true
		}
	}
	return false
}

// openedBetween reports whether one of spans opened within (from, to).
func openedBetween(spans []dlSpan, from, to time.Time) bool {
	for _, s := range spans {
		if s.from.After(from) && s.from.Before(to) {
			return true
		}
	}
	return false
}

// describe explains v: the client's events around it and its connections
// over that time, in seconds since the churn started.
func (f *dlFleet) describe(v dlViolation, evs []dlEvent) string {
	var b strings.Builder
	fmt.Fprintf(&b, "client %s: %s", v.client, v.kind)
	lo, hi := max(0, v.i-2), min(len(evs), v.i+2)
	for j := lo; j < hi; j++ {
		ev := evs[j]
		mark := "  "
		if j == v.i {
			mark = "> "
		}
		fmt.Fprintf(&b, "\n\t%s%-7s node %s seq %d reason %s at %s", mark, ev.Transition, ev.Node, ev.Seq, ev.Reason, f.rel(ev.At))
	}
	b.WriteString(f.connections(v.client, evs[lo].At.Add(-2*time.Second), evs[hi-1].At.Add(2*time.Second)))
	return b.String()
}

// connections describes client's connections open at some time within
// [from, to]: node, rooms and span, in seconds since the churn started.
func (f *dlFleet) connections(client string, from, to time.Time) string {
	var conns []string
	for _, s := range f.spanCopy()[client] {
		if s.from.After(to) || (!s.to.IsZero() && s.to.Before(from)) {
			continue
		}
		end := "open"
		if !s.to.IsZero() {
			end = f.rel(s.to)
		}
		conns = append(conns, fmt.Sprintf("%s [%s] %s-%s", s.node, s.rooms, f.rel(s.from), end))
	}
	return "\n\tits connections then: " + strings.Join(conns, ", ")
}

// figure logs how long after its connection opened each Online was logged:
// for the Onlines logged after Redis came back empty (split by whether the
// connection opened during the outage or after it) and, to compare, for
// those logged before the wipe. A later fix holds transitions in a
// re-assertion window after data loss: this is the delay it adds to.
func (f *dlFleet) figure(t *testing.T, byClient map[string][]dlEvent, redisKilled, redisBack time.Time) {
	t.Helper()
	spans := f.spanCopy()
	var before, outage, after []time.Duration
	for c, evs := range byClient {
		for i, ev := range evs {
			if ev.Transition != "online" {
				continue
			}
			// The Online is due to the first connection that opened after
			// the Offline before it: the delay counts from there, on
			// whichever node logged it (a transition held through the
			// re-assertion window is logged by the node whose sweep
			// decided it).
			var prev time.Time
			if i > 0 {
				prev = evs[i-1].At
			}
			var opened time.Time
			for _, sp := range spans[c] {
				if sp.from.After(prev.Add(-dlSkew)) && !sp.from.After(ev.At.Add(dlSkew)) && (opened.IsZero() || sp.from.Before(opened)) {
					opened = sp.from
				}
			}
			if opened.IsZero() {
				continue
			}
			d := max(0, ev.At.Sub(opened))
			switch {
			case ev.At.Before(redisKilled):
				before = append(before, d)
			case ev.At.Before(redisBack):
			case opened.Before(redisBack):
				outage = append(outage, d)
			default:
				after = append(after, d)
			}
		}
	}
	t.Logf("FIGURE datalost-online-delay: Onlines logged after Redis came back empty, logged after their connection opened: "+
		"for connections opened after Redis was back %s; opened during the %v outage %s; before the wipe %s",
		quantiles(after), dlRedisDown, quantiles(outage), quantiles(before))
}

// dlSkew is how much earlier than the client saw its connection open a
// node may log the Online it brought.
const dlSkew = 200 * time.Millisecond

// quantiles formats the count, median, 90th percentile and maximum of ds.
func quantiles(ds []time.Duration) string {
	if len(ds) == 0 {
		return "none"
	}
	slices.Sort(ds)
	q := func(p float64) time.Duration { return ds[int(p*float64(len(ds)-1))].Round(time.Millisecond) }
	return fmt.Sprintf("%d, p50 %v, p90 %v, max %v", len(ds), q(0.5), q(0.9), ds[len(ds)-1].Round(time.Millisecond))
}

// TestDataLossChecker checks checkDataLoss, the judge of
// TestDataLossAlternation, on made-up records.
func TestDataLossChecker(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }
	ev := func(tr string, seq uint64, node string, s float64) dlEvent {
		return dlEvent{Transition: tr, Client: "c", Node: node, Reason: "x", Seq: seq, At: at(s)}
	}
	conn := func(node string, from, to float64) dlSpan { return dlSpan{node: node, from: at(from), to: at(to)} }
	cases := []struct {
		name        string
		evs         []dlEvent
		spans       []dlSpan
		want        []string // kinds, in order
		redelivered int
	}{
		{"alternation", []dlEvent{ev("online", 1, "a", 0), ev("offline", 2, "a", 2), ev("online", 1001, "b", 5), ev("offline", 1002, "b", 7)},
			[]dlSpan{conn("a", 0, 1), conn("b", 5, 6)}, nil, 0},
		{"merged by seq, not by time", []dlEvent{ev("offline", 2, "b", 1.9), ev("online", 1, "a", 2)},
			[]dlSpan{conn("a", 0, 1)}, nil, 0},
		{"online elsewhere", []dlEvent{ev("online", 1, "a", 0), ev("online", 1001, "b", 5), ev("offline", 1002, "b", 9)},
			[]dlSpan{conn("a", 0, 8), conn("b", 5, 6)}, []string{dlDuplicateOnline}, 0},
		{"in grace", []dlEvent{ev("online", 1, "a", 0), ev("online", 1001, "b", 5), ev("offline", 1002, "b", 9)},
			[]dlSpan{conn("a", 0, 4.5), conn("b", 5, 8)}, []string{dlDuplicateGrace}, 0},
		{"lost offline", []dlEvent{ev("online", 1, "a", 0), ev("online", 1001, "b", 5), ev("offline", 1002, "b", 9)},
			[]dlSpan{conn("a", 0, 2), conn("b", 5, 8)}, []string{dlLostOffline}, 0},
		{"doubled offline", []dlEvent{ev("online", 1, "a", 0), ev("offline", 2, "a", 2), ev("offline", 3, "b", 3)},
			[]dlSpan{conn("a", 0, 1)}, []string{dlDoubledOffline}, 0},
		{"lost online", []dlEvent{ev("online", 1, "a", 0), ev("offline", 2, "a", 2), ev("offline", 3, "b", 6)},
			[]dlSpan{conn("a", 0, 1), conn("b", 3, 4)}, []string{dlLostOnline}, 0},
		{"offline first", []dlEvent{ev("offline", 2, "a", 2)}, nil, []string{dlOfflineFirst}, 0},
		{"redelivered", []dlEvent{ev("online", 1, "a", 0), ev("online", 1, "b", 1), ev("offline", 2, "a", 2)},
			[]dlSpan{conn("a", 0, 1)}, nil, 1},
		{"seq reused", []dlEvent{ev("online", 1, "a", 0), ev("offline", 1, "b", 2)},
			[]dlSpan{conn("a", 0, 1)}, []string{dlSeqReused}, 0},
		{"online at the end", []dlEvent{ev("online", 1, "a", 0)}, []dlSpan{conn("a", 0, 1)}, []string{dlOnlineAtEnd}, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, redelivered, vs := checkDataLoss(tc.evs, map[string][]dlSpan{"c": tc.spans}, 1500*time.Millisecond)
			var got []string
			for _, v := range vs {
				got = append(got, v.kind)
			}
			if !slices.Equal(got, tc.want) || redelivered != tc.redelivered {
				t.Errorf("violations %q, %d redelivered; want %q, %d", got, redelivered, tc.want, tc.redelivered)
			}
		})
	}
}

// TestRoomChecker checks checkRooms, the room judge of
// TestDataLossAlternation, on made-up records.
func TestRoomChecker(t *testing.T) {
	t.Parallel()
	ev := func(tr, room string, seq uint64) dlEvent {
		return dlEvent{Transition: tr, Client: "c", Room: room, Node: "a", Reason: "x", Seq: seq}
	}
	on, off := func(seq uint64) dlEvent { return ev("online", "", seq) }, func(seq uint64) dlEvent { return ev("offline", "", seq) }
	cases := []struct {
		name string
		evs  []dlEvent
		want []string // the start of each violation, in order
	}{
		{"alternation", []dlEvent{on(1), ev("join", "g", 2), ev("join", "r", 3), ev("update", "g", 4), ev("leave", "g", 5),
			ev("join", "g", 6), ev("leave", "r", 7), ev("leave", "g", 8), off(9)}, nil},
		{"merged by seq", []dlEvent{off(4), ev("leave", "g", 3), ev("join", "g", 2), on(1)}, nil},
		{"redelivered", []dlEvent{on(1), ev("join", "g", 2), ev("join", "g", 2), ev("leave", "g", 3), off(4)}, nil},
		{"duplicate join", []dlEvent{on(1), ev("join", "g", 2), ev("join", "g", 3), ev("leave", "g", 4), off(5)},
			[]string{"client c: duplicate join"}},
		{"doubled leave", []dlEvent{on(1), ev("join", "g", 2), ev("leave", "g", 3), ev("leave", "g", 4), off(5)},
			[]string{"client c: leave without a join"}},
		{"join while offline", []dlEvent{ev("join", "g", 1), ev("leave", "g", 2)}, []string{"client c: join while offline"}},
		{"leave after offline", []dlEvent{on(1), ev("join", "g", 2), off(3), ev("leave", "g", 4)},
			[]string{"client c: offline while in room g", "client c: leave without a join"}},
		{"in room at the end", []dlEvent{on(1), ev("join", "g", 2)}, []string{"client c: in room g at the end"}},
		{"seq reused", []dlEvent{on(1), ev("join", "g", 2), ev("join", "r", 2), ev("leave", "g", 3), ev("leave", "r", 4), off(5)},
			[]string{"client c: seq reused"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, _, vs := checkRooms(tc.evs, nil)
			ok := len(vs) == len(tc.want)
			for i := 0; ok && i < len(vs); i++ {
				ok = strings.HasPrefix(vs[i], tc.want[i])
			}
			if !ok {
				t.Errorf("violations %q, want ones starting %q", vs, tc.want)
			}
		})
	}
}

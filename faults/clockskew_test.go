//go:build faults && linux

package faults

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vigilhq/vigil/client"
	"github.com/vigilhq/vigil/internal/redistest"
	"github.com/vigilhq/vigil/middleware"
	"github.com/vigilhq/vigil/presence"
)

// Timings of the clock-skew test: the demo's heartbeat as the crash tests
// run it (TTL crashTTL, 1.5 s; SweepInterval crashSweep, the default), and
// a Grace longer than two sweep steps but short enough for many offlines.
const (
	skewGrace = time.Second
	skewBy    = 30 * time.Second
)

// skewedDemoBin builds the chat demo (examples/chat) with a wall clock of
// its own: the process reads the time VIGIL_FAULTS_WALL_SKEW away from the
// machine's.
//
// Go reads the clock through the vDSO, so libfaketime cannot reach a Go
// program, and nothing in vigil takes a clock: it reads none of wall time
// for its decisions (the Store decides on Redis's clock), which is what the
// test is to show. So the skew goes where a machine's skew would: into
// time.Now of the whole process. go build -overlay replaces GOROOT's
// time/time.go for this binary alone by a copy whose Now adds the skew to
// the wall-clock seconds (one line, checked to apply to this Go release)
// and adds testdata/wallskew/zz_wallskew.go, which reads the variable. The
// monotonic reading is left alone, as a wrong wall clock leaves
// CLOCK_MONOTONIC alone. Every wall-clock read of vigil, go-redis,
// net/http and log/slog in that process is skewed, and the demo's log
// lines, stamped by slog with time.Now, show it.
//
// The first build recompiles the standard library for the overlay (about a
// minute of CPU; up to four on a loaded machine); the build cache keeps it.
func skewedDemoBin(t testing.TB) string {
	t.Helper()
	out, err := exec.Command("go", "env", "GOROOT").Output()
	if err != nil {
		t.Fatalf("go env GOROOT: %v", err)
	}
	timeDir := filepath.Join(strings.TrimSpace(string(out)), "src", "time")
	src := filepath.Join(timeDir, "time.go")
	orig, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	const now = "func Now() Time {\n\tsec, nsec, mono := runtimeNow()\n"
	if strings.Count(string(orig), now) != 1 {
		t.Fatalf("%s: time.Now does not start %q as the wall-clock overlay expects: update skewedDemoBin for this Go release", src, now)
	}
	extra, err := filepath.Abs(filepath.Join("testdata", "wallskew", "zz_wallskew.go"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	patched := filepath.Join(dir, "time.go")
	writeFile(t, patched, strings.Replace(string(orig), now, now+"\tsec += wallSkew\n", 1))
	overlay, err := json.Marshal(map[string]any{"Replace": map[string]string{
		src: patched, filepath.Join(timeDir, "zz_wallskew.go"): extra,
	}})
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "overlay.json"), string(overlay))
	return buildBin(t, "chat-wallskew", "../examples/chat", "-overlay", filepath.Join(dir, "overlay.json"))
}

// skewedNode is one chat demo whose wall clock is skew away from the
// machine's.
type skewedNode struct {
	name string
	skew time.Duration
	addr string
	p    *proc
}

// startSkewed starts the skewed demo as node name on the Redis at
// redisAddr, and checks, from the time its log line carries, that its
// clock is skew away.
func startSkewed(t *testing.T, bin, redisAddr, prefix, name string, skew time.Duration) *skewedNode {
	t.Helper()
	n := &skewedNode{name: name, skew: skew, addr: fmt.Sprintf("127.0.0.1:%d", freePort(t))}
	n.p = startProcEnv(t, []string{"VIGIL_FAULTS_WALL_SKEW=" + skew.String()}, bin,
		"-addr", n.addr, "-node-id", name, "-log-format", "json",
		"-store", "redis", "-redis-url", "redis://"+redisAddr+"/0", "-redis-prefix", prefix,
		"-ping-interval", crashPing.String(), "-pong-timeout", crashPong.String(), "-grace", skewGrace.String())
	l := n.p.next(20*time.Second, name+" listening", func(l procLine) bool { return l.str("event") == "listening" })
	stamp, err := time.Parse(time.RFC3339Nano, l.str("time"))
	if err != nil {
		t.Fatalf("node %s: log time %q: %v", name, l.str("time"), err)
	}
	if off := stamp.Sub(l.At); (off - skew).Abs() > 2*time.Second {
		t.Fatalf("node %s: its clock is %v off the machine's, want %v: the skew did not take", name, off.Round(time.Millisecond), skew)
	}
	return n
}

func (n *skewedNode) wsURL(id string) string { return "ws://" + n.addr + "/ws?id=" + id }

// status reads a client's presence through the node's /presence/{id}.
func (n *skewedNode) status(t *testing.T, id string) (cs middleware.ClientStatus, since, lastSeen time.Time) {
	t.Helper()
	if st := httpGet(t, "http://"+n.addr+"/presence/"+id, &cs); st != http.StatusOK {
		t.Fatalf("node %s: GET /presence/%s: %d", n.name, id, st)
	}
	parse := func(s string) time.Time {
		if s == "" {
			return time.Time{}
		}
		v, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			t.Fatalf("node %s: client %s: time %q: %v", n.name, id, s, err)
		}
		return v
	}
	return cs, parse(cs.Since), parse(cs.LastSeen)
}

// visit is one connection of a churning client: the node it was on, when
// it opened and when the client closed it.
type visit struct {
	node           int
	opened, closed time.Time
}

// Clock skew. Three chat demos share one real redis-server: one on
// the machine's clock, one 30 s ahead, one 30 s behind (skewedDemoBin).
// Six clients stay connected, two on each node; six others churn across
// the nodes for 18 s, each connection held 0.4 s or 2 s (longer than the
// TTL), each absence 0.15 s (within Grace: a handover to another node) or
// 3 s (longer than Grace + 2×SweepInterval: an Offline). The promise, since
// every decision is taken on Redis's clock: no false Offline and no
// premature expiry (no Offline but the churners' closes, all for reason
// closed); strict alternation per client across the three logs; the
// Offline after a close lands between Grace and Grace + 2×SweepInterval
// after it whichever node held the session; Lookup's Since and LastSeen,
// read through every node, are the machine's time (not 30 s off) and the
// same whichever node answers.
//
// timing: the demo's TTL is PingInterval + PongTimeout as the crash tests
// run it (crashClient, the same heartbeat on the clients); Grace (1 s)
// above 2×SweepInterval, so its bounds are told apart from a sweep step;
// the absences on either side of Grace + 2×SweepInterval by a margin.
func TestClockSkew(t *testing.T) {
	t.Parallel()
	bin := skewedDemoBin(t)
	r := redistest.StartServer(t)
	prefix := uniq("sk")
	nodes := []*skewedNode{
		startSkewed(t, bin, r.Addr(), prefix, "true", 0),
		startSkewed(t, bin, r.Addr(), prefix, "ahead", skewBy),
		startSkewed(t, bin, r.Addr(), prefix, "behind", -skewBy),
	}
	const (
		churners = 6
		churnFor = 18 * time.Second
		short    = 150 * time.Millisecond // within Grace
		long     = 3 * time.Second        // past Grace + 2×SweepInterval
		margin   = 300 * time.Millisecond // on either side of those bounds
		// slack is what a transition may take past its bound to reach the
		// test: hooks, the demo's log, the pipe, a loaded machine.
		slack = 500 * time.Millisecond
	)
	offBound := skewGrace + 2*crashSweep

	stay := map[string]*watched{}
	var stayIDs []string
	for i, n := range nodes {
		for k := range 2 {
			id := fmt.Sprintf("st-%s-%d", n.name, k)
			stayIDs = append(stayIDs, id)
			stay[id] = dialClient(t, n.wsURL(id), crashClient())
			nodes[i].p.find(10*time.Second, "online of "+id, isEv("online", id))
		}
	}

	// The churn.
	start := time.Now()
	visits := make([][]visit, churners)
	var wg sync.WaitGroup
	for i := range churners {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id := fmt.Sprintf("ch%d", i)
			for k := 0; time.Since(start) < churnFor; k++ {
				v := visit{node: (i + k) % len(nodes)}
				cfg := crashClient()
				var mu sync.Mutex
				closing := false
				cfg.OnState = func(sc client.StateChange) {
					mu.Lock()
					defer mu.Unlock()
					if sc.From == client.Open && !closing {
						t.Errorf("client %s on node %s: connection went %v (%v) while held", id, nodes[v.node].name, sc.To, sc.Err)
					}
				}
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				c, err := client.Dial(ctx, nodes[v.node].wsURL(id), cfg)
				cancel()
				if err != nil {
					t.Errorf("client %s: dial node %s: %v", id, nodes[v.node].name, err)
					return
				}
				v.opened = time.Now()
				time.Sleep([]time.Duration{400 * time.Millisecond, 2 * time.Second}[k%2]) // the hold is the churn
				mu.Lock()
				closing = true
				mu.Unlock()
				v.closed = time.Now()
				_ = c.Close()
				visits[i] = append(visits[i], v)
				if time.Since(start) < churnFor {
					time.Sleep([]time.Duration{short, long}[(i+k)%2]) // the absence is the churn
				}
			}
		}()
	}

	// Meanwhile: Lookup through every node, for the clients that stay.
	type seenAt struct {
		node, id       string
		since, lastSee time.Time
		at             time.Time
	}
	var reads []seenAt
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	for polling := true; polling; {
		select {
		case <-done:
			polling = false
		case <-time.After(2 * time.Second): // sampling presence while the churn runs
		}
		for _, id := range stayIDs {
			var sinces []time.Time
			for _, n := range nodes {
				at := time.Now()
				cs, since, last := n.status(t, id)
				if !cs.Online {
					t.Errorf("node %s: client %s offline, want online", n.name, id)
				}
				sinces = append(sinces, since)
				reads = append(reads, seenAt{n.name, id, since, last, at})
			}
			for _, s := range sinces[1:] {
				if !s.Equal(sinces[0]) {
					t.Errorf("client %s: Since differs between nodes: %v", id, sinces)
				}
			}
		}
	}
	// Let the last closes go offline.
	time.Sleep(offBound + slack) // offlines land on Redis's sweep schedule: nothing to wait on

	// Every transition, from the three nodes' logs, per client in Seq order.
	type tr struct {
		ev, reason, by string
		seq            float64
		at             time.Time
	}
	byClient := map[string][]tr{}
	for _, n := range nodes {
		for _, l := range n.p.lines() {
			if ev := l.str("event"); ev == "online" || ev == "offline" {
				seq, _ := l.M["seq"].(float64)
				byClient[l.str("client")] = append(byClient[l.str("client")], tr{ev, l.str("reason"), n.name, seq, l.At})
			}
		}
	}
	for id, evs := range byClient {
		sort.SliceStable(evs, func(i, j int) bool { return evs[i].seq < evs[j].seq })
		for i, e := range evs {
			switch {
			case i == 0 && e.ev != "online":
				t.Errorf("client %s: first transition %s", id, e.ev)
			case i > 0 && (e.ev == evs[i-1].ev || e.seq <= evs[i-1].seq):
				t.Errorf("client %s: %s (seq %.0f) after %s (seq %.0f)", id, e.ev, e.seq, evs[i-1].ev, evs[i-1].seq)
			}
			if e.ev == "offline" && e.reason != string(presence.ReasonClosed) {
				t.Errorf("client %s: offline for %q (on node %s), want only closes", id, e.reason, e.by)
			}
		}
	}
	for _, id := range stayIDs {
		if evs := byClient[id]; len(evs) != 1 {
			t.Errorf("client %s stayed connected: transitions %v, want its Online alone", id, evs)
		}
		untouched(t, stay[id], "clock skew: client "+id)
	}

	// Each absence: past Grace + 2×SweepInterval exactly one Offline, within
	// its bounds; within Grace none.
	delays := map[string][]time.Duration{} // by the node that held the session
	handovers, offlines, falseOff := 0, 0, 0
	for _, id := range stayIDs {
		falseOff += len(byClient[id]) - 1
	}
	for i, vs := range visits {
		id := fmt.Sprintf("ch%d", i)
		var offs []tr
		for _, e := range byClient[id] {
			if e.ev == "offline" {
				offs = append(offs, e)
			}
		}
		want, unsure := 0, 0
		for k, v := range vs {
			back := time.Now().Add(time.Hour) // never came back
			if k+1 < len(vs) {
				back = vs[k+1].opened
			}
			var in []tr
			for _, e := range offs {
				if e.at.After(v.closed) && e.at.Before(back) {
					in = append(in, e)
				}
			}
			away := back.Sub(v.closed)
			switch {
			case away < skewGrace-margin:
				handovers++
				if len(in) != 0 {
					falseOff += len(in)
					t.Errorf("client %s left node %s and came back %v later: offline %v, want none", id, nodes[v.node].name, away, in)
				}
			case away > offBound+margin:
				offlines++
				want++
				if len(in) != 1 {
					t.Errorf("client %s left node %s for %v: %d offline events, want 1", id, nodes[v.node].name, away, len(in))
					continue
				}
				d := in[0].at.Sub(v.closed)
				delays[nodes[v.node].name] = append(delays[nodes[v.node].name], d)
				if d < skewGrace-50*time.Millisecond || d > offBound+slack {
					t.Errorf("client %s closed on node %s: offline %v later, want within [Grace %v, Grace + 2×SweepInterval %v] (+%v to reach the test)",
						id, nodes[v.node].name, d.Round(time.Millisecond), skewGrace, offBound, slack)
				}
			default: // too near a bound to say
				unsure++
			}
		}
		if len(offs) < want || len(offs) > want+unsure {
			falseOff += max(0, len(offs)-want-unsure)
			t.Errorf("client %s: %d offline events, want %d (and up to %d more for absences near a bound)", id, len(offs), want, unsure)
		}
	}
	if handovers == 0 || offlines == 0 {
		t.Errorf("%d handovers and %d offlines: the churn did not exercise both", handovers, offlines)
	}
	expired := 0
	for _, evs := range byClient {
		for _, e := range evs {
			if e.ev == "offline" && e.reason == string(presence.ReasonExpired) {
				expired++
			}
		}
	}

	// Lookup: the clients that stay came online when they connected, and
	// were last seen within a TTL of the read, on the machine's clock.
	var sinceOff, lastAge, leftOff time.Duration
	for _, rd := range reads {
		opened := stay[rd.id].openedAt
		d := rd.since.Sub(opened).Abs()
		sinceOff = max(sinceOff, d)
		if d > 2*time.Second {
			t.Errorf("node %s: client %s online since %v, %v from when it connected (%v)", rd.node, rd.id, rd.since, d, opened)
		}
		age := rd.at.Sub(rd.lastSee)
		lastAge = max(lastAge, age.Abs())
		if age < -2*time.Second || age > crashTTL+2*time.Second {
			t.Errorf("node %s: client %s last seen %v, read at %v: want within the TTL (%v) before", rd.node, rd.id, rd.lastSee, rd.at, crashTTL)
		}
	}
	// The churners, all gone: last seen when they closed, whichever node
	// answers.
	for i, vs := range visits {
		id := fmt.Sprintf("ch%d", i)
		if len(vs) == 0 {
			continue
		}
		last := vs[len(vs)-1].closed
		for _, n := range nodes {
			cs, _, seen := n.status(t, id)
			if cs.Online {
				t.Errorf("node %s: client %s online after it left", n.name, id)
			}
			d := seen.Sub(last)
			leftOff = max(leftOff, d.Abs())
			if d < -50*time.Millisecond || d > time.Second {
				t.Errorf("node %s: client %s last seen %v, %v after it closed", n.name, id, seen, d)
			}
		}
	}
	var perNode []string
	for _, n := range nodes {
		ds := delays[n.name]
		slices.Sort(ds)
		if len(ds) == 0 {
			t.Errorf("no offline measured for a session on node %s", n.name)
			continue
		}
		perNode = append(perNode, fmt.Sprintf("%s %d offlines, %v–%v after the close", n.name, len(ds),
			ds[0].Round(10*time.Millisecond), ds[len(ds)-1].Round(10*time.Millisecond)))
	}
	t.Logf("FIGURE clock-skew: nodes at 0, +30 s, -30 s; %d churn visits, %d handovers within Grace, %d offlines; %d false offline, %d expired; offline after the close, by the node that held the session: %s (Grace %v, bound %v); %d reads through the 3 nodes: Since at most %v from the connect, LastSeen at most %v old (TTL %v), a leaver's LastSeen at most %v from its close",
		len(slices.Concat(visits...)), handovers, offlines, falseOff, expired, strings.Join(perNode, "; "), skewGrace, offBound,
		len(reads), sinceOff.Round(time.Millisecond), lastAge.Round(time.Millisecond), crashTTL, leftOff.Round(time.Millisecond))
}

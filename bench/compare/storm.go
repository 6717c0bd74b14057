//go:build linux

package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/vigilhq/vigil/bench/internal/benchproc"
)

// stormResult is a reconnect storm: a node that held n connections is
// killed and started again, and n clients dial it within one second.
type stormResult struct {
	store         string
	newIDs        bool
	n             int
	load          string
	online        time.Duration // first dial to every client online in presence
	sessions      time.Duration // first dial to the node holding every session
	p50, p99, max time.Duration // the dials' times
	cpu           time.Duration // the node's CPU from its restart to all online
	failed        int64         // dials that failed five times
	overflows     int64         // dials the accept queue had no room for (machine-wide ListenOverflows)
	// offlines the node reported from its restart to Grace + 1 s after
	// fully online: with the same clients dialling again, none is due.
	offlines int64
	// When not fully online within 60 s: the counts then.
	lastSessions, lastOnline int64
}

// storm kills a node that holds o.rampN connections, starts it again with
// the same node ID (on Redis it then clears what it held before, through
// Grace), and the same clients dial again, o.rampN per second: a reconnect
// storm (with -storm-new-ids, as many new clients instead, whose count on
// Redis includes the old clients until their Grace is over). Fully online
// is when the node holds every session (vigil_presence_sessions) and the
// Store counts exactly those clients online
// (vigil_presence_online_clients).
func (o *options) storm(dir string, bins binaries) (*stormResult, error) {
	sc := scenario{name: "storm", server: "vigil", n: o.rampN, ping: 25 * time.Second, pong: 20 * time.Second,
		procs: o.procs, dir: dir, bins: bins, addr: benchproc.FreeAddr()}
	switch o.stormStore {
	case "memory":
	case "redis":
		if o.redisURL == "" {
			return nil, fmt.Errorf("-storm-store redis needs -redis-url")
		}
		sc.vigilArgs = []string{"-store", "redis", "-redis-url", o.redisURL, "-node-id", "storm",
			"-redis-prefix", "storm" + strconv.FormatInt(time.Now().UnixNano(), 36)}
	default:
		return nil, fmt.Errorf("unknown -storm-store %q", o.stormStore)
	}
	fmt.Fprintf(os.Stderr, "compare: storm (%s), %d connections before the restart\n", o.stormStore, sc.n)
	e, err := sc.start("warn")
	if err != nil {
		return nil, err
	}
	if err := e.connect(); err != nil {
		e.stop()
		return nil, err
	}
	_ = e.srv.Process.Signal(syscall.SIGKILL)
	_ = e.srv.Wait()
	e.srv = nil
	e.stop() // the load processes

	sc.rate = float64(sc.n) // all within one second
	if o.stormNewIDs {
		sc.idPrefix = "s"
	}
	r := &stormResult{store: o.stormStore, newIDs: o.stormNewIDs, n: sc.n, load: benchproc.LoadAvg()}
	fmt.Fprintf(os.Stderr, "compare: storm (%s), restart, %d clients dial within 1 s (load %s)\n", o.stormStore, sc.n, r.load)
	e, err = sc.start("warn")
	if err != nil {
		return nil, err
	}
	defer e.stop()
	var prof string
	if o.profile {
		prof = filepath.Join(sc.dir, "storm-"+o.stormStore+".pprof")
	}
	meas, err := e.startLoadsMeasured(prof)
	if err != nil {
		return nil, err
	}
	t0 := meas.t0
	// Fully online: every client that got its connection (the load
	// processes say how many, once they are done) has its session on the
	// node and counts online in the Store.
	want, reported := int64(sc.n), 0
	done := make([]bool, len(e.loads))
	deadline := t0.Add(60 * time.Second)
	for {
		for i, lp := range e.loads {
			if line, ok := lp.Poll("connected "); ok && !done[i] {
				var ok, failed int64
				if _, err := fmt.Sscanf(line, "connected %d failed %d", &ok, &failed); err == nil {
					want -= failed
					r.failed += failed
					done[i] = true
					reported++
				}
			}
		}
		m, err := benchproc.Scrape("http://" + e.addr + "/metrics")
		if err != nil {
			return nil, err
		}
		if r.sessions == 0 && m["vigil_presence_sessions"] == want {
			r.sessions = time.Since(t0)
		}
		if m["vigil_presence_sessions"] == want && m["vigil_presence_online_clients"] == want &&
			(want == int64(sc.n) || reported == len(e.loads)) {
			r.online = time.Since(t0)
			break
		}
		if time.Now().After(deadline) { // reported as not reached, with the counts
			r.lastSessions, r.lastOnline = m["vigil_presence_sessions"], m["vigil_presence_online_clients"]
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	// CPU to fully online, or to the 60 s deadline.
	if r.cpu, r.overflows, err = meas.end(); err != nil {
		return nil, err
	}
	// A client whose old session outlived its Grace before it came back
	// went offline: count what the node reported.
	time.Sleep(6 * time.Second) // the demo's Grace (5 s) and a beat
	after, err := benchproc.Scrape("http://" + e.addr + "/metrics")
	if err != nil {
		return nil, err
	}
	for k, v := range after {
		if strings.HasPrefix(k, `vigil_presence_transitions_total{to="offline"`) {
			r.offlines += v
		}
	}
	for i, lp := range e.loads { // wait for the dials' ends, for their times
		if !done[i] {
			if _, err := lp.Expect("connected ", 3*time.Minute); err != nil {
				return nil, err
			}
		}
	}
	var lats []time.Duration
	for _, lp := range e.loads {
		if err := benchproc.ReadLatencies(lp.latency, &lats); err != nil {
			return nil, err
		}
	}
	if len(lats) > 0 {
		slices.Sort(lats)
		r.p50, r.p99, r.max = benchproc.PctOf(lats, 50), benchproc.PctOf(lats, 99), lats[len(lats)-1]
	}
	return r, nil
}

func reportStorms(w io.Writer, ss []*stormResult) {
	if len(ss) == 0 {
		return
	}
	fmt.Fprintln(w, "\n| reconnect storm | clients | failed dials | load avg | node holds every session after | Store counts exactly them online after | offlines | accept-queue overflows | dial p50 | p99 | max | node CPU / connect |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|---|---|---|---|")
	for _, s := range ss {
		online := fmt.Sprintf("%.2f s", s.online.Seconds())
		if s.online == 0 {
			online = fmt.Sprintf("not within 60 s (%d sessions, %d online)", s.lastSessions, s.lastOnline)
		}
		cpu := s.cpu / time.Duration(s.n)
		who := "the same clients"
		if s.newIDs {
			who = "new clients"
		}
		fmt.Fprintf(w, "| %s store | %d %s in 1 s | %d | %s | %.2f s | %s | %d | %d | %.2f ms | %.2f ms | %.1f ms | %.1f µs |\n",
			s.store, s.n, who, s.failed, s.load, s.sessions.Seconds(), online, s.offlines, s.overflows, ms(s.p50), ms(s.p99), ms(s.max), us(cpu))
	}
}

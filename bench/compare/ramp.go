//go:build linux

package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/vigilhq/vigil/bench/internal/benchproc"
)

// rampResult is one server's ramp: connect latencies while dialling at a
// fixed rate, and RSS per connection 3 s after the ramp and after a forced
// GC.
type rampResult struct {
	server           string
	run, n           int
	rate             float64
	load             string // /proc/loadavg before the ramp
	p50, p99, max    time.Duration
	rampTime         time.Duration // first dial to the server holding every connection
	rss0, rss1, rss2 int64         // KiB: before, 3 s after the ramp, after GC
	cpu              time.Duration // server CPU over the ramp
	held             int64         // connections the server held after the ramp
	overflows        int64         // dials the accept queue had no room for (ListenOverflows)
}

func (r *rampResult) rss3s() float64      { return float64(r.rss1-r.rss0) / float64(r.n) }
func (r *rampResult) rssAfterGC() float64 { return float64(r.rss2-r.rss0) / float64(r.n) }
func (r *rampResult) cpuPerConnect() time.Duration {
	return r.cpu / time.Duration(r.n)
}

// ramp runs every ramp server o.runs times, interleaved (run 1 of each, then
// run 2 of each, ...), so that the machine's load falls on all alike.
func (o *options) ramp(dir string, bins binaries) ([]*rampResult, error) {
	var out []*rampResult
	for run := 1; run <= o.runs; run++ {
		for srv := range strings.SplitSeq(o.rampServers, ",") {
			sc := scenario{name: "ramp", server: srv, n: o.rampN, ping: 25 * time.Second, pong: 20 * time.Second,
				procs: o.procs, dir: dir, bins: bins, rate: o.rampRate, run: run}
			fmt.Fprintf(os.Stderr, "compare: ramp %d, %s, %d connections at %.0f/s (load %s)\n", run, srv, sc.n, sc.rate, benchproc.LoadAvg())
			r, err := sc.rampOnce(o.profile)
			if err != nil {
				return nil, fmt.Errorf("%s run %d: %w", srv, run, err)
			}
			out = append(out, r)
		}
	}
	return out, nil
}

func (sc scenario) rampOnce(profile bool) (*rampResult, error) {
	// The demo's hooks log every transition at info; that is the app's
	// cost, not the library's, so the ramp runs it at warn.
	e, err := sc.start("warn")
	if err != nil {
		return nil, err
	}
	defer e.stop()
	pid := e.srv.Process.Pid
	r := &rampResult{server: sc.server, run: sc.run, n: sc.n, rate: sc.rate}
	time.Sleep(time.Second)
	if r.rss0, err = benchproc.RSSKiB(pid); err != nil {
		return nil, err
	}
	r.load = benchproc.LoadAvg()
	var prof string
	if profile {
		prof = filepath.Join(sc.dir, fmt.Sprintf("ramp-%s-%d.pprof", sc.server, sc.run))
	}
	m, err := e.startLoadsMeasured(prof)
	if err != nil {
		return nil, err
	}
	// A server that lost connections on the way is reported, not dropped:
	// under heavy load a few runs lose some (the load processes saw them
	// open).
	if r.held, err = e.waitDialled(); err != nil {
		return nil, err
	}
	r.rampTime = time.Since(m.t0)
	if r.cpu, r.overflows, err = m.end(); err != nil {
		return nil, err
	}
	time.Sleep(3 * time.Second)
	if r.rss1, err = benchproc.RSSKiB(pid); err != nil {
		return nil, err
	}
	if err := benchproc.SaveURL("http://"+e.dbg+"/debug/pprof/heap?gc=1", filepath.Join(sc.dir, fmt.Sprintf("ramp-%s-%d-heap.pb.gz", sc.server, sc.run))); err != nil {
		return nil, err
	}
	// The text form ends with runtime.MemStats (StackInuse, HeapAlloc).
	_ = benchproc.SaveURL("http://"+e.dbg+"/debug/pprof/heap?debug=1", filepath.Join(sc.dir, fmt.Sprintf("ramp-%s-%d-heap.txt", sc.server, sc.run)))
	time.Sleep(2 * time.Second)
	if r.rss2, err = benchproc.RSSKiB(pid); err != nil {
		return nil, err
	}
	var lats []time.Duration
	for _, lp := range e.loads {
		if err := benchproc.ReadLatencies(lp.latency, &lats); err != nil {
			return nil, err
		}
	}
	if len(lats) != sc.n {
		return nil, fmt.Errorf("%d latencies, want %d", len(lats), sc.n)
	}
	slices.Sort(lats)
	r.p50, r.p99, r.max = benchproc.PctOf(lats, 50), benchproc.PctOf(lats, 99), lats[len(lats)-1]
	return r, nil
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func reportRamps(w io.Writer, rs []*rampResult) {
	if len(rs) == 0 {
		return
	}
	fmt.Fprintln(w, "\n| run | server | conns (held) | rate | load avg | connect p50 | p99 | max | ramp | accept queue overflows | RSS / conn 3 s after | after GC | CPU / connect |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|---|---|---|---|---|")
	var order []string
	by := map[string][]*rampResult{}
	for _, r := range rs {
		fmt.Fprintf(w, "| %d | %s | %d (%d) | %.0f/s | %s | %.2f ms | %.2f ms | %.1f ms | %.2f s | %d | %.2f KiB | %.2f KiB | %.1f µs |\n",
			r.run, r.server, r.n, r.held, r.rate, r.load, ms(r.p50), ms(r.p99), ms(r.max), r.rampTime.Seconds(),
			r.overflows, r.rss3s(), r.rssAfterGC(), us(r.cpuPerConnect()))
		if by[r.server] == nil {
			order = append(order, r.server)
		}
		by[r.server] = append(by[r.server], r)
	}
	fmt.Fprintln(w, "\n| server | runs | median connect p50 | median p99 | median RSS / conn 3 s after | after GC | median CPU / connect |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|")
	for _, srv := range order {
		var p50, p99, rss1, rss2, cpu []float64
		for _, r := range by[srv] {
			p50 = append(p50, ms(r.p50))
			p99 = append(p99, ms(r.p99))
			rss1 = append(rss1, r.rss3s())
			rss2 = append(rss2, r.rssAfterGC())
			cpu = append(cpu, us(r.cpuPerConnect()))
		}
		fmt.Fprintf(w, "| %s | %d | %.2f ms | %.2f ms | %.2f KiB | %.2f KiB | %.1f µs |\n",
			srv, len(by[srv]), median(p50), median(p99), median(rss1), median(rss2), median(cpu))
	}
}

//go:build linux

// Command compare measures vigil's chat demo against the hand-written gorilla
// pattern (bench/handwritten), each run as a separate process with idle
// WebSocket connections opened by several bench/load processes bound to
// several 127.0.0.x source addresses. From the repository root:
//
//	go run ./bench/compare                      # every scenario, both servers
//	go run ./bench/compare -scenarios pressure  # one of idle, pressure, detect
//
// For each server and scenario it starts a fresh server, notes its RSS
// (VmRSS in /proc/PID/status) and goroutine count (/debug/pprof/goroutine on
// -debug-addr), opens the connections, waits -settle so that every
// connection has been pinged, notes them again, then measures the server's
// CPU time (utime+stime in /proc/PID/stat) and the pings it sent
// (vigil_ws_pings_total on /metrics) over a fixed window. Scenarios:
//
//   - idle: 15,000 connections, ping interval 25 s (pong timeout 20 s).
//   - pressure: 5,000 connections, ping interval 1 s (pong timeout 2 s).
//   - detect (demo only): 5,000 connections, ping interval 1 s, pong
//     timeout 2 s; then every load process freezes (stops reading and
//     answering) and the tool measures, per client, the time from the last
//     pong it sent to the demo's JSON log line of its offline event and of
//     its connection closed.
//
// The figures are printed as Markdown tables for docs/BENCHMARKS.md.
package main

import (
	"bufio"
	"cmp"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/vigilhq/vigil/bench/internal/benchproc"
)

func main() {
	var o options
	flag.StringVar(&o.scenarios, "scenarios", "idle,pressure,detect", "comma-separated scenarios: idle, pressure, detect, ramp, storm")
	flag.StringVar(&o.servers, "servers", "vigil,handwritten", "comma-separated servers: vigil (the chat demo), handwritten")
	flag.IntVar(&o.idleN, "idle-n", 15000, "connections of the idle scenario")
	flag.IntVar(&o.pressureN, "pressure-n", 5000, "connections of the pressure and detect scenarios")
	flag.IntVar(&o.procs, "procs", 4, "load processes (each dials from two 127.0.0.x addresses)")
	flag.DurationVar(&o.idleWindow, "idle-window", 50*time.Second, "CPU window of the idle scenario")
	flag.DurationVar(&o.pressureWindow, "pressure-window", 15*time.Second, "CPU window of the pressure scenario")
	flag.DurationVar(&o.settle, "settle", 0, "wait after connecting, before measuring (default: ping interval + 5s)")
	flag.StringVar(&o.dir, "dir", "", "where to build binaries and keep logs (default: a temporary directory, removed)")
	flag.StringVar(&o.rampServers, "ramp-servers", "vigil,gws,lean,handwritten", "servers of the ramp scenario")
	flag.IntVar(&o.rampN, "ramp-n", 15000, "connections of the ramp and storm scenarios")
	flag.Float64Var(&o.rampRate, "ramp-rate", 3000, "dials per second of the ramp scenario, over all load processes")
	flag.IntVar(&o.runs, "runs", 3, "runs of the ramp scenario (medians are reported)")
	flag.StringVar(&o.stormStore, "storm-store", "memory", "store of the storm scenario: memory or redis")
	flag.BoolVar(&o.stormNewIDs, "storm-new-ids", false, "storm: the clients that dial after the restart are new ones, not those that were connected")
	flag.StringVar(&o.redisURL, "redis-url", "", "Redis URL for -storm-store redis")
	flag.StringVar(&o.base, "base", "", "also run the demo built from this checkout, as server \"base\" (a before/after in one run)")
	flag.BoolVar(&o.profile, "profile", false, "ramp, storm: save a 5 s CPU profile of each server during its ramp, of the node after its restart")
	flag.Parse()
	if err := o.run(os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "compare:", err)
		os.Exit(1)
	}
}

type options struct {
	scenarios, servers         string
	idleN, pressureN, procs    int
	idleWindow, pressureWindow time.Duration
	settle                     time.Duration
	dir                        string
	rampServers                string
	rampN, runs                int
	rampRate                   float64
	stormStore, redisURL       string
	stormNewIDs                bool
	profile                    bool
	base                       string

	// Filled by run, for tests.
	results []*result
	detects []*detection
	ramps   []*rampResult
	storms  []*stormResult
}

func (o *options) run(out io.Writer) error {
	dir, cleanup, err := benchproc.WorkDir(o.dir, "vigil-bench-")
	if err != nil {
		return err
	}
	defer cleanup()
	bins, err := build(dir)
	if err != nil {
		return err
	}
	if o.base != "" {
		// The demo of another checkout, for a before/after in one run.
		bins.base = filepath.Join(dir, "chat-base")
		cmd := exec.Command("go", "build", "-o", bins.base, "./examples/chat")
		cmd.Dir = o.base
		cmd.Stderr = os.Stderr
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("go build %s/examples/chat: %w", o.base, err)
		}
	}
	servers := strings.Split(o.servers, ",")
	var results []*result
	var detects []*detection
	for sc := range strings.SplitSeq(o.scenarios, ",") {
		switch sc {
		case "idle", "pressure":
			cfg := scenario{name: sc, n: o.idleN, ping: 25 * time.Second, pong: 20 * time.Second, window: o.idleWindow}
			if sc == "pressure" {
				cfg = scenario{name: sc, n: o.pressureN, ping: time.Second, pong: 2 * time.Second, window: o.pressureWindow}
			}
			cfg.procs, cfg.dir, cfg.bins = o.procs, dir, bins
			cfg.settle = o.settle
			if cfg.settle <= 0 {
				cfg.settle = cfg.ping + 5*time.Second
			}
			for _, srv := range servers {
				cfg.server = srv
				fmt.Fprintf(os.Stderr, "compare: %s, %s, %d connections\n", sc, srv, cfg.n)
				r, err := cfg.measure()
				if err != nil {
					return fmt.Errorf("%s %s: %w", sc, srv, err)
				}
				results = append(results, r)
			}
		case "detect":
			cfg := scenario{name: sc, server: "vigil", n: o.pressureN, ping: time.Second, pong: 2 * time.Second,
				procs: o.procs, dir: dir, bins: bins}
			fmt.Fprintf(os.Stderr, "compare: detect, vigil, %d connections\n", cfg.n)
			d, err := cfg.detect()
			if err != nil {
				return fmt.Errorf("detect: %w", err)
			}
			detects = append(detects, d)
		case "ramp":
			rs, err := o.ramp(dir, bins)
			if err != nil {
				return fmt.Errorf("ramp: %w", err)
			}
			o.ramps = append(o.ramps, rs...)
		case "storm":
			st, err := o.storm(dir, bins)
			if err != nil {
				return fmt.Errorf("storm: %w", err)
			}
			o.storms = append(o.storms, st)
		default:
			return fmt.Errorf("unknown scenario %q", sc)
		}
	}
	report(out, results, detects)
	reportRamps(out, o.ramps)
	reportStorms(out, o.storms)
	o.results, o.detects = results, detects
	return nil
}

// binaries are the programs under test, built once.
type binaries struct{ vigil, base, handwritten, gws, load string }

func build(dir string) (binaries, error) {
	b := binaries{
		vigil:       filepath.Join(dir, "chat"),
		handwritten: filepath.Join(dir, "handwritten"),
		gws:         filepath.Join(dir, "gws"),
		load:        filepath.Join(dir, "load"),
	}
	if err := benchproc.Build(map[string]string{
		"github.com/vigilhq/vigil/examples/chat":     b.vigil,
		"github.com/vigilhq/vigil/bench/handwritten": b.handwritten,
		"github.com/vigilhq/vigil/bench/load":        b.load,
	}); err != nil {
		return b, err
	}
	// bench/gws is a module of its own, so that vigil's does not require gws.
	root, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}").Output()
	if err != nil {
		return b, fmt.Errorf("go list -m: %w", err)
	}
	cmd := exec.Command("go", "build", "-o", b.gws, ".")
	cmd.Dir = filepath.Join(strings.TrimSpace(string(root)), "bench", "gws")
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		return b, fmt.Errorf("go build bench/gws: %w", err)
	}
	return b, nil
}

type scenario struct {
	name, server string
	n, procs     int
	ping, pong   time.Duration
	window       time.Duration
	settle       time.Duration
	dir          string
	bins         binaries

	// For ramp and storm.
	rate      float64  // dials per second over all load processes; 0: closed loop
	addr      string   // listen here (a restart keeps the address); "": a free one
	vigilArgs []string // more flags for the demo
	idPrefix  string   // of the load processes' client IDs; "": l
	run       int      // which run, for file names
}

type result struct {
	scenario, server string
	n                int
	ping             time.Duration
	rss0, rss1       int64 // KiB
	g0, g1           int
	window           time.Duration
	cpu, loadCPU     time.Duration
	pings            int64
}

func (r *result) rssPerConn() float64 { return float64(r.rss1-r.rss0) / float64(r.n) }
func (r *result) goroutinesPerConn() float64 {
	return float64(r.g1-r.g0) / float64(r.n)
}
func (r *result) cpuPerSec() time.Duration {
	return time.Duration(float64(r.cpu) / r.window.Seconds())
}
func (r *result) cpuPerPing() time.Duration {
	if r.pings == 0 {
		return 0
	}
	return r.cpu / time.Duration(r.pings)
}

// env is one running server with its load processes.
type env struct {
	sc        scenario
	srv       *exec.Cmd
	srvLog    string
	addr, dbg string
	loads     []*loadProc
}

type loadProc struct {
	*benchproc.Proc
	lastPong string
	latency  string
}

func (sc scenario) start(logLevel string) (*env, error) {
	e := &env{sc: sc, addr: cmp.Or(sc.addr, benchproc.FreeAddr()), dbg: benchproc.FreeAddr()}
	e.srvLog = filepath.Join(sc.dir, fmt.Sprintf("%s-%s-%d-%d.log", sc.name, sc.server, sc.run, time.Now().UnixNano()))
	logf, err := os.Create(e.srvLog)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	args := []string{"-addr", e.addr, "-debug-addr", e.dbg,
		"-ping-interval", sc.ping.String(), "-pong-timeout", sc.pong.String()}
	var bin string
	switch sc.server {
	case "vigil", "base":
		bin = sc.bins.vigil
		if sc.server == "base" {
			bin = sc.bins.base
		}
		args = append(args, "-log-format", "json", "-log-level", logLevel)
		args = append(args, sc.vigilArgs...)
	case "handwritten":
		bin = sc.bins.handwritten
	case "lean":
		bin = sc.bins.handwritten
		args = append(args, "-lean")
	case "gws":
		bin = sc.bins.gws
	default:
		return nil, fmt.Errorf("unknown server %q", sc.server)
	}
	e.srv = exec.Command(bin, args...)
	e.srv.Stdout, e.srv.Stderr = logf, logf
	if err := e.srv.Start(); err != nil {
		return nil, err
	}
	if err := benchproc.WaitHTTP("http://"+e.addr+"/metrics", 10*time.Second); err != nil {
		e.stop()
		return nil, err
	}
	if err := benchproc.WaitHTTP("http://"+e.dbg+"/debug/pprof/", 10*time.Second); err != nil {
		e.stop()
		return nil, err
	}
	return e, nil
}

// connect starts the load processes and waits until the server holds every
// connection.
func (e *env) connect() error {
	if err := e.startLoads(); err != nil {
		return err
	}
	return e.waitLoads()
}

// startLoads starts the load processes, which dial at once.
func (e *env) startLoads() error {
	sc := e.sc
	for i := range sc.procs {
		n := sc.n / sc.procs
		if i < sc.n%sc.procs {
			n++
		}
		lp := &loadProc{lastPong: filepath.Join(sc.dir, fmt.Sprintf("lastpong-%d", i)),
			latency: filepath.Join(sc.dir, fmt.Sprintf("latency-%d", i))}
		src := fmt.Sprintf("127.0.0.%d,127.0.0.%d", 2+2*i, 3+2*i)
		args := []string{"-url", "ws://" + e.addr + "/ws", "-n", strconv.Itoa(n),
			"-src", src, "-id", fmt.Sprintf("%s%d-", cmp.Or(sc.idPrefix, "l"), i), "-lastpong", lp.lastPong,
			"-latency", lp.latency}
		if sc.rate > 0 {
			args = append(args, "-rate", strconv.FormatFloat(sc.rate/float64(sc.procs), 'f', -1, 64))
		}
		p, err := benchproc.Start(exec.Command(sc.bins.load, args...))
		if err != nil {
			return err
		}
		lp.Proc = p
		e.loads = append(e.loads, lp)
	}
	return nil
}

// waitLoads waits until every load process has dialled and the server holds
// every connection.
// measure is a window over which a server is measured, from the start of
// its load processes: its CPU and the machine's accept-queue overflows.
type measure struct {
	pid  int
	t0   time.Time
	cpu0 time.Duration
	ov0  int64
}

// startLoadsMeasured starts the load processes and a measure; with
// profile set, it also saves a 5 s CPU profile of the server there.
func (e *env) startLoadsMeasured(profile string) (*measure, error) {
	m := &measure{pid: e.srv.Process.Pid}
	var err error
	if m.cpu0, err = benchproc.CPUTime(m.pid); err != nil {
		return nil, err
	}
	if m.ov0, err = benchproc.ListenOverflows(); err != nil {
		return nil, err
	}
	m.t0 = time.Now()
	if err := e.startLoads(); err != nil {
		return nil, err
	}
	if profile != "" {
		go func() { _ = benchproc.SaveURL("http://"+e.dbg+"/debug/pprof/profile?seconds=5", profile) }()
	}
	return m, nil
}

// end returns the server's CPU and the machine's accept-queue overflows
// since the measure started.
func (m *measure) end() (cpu time.Duration, overflows int64, err error) {
	c1, err := benchproc.CPUTime(m.pid)
	if err != nil {
		return 0, 0, err
	}
	ov1, err := benchproc.ListenOverflows()
	if err != nil {
		return 0, 0, err
	}
	return c1 - m.cpu0, ov1 - m.ov0, nil
}

func (e *env) waitLoads() error {
	held, err := e.waitDialled()
	if err != nil {
		return err
	}
	if held != int64(e.sc.n) {
		return fmt.Errorf("server holds %d connections, want %d", held, e.sc.n)
	}
	return nil
}

// waitDialled waits until every load process has dialled without a
// failure, then for at most 30 s until the server holds every connection,
// and returns how many it holds.
func (e *env) waitDialled() (int64, error) {
	sc := e.sc
	for i, lp := range e.loads {
		line, err := lp.Expect("connected ", 3*time.Minute)
		if err != nil {
			return 0, fmt.Errorf("load %d: %w", i, err)
		}
		if !strings.HasSuffix(line, " failed 0") {
			return 0, fmt.Errorf("load %d: %s", i, line)
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		m, err := benchproc.Scrape("http://" + e.addr + "/metrics")
		if err != nil {
			return 0, err
		}
		if m[benchproc.WSConns] == int64(sc.n) || time.Now().After(deadline) {
			return m[benchproc.WSConns], nil
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (e *env) stop() {
	for _, lp := range e.loads {
		_ = lp.Cmd.Process.Signal(syscall.SIGTERM)
	}
	for _, lp := range e.loads {
		lp.Stop(10 * time.Second)
	}
	if e.srv != nil && e.srv.Process != nil {
		_ = e.srv.Process.Kill()
		_ = e.srv.Wait()
	}
}

// measure runs the memory and CPU measurement of one server.
func (sc scenario) measure() (*result, error) {
	e, err := sc.start("info")
	if err != nil {
		return nil, err
	}
	defer e.stop()
	pid := e.srv.Process.Pid
	r := &result{scenario: sc.name, server: sc.server, n: sc.n, ping: sc.ping, window: sc.window}
	time.Sleep(time.Second)
	if r.rss0, err = benchproc.RSSKiB(pid); err != nil {
		return nil, err
	}
	if r.g0, err = goroutines(e.dbg); err != nil {
		return nil, err
	}
	if err := e.connect(); err != nil {
		return nil, err
	}
	// By default every connection has been pinged at least once.
	time.Sleep(sc.settle)
	if r.rss1, err = benchproc.RSSKiB(pid); err != nil {
		return nil, err
	}
	if r.g1, err = goroutines(e.dbg); err != nil {
		return nil, err
	}
	// For a closer look: the heap profile ends with runtime.MemStats.
	_ = benchproc.SaveURL("http://"+e.dbg+"/debug/pprof/heap?debug=1", filepath.Join(sc.dir, sc.name+"-"+sc.server+"-heap.txt"))

	m0, err := benchproc.Scrape("http://" + e.addr + "/metrics")
	if err != nil {
		return nil, err
	}
	c0, err := benchproc.CPUTime(pid)
	if err != nil {
		return nil, err
	}
	l0 := e.loadCPU()
	time.Sleep(sc.window)
	c1, err := benchproc.CPUTime(pid)
	if err != nil {
		return nil, err
	}
	l1 := e.loadCPU()
	m1, err := benchproc.Scrape("http://" + e.addr + "/metrics")
	if err != nil {
		return nil, err
	}
	if m1[benchproc.WSConns] != int64(sc.n) {
		return nil, fmt.Errorf("server holds %d connections after the window, want %d", m1[benchproc.WSConns], sc.n)
	}
	r.cpu, r.loadCPU = c1-c0, l1-l0
	r.pings = m1["vigil_ws_pings_total"] - m0["vigil_ws_pings_total"]
	return r, nil
}

func (e *env) loadCPU() time.Duration {
	var total time.Duration
	for _, lp := range e.loads {
		c, _ := benchproc.CPUTime(lp.Cmd.Process.Pid)
		total += c
	}
	return total
}

type detection struct {
	n, detected, closed      int
	offline, close, fromStop []time.Duration // sorted
}

// detect freezes every client and measures when the demo drops them.
func (sc scenario) detect() (*detection, error) {
	e, err := sc.start("info")
	if err != nil {
		return nil, err
	}
	defer e.stop()
	if err := e.connect(); err != nil {
		return nil, err
	}
	time.Sleep(sc.ping + sc.pong) // every connection is in its ping rhythm
	stopped := time.Now()
	for _, lp := range e.loads {
		if err := lp.Cmd.Process.Signal(syscall.SIGUSR1); err != nil {
			return nil, err
		}
	}
	for i, lp := range e.loads {
		if _, err := lp.Expect("frozen", 10*time.Second); err != nil {
			return nil, fmt.Errorf("load %d: %w", i, err)
		}
	}
	deadline := time.Now().Add(3 * (sc.ping + sc.pong))
	for {
		m, err := benchproc.Scrape("http://" + e.addr + "/metrics")
		if err != nil {
			return nil, err
		}
		if m[benchproc.WSConns] == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(2 * time.Second) // the last offline hooks log

	lastPong := make(map[string]time.Time, sc.n)
	for _, lp := range e.loads {
		if err := readLastPongs(lp.lastPong, lastPong); err != nil {
			return nil, err
		}
	}
	offline, closed, err := readDemoLog(e.srvLog)
	if err != nil {
		return nil, err
	}
	d := &detection{n: len(lastPong)}
	for id, last := range lastPong {
		if t, ok := offline[id]; ok {
			d.detected++
			d.offline = append(d.offline, t.Sub(last))
			d.fromStop = append(d.fromStop, t.Sub(stopped))
		}
		if t, ok := closed[id]; ok {
			d.closed++
			d.close = append(d.close, t.Sub(last))
		}
	}
	slices.Sort(d.offline)
	slices.Sort(d.close)
	slices.Sort(d.fromStop)
	return d, nil
}

func readLastPongs(path string, into map[string]time.Time) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		id, ns, ok := strings.Cut(sc.Text(), " ")
		if !ok {
			return fmt.Errorf("%s: bad line %q", path, sc.Text())
		}
		v, err := strconv.ParseInt(ns, 10, 64)
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		into[id] = time.Unix(0, v)
	}
	return sc.Err()
}

// readDemoLog returns, per client, the time of the demo's last offline line
// and of its last "connection closed" line.
func readDemoLog(path string) (offline, closed map[string]time.Time, err error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	offline, closed = make(map[string]time.Time), make(map[string]time.Time)
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var l struct {
			Time     time.Time `json:"time"`
			Msg      string    `json:"msg"`
			Event    string    `json:"event"`
			Client   string    `json:"client"`
			ClientID string    `json:"client_id"`
		}
		if json.Unmarshal(sc.Bytes(), &l) != nil {
			continue
		}
		switch {
		case l.Event == "offline":
			offline[l.Client] = l.Time
		case l.Msg == "middleware: connection closed":
			closed[l.ClientID] = l.Time
		}
	}
	return offline, closed, sc.Err()
}

func goroutines(dbg string) (int, error) {
	resp, err := benchproc.HTTP.Get("http://" + dbg + "/debug/pprof/goroutine?debug=1")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	line, err := bufio.NewReader(resp.Body).ReadString('\n')
	if err != nil {
		return 0, err
	}
	var n int
	if _, err := fmt.Sscanf(line, "goroutine profile: total %d", &n); err != nil {
		return 0, fmt.Errorf("goroutine profile: %q: %w", line, err)
	}
	return n, nil
}

func report(w io.Writer, results []*result, detects []*detection) {
	if len(results) > 0 {
		fmt.Fprintln(w, "| scenario | server | conns | RSS growth / conn | goroutines / conn | server CPU / s | pings / s | CPU / ping | load CPU / s |")
		fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|---|")
		for _, r := range results {
			fmt.Fprintf(w, "| %s (P=%v) | %s | %d | %.2f KiB | %.2f | %.1f ms | %.0f | %.1f µs | %.1f ms |\n",
				r.scenario, r.ping, r.server, r.n, r.rssPerConn(), r.goroutinesPerConn(),
				ms(r.cpuPerSec()), float64(r.pings)/r.window.Seconds(), us(r.cpuPerPing()),
				ms(time.Duration(float64(r.loadCPU)/r.window.Seconds())))
		}
		for _, a := range results {
			if a.server != "vigil" {
				continue
			}
			for _, b := range results {
				if b.server == "handwritten" && b.scenario == a.scenario && b.cpu > 0 {
					fmt.Fprintf(w, "\n%s: vigil / hand-written: CPU per second %.2f, CPU per ping %.2f, RSS per connection %.2f\n",
						a.scenario, float64(a.cpuPerSec())/float64(b.cpuPerSec()),
						float64(a.cpuPerPing())/float64(b.cpuPerPing()), a.rssPerConn()/b.rssPerConn())
				}
			}
		}
	}
	for _, d := range detects {
		fmt.Fprintf(w, "\n| dead-peer detection (P=1s, PongTimeout=2s) | n | p50 | p99 | max |\n|---|---|---|---|---|\n")
		if d.closed > 0 { // only with -log-level debug; the offline follows the close
			fmt.Fprintf(w, "| last pong → connection closed (log) | %d/%d | %s | %s | %s |\n", d.closed, d.n, benchproc.Pct(d.close, 50), benchproc.Pct(d.close, 99), benchproc.Pct(d.close, 100))
		}
		fmt.Fprintf(w, "| last pong → offline fired (log) | %d/%d | %s | %s | %s |\n", d.detected, d.n, benchproc.Pct(d.offline, 50), benchproc.Pct(d.offline, 99), benchproc.Pct(d.offline, 100))
		fmt.Fprintf(w, "| clients frozen → offline fired | %d/%d | %s | %s | %s |\n", d.detected, d.n, benchproc.Pct(d.fromStop, 50), benchproc.Pct(d.fromStop, 99), benchproc.Pct(d.fromStop, 100))
	}
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
func us(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }

//go:build linux

// Command scale runs many demo nodes (examples/chat, built with go build) on
// one Redis, a single server or a Cluster, opens idle WebSocket connections
// to them from several bench/load processes bound to several 127.0.0.x
// source addresses, holds them, churns them, and checks that presence is
// exact: every node's Count and List give exactly the clients whose
// connections are open, with no ghost and none missing. From the
// repository root:
//
//	go run ./bench/scale -nodes 5 -conns 99000 -loads 6 -rate 600           # one Redis of its own
//	go run ./bench/scale -nodes 5 -conns 99000 -loads 6 -rate 600 -cluster  # a 3-master Cluster of its own
//	go run ./bench/scale -redis 127.0.0.1:6379                    # an existing server
//	go run ./bench/scale -redis-cluster 127.0.0.1:7000,127.0.0.1:7001
//
// Without -redis or -redis-cluster it starts redis-server itself (on free
// loopback ports, nothing on disk) and stops it at the end; with them it
// uses a key namespace of its own and deletes its keys at the end.
//
// Phases:
//
//  1. start: the nodes (-store redis, one -redis-prefix, node IDs n0, n1,
//     …, default ping interval, pong timeout and Grace unless set);
//  2. ramp: -loads load processes, each dialling every node round robin
//     from two source addresses of its own (-src-base, then the next ones),
//     each holding fewer than 19,000 connections (the process file limit
//     is 20,000), together at -rate connections per second; each
//     connection is a client of its own. A connection a node closes (an
//     overloaded machine misses pongs) is dialled again under its ID with
//     backoff, as a client would, and counted in the report;
//  3. hold for -hold: each node's CPU (utime+stime in /proc/PID/stat) and
//     Redis's CPU (INFO used_cpu_sys+used_cpu_user) and commands
//     (total_commands_processed) over the window, then each node's VmRSS
//     growth per connection it holds and Redis's used_memory growth per
//     session; then the first exactness check;
//  4. churn: every load process closes the share -churn of its
//     connections and dials them again, half under the same client ID (a
//     reload: no offline), half under a new one (the old ID goes offline
//     after Grace); exactness check;
//  5. kill: one load process is killed with SIGKILL; the time from the
//     kill until every node's Count has dropped all of its clients (they
//     go offline Grace after their node sees the sockets close), then an
//     exactness check.
//
// An exactness check asks every node for its Count (the
// vigil_presence_online_clients gauge of /metrics, one Store count), its
// List (GET /presence, every page) and the count of room general (GET
// /rooms/general, every session's room), and compares them with the IDs
// the load processes report open ("ids" on their standard input). It polls
// until all match or -settle passes; the command exits non-zero when one
// does not.
//
// The report is printed as Markdown for docs/BENCHMARKS.md; each figure of
// CPU or time is printed beside the load average at the time.
package main

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/vigilhq/vigil/bench/internal/benchproc"
)

func main() {
	var o options
	flag.IntVar(&o.nodes, "nodes", 5, "demo nodes")
	flag.IntVar(&o.conns, "conns", 10000, "connections (one client each), spread evenly over the nodes")
	flag.IntVar(&o.loads, "loads", 0, "load processes (default: the fewest with at most 16,000 connections each)")
	flag.StringVar(&o.redis, "redis", "", "address of a Redis server to use (default: start one)")
	flag.StringVar(&o.redisCluster, "redis-cluster", "", "comma-separated addresses of a Redis Cluster's nodes to use")
	flag.BoolVar(&o.cluster, "cluster", false, "without -redis-cluster: start a 3-master Redis Cluster rather than one server")
	flag.Float64Var(&o.churn, "churn", 0.1, "share of each load process's connections to close and dial again")
	flag.BoolVar(&o.noKill, "no-kill", false, "skip killing a load process")
	flag.Float64Var(&o.rate, "rate", 1000, "connections opened per second during the ramp, over all load processes (0: as fast as they can)")
	flag.StringVar(&o.srcBase, "src-base", "127.0.0.2", "first source address; load process i dials from the (2i)-th and (2i+1)-th after it")
	flag.DurationVar(&o.hold, "hold", 30*time.Second, "window over which CPU and Redis commands are measured")
	flag.DurationVar(&o.settle, "settle", 0, "how long an exactness check may wait for presence to match (default: TTL + Grace + 30s)")
	flag.DurationVar(&o.ping, "ping-interval", 25*time.Second, "the nodes' -ping-interval")
	flag.DurationVar(&o.pong, "pong-timeout", 20*time.Second, "the nodes' -pong-timeout")
	flag.DurationVar(&o.grace, "grace", 5*time.Second, "the nodes' -grace")
	flag.StringVar(&o.dir, "dir", "", "where to build binaries and keep logs (default: a temporary directory, removed)")
	flag.Parse()
	if err := o.run(os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "scale:", err)
		os.Exit(1)
	}
}

type options struct {
	nodes, conns, loads int
	redis, redisCluster string
	cluster, noKill     bool
	churn, rate         float64
	srcBase             string
	hold, settle        time.Duration
	ping, pong, grace   time.Duration
	dir                 string
	progress            io.Writer // default: standard error

	// Filled by run, for tests.
	res *result
}

// maxPerLoad keeps a load process under the 20,000 files a process may
// open, with room for its own.
const maxPerLoad = 19000

func (o *options) logf(format string, args ...any) {
	w := o.progress
	if w == nil {
		w = os.Stderr
	}
	fmt.Fprintf(w, "scale: %s [load %s]\n", fmt.Sprintf(format, args...), benchproc.LoadAvg())
}

// result holds the figures of one run.
type result struct {
	nodes, conns, loads int
	redisKind           string
	loadAvg             []string // at the start of the hold, its end, the kill

	rampTime                     time.Duration
	rampRedisCPU                 time.Duration
	rampCmds                     int64
	latency                      []time.Duration // sorted
	nodeConns                    []int64
	nodeRSS                      []float64 // KiB per connection
	nodeCPU                      []time.Duration
	redisCPU                     time.Duration // over the hold
	redisCmds                    int64         // over the hold
	redisMem0, redisMem1         int64
	hold                         time.Duration
	churned, churnFailed, killed int
	dropped                      int           // connections the load processes did not close that failed (and were dialled again)
	killOffline                  time.Duration // kill until every node counts them gone
	checks                       []check
}

// check is one exactness check.
type check struct {
	phase     string
	want      int
	exact     bool
	took      time.Duration // until exact, from the start of the check
	detail    string        // what differed, when not exact
	listTime  time.Duration // the slowest node's full List, the last time
	countSeen []int         // each node's Count, the last time
}

func (o *options) run(out io.Writer) error {
	if o.nodes < 1 || o.conns < o.nodes {
		return errors.New("need at least one node and one connection per node")
	}
	if o.loads <= 0 {
		o.loads = (o.conns + 16000 - 1) / 16000
	}
	if (o.conns+o.loads-1)/o.loads > maxPerLoad {
		return fmt.Errorf("%d connections over %d load processes is more than %d each: raise -loads", o.conns, o.loads, maxPerLoad)
	}
	if o.settle <= 0 {
		o.settle = o.ping + o.pong + o.grace + 30*time.Second
	}
	base := net.ParseIP(o.srcBase).To4()
	if base == nil {
		return fmt.Errorf("-src-base %q: want an IPv4 address", o.srcBase)
	}
	dir, cleanup, err := benchproc.WorkDir(o.dir, "vigil-scale-")
	if err != nil {
		return err
	}
	defer cleanup()
	chat, load := filepath.Join(dir, "chat"), filepath.Join(dir, "load")
	o.logf("building the demo and the load tool")
	if err := benchproc.Build(map[string]string{
		"github.com/vigilhq/vigil/examples/chat": chat,
		"github.com/vigilhq/vigil/bench/load":    load,
	}); err != nil {
		return err
	}

	rd, err := o.startRedis(dir)
	if err != nil {
		return err
	}
	defer rd.stop()

	r := &result{nodes: o.nodes, conns: o.conns, loads: o.loads, redisKind: rd.kind, hold: o.hold}
	o.res = r
	e := &env{o: o, r: r, rd: rd, dir: dir}
	defer e.stop()
	if err := e.startNodes(chat); err != nil {
		return err
	}
	if err := e.ramp(load, base); err != nil {
		return err
	}
	if err := e.holdPhase(); err != nil {
		return err
	}
	exact := e.checkExact("after the ramp")
	if o.churn > 0 {
		if err := e.churnPhase(); err != nil {
			return err
		}
		exact = e.checkExact("after the churn") && exact
	}
	if !o.noKill && len(e.loads) > 1 {
		if err := e.killPhase(); err != nil {
			return err
		}
		exact = e.checkExact("after the kill") && exact
	}
	if _, err := e.expected(); err != nil { // the drop counts, last
		return err
	}
	for _, l := range e.loads {
		r.dropped += l.dropped
	}
	report(out, r)
	if !exact {
		return errors.New("presence is not exact (see the checks above)")
	}
	return nil
}

// env is a running set of nodes and load processes.
type env struct {
	o     *options
	r     *result
	rd    *redisEnv
	dir   string
	nodes []*node
	loads []*loadProc
}

type node struct {
	id, addr string
	proc     *benchproc.Proc
	rss0     int64
}

type loadProc struct {
	*benchproc.Proc
	i       int
	n       int
	killed  bool
	dropped int // connections that failed without the load process closing them, last heard
}

func (e *env) stop() {
	for _, l := range e.loads {
		if !l.killed {
			_ = l.Cmd.Process.Signal(os.Interrupt)
		}
	}
	for _, l := range e.loads {
		l.Stop(10 * time.Second)
	}
	for _, n := range e.nodes {
		n.proc.Kill()
	}
}

func (e *env) startNodes(bin string) error {
	o := e.o
	e.o.logf("starting %d nodes on %s", o.nodes, e.rd.kind)
	for i := range o.nodes {
		n := &node{id: fmt.Sprintf("n%d", i), addr: benchproc.FreeAddr()}
		logf, err := os.Create(filepath.Join(e.dir, n.id+".log"))
		if err != nil {
			return err
		}
		args := []string{"-addr", n.addr, "-node-id", n.id, "-store", "redis", "-redis-prefix", e.rd.prefix,
			"-log-format", "json", "-log-level", "warn", // 100,000 online lines would cost CPU of their own
			"-ping-interval", o.ping.String(), "-pong-timeout", o.pong.String(), "-grace", o.grace.String()}
		if e.rd.clusterAddrs != "" {
			args = append(args, "-redis-cluster", e.rd.clusterAddrs)
		} else {
			args = append(args, "-redis-url", "redis://"+e.rd.addr+"/0")
		}
		cmd := child(bin, args...)
		cmd.Stderr = logf
		n.proc, err = benchproc.Start(cmd)
		logf.Close()
		if err != nil {
			return err
		}
		e.nodes = append(e.nodes, n)
	}
	for _, n := range e.nodes {
		if err := benchproc.WaitHTTP("http://"+n.addr+"/metrics", 20*time.Second); err != nil {
			return fmt.Errorf("node %s: %w", n.id, err)
		}
	}
	time.Sleep(time.Second) // let the nodes' start-up settle before the baselines
	for _, n := range e.nodes {
		var err error
		if n.rss0, err = benchproc.RSSKiB(n.proc.Cmd.Process.Pid); err != nil {
			return err
		}
	}
	var err error
	e.r.redisMem0, err = e.rd.usedMemory()
	return err
}

// ramp starts the load processes and waits until the nodes hold every
// connection.
func (e *env) ramp(bin string, base net.IP) error {
	o, r := e.o, e.r
	var urls []string
	for _, n := range e.nodes {
		urls = append(urls, "ws://"+n.addr+"/ws")
	}
	// Connection j of a load process goes to node j mod nodes: start each
	// load process at another node, so the nodes get the same share.
	cpu0, cmds0, err := e.rd.cpuAndCommands()
	if err != nil {
		return err
	}
	e.o.logf("ramp: %d connections from %d load processes, %.0f/s", o.conns, o.loads, o.rate)
	start := time.Now()
	for i := range o.loads {
		n := o.conns / o.loads
		if i < o.conns%o.loads {
			n++
		}
		rot := slices.Concat(urls[i%len(urls):], urls[:i%len(urls)])
		src := strings.Join([]string{addIP(base, 2*i), addIP(base, 2*i+1)}, ",")
		args := []string{"-url", strings.Join(rot, ","), "-n", strconv.Itoa(n),
			"-src", src, "-id", fmt.Sprintf("l%d-", i), "-latency", e.path("latency", i), "-redial"}
		if o.rate > 0 {
			args = append(args, "-rate", strconv.FormatFloat(o.rate/float64(o.loads), 'f', -1, 64))
		}
		p, err := benchproc.Start(child(bin, args...))
		if err != nil {
			return err
		}
		e.loads = append(e.loads, &loadProc{Proc: p, i: i, n: n})
	}
	for _, l := range e.loads {
		line, err := l.Expect("connected ", 10*time.Minute)
		if err != nil {
			return fmt.Errorf("load %d: %w", l.i, err)
		}
		if !strings.HasSuffix(line, " failed 0") {
			return fmt.Errorf("load %d: %s", l.i, line)
		}
	}
	if err := e.waitHeld(o.conns, time.Minute); err != nil {
		return err
	}
	r.rampTime = time.Since(start)
	cpu1, cmds1, err := e.rd.cpuAndCommands()
	if err != nil {
		return err
	}
	r.rampRedisCPU, r.rampCmds = cpu1-cpu0, cmds1-cmds0
	for _, l := range e.loads {
		if err := benchproc.ReadLatencies(e.path("latency", l.i), &r.latency); err != nil {
			return err
		}
	}
	slices.Sort(r.latency)
	e.o.logf("ramp done in %v", r.rampTime.Round(time.Millisecond))
	return nil
}

func (e *env) path(what string, i int) string {
	return filepath.Join(e.dir, fmt.Sprintf("%s-%d", what, i))
}

// waitHeld waits until the nodes hold n WebSocket connections between
// them, as long as the number keeps growing: it fails when it has not grown
// for stall.
func (e *env) waitHeld(n int, stall time.Duration) error {
	var best int64
	lastGrowth, lastLog := time.Now(), time.Now()
	for {
		var total int64
		var scrapeErr error
		for _, nd := range e.nodes {
			m, err := benchproc.Scrape("http://" + nd.addr + "/metrics")
			if err != nil {
				// An overloaded node may miss the client's timeout
				// (its /metrics counts in the Store): a stall, not an end.
				scrapeErr = fmt.Errorf("node %s: %w", nd.id, err)
				break
			}
			total += m[benchproc.WSConns]
		}
		if scrapeErr != nil {
			if time.Since(lastGrowth) > stall {
				return scrapeErr
			}
			e.o.logf("%v", scrapeErr)
			continue
		}
		if total == int64(n) {
			return nil
		}
		if total > best {
			best, lastGrowth = total, time.Now()
		}
		if time.Since(lastGrowth) > stall {
			return fmt.Errorf("the nodes hold %d connections, want %d; node %s's closes: %s",
				total, n, e.nodes[0].id, e.closes(e.nodes[0]))
		}
		if time.Since(lastLog) > 10*time.Second {
			if total < best {
				e.o.logf("the nodes hold %d connections of %d, down from %d; node %s's closes: %s",
					total, n, best, e.nodes[0].id, e.closes(e.nodes[0]))
			} else {
				e.o.logf("the nodes hold %d connections of %d", total, n)
			}
			lastLog = time.Now()
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// closes lists node n's series of closed connections and heartbeat
// timeouts, to tell why connections went.
func (e *env) closes(n *node) string {
	m, err := benchproc.Scrape("http://" + n.addr + "/metrics")
	if err != nil {
		return err.Error()
	}
	var out []string
	for k, v := range m {
		if strings.HasPrefix(k, "vigil_connections_closed_total") || strings.HasPrefix(k, "vigil_ws_heartbeat_timeouts_total") ||
			strings.HasPrefix(k, "vigil_presence_store_errors_total") {
			out = append(out, fmt.Sprintf("%s %d", k, v))
		}
	}
	slices.Sort(out)
	return strings.Join(out, ", ")
}

func (e *env) holdPhase() error {
	r := e.r
	e.o.logf("hold: %v", e.o.hold)
	r.loadAvg = append(r.loadAvg, benchproc.LoadAvg())
	cpu0 := make([]time.Duration, len(e.nodes))
	for i, n := range e.nodes {
		var err error
		if cpu0[i], err = benchproc.CPUTime(n.proc.Cmd.Process.Pid); err != nil {
			return err
		}
	}
	rc0, cmds0, err := e.rd.cpuAndCommands()
	if err != nil {
		return err
	}
	time.Sleep(e.o.hold)
	rc1, cmds1, err := e.rd.cpuAndCommands()
	if err != nil {
		return err
	}
	r.redisCPU, r.redisCmds = rc1-rc0, cmds1-cmds0
	r.loadAvg = append(r.loadAvg, benchproc.LoadAvg())
	for i, n := range e.nodes {
		pid := n.proc.Cmd.Process.Pid
		c, err := benchproc.CPUTime(pid)
		if err != nil {
			return err
		}
		rss, err := benchproc.RSSKiB(pid)
		if err != nil {
			return err
		}
		m, err := benchproc.Scrape("http://" + n.addr + "/metrics")
		if err != nil {
			return err
		}
		held := m[benchproc.WSConns]
		r.nodeConns = append(r.nodeConns, held)
		r.nodeCPU = append(r.nodeCPU, c-cpu0[i])
		r.nodeRSS = append(r.nodeRSS, float64(rss-n.rss0)/float64(max(held, 1)))
	}
	r.redisMem1, err = e.rd.usedMemory()
	return err
}

func (e *env) churnPhase() error {
	e.o.logf("churn: %.0f%% of each load process's connections", 100*e.o.churn)
	for _, l := range e.loads {
		if err := l.Send(fmt.Sprintf("churn %g", e.o.churn)); err != nil {
			return err
		}
	}
	for _, l := range e.loads {
		line, err := l.Expect("churned ", 5*time.Minute)
		if err != nil {
			return fmt.Errorf("load %d: %w", l.i, err)
		}
		var n, failed int
		if _, err := fmt.Sscanf(line, "churned %d failed %d", &n, &failed); err != nil {
			return fmt.Errorf("load %d: %q: %w", l.i, line, err)
		}
		e.r.churned += n
		e.r.churnFailed += failed
	}
	return nil
}

func (e *env) killPhase() error {
	victim := e.loads[len(e.loads)-1]
	ids, err := e.ids(victim)
	if err != nil {
		return err
	}
	want, err := e.expected()
	if err != nil {
		return err
	}
	want -= len(ids)
	e.o.logf("kill: load process %d (%d clients) with SIGKILL", victim.i, len(ids))
	e.r.killed = len(ids)
	killed := time.Now()
	victim.killed = true
	victim.Kill()
	deadline := killed.Add(e.o.settle)
	for k := 1; ; k++ {
		if k%40 == 0 { // every 2 s, in case connections dropped and came back
			if want, err = e.expected(); err != nil {
				return err
			}
		}
		all := true
		for _, n := range e.nodes {
			c, err := count(n)
			if err != nil || c != want { // a failed count (the Store timed out) is a "not yet"
				all = false
				break
			}
		}
		if all {
			e.r.killOffline = time.Since(killed)
			e.r.loadAvg = append(e.r.loadAvg, benchproc.LoadAvg())
			e.o.logf("every node counts the killed clients offline after %v", e.r.killOffline.Round(time.Millisecond))
			return nil
		}
		if time.Now().After(deadline) {
			e.r.killOffline = -1
			e.r.loadAvg = append(e.r.loadAvg, benchproc.LoadAvg())
			return nil // the exactness check that follows reports it
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// ids returns the IDs of load process l's open connections.
func (e *env) ids(l *loadProc) ([]string, error) {
	path := e.path("ids", l.i)
	if err := l.Send("ids " + path); err != nil {
		return nil, err
	}
	line, err := l.Expect("ids ", time.Minute)
	if err != nil {
		return nil, fmt.Errorf("load %d: %w", l.i, err)
	}
	var n, dropped int
	if _, err := fmt.Sscanf(line, "ids %d dropped %d", &n, &dropped); err != nil {
		return nil, fmt.Errorf("load %d: %q: %w", l.i, line, err)
	}
	l.dropped = dropped
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return strings.Fields(string(b)), nil
}

// expected returns the number of open connections of the live load
// processes.
func (e *env) expected() (int, error) {
	set, err := e.expectedSet()
	return len(set), err
}

func (e *env) expectedSet() (map[string]bool, error) {
	set := make(map[string]bool)
	for _, l := range e.loads {
		if l.killed {
			continue
		}
		ids, err := e.ids(l)
		if err != nil {
			return nil, err
		}
		for _, id := range ids {
			set[id] = true
		}
	}
	return set, nil
}

// checkExact polls every node until its Count, List and room count match
// the open connections, or -settle passes; it records the check.
func (e *env) checkExact(phase string) bool {
	start := time.Now()
	c := check{phase: phase}
	defer func() {
		e.r.checks = append(e.r.checks, c)
		if c.exact {
			e.o.logf("exact %s: %d clients on every node (after %v)", phase, c.want, c.took.Round(time.Millisecond))
		} else {
			e.o.logf("NOT EXACT %s: %s", phase, c.detail)
		}
	}()
	deadline := start.Add(e.o.settle)
	for {
		// Asked again each time: a connection the server dropped is
		// dialled again, a new session of the same client.
		want, err := e.expectedSet()
		if err != nil {
			c.detail = err.Error()
			return false
		}
		c.want = len(want)
		// The nodes are asked at the same time: one node's List of
		// 100,000 clients takes seconds.
		details := make([]string, len(e.nodes))
		counts := make([]int, len(e.nodes))
		lists := make([]time.Duration, len(e.nodes))
		var wg sync.WaitGroup
		for i, n := range e.nodes {
			wg.Go(func() { details[i], counts[i], lists[i] = e.nodeExact(n, want) })
		}
		wg.Wait()
		c.countSeen, c.listTime = counts, slices.Max(lists)
		c.detail = strings.Join(slices.DeleteFunc(details, func(d string) bool { return d == "" }), "; ")
		if c.detail == "" {
			c.exact, c.took = true, time.Since(start)
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// nodeExact returns what differs between node n's presence and want, or
// "" when nothing does, with the Count it read and how long its List took.
func (e *env) nodeExact(n *node, want map[string]bool) (diff string, cnt int, listTime time.Duration) {
	cnt, err := count(n)
	if err != nil {
		return err.Error(), cnt, 0
	}
	if cnt != len(want) {
		return fmt.Sprintf("node %s: Count %d, want %d", n.id, cnt, len(want)), cnt, 0
	}
	rc, err := roomCount(n, "general")
	if err != nil {
		return err.Error(), cnt, 0
	}
	if rc != len(want) {
		return fmt.Sprintf("node %s: room general counts %d, want %d", n.id, rc, len(want)), cnt, 0
	}
	t0 := time.Now()
	listed, err := list(n)
	if err != nil {
		return err.Error(), cnt, 0
	}
	listTime = time.Since(t0)
	var ghosts, missing []string
	for id := range listed {
		if !want[id] {
			ghosts = append(ghosts, id)
		}
	}
	for id := range want {
		if !listed[id] {
			missing = append(missing, id)
		}
	}
	if len(ghosts)+len(missing) > 0 || len(listed) != len(want) {
		slices.Sort(ghosts)
		slices.Sort(missing)
		return fmt.Sprintf("node %s: List has %d clients, %d ghosts %v, %d missing %v",
			n.id, len(listed), len(ghosts), first(ghosts, 5), len(missing), first(missing, 5)), cnt, listTime
	}
	return "", cnt, listTime
}

func first(s []string, n int) []string { return s[:min(n, len(s))] }

// count is node n's Count: the gauge its /metrics reads from the Store at
// each scrape.
func count(n *node) (int, error) {
	m, err := benchproc.Scrape("http://" + n.addr + "/metrics")
	if err != nil {
		return 0, fmt.Errorf("node %s: %w", n.id, err)
	}
	v, ok := m["vigil_presence_online_clients"]
	if !ok {
		return 0, fmt.Errorf("node %s: no vigil_presence_online_clients (the Store count failed?)", n.id)
	}
	return int(v), nil
}

func roomCount(n *node, room string) (int, error) {
	var page struct {
		Count int `json:"count"`
	}
	if err := getJSON("http://"+n.addr+"/rooms/"+room+"?limit=1", &page); err != nil {
		return 0, fmt.Errorf("node %s: %w", n.id, err)
	}
	return page.Count, nil
}

// list is node n's List: every page of GET /presence.
func list(n *node) (map[string]bool, error) {
	set := make(map[string]bool)
	cursor := ""
	for {
		var page struct {
			Clients []struct {
				ID     string `json:"id"`
				Online bool   `json:"online"`
			} `json:"clients"`
			Next string `json:"next"`
		}
		u := "http://" + n.addr + "/presence?limit=1000"
		if cursor != "" {
			u += "&cursor=" + cursor
		}
		if err := getJSON(u, &page); err != nil {
			return nil, fmt.Errorf("node %s: %w", n.id, err)
		}
		for _, c := range page.Clients {
			if c.Online {
				if set[c.ID] {
					return nil, fmt.Errorf("node %s: List gives %s twice", n.id, c.ID)
				}
				set[c.ID] = true
			}
		}
		if page.Next == "" {
			return set, nil
		}
		cursor = page.Next
	}
}

func getJSON(url string, v any) error {
	resp, err := benchproc.HTTP.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("GET %s: %s %s", url, resp.Status, b)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

// child is the command of a process the tool starts: killed when the
// tool dies, so that stopping the tool by a signal leaves no node, load
// process or redis-server behind.
func child(name string, args ...string) *exec.Cmd {
	cmd := exec.Command(name, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	return cmd
}

// addIP returns base + n, as a dotted IPv4 address.
func addIP(base net.IP, n int) string {
	v := uint32(base[0])<<24 | uint32(base[1])<<16 | uint32(base[2])<<8 | uint32(base[3])
	v += uint32(n)
	return net.IPv4(byte(v>>24), byte(v>>16), byte(v>>8), byte(v)).String()
}

// randText is a short random name.
func randText() string { return strings.ToLower(rand.Text()[:8]) }

// redisEnv is the Redis the nodes share: a server or Cluster of the
// tool's own, or one given by its address.
type redisEnv struct {
	kind         string
	addr         string // a single server
	clusterAddrs string // a Cluster, comma-separated
	prefix       string
	rdb          goredis.UniversalClient
	procs        []*exec.Cmd // servers started here
}

func (o *options) startRedis(dir string) (*redisEnv, error) {
	rd := &redisEnv{prefix: "scale-" + randText()}
	switch {
	case o.redisCluster != "":
		rd.kind, rd.clusterAddrs = "a Redis Cluster", o.redisCluster
	case o.redis != "":
		rd.kind, rd.addr = "one Redis server", o.redis
	case o.cluster:
		rd.kind = "a 3-master Redis Cluster"
		var addrs []string
		for i := range 3 {
			a, err := rd.startServer(filepath.Join(dir, fmt.Sprintf("redis-%d", i)),
				"--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf", "--cluster-node-timeout", "5000",
				"--cluster-port", portOf(benchproc.FreeAddr()))
			if err != nil {
				rd.stop()
				return nil, err
			}
			addrs = append(addrs, a)
		}
		out, err := exec.Command("redis-cli", append(append([]string{"--cluster", "create"}, addrs...),
			"--cluster-replicas", "0", "--cluster-yes")...).CombinedOutput()
		if err != nil {
			rd.stop()
			return nil, fmt.Errorf("redis-cli --cluster create: %w\n%s", err, out)
		}
		rd.clusterAddrs = strings.Join(addrs, ",")
	default:
		rd.kind = "one Redis server"
		a, err := rd.startServer(filepath.Join(dir, "redis"))
		if err != nil {
			return nil, err
		}
		rd.addr = a
	}
	if rd.clusterAddrs != "" {
		rd.rdb = goredis.NewClusterClient(&goredis.ClusterOptions{Addrs: strings.Split(rd.clusterAddrs, ",")})
	} else {
		rd.rdb = goredis.NewClient(&goredis.Options{Addr: rd.addr})
	}
	if err := rd.waitReady(30 * time.Second); err != nil {
		rd.stop()
		return nil, err
	}
	return rd, nil
}

func portOf(addr string) string {
	_, p, _ := net.SplitHostPort(addr)
	return p
}

// startServer starts a redis-server with nothing on disk on a free
// loopback port and returns its address.
func (rd *redisEnv) startServer(dir string, args ...string) (string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	addr := benchproc.FreeAddr()
	logf, err := os.Create(filepath.Join(dir, "redis.log"))
	if err != nil {
		return "", err
	}
	defer logf.Close()
	cmd := child("redis-server", append([]string{"--port", portOf(addr), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--dir", dir}, args...)...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return "", fmt.Errorf("start redis-server (install it: apt-get install redis-server): %w", err)
	}
	rd.procs = append(rd.procs, cmd)
	c := goredis.NewClient(&goredis.Options{Addr: addr, MaxRetries: -1})
	defer c.Close()
	deadline := time.Now().Add(15 * time.Second)
	for c.Ping(context.Background()).Err() != nil {
		if time.Now().After(deadline) {
			return "", fmt.Errorf("redis-server on %s did not start", addr)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return addr, nil
}

// waitReady waits until every server answers (and a Cluster is whole).
func (rd *redisEnv) waitReady(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		err := rd.forEach(func(ctx context.Context, c *goredis.Client) error {
			if err := c.Ping(ctx).Err(); err != nil {
				return err
			}
			if rd.clusterAddrs == "" {
				return nil
			}
			info, err := c.ClusterInfo(ctx).Result()
			if err != nil {
				return err
			}
			if !strings.Contains(info, "cluster_state:ok") {
				return errors.New("cluster_state not ok")
			}
			return nil
		})
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("redis not ready within %v: %w", timeout, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (rd *redisEnv) forEach(fn func(context.Context, *goredis.Client) error) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	switch c := rd.rdb.(type) {
	case *goredis.ClusterClient:
		c.ReloadState(ctx)
		return c.ForEachMaster(ctx, fn)
	case *goredis.Client:
		return fn(ctx, c)
	}
	return errors.New("unknown redis client")
}

// info returns the named numeric fields of INFO section, summed over the
// servers (every master of a Cluster).
func (rd *redisEnv) info(section string, fields ...string) ([]float64, error) {
	sums := make([]float64, len(fields))
	var mu sync.Mutex // ForEachMaster calls fn concurrently
	err := rd.forEach(func(ctx context.Context, c *goredis.Client) error {
		s, err := c.Info(ctx, section).Result()
		if err != nil {
			return err
		}
		got := make([]bool, len(fields))
		for line := range strings.SplitSeq(s, "\r\n") {
			k, v, ok := strings.Cut(line, ":")
			if !ok {
				continue
			}
			if i := slices.Index(fields, k); i >= 0 {
				f, err := strconv.ParseFloat(v, 64)
				if err != nil {
					return fmt.Errorf("INFO %s: %s: %w", section, k, err)
				}
				mu.Lock()
				sums[i] += f
				mu.Unlock()
				got[i] = true
			}
		}
		if i := slices.Index(got, false); i >= 0 {
			return fmt.Errorf("INFO %s has no %s", section, fields[i])
		}
		return nil
	})
	return sums, err
}

func (rd *redisEnv) usedMemory() (int64, error) {
	v, err := rd.info("memory", "used_memory")
	if err != nil {
		return 0, err
	}
	return int64(v[0]), nil
}

// cpuAndCommands returns Redis's CPU time (system + user) and the
// commands it has processed.
func (rd *redisEnv) cpuAndCommands() (time.Duration, int64, error) {
	cpu, err := rd.info("cpu", "used_cpu_sys", "used_cpu_user")
	if err != nil {
		return 0, 0, err
	}
	st, err := rd.info("stats", "total_commands_processed")
	if err != nil {
		return 0, 0, err
	}
	return time.Duration((cpu[0] + cpu[1]) * float64(time.Second)), int64(st[0]), nil
}

// stop stops the servers started here, or deletes the run's keys from
// servers it was given.
func (rd *redisEnv) stop() {
	if len(rd.procs) == 0 && rd.rdb != nil {
		_ = rd.forEach(func(ctx context.Context, c *goredis.Client) error {
			iter := c.Scan(ctx, 0, "{"+rd.prefix+":*", 1000).Iterator()
			var keys []string
			for iter.Next(ctx) {
				keys = append(keys, iter.Val())
			}
			for _, k := range keys {
				c.Del(ctx, k)
			}
			return iter.Err()
		})
	}
	if rd.rdb != nil {
		_ = rd.rdb.Close()
	}
	for _, cmd := range rd.procs {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	}
	rd.procs = nil
}

func report(w io.Writer, r *result) {
	fmt.Fprintf(w, "\n%d connections (one client each) over %d nodes on %s, from %d load processes\n\n",
		r.conns, r.nodes, r.redisKind, r.loads)
	fmt.Fprintln(w, "| node | connections | RSS growth / conn | CPU / s over the hold |")
	fmt.Fprintln(w, "|---|---|---|---|")
	for i := range r.nodeConns {
		fmt.Fprintf(w, "| n%d | %d | %.2f KiB | %.1f ms |\n", i, r.nodeConns[i], r.nodeRSS[i],
			ms(r.nodeCPU[i])/r.hold.Seconds())
	}
	la := func(i int) string {
		if i < len(r.loadAvg) {
			return r.loadAvg[i]
		}
		return "?"
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| figure | value |")
	fmt.Fprintln(w, "|---|---|")
	fmt.Fprintf(w, "| ramp: all connections open and held | %.1f s (%.0f connections/s) |\n", r.rampTime.Seconds(), float64(r.conns)/r.rampTime.Seconds())
	fmt.Fprintf(w, "| connect latency p50 / p99 / max (dial to handshake done, during the ramp) | %s / %s / %s |\n",
		msStr(benchproc.PctOf(r.latency, 50)), msStr(benchproc.PctOf(r.latency, 99)), msStr(benchproc.PctOf(r.latency, 100)))
	fmt.Fprintf(w, "| Redis CPU during the ramp | %.2f s (%.1f ms per connection) |\n", r.rampRedisCPU.Seconds(), ms(r.rampRedisCPU)/float64(r.conns))
	fmt.Fprintf(w, "| Redis commands during the ramp | %d (%.1f per connection) |\n", r.rampCmds, float64(r.rampCmds)/float64(r.conns))
	fmt.Fprintf(w, "| Redis CPU / s over the hold (%v; load %s → %s) | %.1f ms |\n", r.hold, la(0), la(1), ms(r.redisCPU)/r.hold.Seconds())
	fmt.Fprintf(w, "| Redis commands / s over the hold | %.0f |\n", float64(r.redisCmds)/r.hold.Seconds())
	fmt.Fprintf(w, "| Redis used_memory growth / session | %.0f B |\n", float64(r.redisMem1-r.redisMem0)/float64(r.conns))
	var total float64
	for i := range r.nodeConns {
		total += ms(r.nodeCPU[i])
	}
	fmt.Fprintf(w, "| all nodes' CPU / s over the hold | %.1f ms |\n", total/r.hold.Seconds())
	if r.churned > 0 {
		fmt.Fprintf(w, "| churn: connections closed and dialled again | %d (%d failed) |\n", r.churned, r.churnFailed)
	}
	fmt.Fprintf(w, "| connections the server closed (then dialled again by their load process) | %d |\n", r.dropped)
	if r.killed > 0 {
		k := "not within -settle"
		if r.killOffline >= 0 {
			k = fmt.Sprintf("%.2f s", r.killOffline.Seconds())
		}
		fmt.Fprintf(w, "| SIGKILL of a load process (%d clients) → every node's Count without them (load %s) | %s |\n", r.killed, la(2), k)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| exactness check | clients | every node's Count, List, room count | time to match | slowest node's full List (all nodes at once) |")
	fmt.Fprintln(w, "|---|---|---|---|---|")
	for _, c := range r.checks {
		verdict := "exact"
		if !c.exact {
			verdict = "NOT EXACT: " + c.detail
		}
		fmt.Fprintf(w, "| %s | %d | %s | %.2f s | %s |\n", c.phase, c.want, verdict, c.took.Seconds(), msStr(c.listTime))
	}
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func msStr(d time.Duration) string { return fmt.Sprintf("%.1f ms", ms(d)) }

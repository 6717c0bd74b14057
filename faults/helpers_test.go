//go:build faults && linux

package faults

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/vigilhq/vigil/client"
	"github.com/vigilhq/vigil/middleware"
	"github.com/vigilhq/vigil/presence"
	"github.com/vigilhq/vigil/store/memory"
)

// stamped is a hook event with the time the hook saw it.
type stamped struct {
	presence.Event
	At time.Time
}

// recorder records the events a Tracker's hooks see.
type recorder struct {
	mu     sync.Mutex
	events []stamped
	notify chan struct{} // closed and replaced on each event
}

func record(tr *presence.Tracker) *recorder {
	r := &recorder{notify: make(chan struct{})}
	fn := func(_ context.Context, ev presence.Event) {
		r.mu.Lock()
		r.events = append(r.events, stamped{ev, time.Now()})
		close(r.notify)
		r.notify = make(chan struct{})
		r.mu.Unlock()
	}
	tr.OnOnline(fn)
	tr.OnOffline(fn)
	return r
}

func (r *recorder) all() []stamped {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]stamped(nil), r.events...)
}

// count returns how many events of client (any client if "") and
// transition tr (any if 0) were seen.
func (r *recorder) count(client string, tr presence.Transition) int {
	n := 0
	for _, ev := range r.all() {
		if (client == "" || ev.ClientID == client) && (tr == 0 || ev.Transition == tr) {
			n++
		}
	}
	return n
}

// wait returns the first event after index from that satisfies pred, or
// fails the test after d.
func (r *recorder) wait(t testing.TB, from int, d time.Duration, what string, pred func(stamped) bool) stamped {
	t.Helper()
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	for {
		r.mu.Lock()
		for _, ev := range r.events[min(from, len(r.events)):] {
			if pred(ev) {
				r.mu.Unlock()
				return ev
			}
		}
		ch := r.notify
		r.mu.Unlock()
		select {
		case <-ch:
		case <-deadline.C:
			t.Fatalf("no %s within %v; events: %v", what, d, r.all())
		}
	}
}

// checkAlternation fails unless every client's events alternate strictly,
// starting with Online, with growing Seq.
func checkAlternation(t testing.TB, evs []stamped) {
	t.Helper()
	last := map[string]presence.Event{}
	for _, ev := range evs {
		prev, seen := last[ev.ClientID]
		switch {
		case !seen && ev.Transition != presence.Online:
			t.Errorf("client %s: first event is %v", ev.ClientID, ev.Transition)
		case seen && prev.Transition == ev.Transition:
			t.Errorf("client %s: %v twice in a row (seq %d, %d)", ev.ClientID, ev.Transition, prev.Seq, ev.Seq)
		case seen && ev.Seq <= prev.Seq:
			t.Errorf("client %s: seq %d after %d", ev.ClientID, ev.Seq, prev.Seq)
		}
		last[ev.ClientID] = ev.Event
	}
}

// eventually polls cond every 10ms until it holds or d passes, and returns
// how long it took. It fails the test on timeout.
func eventually(t testing.TB, d time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	for !cond() {
		select {
		case <-tick.C:
		case <-deadline.C:
			t.Fatalf("%s: not within %v", what, d)
		}
	}
	return time.Since(start)
}

// node is one in-process vigil node: Tracker, Server and http.Server.
type node struct {
	tr  *presence.Tracker
	srv *middleware.Server
	rec *recorder
	hs  *http.Server
	ln  net.Listener
}

// startNode serves a node on ln (127.0.0.1:0 if nil) until the test ends.
func startNode(t testing.TB, st presence.Store, tc presence.Config, mc middleware.Config, ln net.Listener) *node {
	t.Helper()
	if tc.Node == "" {
		tc.Node = "n1"
	}
	tr, err := presence.New(context.Background(), st, tc)
	if err != nil {
		t.Fatal(err)
	}
	n := &node{tr: tr, rec: record(tr)}
	if mc.Identify == nil {
		mc.Identify = middleware.IdentifyQuery("id")
	}
	n.srv, err = middleware.New(tr, mc)
	if err != nil {
		_ = tr.Close(context.Background())
		t.Fatal(err)
	}
	if ln == nil {
		ln, err = net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
	}
	n.ln = ln
	mux := http.NewServeMux()
	mux.Handle("GET /ws", n.srv.WebSocket(nil))
	mux.Handle("GET /echo", n.srv.WebSocket(echo))
	mux.Handle("/heartbeat", n.srv.HeartbeatEndpoint())
	mux.Handle("GET /presence", n.srv.OnlineEndpoint())
	mux.Handle("GET /presence/{id}", n.srv.PresenceEndpoint())
	n.hs = &http.Server{Handler: mux, ReadHeaderTimeout: readHeaderTimeout}
	go func() { _ = n.hs.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = n.hs.Shutdown(ctx)
		if err := n.srv.Shutdown(ctx); err != nil {
			t.Errorf("Server.Shutdown: %v", err)
		}
		if err := tr.Close(ctx); err != nil {
			t.Errorf("Tracker.Close: %v", err)
		}
	})
	return n
}

// memNode is startNode on a memory store of configuration mem.
func memNode(t testing.TB, mem memory.Config, tc presence.Config, mc middleware.Config, ln net.Listener) *node {
	t.Helper()
	st, err := memory.New(mem)
	if err != nil {
		t.Fatal(err)
	}
	return startNode(t, st, tc, mc, ln)
}

// echo is a Handler that sends every message back.
func echo(ctx context.Context, c *middleware.Conn) {
	for {
		m, err := c.Receive(ctx)
		if err != nil {
			return
		}
		if c.Send(m.Type, m.Data) != nil {
			return
		}
	}
}

// readHeaderTimeout is the http.Server.ReadHeaderTimeout of every node in
// the suite (docs/RELIABILITY.md recommends it for every server that mounts
// vigil).
const readHeaderTimeout = 2 * time.Second

func (n *node) addr() string { return n.ln.Addr().String() }

func (n *node) wsURL(id string) string { return "ws://" + n.addr() + "/ws?id=" + id }

// sessions reports how many sessions this node holds.
func (n *node) sessions() int { return n.tr.Stats().Sessions }

// online reports whether the Store says client is online.
func online(t testing.TB, tr *presence.Tracker, client string) bool {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	p, err := tr.Lookup(ctx, []string{client})
	if err != nil {
		return false
	}
	return p[0].Online
}

// watched is a real client (package client, the one we ship) whose state
// changes the test reads, each with the time it happened.
type watched struct {
	*client.Client
	states   chan stateAt
	stop     chan struct{} // closed at cleanup: OnState no longer waits for a reader
	openedAt time.Time     // when the dial's connection opened
}

// stateAt is one state change of a watched client.
type stateAt struct {
	client.StateChange
	At time.Time
}

// once makes a client that gives up (ErrGaveUp) after its first failed
// attempt: Dial tries once, and after a drop it tries once more (the drop
// is not an attempt: client.Config.MaxAttempts).
const once = 1

// dialClient dials url with the real client, fails the test if that fails,
// and returns it Open, with the Connecting and Open of the dial consumed.
// It is closed when the test ends. cfg.OnState is the recorder's.
func dialClient(t testing.TB, url string, cfg client.Config) *watched {
	t.Helper()
	w := &watched{states: make(chan stateAt, 1024), stop: make(chan struct{})}
	cfg.OnState = func(sc client.StateChange) {
		select {
		case w.states <- stateAt{sc, time.Now()}:
		case <-w.stop:
		}
	}
	if cfg.Dialer == nil {
		cfg.Dialer = &websocket.Dialer{HandshakeTimeout: 5 * time.Second}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := client.Dial(ctx, url, cfg)
	if err != nil {
		t.Fatalf("dial %s: %v", url, err)
	}
	w.Client = c
	t.Cleanup(func() {
		close(w.stop)
		_ = c.Close()
	})
	for st := range w.states { // Dial returns after OnState saw Open
		if st.To == client.Open {
			w.openedAt = st.At
			break
		}
	}
	return w
}

// nextState waits for the client's next state change, failing after d.
func nextState(t testing.TB, w *watched, d time.Duration) stateAt {
	t.Helper()
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case st := <-w.states:
		return st
	case <-timer.C:
		t.Fatalf("no client state change within %v", d)
	}
	panic("unreachable")
}

// waitState waits for a change to state to, skipping others, failing
// after d.
func waitState(t testing.TB, w *watched, to client.State, d time.Duration) stateAt {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		left := time.Until(deadline)
		if left <= 0 {
			t.Fatalf("no change to %v within %v", to, d)
		}
		if st := nextState(t, w, left); st.To == to {
			return st
		}
	}
}

// untouched fails the test if the client's connection changed state.
func untouched(t testing.TB, w *watched, what string) {
	t.Helper()
	select {
	case st := <-w.states:
		t.Errorf("%s: client went %v -> %v (%v), want its connection untouched", what, st.From, st.To, st.Err)
	default:
	}
}

// requireBin fails the test when a program the suite needs is missing.
func requireBin(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		for _, dir := range []string{"/usr/sbin", "/usr/bin", "/sbin"} {
			if _, err := os.Stat(filepath.Join(dir, name)); err == nil {
				return filepath.Join(dir, name)
			}
		}
		t.Fatalf("%s is missing: ./scripts/test installs it (Debian package %s)", name, name)
	}
	return p
}

// requireRoot fails the test unless it runs as root (network namespaces,
// tc).
func requireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("this fault needs root (network namespaces and tc); run ./scripts/test as root")
	}
}

// run runs a command and fails the test if it fails.
func run(t testing.TB, name string, args ...string) {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

// Helper programs, built once per test binary.
var (
	binMu  sync.Mutex
	binDir string
	bins   = map[string]*builtBin{}
)

// builtBin is one helper program; its mu is held while it builds, so that
// a long build (the skewed demo's, TestClockSkew) holds up only the tests
// that need that program.
type builtBin struct {
	mu   sync.Mutex
	path string // empty until built
}

// helperBin builds faults/internal/cmd/name and returns its path.
func helperBin(t testing.TB, name string) string {
	t.Helper()
	return buildBin(t, name, "./internal/cmd/"+name)
}

// demoBin builds the chat demo (examples/chat) and returns its path.
func demoBin(t testing.TB) string {
	t.Helper()
	return buildBin(t, "chat", "../examples/chat")
}

// runDemo starts the chat demo with JSON logs and args, waits until it
// listens, and returns it with the address it listens on (the listening
// line's, so "-addr 127.0.0.1:0" works).
func runDemo(t testing.TB, args ...string) (*proc, string) {
	t.Helper()
	p := startProc(t, demoBin(t), append([]string{"-log-format", "json"}, args...)...)
	l := p.next(20*time.Second, "demo listening", func(l procLine) bool { return l.str("event") == "listening" })
	return p, l.str("addr")
}

// buildBin builds the package pkg (relative to faults/) as name, once per
// test binary, without the race detector, with extra go build flags.
func buildBin(t testing.TB, name, pkg string, flags ...string) string {
	t.Helper()
	binMu.Lock()
	if binDir == "" {
		d, err := os.MkdirTemp("", "vigil-faults-bin")
		if err != nil {
			binMu.Unlock()
			t.Fatal(err)
		}
		binDir = d
	}
	b := bins[name]
	if b == nil {
		b = &builtBin{}
		bins[name] = b
	}
	dir := binDir
	binMu.Unlock()
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.path != "" {
		return b.path
	}
	p := filepath.Join(dir, name)
	cmd := exec.Command("go", append(append([]string{"build", "-o", p}, flags...), pkg)...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, out)
	}
	b.path = p
	return p
}

func removeBins() {
	binMu.Lock()
	defer binMu.Unlock()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
}

// proc is a helper process that prints JSON lines on stdout or stderr
// (the chat demo logs there); they are kept, in order, with the time each
// arrived. Other lines of stderr are kept for the log of a failed test.
type proc struct {
	t     testing.TB
	cmd   *exec.Cmd
	stdin io.WriteCloser
	done  chan struct{} // closed when the process has exited
	err   error

	mu     sync.Mutex
	got    []procLine
	cursor int           // next() looks from here
	notify chan struct{} // closed and replaced on each line, and at exit
	exited bool
}

// procLine is one JSON line and when it arrived.
type procLine struct {
	M  map[string]any
	At time.Time
}

func (l procLine) str(k string) string { s, _ := l.M[k].(string); return s }

func (l procLine) flag(k string) bool { b, _ := l.M[k].(bool); return b }

// startProc starts name with args; it is killed when the test ends, or
// when the test binary dies (Pdeathsig). Its stdin stays open until then
// (the suite's helpers exit when it closes).
func startProc(t testing.TB, name string, args ...string) *proc {
	t.Helper()
	return startProcEnv(t, nil, name, args...)
}

// startProcEnv is startProc with env ("KEY=value") added to the test's
// environment.
func startProcEnv(t testing.TB, env []string, name string, args ...string) *proc {
	t.Helper()
	p := &proc{t: t, cmd: exec.Command(name, args...), notify: make(chan struct{}), done: make(chan struct{})}
	if env != nil {
		p.cmd.Env = append(os.Environ(), env...)
	}
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stdout, err := p.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderrPipe, err := p.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	p.stdin, err = p.cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	keep := &limitedWriter{w: &stderr, n: 64 << 10}
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	var scanners sync.WaitGroup
	scan := func(r io.Reader, text io.Writer) {
		defer scanners.Done()
		sc := bufio.NewScanner(r)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			var m map[string]any
			if json.Unmarshal(sc.Bytes(), &m) != nil {
				if text != nil {
					_, _ = text.Write(append(sc.Bytes(), '\n'))
				}
				continue
			}
			p.mu.Lock()
			p.got = append(p.got, procLine{m, time.Now()})
			close(p.notify)
			p.notify = make(chan struct{})
			p.mu.Unlock()
		}
	}
	scanners.Add(2)
	go scan(stdout, nil)
	go scan(stderrPipe, keep)
	go func() {
		scanners.Wait()
		p.err = p.cmd.Wait()
		p.mu.Lock()
		p.exited = true
		close(p.notify)
		p.notify = make(chan struct{})
		p.mu.Unlock()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.kill()
		if t.Failed() && stderr.Len() > 0 {
			t.Logf("%s stderr:\n%s", filepath.Base(name), stderr.String())
		}
	})
	return p
}

// kill sends SIGKILL and waits for the process to exit.
func (p *proc) kill() {
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	_ = p.stdin.Close()
	<-p.done
}

// lines returns every line so far.
func (p *proc) lines() []procLine {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]procLine(nil), p.got...)
}

// next returns the first line after the previous next's that satisfies
// pred, and moves past it; it fails the test after d.
func (p *proc) next(d time.Duration, what string, pred func(procLine) bool) procLine {
	p.t.Helper()
	return p.await(d, what, pred, true)
}

// find returns the first line, from the start, that satisfies pred; it
// fails the test after d. It does not move the cursor.
func (p *proc) find(d time.Duration, what string, pred func(procLine) bool) procLine {
	p.t.Helper()
	return p.await(d, what, pred, false)
}

// await waits for a line satisfying pred: after the cursor, moving it, or
// from the start, leaving it.
func (p *proc) await(d time.Duration, what string, pred func(procLine) bool, move bool) procLine {
	p.t.Helper()
	timer := time.NewTimer(d)
	defer timer.Stop()
	for {
		p.mu.Lock()
		from := 0
		if move {
			from = p.cursor
		}
		for i := from; i < len(p.got); i++ {
			if pred(p.got[i]) {
				if move {
					p.cursor = i + 1
				}
				l := p.got[i]
				p.mu.Unlock()
				return l
			}
		}
		ch, exited := p.notify, p.exited
		p.mu.Unlock()
		if exited {
			p.t.Fatalf("waiting for %s: process exited: %v", what, p.err)
		}
		select {
		case <-ch:
		case <-timer.C:
			p.t.Fatalf("no %s within %v", what, d)
		}
	}
}

// quiet fails the test if a line arrives after the cursor within d.
func (p *proc) quiet(d time.Duration, what string) {
	p.t.Helper()
	timer := time.NewTimer(d)
	defer timer.Stop()
	for {
		p.mu.Lock()
		if p.cursor < len(p.got) {
			l := p.got[p.cursor]
			p.mu.Unlock()
			p.t.Fatalf("%s: got %v", what, l.M)
		}
		ch := p.notify
		p.mu.Unlock()
		select {
		case <-ch:
		case <-timer.C:
			return
		}
	}
}

type limitedWriter struct {
	mu sync.Mutex
	w  io.Writer
	n  int
}

func (l *limitedWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.n > 0 {
		k := min(len(b), l.n)
		l.n -= k
		_, _ = l.w.Write(b[:k])
	}
	return len(b), nil
}

// freePort returns a loopback port nobody listens on now.
func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// uniq returns a short random name with the given prefix.
func uniq(prefix string) string {
	return prefix + strings.ToLower(rand.Text()[:6])
}

// httpGet GETs url and decodes a JSON answer into v; it returns the status.
func httpGet(t testing.TB, url string, v any) int {
	t.Helper()
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	if v != nil && resp.StatusCode == http.StatusOK {
		if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
			t.Fatalf("GET %s: %v", url, err)
		}
	}
	return resp.StatusCode
}

// onlineIDs lists every online client through the /presence endpoint of a
// node (the chat demo's route, which startNode mounts too).
func onlineIDs(t testing.TB, base string) map[string]bool {
	t.Helper()
	ids := map[string]bool{}
	for id := range onlineSessions(t, base) {
		ids[id] = true
	}
	return ids
}

// onlineSessions lists every online client with its session count through
// the /presence endpoint of a node.
func onlineSessions(t testing.TB, base string) map[string]int {
	t.Helper()
	out := map[string]int{}
	cursor := ""
	for range 1000 {
		var page middleware.OnlinePage
		if st := httpGet(t, base+"/presence?limit=1000&cursor="+cursor, &page); st != http.StatusOK {
			t.Fatalf("GET /presence: %d", st)
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
	t.Fatal("GET /presence: more than 1000 pages")
	return nil
}

func fmtIDs(m map[string]bool) string {
	var s []string
	for k := range m {
		s = append(s, k)
	}
	return fmt.Sprint(s)
}

func writeFile(t testing.TB, name, content string) {
	t.Helper()
	if err := os.WriteFile(name, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

//go:build integration && unix

// Package cluster_test runs examples/cluster: two demo nodes on one Redis
// behind nginx, configured by nginx.conf in this directory. It needs
// REDIS_ADDR and nginx on PATH (./scripts/test provides both: see
// scripts/lib/redis.sh and scripts/lib/nginx.sh).
package cluster_test

import (
	"bufio"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/vigilhq/vigil/internal/redistest"
)

// node is a demo process and its JSON log lines.
type node struct {
	addr string
	mu   sync.Mutex
	logs []map[string]any
}

func (n *node) count(event, client string) int {
	n.mu.Lock()
	defer n.mu.Unlock()
	k := 0
	for _, l := range n.logs {
		if l["event"] == event && (client == "" || l["client"] == client) {
			k++
		}
	}
	return k
}

func waitFor(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %v: %s", within, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// start runs cmd until the test ends, passing each stderr line to line.
// The process gets a process group of its own, killed whole at the end:
// nginx's workers hold stderr open after their master is gone.
func start(t *testing.T, cmd *exec.Cmd, line func(string)) {
	t.Helper()
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", cmd.Path, err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			line(sc.Text())
		}
	}()
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
		_ = cmd.Wait()
	})
}

func startNode(t *testing.T, bin, redisAddr, prefix, id string) *node {
	t.Helper()
	n := &node{}
	cmd := exec.Command(bin, "-addr", "127.0.0.1:0", "-log-format", "json", "-store", "redis",
		"-redis-url", "redis://"+redisAddr+"/0", "-redis-prefix", prefix, "-node-id", id,
		"-ping-interval", "500ms", "-pong-timeout", "1s", "-grace", "300ms")
	start(t, cmd, func(s string) {
		var m map[string]any
		if err := json.Unmarshal([]byte(s), &m); err != nil {
			t.Errorf("node %s: log line is not JSON: %q", id, s)
			return
		}
		n.mu.Lock()
		n.logs = append(n.logs, m)
		if m["event"] == "listening" {
			n.addr, _ = m["addr"].(string)
		}
		n.mu.Unlock()
	})
	waitFor(t, 10*time.Second, "node "+id+" listening", func() bool {
		n.mu.Lock()
		defer n.mu.Unlock()
		return n.addr != ""
	})
	return n
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// startNginx runs nginx with this directory's nginx.conf, its listen port
// and upstream servers replaced, and returns the address it listens on.
func startNginx(t *testing.T, upstreams ...string) string {
	t.Helper()
	if _, err := exec.LookPath("nginx"); err != nil {
		t.Fatal("nginx is not on PATH: run ./scripts/test (nginx_install in scripts/lib/nginx.sh installs it)")
	}
	conf, err := os.ReadFile("nginx.conf")
	if err != nil {
		t.Fatal(err)
	}
	addr := "127.0.0.1:" + strconv.Itoa(freePort(t))
	var servers strings.Builder
	for _, u := range upstreams {
		servers.WriteString("server " + u + ";\n\t\t")
	}
	c := string(conf)
	for old, repl := range map[string]string{
		"listen 127.0.0.1:8080;":                             "listen " + addr + ";",
		"server 127.0.0.1:8081;\n\t\tserver 127.0.0.1:8082;": strings.TrimSpace(servers.String()),
	} {
		if !strings.Contains(c, old) {
			t.Fatalf("nginx.conf has no %q", old)
		}
		c = strings.Replace(c, old, repl, 1)
	}
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "logs"), 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(path, []byte(c), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("nginx", "-p", dir, "-c", path, "-g", "daemon off;")
	start(t, cmd, func(s string) { t.Logf("nginx: %s", s) })
	waitFor(t, 5*time.Second, "nginx listening on "+addr, func() bool {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	return addr
}

type clientStatus struct {
	Online   bool `json:"online"`
	Sessions int  `json:"sessions"`
}

func status(t *testing.T, addr, id string) clientStatus {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/presence/" + id)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var st clientStatus
	if resp.StatusCode == 200 {
		if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
			t.Fatal(err)
		}
	}
	return st
}

// TestBehindNginx: clients connect through nginx, which spreads them over
// two demo nodes; each node sees every client, pings and pongs keep them
// online through the proxy, and a client that leaves goes offline once.
func TestBehindNginx(t *testing.T) {
	rdb := redistest.Standalone(t)
	redisAddr, prefix := rdb.Options().Addr, redistest.Prefix(t, rdb)
	bin := filepath.Join(t.TempDir(), "chat")
	build := exec.Command("go", "build", "-o", bin, "github.com/vigilhq/vigil/examples/chat")
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		t.Fatalf("go build: %v", err)
	}
	a := startNode(t, bin, redisAddr, prefix, "a")
	b := startNode(t, bin, redisAddr, prefix, "b")
	proxy := startNginx(t, a.addr, b.addr)

	ids := []string{"c0", "c1", "c2", "c3"}
	conns := map[string]*websocket.Conn{}
	for _, id := range ids {
		h := http.Header{"Origin": {"http://" + proxy}}
		ws, resp, err := websocket.DefaultDialer.Dial("ws://"+proxy+"/ws?id="+id, h)
		if err != nil {
			code := 0
			if resp != nil {
				code = resp.StatusCode
			}
			t.Fatalf("dial %s through nginx: %v (status %d)", id, err, code)
		}
		t.Cleanup(func() { ws.Close() })
		go func() { // reads, so that pings are answered
			for {
				if _, _, err := ws.ReadMessage(); err != nil {
					return
				}
			}
		}()
		conns[id] = ws
	}
	waitFor(t, 5*time.Second, "every client online", func() bool {
		for _, id := range ids {
			if a.count("online", id)+b.count("online", id) != 1 {
				return false
			}
		}
		return true
	})
	if a.count("online", "") == 0 || b.count("online", "") == 0 {
		t.Errorf("nginx sent every client to one node: %d onlines on a, %d on b", a.count("online", ""), b.count("online", ""))
	}
	// Each node sees every client, whichever node holds it. Then pings
	// and pongs through nginx keep them online past several TTLs.
	for round := range 2 {
		for _, n := range []*node{a, b} {
			for _, id := range ids {
				if st := status(t, n.addr, id); !st.Online || st.Sessions != 1 {
					t.Errorf("round %d: node %s says %s is %+v; want online with 1 session", round, n.addr, id, st)
				}
			}
		}
		time.Sleep(3 * time.Second)
	}
	if k := a.count("offline", "") + b.count("offline", ""); k != 0 {
		t.Fatalf("%d offline lines while every client stayed", k)
	}

	// c0 leaves through nginx: one offline, seen by both nodes.
	_ = conns["c0"].WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(1000, ""), time.Now().Add(time.Second))
	waitFor(t, 5*time.Second, "c0 offline", func() bool { return a.count("offline", "c0")+b.count("offline", "c0") == 1 })
	for _, n := range []*node{a, b} {
		if st := status(t, n.addr, "c0"); st.Online {
			t.Errorf("node %s says c0 is %+v after it left", n.addr, st)
		}
	}
}

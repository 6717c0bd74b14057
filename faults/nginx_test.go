//go:build faults && linux

package faults

import (
	"context"
	"errors"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/vigilhq/vigil/client"
	"github.com/vigilhq/vigil/middleware"
	"github.com/vigilhq/vigil/presence"
	"github.com/vigilhq/vigil/store/memory"
)

// nginxReadTimeout is the proxy_read_timeout scripts/lib/nginx.sh sets.
const nginxReadTimeout = 3 * time.Second

// nginxAddr returns the address of the nginx that scripts/lib/nginx.sh
// started, failing the test when there is none.
func nginxAddr(t testing.TB) string {
	t.Helper()
	a := os.Getenv("VIGIL_NGINX_ADDR")
	if a == "" {
		t.Fatal("VIGIL_NGINX_ADDR is not set: run ./scripts/test, or `source scripts/lib/nginx.sh; nginx_setup` first")
	}
	return a
}

// viaNginx is the ws:// URL, through nginx, of node n's WebSocket endpoint.
func viaNginx(t testing.TB, n *node, id string) string {
	t.Helper()
	port := strconv.Itoa(n.ln.Addr().(*net.TCPAddr).Port)
	return "ws://" + nginxAddr(t) + "/u/" + port + "/ws?id=" + id
}

// startNginxUpstream runs an nginx of the test's own in front of an
// upstream of servers (host:port), with the configuration users copy:
// examples/cluster/nginx.conf, its listen address and upstream servers
// replaced. It returns the address nginx listens on. (The nginx that
// scripts/lib/nginx.sh starts routes each path to one port named in it, so
// it cannot balance over several nodes.) nginx runs as one process
// (master_process off, which changes nothing in how it proxies), so that it
// dies with the test binary and leaves no worker behind; it is killed when
// the test ends.
func startNginxUpstream(t testing.TB, servers ...string) string {
	t.Helper()
	bin := requireBin(t, "nginx")
	conf, err := os.ReadFile("../examples/cluster/nginx.conf")
	if err != nil {
		t.Fatal(err)
	}
	addr := "127.0.0.1:" + strconv.Itoa(freePort(t))
	var up []string
	for _, s := range servers {
		up = append(up, "server "+s+";")
	}
	c := string(conf)
	for old, repl := range map[string]string{
		"listen 127.0.0.1:8080;":                             "listen " + addr + ";",
		"server 127.0.0.1:8081;\n\t\tserver 127.0.0.1:8082;": strings.Join(up, "\n\t\t"),
	} {
		if !strings.Contains(c, old) {
			t.Fatalf("examples/cluster/nginx.conf has no %q", old)
		}
		c = strings.Replace(c, old, repl, 1)
	}
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "logs"), 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "nginx.conf")
	writeFile(t, path, c)
	p := startProc(t, bin, "-p", dir, "-c", path, "-g", "daemon off; master_process off;")
	eventually(t, 10*time.Second, "nginx listening on "+addr, func() bool {
		select {
		case <-p.done:
			t.Fatalf("nginx exited: %v", p.err)
		default:
		}
		conn, err := net.Dial("tcp", addr)
		if err == nil {
			conn.Close()
		}
		return err == nil
	})
	return addr
}

// quietClient is the real client sending nothing of its own (no
// application pings), like an idle browser tab, reconnecting at most once
// after a drop: it still answers the server's protocol pings.
func quietClient() client.Config {
	return client.Config{PingInterval: -1, MaxAttempts: once}
}

// R17, the problem: nginx cuts a WebSocket that carries nothing for
// proxy_read_timeout. With vigil's ping interval longer than that, a client
// that sends nothing (an idle browser tab) is cut at about 3 s. This test
// proves the suite sees the problem the next one shows vigil solving.
//
// timing: PingInterval (20s) longer than nginx's proxy_read_timeout (3s):
// the relation whose breach this test shows.
func TestNginxCutsQuietConnection(t *testing.T) {
	t.Parallel()
	n := memNode(t, memory.Config{},
		presence.Config{TTL: 30 * time.Second, Grace: 500 * time.Millisecond, SweepInterval: 100 * time.Millisecond},
		middleware.Config{PingInterval: 20 * time.Second, PongTimeout: 10 * time.Second}, nil)
	// A client that dials once: its reconnect fails, so the cut connection
	// is its last, and it goes offline after Grace.
	cfg := quietClient()
	var dials atomic.Int32
	cfg.Dialer = &websocket.Dialer{NetDialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		if dials.Add(1) > 1 {
			return nil, errors.New("faults: this client dials once")
		}
		return (&net.Dialer{}).DialContext(ctx, network, addr)
	}}
	c := dialClient(t, viaNginx(t, n, "quiet"), cfg)
	st := nextState(t, c, 10*time.Second)
	cut := st.At.Sub(c.openedAt)
	var ce *client.CloseError
	if st.To != client.Reconnecting || !errors.As(st.Err, &ce) || ce.Code != 1006 {
		t.Fatalf("client went %v (%v), want the connection dropped by nginx (1006)", st.To, st.Err)
	}
	if cut < nginxReadTimeout-300*time.Millisecond || cut > nginxReadTimeout+2*time.Second {
		t.Fatalf("nginx cut the connection after %v, want about %v", cut, nginxReadTimeout)
	}
	// The server sees the connection end and the client goes offline.
	off := n.rec.wait(t, 0, 5*time.Second, "offline of quiet", func(ev stamped) bool {
		return ev.ClientID == "quiet" && ev.Transition == presence.Offline
	})
	t.Logf("FIGURE nginx-cut: connection cut after %v (proxy_read_timeout %v); offline %v after the cut",
		cut.Round(time.Millisecond), nginxReadTimeout, off.At.Sub(st.At).Round(time.Millisecond))
	checkAlternation(t, n.rec.all())
}

// R17, the cure: with a ping interval shorter than proxy_read_timeout the
// same quiet client stays connected through nginx for 30 s, and stays
// online without a single transition.
//
// timing: PingInterval (1s) shorter than nginx's proxy_read_timeout (3s):
// the relation this test proves sufficient.
func TestNginxPingsKeepConnectionOpen(t *testing.T) {
	t.Parallel()
	const hold = 30 * time.Second
	n := memNode(t, memory.Config{},
		presence.Config{TTL: 3 * time.Second, Grace: 500 * time.Millisecond, SweepInterval: 100 * time.Millisecond},
		middleware.Config{PingInterval: time.Second, PongTimeout: time.Second}, nil)
	c := dialClient(t, viaNginx(t, n, "quiet"), quietClient())
	timer := time.NewTimer(hold)
	defer timer.Stop()
	select {
	case st := <-c.states:
		t.Fatalf("connection changed state after less than %v: %v -> %v (%v)", hold, st.From, st.To, st.Err)
	case <-timer.C:
	}
	if s := n.sessions(); s != 1 {
		t.Fatalf("server holds %d sessions, want 1", s)
	}
	if got := n.rec.count("quiet", 0); got != 1 {
		t.Fatalf("%d transitions of quiet, want just its online: %v", got, n.rec.all())
	}
	st := n.srv.Stats()
	if st.Pings < uint64(hold/time.Second)-3 {
		t.Fatalf("%d pings sent in %v, want about one a second", st.Pings, hold)
	}
	t.Logf("FIGURE nginx-hold: connected %v through proxy_read_timeout %v with %d pings, 0 transitions", hold, nginxReadTimeout, st.Pings)
}

// Behind a proxy that forwards the Host header with its port
// (proxy_set_header Host $http_host), a browser's same-origin upgrade
// passes the origin check, and a foreign page's does not.
//
// timing: compressed; the origin check is the subject.
func TestNginxOriginCheck(t *testing.T) {
	t.Parallel()
	n := memNode(t, memory.Config{},
		presence.Config{TTL: 3 * time.Second, Grace: 100 * time.Millisecond, SweepInterval: 100 * time.Millisecond},
		middleware.Config{PingInterval: time.Second, PongTimeout: time.Second}, nil)
	url := viaNginx(t, n, "tab")
	for _, tc := range []struct {
		origin string
		want   int
	}{
		{"http://" + nginxAddr(t), http.StatusSwitchingProtocols},
		{"http://evil.example", http.StatusForbidden},
		{"http://" + n.addr(), http.StatusForbidden}, // the upstream's own address is not the page's
		{"null", http.StatusForbidden},
	} {
		h := http.Header{"Origin": {tc.origin}}
		ws, resp, err := websocket.DefaultDialer.Dial(url, h)
		if ws != nil {
			ws.Close()
		}
		if resp == nil {
			t.Fatalf("Origin %s: %v", tc.origin, err)
		}
		if resp.StatusCode != tc.want {
			t.Errorf("Origin %s: status %d, want %d", tc.origin, resp.StatusCode, tc.want)
		}
	}
	// Only the same-origin upgrade opened a session.
	n.rec.wait(t, 0, 2*time.Second, "online of tab", func(ev stamped) bool { return ev.Transition == presence.Online })
	if got := n.srv.Stats().Upgrades; got != 1 {
		t.Fatalf("%d upgrades, want 1", got)
	}
}

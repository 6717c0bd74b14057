//go:build browser

package e2e

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vigilhq/vigil/middleware"
	"github.com/vigilhq/vigil/presence"
	"github.com/vigilhq/vigil/store/memory"
)

// compatServer is a vigil server (TTL 1.2s) that also serves the pages of
// the compatibility tests and the pinned reconnecting-websocket package
// (client/js/testdata/node_modules, which scripts/test installs with npm ci).
//
// timing: compressed for speed: TTL ≥ PingInterval + PongTimeout, Grace <
// TTL; the browser's own timers are the subject, at their defaults.
func compatServer(t *testing.T, pages map[string]string) (*httptest.Server, *conns) {
	t.Helper()
	st, err := memory.New(memory.Config{})
	if err != nil {
		t.Fatal(err)
	}
	tr, err := presence.New(context.Background(), st, presence.Config{Node: "compat", TTL: 1200 * time.Millisecond, Grace: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := middleware.New(tr, middleware.Config{Identify: middleware.IdentifyQuery("id"), PingInterval: 400 * time.Millisecond, PongTimeout: 800 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	cs := &conns{}
	mux := http.NewServeMux()
	mux.Handle("GET /ws", srv.WebSocket(cs.serve))
	mux.Handle("GET /presence/{id}", srv.PresenceEndpoint())
	mux.Handle("GET /rws/", http.StripPrefix("/rws/", http.FileServer(http.Dir("../client/js/testdata/node_modules/reconnecting-websocket/dist"))))
	for path, html := range pages {
		mux.HandleFunc("GET "+path, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			w.Write([]byte(html))
		})
	}
	ts := httptest.NewServer(mux)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		ts.CloseClientConnections()
		srv.Shutdown(ctx)
		ts.Close()
		tr.Close(ctx)
	})
	return ts, cs
}

// conns keeps the open connections of a presence-only endpoint.
type conns struct {
	mu  sync.Mutex
	all map[*middleware.Conn]struct{}
}

func (cs *conns) serve(ctx context.Context, c *middleware.Conn) {
	cs.mu.Lock()
	if cs.all == nil {
		cs.all = make(map[*middleware.Conn]struct{})
	}
	cs.all[c] = struct{}{}
	cs.mu.Unlock()
	for {
		if _, err := c.Receive(ctx); err != nil {
			break
		}
	}
	cs.mu.Lock()
	delete(cs.all, c)
	cs.mu.Unlock()
}

// restart closes every connection with 1012 (service restart).
func (cs *conns) restart() {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	for c := range cs.all {
		c.Close(middleware.CloseRestart, "restart")
	}
}

func online(t *testing.T, ts *httptest.Server, id string) bool {
	t.Helper()
	res, err := http.Get(ts.URL + "/presence/" + id)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	return res.StatusCode == 200 && strings.Contains(string(body), `"online":true`)
}

// stayOnline checks that id stays online for d.
func stayOnline(t *testing.T, ts *httptest.Server, id string, d time.Duration) {
	t.Helper()
	end := time.Now().Add(d)
	for time.Now().Before(end) {
		if !online(t, ts, id) {
			t.Fatalf("%s offline", id)
		}
		<-time.After(100 * time.Millisecond)
	}
}

// The classic hand-written heartCheck snippet, unchanged: it sends "ping"
// every timeout and closes the socket if no message follows within
// timeout; its onclose reconnects.
const heartCheckPage = `<!doctype html><script>
var ws, opens = 0, pongs = 0, lockReconnect = false;
var url = "ws://" + location.host + "/ws?id=classic";
function createWebSocket() {
  try { ws = new WebSocket(url); init(); } catch (e) { reconnect(); }
}
function init() {
  ws.onclose = function () { reconnect(); };
  ws.onerror = function () { reconnect(); };
  ws.onopen = function () { opens++; heartCheck.reset().start(); };
  ws.onmessage = function (event) { if (event.data === "pong") pongs++; heartCheck.reset().start(); };
}
function reconnect() {
  if (lockReconnect) return;
  lockReconnect = true;
  setTimeout(function () { createWebSocket(); lockReconnect = false; }, 500);
}
var heartCheck = {
  timeout: 300,
  timeoutObj: null,
  serverTimeoutObj: null,
  reset: function () { clearTimeout(this.timeoutObj); clearTimeout(this.serverTimeoutObj); return this; },
  start: function () {
    var self = this;
    this.timeoutObj = setTimeout(function () {
      ws.send("ping");
      self.serverTimeoutObj = setTimeout(function () { ws.close(); }, self.timeout);
    }, this.timeout);
  }
};
createWebSocket();
</script>`

func TestBrowserHeartCheckSnippet(t *testing.T) {
	ts, _ := compatServer(t, map[string]string{"/classic": heartCheckPage})
	b := newBrowser(t)
	tab, _ := newTab(t, b, ts.URL+"/classic")
	poll(t, tab, `opens === 1`, 5*time.Second)
	stayOnline(t, ts, "classic", 3*time.Second)
	opens, pongs := eval[int](t, tab, `opens`), eval[int](t, tab, `pongs`)
	t.Logf("heartCheck: %d socket(s), %d pongs in 3s", opens, pongs)
	if opens != 1 || pongs < 5 {
		t.Errorf("%d sockets and %d pongs: want one socket that the server answers", opens, pongs)
	}
}

// reconnecting-websocket (pinned in client/js/testdata/package.json), unchanged: it
// has no heartbeat of its own, so the server's protocol pings keep it
// online; when the server drops it, it reconnects by itself.
const rwsPage = `<!doctype html><script type="module">
import ReconnectingWebSocket from "/rws/reconnecting-websocket-mjs.js";
window.opens = 0; window.msgs = [];
const ws = (window.rws = new ReconnectingWebSocket("ws://" + location.host + "/ws?id=rws", [], { minReconnectionDelay: 100, maxReconnectionDelay: 1000 }));
ws.addEventListener("open", () => window.opens++);
ws.addEventListener("message", (e) => window.msgs.push(e.data));
</script>`

func TestBrowserReconnectingWebSocket(t *testing.T) {
	ts, cs := compatServer(t, map[string]string{"/rws": rwsPage})
	b := newBrowser(t)
	tab, _ := newTab(t, b, ts.URL+"/rws")
	poll(t, tab, `window.opens === 1`, 5*time.Second)
	eval[bool](t, tab, `(window.rws.send("ping"), true)`)
	poll(t, tab, `window.msgs.includes("pong")`, 2*time.Second)
	stayOnline(t, ts, "rws", 3*time.Second) // more than twice the TTL, no app traffic
	cs.restart()
	poll(t, tab, `window.opens === 2`, 5*time.Second)
	stayOnline(t, ts, "rws", 500*time.Millisecond)
}

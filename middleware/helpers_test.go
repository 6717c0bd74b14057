package middleware_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/vigilhq/vigil/middleware"
	"github.com/vigilhq/vigil/presence"
	"github.com/vigilhq/vigil/store/memory"
)

// env is one Tracker and Server on the memory store, with hooks recorded.
type env struct {
	tr   *presence.Tracker
	srv  *middleware.Server
	evCh chan presence.Event
}

func newEnv(t *testing.T, tcfg presence.Config, cfg middleware.Config) *env {
	t.Helper()
	st, err := memory.New(memory.Config{})
	if err != nil {
		t.Fatal(err)
	}
	return newEnvOn(t, st, tcfg, cfg)
}

// newEnvOn is newEnv over the Store st.
func newEnvOn(t *testing.T, st presence.Store, tcfg presence.Config, cfg middleware.Config) *env {
	t.Helper()
	if tcfg.Node == "" {
		tcfg.Node = "n1"
	}
	tr, err := presence.New(context.Background(), st, tcfg)
	if err != nil {
		t.Fatal(err)
	}
	e := &env{tr: tr, evCh: make(chan presence.Event, 1000)}
	rec := func(_ context.Context, ev presence.Event) { e.evCh <- ev }
	tr.OnOnline(rec)
	tr.OnOffline(rec)
	tr.OnAway(rec)
	tr.OnBack(rec)
	if cfg.Identify == nil {
		cfg.Identify = middleware.IdentifyQuery("id")
	}
	e.srv, err = middleware.New(tr, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := e.srv.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		if err := tr.Close(ctx); err != nil {
			t.Errorf("tracker Close: %v", err)
		}
	})
	return e
}

// waitEvent waits for the next event of client, failing after d.
func (e *env) waitEvent(t *testing.T, client string, d time.Duration) presence.Event {
	t.Helper()
	timer := time.NewTimer(d)
	defer timer.Stop()
	for {
		select {
		case ev := <-e.evCh:
			if ev.ClientID == client {
				return ev
			}
		case <-timer.C:
			t.Fatalf("no event for %q within %v", client, d)
			return presence.Event{}
		}
	}
}

// noEvent checks that no event arrives within d.
func (e *env) noEvent(t *testing.T, d time.Duration) {
	t.Helper()
	select {
	case ev := <-e.evCh:
		t.Fatalf("unexpected event %+v", ev)
	case <-time.After(d):
	}
}

// echo is a Handler that sends back every message.
func echo(ctx context.Context, c *middleware.Conn) {
	for {
		m, err := c.Receive(ctx)
		if err != nil {
			return
		}
		if err := c.Send(m.Type, m.Data); err != nil {
			return
		}
	}
}

// mux mounts the server's endpoints on a ServeMux the way the README does.
func (e *env) mux(h middleware.Handler) *http.ServeMux {
	m := http.NewServeMux()
	m.Handle("GET /ws", e.srv.WebSocket(h))
	m.Handle("POST /presence/heartbeat", e.srv.HeartbeatEndpoint())
	m.Handle("POST /presence/leave", e.srv.LeaveEndpoint())
	m.Handle("GET /presence", e.srv.OnlineEndpoint())
	m.Handle("GET /presence/{id}", e.srv.PresenceEndpoint())
	m.Handle("GET /metrics", e.srv.MetricsHandler())
	return m
}

func startHTTP(t *testing.T, h http.Handler) *httptest.Server {
	t.Helper()
	ts := httptest.NewServer(h)
	t.Cleanup(ts.Close)
	return ts
}

func wsURL(ts *httptest.Server, path string) string {
	return "ws" + strings.TrimPrefix(ts.URL, "http") + path
}

func dial(t *testing.T, url string, h http.Header) (*websocket.Conn, *http.Response, error) {
	t.Helper()
	c, resp, err := websocket.DefaultDialer.Dial(url, h)
	if c != nil {
		t.Cleanup(func() { c.Close() })
	}
	return c, resp, err
}

func mustDial(t *testing.T, url string) *websocket.Conn {
	t.Helper()
	c, resp, err := dial(t, url, nil)
	if err != nil {
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		t.Fatalf("dial %s: %v (status %d)", url, err, status)
	}
	return c
}

// closeCode reads until the connection fails and returns the close code
// received (1006 if none).
func closeCode(t *testing.T, c *websocket.Conn, d time.Duration) (int, string) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(d))
	for {
		_, _, err := c.ReadMessage()
		if err != nil {
			if ce, ok := err.(*websocket.CloseError); ok {
				return ce.Code, ce.Text
			}
			return 1006, err.Error()
		}
	}
}

package middleware_test

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/go-chi/chi/v5"

	"github.com/vigilhq/vigil/middleware"
	"github.com/vigilhq/vigil/presence"
)

// router is what Mount registers on and a test serves.
type router interface {
	middleware.Router
	http.Handler
}

// routers are the routers Mount must work in: net/http's ServeMux and chi.
var routers = []struct {
	name string
	new  func() router
}{
	{"ServeMux", func() router { return http.NewServeMux() }},
	{"chi", func() router { return chi.NewRouter() }},
}

// TestMountServesEverything checks every route Mount promises, with its
// method and with a wrong one, in both routers.
func TestMountServesEverything(t *testing.T) {
	tests := []struct {
		method, path, body string
		status             int
		code               string // of a JSON refusal
		allow              string
	}{
		{"GET", "/presence/ws?id=a", "", 400, middleware.CodeBadHandshake, ""}, // routed; not a handshake
		{"POST", "/presence/ws?id=a", "", 405, middleware.CodeMethodNotAllowed, "GET"},
		{"POST", "/presence/heartbeat?id=a", "", 200, "", ""},
		{"GET", "/presence/heartbeat?id=a", "", 405, middleware.CodeMethodNotAllowed, "POST"},
		{"POST", "/presence/leave?id=a", "", 204, "", ""},
		{"GET", "/presence/leave?id=a", "", 405, middleware.CodeMethodNotAllowed, "POST"},
		{"GET", "/presence", "", 200, "", ""},
		{"POST", "/presence", "", 405, middleware.CodeMethodNotAllowed, "GET, HEAD"},
		{"GET", "/presence/nobody", "", 404, middleware.CodeUnknownClient, ""},
		{"DELETE", "/presence/nobody", "", 405, middleware.CodeMethodNotAllowed, "GET, HEAD"},
		{"POST", "/presence/feed", "", 405, middleware.CodeMethodNotAllowed, "GET"},
		{"GET", "/presence/vigil.js", "", 200, "", ""},
		{"GET", "/presence/vigil.d.ts", "", 200, "", ""},
		{"POST", "/presence/vigil.js", "", 405, middleware.CodeMethodNotAllowed, "GET, HEAD"},
		{"GET", "/presence/metrics", "", 200, "", ""},
		{"POST", "/presence/metrics", "", 405, middleware.CodeMethodNotAllowed, "GET, HEAD"},
	}
	for _, rt := range routers {
		t.Run(rt.name, func(t *testing.T) {
			e := newEnv(t, presence.Config{}, middleware.Config{})
			r := rt.new()
			m, err := e.srv.Mount(r, "/presence", middleware.MountConfig{})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { m.Close() })
			for _, tt := range tests {
				rec := serve(r, tt.method, tt.path, tt.body, nil)
				if tt.code != "" {
					t.Run(tt.method+" "+tt.path, func(t *testing.T) { checkRefusal(t, rec, tt.status, tt.code) })
				} else if rec.Code != tt.status {
					t.Errorf("%s %s: %d, want %d; %s", tt.method, tt.path, rec.Code, tt.status, rec.Body)
				}
				if got := rec.Header().Get("Allow"); got != tt.allow {
					t.Errorf("%s %s: Allow %q, want %q", tt.method, tt.path, got, tt.allow)
				}
			}
		})
	}
}

// TestMountFeed checks that the feed streams and that both Mounted.Close
// and Server.Shutdown end its streams (http.Server.Shutdown waits for them).
func TestMountFeed(t *testing.T) {
	for _, end := range []string{"Mounted.Close", "Server.Shutdown"} {
		t.Run(end, func(t *testing.T) {
			e := newEnv(t, presence.Config{}, middleware.Config{})
			r := http.NewServeMux()
			m, err := e.srv.Mount(r, "/presence", middleware.MountConfig{})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { m.Close() })
			ts := startHTTP(t, r)
			resp, err := http.Get(ts.URL + "/presence/feed")
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			br := bufio.NewReader(resp.Body)
			for {
				line, err := br.ReadString('\n')
				if err != nil {
					t.Fatalf("before the snapshot: %v", err)
				}
				if line == "event: snapshot\n" {
					break
				}
			}
			if end == "Mounted.Close" {
				m.Close()
			} else {
				e.srv.Shutdown(context.Background())
			}
			if _, err := io.Copy(io.Discard, br); err != nil {
				t.Fatalf("stream did not end cleanly: %v", err)
			}
		})
	}
}

func TestMountConfig(t *testing.T) {
	e := newEnv(t, presence.Config{}, middleware.Config{})
	for _, p := range []string{"", "/", "presence", "/presence/", "/{id}"} {
		if _, err := e.srv.Mount(http.NewServeMux(), p, middleware.MountConfig{}); !errors.Is(err, middleware.ErrInvalidConfig) {
			t.Errorf("prefix %q: %v, want ErrInvalidConfig", p, err)
		}
	}
	m, err := e.srv.Mount(http.NewServeMux(), "/v", middleware.MountConfig{
		DisableWebSocket: true, DisableHTTPHeartbeat: true, DisableFeed: true, DisableScript: true, DisableMetrics: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, rt := range m.Routes() {
		got = append(got, rt.Pattern)
	}
	if strings.Join(got, " ") != "/v /v/{id}" || m.Feed() != nil || m.Close() != nil {
		t.Errorf("status only: routes %v, feed %v", got, m.Feed())
	}
}

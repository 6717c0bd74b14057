package middleware_test

import (
	"bufio"
	"context"
	"encoding/json"
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
		{"GET", "/presence/rooms/general", "", 200, "", ""},
		{"GET", "/presence/rooms/a%2Fb", "", 200, "", ""},
		{"HEAD", "/presence/rooms/general", "", 200, "", ""},
		{"POST", "/presence/rooms/general", "", 405, middleware.CodeMethodNotAllowed, "GET, HEAD"},
		{"GET", "/presence/rooms/x%01", "", 400, middleware.CodeInvalidRoom, ""},
		{"GET", "/presence/rooms/general?limit=-1", "", 400, middleware.CodeInvalidQuery, ""},
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
		DisableRooms: true,
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

// A room name travels escaped in the path: "a/b" as a%2Fb, "#general" as
// %23general, in both routers.
func TestMountRoomNames(t *testing.T) {
	for _, rt := range routers {
		t.Run(rt.name, func(t *testing.T) {
			e := newEnv(t, presence.Config{}, middleware.Config{})
			r := rt.new()
			m, err := e.srv.Mount(r, "/presence", middleware.MountConfig{DisableFeed: true})
			if err != nil {
				t.Fatal(err)
			}
			for path, room := range map[string]string{
				"/presence/rooms/a%2Fb": "a/b", "/presence/rooms/%23general": "#general",
				"/presence/rooms/caf%C3%A9": "café", "/presence/rooms/a%20b": "a b",
			} {
				rec := serve(r, "GET", path, "", nil)
				var p middleware.RoomPage
				if err := json.Unmarshal(rec.Body.Bytes(), &p); rec.Code != 200 || err != nil || p.Room != room {
					t.Errorf("GET %s: %d %s; want room %q", path, rec.Code, rec.Body, room)
				}
			}
			// So are client IDs (one client, a/b).
			if resp := serve(r, "POST", "/presence/heartbeat?id=a%2Fb", "", nil); resp.Code != 200 {
				t.Fatalf("heartbeat: %d", resp.Code)
			}
			if rec := serve(r, "GET", "/presence/a%2Fb", "", nil); rec.Code != 200 || !strings.Contains(rec.Body.String(), `"id":"a/b"`) {
				t.Errorf("GET /presence/a%%2Fb: %d %s", rec.Code, rec.Body)
			}
			_ = m
		})
	}
}

package middleware_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/vigilhq/vigil/middleware"
	"github.com/vigilhq/vigil/presence"
)

// sessions returns how many sessions client has, 0 for one never seen.
func sessions(t *testing.T, tr *presence.Tracker, client string) int {
	t.Helper()
	p, err := tr.Presence(context.Background(), client)
	if errors.Is(err, presence.ErrNotFound) {
		return 0
	}
	if err != nil {
		t.Fatal(err)
	}
	return p.Sessions
}

// trackedApp is an app behind TrackRequests with vigil's endpoints mounted
// inside it, the way the README mounts them.
func trackedApp(e *env) http.Handler {
	m := e.mux(nil)
	m.HandleFunc("GET /app/ok", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok")) })
	m.HandleFunc("GET /app/empty", func(w http.ResponseWriter, r *http.Request) {})
	m.HandleFunc("GET /app/forbidden", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "no", http.StatusForbidden)
	})
	m.HandleFunc("GET /app/fail", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusEarlyHints) // informational: the final status follows
		w.WriteHeader(http.StatusInternalServerError)
	})
	return e.srv.TrackRequests(m)
}

func TestTrackRequestsCounts(t *testing.T) {
	tests := []struct {
		name, method, target, body string
		want                       int // sessions of the client afterwards
	}{
		{"app 200", "GET", "/app/ok?id=u", "", 1},
		{"app wrote nothing", "GET", "/app/empty?id=u", "", 1},
		{"anonymous", "GET", "/app/ok", "", 0},
		{"app 403", "GET", "/app/forbidden?id=u", "", 0},
		{"app 500 after 103", "GET", "/app/fail?id=u", "", 0},
		{"app 404", "GET", "/nowhere?id=u", "", 0},
		{"list", "GET", "/presence?id=u", "", 0},
		{"one client", "GET", "/presence/someone?id=u", "", 0},
		{"metrics", "GET", "/metrics?id=u", "", 0},
		{"malformed heartbeat", "POST", "/presence/heartbeat?id=u", "{", 0},
		{"heartbeat keeps its own session", "POST", "/presence/heartbeat?id=u&session=tab", "", 1},
		{"leave", "POST", "/presence/leave?id=u", "", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, presence.Config{}, middleware.Config{})
			serve(trackedApp(e), tt.method, tt.target, tt.body, nil)
			if got := sessions(t, e.tr, "u"); got != tt.want {
				t.Errorf("%s %s: client u has %d sessions, want %d", tt.method, tt.target, got, tt.want)
			}
		})
	}
}

func TestTrackRequestsCountRequest(t *testing.T) {
	var saw []int
	e := newEnv(t, presence.Config{}, middleware.Config{
		// Count also 404s, but only under /app/.
		CountRequest: func(r *http.Request, status int) bool {
			saw = append(saw, status)
			return strings.HasPrefix(r.URL.Path, "/app/") && status < 500
		},
	})
	h := trackedApp(e)
	serve(h, "GET", "/presence?id=reader", "", nil) // vigil's own: never asked
	serve(h, "GET", "/nowhere?id=u", "", nil)
	if got := sessions(t, e.tr, "u"); got != 0 {
		t.Fatalf("/nowhere counted: %d sessions", got)
	}
	serve(h, "GET", "/app/missing?id=u", "", nil)
	if got := sessions(t, e.tr, "u"); got != 1 {
		t.Fatalf("/app/missing (404) not counted: %d sessions", got)
	}
	if want := []int{404, 404}; len(saw) != 2 || saw[0] != want[0] || saw[1] != want[1] {
		t.Errorf("CountRequest saw statuses %v, want %v", saw, want)
	}
}

// TestTrackRequestsWrapperKeepsInterfaces checks that the handler behind
// TrackRequests finds Flusher and Hijacker exactly when the server's
// ResponseWriter has them, and reaches it through Unwrap.
func TestTrackRequestsWrapperKeepsInterfaces(t *testing.T) {
	e := newEnv(t, presence.Config{}, middleware.Config{})
	type probe struct{ flusher, hijacker, unwraps bool }
	var got probe
	h := e.srv.TrackRequests(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, got.flusher = w.(http.Flusher)
		_, got.hijacker = w.(http.Hijacker)
		_, got.unwraps = w.(interface{ Unwrap() http.ResponseWriter })
	}))

	serve(h, "GET", "/?id=a", "", nil) // a ResponseRecorder: Flusher, no Hijacker
	if want := (probe{flusher: true, unwraps: true}); got != want {
		t.Errorf("behind a recorder: %+v, want %+v", got, want)
	}
	ts := startHTTP(t, h) // net/http's writer: both
	resp, err := http.Get(ts.URL + "/?id=a")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if want := (probe{flusher: true, hijacker: true, unwraps: true}); got != want {
		t.Errorf("behind net/http: %+v, want %+v", got, want)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(struct{ http.ResponseWriter }{rec}, httptest.NewRequest("GET", "/?id=a", nil))
	if want := (probe{unwraps: true}); got != want {
		t.Errorf("behind a bare writer: %+v, want %+v", got, want)
	}
}

package vigilecho_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/gorilla/websocket"
	"github.com/labstack/echo/v4"
	"go.uber.org/goleak"

	"github.com/vigilhq/vigil/adapters/vigilecho"
	"github.com/vigilhq/vigil/middleware"
	"github.com/vigilhq/vigil/presence"
	"github.com/vigilhq/vigil/store/memory"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// auth is the app's authentication: the user named by X-User, stored in
// echo's context under "user". It refuses nobody, so that vigil's own
// answer to a request without identity shows.
func auth(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if u := c.Request().Header.Get("X-User"); u != "" {
			c.Set("user", u)
		}
		return next(c)
	}
}

type env struct {
	tr      *presence.Tracker
	url     string // the test server's
	mounted *middleware.Mounted
	// captured is the request the /api/capture handler saw.
	captured chan *http.Request
}

// start serves an echo.Echo with vigil mounted at /api/presence in a group
// behind auth and TrackRequests, beside app routes /api/app (200),
// /api/denied (echo.ErrForbidden) and /api/capture.
func start(t *testing.T) *env {
	t.Helper()
	ctx := context.Background()
	st, _ := memory.New(memory.Config{})
	tr, err := presence.New(ctx, st, presence.Config{Node: "n1"})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := middleware.New(tr, middleware.Config{Identify: vigilecho.IdentifyContext("user")})
	if err != nil {
		t.Fatal(err)
	}
	e := &env{tr: tr, captured: make(chan *http.Request, 1)}
	r := echo.New()
	api := r.Group("/api", auth, vigilecho.TrackRequests(srv))
	api.GET("/app", func(c echo.Context) error { return c.String(200, "app") })
	api.GET("/denied", func(c echo.Context) error { return echo.ErrForbidden })
	api.GET("/capture", func(c echo.Context) error {
		if id, err := vigilecho.IdentifyContext("user")(c.Request()); err != nil || id != "ann" {
			t.Errorf("IdentifyContext in the handler: %q, %v", id, err)
		}
		e.captured <- c.Request()
		return nil
	})
	e.mounted, err = vigilecho.Mount(api, "/presence", srv, middleware.MountConfig{Handler: func(ctx context.Context, c *middleware.Conn) {
		for {
			m, err := c.Receive(ctx)
			if err != nil {
				return
			}
			c.Send(m.Type, append([]byte(c.ClientID()+": "), m.Data...))
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(r)
	e.url = ts.URL
	t.Cleanup(func() {
		e.mounted.Close() // ends the feed's streams, which ts.Close waits for
		ts.Close()
		srv.Shutdown(ctx)
		tr.Close(ctx)
	})
	return e
}

// do sends a request as user (none when empty) and returns the response
// with its body read.
func (e *env) do(t *testing.T, method, path, user, body string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, e.url+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if user != "" {
		req.Header.Set("X-User", user)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b strings.Builder
	bufio.NewReader(resp.Body).WriteTo(&b)
	return resp, b.String()
}

// status returns the client's status as GET /api/presence/{id} answers it.
func (e *env) status(t *testing.T, id string) (int, middleware.ClientStatus) {
	t.Helper()
	resp, body := e.do(t, "GET", "/api/presence/"+id, "reader", "")
	var st middleware.ClientStatus
	if resp.StatusCode == 200 {
		if err := json.Unmarshal([]byte(body), &st); err != nil {
			t.Fatal(err)
		}
	}
	return resp.StatusCode, st
}

func TestWebSocketThroughEcho(t *testing.T) {
	e := start(t)
	h := http.Header{"X-User": {"ann"}}
	ws, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(e.url, "http")+"/api/presence/ws", h)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	ws.WriteMessage(websocket.TextMessage, []byte("hi"))
	ws.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, got, err := ws.ReadMessage(); err != nil || string(got) != "ann: hi" {
		t.Fatalf("echo: %q, %v; want the ID from echo's context", got, err)
	}
	if code, st := e.status(t, "ann"); code != 200 || !st.Online || st.Sessions != 1 {
		t.Fatalf("GET /api/presence/ann: %d %+v", code, st)
	}

	_, resp, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(e.url, "http")+"/api/presence/ws", nil)
	if err == nil || resp == nil || resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("upgrade without a user: %v, %v; want 401", resp, err)
	}
}

func TestHTTPHeartbeat(t *testing.T) {
	e := start(t)
	if resp, body := e.do(t, "POST", "/api/presence/heartbeat", "ben", `{"session":"t1"}`); resp.StatusCode != 200 {
		t.Fatalf("heartbeat: %d %s", resp.StatusCode, body)
	}
	if code, st := e.status(t, "ben"); code != 200 || !st.Online || st.Sessions != 1 {
		t.Fatalf("GET /api/presence/ben: %d %+v", code, st)
	}
	if resp, body := e.do(t, "POST", "/api/presence/heartbeat", "", `{"session":"t1"}`); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("heartbeat without a user: %d %s; want 401", resp.StatusCode, body)
	}
	if resp, body := e.do(t, "POST", "/api/presence/leave", "ben", `{"session":"t1"}`); resp.StatusCode != http.StatusNoContent {
		t.Fatalf("leave: %d %s", resp.StatusCode, body)
	}
	var page middleware.OnlinePage
	resp, body := e.do(t, "GET", "/api/presence", "reader", "")
	if err := json.Unmarshal([]byte(body), &page); resp.StatusCode != 200 || err != nil {
		t.Fatalf("GET /api/presence: %d %s", resp.StatusCode, body)
	}
	if len(page.Clients) != 1 || page.Clients[0].ID != "ben" { // ben lingers through Grace
		t.Fatalf("online: %+v", page)
	}
}

func TestTrackRequests(t *testing.T) {
	e := start(t)
	e.do(t, "GET", "/api/app", "cat", "")      // counted
	e.do(t, "GET", "/api/denied", "dan", "")   // 403: not counted
	e.do(t, "GET", "/api/presence", "eve", "") // reading presence: not counted
	e.do(t, "GET", "/api/nowhere", "fay", "")  // echo's 404, through TrackRequests
	for _, tc := range []struct {
		id   string
		want int
	}{{"cat", 200}, {"dan", 404}, {"eve", 404}, {"fay", 404}} {
		if code, _ := e.status(t, tc.id); code != tc.want {
			t.Errorf("GET /api/presence/%s: %d, want %d", tc.id, code, tc.want)
		}
	}
	if code, _ := e.status(t, "reader"); code != 404 {
		t.Errorf("the reader of /api/presence/{id} was counted: %d", code)
	}
}

func TestIdentifyContextEndsWithRequest(t *testing.T) {
	e := start(t)
	if resp, _ := e.do(t, "GET", "/api/capture", "ann", ""); resp.StatusCode != 200 {
		t.Fatalf("GET /api/capture: %d", resp.StatusCode)
	}
	r := <-e.captured
	// echo reuses the Context for the next request: the access has ended.
	if id, err := vigilecho.IdentifyContext("user")(r); !errors.Is(err, middleware.ErrNoIdentity) {
		t.Fatalf("after the request: %q, %v; want ErrNoIdentity", id, err)
	}
	req := httptest.NewRequest("GET", "/", nil) // not served by vigilecho
	if _, err := vigilecho.IdentifyContext("user")(req); !errors.Is(err, middleware.ErrNoIdentity) || !strings.HasPrefix(err.Error(), "vigilecho: ") {
		t.Fatalf("plain request: %v", err)
	}
}

func TestMethodNotAllowed(t *testing.T) {
	e := start(t)
	for _, tc := range []struct{ method, path, allow string }{
		{"GET", "/api/presence/heartbeat", "POST"},
		{"PUT", "/api/presence/leave", "POST"},
		{"POST", "/api/presence/ws", "GET"},
		{"POST", "/api/presence/feed", "GET"},
		{"DELETE", "/api/presence/ann", "GET, HEAD"},
		{"POST", "/api/presence", "GET, HEAD"},
		{"POST", "/api/presence/vigil.js", "GET, HEAD"},
		{"PATCH", "/api/presence/metrics", "GET, HEAD"},
	} {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			resp, body := e.do(t, tc.method, tc.path, "ann", "")
			var reply middleware.ErrorReply
			json.Unmarshal([]byte(body), &reply)
			got := []string{resp.Status, resp.Header.Get("Allow"), reply.Error.Code}
			want := []string{"405 Method Not Allowed", tc.allow, middleware.CodeMethodNotAllowed}
			if d := cmp.Diff(want, got); d != "" {
				t.Errorf("(-want +got)\n%s", d)
			}
		})
	}
}

func TestFeed(t *testing.T) {
	e := start(t)
	e.do(t, "GET", "/api/app", "cat", "") // online before the feed starts
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", e.url+"/api/presence/feed", nil)
	req.Header.Set("X-User", "reader")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); resp.StatusCode != 200 || ct != "text/event-stream" {
		t.Fatalf("feed: %d %q", resp.StatusCode, ct)
	}
	sc := bufio.NewScanner(resp.Body)
	next := func() (event, data string) {
		t.Helper()
		for sc.Scan() {
			line := sc.Text()
			switch {
			case strings.HasPrefix(line, "event: "):
				event = strings.TrimPrefix(line, "event: ")
			case strings.HasPrefix(line, "data: "):
				data = strings.TrimPrefix(line, "data: ")
			case line == "" && event != "":
				return event, data
			}
		}
		t.Fatalf("feed ended: %v", sc.Err())
		return "", ""
	}
	if ev, data := next(); ev != "snapshot" || !strings.Contains(data, `"id":"cat"`) {
		t.Fatalf("first event %s %s; want a snapshot with cat", ev, data)
	}
	e.do(t, "POST", "/api/presence/heartbeat", "ben", `{"session":"t1"}`)
	if ev, data := next(); ev != "online" || !strings.Contains(data, `"id":"ben"`) {
		t.Fatalf("event %s %s; want ben online", ev, data)
	}
}

func TestMountRoutes(t *testing.T) {
	e := start(t)
	var got []string
	for _, r := range e.mounted.Routes() {
		got = append(got, r.Pattern)
	}
	want := []string{"/presence/ws", "/presence/heartbeat", "/presence/leave", "/presence/feed",
		"/presence/vigil.js", "/presence/vigil.d.ts", "/presence/metrics", "/presence", "/presence/{id}"}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("routes (-want +got)\n%s", d)
	}
	if resp, body := e.do(t, "GET", "/api/presence/vigil.js", "", ""); resp.StatusCode != 200 || len(body) == 0 {
		t.Errorf("GET vigil.js: %d, %d bytes", resp.StatusCode, len(body))
	}
	if _, err := vigilecho.Mount(echo.New(), "/presence/", nil, middleware.MountConfig{}); err == nil {
		t.Error("Mount with a trailing slash: no error")
	}
}

// Without TrackRequests, Mount's routes bridge echo's context themselves.
func TestMountWithoutTrackRequests(t *testing.T) {
	ctx := context.Background()
	st, _ := memory.New(memory.Config{})
	tr, err := presence.New(ctx, st, presence.Config{Node: "n1"})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close(ctx)
	srv, err := middleware.New(tr, middleware.Config{Identify: vigilecho.IdentifyContext("user")})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown(ctx)
	r := echo.New()
	r.Use(auth)
	m, err := vigilecho.Mount(r, "/presence", srv, middleware.MountConfig{DisableFeed: true})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	rec := httptest.NewRecorder()
	req := httptest.NewRequest("POST", "/presence/heartbeat", strings.NewReader(`{"session":"t1"}`))
	req.Header.Set("X-User", "ann")
	r.ServeHTTP(rec, req)
	if rec.Code != 200 {
		t.Fatalf("heartbeat: %d %s", rec.Code, rec.Body)
	}
	if p, err := tr.Presence(ctx, "ann"); err != nil || !p.Online {
		t.Fatalf("ann: %+v, %v", p, err)
	}
}

// echo routes on the escaped path when there is one: its parameter is
// unescaped for r.PathValue, as net/http's ServeMux does.
func TestEscapedClientID(t *testing.T) {
	e := start(t)
	if resp, body := e.do(t, "POST", "/api/presence/heartbeat", "a/b", `{"session":"t1"}`); resp.StatusCode != 200 {
		t.Fatalf("heartbeat: %d %s", resp.StatusCode, body)
	}
	if code, st := e.status(t, "a%2Fb"); code != 200 || st.ID != "a/b" || !st.Online {
		t.Fatalf("GET /api/presence/a%%2Fb: %d %+v", code, st)
	}
}

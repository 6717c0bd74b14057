// Package adaptertest is the conformance suite of vigil's router adapters
// (adapters/vigilchi's, and the gin and echo modules'), as storetest is the
// stores': each adapter builds the same app on its framework, and Run checks
// what every adapter must do: upgrade with the identity from the
// framework's context, HTTP heartbeats, TrackRequests' rule, 405 with Allow,
// the feed, rooms and the routes Mount serves.
package adaptertest

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/vigilhq/vigil/middleware"
	"github.com/vigilhq/vigil/presence"
	"github.com/vigilhq/vigil/store/memory"
)

// App is an adapter's app under test: vigil mounted at /api/presence in a
// group behind the app's auth (which puts the user named by the X-User
// header in the framework's context, refusing nobody) and the adapter's
// TrackRequests, beside /api/app (200) and /api/denied (403), with Echo as
// the WebSocket handler.
type App struct {
	URL     string // the test server's
	Tracker *presence.Tracker
	Mounted *middleware.Mounted
}

// NewVigil returns a Tracker and a Server on a memory store that
// identifies clients with identify and joins each new session to the rooms
// of the request's "room" query parameters (Rooms), both closed when the
// test ends (after the cleanups the caller registers later, such as its
// test server's).
func NewVigil(t *testing.T, identify func(*http.Request) (string, error)) (*presence.Tracker, *middleware.Server) {
	t.Helper()
	ctx := context.Background()
	st, _ := memory.New(memory.Config{})
	tr, err := presence.New(ctx, st, presence.Config{Node: "n1"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tr.Close(ctx) })
	srv, err := middleware.New(tr, middleware.Config{Identify: identify, Rooms: Rooms})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Shutdown(ctx) })
	return tr, srv
}

// Rooms is the App's middleware.Config.Rooms: the rooms of the request's
// "room" query parameters, with metadata {"name": the "name" parameter}
// when there is one.
func Rooms(r *http.Request, _ string) (middleware.SessionRooms, error) {
	q := r.URL.Query()
	sr := middleware.SessionRooms{Rooms: q["room"]}
	if name := q.Get("name"); name != "" {
		var err error
		if sr.Meta, err = json.Marshal(map[string]string{"name": name}); err != nil {
			return sr, err
		}
	}
	return sr, nil
}

// Echo is the App's WebSocket handler: it answers each message with the
// client's ID, ": " and the message.
func Echo(ctx context.Context, c *middleware.Conn) {
	for {
		m, err := c.Receive(ctx)
		if err != nil {
			return
		}
		_ = c.Send(m.Type, append([]byte(c.ClientID()+": "), m.Data...))
	}
}

// Run runs the suite, each test on a fresh App from start.
func Run(t *testing.T, start func(*testing.T) *App) {
	for _, tc := range []struct {
		name string
		fn   func(*testing.T, func(*testing.T) *App)
	}{
		{"WebSocket", testWebSocket},
		{"HTTPHeartbeat", testHTTPHeartbeat},
		{"TrackRequests", testTrackRequests},
		{"MethodNotAllowed", testMethodNotAllowed},
		{"Feed", testFeed},
		{"Routes", testRoutes},
		{"Rooms", testRooms},
	} {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, start) })
	}
}

// Do sends a request as user (none when empty) and returns the response
// with its body read.
func (a *App) Do(t *testing.T, method, path, user, body string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, a.URL+path, strings.NewReader(body))
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

// Status returns the client's status as GET /api/presence/{id} answers it.
func (a *App) Status(t *testing.T, id string) (int, middleware.ClientStatus) {
	t.Helper()
	resp, body := a.Do(t, "GET", "/api/presence/"+id, "reader", "")
	var st middleware.ClientStatus
	if resp.StatusCode == 200 {
		if err := json.Unmarshal([]byte(body), &st); err != nil {
			t.Fatal(err)
		}
	}
	return resp.StatusCode, st
}

func testWebSocket(t *testing.T, start func(*testing.T) *App) {
	a := start(t)
	h := http.Header{"X-User": {"ann"}}
	ws, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(a.URL, "http")+"/api/presence/ws", h)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	ws.WriteMessage(websocket.TextMessage, []byte("hi"))
	ws.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, got, err := ws.ReadMessage(); err != nil || string(got) != "ann: hi" {
		t.Fatalf("echo: %q, %v; want the ID from the framework's context", got, err)
	}
	if code, st := a.Status(t, "ann"); code != 200 || !st.Online || st.Sessions != 1 {
		t.Fatalf("GET /api/presence/ann: %d %+v", code, st)
	}

	_, resp, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(a.URL, "http")+"/api/presence/ws", nil)
	if err == nil || resp == nil || resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("upgrade without a user: %v, %v; want 401", resp, err)
	}
}

func testHTTPHeartbeat(t *testing.T, start func(*testing.T) *App) {
	a := start(t)
	if resp, body := a.Do(t, "POST", "/api/presence/heartbeat", "ben", `{"session":"t1"}`); resp.StatusCode != 200 {
		t.Fatalf("heartbeat: %d %s", resp.StatusCode, body)
	}
	if code, st := a.Status(t, "ben"); code != 200 || !st.Online || st.Sessions != 1 {
		t.Fatalf("GET /api/presence/ben: %d %+v", code, st)
	}
	if resp, body := a.Do(t, "POST", "/api/presence/heartbeat", "", `{"session":"t1"}`); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("heartbeat without a user: %d %s; want 401", resp.StatusCode, body)
	}
	if resp, body := a.Do(t, "POST", "/api/presence/leave", "ben", `{"session":"t1"}`); resp.StatusCode != http.StatusNoContent {
		t.Fatalf("leave: %d %s", resp.StatusCode, body)
	}
	var page middleware.OnlinePage
	resp, body := a.Do(t, "GET", "/api/presence", "reader", "")
	if err := json.Unmarshal([]byte(body), &page); resp.StatusCode != 200 || err != nil {
		t.Fatalf("GET /api/presence: %d %s", resp.StatusCode, body)
	}
	if len(page.Clients) != 1 || page.Clients[0].ID != "ben" { // ben lingers through Grace
		t.Fatalf("online: %+v", page)
	}
}

func testTrackRequests(t *testing.T, start func(*testing.T) *App) {
	a := start(t)
	a.Do(t, "GET", "/api/app", "cat", "")      // counted
	a.Do(t, "GET", "/api/denied", "dan", "")   // 403: not counted
	a.Do(t, "GET", "/api/presence", "eve", "") // reading presence: not counted
	a.Do(t, "GET", "/api/nowhere", "fay", "")  // the router's 404
	for _, tc := range []struct {
		id   string
		want int
	}{{"cat", 200}, {"dan", 404}, {"eve", 404}, {"fay", 404}} {
		if code, _ := a.Status(t, tc.id); code != tc.want {
			t.Errorf("GET /api/presence/%s: %d, want %d", tc.id, code, tc.want)
		}
	}
	if code, _ := a.Status(t, "reader"); code != 404 {
		t.Errorf("the reader of /api/presence/{id} was counted: %d", code)
	}
}

func testMethodNotAllowed(t *testing.T, start func(*testing.T) *App) {
	a := start(t)
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
			resp, body := a.Do(t, tc.method, tc.path, "ann", "")
			var reply middleware.ErrorReply
			json.Unmarshal([]byte(body), &reply)
			got := []string{resp.Status, resp.Header.Get("Allow"), reply.Error.Code}
			want := []string{"405 Method Not Allowed", tc.allow, middleware.CodeMethodNotAllowed}
			if !slices.Equal(want, got) {
				t.Errorf("got %q, want %q", got, want)
			}
		})
	}
}

func testFeed(t *testing.T, start func(*testing.T) *App) {
	a := start(t)
	a.Do(t, "GET", "/api/app", "cat", "") // online before the feed starts
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", a.URL+"/api/presence/feed", nil)
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
	a.Do(t, "POST", "/api/presence/heartbeat", "ben", `{"session":"t1"}`)
	if ev, data := next(); ev != "online" || !strings.Contains(data, `"id":"ben"`) {
		t.Fatalf("event %s %s; want ben online", ev, data)
	}
}

func testRoutes(t *testing.T, start func(*testing.T) *App) {
	a := start(t)
	var got []string
	for _, r := range a.Mounted.Routes() {
		got = append(got, r.Pattern)
	}
	want := []string{"/presence/ws", "/presence/heartbeat", "/presence/leave", "/presence/feed",
		"/presence/vigil.js", "/presence/vigil.d.ts", "/presence/metrics", "/presence", "/presence/{id}",
		"/presence/rooms/{room}"}
	if !slices.Equal(want, got) {
		t.Errorf("routes %q, want %q", got, want)
	}
	if resp, body := a.Do(t, "GET", "/api/presence/vigil.js", "", ""); resp.StatusCode != 200 || len(body) == 0 {
		t.Errorf("GET vigil.js: %d, %d bytes", resp.StatusCode, len(body))
	}
}

// Room reads GET /api/presence/rooms/{room} (room escaped as a path
// segment).
func (a *App) Room(t *testing.T, room string) (int, middleware.RoomPage) {
	t.Helper()
	resp, body := a.Do(t, "GET", "/api/presence/rooms/"+url.PathEscape(room), "reader", "")
	var p middleware.RoomPage
	if resp.StatusCode == 200 {
		if err := json.Unmarshal([]byte(body), &p); err != nil {
			t.Fatal(err)
		}
	}
	return resp.StatusCode, p
}

func testRooms(t *testing.T, start func(*testing.T) *App) {
	a := start(t)
	h := http.Header{"X-User": {"ann"}}
	ws, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(a.URL, "http")+"/api/presence/ws?room=lobby&room=a%2Fb&name=Ann", h)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	// The session opens after the upgrade's answer: its echo shows it open.
	ws.WriteMessage(websocket.TextMessage, []byte("hi"))
	ws.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, _, err := ws.ReadMessage(); err != nil {
		t.Fatal(err)
	}
	if resp, body := a.Do(t, "POST", "/api/presence/heartbeat?room=lobby", "ben", ""); resp.StatusCode != 200 {
		t.Fatalf("heartbeat: %d %s", resp.StatusCode, body)
	}
	code, p := a.Room(t, "lobby")
	var ids []string
	for _, m := range p.Members {
		ids = append(ids, m.ID)
	}
	slices.Sort(ids)
	if code != 200 || p.Room != "lobby" || p.Count != 2 || !slices.Equal(ids, []string{"ann", "ben"}) {
		t.Fatalf("GET rooms/lobby: %d %+v", code, p)
	}
	if code, p := a.Room(t, "a/b"); code != 200 || p.Room != "a/b" || p.Count != 1 || len(p.Members) != 1 ||
		p.Members[0].ID != "ann" || len(p.Members[0].Meta) != 1 || string(p.Members[0].Meta[0]) != `{"name":"Ann"}` {
		t.Fatalf("GET rooms/a%%2Fb: %d %+v", code, p)
	}
	if code, p := a.Room(t, "nobody-here"); code != 200 || p.Count != 0 || p.Members == nil {
		t.Fatalf("GET an empty room: %d %+v", code, p)
	}
	for _, path := range []string{"/api/presence/rooms/" + strings.Repeat("r", 257), "/api/presence/rooms/lobby?limit=0"} {
		if resp, body := a.Do(t, "GET", path, "reader", ""); resp.StatusCode != http.StatusBadRequest {
			t.Errorf("GET %.40s…: %d %s; want 400", path, resp.StatusCode, body)
		}
	}
	if resp, body := a.Do(t, "POST", "/api/presence/heartbeat?room=", "ben", ""); resp.StatusCode != http.StatusBadRequest ||
		!strings.Contains(body, middleware.CodeInvalidRoom) {
		t.Errorf("heartbeat with an empty room: %d %s; want 400", resp.StatusCode, body)
	}
	if resp, _ := a.Do(t, "POST", "/api/presence/rooms/lobby", "reader", ""); resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST rooms/lobby: %d", resp.StatusCode)
	}
}

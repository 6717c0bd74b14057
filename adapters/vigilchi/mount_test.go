package vigilchi_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"
	chimw "github.com/go-chi/chi/v5/middleware"
	"github.com/gorilla/websocket"
	"go.uber.org/goleak"

	"github.com/vigilhq/vigil/adapters/vigilchi"
	"github.com/vigilhq/vigil/middleware"
	"github.com/vigilhq/vigil/presence"
	"github.com/vigilhq/vigil/store/memory"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func setup(t *testing.T) (*presence.Tracker, *middleware.Server) {
	t.Helper()
	st, _ := memory.New(memory.Config{})
	tr, err := presence.New(context.Background(), st, presence.Config{Node: "n1"})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := middleware.New(tr, middleware.Config{Identify: middleware.IdentifyQuery("id")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx := context.Background()
		srv.Shutdown(ctx)
		tr.Close(ctx)
	})
	return tr, srv
}

func TestMountBehindChiLogger(t *testing.T) {
	tr, srv := setup(t)
	r := chi.NewRouter()
	r.Use(chimw.Logger) // wraps the ResponseWriter
	r.Use(srv.TrackRequests)
	mounted, err := vigilchi.Mount(r, "/presence", srv, middleware.MountConfig{Handler: func(ctx context.Context, c *middleware.Conn) {
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
	defer mounted.Close()
	r.Get("/app", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("app")) })
	ts := httptest.NewServer(r)
	defer ts.Close()

	ws, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(ts.URL, "http")+"/presence/ws?id=ann", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	ws.WriteMessage(websocket.TextMessage, []byte("hi"))
	ws.SetReadDeadline(time.Now().Add(2 * time.Second))
	if _, got, err := ws.ReadMessage(); err != nil || string(got) != "ann: hi" {
		t.Fatalf("got %q %v", got, err)
	}

	resp, err := http.Post(ts.URL+"/presence/heartbeat?id=ben", "application/json", strings.NewReader(`{"session":"t1"}`))
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("heartbeat: %v %v", resp, err)
	}
	resp.Body.Close()
	resp, _ = http.Get(ts.URL + "/app?id=cat") // counted by TrackRequests
	resp.Body.Close()

	var page middleware.OnlinePage
	resp, err = http.Get(ts.URL + "/presence")
	if err != nil {
		t.Fatal(err)
	}
	json.NewDecoder(resp.Body).Decode(&page)
	resp.Body.Close()
	if len(page.Clients) != 3 {
		t.Fatalf("online %+v, want ann, ben, cat", page)
	}
	var one middleware.ClientStatus
	resp, _ = http.Get(ts.URL + "/presence/ann")
	json.NewDecoder(resp.Body).Decode(&one)
	resp.Body.Close()
	if one.ID != "ann" || !one.Online || one.Sessions != 1 {
		t.Fatalf("ann: %+v", one)
	}
	resp, _ = http.Get(ts.URL + "/presence/zed")
	resp.Body.Close()
	if resp.StatusCode != 404 {
		t.Fatalf("unknown: %d", resp.StatusCode)
	}
	resp, err = http.Post(ts.URL+"/presence/leave?id=ben", "text/plain", strings.NewReader(`{"session":"t1"}`))
	if err != nil || resp.StatusCode != 204 {
		t.Fatalf("leave: %v %v", resp, err)
	}
	resp.Body.Close()
	if n, _ := tr.Count(context.Background()); n != 3 { // ben lingers through Grace
		t.Fatalf("count %d", n)
	}
}

func TestMountServesScript(t *testing.T) {
	_, srv := setup(t)
	r := chi.NewRouter()
	mounted, err := vigilchi.Mount(r, "/presence", srv, middleware.MountConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer mounted.Close()
	for _, p := range []string{"/presence/vigil.js", "/presence/vigil.d.ts", "/presence/metrics"} {
		rec := httptest.NewRecorder()
		r.ServeHTTP(rec, httptest.NewRequest("GET", p, nil))
		if rec.Code != 200 || rec.Body.Len() == 0 {
			t.Errorf("GET %s = %d, %d bytes", p, rec.Code, rec.Body.Len())
		}
	}
}

package middleware_test

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/vigilhq/vigil/middleware"
	"github.com/vigilhq/vigil/presence"
	"github.com/vigilhq/vigil/store/memory"
)

// TestMaxSessionsPerClientAcrossServers runs two Servers (two nodes) on one
// Store with presence.Config.MaxSessionsPerClient 2 and no per-node cap: a
// client's third session, on either node, is refused 429 with Retry-After
// before any upgrade, and the Store records nothing of it.
func TestMaxSessionsPerClientAcrossServers(t *testing.T) {
	st, err := memory.New(memory.Config{})
	if err != nil {
		t.Fatal(err)
	}
	node := func(name string) (*presence.Tracker, http.Handler) {
		t.Helper()
		tr, err := presence.New(context.Background(), st, presence.Config{Node: name, MaxSessionsPerClient: 2})
		if err != nil {
			t.Fatal(err)
		}
		srv, err := middleware.New(tr, middleware.Config{Identify: middleware.IdentifyQuery("id")})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := srv.Shutdown(ctx); err != nil {
				t.Errorf("Shutdown %s: %v", name, err)
			}
			if err := tr.Close(ctx); err != nil {
				t.Errorf("tracker Close %s: %v", name, err)
			}
		})
		m := http.NewServeMux()
		m.Handle("GET /ws", srv.WebSocket(nil))
		m.Handle("POST /presence/heartbeat", srv.HeartbeatEndpoint())
		return tr, m
	}
	_, h1 := node("n1")
	_, h2 := node("n2")
	ts1, ts2 := startHTTP(t, h1), startHTTP(t, h2)

	mustDial(t, wsURL(ts1, "/ws?id=cap"))
	mustDial(t, wsURL(ts2, "/ws?id=cap"))
	for _, ts := range []string{wsURL(ts1, "/ws?id=cap"), wsURL(ts2, "/ws?id=cap")} {
		c, resp, err := dial(t, ts, nil)
		if c != nil || resp == nil || resp.StatusCode != http.StatusTooManyRequests {
			status := 0
			if resp != nil {
				status = resp.StatusCode
			}
			t.Fatalf("third WebSocket on %s: upgraded %v, status %d, err %v; want 429 before the upgrade", ts, c != nil, status, err)
		}
		if resp.Header.Get("Retry-After") == "" {
			t.Error("429 without Retry-After")
		}
		var reply middleware.ErrorReply
		if err := json.NewDecoder(resp.Body).Decode(&reply); err != nil || reply.Error.Code != middleware.CodeTooManyConns {
			t.Errorf("429 body: %+v, %v; want code %q", reply, err, middleware.CodeTooManyConns)
		}
	}
	// An HTTP-heartbeat session counts against the same cap.
	rec := serve(h2, "POST", "/presence/heartbeat?id=cap&session=tab", "", nil)
	checkRefusal(t, rec, http.StatusTooManyRequests, middleware.CodeTooManyConns)
	if rec.Header().Get("Retry-After") == "" {
		t.Error("heartbeat 429 without Retry-After")
	}
	infos, err := st.Sessions(context.Background(), "cap")
	if err != nil {
		t.Fatal(err)
	}
	if len(infos) != 2 {
		t.Fatalf("the Store holds %d sessions of the client, want the 2 opened: %+v", len(infos), infos)
	}
	// Another client is not affected.
	mustDial(t, wsURL(ts2, "/ws?id=other"))
}

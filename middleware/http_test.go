package middleware_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/vigilhq/vigil/middleware"
	"github.com/vigilhq/vigil/presence"
)

func post(t *testing.T, url, contentType, body string, hdr ...string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

func getJSON(t *testing.T, url string, v any) int {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if v != nil && resp.StatusCode == http.StatusOK {
		if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
			t.Fatal(err)
		}
	}
	return resp.StatusCode
}

func TestHeartbeatEndpoint(t *testing.T) {
	cfg := fastServer()
	cfg.MaxConnsPerClient = 2
	e := newEnv(t, fastTracker(), cfg)
	ts := startHTTP(t, e.mux(nil))
	hb := ts.URL + "/presence/heartbeat"

	resp := post(t, hb+"?id=carol", "application/json", `{"session":"tab-1","ts":1700000000000}`)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d", resp.StatusCode)
	}
	var got map[string]any
	json.NewDecoder(resp.Body).Decode(&got)
	if got["online"] != true || got["interval_ms"] != float64(100) || got["ttl_ms"] != float64(400) || got["server_time_ms"] == nil {
		t.Fatalf("reply %v", got)
	}
	if ev := e.waitEvent(t, "carol", 2*time.Second); ev.Transition != presence.Online {
		t.Fatalf("event %+v", ev)
	}
	// Beats never more than TTL apart keep it online, whatever their rhythm.
	for _, gap := range []time.Duration{50, 350, 10, 300} {
		time.Sleep(gap * time.Millisecond)
		if r := post(t, hb+"?id=carol&session=tab-1", "", ""); r.StatusCode != 200 {
			t.Fatalf("status %d", r.StatusCode)
		}
	}
	e.noEvent(t, 10*time.Millisecond)

	for _, tc := range []struct {
		name, query, ctype, body string
		hdr                      []string
		status                   int
	}{
		{"no id", "", "", "", nil, 401},
		{"bad id", "?id=%01", "", "", nil, 400},
		{"malformed json", "?id=carol", "application/json", `{"session":`, nil, 400},
		{"not an object", "?id=carol", "application/json", `[1]`, nil, 400},
		{"trailing data", "?id=carol", "application/json", `{} {}`, nil, 400},
		{"ts not a number", "?id=carol", "application/json", `{"ts":"x"}`, nil, 400},
		{"bad session", "?id=carol", "application/json", `{"session":"a\u0000"}`, nil, 400},
		{"sessions disagree", "?id=carol&session=a", "application/json", `{"session":"b"}`, nil, 400},
		{"too large", "?id=carol", "application/json", `{"session":"` + strings.Repeat("x", 2000) + `"}`, nil, 413},
		{"foreign origin", "?id=carol", "", "", []string{"Origin", "https://evil.example"}, 403},
		{"text/plain beacon", "?id=carol", "text/plain;charset=UTF-8", `{"session":"tab-2"}`, nil, 200},
		{"over per-client limit", "?id=carol", "", `{"session":"tab-3"}`, nil, 429},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := post(t, hb+tc.query, tc.ctype, tc.body, tc.hdr...)
			if r.StatusCode != tc.status {
				b, _ := io.ReadAll(r.Body)
				t.Fatalf("status %d, want %d: %s", r.StatusCode, tc.status, b)
			}
		})
	}
	rec := httptest.NewRecorder()
	e.srv.HeartbeatEndpoint().ServeHTTP(rec, httptest.NewRequest("GET", "/hb?id=carol", nil))
	if rec.Code != 405 || rec.Header().Get("Allow") != "POST" {
		t.Fatalf("GET heartbeat: %d %q", rec.Code, rec.Header().Get("Allow"))
	}

	// Leave both tabs: the client goes offline after Grace, reason left.
	for _, s := range []string{"tab-1", "tab-2"} {
		if r := post(t, ts.URL+"/presence/leave?id=carol", "text/plain", `{"session":"`+s+`"}`); r.StatusCode != 204 {
			t.Fatalf("leave: %d", r.StatusCode)
		}
	}
	ev := e.waitEvent(t, "carol", 2*time.Second)
	if ev.Transition != presence.Offline || ev.Reason != presence.ReasonLeft {
		t.Fatalf("event %+v, want offline left", ev)
	}
	if st := e.srv.Stats(); st.HTTPHeartbeats == 0 || st.Leaves != 2 {
		t.Errorf("stats %+v", st)
	}
}

// An HTTP-heartbeat client that stops beating goes offline (reason
// expired, no Grace) within TTL + 2×SweepInterval of its last beat, the
// bound presence.Config.SweepInterval promises. On fake time (a synctest
// bubble), so the bound holds exactly however loaded the machine is.
func TestHeartbeatExpires(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tcfg := fastTracker()
		b := newBubble(t, tcfg, fastServer(), nil)
		hc := b.httpClient()
		resp, err := hc.Post("http://pipe/presence/heartbeat?id=dave", "", nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		beat := time.Now()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("heartbeat: status %d", resp.StatusCode)
		}
		if ev := b.next(t); ev.Transition != presence.Online {
			t.Fatalf("event %+v, want online", ev)
		}
		ev := b.next(t)
		if ev.Transition != presence.Offline || ev.Reason != presence.ReasonExpired {
			t.Fatalf("event %+v, want offline expired", ev)
		}
		if took := time.Since(beat); took < tcfg.TTL || took > tcfg.TTL+2*tcfg.SweepInterval {
			t.Errorf("offline %v after the last beat, want within [TTL, TTL+2×SweepInterval] = [%v, %v]",
				took, tcfg.TTL, tcfg.TTL+2*tcfg.SweepInterval)
		}
		hc.CloseIdleConnections()
		b.close(t)
	})
}

// timing: fastServer's timings (TTL ≥ PingInterval + PongTimeout); requests
// are the subject.
func TestTrackRequests(t *testing.T) {
	e := newEnv(t, fastTracker(), middleware.Config{
		PingInterval: 100 * time.Millisecond, PongTimeout: 200 * time.Millisecond,
		Identify: middleware.IdentifyHeader("X-User"),
	})
	app := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "app") })
	ts := startHTTP(t, e.srv.TrackRequests(app))
	for range 3 {
		req, _ := http.NewRequest("GET", ts.URL, nil)
		req.Header.Set("X-User", "erin")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(b) != "app" {
			t.Fatalf("body %q", b)
		}
	}
	resp, _ := http.Get(ts.URL) // anonymous: passed through, uncounted
	resp.Body.Close()
	if ev := e.waitEvent(t, "erin", 2*time.Second); ev.Transition != presence.Online {
		t.Fatalf("event %+v", ev)
	}
	if n, _ := e.tr.Count(context.Background()); n != 1 {
		t.Fatalf("count %d", n)
	}
}

func TestStatusEndpoints(t *testing.T) {
	e := newEnv(t, presence.Config{}, middleware.Config{})
	ts := startHTTP(t, e.mux(nil))
	var want []string
	for i := range 25 {
		id := fmt.Sprintf("user-%02d", i)
		want = append(want, id)
		post(t, ts.URL+"/presence/heartbeat?id="+id, "", "")
	}
	var got []string
	cursor := ""
	for pages := 0; ; pages++ {
		if pages > 10 {
			t.Fatal("too many pages")
		}
		var page middleware.OnlinePage
		if st := getJSON(t, ts.URL+"/presence?limit=10&cursor="+cursor, &page); st != 200 {
			t.Fatalf("status %d", st)
		}
		if len(page.Clients) > 10 {
			t.Fatalf("page of %d", len(page.Clients))
		}
		for _, c := range page.Clients {
			if !c.Online || c.Sessions != 1 || c.LastSeen == "" || c.Since == "" {
				t.Errorf("client %+v", c)
			}
			got = append(got, c.ID)
		}
		if page.Next == "" {
			break
		}
		cursor = page.Next
	}
	if diff := cmp.Diff(want, slices.Sorted(slices.Values(got))); diff != "" {
		t.Errorf("listed clients (-want +got):\n%s", diff)
	}
	var one middleware.ClientStatus
	if st := getJSON(t, ts.URL+"/presence/user-03", &one); st != 200 || one.ID != "user-03" || !one.Online {
		t.Fatalf("one: %d %+v", st, one)
	}
	for _, tc := range []struct {
		path   string
		status int
	}{
		{"/presence/nobody", 404},
		{"/presence/%01", 400},
		{"/presence?limit=0", 400},
		{"/presence?limit=x", 400},
		{"/presence?limit=100000", 200},
		{"/presence?cursor=garbage!", 400},
	} {
		if st := getJSON(t, ts.URL+tc.path, nil); st != tc.status {
			t.Errorf("%s: status %d, want %d", tc.path, st, tc.status)
		}
	}
}

func TestMetricsHandler(t *testing.T) {
	e := newEnv(t, fastTracker(), fastServer())
	ts := startHTTP(t, e.mux(nil))
	post(t, ts.URL+"/presence/heartbeat?id=m", "", "")
	rec := httptest.NewRecorder()
	e.srv.MetricsHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body := rec.Body.String()
	for _, want := range []string{
		"# TYPE vigil_connections gauge\nvigil_connections{transport=\"http\"} 1\n",
		`vigil_beats_total{transport="http"} 1` + "\n",
		"# TYPE vigil_ws_pings_total counter\nvigil_ws_pings_total 0\n",
		`vigil_presence_transitions_total{to="online",reason="connect"} 1` + "\n",
		"# TYPE vigil_presence_store_duration_seconds histogram\n",
		"vigil_presence_online_clients 1\n",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %q:\n%s", want, body)
		}
	}
}

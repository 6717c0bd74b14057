package prometheus_test

import (
	"context"
	"errors"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	prom "github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/goleak"

	vigilprom "github.com/vigilhq/vigil/metrics/prometheus"
	"github.com/vigilhq/vigil/middleware"
	"github.com/vigilhq/vigil/presence"
	"github.com/vigilhq/vigil/store/memory"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// waitFor polls cond until it holds or a deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestEndToEnd runs a Tracker and a middleware Server with the Observer and
// reads the registry after one WebSocket client came and went.
func TestEndToEnd(t *testing.T) {
	reg := prom.NewRegistry()
	obs, err := vigilprom.New(reg, vigilprom.Config{})
	if err != nil {
		t.Fatal(err)
	}
	st, err := memory.New(memory.Config{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	tr, err := presence.New(ctx, st, presence.Config{Node: "n1", Grace: -1, Observer: obs})
	if err != nil {
		t.Fatal(err)
	}
	reg.MustRegister(vigilprom.NewTrackerCollector(tr, vigilprom.Config{}))
	vs, err := middleware.New(tr, middleware.Config{Identify: middleware.IdentifyQuery("id")})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(vs.WebSocket(nil))
	t.Cleanup(func() {
		srv.Close()
		_ = vs.Shutdown(ctx)
		_ = tr.Close(ctx)
	})

	ws, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(srv.URL, "http")+"/?id=secret-user-42", nil)
	if err != nil {
		t.Fatal(err)
	}
	conns := func() float64 { return testutil.ToFloat64(obs.Connections(presence.TransportWS)) }
	waitFor(t, "the connection to open", func() bool { return conns() == 1 })
	if err := ws.WriteMessage(websocket.TextMessage, []byte("ping")); err != nil {
		t.Fatal(err)
	}
	if _, _, err := ws.ReadMessage(); err != nil { // the "pong"
		t.Fatal(err)
	}
	_ = ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
	ws.Close()
	waitFor(t, "the connection to close", func() bool { return conns() == 0 })
	waitFor(t, "the offline", func() bool {
		n, _ := testutil.GatherAndCount(reg, "vigil_presence_transitions_total")
		return n == 2
	})

	want := `
# HELP vigil_connections_closed_total WebSocket connections and HTTP-heartbeat sessions ended, by close code (1006: dropped; none: HTTP) and presence reason.
# TYPE vigil_connections_closed_total counter
vigil_connections_closed_total{code="1000",reason="closed",transport="ws"} 1
# HELP vigil_connections_opened_total WebSocket connections and HTTP-heartbeat sessions opened.
# TYPE vigil_connections_opened_total counter
vigil_connections_opened_total{transport="ws"} 1
# HELP vigil_presence_transitions_total Presence transitions observed by this node.
# TYPE vigil_presence_transitions_total counter
vigil_presence_transitions_total{reason="closed",to="offline"} 1
vigil_presence_transitions_total{reason="connect",to="online"} 1
# HELP vigil_presence_online_clients Clients online on all nodes sharing the store (one Store count per collection).
# TYPE vigil_presence_online_clients gauge
vigil_presence_online_clients 0
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want),
		"vigil_connections_closed_total", "vigil_connections_opened_total",
		"vigil_presence_transitions_total", "vigil_presence_online_clients"); err != nil {
		t.Error(err)
	}
	if n := testutil.ToFloat64(obs.Beats(presence.TransportWS)); n < 1 {
		t.Errorf("ws beats = %v, want at least 1 (the app ping)", n)
	}
	if n, err := testutil.GatherAndCount(reg, "vigil_presence_store_duration_seconds"); err != nil || n < 2 {
		t.Errorf("store latency series = %d (%v), want add and end at least", n, err)
	}

	// No label value carries the client ID.
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if strings.Contains(l.GetValue(), "secret") {
					t.Errorf("%s has label %s=%q", mf.GetName(), l.GetName(), l.GetValue())
				}
			}
		}
	}
}

// TestLabelsBounded: values outside the known sets count as "other".
func TestLabelsBounded(t *testing.T) {
	reg := prom.NewRegistry()
	obs, err := vigilprom.New(reg, vigilprom.Config{Namespace: "x"})
	if err != nil {
		t.Fatal(err)
	}
	obs.ConnOpened("carrier-pigeon")
	obs.ConnClosed(presence.TransportWS, 3999, presence.Reason("made-up"))
	obs.StoreCall("Frobnicate", time.Millisecond, errors.New("boom"))
	want := `
# HELP x_connections_closed_total WebSocket connections and HTTP-heartbeat sessions ended, by close code (1006: dropped; none: HTTP) and presence reason.
# TYPE x_connections_closed_total counter
x_connections_closed_total{code="other",reason="other",transport="ws"} 1
# HELP x_presence_store_errors_total Failed Store calls, by method (each is retried).
# TYPE x_presence_store_errors_total counter
x_presence_store_errors_total{op="other"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "x_connections_closed_total", "x_presence_store_errors_total"); err != nil {
		t.Error(err)
	}
	if n := testutil.ToFloat64(obs.Connections("other")); n != 1 {
		t.Errorf("other connections = %v, want 1", n)
	}
}

func TestNewErrors(t *testing.T) {
	if _, err := vigilprom.New(nil, vigilprom.Config{}); err == nil {
		t.Error("New(nil) succeeded")
	}
	reg := prom.NewRegistry()
	if _, err := vigilprom.New(reg, vigilprom.Config{}); err != nil {
		t.Fatal(err)
	}
	_, err := vigilprom.New(reg, vigilprom.Config{})
	var are prom.AlreadyRegisteredError
	if !errors.As(err, &are) {
		t.Errorf("second New on one registry: %v, want AlreadyRegisteredError", err)
	}
}

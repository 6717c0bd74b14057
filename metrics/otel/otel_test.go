package otel_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/gorilla/websocket"
	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"go.uber.org/goleak"

	"github.com/vigilhq/vigil/metrics"
	vigilotel "github.com/vigilhq/vigil/metrics/otel"
	"github.com/vigilhq/vigil/middleware"
	"github.com/vigilhq/vigil/presence"
	"github.com/vigilhq/vigil/store/memory"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// collected is one collection: per instrument its description, unit and
// points ("attr=value,… value", sorted, zero values left out).
type collected map[string]string

func collect(t *testing.T, r *sdkmetric.ManualReader) collected {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := r.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	out := make(collected)
	for _, sm := range rm.ScopeMetrics {
		if sm.Scope.Name != vigilotel.ScopeName {
			t.Errorf("scope %q, want %q", sm.Scope.Name, vigilotel.ScopeName)
		}
		for _, m := range sm.Metrics {
			var pts []string
			point := func(set attribute.Set, v float64) {
				if v == 0 {
					return
				}
				var kv []string
				for _, a := range set.ToSlice() {
					kv = append(kv, string(a.Key)+"="+a.Value.AsString())
				}
				sort.Strings(kv)
				pts = append(pts, fmt.Sprintf("%s %g", strings.Join(kv, ","), v))
			}
			switch d := m.Data.(type) {
			case metricdata.Sum[int64]:
				for _, p := range d.DataPoints {
					point(p.Attributes, float64(p.Value))
				}
			case metricdata.Gauge[int64]:
				for _, p := range d.DataPoints {
					point(p.Attributes, float64(p.Value))
				}
			case metricdata.Histogram[float64]:
				for _, p := range d.DataPoints {
					point(p.Attributes, float64(p.Count))
				}
			default:
				t.Errorf("%s: unexpected data %T", m.Name, m.Data)
			}
			sort.Strings(pts)
			out[m.Name] = m.Description + " [" + m.Unit + "]\n" + strings.Join(pts, "\n")
		}
	}
	return out
}

// fromRecorder is the same view of the Tracker's Recorder, which the
// built-in handler serves, named as the instruments are.
func fromRecorder(fams []metrics.Family) collected {
	out := make(collected)
	for _, f := range fams {
		var pts []string
		for _, s := range f.Samples {
			v := s.Value
			if f.Desc.Kind == metrics.Histogram {
				v = float64(s.Buckets[len(s.Buckets)-1])
			}
			if v == 0 {
				continue
			}
			var kv []string
			for i, l := range f.Desc.Labels {
				kv = append(kv, l.Name+"="+s.Labels[i])
			}
			sort.Strings(kv)
			pts = append(pts, fmt.Sprintf("%s %g", strings.Join(kv, ","), v))
		}
		sort.Strings(pts)
		out[f.Desc.BaseName()] = f.Desc.Help + " [" + f.Desc.Unit + "]\n" + strings.Join(pts, "\n")
	}
	return out
}

// TestManualReader drives a Server with a real WebSocket client, an HTTP
// heartbeat and a refused request, collects with the SDK's manual reader,
// and checks that the instruments are the families of package metrics with
// the values the built-in handler's Recorder counted.
func TestManualReader(t *testing.T) {
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	ctx := context.Background()
	t.Cleanup(func() { _ = mp.Shutdown(ctx) })
	obs, err := vigilotel.New(mp, vigilotel.Config{})
	if err != nil {
		t.Fatal(err)
	}
	st, err := memory.New(memory.Config{})
	if err != nil {
		t.Fatal(err)
	}
	tr, err := presence.New(ctx, st, presence.Config{Node: "n1", Grace: -1, Observer: obs})
	if err != nil {
		t.Fatal(err)
	}
	reg, err := vigilotel.RegisterTracker(mp, tr, vigilotel.Config{})
	if err != nil {
		t.Fatal(err)
	}
	vs := middleware.MustNew(tr, middleware.Config{Identify: middleware.IdentifyQuery("id")})
	mux := http.NewServeMux()
	mux.Handle("GET /ws", vs.WebSocket(nil))
	mux.Handle("POST /heartbeat", vs.HeartbeatEndpoint())
	srv := httptest.NewServer(mux)
	t.Cleanup(func() {
		srv.Close()
		_ = vs.Shutdown(ctx)
		_ = reg.Unregister()
		_ = tr.Close(ctx)
	})

	ws, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(srv.URL, "http")+"/ws?id=alice", nil)
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if err := ws.WriteMessage(websocket.TextMessage, []byte("hello")); err != nil {
			t.Fatal(err)
		}
	}
	for _, url := range []string{srv.URL + "/heartbeat?id=bob", srv.URL + "/heartbeat"} { // the second has no identity
		resp, err := http.Post(url, "", nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	_ = ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(4500, "bye"), time.Now().Add(time.Second))
	ws.Close()
	for deadline := time.Now().Add(5 * time.Second); !strings.Contains(collect(t, reader)["vigil_presence_transitions"], "reason=closed,to=offline 1"); {
		if time.Now().After(deadline) {
			t.Fatal("timed out waiting for alice's offline")
		}
		time.Sleep(5 * time.Millisecond)
	}

	got := collect(t, reader)
	want := fromRecorder(tr.Metrics().Gather())
	for _, d := range metrics.Families {
		if d.Source == metrics.TrackerRead {
			if _, ok := got[d.BaseName()]; !ok {
				t.Errorf("no instrument %s", d.BaseName())
			}
			delete(got, d.BaseName())
		}
	}
	// Store counts are made by collections, not compared.
	delete(got, metrics.StoreDuration.BaseName())
	delete(want, metrics.StoreDuration.BaseName())
	// The SDK exports an instrument only once it has a point: a histogram
	// nothing was recorded in is absent.
	for name, w := range want {
		if _, ok := got[name]; !ok && strings.HasSuffix(w, "\n") {
			delete(want, name)
		}
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("instruments (+) and the built-in Recorder (-) differ:\n%s", diff)
	}
	for name, point := range map[string]string{
		"vigil_connections_closed":   "code=4500,reason=closed,transport=ws 1",
		"vigil_beats":                "transport=http 1",
		"vigil_http_refusals":        "code=no_identity 1",
		"vigil_ws_messages_received": " 3",
	} {
		if !strings.Contains(got[name], point) {
			t.Errorf("%s lacks %q:\n%s", name, point, got[name])
		}
	}
}

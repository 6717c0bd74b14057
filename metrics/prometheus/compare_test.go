package prometheus_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/gorilla/websocket"
	prom "github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	vigilprom "github.com/vigilhq/vigil/metrics/prometheus"
	"github.com/vigilhq/vigil/middleware"
	"github.com/vigilhq/vigil/presence"
	"github.com/vigilhq/vigil/store/memory"
)

// both is a Tracker and a Server feeding both the built-in handler and a
// client_golang registry.
type both struct {
	reg *prom.Registry
	obs *vigilprom.Observer
	vs  *middleware.Server
	url string
}

func newBoth(t *testing.T) *both {
	t.Helper()
	b := &both{reg: prom.NewRegistry()}
	var err error
	if b.obs, err = vigilprom.New(b.reg, vigilprom.Config{}); err != nil {
		t.Fatal(err)
	}
	st, err := memory.New(memory.Config{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	tr, err := presence.New(ctx, st, presence.Config{Node: "n1", Grace: -1, Observer: b.obs})
	if err != nil {
		t.Fatal(err)
	}
	b.reg.MustRegister(vigilprom.NewTrackerCollector(tr, vigilprom.Config{}))
	b.vs = middleware.MustNew(tr, middleware.Config{Identify: middleware.IdentifyQuery("id")})
	mux := http.NewServeMux()
	mux.Handle("GET /ws", b.vs.WebSocket(nil))
	mux.Handle("POST /heartbeat", b.vs.HeartbeatEndpoint())
	srv := httptest.NewServer(mux)
	b.url = srv.URL
	t.Cleanup(func() {
		srv.Close()
		_ = b.vs.Shutdown(ctx)
		_ = tr.Close(ctx)
	})
	return b
}

// builtin parses the built-in handler's exposition.
func (b *both) builtin(t *testing.T) map[string]*dto.MetricFamily {
	t.Helper()
	rec := httptest.NewRecorder()
	b.vs.MetricsHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(rec.Body)
	if err != nil {
		t.Fatalf("the built-in exposition does not parse: %v\n%s", err, rec.Body)
	}
	return fams
}

// gathered returns the registry's families by name.
func (b *both) gathered(t *testing.T) map[string]*dto.MetricFamily {
	t.Helper()
	fams, err := b.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	m := make(map[string]*dto.MetricFamily)
	for _, f := range fams {
		m[f.GetName()] = f
	}
	return m
}

// shape is what a dashboard depends on: per family its type, help, label
// names, and the non-zero values of its counter and gauge series.
func shape(fams map[string]*dto.MetricFamily) map[string]string {
	out := make(map[string]string)
	for name, f := range fams {
		var labels []string
		var values []string
		for _, m := range f.GetMetric() {
			var ls []string
			for _, lp := range m.GetLabel() {
				ls = append(ls, lp.GetName()+"="+lp.GetValue())
				if !slices.Contains(labels, lp.GetName()) {
					labels = append(labels, lp.GetName())
				}
			}
			sort.Strings(ls)
			var v float64
			switch f.GetType() {
			case dto.MetricType_COUNTER:
				v = m.GetCounter().GetValue()
			case dto.MetricType_GAUGE:
				v = m.GetGauge().GetValue()
			case dto.MetricType_HISTOGRAM:
				v = float64(m.GetHistogram().GetSampleCount())
			}
			// Each scrape makes a Store count of its own: the two
			// scrapes see different counts of op="count".
			if v != 0 && !slices.Contains(ls, "op=count") {
				values = append(values, strings.Join(ls, ",")+" "+model.SampleValue(v).String())
			}
		}
		sort.Strings(labels)
		sort.Strings(values)
		out[name] = f.GetType().String() + " " + strings.Join(labels, ",") + " | " + f.GetHelp() + "\n" + strings.Join(values, "\n")
	}
	return out
}

// TestSameExposition drives a Server with a real WebSocket client and an
// HTTP heartbeat, then checks that the built-in handler and the
// client_golang registry expose the same families: names, types, help
// texts, label names and values.
func TestSameExposition(t *testing.T) {
	b := newBoth(t)
	ws, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(b.url, "http")+"/ws?id=alice", nil)
	if err != nil {
		t.Fatal(err)
	}
	conns := func() float64 { return testutil.ToFloat64(b.obs.Connections(presence.TransportWS)) }
	waitFor(t, "the connection to open", func() bool { return conns() == 1 })
	for range 3 {
		if err := ws.WriteMessage(websocket.TextMessage, []byte("hello")); err != nil {
			t.Fatal(err)
		}
	}
	resp, err := http.Post(b.url+"/heartbeat?id=bob", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	resp, err = http.Post(b.url+"/heartbeat", "", nil) // no identity: refused
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	_ = ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(4500, "bye"), time.Now().Add(time.Second))
	ws.Close()
	waitFor(t, "the connection to close", func() bool { return conns() == 0 })
	waitFor(t, "alice's offline", func() bool {
		return strings.Contains(shape(b.gathered(t))["vigil_presence_transitions_total"], "reason=closed,to=offline 1")
	})

	got, want := shape(b.builtin(t)), shape(b.gathered(t))
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("built-in handler (+) and metrics/prometheus (-) differ:\n%s", diff)
	}
	// The events above reached the families they should.
	for name, want := range map[string]string{
		"vigil_connections_closed_total": "code=4500,reason=closed,transport=ws 1",
		"vigil_beats_total":              "transport=http 1",
		"vigil_http_refusals_total":      "code=no_identity 1",
		"vigil_connections_opened_total": "transport=ws 1",
	} {
		if !strings.Contains(got[name], want) {
			t.Errorf("%s lacks %q:\n%s", name, want, got[name])
		}
	}
}

// TestBeatCountedOnce checks that one HTTP heartbeat is one beat in the
// built-in handler, in Server.Stats and in the Observer: each sink sees the
// event once.
func TestBeatCountedOnce(t *testing.T) {
	b := newBoth(t)
	for i := range 2 {
		resp, err := http.Post(b.url+"/heartbeat?id=bob", "", nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("heartbeat %d: status %d", i, resp.StatusCode)
		}
	}
	if n := testutil.ToFloat64(b.obs.Beats(presence.TransportHTTP)); n != 2 {
		t.Errorf("Observer counted %v beats, want 2", n)
	}
	if n := b.vs.Stats().Beats; n != 2 {
		t.Errorf("Stats counted %d beats, want 2", n)
	}
	f := b.builtin(t)["vigil_beats_total"]
	var sum float64
	for _, m := range f.GetMetric() {
		sum += m.GetCounter().GetValue()
	}
	if sum != 2 {
		t.Errorf("the built-in handler counted %v beats, want 2", sum)
	}
}

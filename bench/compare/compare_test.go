//go:build bench && linux

package main

import (
	"bytes"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestSmoke runs every part of the tool on a few hundred connections, so that
// it cannot rot; it checks that the figures were measured, not the targets
// (those need the full run: go run ./bench/compare).
func TestSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("starts servers and load processes")
	}
	o := &options{
		scenarios: "pressure,detect,ramp,storm", servers: "vigil,handwritten",
		pressureN: 200, procs: 2, pressureWindow: 2 * time.Second, settle: time.Second,
		rampServers: "vigil,gws,lean,handwritten", rampN: 200, rampRate: 400, runs: 1, stormStore: "memory",
		dir: t.TempDir(),
	}
	var out bytes.Buffer
	if err := o.run(&out); err != nil {
		t.Fatal(err)
	}
	t.Logf("\n%s", out.String())
	if len(o.results) != 2 {
		t.Fatalf("%d results, want 2", len(o.results))
	}
	for _, r := range o.results {
		if r.n != 200 || r.rss1 <= 0 || r.pings <= 0 {
			t.Errorf("%s: n=%d rss=%d KiB pings=%d", r.server, r.n, r.rss1, r.pings)
		}
		if g := r.goroutinesPerConn(); g < 0.5 || g > 3 {
			t.Errorf("%s: %.2f goroutines per connection", r.server, g)
		}
	}
	if len(o.detects) != 1 {
		t.Fatalf("%d detections, want 1", len(o.detects))
	}
	if d := o.detects[0]; d.n != 200 || d.detected != 200 {
		t.Errorf("detected %d of %d frozen clients, want 200 of 200", d.detected, d.n)
	}
	if len(o.ramps) != 4 {
		t.Fatalf("%d ramps, want 4", len(o.ramps))
	}
	for _, r := range o.ramps {
		if r.p50 <= 0 || r.rss1 <= 0 || r.rss2 <= 0 {
			t.Errorf("ramp %s: p50 %v, RSS %d and %d KiB", r.server, r.p50, r.rss1, r.rss2)
		}
	}
	if len(o.storms) != 1 || o.storms[0].online <= 0 {
		t.Errorf("storms: %+v, want one that got every client online", o.storms)
	}
}

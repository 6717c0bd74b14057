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
		scenarios: "pressure,detect", servers: "vigil,handwritten",
		pressureN: 200, procs: 2, pressureWindow: 2 * time.Second, settle: time.Second,
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
}

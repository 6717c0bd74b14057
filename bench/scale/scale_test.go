//go:build bench && linux

package main

import (
	"bytes"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestScale10k is the smoke run of the scale tool at 10,000 connections:
// four demo nodes on a redis-server of the test's own (redis-server must be
// installed: ./scripts/test installs it), four load processes, 10% churn
// and one load process killed. It asserts that presence is exact on every
// node after each phase (counts and sets, never a time: the figures it
// logs are for reading, at this machine's load).
func TestScale10k(t *testing.T) {
	o := &options{
		nodes: 4, conns: 10000, loads: 4, churn: 0.1, rate: 1000, srcBase: "127.0.0.2",
		hold: 2 * time.Second, ping: 25 * time.Second, pong: 20 * time.Second, grace: 5 * time.Second,
		dir: t.TempDir(), progress: t.Output(),
	}
	o.settle = o.ping + o.pong + o.grace + 30*time.Second
	var out bytes.Buffer
	if err := o.run(&out); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	t.Logf("\n%s", out.String())
	r := o.res
	if r.churned != 1000 || r.churnFailed != 0 {
		t.Errorf("churned %d (%d failed), want 1000 (0 failed)", r.churned, r.churnFailed)
	}
	if r.killed != 2500 {
		t.Errorf("killed a load process of %d clients, want 2500", r.killed)
	}
	want := []struct {
		phase   string
		clients int
	}{{"after the ramp", 10000}, {"after the churn", 10000}, {"after the kill", 7500}}
	if len(r.checks) != len(want) {
		t.Fatalf("%d exactness checks, want %d", len(r.checks), len(want))
	}
	for i, w := range want {
		c := r.checks[i]
		if c.phase != w.phase || c.want != w.clients || !c.exact {
			t.Errorf("check %d: %s, %d clients, exact %v (%s); want %s, %d clients, exact", i, c.phase, c.want, c.exact, c.detail, w.phase, w.clients)
		}
		for j, n := range c.countSeen {
			if n != w.clients {
				t.Errorf("check %q: node n%d counts %d, want %d", c.phase, j, n, w.clients)
			}
		}
	}
	var held int64
	for _, n := range r.nodeConns {
		held += n
		if n != 2500 {
			t.Errorf("a node holds %d connections, want 2500 (round robin)", n)
		}
	}
	if held != 10000 {
		t.Errorf("the nodes hold %d connections, want 10000", held)
	}
}

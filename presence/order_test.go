package presence_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vigilhq/vigil/presence"
)

// gated wraps a Store that is a NodeSweeper: the Adds of some clients run
// a function first (to wait for the test), and so does the next sweep once
// armed; it counts the sweeps.
type gated struct {
	presence.Store
	ns presence.NodeSweeper

	sweeps atomic.Int64

	mu       sync.Mutex
	addFirst map[string]func()
	armed    func()
}

func (g *gated) Add(ctx context.Context, l presence.Lease) ([]presence.Event, error) {
	g.mu.Lock()
	f := g.addFirst[l.ClientID]
	g.mu.Unlock()
	if f != nil {
		f()
	}
	return g.Store.Add(ctx, l)
}

func (g *gated) SweepNode(ctx context.Context, l presence.NodeLease) ([]presence.Event, error) {
	g.mu.Lock()
	f := g.armed
	g.armed = nil
	g.mu.Unlock()
	if f != nil {
		f()
	}
	evs, err := g.ns.SweepNode(ctx, l)
	g.sweeps.Add(1)
	return evs, err
}

// A sweep (a wide call) never waits for a per-client call. During a storm
// of Connects, every stripe has Adds in flight; the events those Adds
// decided while a sweep was in flight are set aside, and the sweep used to
// queue them under their clients' stripes before the loop went on: it
// waited for the Adds queued on those stripes, found more set aside, and
// held the loop (no beat written, no sweep) until the storm was over. A
// restarted node's previous sessions then outlived their grace by as long
// (issue 17: 15,000 clients in a second kept them 12 to 50 s).
//
// Here client a's Add returns while a sweep is in flight, so its Online is
// set aside; then client b, which shares a's stripe, holds the stripe in
// an Add that does not return. The loop must go on sweeping, and a's
// Online fire once b's Add returns.
//
// timing: the defaults, on real time, polled with a deadline: the stall is
// a goroutine waiting for a mutex, which a synctest bubble does not count
// as durably blocked.
func TestSweepDoesNotWaitForClientCalls(t *testing.T) {
	store := newStore(t)
	g := &gated{Store: store, ns: store}
	tr := newTracker(t, g, presence.Config{})
	var evs events
	tr.OnOnline(evs.hook)

	b := ""
	for i := 0; b == ""; i++ {
		if id := fmt.Sprintf("b%d", i); presence.SameStripe(tr, "a", id) {
			b = id
		}
	}
	sweeping, bIn, release := make(chan struct{}), make(chan struct{}), make(chan struct{})
	var releaseOnce sync.Once
	unblock := func() { releaseOnce.Do(func() { close(release) }) }
	t.Cleanup(unblock) // before the Tracker's Close (cleanups run last first)
	g.mu.Lock()
	g.addFirst = map[string]func(){
		"a": func() { <-sweeping },
		b:   func() { close(bIn); <-release },
	}
	var armedAt atomic.Int64
	g.armed = func() {
		close(sweeping)
		<-bIn // b holds a's stripe before this sweep returns
		armedAt.Store(g.sweeps.Load() + 1)
	}
	g.mu.Unlock()

	if _, err := tr.Connect(ctx, "a", presence.SessionOptions{}); err != nil {
		t.Fatal(err)
	}
	bDone := make(chan error, 1)
	go func() {
		_, err := tr.Connect(ctx, b, presence.SessionOptions{})
		bDone <- err
	}()

	// Two more sweeps after the armed one: the loop did not stop at a's
	// stripe. At the defaults they come within a second.
	deadline := time.Now().Add(10 * time.Second)
	for at := armedAt.Load(); at == 0 || g.sweeps.Load() < at+2; at = armedAt.Load() {
		if time.Now().After(deadline) {
			t.Fatalf("sweeps: %d, the armed one was sweep %d: the loop stopped while a client call held a stripe", g.sweeps.Load(), at)
		}
		time.Sleep(10 * time.Millisecond)
	}

	unblock()
	if err := <-bDone; err != nil {
		t.Fatal(err)
	}
	want := []string{"a:online", b + ":online"}
	for {
		got := evs.list()
		slices.Sort(got)
		if slices.Equal(got, want) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("online hooks: %v, want %v", got, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

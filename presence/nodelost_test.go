package presence_test

import (
	"context"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/vigilhq/vigil/presence"
)

// link is a node's way to a presence.NodeSweeper (through failing, so it
// can be cut): its sweeps fail too while it is down.
type link struct {
	*failing
	nodes presence.NodeSweeper
}

func (l *link) SweepNode(ctx context.Context, nl presence.NodeLease) ([]presence.Event, error) {
	if l.down.Load() {
		return nil, errDown
	}
	return l.nodes.SweepNode(ctx, nl)
}

// reasons lists the Offline events of rec as "client:reason".
func reasons(rec *events) []string {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	var out []string
	for _, ev := range rec.evs {
		if ev.Transition == presence.Offline {
			out = append(out, ev.ClientID+":"+string(ev.Reason))
		}
	}
	slices.Sort(out)
	return out
}

// A node that dies (here: loses its link to the shared store for good, so
// no beat, end or sweep of it arrives) loses its clients on a surviving
// node once their leases run out, with ReasonNodeLost; a client the
// survivor holds too stays online; a session on the survivor that stopped
// beating still expires, ReasonExpired. Over a store that is no
// NodeSweeper, all of them are ReasonExpired, as before node leases.
//
// timing: the defaults, on fake time; sessions beat every 25s (the
// middleware's default ping interval).
func TestNodeLost(t *testing.T) {
	for _, tc := range []struct {
		name      string
		nodes     bool // the store is a NodeSweeper
		wantLost  presence.Reason
		wantQuiet presence.Reason
	}{
		{"node sweeper", true, presence.ReasonNodeLost, presence.ReasonExpired},
		{"plain store", false, presence.ReasonExpired, presence.ReasonExpired},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				mem := newStore(t)
				toA := &failing{Store: mem}
				var storeA, storeB presence.Store = toA, &failing{Store: mem}
				if tc.nodes {
					storeA, storeB = &link{toA, mem}, mem
				}
				a := newTracker(t, storeA, presence.Config{Node: "a"})
				b := newTracker(t, storeB, presence.Config{Node: "b"})
				rec := &events{}
				b.OnOffline(rec.hook)
				connect := func(tr *presence.Tracker, id string) *presence.Session {
					s, err := tr.Connect(ctx, id, presence.SessionOptions{})
					if err != nil {
						t.Fatal(err)
					}
					return s
				}
				beating := []*presence.Session{connect(a, "solo"), connect(a, "both"), connect(b, "both")}
				stop := make(chan struct{})
				var wg sync.WaitGroup
				wg.Go(func() {
					tick := time.NewTicker(25 * time.Second)
					defer tick.Stop()
					for {
						select {
						case <-stop:
							return
						case <-tick.C:
							for _, s := range beating {
								s.Beat()
							}
						}
					}
				})

				time.Sleep(40 * time.Second) // a beat or two
				synctest.Wait()
				toA.down.Store(true) // node a is gone
				connect(b, "quiet")  // never beats
				time.Sleep(presence.DefaultTTL + 2*presence.DefaultSweepInterval)
				synctest.Wait()
				want := []string{"quiet:" + string(tc.wantQuiet), "solo:" + string(tc.wantLost)}
				if got := reasons(rec); !slices.Equal(got, want) {
					t.Errorf("offline events on the survivor = %v, want %v", got, want)
				}
				ps, err := b.Lookup(ctx, []string{"both"})
				if err != nil {
					t.Fatal(err)
				}
				if !ps[0].Online || ps[0].Sessions != 1 {
					t.Errorf("both = %+v, want online with its session on b", ps[0])
				}
				close(stop)
				wg.Wait()
				toA.down.Store(false) // so that a can close
			})
		})
	}
}

// A node that restarts with the same node ID after its lease ran out (its
// sessions' leases had not) clears what its previous process left with
// ReasonRestart, as it always did: not ReasonNodeLost, though a survivor
// sweeps meanwhile and the lease of the node's previous process ran out.
//
// timing: the defaults, on fake time; the restart comes 10s after the
// crash, within TTL.
func TestRestartAfterNodeLeaseRanOut(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		mem := newStore(t)
		toA := &failing{Store: mem}
		a := newTracker(t, &link{toA, mem}, presence.Config{Node: "a"})
		b := newTracker(t, mem, presence.Config{Node: "b"})
		rec := &events{}
		b.OnOffline(rec.hook)
		if _, err := a.Connect(ctx, "henry", presence.SessionOptions{}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(5 * time.Second)
		synctest.Wait()
		toA.down.Store(true) // the crash
		time.Sleep(10 * time.Second)
		a2 := newTracker(t, mem, presence.Config{Node: "a"}) // the restart
		a2.OnOffline(rec.hook)
		time.Sleep(presence.DefaultGrace + 2*presence.DefaultSweepInterval)
		synctest.Wait()
		if got, want := reasons(rec), []string{"henry:" + string(presence.ReasonRestart)}; !slices.Equal(got, want) {
			t.Errorf("offline events = %v, want %v", got, want)
		}
		toA.down.Store(false)
	})
}

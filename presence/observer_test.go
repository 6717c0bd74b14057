package presence_test

import (
	"context"
	"errors"
	"maps"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/vigilhq/vigil/presence"
)

// recorder is an Observer that keeps what the Tracker reports.
type recorder struct {
	presence.NopObserver
	mu          sync.Mutex
	transitions []string
	storeOps    map[string]int
}

func (r *recorder) Transition(t presence.Transition, reason presence.Reason) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.transitions = append(r.transitions, t.String()+"/"+string(reason))
}

func (r *recorder) StoreCall(op string, d time.Duration, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err != nil {
		op += "!"
	}
	r.storeOps[op]++
}

func TestObserver(t *testing.T) {
	rec := &recorder{storeOps: make(map[string]int)}
	tr := newTracker(t, newStore(t), presence.Config{Grace: -1, Observer: rec})
	s, err := tr.Connect(ctx, "alice", presence.SessionOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.End(ctx, presence.ReasonLeft); err != nil {
		t.Fatal(err)
	}
	if _, err := tr.Count(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := tr.Presence(ctx, "bob"); err == nil {
		t.Fatal("Presence of an unknown client succeeded")
	}
	// The Store itself answers ErrNotFound here (Presence's comes from the
	// Tracker, after a Lookup that succeeded).
	if _, err := tr.Sessions(ctx, "bob"); !errors.Is(err, presence.ErrNotFound) {
		t.Fatalf("Sessions of an unknown client = %v, want ErrNotFound", err)
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if diff := cmp.Diff([]string{"online/connect", "offline/left"}, rec.transitions); diff != "" {
		t.Errorf("transitions (-want +got):\n%s", diff)
	}
	for _, op := range []string{"add", "end", "count", "lookup", "sessions"} {
		if rec.storeOps[op] == 0 {
			t.Errorf("no %q store call observed; got %v", op, rec.storeOps)
		}
	}
	for op := range rec.storeOps {
		if op[len(op)-1] == '!' {
			t.Errorf("store call %q reported as failed (ErrNotFound is an answer)", op)
		}
	}
}

// failEnd is a Store whose End fails with errDown while fail is set: every
// End, or with clientsOnly those that select a client.
type failEnd struct {
	presence.Store
	fail        atomic.Bool
	clientsOnly bool
}

func (s *failEnd) End(ctx context.Context, e presence.Ending) ([]presence.Event, error) {
	if s.fail.Load() && (!s.clientsOnly || e.ClientID != "") {
		return nil, errDown
	}
	return s.Store.End(ctx, e)
}

// The start-up clearing of the node's old sessions is a Store call like any
// other: the Observer sees it in New, and again when the loop retries it.
func TestObserverSeesClearNode(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := &recorder{storeOps: make(map[string]int)}
		st := &failEnd{Store: newStore(t)}
		st.fail.Store(true)
		tr, err := presence.New(ctx, st, presence.Config{Node: "n1", Observer: rec})
		if err != nil {
			t.Fatal(err)
		}
		defer tr.Close(ctx)
		ops := func() map[string]int {
			rec.mu.Lock()
			defer rec.mu.Unlock()
			return maps.Clone(rec.storeOps)
		}
		if diff := cmp.Diff(map[string]int{"end!": 1}, ops()); diff != "" {
			t.Errorf("store calls observed in New (-want +got):\n%s", diff)
		}
		st.fail.Store(false)
		time.Sleep(tr.Config().SweepInterval / 2) // the loop's first tick retries the clearing
		synctest.Wait()
		if got := ops(); got["end!"] != 1 || got["end"] != 1 {
			t.Errorf("store calls observed after the retried clearing: %v, want one failed and one good end", got)
		}
	})
}

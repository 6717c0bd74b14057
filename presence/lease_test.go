package presence_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/vigilhq/vigil/presence"
)

// leases wraps a Store (through failing, so it can be taken down) and
// records every lease the Tracker writes.
type leases struct {
	*failing
	mu  sync.Mutex
	got []presence.Lease
}

func (s *leases) record(ls ...presence.Lease) {
	s.mu.Lock()
	s.got = append(s.got, ls...)
	s.mu.Unlock()
}

func (s *leases) Add(ctx context.Context, l presence.Lease) ([]presence.Event, error) {
	s.record(l)
	return s.failing.Add(ctx, l)
}

func (s *leases) Touch(ctx context.Context, ls []presence.Lease) ([]presence.Gone, error) {
	s.record(ls...)
	return s.failing.Touch(ctx, ls)
}

// Every lease a Tracker writes of a session has the same Span, its TTL +
// SweepInterval, whenever the beat it carries happened: the rule of
// presence.Lease that store/redis's cheap refresh relies on. Beats come at
// irregular times, and an Add is retried after an outage with an old beat.
//
// timing: the defaults, on fake time; beats at gaps that are no multiple
// of the flush step.
func TestLeaseSpan(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := &leases{failing: &failing{Store: newStore(t)}}
		tr := newTracker(t, store, presence.Config{})
		cfg := tr.Config()
		a, err := tr.Connect(ctx, "a", presence.SessionOptions{})
		if err != nil {
			t.Fatal(err)
		}
		store.down.Store(true)
		b, err := tr.Connect(ctx, "b", presence.SessionOptions{})
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(cfg.SweepInterval + 700*time.Millisecond)
		store.down.Store(false)
		for _, gap := range []time.Duration{1300 * time.Millisecond, 7 * time.Second, 300 * time.Millisecond, 11 * time.Second} {
			time.Sleep(gap)
			a.Beat()
			b.Beat()
		}
		time.Sleep(2 * cfg.SweepInterval)
		synctest.Wait()

		store.mu.Lock()
		defer store.mu.Unlock()
		want := cfg.TTL + cfg.SweepInterval
		aged := false
		for _, l := range store.got {
			if l.Span() != want {
				t.Errorf("lease %+v: Span %v, want TTL + SweepInterval = %v", l, l.Span(), want)
			}
			aged = aged || l.Age > 0
		}
		if len(store.got) < 6 || !aged {
			t.Fatalf("leases written: %+v; want several, some with an Age", store.got)
		}
	})
}

// A beat that lands while a flush is building its batch, after the flush
// read the clock, is as recent as that reading: the flush writes it with
// Age 0, never with a negative Age, which the Store refuses together with
// the whole batch (at 100,000 connections nearly every batch had one, and
// no lease was renewed until the sessions expired).
//
// timing: a flush every 5 ms (SweepInterval 10 ms), so that a hundred
// flushes race with the beats in half a second; the race is in the flush,
// not in the durations, and TTL stays well above SweepInterval.
func TestFlushRacingBeats(t *testing.T) {
	store := &leases{failing: &failing{Store: newStore(t)}}
	tr := newTracker(t, store, presence.Config{TTL: time.Minute, SweepInterval: 10 * time.Millisecond})
	sessions := make([]*presence.Session, 2000)
	for i := range sessions {
		s, err := tr.Connect(ctx, fmt.Sprintf("c%d", i), presence.SessionOptions{})
		if err != nil {
			t.Fatal(err)
		}
		sessions[i] = s
	}
	stop := time.Now().Add(500 * time.Millisecond)
	var wg sync.WaitGroup
	for g := range 2 {
		wg.Go(func() {
			for time.Now().Before(stop) {
				for i := g; i < len(sessions); i += 2 {
					sessions[i].Beat()
				}
			}
		})
	}
	wg.Wait()

	store.mu.Lock()
	defer store.mu.Unlock()
	negative := 0
	for _, l := range store.got {
		if l.Age < 0 {
			negative++
		}
	}
	if negative > 0 {
		t.Errorf("%d of %d leases written with a negative Age (a beat after the flush read the clock)", negative, len(store.got))
	}
	if len(store.got) <= len(sessions) {
		t.Errorf("%d leases written; want the Adds and many Touches", len(store.got))
	}
}

// touchDown fails Touch while down is set, and counts sweeps.
type touchDown struct {
	presence.Store
	down   atomic.Bool
	sweeps atomic.Int64
}

func (s *touchDown) Touch(ctx context.Context, ls []presence.Lease) ([]presence.Gone, error) {
	if s.down.Load() {
		return nil, errDown
	}
	return s.Store.Touch(ctx, ls)
}

func (s *touchDown) Sweep(ctx context.Context) ([]presence.Event, error) {
	s.sweeps.Add(1)
	return s.Store.Sweep(ctx)
}

// While a node's beats cannot be written, it does not sweep: after a store
// stall longer than a lease (a paused Redis), a sweep that reached the
// store before the node's next Touch would expire its live sessions. It
// sweeps again once a Touch gets through, and after one TTL whatever
// happens, so that a Touch failing for good does not stop expiry.
//
// timing: the defaults, on fake time.
func TestNoSweepWhileBeatsUnwritten(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := &touchDown{Store: newStore(t)}
		tr := newTracker(t, store, presence.Config{})
		cfg := tr.Config()
		s, err := tr.Connect(ctx, "a", presence.SessionOptions{})
		if err != nil {
			t.Fatal(err)
		}
		beat := func(d time.Duration) {
			for end := time.Now().Add(d); time.Now().Before(end); {
				time.Sleep(cfg.SweepInterval / 4)
				s.Beat()
			}
		}
		beat(2 * cfg.SweepInterval)
		if store.sweeps.Load() == 0 {
			t.Fatal("no sweep while the store worked")
		}

		store.down.Store(true)
		beat(cfg.SweepInterval) // the failing flush that started before any sweep
		before := store.sweeps.Load()
		beat(cfg.TTL / 2)
		if n := store.sweeps.Load() - before; n != 0 {
			t.Errorf("%d sweeps while every Touch failed for TTL/2; want none", n)
		}
		store.down.Store(false)
		beat(2 * cfg.SweepInterval)
		if store.sweeps.Load() == before {
			t.Error("no sweep after the Touch got through again")
		}
		if p, err := tr.Presence(ctx, "a"); err != nil || !p.Online {
			t.Errorf("Presence(a) = %+v, %v; want online", p, err)
		}

		store.down.Store(true)
		beat(cfg.SweepInterval)
		before = store.sweeps.Load()
		beat(cfg.TTL + 2*cfg.SweepInterval)
		if store.sweeps.Load() == before {
			t.Errorf("no sweep in TTL + 2 SweepIntervals of failing Touches; want sweeping back after one TTL")
		}
		store.down.Store(false)
	})
}

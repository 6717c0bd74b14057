package presence

import (
	"cmp"
	"context"
	"slices"
	"sync"
	"sync/atomic"
)

// numStripes is how many stripes order the per-client Store calls.
const numStripes = 64

// order queues this node's events in the order the Store decided them, per
// client, without making the calls for one client wait for a call that may
// decide transitions of any client (a wide call: Sweep, Reclaim, a
// node-wide End), which on Redis can loop for a long time, and without
// making a wide call, or the loop that makes it, wait for per-client calls.
//
// A per-client call (Add, End of one client) holds the client's stripe from
// the Store call until its events are queued, so two calls for one client
// never overlap and queue in order. While a wide call is in flight,
// per-client calls set their events aside (held) instead of queueing them.
// When the wide call returns, it sets its own events aside too, and lets
// per-client calls queue directly again. Events set aside are queued by
// whoever next holds their client's stripe: a per-client call of any
// client of that stripe queues them, merged by Seq with its own, before
// its own; the wide call queues those of every stripe it can take at once
// (TryLock), and a later wide call (the loop makes one every
// SweepInterval) or Close the rest. Every queueing of a client's events
// happens under its stripe and takes every event set aside for it.
//
// Why this is enough: a per-client call that queues directly found no wide
// call in flight after its Store call returned, so every wide call still to
// come reaches the Store after it, and decides later; whatever a wide call
// before it decided is queued already, or set aside, and then queued with
// it, merged by Seq. A per-client call overlapping a wide call sets its
// events aside, and they are merged by Seq with the wide call's.
//
// Why a wide call never waits for a stripe: during a storm of Connects
// (15,000 new clients in a second after a restart) every stripe has a
// queue of Adds waiting for the Store; a wide call that waited for stripes
// to queue what was set aside meanwhile found more set aside each time,
// and held the loop, so no beat was written and no sweep ran (the
// previous process's sessions outlived their grace) until the storm was
// over.
//
// Lock order: wideMu, then a stripe, then mu. Events are queued with a
// stripe held and mu released.
type order struct {
	wideMu sync.Mutex // one wide call at a time

	// nheld counts the clients with events set aside, so that a
	// per-client call with nothing to queue finds none without taking mu.
	nheld atomic.Int64

	// mu guards the fields below.
	mu   sync.Mutex
	wide bool
	// held: per stripe, by client ID, in the order they were set aside.
	held [numStripes]map[string][]Event
}

// setAsideLocked sets ev aside under the stripe of its client, i. mu must
// be held.
func (o *order) setAsideLocked(i int, ev Event) {
	m := o.held[i]
	if m == nil {
		m = make(map[string][]Event)
		o.held[i] = m
	}
	if _, ok := m[ev.ClientID]; !ok {
		o.nheld.Add(1)
	}
	m[ev.ClientID] = append(m[ev.ClientID], ev)
}

// takeLocked returns and forgets the events set aside under stripe i. mu
// must be held.
func (o *order) takeLocked(i int) map[string][]Event {
	m := o.held[i]
	if len(m) == 0 {
		return nil
	}
	o.held[i] = nil
	o.nheld.Add(-int64(len(m)))
	return m
}

// clientCall runs fn, a Store call that decides transitions of clientID
// only, with the client's stripe held, and queues its events in order.
func (t *Tracker) clientCall(ctx context.Context, clientID string, fn func() ([]Event, error)) ([]Event, error) {
	i := t.stripe(clientID)
	mu := &t.stripes[i]
	mu.Lock()
	defer mu.Unlock()
	evs, err := fn()
	t.queueClient(ctx, i, evs)
	return evs, err
}

// queueClient queues the events of one per-client Store call, whose
// client's stripe, i, the caller holds: at once, after the events set
// aside under that stripe, or set aside while a wide call is in flight.
func (t *Tracker) queueClient(ctx context.Context, i int, evs []Event) {
	if len(evs) == 0 && t.ord.nheld.Load() == 0 {
		return
	}
	t.ord.mu.Lock()
	if t.ord.wide {
		for _, ev := range evs {
			t.ord.setAsideLocked(t.stripe(ev.ClientID), ev)
		}
		t.ord.mu.Unlock()
		return
	}
	held := t.ord.takeLocked(i)
	t.ord.mu.Unlock()
	t.emitMerged(ctx, held, evs)
}

// wideCall runs fn, a Store call that may decide transitions of any
// client, without holding up per-client calls, and queues its events and
// theirs in the order the Store decided them, without waiting for them.
func (t *Tracker) wideCall(ctx context.Context, fn func() ([]Event, error)) ([]Event, error) {
	t.ord.wideMu.Lock()
	defer t.ord.wideMu.Unlock()
	t.ord.mu.Lock()
	t.ord.wide = true
	t.ord.mu.Unlock()

	evs, err := fn()
	t.ord.mu.Lock()
	for _, ev := range evs {
		t.ord.setAsideLocked(t.stripe(ev.ClientID), ev)
	}
	t.ord.wide = false
	t.ord.mu.Unlock()
	t.queueHeld(ctx, false)
	return evs, err
}

// queueHeld queues the events set aside, stripe by stripe: with wait, every
// stripe's, waiting for the stripes; otherwise those of the stripes free
// now (the holder of a busy stripe, or a later call, queues the rest).
func (t *Tracker) queueHeld(ctx context.Context, wait bool) {
	if t.ord.nheld.Load() == 0 {
		return
	}
	var busy []int
	t.ord.mu.Lock()
	for i, m := range t.ord.held {
		if len(m) > 0 {
			busy = append(busy, i)
		}
	}
	t.ord.mu.Unlock()
	for _, i := range busy {
		mu := &t.stripes[i]
		if wait {
			mu.Lock()
		} else if !mu.TryLock() {
			continue
		}
		t.ord.mu.Lock()
		var held map[string][]Event
		if !t.ord.wide { // else the wide call in flight queues them
			held = t.ord.takeLocked(i)
		}
		t.ord.mu.Unlock()
		t.emitMerged(ctx, held, nil)
		mu.Unlock()
	}
}

// emitMerged queues held (events set aside, by client, all under one
// stripe, which the caller holds) and own (the events of a per-client call
// under that stripe): each client's merged by Seq.
func (t *Tracker) emitMerged(ctx context.Context, held map[string][]Event, own []Event) {
	if len(held) == 0 {
		t.emit(ctx, own)
		return
	}
	for _, ev := range own {
		held[ev.ClientID] = append(held[ev.ClientID], ev)
	}
	for _, all := range held {
		slices.SortStableFunc(all, func(a, b Event) int { return cmp.Compare(a.Seq, b.Seq) })
		t.emit(ctx, all)
	}
}

package presence

import (
	"cmp"
	"context"
	"slices"
	"sync"
)

// order queues this node's events in the order the Store decided them, per
// client, without making the calls for one client wait for a call that may
// decide transitions of any client (a wide call: Sweep, Reclaim, a
// node-wide End), which on Redis can loop for a long time.
//
// A per-client call (Add, End of one client) holds the client's stripe from
// the Store call until its events are queued, so two calls for one client
// never overlap and queue in order. While a wide call is in flight,
// per-client calls set their events aside (held) instead of queueing them.
// When the wide call returns, for each client it reports on it takes the
// client's stripe (waiting out a call of that client still in flight, which
// then sets its events aside as well), merges its events with the ones set
// aside for that client by Seq, and queues them; then it queues, client by
// client under the stripe, what else was set aside, until nothing is left,
// and only then lets per-client calls queue directly again.
//
// Why this is enough: a per-client call that queues directly found no wide
// call in flight after its Store call returned, so every wide call still to
// come reaches the Store after it, and decides later. Any other per-client
// call overlapping a wide call is either waited for under its stripe or
// finds its events set aside; either way they are merged by Seq.
//
// Lock order: wideMu, then a stripe, then mu. Events are queued with a
// stripe held and mu released.
type order struct {
	wideMu sync.Mutex // one wide call at a time

	// mu guards the fields below.
	mu   sync.Mutex
	wide bool
	held map[string][]Event // by client ID, in the order their calls returned
}

// clientCall runs fn, a Store call that decides transitions of clientID
// only, with the client's stripe held, and queues its events in order.
func (t *Tracker) clientCall(ctx context.Context, clientID string, fn func() ([]Event, error)) ([]Event, error) {
	mu := t.stripe(clientID)
	mu.Lock()
	defer mu.Unlock()
	evs, err := fn()
	if len(evs) > 0 {
		t.queueClient(ctx, evs)
	}
	return evs, err
}

// queueClient queues the events of one per-client Store call, whose
// client's stripe the caller holds: at once, or set aside while a wide
// call is in flight.
func (t *Tracker) queueClient(ctx context.Context, evs []Event) {
	t.ord.mu.Lock()
	if t.ord.wide {
		if t.ord.held == nil {
			t.ord.held = make(map[string][]Event)
		}
		for _, ev := range evs {
			t.ord.held[ev.ClientID] = append(t.ord.held[ev.ClientID], ev)
		}
		t.ord.mu.Unlock()
		return
	}
	t.ord.mu.Unlock()
	t.emit(ctx, evs)
}

// wideCall runs fn, a Store call that may decide transitions of any
// client, without holding up per-client calls, and queues its events and
// theirs in the order the Store decided them.
func (t *Tracker) wideCall(ctx context.Context, fn func() ([]Event, error)) ([]Event, error) {
	t.ord.wideMu.Lock()
	defer t.ord.wideMu.Unlock()
	t.ord.mu.Lock()
	t.ord.wide = true
	t.ord.mu.Unlock()

	evs, err := fn()
	var clients []string
	byClient := make(map[string][]Event)
	for _, ev := range evs {
		if _, ok := byClient[ev.ClientID]; !ok {
			clients = append(clients, ev.ClientID)
		}
		byClient[ev.ClientID] = append(byClient[ev.ClientID], ev)
	}
	for _, c := range clients {
		t.emitHeld(ctx, c, byClient[c])
	}
	for {
		t.ord.mu.Lock()
		var next string
		found := false
		for c := range t.ord.held {
			next, found = c, true
			break
		}
		if !found {
			t.ord.wide = false
			t.ord.mu.Unlock()
			return evs, err
		}
		t.ord.mu.Unlock()
		t.emitHeld(ctx, next, nil)
	}
}

// emitHeld queues, under clientID's stripe, own (a wide call's events of
// that client) merged by Seq with the events set aside for it.
func (t *Tracker) emitHeld(ctx context.Context, clientID string, own []Event) {
	mu := t.stripe(clientID)
	mu.Lock()
	defer mu.Unlock()
	t.ord.mu.Lock()
	held := t.ord.held[clientID]
	delete(t.ord.held, clientID)
	t.ord.mu.Unlock()
	all := append(held, own...)
	slices.SortStableFunc(all, func(a, b Event) int { return cmp.Compare(a.Seq, b.Seq) })
	t.emit(ctx, all)
}

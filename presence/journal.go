package presence

import (
	"context"
	"log/slog"
	"sync"
)

// Journal is an optional ability of a Store, found by type assertion: the
// Store records every transition durably, in the same atomic step that
// decides it, before any hook runs. A Tracker over a Journal
//
//   - acknowledges each transition after its hooks ran (Ack), and delivers
//     the transitions another node claimed but never acknowledged because
//     it died first (Reclaim); so hooks see every transition at least once,
//     and Event.ID tells a repeat apart;
//   - lets Watch hooks see the transitions of every node (Read).
//
// Every method must be safe for concurrent use. Errors are transient: the
// Tracker retries.
type Journal interface {
	// Ack reports that the hooks of evs ran. evs are events the Store
	// returned to this caller (from Add, End, Sweep or Reclaim); until
	// acknowledged, the Store may hand them to another caller's Reclaim
	// once it deems their claimer dead.
	Ack(ctx context.Context, evs []Event) error

	// Reclaim returns transitions whose first claimer never acknowledged
	// them. The caller runs their hooks, then Acks them. A reclaimed event
	// may arrive after later events of its client; Seq orders them.
	Reclaim(ctx context.Context) ([]Event, error)

	// Read returns the transitions of all nodes recorded after cursor, in
	// order per client, and the cursor to pass next. The empty cursor
	// stands for the end of the journal: it returns no events, only the
	// cursor to start from.
	Read(ctx context.Context, cursor string) (evs []Event, next string, err error)
}

// journal is the Tracker's side of a Journal.
type journal struct {
	j     Journal // nil if the Store is no Journal
	watch *hooks

	// mu guards the fields below.
	mu       sync.Mutex
	acks     []Event
	cursor   string
	watching int
}

// delivered is called by the hooks after all hooks of ev ran.
func (jn *journal) delivered(ev Event) {
	jn.mu.Lock()
	jn.acks = append(jn.acks, ev)
	jn.mu.Unlock()
}

// Watch registers fn to be called with every transition (of every kind:
// rooms' too) of every node
// sharing the Store, whichever node observed it, and returns a function
// that unregisters it. Use it to push presence changes to this node's own
// clients; use OnOnline and OnOffline for work that must happen once per
// transition.
//
// With a Store that is a Journal, events are read from it every half
// SweepInterval, at least once each (after a Store restart that lost its
// data, some may be missed); their Node is the node that decided them when
// the Store knows it. With any other Store, Watch sees the transitions this
// node observes. Calls are serialised per client, in order, and made as
// OnOnline describes.
func (t *Tracker) Watch(fn Hook) (unregister func()) {
	var uns []func()
	for tr := Online; int(tr) < numTransitions; tr++ {
		uns = append(uns, t.jn.watch.register(tr, "", fn))
	}
	t.jn.mu.Lock()
	t.jn.watching++
	t.jn.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			for _, un := range uns {
				un()
			}
			t.jn.mu.Lock()
			t.jn.watching--
			t.jn.mu.Unlock()
		})
	}
}

// journalTick runs from the loop: it acknowledges delivered events, and on
// sweep ticks delivers reclaimed transitions; it feeds Watch hooks.
func (t *Tracker) journalTick(ctx context.Context, sweep bool) {
	jn := &t.jn
	if jn.j == nil {
		return
	}
	t.flushAcks(ctx)
	if sweep {
		_, err := t.wideCall(ctx, func() ([]Event, error) { return jn.j.Reclaim(ctx) })
		if err != nil && ctx.Err() == nil {
			t.storeFailed(ctx, "reclaim", err, nil)
		}
	}
	jn.mu.Lock()
	watching, cursor := jn.watching > 0, jn.cursor
	jn.mu.Unlock()
	if !watching {
		return
	}
	evs, next, err := jn.j.Read(ctx, cursor)
	if err != nil {
		if ctx.Err() == nil {
			t.storeFailed(ctx, "read journal", err, nil)
		}
		return
	}
	jn.mu.Lock()
	jn.cursor = next
	jn.mu.Unlock()
	for _, ev := range evs {
		jn.watch.dispatch(ev)
	}
}

// flushAcks acknowledges the events whose hooks ran; on failure they are
// kept for the next try.
func (t *Tracker) flushAcks(ctx context.Context) {
	jn := &t.jn
	if jn.j == nil {
		return
	}
	jn.mu.Lock()
	acks := jn.acks
	jn.acks = nil
	jn.mu.Unlock()
	if len(acks) == 0 {
		return
	}
	if err := jn.j.Ack(ctx, acks); err != nil {
		if ctx.Err() == nil {
			t.storeFailed(ctx, "ack", err, nil)
		}
		jn.mu.Lock()
		jn.acks = append(acks, jn.acks...)
		jn.mu.Unlock()
	}
}

// initJournal sets up the journal side of a new Tracker.
func (t *Tracker) initJournal(ctx context.Context) {
	t.jn.j, _ = t.store.(Journal)
	t.jn.watch = newHooks(t.log, t.cfg.HookTimeout)
	if t.jn.j == nil {
		return
	}
	t.hooks.delivered = t.jn.delivered
	// Start watching from now; if the Store is unreachable, the first
	// successful Read starts from its own now.
	if _, cursor, err := t.jn.j.Read(ctx, ""); err == nil {
		t.jn.cursor = cursor
	} else {
		t.log.LogAttrs(ctx, slog.LevelWarn, "presence: journal unreachable at start", slog.Any("err", err))
	}
}

package presence

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vigilhq/vigil/internal/waitctx"
)

// Hook is a function called with each transition of one kind.
type Hook func(ctx context.Context, ev Event)

// hookEntry gives each registration its own identity, so that unregistering
// one of two identical funcs removes the right one.
type hookEntry struct {
	fn   Hook
	room string // "": every event; ending in "*": rooms with that prefix
}

// matches reports whether the entry's room pattern takes an event of room.
func (e *hookEntry) matches(room string) bool {
	switch {
	case e.room == "":
		return true
	case strings.HasSuffix(e.room, "*"):
		return strings.HasPrefix(room, e.room[:len(e.room)-1])
	}
	return room == e.room
}

// numTransitions bounds the Transition values hooks index by.
const numTransitions = int(Back) + 1

// maxHookWorkers bounds the goroutines that run hooks, so that a burst of
// transitions (a node's restart clearing 100k sessions) queues events
// rather than starting a goroutine for each client.
const maxHookWorkers = 256

// hooks delivers events to the registered hooks. A client's events wait in
// its own queue; a client with events waiting is on the ready list until
// one of at most maxHookWorkers workers takes it and calls its hooks in
// order, one at a time. So a slow hook delays only its own client (and,
// until HookTimeout abandons it, one worker), and nothing ever waits on
// user code while holding a lock.
type hooks struct {
	log     *slog.Logger
	timeout time.Duration
	base    context.Context
	cancel  context.CancelFunc
	wg      sync.WaitGroup

	panics   atomic.Uint64
	timeouts atomic.Uint64

	// delivered, if set before the first dispatch, is called after all
	// hooks of an event ran (see journal.go).
	delivered func(Event)

	// mu guards the fields below.
	mu      sync.Mutex
	lists   [numTransitions][]*hookEntry // by Transition; replaced, never modified in place
	nhooks  int
	queues  map[string]*clientQueue // clients with events waiting or running
	ready   []*clientQueue          // waiting for a worker, oldest first
	workers int
}

// clientQueue holds one client's events. It is on the ready list exactly
// when it has events and no worker runs it.
type clientQueue struct {
	id      string
	events  []Event
	running bool
}

func newHooks(log *slog.Logger, timeout time.Duration) *hooks {
	base, cancel := context.WithCancel(context.Background())
	return &hooks{log: log, timeout: timeout, base: base, cancel: cancel, queues: make(map[string]*clientQueue)}
}

// register adds fn for events of tr whose room matches the pattern room
// ("" for all; see hookEntry.matches).
func (h *hooks) register(tr Transition, room string, fn Hook) (unregister func()) {
	if fn == nil {
		panic("presence: nil hook")
	}
	if int(tr) <= 0 || int(tr) >= numTransitions {
		panic("presence: hook for unknown transition " + tr.String())
	}
	e := &hookEntry{fn: fn, room: room}
	h.mu.Lock()
	list := &h.lists[tr]
	*list = append(slices.Clip(*list), e)
	h.nhooks++
	h.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			h.mu.Lock()
			*list = slices.DeleteFunc(slices.Clone(*list), func(x *hookEntry) bool { return x == e })
			h.nhooks--
			h.mu.Unlock()
		})
	}
}

// dispatch queues ev for its client's hooks. The caller must queue a
// client's events in Seq order.
func (h *hooks) dispatch(ev Event) {
	h.mu.Lock()
	if h.nhooks == 0 {
		h.mu.Unlock()
		if h.delivered != nil {
			h.delivered(ev) // nothing to run: delivered at once
		}
		return
	}
	q := h.queues[ev.ClientID]
	if q == nil {
		q = &clientQueue{id: ev.ClientID}
		h.queues[ev.ClientID] = q
	}
	q.events = append(q.events, ev)
	// A client already running or ready has its worker coming. A worker
	// leaves only when nothing is ready, so at the cap one of them will
	// take this client.
	spawn := false
	if !q.running && len(q.events) == 1 {
		h.ready = append(h.ready, q)
		if spawn = h.workers < maxHookWorkers; spawn {
			h.workers++
			h.wg.Add(1)
		}
	}
	h.mu.Unlock()
	if spawn {
		go h.work()
	}
}

// work runs ready clients' hooks until none is ready.
func (h *hooks) work() {
	defer h.wg.Done()
	h.mu.Lock()
	for len(h.ready) > 0 {
		q := h.ready[0]
		h.ready[0] = nil
		h.ready = h.ready[1:]
		q.running = true
		for len(q.events) > 0 {
			ev := q.events[0]
			q.events[0] = Event{}
			q.events = q.events[1:]
			var list []*hookEntry
			if int(ev.Transition) < numTransitions {
				list = h.lists[ev.Transition]
			}
			h.mu.Unlock()
			for _, e := range list {
				if e.matches(ev.Room) {
					h.call(e.fn, ev)
				}
			}
			if h.delivered != nil {
				h.delivered(ev)
			}
			h.mu.Lock()
		}
		q.running = false
		delete(h.queues, q.id)
	}
	h.workers--
	h.mu.Unlock()
}

// call runs one hook, abandoning it after the timeout.
func (h *hooks) call(fn Hook, ev Event) {
	if h.timeout < 0 {
		h.invoke(h.base, fn, ev)
		return
	}
	ctx, cancel := context.WithTimeout(h.base, h.timeout)
	defer cancel()
	done := make(chan struct{})
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		defer close(done)
		h.invoke(ctx, fn, ev)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			h.timeouts.Add(1)
			h.log.LogAttrs(h.base, slog.LevelWarn, "presence: hook still running after timeout, abandoned",
				append(eventAttrs(ev), slog.Duration("timeout", h.timeout))...)
		}
	}
}

func (h *hooks) invoke(ctx context.Context, fn Hook, ev Event) {
	defer func() {
		if r := recover(); r != nil {
			h.panics.Add(1)
			h.log.LogAttrs(ctx, slog.LevelError, "presence: hook panicked",
				append(eventAttrs(ev), slog.Any("panic", r))...)
		}
	}()
	fn(ctx, ev)
}

// wait waits for every queued event to be delivered, or for ctx; then it
// cancels the context of any hook still running.
func (h *hooks) wait(ctx context.Context) error {
	defer h.cancel()
	return waitctx.Wait(ctx, &h.wg)
}

func eventAttrs(ev Event) []slog.Attr {
	attrs := []slog.Attr{
		slog.String("client_id", ev.ClientID),
		slog.String("transition", ev.Transition.String()),
		slog.String("reason", string(ev.Reason)),
		slog.Uint64("seq", ev.Seq),
		slog.String("session_id", ev.SessionID),
	}
	if ev.Room != "" {
		attrs = append(attrs, slog.String("room", ev.Room))
	}
	return attrs
}

package presence

import (
	"context"
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

// maxIdleHookWorkers workers wait up to hookWorkerLinger for more events
// before they exit, so that a steady stream of transitions (clients
// connecting by the thousand a second) reuses them rather than starting a
// goroutine, and growing its stack, for each event.
const (
	maxFreeQueues      = 64
	maxIdleHookWorkers = 4
	hookWorkerLinger   = 2 * time.Second
)

// hooks delivers events to the registered hooks. A client's events wait in
// its own queue; a client with events waiting is on the ready list until
// one of at most maxHookWorkers workers takes it and calls its hooks in
// order, one at a time, on the worker's own goroutine. A hook still running
// after the timeout is abandoned: a new worker takes over its client, and
// the old one exits when the hook returns. So a slow hook delays only its
// own client (and, until HookTimeout abandons it, one worker), and nothing
// ever waits on user code while holding a lock.
type hooks struct {
	log     *slog.Logger
	timeout time.Duration
	wg      sync.WaitGroup

	panics   atomic.Uint64
	timeouts atomic.Uint64

	// delivered, if set before the first dispatch, is called after all
	// hooks of an event ran (see journal.go).
	delivered func(Event)

	// wake has a token for each idle worker that dispatch woke (one per
	// client made ready, so that two clients never wait for one worker); quit is
	// closed by wait, which ends idle waits.
	wake     chan struct{}
	quit     chan struct{}
	quitOnce sync.Once

	// mu guards the fields below.
	mu      sync.Mutex
	lists   [numTransitions][]*hookEntry // by Transition; replaced, never modified in place
	nhooks  int
	queues  map[string]*clientQueue // clients with events waiting or running
	ready   []*clientQueue          // ready[head:] wait for a worker, oldest first
	head    int
	free    []*clientQueue // to reuse, with their events' arrays
	workers int            // not counting those that were abandoned
	idle    int            // workers waiting for a wake token
	woken   int            // wake tokens sent and not yet taken
	running map[*hookWorker]struct{}
	closing bool
}

// clientQueue holds one client's events. It is on the ready list exactly
// when it has events and no worker runs it.
type clientQueue struct {
	id      string
	events  []Event
	running bool
	// cur is the event being delivered while has is set; its hooks
	// list[next:] are still to run.
	cur  Event
	has  bool
	list []*hookEntry
	next int
}

// hookWorker is one goroutine that runs hooks.
type hookWorker struct {
	h      *hooks
	timer  *time.Timer // its watchdog; nil when hooks are never abandoned
	linger *time.Timer // its wait for work when idle
	// Guarded by h.mu:
	q         *clientQueue // the client it runs, nil between clients
	cur       *hookCtx     // the hook call running, nil between calls
	abandoned bool
}

func newHooks(log *slog.Logger, timeout time.Duration) *hooks {
	return &hooks{log: log, timeout: timeout, queues: make(map[string]*clientQueue),
		wake: make(chan struct{}, maxIdleHookWorkers), quit: make(chan struct{}), running: make(map[*hookWorker]struct{})}
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
		if n := len(h.free); n > 0 {
			q, h.free = h.free[n-1], h.free[:n-1]
			q.id = ev.ClientID
		} else {
			q = &clientQueue{id: ev.ClientID}
		}
		h.queues[ev.ClientID] = q
	}
	q.events = append(q.events, ev)
	// A client already running or ready has its worker coming. A worker
	// leaves only when nothing is ready, so with every worker busy one of
	// them will take this client.
	var spawn *hookWorker
	wake := false
	if !q.running && len(q.events) == 1 {
		if h.head >= 64 && h.head*2 >= len(h.ready) { // a backlog that never drains
			n := copy(h.ready, h.ready[h.head:])
			clear(h.ready[n:])
			h.ready, h.head = h.ready[:n], 0
		}
		h.ready = append(h.ready, q)
		switch {
		case h.idle > h.woken: // an idle worker not woken yet: one a client
			h.woken++
			wake = true
		case h.workers < maxHookWorkers:
			h.workers++
			spawn = h.newWorker(nil)
		}
	}
	h.mu.Unlock()
	if wake {
		select {
		case h.wake <- struct{}{}:
		default: // never full: at most h.woken tokens wait
		}
	}
	if spawn != nil {
		go spawn.run()
	}
}

// newWorker returns a worker that starts with client q (nil: the ready
// list). h.mu must be held; the caller counts it in h.workers, or not.
func (h *hooks) newWorker(q *clientQueue) *hookWorker {
	w := &hookWorker{h: h, q: q}
	h.running[w] = struct{}{}
	h.wg.Add(1)
	return w
}

// run runs ready clients' hooks until none is ready for hookWorkerLinger,
// or until the worker is abandoned.
func (w *hookWorker) run() {
	h := w.h
	defer h.wg.Done()
	h.mu.Lock()
	for {
		q := w.q
		if q == nil {
			if h.head == len(h.ready) {
				if w.waitIdle() {
					continue
				}
				break
			}
			q = h.ready[h.head]
			h.ready[h.head] = nil
			if h.head++; h.head == len(h.ready) {
				h.ready, h.head = h.ready[:0], 0 // fill the array from its start again
			}
			q.running = true
			w.q = q
		}
		if !q.has {
			if len(q.events) == 0 {
				q.running = false
				delete(h.queues, q.id)
				if len(h.free) < maxFreeQueues {
					q.id, q.events = "", q.events[:0]
					h.free = append(h.free, q)
				}
				w.q = nil
				continue
			}
			q.cur, q.has, q.next, q.list = q.events[0], true, 0, nil
			q.events[0] = Event{}
			if len(q.events) == 1 {
				q.events = q.events[:0] // keeps the array, for the queue's reuse
			} else {
				q.events = q.events[1:]
			}
			if int(q.cur.Transition) < numTransitions {
				q.list = h.lists[q.cur.Transition]
			}
		}
		for q.next < len(q.list) && !q.list[q.next].matches(q.cur.Room) {
			q.next++
		}
		if q.next == len(q.list) {
			ev := q.cur
			q.cur, q.has, q.list = Event{}, false, nil
			if h.delivered != nil {
				h.mu.Unlock()
				h.delivered(ev)
				h.mu.Lock()
			}
			continue
		}
		fn := q.list[q.next].fn
		q.next++
		if !w.call(fn, q.cur) {
			h.mu.Unlock()
			return
		}
	}
	h.workers--
	delete(h.running, w)
	h.mu.Unlock()
	if w.timer != nil {
		w.timer.Stop()
	}
}

// waitIdle waits, as one of at most maxIdleHookWorkers idle workers, for
// dispatch to wake it, for hookWorkerLinger, or for wait. h.mu is held on
// entry and on return. It reports whether the worker is to go on.
func (w *hookWorker) waitIdle() bool {
	h := w.h
	if h.closing || h.idle >= maxIdleHookWorkers {
		return false
	}
	h.idle++
	h.mu.Unlock()
	if w.linger == nil {
		w.linger = time.NewTimer(hookWorkerLinger)
	} else {
		w.linger.Reset(hookWorkerLinger)
	}
	woken := false
	select {
	case <-h.wake:
		woken = true
	case <-w.linger.C:
	case <-h.quit:
	}
	w.linger.Stop()
	h.mu.Lock()
	h.idle--
	// A worker whose linger ended as a token came for it leaves the token
	// (and h.woken) to the next worker to go idle, which takes it at once;
	// until then dispatch starts workers rather than count on it.
	if woken {
		h.woken--
	}
	return woken || h.head < len(h.ready)
}

// call runs one hook on the worker's goroutine. h.mu is held on entry and
// on return. It reports false when the hook was abandoned (see expire): a
// new worker has the client, and this one is to exit.
func (w *hookWorker) call(fn Hook, ev Event) bool {
	h := w.h
	ctx := &hookCtx{}
	if h.timeout >= 0 {
		ctx.deadline, ctx.timed = time.Now().Add(h.timeout), true
	}
	w.cur = ctx
	h.mu.Unlock()
	if ctx.timed {
		if w.timer == nil {
			w.timer = time.AfterFunc(h.timeout, w.expire)
		} else {
			w.timer.Reset(h.timeout)
		}
	}
	h.invoke(ctx, fn, ev)
	if ctx.timed {
		w.timer.Stop()
	}
	ctx.cancel(context.Canceled) // as a context.WithTimeout's cancel would
	h.mu.Lock()
	w.cur = nil
	if w.abandoned {
		delete(h.running, w)
		return false
	}
	return true
}

// expire runs when the watchdog of a worker fires: a hook that still runs
// past its deadline is abandoned. Its context is cancelled and a new worker
// takes over its client from the next hook on, so the client's later
// events and the other clients do not wait for it.
func (w *hookWorker) expire() {
	h := w.h
	h.mu.Lock()
	ctx := w.cur
	if ctx == nil || w.abandoned || time.Now().Before(ctx.deadline) {
		h.mu.Unlock()
		return // fired for a call that has returned since
	}
	w.abandoned = true
	ev := w.q.cur          // the worker's client's event is the one whose hook runs
	nw := h.newWorker(w.q) // counted in h.workers in w's place
	w.q = nil
	h.mu.Unlock()
	go nw.run()
	ctx.cancel(context.DeadlineExceeded)
	h.timeouts.Add(1)
	h.log.LogAttrs(context.Background(), slog.LevelWarn, "presence: hook still running after timeout, abandoned",
		append(eventAttrs(ev), slog.Duration("timeout", h.timeout))...)
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
	h.mu.Lock()
	h.closing = true
	h.mu.Unlock()
	h.quitOnce.Do(func() { close(h.quit) })
	err := waitctx.Wait(ctx, &h.wg)
	h.mu.Lock()
	for w := range h.running {
		if w.cur != nil {
			w.cur.cancel(context.Canceled)
		}
	}
	h.mu.Unlock()
	return err
}

// hookCtx is the context of one hook call. It is done when the call
// returns, when the hook is abandoned at its deadline, or when the Tracker
// closes. It is one allocation, where context.WithTimeout costs a timer and
// a registration with its parent per call; its channel is made only for a
// hook that asks for it.
type hookCtx struct {
	deadline time.Time
	timed    bool

	mu     sync.Mutex
	done   chan struct{}
	err    error
	afters []*func() // see AfterFunc
}

// closedChan is the Done of a hookCtx cancelled before anyone asked.
var closedChan = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

func (c *hookCtx) Deadline() (time.Time, bool) { return c.deadline, c.timed }
func (c *hookCtx) Value(any) any               { return nil }

func (c *hookCtx) Done() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.done == nil {
		if c.err != nil {
			return closedChan
		}
		c.done = make(chan struct{})
	}
	return c.done
}

func (c *hookCtx) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// AfterFunc arranges for f to run, in its own goroutine, once c is done;
// stop undoes it. The context package calls it for a context derived from
// c (a hook's context.WithTimeout around its own I/O), which would
// otherwise start a goroutine to watch Done for each.
func (c *hookCtx) AfterFunc(f func()) (stop func() bool) {
	p := &f
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		go f()
		return func() bool { return false }
	}
	c.afters = append(c.afters, p)
	return func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		i := slices.Index(c.afters, p)
		if i < 0 {
			return false
		}
		c.afters = slices.Delete(c.afters, i, i+1)
		return true
	}
}

func (c *hookCtx) cancel(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return
	}
	c.err = err
	if c.done != nil {
		close(c.done)
	}
	for _, f := range c.afters {
		go (*f)()
	}
	c.afters = nil
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

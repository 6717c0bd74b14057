package presence

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vigilhq/vigil/metrics"
)

// Tracker is one node's view of presence: it owns the sessions opened on this
// node, writes their beats to the Store in batches, sweeps expired sessions
// out of the Store, and calls the hooks for every transition the Store
// reports to it.
//
// New starts one goroutine, which Close stops. A Tracker is safe for
// concurrent use; its zero value is not usable.
type Tracker struct {
	store Store
	nodes NodeSweeper // the store as a NodeSweeper; nil if it is none
	cfg   Config
	log   *slog.Logger
	obs   Observer // recorderObserver: rec, then Config.Observer
	rec   *metrics.Recorder
	hooks *hooks
	jn    journal   // see journal.go
	epoch time.Time // monotonic origin of now()
	seed  maphash.Seed

	// ord and stripes order this node's events per client: see order.go.
	ord     order
	stripes [numStripes]sync.Mutex

	// localMu guards the fields below and every Session's state.
	localMu sync.Mutex
	local   map[uint64]*Session        // by hash of client ID (see key), chained by Session.next
	roomsOf map[*Session]*sessionRooms // sessions with rooms or metadata (see rooms.go)
	nlocal  int
	pending []*Session // Add failed for a transient reason; retried
	retries []endRetry // End failed for a transient reason; retried
	// retriesTaken: Close has made the retries; a later failed End is
	// returned to its caller instead.
	retriesTaken bool
	closed       bool
	// mustClear: the start-up clearing of this node's old sessions has not
	// reached the Store yet; until it has, new sessions stay pending.
	mustClear bool

	// dirtyMu guards dirty: sessions beaten since their last write.
	dirtyMu sync.Mutex
	dirty   []*Session

	// Used only by the loop goroutine.
	spare  []*Session
	leases []Lease
	owners []*Session

	connects atomic.Uint64

	stopLoop  context.CancelFunc
	loopDone  chan struct{}
	closeOnce sync.Once
	closeErr  error
}

// New returns a Tracker for store. It ends, through Grace, the sessions that
// a previous process with the same cfg.Node left in the store, so a
// restarted node leaves no ghosts; their Offline events fire from a later
// sweep, so register hooks right after New. If the store is unreachable, New
// still succeeds: the clearing is retried, and this node's sessions are
// recorded only after it went through. It starts one goroutine (beat writes
// and sweeps); call Close to stop it. ctx bounds only the start-up work.
func New(ctx context.Context, store Store, cfg Config) (*Tracker, error) {
	if store == nil {
		return nil, fmt.Errorf("%w: nil store", ErrInvalidArgument)
	}
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	t := &Tracker{
		store:    store,
		cfg:      cfg,
		log:      cfg.Logger,
		rec:      metrics.NewRecorder(),
		hooks:    newHooks(cfg.Logger, cfg.HookTimeout),
		epoch:    time.Now(),
		seed:     maphash.MakeSeed(),
		local:    make(map[uint64]*Session),
		loopDone: make(chan struct{}),
	}
	next := cfg.Observer
	if next == nil {
		next = NopObserver{}
	}
	t.obs = recorderObserver{r: t.rec, next: next}
	t.nodes, _ = store.(NodeSweeper)
	t.initJournal(ctx)
	if err := t.clearNode(ctx); err != nil {
		if permanent(err) {
			return nil, fmt.Errorf("presence: clear sessions of node %q: %w", cfg.Node, err)
		}
		// The Store is unreachable: start anyway, hold this node's
		// sessions back from the Store until the loop has cleared the
		// previous process's (so the clearing cannot end them).
		t.storeFailed(ctx, "clear node", err, nil)
		t.mustClear = true
	}
	loopCtx, stop := context.WithCancel(context.Background())
	t.stopLoop = stop
	go t.loop(loopCtx)
	t.log.LogAttrs(ctx, slog.LevelInfo, "presence: tracker started",
		slog.String("node", cfg.Node), slog.Duration("ttl", cfg.TTL), slog.Duration("grace", cfg.Grace))
	return t, nil
}

// Node returns the node ID of this Tracker.
func (t *Tracker) Node() string { return t.cfg.Node }

// Config returns the Tracker's configuration, defaults filled in.
func (t *Tracker) Config() Config { return t.cfg }

// OnOnline registers fn to be called with every Online event this node
// observes, and returns a function that unregisters it.
//
// Hooks run on goroutines of the Tracker, never while it holds a lock. For
// one client, hook calls are serialised and follow the order of the events
// (an Online always before the Offline that ends it); different clients'
// hooks run concurrently. A hook may block, delaying only its own client's
// later events, until Config.HookTimeout abandons it. A panic in a hook is
// recovered and logged.
func (t *Tracker) OnOnline(fn Hook) (unregister func()) { return t.hooks.register(Online, "", fn) }

// OnOffline registers fn to be called with every Offline event this node
// observes, and returns a function that unregisters it. See OnOnline for how
// hooks are called.
func (t *Tracker) OnOffline(fn Hook) (unregister func()) { return t.hooks.register(Offline, "", fn) }

// OnJoin registers fn to be called with every Join event this node
// observes in the rooms room names: every room if empty, the rooms whose
// names start with a prefix if it is the prefix followed by "*" ("game:*"),
// otherwise that one room. It returns a function that unregisters it. A
// client's Join, Leave and Update hooks are called in one order with its
// Online and Offline hooks, as OnOnline describes.
func (t *Tracker) OnJoin(room string, fn Hook) (unregister func()) {
	return t.hooks.register(Join, room, fn)
}

// OnLeave registers fn to be called with every Leave event this node
// observes in the rooms room names (see OnJoin).
func (t *Tracker) OnLeave(room string, fn Hook) (unregister func()) {
	return t.hooks.register(Leave, room, fn)
}

// OnUpdate registers fn to be called with every Update event (new session
// metadata, one event per room) this node observes in the rooms room names
// (see OnJoin).
func (t *Tracker) OnUpdate(room string, fn Hook) (unregister func()) {
	return t.hooks.register(Update, room, fn)
}

// SessionOptions tunes one session.
type SessionOptions struct {
	// ID names the session within its client; it must pass ValidateID.
	// Default: a random ID.
	ID string
	// OnGone is called, once and without locks held, when the session ends
	// other than by its own End: the application kicked it, the Store
	// dropped it (kicked from another node, or expired while this node was
	// stalled), or the Tracker closed. The owner should close the
	// connection. It must not block. Default: nothing is called.
	OnGone func(Reason)
	// Rooms are rooms the session joins as it is recorded, in the same
	// Store step as its Online (see Session.Join); at most
	// MaxRoomsPerSession. They need a RoomStore. A session with an ID
	// that revives one lingering in the Store through its grace (a page
	// reloading) ends up in exactly these rooms, with Meta as its
	// metadata: it leaves the others (ReasonLeft) rather than stay in
	// rooms the page no longer shows.
	Rooms []string
	// Meta is the session's metadata (see Session.SetMeta): one JSON
	// value of at most MaxMetaLen bytes. It needs a RoomStore.
	Meta json.RawMessage
	// Activity and IdleFor are the session's activity as it opens (see
	// Session.SetActivity); empty is ActivityActive. ActivityAway needs a
	// StateStore.
	Activity Activity
	IdleFor  time.Duration
}

// Connect opens a session for clientID on this node. The client goes online
// if this is its first session. If this node already has a live session
// with opts.ID for the client, Connect beats it and returns it, after
// joining it to opts.Rooms, setting opts.Meta if given and opts.Activity if
// given and not the session's (if that fails, Connect returns the error and
// no session, and the session stays as it was); one whose last beat is
// more than TTL old is ended (OnGone is called with ReasonExpired) and
// replaced.
//
// When the Store cannot be reached, Connect still returns the session and
// keeps trying to record it; hooks fire when the Store has recorded it. It
// fails with ErrInvalidID, ErrLimit, ErrTooManySessions (over
// Config.MaxSessionsPerClient) or ErrClosed.
func (t *Tracker) Connect(ctx context.Context, clientID string, opts SessionOptions) (*Session, error) {
	if err := ValidateID(clientID); err != nil {
		return nil, fmt.Errorf("presence: connect client: %w", err)
	}
	id := opts.ID
	if id == "" {
		id = newSessionID()
	} else if err := ValidateID(id); err != nil {
		return nil, fmt.Errorf("presence: connect session of %q: %w", clientID, err)
	}
	var data *sessionRooms
	if len(opts.Rooms) > 0 || len(opts.Meta) > 0 || opts.Activity != "" || opts.IdleFor != 0 {
		var err error
		if data, err = t.newSessionRooms(opts.Rooms, opts.Meta, opts.Activity, opts.IdleFor); err != nil {
			return nil, fmt.Errorf("presence: connect session of %q: %w", clientID, err)
		}
	}
	s := &Session{t: t, clientID: clientID, id: id, onGone: opts.OnGone, state: statePending, named: opts.ID != ""}
	s.lastBeat.Store(t.now())

	t.localMu.Lock()
	if t.closed {
		t.localMu.Unlock()
		return nil, ErrClosed
	}
	k := t.key(clientID)
	for old := t.local[k]; old != nil; old = old.next {
		if old.id != id || old.clientID != clientID {
			continue
		}
		if s.lastBeat.Load()-old.lastBeat.Load() <= int64(t.cfg.TTL) {
			t.localMu.Unlock()
			old.Beat()
			if err := old.apply(ctx, data); err != nil {
				return nil, err // the session stays as it was, its owner's
			}
			return old, nil
		}
		// Its lease ran out (the Store expired it, or soon will): start
		// afresh rather than beat a session the Store no longer holds.
		t.markEnded(old, ReasonExpired)
		defer old.notifyGone(ReasonExpired)
		break
	}
	s.next = t.local[k]
	t.local[k] = s
	t.nlocal++
	if data != nil {
		if t.roomsOf == nil {
			t.roomsOf = make(map[*Session]*sessionRooms)
		}
		t.roomsOf[s] = data
	}
	held := t.mustClear // the loop records it once the node is cleared
	if held {
		t.pending = append(t.pending, s)
	}
	t.localMu.Unlock()

	if !held {
		if err := t.add(ctx, s); err != nil {
			if permanent(err) {
				t.localMu.Lock()
				t.markEnded(s, ReasonClosed)
				t.localMu.Unlock()
				return nil, fmt.Errorf("presence: connect %q: %w", clientID, err)
			}
			t.storeFailed(ctx, "add", err, s)
			t.localMu.Lock()
			t.pending = append(t.pending, s)
			t.localMu.Unlock()
		}
	}
	t.connects.Add(1)
	t.log.LogAttrs(ctx, slog.LevelDebug, "presence: session connected",
		slog.String("client_id", clientID), slog.String("session_id", id))
	return s, nil
}

// add records s in the Store and queues the resulting events.
func (t *Tracker) add(ctx context.Context, s *Session) error {
	age := s.beatAge(t.now())
	l := Lease{ClientID: s.clientID, SessionID: s.id, Node: t.cfg.Node, TTL: t.lease(age), Age: age,
		MaxSessions: t.cfg.MaxSessionsPerClient}
	var ended bool
	_, err := t.clientCall(ctx, s.clientID, func() ([]Event, error) {
		// The session's rooms and metadata go with its Add; read under
		// the stripe, which Join, Leave and SetMeta hold too, so that
		// none of them falls between this read and the session going
		// live.
		t.localMu.Lock()
		if d := t.roomsOf[s]; d != nil {
			l.Rooms, l.Meta = d.rooms, d.meta // replaced, never changed in place (sessionCall)
			if d.activity == ActivityAway {
				l.Activity = ActivityAway
				l.IdleFor = d.idleFor + time.Duration(t.now()-d.idleAt)
			}
		}
		t.localMu.Unlock()
		start := time.Now()
		evs, err := t.store.Add(ctx, l)
		t.observed("add", start, err)
		if err == nil {
			t.localMu.Lock()
			if ended = s.state == stateEnded; !ended {
				s.state = stateLive
			}
			t.localMu.Unlock()
			if !ended && s.named && !slices.ContainsFunc(evs, func(ev Event) bool { return ev.Transition == Online }) {
				evs = append(evs, t.dropRevivedRooms(ctx, s, l)...)
			}
		}
		return evs, err
	})
	if err != nil {
		return err
	}
	if ended { // ended while the Add was in flight
		return t.endOrRetry(ctx, s, *s.reason)
	}
	return nil
}

// clearNode ends, through Grace, the sessions a previous process with this
// node ID left in the Store. They linger at least one sweep, so that even
// with no Grace their Offline events come from the loop, after the caller of
// New has registered hooks.
func (t *Tracker) clearNode(ctx context.Context) error {
	e := Ending{Node: t.cfg.Node, Reason: ReasonRestart, Grace: max(t.cfg.Grace, t.cfg.SweepInterval)}
	start := time.Now()
	_, err := t.store.End(ctx, e)
	t.observed("end", start, err)
	if err != nil && !errors.Is(err, ErrNotFound) {
		return err
	}
	return nil
}

// lease is the TTL to write for a session whose last beat is age old: TTL
// past the beat, plus one SweepInterval of slack for the batch that writes it.
func (t *Tracker) lease(age time.Duration) time.Duration {
	return t.cfg.TTL + t.cfg.SweepInterval - age
}

// nodeLease is the TTL of this node's lease, which each sweep renews (see
// NodeSweeper): long enough that a live node, sweeping every
// SweepInterval, keeps it through sweeps that come late (17 sweeps at the
// defaults, 2 at least); short enough that it runs out before the
// sessions of a dead node that were still beating do.
// Such a session's lease ends at least TTL + SweepInterval after its last
// written beat; with the middleware's defaults (a beat every 25s, TTL 35s)
// that is at least 10s after the node's last flush, against a node lease
// of TTL/4 = 8.75s. With beats farther apart than 3/4 of TTL, a dead
// node's sessions that beat last early expire with ReasonExpired.
func (t *Tracker) nodeLease() time.Duration {
	return max(t.cfg.TTL/4, 2*t.cfg.SweepInterval)
}

// end ends s with reason, unless it already ended.
func (t *Tracker) end(ctx context.Context, s *Session, reason Reason) error {
	t.localMu.Lock()
	if s.state == stateEnded {
		t.localMu.Unlock()
		return nil
	}
	stored := s.state == stateLive
	t.markEnded(s, reason)
	t.localMu.Unlock()
	t.log.LogAttrs(ctx, slog.LevelDebug, "presence: session ended",
		slog.String("client_id", s.clientID), slog.String("session_id", s.id), slog.String("reason", string(reason)))
	if !stored { // never recorded, or its Add is in flight and will end it
		return nil
	}
	return t.endOrRetry(ctx, s, reason)
}

// endOrRetry ends a session in the Store; a transient failure is retried by
// the loop, or by Close (see endRetries). Once Close has taken the retries
// nothing would retry it, and the failure is returned.
func (t *Tracker) endOrRetry(ctx context.Context, s *Session, reason Reason) error {
	err := t.storeEnd(ctx, s, reason)
	if err == nil || permanent(err) {
		return err
	}
	t.localMu.Lock()
	late := t.retriesTaken
	if !late {
		t.retries = append(t.retries, endRetry{s, reason})
	}
	t.localMu.Unlock()
	if late { // counted as a store error by observed, like every failed call
		return fmt.Errorf("presence: end session %q of %q: %w", s.id, s.clientID, err)
	}
	t.storeFailed(ctx, "end", err, s)
	return nil
}

// storeEnd ends one session in the Store, with the grace its reason takes.
// A session the Store no longer holds is no error.
func (t *Tracker) storeEnd(ctx context.Context, s *Session, reason Reason) error {
	grace := t.cfg.Grace
	if reason == ReasonExpired {
		grace = 0
	}
	_, err := t.callEnd(ctx, Ending{ClientID: s.clientID, SessionID: s.id, Reason: reason, Grace: grace})
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	return err
}

// endRetries makes, for Close, the Ends that failed and wait for the
// loop's retry, each with its own reason and grace, and returns an error
// naming how many still failed.
func (t *Tracker) endRetries(ctx context.Context) error {
	t.localMu.Lock()
	retries := t.retries
	t.retries, t.retriesTaken = nil, true
	t.localMu.Unlock()
	var failed int
	var first error
	for _, r := range retries {
		if err := t.storeEnd(ctx, r.s, r.reason); err != nil {
			if failed++; first == nil {
				first = fmt.Errorf("%q of %q: %w", r.s.id, r.s.clientID, err)
			}
		}
	}
	if failed > 0 {
		return fmt.Errorf("presence: %d ended sessions not recorded as ended (first: %w)", failed, first)
	}
	return nil
}

// callEnd runs Store.End for one client (or one node) and queues the
// events.
func (t *Tracker) callEnd(ctx context.Context, e Ending) ([]Event, error) {
	call := func() ([]Event, error) {
		start := time.Now()
		evs, err := t.store.End(ctx, e)
		t.observed("end", start, err)
		return evs, err
	}
	if e.ClientID != "" {
		return t.clientCall(ctx, e.ClientID, call)
	}
	return t.wideCall(ctx, call)
}

// Kick ends every session of clientID, on every node, with ReasonKicked.
// The sessions linger for Grace like any ended session; sessions on this
// node get their OnGone call at once, sessions on other nodes when their
// node next writes their beats. It fails with ErrNotFound if the client has
// no session.
func (t *Tracker) Kick(ctx context.Context, clientID string) error {
	return t.kick(ctx, clientID, "")
}

// KickSession ends one session of clientID, as Kick does.
func (t *Tracker) KickSession(ctx context.Context, clientID, sessionID string) error {
	if err := ValidateID(sessionID); err != nil {
		return fmt.Errorf("presence: kick session: %w", err)
	}
	return t.kick(ctx, clientID, sessionID)
}

func (t *Tracker) kick(ctx context.Context, clientID, sessionID string) error {
	if err := ValidateID(clientID); err != nil {
		return fmt.Errorf("presence: kick: %w", err)
	}
	if t.isClosed() {
		return ErrClosed
	}
	e := Ending{ClientID: clientID, SessionID: sessionID, Reason: ReasonKicked, Grace: t.cfg.Grace}
	if _, err := t.callEnd(ctx, e); err != nil {
		return fmt.Errorf("presence: kick %q: %w", clientID, err)
	}
	var gone []*Session
	t.localMu.Lock()
	for s := t.local[t.key(clientID)]; s != nil; s = s.next {
		if s.clientID == clientID && (sessionID == "" || s.id == sessionID) {
			gone = append(gone, s)
		}
	}
	for _, s := range gone {
		t.markEnded(s, ReasonKicked)
	}
	t.localMu.Unlock()
	for _, s := range gone {
		s.notifyGone(ReasonKicked)
	}
	t.log.LogAttrs(ctx, slog.LevelDebug, "presence: kicked",
		slog.String("client_id", clientID), slog.String("session_id", sessionID))
	return nil
}

// emit stamps and queues events decided by the Store. Callers hold the locks
// that order them (see order.go).
func (t *Tracker) emit(ctx context.Context, evs []Event) {
	for _, ev := range evs {
		ev.Node = t.cfg.Node
		t.obs.Transition(ev.Transition, ev.Reason)
		if t.log.Enabled(ctx, slog.LevelDebug) {
			t.log.LogAttrs(ctx, slog.LevelDebug, "presence: transition", eventAttrs(ev)...)
		}
		t.hooks.dispatch(ev)
		if t.jn.j == nil { // else Watch hooks read the Journal
			t.jn.watch.dispatch(ev)
		}
	}
}

func (t *Tracker) storeFailed(ctx context.Context, op string, err error, s *Session) {
	attrs := []slog.Attr{slog.String("op", op), slog.Any("err", err)}
	if s != nil {
		attrs = append(attrs, slog.String("client_id", s.clientID), slog.String("session_id", s.id))
	}
	t.log.LogAttrs(ctx, slog.LevelWarn, "presence: store call failed, will retry", attrs...)
}

// endRetry is an End to repeat.
type endRetry struct {
	s      *Session
	reason Reason
}

// markEnded ends s locally and removes it from the registry. localMu must
// be held.
func (t *Tracker) markEnded(s *Session, reason Reason) {
	s.state = stateEnded
	s.reason = internReason(reason)
	delete(t.roomsOf, s)
	k := t.key(s.clientID)
	for p := t.local[k]; p != nil; p = p.next {
		if p == s {
			t.local[k] = s.next
		} else if p.next == s {
			p.next = s.next
		} else {
			continue
		}
		t.nlocal--
		break
	}
	if t.local[k] == nil {
		delete(t.local, k)
	}
	s.next = nil
}

// key is the local registry's key for a client: a hash rather than the ID
// itself, which saves a third of the map's memory; colliding clients share a
// chain.
func (t *Tracker) key(clientID string) uint64 { return maphash.String(t.seed, clientID) }

// stripe returns the index of clientID's stripe (see order.go).
func (t *Tracker) stripe(clientID string) int { return int(t.key(clientID) % numStripes) }

// now is the time since the Tracker started, on the monotonic clock.
func (t *Tracker) now() int64 { return int64(time.Since(t.epoch)) }

func (t *Tracker) isClosed() bool {
	t.localMu.Lock()
	defer t.localMu.Unlock()
	return t.closed
}

// Close ends every session of this node with ReasonShutdown, through Grace
// (so clients that reconnect to another node in time never look offline),
// calls their OnGone, stops the Tracker's goroutine and waits until the
// hooks have seen every queued event, or until ctx is done; then it cancels
// the context of hooks still running. Sessions ended earlier whose End
// could not reach the Store yet are ended first, with their own reason;
// those that still fail are reported in the error. Calling Close again
// returns the first result.
func (t *Tracker) Close(ctx context.Context) error {
	t.closeOnce.Do(func() {
		t.localMu.Lock()
		t.closed = true
		var all []*Session
		for _, s := range t.local {
			for ; s != nil; s = s.next {
				all = append(all, s)
			}
		}
		for _, s := range all {
			t.markEnded(s, ReasonShutdown)
		}
		t.pending = nil
		t.localMu.Unlock()

		t.stopLoop()
		<-t.loopDone

		var errs []error
		// Ends that failed before go first, with their own reason and
		// grace (an expired session goes at once, not through the Grace
		// of the shutdown); nothing retries them after Close.
		if err := t.endRetries(ctx); err != nil {
			errs = append(errs, err)
		}
		_, err := t.callEnd(ctx, Ending{Node: t.cfg.Node, Reason: ReasonShutdown, Grace: t.cfg.Grace})
		if err != nil && !errors.Is(err, ErrNotFound) {
			errs = append(errs, fmt.Errorf("presence: end sessions of node %q: %w", t.cfg.Node, err))
		}
		// Events set aside under a stripe that was busy, which no later
		// wide call will queue now: before the hooks are waited for.
		t.queueHeld(ctx, true)
		for _, s := range all {
			s.notifyGone(ReasonShutdown)
		}
		if err := t.hooks.wait(ctx); err != nil {
			errs = append(errs, fmt.Errorf("presence: wait for hooks: %w", err))
		}
		t.flushAcks(ctx)
		if err := t.jn.watch.wait(ctx); err != nil {
			errs = append(errs, fmt.Errorf("presence: wait for watch hooks: %w", err))
		}
		t.closeErr = errors.Join(errs...)
		t.log.LogAttrs(ctx, slog.LevelInfo, "presence: tracker closed", slog.String("node", t.cfg.Node))
	})
	return t.closeErr
}

// Stats is a snapshot of a Tracker's counters, for metrics.
type Stats struct {
	// Sessions is the number of sessions open on this node.
	Sessions int
	// Connects counts sessions opened on this node.
	Connects uint64
	// Onlines and Offlines count the transitions this node observed.
	Onlines, Offlines uint64
	// StoreErrors counts failed Store calls.
	StoreErrors uint64
	// Pending is the number of sessions and ends waiting for a Store retry.
	Pending int
	// HookPanics and HookTimeouts count hook calls that panicked or were
	// abandoned.
	HookPanics, HookTimeouts uint64
}

// Stats returns the Tracker's counters.
func (t *Tracker) Stats() Stats {
	t.localMu.Lock()
	st := Stats{Sessions: t.nlocal, Pending: len(t.pending) + len(t.retries)}
	t.localMu.Unlock()
	st.Connects = t.connects.Load()
	// Transitions and Store errors are counted once, by the Recorder.
	for _, f := range t.rec.Gather() {
		for _, smp := range f.Samples {
			switch f.Desc {
			case metrics.Transitions:
				switch smp.Labels[0] {
				case Online.String():
					st.Onlines += uint64(smp.Value)
				case Offline.String():
					st.Offlines += uint64(smp.Value)
				}
			case metrics.StoreErrors:
				st.StoreErrors += uint64(smp.Value)
			}
		}
	}
	st.HookPanics = t.hooks.panics.Load()
	st.HookTimeouts = t.hooks.timeouts.Load()
	return st
}

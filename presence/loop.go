package presence

import (
	"context"
	"log/slog"
	"time"
)

// loop writes beats every half SweepInterval and sweeps every SweepInterval.
func (t *Tracker) loop(ctx context.Context) {
	defer close(t.loopDone)
	tick := time.NewTicker(t.cfg.SweepInterval / 2)
	defer tick.Stop()
	// Local sessions that stopped beating are looked for every TTL/2: the
	// Store already removed them (and fired the Offline); this only tells
	// their owners and frees them.
	scanEvery := max(1, int(t.cfg.TTL/t.cfg.SweepInterval))
	// A sweep waits while this node's beats are unwritten (its last
	// flush failed): after a store stall longer than a lease (a paused or
	// failing-over Redis), a sweep that reaches the store first would
	// expire live sessions whose beats the next flush writes. For one TTL
	// at most, so that a Touch failing for good does not stop expiry.
	held := 0
	for n := 0; ; n++ {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		t.retry(ctx)
		wrote := t.flush(ctx)
		if n%2 == 1 {
			if wrote || held >= scanEvery {
				t.sweep(ctx)
				held = 0
			} else {
				held++
			}
		}
		t.journalTick(ctx, n%2 == 1)
		if n%scanEvery == scanEvery-1 {
			t.expireLocal(ctx)
		}
	}
}

// expireLocal ends the local sessions whose lease has run out.
func (t *Tracker) expireLocal(ctx context.Context) {
	limit := int64(t.cfg.TTL + t.cfg.SweepInterval)
	now := t.now()
	var expired []*Session
	t.localMu.Lock()
	for _, s := range t.local {
		for ; s != nil; s = s.next {
			if now-s.lastBeat.Load() > limit {
				expired = append(expired, s)
			}
		}
	}
	var stored []*Session
	for _, s := range expired {
		if s.state == stateLive {
			stored = append(stored, s)
		}
		t.markEnded(s, ReasonExpired)
	}
	t.localMu.Unlock()
	for _, s := range stored {
		_ = t.endOrRetry(ctx, s, ReasonExpired) // usually ErrNotFound: the Store swept it
	}
	for _, s := range expired {
		t.log.LogAttrs(ctx, slog.LevelDebug, "presence: session expired",
			slog.String("client_id", s.clientID), slog.String("session_id", s.id))
		s.notifyGone(ReasonExpired)
	}
}

// flush writes the leases of the sessions beaten since their last write, in
// one Touch, and closes the sessions the Store no longer holds. It reports
// false when the Touch failed (its leases are queued again).
func (t *Tracker) flush(ctx context.Context) bool {
	t.dirtyMu.Lock()
	batch := t.dirty
	t.dirty = t.spare[:0]
	t.dirtyMu.Unlock()
	if len(batch) == 0 {
		t.spare = batch
		return true
	}
	now := t.now()
	leases, owners := t.leases[:0], t.owners[:0]
	t.localMu.Lock()
	for _, s := range batch {
		// Clear the mark before reading the beat: a beat racing with us
		// queues the session again rather than being lost.
		s.dirty.Store(false)
		if s.state != stateLive {
			continue // a pending session is written by its Add
		}
		age := s.beatAge(now)
		if ttl := t.lease(age); ttl > 0 {
			leases = append(leases, Lease{ClientID: s.clientID, SessionID: s.id, Node: t.cfg.Node, TTL: ttl, Age: age})
			owners = append(owners, s)
		}
	}
	t.localMu.Unlock()
	clear(batch)
	t.spare = batch[:0]

	ok := true
	if len(leases) > 0 {
		start := time.Now()
		gone, err := t.store.Touch(ctx, leases)
		t.observed("touch", start, err)
		ok = err == nil
		if err != nil {
			if ctx.Err() == nil {
				t.storeFailed(ctx, "touch", err, nil)
			}
			for _, s := range owners {
				s.queue() // write it again next time
			}
		} else {
			for _, g := range gone {
				t.forgetGone(ctx, owners[g.Index], g.Reason)
			}
		}
	}
	clear(leases)
	clear(owners)
	t.leases, t.owners = leases[:0], owners[:0]
	return ok
}

// forgetGone ends a local session that the Store no longer holds as live.
func (t *Tracker) forgetGone(ctx context.Context, s *Session, reason Reason) {
	t.localMu.Lock()
	if s.state == stateEnded {
		t.localMu.Unlock()
		return
	}
	t.markEnded(s, reason)
	t.localMu.Unlock()
	t.log.LogAttrs(ctx, slog.LevelDebug, "presence: session dropped by store",
		slog.String("client_id", s.clientID), slog.String("session_id", s.id), slog.String("reason", string(reason)))
	s.notifyGone(reason)
}

// retry repeats the Adds and Ends that failed for a transient reason.
func (t *Tracker) retry(ctx context.Context) {
	t.localMu.Lock()
	mustClear := t.mustClear
	t.localMu.Unlock()
	if mustClear {
		if err := t.clearNode(ctx); err != nil {
			t.storeFailed(ctx, "clear node", err, nil)
			return // nothing of this node may reach the Store before
		}
		t.localMu.Lock()
		t.mustClear = false
		t.localMu.Unlock()
	}
	t.localMu.Lock()
	pending, retries := t.pending, t.retries
	t.pending, t.retries = nil, nil
	t.localMu.Unlock()
	for _, s := range pending {
		t.localMu.Lock()
		ended := s.state == stateEnded
		t.localMu.Unlock()
		if ended {
			continue
		}
		if err := t.add(ctx, s); err != nil {
			if permanent(err) {
				t.forgetGone(ctx, s, ReasonKicked)
				continue
			}
			t.storeFailed(ctx, "add", err, s)
			t.localMu.Lock()
			t.pending = append(t.pending, s)
			t.localMu.Unlock()
		}
	}
	for _, r := range retries {
		_ = t.endOrRetry(ctx, r.s, r.reason) // requeues itself on a transient error
	}
}

// sweep removes expired sessions from the Store and queues the Offline
// events it reports to this node. With a NodeSweeper, it also renews this
// node's lease: every SweepInterval, whether or not the node has sessions
// and whether or not they beat, at no cost of its own.
func (t *Tracker) sweep(ctx context.Context) {
	_, err := t.wideCall(ctx, func() ([]Event, error) {
		start := time.Now()
		var evs []Event
		var err error
		if t.nodes != nil {
			evs, err = t.nodes.SweepNode(ctx, NodeLease{Node: t.cfg.Node, TTL: t.nodeLease()})
		} else {
			evs, err = t.store.Sweep(ctx)
		}
		t.observed("sweep", start, err)
		return evs, err
	})
	if err != nil && ctx.Err() == nil {
		t.storeFailed(ctx, "sweep", err, nil)
	}
}

package presence

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"sync/atomic"
	"time"
)

const (
	statePending = iota // not yet recorded by the Store
	stateLive
	stateEnded
)

// Session is one live channel of a client on this node: a WebSocket
// connection or an HTTP-heartbeat instance. Get one from Tracker.Connect. It
// is safe for concurrent use.
type Session struct {
	t        *Tracker
	clientID string
	id       string
	onGone   func(Reason)

	lastBeat atomic.Int64 // Tracker.now() of the latest beat
	dirty    atomic.Bool  // queued in Tracker.dirty

	named bool // its ID came from SessionOptions.ID, and so may be revived

	// Guarded by t.localMu. The layout keeps a Session in 80 bytes.
	state  uint8
	reason *Reason  // why it ended
	next   *Session // the client's next session on this node
}

// ClientID returns the ID of the client the session belongs to.
func (s *Session) ClientID() string { return s.clientID }

// ID returns the session's ID.
func (s *Session) ID() string { return s.id }

// beatAge is how long before now (a reading of Tracker.now) the session's
// last beat was. A beat that lands after the caller read now, while it
// builds a lease, counts as now: never a negative Age, which a Store
// refuses along with the whole batch it comes in.
func (s *Session) beatAge(now int64) time.Duration {
	return time.Duration(max(0, now-s.lastBeat.Load()))
}

// Beat records proof that the session is alive. It is cheap (no I/O, no
// allocation): the Tracker writes beats to the Store in batches.
func (s *Session) Beat() {
	s.lastBeat.Store(s.t.now())
	s.queue()
}

// queue marks the session for the next batch of writes.
func (s *Session) queue() {
	if s.dirty.Load() || s.dirty.Swap(true) {
		return
	}
	t := s.t
	t.dirtyMu.Lock()
	t.dirty = append(t.dirty, s)
	t.dirtyMu.Unlock()
}

// End ends the session with reason. Unless reason is ReasonExpired, the
// session lingers for the Tracker's Grace before it counts as gone. Ending a
// session twice does nothing. When the Store cannot be reached, End returns
// nil and the Tracker keeps trying, until Tracker.Close, which tries once
// more and reports what still fails.
func (s *Session) End(ctx context.Context, reason Reason) error {
	return s.t.end(ctx, s, reason)
}

func (s *Session) notifyGone(reason Reason) {
	if s.onGone != nil {
		s.onGone(reason)
	}
}

// newSessionID returns 64 random bits in 11 characters: unique enough per
// client, and small, since a node may hold a million sessions.
func newSessionID() string {
	var b [8]byte
	rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

var knownReasons = [...]Reason{ReasonConnect, ReasonClosed, ReasonLeft, ReasonExpired, ReasonIdle, ReasonShutdown, ReasonRestart, ReasonNodeLost, ReasonKicked}

// internReason points at a shared copy of the usual reasons, so that ending
// a session allocates nothing.
func internReason(r Reason) *Reason {
	for i := range knownReasons {
		if knownReasons[i] == r {
			return &knownReasons[i]
		}
	}
	return &r
}

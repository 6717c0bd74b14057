package memory

import (
	"context"
	"fmt"
	"time"

	"github.com/vigilhq/vigil/presence"
)

// States, without growing a session or a client: a session's activity is
// a byte of the session (session.away, in what was padding); an away
// session's last active time, which differs from its last beat, is an
// entry of Store.awayAt; and a client's remembered last active time (that
// of the sessions it no longer has) is an entry of Store.activeAt only
// where it may differ from what the client's fields already say. A store
// whose sessions are all active holds no entry in either map.

// stateEntries are the Store's fields for states; mu guards them.
type stateEntries struct {
	// awayAt is, for an away session, its last active time: its report's
	// time less IdleFor.
	awayAt map[*session]int64
	// activeAt is the latest last active time of sessions a client no
	// longer has. Without an entry: for an offline client, c.seen; for an
	// online one, none.
	activeAt map[*client]int64
	// pending lists clients whose last active session a removal took,
	// for the Away that follows once the removals of one call are done.
	pending []pendingAway
}

type pendingAway struct {
	c       *client
	session string
	reason  presence.Reason
}

func (t *stateEntries) init() {
	t.awayAt = make(map[*session]int64)
	t.activeAt = make(map[*client]int64)
}

var _ presence.StateStore = (*Store)(nil)

// hasActive reports whether any session of c, live or ending, is active.
func (c *client) hasActive() bool {
	for x := c.head; x != nil; x = x.next {
		if !x.away {
			return true
		}
	}
	return false
}

// setActivity sets x's activity, reported at now.
func (s *Store) setActivity(x *session, a presence.Activity, idleFor time.Duration, now int64) {
	if a == presence.ActivityAway {
		x.away = true
		s.states.awayAt[x] = now - int64(idleFor)
		return
	}
	if x.away {
		x.away = false
		delete(s.states.awayAt, x)
	}
}

// sessionActive is x's last active time: its last beat while active.
func (s *Store) sessionActive(x *session) int64 {
	if x.away {
		return s.states.awayAt[x]
	}
	return x.seen
}

// remembered is c's last active time from the sessions it no longer has.
func (s *Store) remembered(c *client) (int64, bool) {
	if t, ok := s.states.activeAt[c]; ok {
		return t, true
	}
	if c.sessions() == 0 {
		return c.seen, true
	}
	return 0, false
}

// clientActive is c's last active time: the latest of its sessions'.
func (s *Store) clientActive(c *client) (int64, bool) {
	t, ok := s.remembered(c)
	for x := c.head; x != nil; x = x.next {
		if a := s.sessionActive(x); !ok || a > t {
			t, ok = a, true
		}
	}
	return t, ok
}

// fillState sets p's State and LastActive from c.
func (s *Store) fillState(c *client, state *presence.State, lastActive *time.Time) {
	switch {
	case c.sessions() == 0:
		*state = presence.StateOffline
	case c.hasActive():
		*state = presence.StateOnline
	default:
		*state = presence.StateAway
	}
	if t, ok := s.clientActive(c); ok {
		*lastActive = s.wall(t)
	}
}

// stateEvent appends Away or Back if c's state flipped from wasActive.
func (s *Store) stateEvent(evs []presence.Event, c *client, sessionID string, wasActive bool, reason presence.Reason, now int64) []presence.Event {
	if c.sessions() == 0 || c.hasActive() == wasActive {
		return evs
	}
	tr := presence.Back
	if wasActive {
		tr = presence.Away
	}
	c.sn += 1 << 16
	return append(evs, presence.Event{
		ClientID: c.id, Transition: tr, Reason: reason,
		Time: s.wall(now), LastSeen: s.wall(c.seen), SessionID: sessionID, Seq: c.seq(),
	})
}

// removing records what x's removal (for reason) does to its client's last
// active time and state: called before x is unlinked.
func (s *Store) removing(x *session, reason presence.Reason) {
	c := x.c
	a := s.sessionActive(x)
	if t, ok := s.states.activeAt[c]; !ok || a > t {
		s.states.activeAt[c] = a
	}
	if x.away {
		delete(s.states.awayAt, x)
		return
	}
	if c.sessions() > 1 {
		for y := c.head; y != nil; y = y.next {
			if y != x && !y.away {
				return
			}
		}
		s.states.pending = append(s.states.pending, pendingAway{c: c, session: x.id, reason: reason})
	}
}

// returning keeps the last active time of c, an offline client coming
// back, which its fields will no longer say.
func (s *Store) returning(c *client) {
	if _, ok := s.states.activeAt[c]; !ok {
		s.states.activeAt[c] = c.seen
	}
}

// removed settles c's remembered last active time once c went offline:
// no entry where it is c.seen.
func (s *Store) removed(c *client) {
	if t, ok := s.states.activeAt[c]; ok && t == c.seen {
		delete(s.states.activeAt, c)
	}
}

// flushAway appends the Away of every client whose last active session a
// removal of this call took, and which still has sessions: so a call that
// removes every session of a client gives its Offline alone.
func (s *Store) flushAway(evs []presence.Event, now int64) []presence.Event {
	for _, p := range s.states.pending {
		evs = s.stateEvent(evs, p.c, p.session, true, p.reason, now)
	}
	clear(s.states.pending)
	s.states.pending = s.states.pending[:0]
	return evs
}

// SetActivity implements presence.StateStore.
func (s *Store) SetActivity(ctx context.Context, a presence.SessionActivity) ([]presence.Event, error) {
	if err := a.Validate(); err != nil {
		return nil, fmt.Errorf("memory: set activity: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	x := s.roomSession(a.ClientID, a.SessionID)
	if x == nil || x.ending != 0 {
		return nil, fmt.Errorf("memory: set activity: session %q of %q: %w", a.SessionID, a.ClientID, presence.ErrNotFound)
	}
	now := s.now()
	wasActive := x.c.hasActive()
	s.setActivity(x, a.Activity, a.IdleFor, now)
	return s.stateEvent(nil, x.c, x.id, wasActive, "", now), nil
}

package presence

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// HasStates reports whether the Tracker's Store keeps session activity (is a
// StateStore): without, SetActivity fails with an error wrapping
// errors.ErrUnsupported.
func (t *Tracker) HasStates() bool {
	_, ok := t.store.(StateStore)
	return ok
}

// stateStore returns the Store as a StateStore, or an error wrapping
// errors.ErrUnsupported.
func (t *Tracker) stateStore() (StateStore, error) {
	ss, ok := t.store.(StateStore)
	if !ok {
		return nil, fmt.Errorf("presence: store %T keeps no session activity: %w", t.store, errors.ErrUnsupported)
	}
	return ss, nil
}

// OnAway registers fn to be called with every Away event this node
// observes (an online client whose sessions all went away), and returns a
// function that unregisters it. See OnOnline for how hooks are called.
func (t *Tracker) OnAway(fn Hook) (unregister func()) { return t.hooks.register(Away, "", fn) }

// OnBack registers fn to be called with every Back event this node
// observes (an away client with an active session again).
func (t *Tracker) OnBack(fn Hook) (unregister func()) { return t.hooks.register(Back, "", fn) }

// Activity returns the session's activity as last set (ActivityActive if
// never).
func (s *Session) Activity() Activity {
	t := s.t
	t.localMu.Lock()
	defer t.localMu.Unlock()
	if d := t.roomsOf[s]; d != nil && d.activity == ActivityAway {
		return ActivityAway
	}
	return ActivityActive
}

// SetActivity records what the session reports of its user: ActivityActive
// or ActivityAway, with, for away, how long ago the user was last active.
// The client goes away (an Away event, decided by the Store once across
// nodes) when its last active session does, and back (Back) when one of its
// sessions is active again; reporting the activity the session has fires
// nothing. A session the Store has not recorded yet carries its activity
// into its Add. It fails with ErrInvalidArgument, ErrNotFound (the session
// ended), an error wrapping errors.ErrUnsupported (the Store keeps no
// activity), or the Store's error; a failed call changes nothing the
// Tracker keeps and is not retried.
func (s *Session) SetActivity(ctx context.Context, a Activity, idleFor time.Duration) error {
	if a == "" {
		a = ActivityActive
	}
	sa := SessionActivity{ClientID: s.clientID, SessionID: s.id, Activity: a, IdleFor: idleFor}
	if err := sa.Validate(); err != nil {
		return fmt.Errorf("presence: set activity: %w", err)
	}
	ss, err := s.t.stateStore()
	if err != nil {
		return err
	}
	return s.sessionCall(ctx, "set activity", func(d *sessionRooms, live bool) error {
		if live {
			if _, err := s.t.roomOp(ctx, s.clientID, "set_activity", func() ([]Event, error) {
				return ss.SetActivity(ctx, sa)
			}); err != nil {
				return err
			}
		}
		d.activity, d.idleFor, d.idleAt = a, idleFor, s.t.now()
		return nil
	})
}

// fillStates gives presences from a Store without states their State.
func fillStates(ps []Presence) {
	for i := range ps {
		if ps[i].State != "" {
			continue
		}
		if ps[i].Online {
			ps[i].State = StateOnline
		} else {
			ps[i].State = StateOffline
		}
	}
}

// fillMemberStates gives members from a Store without states their State:
// online for those in the room.
func fillMemberStates(ms []Member) {
	for i := range ms {
		if ms[i].In && ms[i].State == "" {
			ms[i].State = StateOnline
		}
	}
}

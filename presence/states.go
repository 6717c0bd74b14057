package presence

import (
	"context"
	"fmt"
	"time"
)

// States: a session reports whether its user is active or away; a client's
// state merges its sessions' states, the most present winning: online if
// any of its sessions is active, away if all are away. The Store decides
// Away and Back transitions exactly once across nodes, numbered in the
// client's one Seq with its other transitions: after its Online, before its
// Offline.

// State is a client's presence state. More states (such as busy) may come;
// compare with the constants, and treat an unknown state as online.
type State string

// The states of a client.
const (
	// StateOnline: at least one session is active.
	StateOnline State = "online"
	// StateAway: online, and every session is away.
	StateAway State = "away"
	// StateOffline: no session.
	StateOffline State = "offline"
)

// Activity is what a session reports of its user.
type Activity string

// The activities a session reports.
const (
	// ActivityActive: the user is there (the default of a new session).
	ActivityActive Activity = "active"
	// ActivityAway: the user is not (a hidden page, no input for a while).
	ActivityAway Activity = "away"
)

// Validate reports whether a is an activity a session may report
// (ErrInvalidArgument otherwise). Empty counts as ActivityActive.
func (a Activity) Validate() error {
	switch a {
	case "", ActivityActive, ActivityAway:
		return nil
	}
	return fmt.Errorf("%w: activity %q, want %q or %q", ErrInvalidArgument, a, ActivityActive, ActivityAway)
}

// StateStore is an optional ability of a Store, found by type assertion: it
// keeps each session's activity and decides Away and Back. Both of vigil's
// stores have it; store/storetest checks every rule below on the stores
// that have it. A Tracker over a Store without it fails SetActivity with an
// error wrapping errors.ErrUnsupported, and reports every online client as
// StateOnline.
//
// The Store methods a StateStore has as a Store change too:
//
//   - Add with l.Activity away records the session away; a client's first
//     session recorded away gets Online and then Away in the same step. A
//     new active session of an away client gets Back. Add of a session
//     the Store holds sets its activity as SetActivity would. An Add's
//     Away or Back comes after its Online and before its room events.
//   - When the last active session of a client that keeps other sessions
//     is removed, the client gets Away, after the session's Leaves. A
//     call that removes every session of a client (End of the client, a
//     Sweep, a lost node) gives only its Leaves and its Offline. An
//     ending session keeps its activity while it lingers through its
//     grace.
//   - Touch never changes a session's activity, and costs the same for an
//     away session as for an active one.
//   - Lookup and List report State and LastActive, Sessions each session's
//     Activity and LastActive, and a RoomStore's member queries each
//     member's State and LastActive.
//
// Last active is when the user was last there, distinct from last seen (the
// last beat): an active session's last active is its last beat; an away
// session's is when it reported away, less the IdleFor it reported. A
// client's is the latest of its sessions', kept after it goes offline for
// as long as the Store remembers the client.
type StateStore interface {
	Store

	// SetActivity records a live session's activity. It returns Away when
	// the client had an active session and now has none, Back when it had
	// none and now has one, and nothing otherwise (reporting the activity
	// a session has is no transition, though an away report moves its last
	// active time). A session the Store does not hold as live (unknown, or
	// ending): ErrNotFound.
	SetActivity(ctx context.Context, a SessionActivity) ([]Event, error)
}

// SessionActivity is what SetActivity records of one session.
type SessionActivity struct {
	ClientID  string
	SessionID string
	Activity  Activity
	// IdleFor, for ActivityAway, is how long before the report the user
	// was last active (a page reports away after 5 minutes without input:
	// IdleFor 5 minutes). Zero for ActivityActive.
	IdleFor time.Duration
}

// Validate reports whether a names a session with valid IDs (ErrInvalidID)
// and a valid activity, with an IdleFor that is not negative, and zero for
// ActivityActive (ErrInvalidArgument).
func (a SessionActivity) Validate() error {
	if err := ValidateID(a.ClientID); err != nil {
		return fmt.Errorf("client: %w", err)
	}
	if err := ValidateID(a.SessionID); err != nil {
		return fmt.Errorf("session: %w", err)
	}
	return validActivity(a.Activity, a.IdleFor)
}

// validActivity checks an activity and its idle time (see
// SessionActivity.Validate): one check for SetActivity, Lease and
// SessionOptions, without their IDs.
func validActivity(a Activity, idleFor time.Duration) error {
	if err := a.Validate(); err != nil {
		return err
	}
	if idleFor < 0 || (a != ActivityAway && idleFor != 0) {
		return fmt.Errorf("%w: idle for %v while %q", ErrInvalidArgument, idleFor, a)
	}
	return nil
}

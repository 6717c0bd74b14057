package presence

import (
	"context"
	"encoding/json"
	"fmt"
	"time"
)

// Store keeps the presence state that one or more Trackers (nodes) share.
//
// The Store, not the Tracker, decides every transition: each method that can
// change whether a client is online does so atomically and returns the
// transitions it decided, so that when several nodes share one Store every
// change is reported to exactly one caller. Expiry is measured on the Store's
// own clock; callers pass durations, never timestamps, so node clocks never
// need to agree.
//
// Every method must be safe for concurrent use. Stores report the conditions
// callers must tell apart with the sentinel errors of this package
// (ErrInvalidID, ErrInvalidArgument, ErrLimit, ErrTooManySessions,
// ErrNotFound), wrapped or not;
// any other error is treated as transient and the call is retried.
//
// store/storetest holds the conformance suite every implementation must pass.
type Store interface {
	// Add records a live session, or refreshes (and revives, if it was
	// ending) the session with the same client and session ID. It returns
	// an Online event when the client had no session before. The session's
	// deadline becomes l.TTL from now: a revived session's earlier Grace no
	// longer counts. A new session leaves the client's ending sessions
	// lingering, each through its own grace.
	//
	// With a positive l.MaxSessions, Add fails with ErrTooManySessions, and
	// records nothing, when it would create a session for a client that
	// already has that many live sessions (ending ones, and ones whose
	// lease has run out, not counted). Refreshing or reviving a session the
	// Store holds is never refused. The count and the write are one atomic
	// step for every caller sharing the Store.
	//
	// A Store may cap what it holds (store/memory and store/redis do):
	// past a cap, Add of a new session fails with ErrLimit and records
	// nothing; refreshing or reviving a session it holds is never refused.
	Add(ctx context.Context, l Lease) ([]Event, error)

	// Touch extends the leases of many sessions in one call. It returns the
	// sessions the Store no longer holds as live: removed (expired, kicked
	// and gone) or ended by someone else (kicked, or cleared by a restart of
	// their node). Their owner should close them. Touch never decides a
	// transition, never moves a live session's deadline earlier (a lease
	// that ends sooner than the one the Store holds leaves the deadline
	// where it is) and changes nothing of a session it reports gone.
	Touch(ctx context.Context, leases []Lease) ([]Gone, error)

	// End ends the sessions e selects. With a positive e.Grace they linger
	// (still counted as live) for that long and are removed by a later
	// Sweep; otherwise they are removed at once and End returns the Offline
	// events of the clients that lost their last session. Ending selects
	// nothing: ErrNotFound.
	//
	// Each session's last-seen time becomes its end: its last beat when
	// e.Reason.Unseen (nobody saw it go: expired, node_lost, restart),
	// otherwise now, the client having been there until the session
	// ended. Its client's LastSeen, and the Offline event's, follow.
	End(ctx context.Context, e Ending) ([]Event, error)

	// Sweep removes every session whose lease or grace has run out on the
	// Store's clock and returns the Offline events of the clients that lost
	// their last session, and any transition the Store held back and
	// decides now (store/redis holds transitions for a short window after
	// Redis lost data). Each is reported to exactly one caller, however
	// many nodes sweep at once.
	Sweep(ctx context.Context) ([]Event, error)

	// Lookup reports the presence of each client ID, in the order given. A
	// client the Store has never seen, or has forgotten, has a zero LastSeen.
	Lookup(ctx context.Context, clientIDs []string) ([]Presence, error)

	// Sessions lists a client's sessions, ending ones included: none for an
	// offline client the Store remembers, ErrNotFound for a client it does
	// not know (never seen, or forgotten).
	Sessions(ctx context.Context, clientID string) ([]SessionInfo, error)

	// List pages through the online clients. An empty cursor starts the
	// walk; Page.Next is empty after the last page. A client online for the
	// whole walk appears exactly once. limit must be positive.
	List(ctx context.Context, cursor string, limit int) (Page, error)

	// Count reports how many clients are online.
	Count(ctx context.Context) (int, error)
}

// NodeSweeper is an optional ability of a Store, found by type assertion:
// the Store keeps a lease per node, which the node's own sweeps renew, and
// so tells the sessions of a node that stopped calling it (died, or lost
// its link to the Store) from sessions that stopped beating on a live node.
// A Tracker over a NodeSweeper sweeps with SweepNode instead of Sweep. Like
// every Store method, SweepNode must be safe for concurrent use, and its
// errors are those of Sweep. store/storetest checks it on the stores that
// have it.
//
// A Store that wraps another (for metrics, say) must offer SweepNode, and
// call the wrapped one's, when the wrapped Store has it: otherwise its
// Tracker sweeps with Sweep and never renews its lease, and once the lease
// its first Add gave it runs out, nodes that sweep through SweepNode report
// its expired sessions as node_lost although it lives.
type NodeSweeper interface {
	// SweepNode is Sweep, made by node l.Node, which it also proves live:
	// the node's lease is renewed to end l.TTL from now, on the Store's
	// clock.
	//
	// A session removed because its lease ran out (with no reason of its
	// own, such as a restart clearing it) is removed with ReasonNodeLost
	// when its node's lease had run out too, and the caller's own lease
	// had not (so the caller was live, and the Store reachable, while the
	// other node was silent); otherwise with ReasonExpired. The Offline
	// event follows. A node's lease never ends a session sooner: a
	// session still goes when its own lease runs out. A node's first Add
	// gives it a lease as long as that session's, so a node that dies
	// before its first sweep counts as lost too.
	SweepNode(ctx context.Context, l NodeLease) ([]Event, error)
}

// NodeLease is the liveness a node claims each time it sweeps: see
// NodeSweeper.
type NodeLease struct {
	// Node is the node that sweeps.
	Node string
	// TTL is how long from now, on the Store's clock, the node counts as
	// live without another SweepNode. It must be positive.
	TTL time.Duration
}

// Validate reports whether l is a node lease a Store may write: a valid
// node ID (ErrInvalidID) and a positive TTL (ErrInvalidArgument). Stores
// call it on every lease they are given.
func (l NodeLease) Validate() error {
	if err := ValidateID(l.Node); err != nil {
		return fmt.Errorf("node: %w", err)
	}
	if l.TTL <= 0 {
		return fmt.Errorf("%w: node lease ttl %v", ErrInvalidArgument, l.TTL)
	}
	return nil
}

// Lease describes a session's liveness as one node saw it.
//
// A Tracker writes every lease of a session with the same TTL + Age, its
// Config.TTL + SweepInterval (see Span), so that a session's deadline stays
// a fixed span after its last beat. A Store may rely on that to make a
// refresh cheap (store/redis then moves the deadline alone and reads the
// last beat back as deadline - span), but must still take a lease with
// another span as it comes: its last-seen time is now-Age all the same.
type Lease struct {
	ClientID  string
	SessionID string
	// Node is the node that owns the session.
	Node string
	// TTL is how long from now, on the Store's clock, the session stays live
	// without another Add or Touch. It must be positive.
	TTL time.Duration
	// Age is how long ago the session's last beat happened. The Store
	// reports now-Age as the session's last-seen time, unless it holds a
	// later one: an older beat, from a write delayed or reordered, moves
	// nothing back.
	Age time.Duration
	// MaxSessions caps, for Add only, the client's live sessions across
	// the Store (see Store.Add); Touch ignores it. It must not be negative.
	// Zero: no cap.
	MaxSessions int
	// Rooms, for Add only, are rooms the session joins in the same atomic
	// step (see RoomStore); at most MaxRoomsPerSession, each valid
	// (ValidateRoom). A Store without rooms refuses a lease with rooms
	// (ErrInvalidArgument). Touch ignores them.
	Rooms []string
	// Meta, for Add only, sets the session's metadata (see RoomStore and
	// ValidateMeta); empty leaves it as it is. Touch ignores it.
	Meta json.RawMessage
	// Activity and IdleFor, for Add only, are the session's activity as
	// SetActivity records it (see StateStore); empty is ActivityActive. A
	// Store without states refuses ActivityAway (ErrInvalidArgument).
	// Touch ignores them.
	Activity Activity
	IdleFor  time.Duration
}

// Span is TTL + Age: how long after the session's last beat its lease
// ends. Every lease a Tracker writes of one session has the same Span.
func (l Lease) Span() time.Duration { return l.TTL + l.Age }

// Validate reports whether l is a lease a Store may write: valid IDs
// (ErrInvalidID), a positive TTL, and an Age and MaxSessions not below
// zero (ErrInvalidArgument). Stores call it on every lease they are given.
func (l Lease) Validate() error {
	if err := ValidateID(l.ClientID); err != nil {
		return fmt.Errorf("client: %w", err)
	}
	if err := ValidateID(l.SessionID); err != nil {
		return fmt.Errorf("session: %w", err)
	}
	if err := ValidateID(l.Node); err != nil {
		return fmt.Errorf("node: %w", err)
	}
	if l.TTL <= 0 || l.Age < 0 {
		return fmt.Errorf("%w: lease ttl %v age %v", ErrInvalidArgument, l.TTL, l.Age)
	}
	if l.MaxSessions < 0 {
		return fmt.Errorf("%w: lease max sessions %d", ErrInvalidArgument, l.MaxSessions)
	}
	if len(l.Rooms) > MaxRoomsPerSession {
		return fmt.Errorf("%w: lease joins %d rooms, more than %d", ErrInvalidArgument, len(l.Rooms), MaxRoomsPerSession)
	}
	for _, r := range l.Rooms {
		if err := ValidateRoom(r); err != nil {
			return err
		}
	}
	if err := validActivity(l.Activity, l.IdleFor); err != nil {
		return err
	}
	return ValidateMeta(l.Meta)
}

// Gone names a session, from a Touch, that the Store no longer holds as live.
type Gone struct {
	// Index is the position of the session in the slice passed to Touch.
	Index int
	// Reason is why the session ended, when the Store still knows it;
	// otherwise ReasonExpired.
	Reason Reason
}

// Ending selects the sessions End ends: one session (ClientID and
// SessionID), all sessions of a client (ClientID), or all sessions a node
// owns (Node alone).
type Ending struct {
	ClientID  string
	SessionID string
	Node      string
	// Reason is recorded on the sessions and reported on the Offline event
	// if one follows. It also decides the sessions' last-seen time (see
	// Store.End and Reason.Unseen). Empty means ReasonClosed.
	Reason Reason
	// Grace is how long the sessions linger before they count as gone. A
	// session already ending keeps the earlier of its deadline and the new
	// one.
	Grace time.Duration
}

// Validate reports whether e selects something with valid IDs: a client
// (and maybe one of its sessions) or a node (ErrInvalidID,
// ErrInvalidArgument). Stores call it on every Ending they are given.
func (e Ending) Validate() error {
	switch {
	case e.ClientID != "":
		if err := ValidateID(e.ClientID); err != nil {
			return fmt.Errorf("end client: %w", err)
		}
		if e.SessionID != "" {
			if err := ValidateID(e.SessionID); err != nil {
				return fmt.Errorf("end session: %w", err)
			}
		}
	case e.SessionID != "":
		return fmt.Errorf("%w: end session %q without its client", ErrInvalidArgument, e.SessionID)
	case e.Node != "":
		if err := ValidateID(e.Node); err != nil {
			return fmt.Errorf("end node: %w", err)
		}
	default:
		return fmt.Errorf("%w: end selects nothing", ErrInvalidArgument)
	}
	return nil
}

// Presence is the state of one client.
type Presence struct {
	ClientID string
	// Online reports whether the client has a session, ending ones included.
	Online bool
	// Since is when the client came online; zero while offline.
	Since time.Time
	// LastSeen is the latest beat of any of the client's sessions, or when
	// it went offline. Zero for a client never seen or already forgotten.
	LastSeen time.Time
	// Sessions counts the client's sessions, ending ones included.
	Sessions int
	// State is StateOnline, StateAway or StateOffline (a Store without
	// states reports StateOnline for every online client).
	State State
	// LastActive is when the client was last active (see StateStore);
	// zero from a Store without states.
	LastActive time.Time
}

// SessionInfo describes one session of a client.
type SessionInfo struct {
	ClientID string
	ID       string
	Node     string
	// LastSeen is the session's latest beat as written to the Store, or
	// when it ended.
	LastSeen time.Time
	// Ending reports a session that ended and lingers through its grace.
	Ending bool
	// Reason is why an ending session ended.
	Reason Reason
	// Rooms are the rooms the session is in, sorted (a RoomStore's only).
	Rooms []string
	// Meta is the session's metadata (a RoomStore's only).
	Meta json.RawMessage
	// Activity is the session's activity (a StateStore's only; empty
	// otherwise) and LastActive its last active time.
	Activity   Activity
	LastActive time.Time
}

// Page is one page of online clients from List.
type Page struct {
	Clients []Presence
	// Next is the cursor of the following page; empty after the last one.
	Next string
}

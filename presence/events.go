package presence

import (
	"encoding/json"
	"strconv"
	"time"
)

// Transition says which way a client's presence changed.
type Transition uint8

// The transitions.
const (
	Online Transition = iota + 1
	Offline
	// Join: a client entered a room (its first session there).
	Join
	// Leave: a client left a room (its last session there is gone).
	Leave
	// Update: a session in a room set new metadata; one event per room
	// the session is in.
	Update
	// Away: an online client's last active session went away (see
	// StateStore).
	Away
	// Back: an away client has an active session again.
	Back
)

// String returns "online", "offline", "join", "leave", "update", "away"
// or "back".
func (t Transition) String() string {
	switch t {
	case Online:
		return "online"
	case Offline:
		return "offline"
	case Join:
		return "join"
	case Leave:
		return "leave"
	case Update:
		return "update"
	case Away:
		return "away"
	case Back:
		return "back"
	}
	return "transition(" + strconv.Itoa(int(t)) + ")"
}

// Reason says why a session ended, and so why a client went offline.
type Reason string

// The reasons a session ends. Stores and transports may record others; these
// are the ones vigil itself uses.
const (
	// ReasonConnect is the reason of every Online event.
	ReasonConnect Reason = "connect"
	// ReasonClosed: the connection closed (the client closed it, or the
	// application's handler returned).
	ReasonClosed Reason = "closed"
	// ReasonLeft: the client said it was leaving (an HTTP-heartbeat page
	// sent its leave request on unload).
	ReasonLeft Reason = "left"
	// ReasonExpired: no beat arrived for TTL (the peer died, or stopped
	// answering). Such a session goes at once, without Grace: it is already
	// a TTL past its last beat.
	ReasonExpired Reason = "expired"
	// ReasonIdle: the client sent no application message for the idle
	// timeout and the server closed the session.
	ReasonIdle Reason = "idle"
	// ReasonShutdown: the node shut down gracefully and closed its sessions.
	ReasonShutdown Reason = "shutdown"
	// ReasonRestart: the node that owned the session restarted with the
	// same node ID and cleared what its previous process left.
	ReasonRestart Reason = "restart"
	// ReasonNodeLost: the session expired because the node that owned it
	// is gone: it stopped calling the Store (it died, or lost its link to
	// the Store) and another node swept the session once its lease ran
	// out. A Store that keeps node leases (NodeSweeper: both of vigil's)
	// reports it instead of ReasonExpired; like an expired session, it
	// goes at once, a TTL past its last beat. A node that restarts with
	// the same node ID reports what its previous process left as
	// ReasonRestart instead.
	ReasonNodeLost Reason = "node_lost"
	// ReasonKicked: the application kicked the client or the session.
	ReasonKicked Reason = "kicked"
)

// Unseen reports whether a session that ends for r ended unseen: the
// client stopped beating (ReasonExpired) or its node went away
// (ReasonNodeLost, ReasonRestart), so nobody saw it go. A Store keeps such a
// session's last beat as its last-seen time; for every other reason,
// including ones vigil does not define, the client was there until the
// session ended and the Store records the end time (see Store.End).
func (r Reason) Unseen() bool {
	return r == ReasonExpired || r == ReasonNodeLost || r == ReasonRestart
}

// Event is one transition of one client: Online and Offline, and, in a
// RoomStore, Join, Leave and Update of one room. Exactly one Event is produced for
// each change, across all nodes sharing a Store.
type Event struct {
	ClientID   string
	Transition Transition
	// Reason is ReasonConnect for Online and Join, and for Offline and
	// Leave the reason the client's last session (in the room) ended, or
	// left it (ReasonLeft, or the reason Leave was given). Empty for
	// Update. For Away and Back: ReasonConnect when a session's Add
	// caused it, the reason the session ended for an Away its removal
	// caused, empty when SetActivity did.
	Reason Reason
	// Time is when the Store decided the transition, on the Store's clock.
	Time time.Time
	// LastSeen is the client's latest beat (for Online and Join, Time;
	// for Leave, the latest beat of its sessions in the room, or when the
	// last of them ended, as for Offline).
	LastSeen time.Time
	// OnlineFor is how long the client was online: from its Online to
	// LastSeen, the end of its last session or its last beat, whichever
	// came later. The Grace a closed session lingered through, or the TTL
	// an expired one went without a beat, is not counted: a client
	// connected for 6s and closed is online for 6s, though its Offline
	// fires a Grace later. Set for Offline only.
	OnlineFor time.Duration
	// Node is the node that observed the transition and ran its hooks.
	Node string
	// SessionID is the session whose arrival or departure (or, for
	// Update, new metadata) caused it.
	SessionID string
	// Seq numbers the client's transitions, of every kind and room: it
	// grows by one with each, so consumers can order events and drop
	// duplicates. It is an
	// increasing sequence per client, not a count: a Store starts a client
	// it has no record of from its clock (store/memory near 6·10^12 in
	// 2026), so that Seq never goes back for a client it forgot.
	Seq uint64
	// Room is the room of a Join, Leave or Update; empty for Online and
	// Offline.
	Room string
	// Meta is, for Join, the metadata of the session that joined and, for
	// Update, the session's new metadata (empty: it has none).
	Meta json.RawMessage
}

// ID returns a key that identifies the transition: the client ID and Seq.
// Use it to de-duplicate deliveries.
func (e Event) ID() string {
	return e.ClientID + "#" + strconv.FormatUint(e.Seq, 10)
}

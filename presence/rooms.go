package presence

import (
	"context"
	"encoding/json"
	"fmt"
	"time"
)

// Rooms: a session joins rooms (topics, channels); a client is in a room
// while at least one of its sessions (ending ones included, as for
// presence) is. The Store decides Join, Leave and Update transitions
// exactly once across nodes, numbered in the client's one Seq with its
// Online and Offline: a client's Joins come after its Online, its Leaves
// before its Offline.

// MaxMetaLen is the largest session metadata, in bytes.
const MaxMetaLen = 1024

// MaxRoomsPerSession is the most rooms one session may be in at once.
const MaxRoomsPerSession = 64

// ValidateRoom checks a room name. Room names follow the rules of client IDs
// (ValidateID: one validator for every name vigil stores); the error wraps
// ErrInvalidID.
func ValidateRoom(room string) error {
	if err := ValidateID(room); err != nil {
		return fmt.Errorf("room: %w", err)
	}
	return nil
}

// ValidateMeta checks session metadata: empty (no metadata), or one JSON
// value of at most MaxMetaLen bytes. The error wraps ErrInvalidArgument.
func ValidateMeta(meta json.RawMessage) error {
	if len(meta) == 0 {
		return nil
	}
	if len(meta) > MaxMetaLen {
		return fmt.Errorf("%w: metadata of %d bytes, more than %d", ErrInvalidArgument, len(meta), MaxMetaLen)
	}
	if !json.Valid(meta) {
		return fmt.Errorf("%w: metadata is not one JSON value", ErrInvalidArgument)
	}
	return nil
}

// RoomStore is an optional ability of a Store, found by type assertion: it
// keeps which sessions are in which rooms, with each session's metadata.
// Both of vigil's stores have it; store/storetest checks every rule below
// on the stores that have it. A Tracker over a Store without it fails room
// calls with an error wrapping errors.ErrUnsupported.
//
// Membership rides on sessions, so the Store methods a RoomStore has as a
// Store change too:
//
//   - Add with l.Rooms joins the session to each (as Join would) and with
//     l.Meta sets its metadata (as SetMeta would), in the same atomic step:
//     the Online event (if any) comes first, then the Join events, then
//     the Update events.
//   - A session that ends stays in its rooms while it lingers through its
//     grace; when it is removed (End without grace, Sweep, SweepNode),
//     each room it was in that no other session of its client is in gets a
//     Leave event with the session's reason, before the client's Offline.
//   - Touch refreshes a session and never its memberships one by one: its
//     cost does not grow with the rooms a session is in.
//   - Sessions reports each session's Rooms and Meta.
type RoomStore interface {
	Store

	// Join puts a live session in a room. It returns a Join event when no
	// session of the client (ending ones included) was in the room. Joining
	// a room the session is already in changes nothing. A session the
	// Store does not hold as live (unknown, or ending): ErrNotFound. A
	// session already in MaxRoomsPerSession rooms: ErrLimit.
	Join(ctx context.Context, m Membership) ([]Event, error)

	// Leave takes a session out of a room. It returns a Leave event, with
	// m.Reason (ReasonLeft if empty), when no other session of the client
	// is in the room. A session that is not in the room: ErrNotFound.
	Leave(ctx context.Context, m Membership) ([]Event, error)

	// SetMeta replaces a live session's metadata (empty: none). It returns
	// one Update event for each room the session is in, carrying the new
	// metadata, unless the metadata is unchanged. A session the Store does
	// not hold as live: ErrNotFound.
	SetMeta(ctx context.Context, m SessionMeta) ([]Event, error)

	// Members pages through the clients in a room. An empty cursor starts
	// the walk; MemberPage.Next is empty after the last page. A client in
	// the room for the whole walk appears exactly once. limit must be
	// positive. A room nobody is in has no members (not an error).
	Members(ctx context.Context, room, cursor string, limit int) (MemberPage, error)

	// RoomCount reports how many clients are in a room.
	RoomCount(ctx context.Context, room string) (int, error)

	// ClientRooms lists the rooms a client is in, sorted.
	ClientRooms(ctx context.Context, clientID string) ([]string, error)

	// MembersAmong reports, for each client ID in the order given (at most
	// MaxLookup), whether it is in the room: a Member with In set and its
	// sessions' metadata, or, for a client not in it, In false and
	// LastSeen when it last left the room (zero if the Store does not
	// remember: a Store remembers it as long as it remembers the client).
	MembersAmong(ctx context.Context, room string, clientIDs []string) ([]Member, error)
}

// Membership names one session's membership of one room.
type Membership struct {
	ClientID  string
	SessionID string
	Room      string
	// Reason is reported on a Leave event (Leave only); empty means
	// ReasonLeft.
	Reason Reason
}

// Validate reports whether m names a session and a room with valid IDs
// (ErrInvalidID). Stores call it on every Membership they are given.
func (m Membership) Validate() error {
	if err := ValidateID(m.ClientID); err != nil {
		return fmt.Errorf("client: %w", err)
	}
	if err := ValidateID(m.SessionID); err != nil {
		return fmt.Errorf("session: %w", err)
	}
	return ValidateRoom(m.Room)
}

// SessionMeta sets one session's metadata.
type SessionMeta struct {
	ClientID  string
	SessionID string
	// Meta is the new metadata: one JSON value of at most MaxMetaLen
	// bytes, or empty for none.
	Meta json.RawMessage
}

// Validate reports whether m names a session with valid IDs (ErrInvalidID)
// and carries valid metadata (ErrInvalidArgument).
func (m SessionMeta) Validate() error {
	if err := ValidateID(m.ClientID); err != nil {
		return fmt.Errorf("client: %w", err)
	}
	if err := ValidateID(m.SessionID); err != nil {
		return fmt.Errorf("session: %w", err)
	}
	return ValidateMeta(m.Meta)
}

// Member is one client in a room (or, from MembersAmong, a client that is
// not, with In false).
type Member struct {
	ClientID string
	// In reports whether the client is in the room. Members lists only
	// clients that are.
	In bool
	// Sessions counts the client's sessions in the room, ending ones
	// included.
	Sessions int
	// Metas holds the metadata of those sessions that have any, ordered
	// by when each was last set (at Add or SetMeta), oldest first (as
	// Phoenix's metas).
	Metas []json.RawMessage
	// Since is when the client joined the room; zero if not in it.
	Since time.Time
	// LastSeen is the latest beat of the client's sessions in the room;
	// for a client not in it, when it left (zero if not remembered).
	LastSeen time.Time
	// State and LastActive are the client's (see Presence), for a
	// client in the room, from a Store that is also a StateStore.
	State      State
	LastActive time.Time
}

// Meta returns the client's one metadata value in the room: the one set
// most recently (the last of Metas), or nil if no session has any.
func (m Member) Meta() json.RawMessage {
	if len(m.Metas) == 0 {
		return nil
	}
	return m.Metas[len(m.Metas)-1]
}

// MemberPage is one page of a room's members.
type MemberPage struct {
	Room    string
	Members []Member
	// Next is the cursor of the following page; empty after the last one.
	Next string
}

package presence

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"
)

// sessionRooms is what a Tracker keeps of a session's rooms and metadata,
// for sessions that have any: what the session's Add carries when it is
// recorded (or recorded again, after the Store was unreachable).
type sessionRooms struct {
	rooms []string // sorted
	meta  json.RawMessage
	// activity and idleFor as SetActivity last set them; the idle time
	// counts from idleAt (Tracker.now()), so that an Add made later
	// carries it grown.
	activity Activity
	idleFor  time.Duration
	idleAt   int64
}

// dropRevivedRooms makes a session the Store revived match what its Add
// asked for. A session with the ID of one that ends and lingers in the Store
// (an HTTP-heartbeat tab that reloads within Grace) revives it, rooms and
// metadata included, and Add only joins rooms: without this, a tab that
// reloads into another room would stay in the old one, a member nobody can
// take out, for as long as it lives. So after the Add of a session with an
// application-given ID that brought its client no Online (and so may have
// revived one), it leaves the rooms l did not ask for (ReasonLeft) and
// clears metadata l did not set. It runs under the client's stripe, inside
// Add's call, and returns the events to queue after Add's. A failure is
// logged, not returned: the session is recorded, and the rooms go when it
// ends.
func (t *Tracker) dropRevivedRooms(ctx context.Context, s *Session, l Lease) []Event {
	rs, ok := t.store.(RoomStore)
	if !ok {
		return nil
	}
	start := time.Now()
	infos, err := rs.Sessions(ctx, s.clientID)
	t.observed("sessions", start, err)
	i := slices.IndexFunc(infos, func(in SessionInfo) bool { return in.ID == s.id })
	if err != nil || i < 0 {
		return nil
	}
	var evs []Event
	fail := func(op string, err error) {
		t.log.LogAttrs(ctx, slog.LevelWarn, "presence: revived session keeps what its Add did not ask for",
			slog.String("op", op), slog.Any("err", err), slog.String("client_id", s.clientID), slog.String("session_id", s.id))
	}
	for _, room := range infos[i].Rooms {
		if slices.Contains(l.Rooms, room) {
			continue
		}
		start := time.Now()
		got, err := rs.Leave(ctx, Membership{ClientID: s.clientID, SessionID: s.id, Room: room, Reason: ReasonLeft})
		t.observed("leave", start, err)
		if err != nil && !errors.Is(err, ErrNotFound) {
			fail("leave", err)
			return evs
		}
		evs = append(evs, got...)
	}
	if len(l.Meta) == 0 && len(infos[i].Meta) > 0 {
		start := time.Now()
		got, err := rs.SetMeta(ctx, SessionMeta{ClientID: s.clientID, SessionID: s.id})
		t.observed("set_meta", start, err)
		if err != nil {
			fail("set_meta", err)
		}
		evs = append(evs, got...)
	}
	return evs
}

// HasRooms reports whether the Tracker's Store keeps rooms (is a
// RoomStore): without, room calls fail with an error wrapping
// errors.ErrUnsupported.
func (t *Tracker) HasRooms() bool {
	_, ok := t.store.(RoomStore)
	return ok
}

// roomStore returns the Store as a RoomStore, or an error wrapping
// errors.ErrUnsupported.
func (t *Tracker) roomStore() (RoomStore, error) {
	rs, ok := t.store.(RoomStore)
	if !ok {
		return nil, fmt.Errorf("presence: store %T keeps no rooms: %w", t.store, errors.ErrUnsupported)
	}
	return rs, nil
}

// newSessionRooms checks a new session's rooms, metadata and activity.
func (t *Tracker) newSessionRooms(rooms []string, meta json.RawMessage, a Activity, idleFor time.Duration) (*sessionRooms, error) {
	if len(rooms) > 0 || len(meta) > 0 {
		if _, err := t.roomStore(); err != nil {
			return nil, err
		}
	}
	if err := ValidateMeta(meta); err != nil {
		return nil, err
	}
	if err := validActivity(a, idleFor); err != nil {
		return nil, err
	}
	d := &sessionRooms{meta: slices.Clone(meta), activity: a}
	if a == ActivityAway {
		if _, err := t.stateStore(); err != nil {
			return nil, err
		}
		d.idleFor, d.idleAt = idleFor, t.now()
	}
	for _, r := range rooms {
		if err := ValidateRoom(r); err != nil {
			return nil, err
		}
		if i, found := slices.BinarySearch(d.rooms, r); !found {
			d.rooms = slices.Insert(d.rooms, i, r)
		}
	}
	if len(d.rooms) > MaxRoomsPerSession {
		return nil, fmt.Errorf("%w: %d rooms, more than %d", ErrLimit, len(d.rooms), MaxRoomsPerSession)
	}
	return d, nil
}

// apply joins a session Connect found again to d's rooms, and sets d's
// metadata if any, and its activity if given and not the session's.
func (s *Session) apply(ctx context.Context, d *sessionRooms) error {
	if d == nil {
		return nil
	}
	in := s.Rooms() // read once: a Join for a room the session is in still takes its locks
	for _, r := range d.rooms {
		if _, found := slices.BinarySearch(in, r); found {
			continue
		}
		if err := s.Join(ctx, r); err != nil {
			return err
		}
	}
	if len(d.meta) > 0 && string(d.meta) != string(s.Meta()) {
		if err := s.SetMeta(ctx, d.meta); err != nil {
			return err
		}
	}
	// Only a change: a page beating with the activity it has costs no
	// Store call.
	if d.activity != "" && d.activity != s.Activity() {
		return s.SetActivity(ctx, d.activity, d.idleFor)
	}
	return nil
}

// Rooms returns the rooms the session is in, sorted.
func (s *Session) Rooms() []string {
	t := s.t
	t.localMu.Lock()
	defer t.localMu.Unlock()
	if d := t.roomsOf[s]; d != nil {
		return slices.Clone(d.rooms)
	}
	return nil
}

// Meta returns the session's metadata.
func (s *Session) Meta() json.RawMessage {
	t := s.t
	t.localMu.Lock()
	defer t.localMu.Unlock()
	if d := t.roomsOf[s]; d != nil {
		return slices.Clone(d.meta)
	}
	return nil
}

// Join puts the session in room; the client joins the room (a Join event,
// decided by the Store once across nodes) unless another of its sessions
// is in it already. Joining a room the session is in does nothing. A
// session the Store has not recorded yet (it was unreachable) joins when it
// is recorded, in the same Store step.
//
// The application decides who may join what: call Join from the handler
// that authorized the client. It fails with ErrInvalidID (a room name that
// ValidateRoom rejects), ErrLimit (the session is in MaxRoomsPerSession
// rooms), ErrNotFound (the session ended), an error wrapping
// errors.ErrUnsupported (the Store keeps no rooms), or the Store's error.
// A failed Join changes nothing the Tracker keeps; it is not retried.
func (s *Session) Join(ctx context.Context, room string) error {
	if err := ValidateRoom(room); err != nil {
		return fmt.Errorf("presence: join: %w", err)
	}
	rs, err := s.t.roomStore()
	if err != nil {
		return err
	}
	return s.sessionCall(ctx, "join", func(d *sessionRooms, live bool) error {
		i, found := slices.BinarySearch(d.rooms, room)
		if found {
			return nil
		}
		if len(d.rooms) >= MaxRoomsPerSession {
			return fmt.Errorf("%w: session in %d rooms already", ErrLimit, len(d.rooms))
		}
		if live {
			if _, err := s.t.roomOp(ctx, s.clientID, "join", func() ([]Event, error) {
				return rs.Join(ctx, Membership{ClientID: s.clientID, SessionID: s.id, Room: room})
			}); err != nil {
				return err
			}
		}
		d.rooms = slices.Insert(d.rooms, i, room)
		return nil
	})
}

// Leave takes the session out of room; the client leaves the room (a
// Leave event with ReasonLeft) unless another of its sessions is in it.
// Leaving a room the session is not in fails with ErrNotFound. A session
// leaves its rooms by itself when it ends (see RoomStore).
func (s *Session) Leave(ctx context.Context, room string) error {
	if err := ValidateRoom(room); err != nil {
		return fmt.Errorf("presence: leave: %w", err)
	}
	rs, err := s.t.roomStore()
	if err != nil {
		return err
	}
	return s.sessionCall(ctx, "leave", func(d *sessionRooms, live bool) error {
		i, found := slices.BinarySearch(d.rooms, room)
		if !found {
			return fmt.Errorf("%w: session not in room %q", ErrNotFound, room)
		}
		if live {
			_, err := s.t.roomOp(ctx, s.clientID, "leave", func() ([]Event, error) {
				return rs.Leave(ctx, Membership{ClientID: s.clientID, SessionID: s.id, Room: room, Reason: ReasonLeft})
			})
			if err != nil && !errors.Is(err, ErrNotFound) {
				return err
			}
		}
		d.rooms = slices.Delete(d.rooms, i, i+1)
		return nil
	})
}

// SetMeta replaces the session's metadata (empty: none): one JSON value of
// at most MaxMetaLen bytes (ErrInvalidArgument otherwise). Each room the
// session is in gets an Update event, never a Leave and a Join; unchanged
// metadata fires nothing. A client's metadata in a room is its sessions'
// (Member.Metas; Member.Meta is the latest).
func (s *Session) SetMeta(ctx context.Context, meta json.RawMessage) error {
	if err := ValidateMeta(meta); err != nil {
		return fmt.Errorf("presence: set metadata: %w", err)
	}
	meta = slices.Clone(meta)
	rs, err := s.t.roomStore()
	if err != nil {
		return err
	}
	return s.sessionCall(ctx, "set metadata", func(d *sessionRooms, live bool) error {
		if live {
			if _, err := s.t.roomOp(ctx, s.clientID, "set_meta", func() ([]Event, error) {
				return rs.SetMeta(ctx, SessionMeta{ClientID: s.clientID, SessionID: s.id, Meta: meta})
			}); err != nil {
				return err
			}
		}
		d.meta = meta
		return nil
	})
}

// sessionCall runs op on a copy of the session's rooms, metadata and
// activity under its client's stripe, which orders it with the session's
// Add (see Tracker.add): op calls the Store when the session is live, and
// only changes d when it is still pending (its Add carries d). localMu is
// not held while op calls the Store; the stripe keeps d to this call.
func (s *Session) sessionCall(ctx context.Context, what string, op func(d *sessionRooms, live bool) error) error {
	t := s.t
	mu := &t.stripes[t.stripe(s.clientID)]
	mu.Lock()
	defer mu.Unlock()
	t.localMu.Lock()
	if s.state == stateEnded {
		t.localMu.Unlock()
		return fmt.Errorf("presence: %s: session %q of %q: %w: it ended", what, s.id, s.clientID, ErrNotFound)
	}
	live := s.state == stateLive
	d := t.roomsOf[s]
	work := &sessionRooms{}
	if d != nil {
		*work = *d
		work.rooms = slices.Clone(d.rooms)
	}
	t.localMu.Unlock()
	if err := op(work, live); err != nil {
		if errors.Is(err, errors.ErrUnsupported) || errors.Is(err, ErrNotFound) || errors.Is(err, ErrLimit) {
			return fmt.Errorf("presence: %s: %w", what, err)
		}
		return fmt.Errorf("presence: %s: session %q of %q: %w", what, s.id, s.clientID, err)
	}
	t.localMu.Lock()
	defer t.localMu.Unlock()
	if s.state == stateEnded {
		return nil // it ended meanwhile: the Store takes it out of its rooms
	}
	if t.roomsOf == nil {
		t.roomsOf = make(map[*Session]*sessionRooms)
	}
	t.roomsOf[s] = work
	return nil
}

// roomOp runs one room call of the Store for clientID; the caller holds the
// client's stripe, so its events queue as clientCall's do.
func (t *Tracker) roomOp(ctx context.Context, clientID, op string, fn func() ([]Event, error)) ([]Event, error) {
	start := time.Now()
	evs, err := fn()
	t.observed(op, start, err)
	t.queueClient(ctx, t.stripe(clientID), evs)
	return evs, err
}

// Members returns one page of at most limit members of room, from cursor
// (empty for the first page), with their sessions' metadata.
func (t *Tracker) Members(ctx context.Context, room, cursor string, limit int) (MemberPage, error) {
	rs, err := t.roomQuery(room)
	if err != nil {
		return MemberPage{}, err
	}
	if limit <= 0 {
		return MemberPage{}, fmt.Errorf("%w: page limit %d", ErrInvalidArgument, limit)
	}
	start := time.Now()
	p, err := rs.Members(ctx, room, cursor, limit)
	t.observed("members", start, err)
	fillMemberStates(p.Members)
	return p, err
}

// RoomCount returns how many clients are in room, on all nodes.
func (t *Tracker) RoomCount(ctx context.Context, room string) (int, error) {
	rs, err := t.roomQuery(room)
	if err != nil {
		return 0, err
	}
	start := time.Now()
	n, err := rs.RoomCount(ctx, room)
	t.observed("room_count", start, err)
	return n, err
}

// MembersAmong reports, for up to MaxLookup client IDs in the order given,
// whether each is in room, with its metadata there, or when it last left.
func (t *Tracker) MembersAmong(ctx context.Context, room string, clientIDs []string) ([]Member, error) {
	rs, err := t.roomQuery(room)
	if err != nil {
		return nil, err
	}
	if len(clientIDs) > MaxLookup {
		return nil, fmt.Errorf("%w: %d ids in one lookup, more than %d", ErrInvalidArgument, len(clientIDs), MaxLookup)
	}
	for _, id := range clientIDs {
		if err := ValidateID(id); err != nil {
			return nil, fmt.Errorf("presence: members among: %w", err)
		}
	}
	start := time.Now()
	ms, err := rs.MembersAmong(ctx, room, clientIDs)
	t.observed("members_among", start, err)
	fillMemberStates(ms)
	return ms, err
}

// ClientRooms returns the rooms clientID is in, on all nodes, sorted.
func (t *Tracker) ClientRooms(ctx context.Context, clientID string) ([]string, error) {
	rs, err := t.roomStore()
	if err != nil {
		return nil, err
	}
	if err := ValidateID(clientID); err != nil {
		return nil, fmt.Errorf("presence: client rooms: %w", err)
	}
	start := time.Now()
	rooms, err := rs.ClientRooms(ctx, clientID)
	t.observed("client_rooms", start, err)
	return rooms, err
}

func (t *Tracker) roomQuery(room string) (RoomStore, error) {
	rs, err := t.roomStore()
	if err != nil {
		return nil, err
	}
	if err := ValidateRoom(room); err != nil {
		return nil, fmt.Errorf("presence: %w", err)
	}
	return rs, nil
}

package memory

import (
	"bytes"
	"cmp"
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/vigilhq/vigil/presence"
)

// maxLeftRooms is how many rooms a client's last-left times are kept for,
// most recent first: MembersAmong answers a zero LastSeen for older ones.
const maxLeftRooms = presence.MaxRoomsPerSession

// roomTable holds every room with a member. A room's name is interned
// once, in room.name; sessions hold the room's index in list, so that a
// million sessions in three rooms each cost a few bytes per membership.
type roomTable struct {
	idx  map[string]uint32 // room name -> index in list
	list []*room           // nil where free
	free []uint32          // free indices of list
	// metaTick orders the times sessions' metadata was set, so that
	// Member.Metas is ordered even between two calls at the same instant.
	metaTick uint64
	// left holds, for clients that left rooms, when they last left each
	// (at most maxLeftRooms, oldest first); forgotten with the client.
	left map[*client][]leftRoom
}

type room struct {
	name    string
	members map[*client]member
}

// member is one client's membership of a room.
type member struct {
	since int64  // now() when it joined
	seen  int64  // latest seen of its sessions that left the room
	n     uint32 // its sessions in the room, ending ones included
	h     uint32 // hash of the client's ID: Members' order
}

type leftRoom struct {
	room string // a room's interned name
	at   int64
}

// sessionRooms is a session's rooms and metadata.
type sessionRooms struct {
	rooms    []uint32 // indices in roomTable.list, in no order
	meta     json.RawMessage
	metaTick uint64 // when meta was last set
}

func (t *roomTable) init() {
	t.idx = make(map[string]uint32)
	t.left = make(map[*client][]leftRoom)
}

// intern returns the index of a room, made if nobody is in it.
func (t *roomTable) intern(name string) uint32 {
	if i, ok := t.idx[name]; ok {
		return i
	}
	r := &room{name: strings.Clone(name), members: make(map[*client]member, 1)}
	var i uint32
	if n := len(t.free); n > 0 {
		i = t.free[n-1]
		t.free = t.free[:n-1]
		t.list[i] = r
	} else {
		i = uint32(len(t.list))
		t.list = append(t.list, r)
	}
	t.idx[r.name] = i
	return i
}

// lookup returns a room with members, or nil.
func (t *roomTable) lookup(name string) (*room, uint32) {
	i, ok := t.idx[name]
	if !ok {
		return nil, 0
	}
	return t.list[i], i
}

func (t *roomTable) drop(i uint32) {
	delete(t.idx, t.list[i].name)
	t.list[i] = nil
	t.free = append(t.free, i)
}

// remember records that c left room at at.
func (t *roomTable) remember(c *client, room string, at int64) {
	l := t.left[c]
	if i := slices.IndexFunc(l, func(x leftRoom) bool { return x.room == room }); i >= 0 {
		l = slices.Delete(l, i, i+1)
	} else if len(l) == maxLeftRooms {
		l = slices.Delete(l, 0, 1)
	}
	t.left[c] = append(l, leftRoom{room: room, at: at})
}

func (t *roomTable) leftAt(c *client, room string) (int64, bool) {
	for _, x := range t.left[c] {
		if x.room == room {
			return x.at, true
		}
	}
	return 0, false
}

func (x *session) in(i uint32) bool {
	return x.rx != nil && slices.Contains(x.rx.rooms, i)
}

func (x *session) meta() json.RawMessage {
	if x.rx == nil {
		return nil
	}
	return x.rx.meta
}

// roomsByName returns the rooms x is in, sorted by name.
func (s *Store) roomsByName(x *session) []uint32 {
	if x.rx == nil || len(x.rx.rooms) == 0 {
		return nil
	}
	idx := slices.Clone(x.rx.rooms)
	slices.SortFunc(idx, func(a, b uint32) int { return cmp.Compare(s.rooms.list[a].name, s.rooms.list[b].name) })
	return idx
}

// enter applies the rooms and metadata of a lease to x, a session just
// added or refreshed, appending its events to evs: Joins, then Updates
// (of the rooms x was already in; a Join carries the new metadata). rooms
// is sorted and without duplicates; the caller checked the room limit.
func (s *Store) enter(evs []presence.Event, x *session, rooms []string, meta json.RawMessage, now int64) []presence.Event {
	changed := len(meta) > 0 && !bytes.Equal(meta, x.meta())
	var before []uint32
	if changed {
		before = s.roomsByName(x)
		s.setMeta(x, meta)
	}
	for _, r := range rooms {
		evs = s.join(evs, x, r, now)
	}
	if changed {
		evs = s.updates(evs, x, before, now)
	}
	return evs
}

// roomsAfter counts the rooms x would be in after joining rooms.
func roomsAfter(x *session, rooms []string, t *roomTable) int {
	n := 0
	if x.rx != nil {
		n = len(x.rx.rooms)
	}
	for _, r := range rooms {
		if i, ok := t.idx[r]; !ok || !x.in(i) {
			n++
		}
	}
	return n
}

func (s *Store) setMeta(x *session, meta json.RawMessage) {
	if x.rx == nil {
		x.rx = &sessionRooms{}
	}
	s.rooms.metaTick++
	x.rx.meta, x.rx.metaTick = slices.Clone(meta), s.rooms.metaTick
	if len(meta) == 0 {
		x.rx.meta = nil
		if len(x.rx.rooms) == 0 {
			x.rx = nil
		}
	}
}

// join puts x in a room, appending a Join if its client was not in it.
func (s *Store) join(evs []presence.Event, x *session, name string, now int64) []presence.Event {
	i := s.rooms.intern(name)
	if x.in(i) {
		return evs
	}
	if x.rx == nil {
		x.rx = &sessionRooms{}
	}
	x.rx.rooms = append(x.rx.rooms, i)
	r, c := s.rooms.list[i], x.c
	m, ok := r.members[c]
	m.n++
	if !ok {
		m.since, m.h = now, idHash(c.id)
	}
	r.members[c] = m
	if ok {
		return evs
	}
	c.sn += 1 << 16
	return append(evs, presence.Event{
		ClientID: c.id, Transition: presence.Join, Reason: presence.ReasonConnect,
		Time: s.wall(now), LastSeen: s.wall(now), SessionID: x.id, Seq: c.seq(),
		Room: r.name, Meta: slices.Clone(x.meta()),
	})
}

// leave takes x out of room i, appending a Leave with reason if no other
// session of its client is in it. seen is when x was last in the room.
func (s *Store) leave(evs []presence.Event, x *session, i uint32, reason presence.Reason, seen, now int64) []presence.Event {
	k := slices.Index(x.rx.rooms, i)
	last := len(x.rx.rooms) - 1
	x.rx.rooms[k] = x.rx.rooms[last]
	x.rx.rooms = x.rx.rooms[:last] // kept, though empty: a session that left a room may join another
	r, c := s.rooms.list[i], x.c
	m := r.members[c]
	m.n--
	m.seen = max(m.seen, seen)
	if m.n > 0 {
		r.members[c] = m
		return evs
	}
	delete(r.members, c)
	c.sn += 1 << 16
	evs = append(evs, presence.Event{
		ClientID: c.id, Transition: presence.Leave, Reason: reason,
		Time: s.wall(now), LastSeen: s.wall(m.seen), SessionID: x.id, Seq: c.seq(), Room: r.name,
	})
	s.rooms.remember(c, r.name, m.seen)
	if len(r.members) == 0 {
		s.rooms.drop(i)
	}
	return evs
}

// leaveAll takes x, a session being removed, out of every room, in name
// order.
func (s *Store) leaveAll(evs []presence.Event, x *session, reason presence.Reason, now int64) []presence.Event {
	for _, i := range s.roomsByName(x) {
		evs = s.leave(evs, x, i, reason, x.seen, now)
	}
	return evs
}

// updates appends an Update of x's metadata for each room of rooms.
func (s *Store) updates(evs []presence.Event, x *session, rooms []uint32, now int64) []presence.Event {
	c := x.c
	for _, i := range rooms {
		c.sn += 1 << 16
		evs = append(evs, presence.Event{
			ClientID: c.id, Transition: presence.Update,
			Time: s.wall(now), LastSeen: s.wall(c.seen), SessionID: x.id, Seq: c.seq(),
			Room: s.rooms.list[i].name, Meta: slices.Clone(x.meta()),
		})
	}
	return evs
}

// sortedRooms returns rooms sorted, without duplicates.
func sortedRooms(rooms []string) []string {
	if len(rooms) == 0 {
		return nil
	}
	rooms = slices.Clone(rooms)
	slices.Sort(rooms)
	return slices.Compact(rooms)
}

// roomSession finds a session for a room call.
func (s *Store) roomSession(clientID, sessionID string) *session {
	if c := s.get(clientID); c != nil {
		return c.find(sessionID)
	}
	return nil
}

// Join implements presence.RoomStore.
func (s *Store) Join(ctx context.Context, m presence.Membership) ([]presence.Event, error) {
	if err := m.Validate(); err != nil {
		return nil, fmt.Errorf("memory: join: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	x := s.roomSession(m.ClientID, m.SessionID)
	if x == nil || x.ending != 0 {
		return nil, fmt.Errorf("memory: join %q: session %q of %q: %w", m.Room, m.SessionID, m.ClientID, presence.ErrNotFound)
	}
	if i, ok := s.rooms.idx[m.Room]; ok && x.in(i) {
		return nil, nil
	}
	if x.rx != nil && len(x.rx.rooms) >= presence.MaxRoomsPerSession {
		return nil, fmt.Errorf("%w: memory: session %q of %q in %d rooms", presence.ErrLimit, m.SessionID, m.ClientID, len(x.rx.rooms))
	}
	return s.join(nil, x, m.Room, s.now()), nil
}

// Leave implements presence.RoomStore. An ending session may leave its
// rooms before it is removed.
func (s *Store) Leave(ctx context.Context, m presence.Membership) ([]presence.Event, error) {
	if err := m.Validate(); err != nil {
		return nil, fmt.Errorf("memory: leave: %w", err)
	}
	if m.Reason == "" {
		m.Reason = presence.ReasonLeft
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	x := s.roomSession(m.ClientID, m.SessionID)
	i, ok := s.rooms.idx[m.Room]
	if x == nil || !ok || !x.in(i) {
		return nil, fmt.Errorf("memory: leave %q: session %q of %q: %w", m.Room, m.SessionID, m.ClientID, presence.ErrNotFound)
	}
	now := s.now()
	seen := now // a live session was in the room until now
	if x.ending != 0 {
		seen = x.seen // an ending one until it ended
	}
	return s.leave(nil, x, i, m.Reason, seen, now), nil
}

// SetMeta implements presence.RoomStore.
func (s *Store) SetMeta(ctx context.Context, m presence.SessionMeta) ([]presence.Event, error) {
	if err := m.Validate(); err != nil {
		return nil, fmt.Errorf("memory: set metadata: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	x := s.roomSession(m.ClientID, m.SessionID)
	if x == nil || x.ending != 0 {
		return nil, fmt.Errorf("memory: set metadata: session %q of %q: %w", m.SessionID, m.ClientID, presence.ErrNotFound)
	}
	if bytes.Equal(m.Meta, x.meta()) {
		return nil, nil
	}
	s.setMeta(x, m.Meta)
	return s.updates(nil, x, s.roomsByName(x), s.now()), nil
}

func checkRoom(what, room string) error {
	if err := presence.ValidateRoom(room); err != nil {
		return fmt.Errorf("memory: %s: %w", what, err)
	}
	return nil
}

// Members implements presence.RoomStore. Members come in the order of a
// hash of their client ID (then the ID): a client keeps its place if it
// leaves and joins again, so a walk ends however busy the room, and lists
// no client twice. The cursor holds the hash and ID of the last one
// returned. A page costs a pass over the room's map, comparing the hashes
// kept there and reading no client but those of the page: about 2 ms,
// under the Store's lock, for 100,000 members.
func (s *Store) Members(ctx context.Context, room, cursor string, limit int) (presence.MemberPage, error) {
	if err := checkRoom("members", room); err != nil {
		return presence.MemberPage{}, err
	}
	if limit <= 0 {
		return presence.MemberPage{}, fmt.Errorf("%w: memory: page limit %d", presence.ErrInvalidArgument, limit)
	}
	after, err := decodeMemberCursor(cursor)
	if err != nil {
		return presence.MemberPage{}, err
	}
	page := presence.MemberPage{Room: room}
	s.mu.Lock()
	defer s.mu.Unlock()
	r, i := s.rooms.lookup(room)
	if r == nil {
		return page, nil
	}
	// The limit first members after the cursor, in a max-heap.
	top := make(memberHeap, 0, min(limit, len(r.members)))
	more := false
	for c, m := range r.members {
		k := memberKey{h: m.h, c: c}
		switch {
		case after.c != nil && !after.less(k):
		case len(top) < limit:
			top.push(k)
		default:
			more = true
			if k.less(top[0]) {
				top[0] = k
				top.down()
			}
		}
	}
	slices.SortFunc(top, func(a, b memberKey) int {
		if a.less(b) {
			return -1
		}
		return 1
	})
	for _, k := range top {
		page.Members = append(page.Members, s.member(k.c, i, r.members[k.c]))
	}
	if more {
		last := top[len(top)-1]
		b := binary.BigEndian.AppendUint32(nil, last.h)
		page.Next = base64.RawURLEncoding.EncodeToString(append(b, last.c.id...))
	}
	return page, nil
}

// memberKey orders a room's members: by hash of the client ID, then ID.
type memberKey struct {
	h uint32
	c *client // for a cursor, a client with only an ID
}

func (a memberKey) less(b memberKey) bool {
	if a.h != b.h {
		return a.h < b.h
	}
	return a.c.id < b.c.id
}

// idHash is FNV-1a of id.
func idHash(id string) uint32 {
	h := uint32(2166136261)
	for i := 0; i < len(id); i++ {
		h ^= uint32(id[i])
		h *= 16777619
	}
	return h
}

func decodeMemberCursor(cursor string) (memberKey, error) {
	if cursor == "" {
		return memberKey{}, nil
	}
	b, err := base64.RawURLEncoding.DecodeString(cursor)
	if err != nil || len(b) < 4 || presence.ValidateID(string(b[4:])) != nil {
		return memberKey{}, fmt.Errorf("%w: memory: unreadable cursor", presence.ErrInvalidArgument)
	}
	return memberKey{h: binary.BigEndian.Uint32(b), c: &client{id: string(b[4:])}}, nil
}

// memberHeap is a max-heap of member keys.
type memberHeap []memberKey

func (h *memberHeap) push(k memberKey) {
	*h = append(*h, k)
	a := *h
	for j := len(a) - 1; j > 0; {
		p := (j - 1) / 2
		if !a[p].less(a[j]) {
			break
		}
		a[p], a[j] = a[j], a[p]
		j = p
	}
}

func (h memberHeap) down() {
	for j := 0; ; {
		l, big := 2*j+1, j
		if l < len(h) && h[big].less(h[l]) {
			big = l
		}
		if l+1 < len(h) && h[big].less(h[l+1]) {
			big = l + 1
		}
		if big == j {
			return
		}
		h[j], h[big] = h[big], h[j]
		j = big
	}
}

// member describes c, a member of room i.
func (s *Store) member(c *client, i uint32, m member) presence.Member {
	out := presence.Member{ClientID: c.id, In: true, Sessions: int(m.n), Since: s.wall(m.since)}
	seen := m.seen
	var metas []*sessionRooms
	for x := c.head; x != nil; x = x.next {
		if !x.in(i) {
			continue
		}
		seen = max(seen, x.seen)
		if len(x.rx.meta) > 0 {
			metas = append(metas, x.rx)
		}
	}
	out.LastSeen = s.wall(seen)
	slices.SortFunc(metas, func(a, b *sessionRooms) int { return cmp.Compare(a.metaTick, b.metaTick) })
	for _, rx := range metas {
		out.Metas = append(out.Metas, slices.Clone(rx.meta))
	}
	return out
}

// RoomCount implements presence.RoomStore.
func (s *Store) RoomCount(ctx context.Context, room string) (int, error) {
	if err := checkRoom("room count", room); err != nil {
		return 0, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if r, _ := s.rooms.lookup(room); r != nil {
		return len(r.members), nil
	}
	return 0, nil
}

// ClientRooms implements presence.RoomStore. A client the Store does not
// know is in no room.
func (s *Store) ClientRooms(ctx context.Context, clientID string) ([]string, error) {
	if err := presence.ValidateID(clientID); err != nil {
		return nil, fmt.Errorf("memory: client rooms: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.get(clientID)
	if c == nil {
		return nil, nil
	}
	var out []string
	for x := c.head; x != nil; x = x.next {
		if x.rx != nil {
			for _, i := range x.rx.rooms {
				out = append(out, s.rooms.list[i].name)
			}
		}
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

// MembersAmong implements presence.RoomStore. A client's last-left time is
// kept for the maxLeftRooms (64) rooms it left most recently.
func (s *Store) MembersAmong(ctx context.Context, room string, clientIDs []string) ([]presence.Member, error) {
	if err := checkRoom("members among", room); err != nil {
		return nil, err
	}
	if len(clientIDs) > presence.MaxLookup {
		return nil, fmt.Errorf("%w: memory: %d ids in one lookup, more than %d", presence.ErrInvalidArgument, len(clientIDs), presence.MaxLookup)
	}
	for _, id := range clientIDs {
		if err := presence.ValidateID(id); err != nil {
			return nil, fmt.Errorf("memory: members among: %w", err)
		}
	}
	out := make([]presence.Member, len(clientIDs))
	s.mu.Lock()
	defer s.mu.Unlock()
	r, i := s.rooms.lookup(room)
	for k, id := range clientIDs {
		out[k].ClientID = id
		c := s.get(id)
		if c == nil {
			continue
		}
		if r != nil {
			if m, ok := r.members[c]; ok {
				out[k] = s.member(c, i, m)
				continue
			}
		}
		if at, ok := s.rooms.leftAt(c, room); ok {
			out[k].LastSeen = s.wall(at)
		}
	}
	return out, nil
}

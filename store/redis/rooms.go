package redis

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/vigilhq/vigil/presence"
)

// joinRooms returns the sorted union of have and more.
func joinRooms(have, more []string) []string {
	out := slices.Clone(have)
	for _, r := range more {
		if i, found := slices.BinarySearch(out, r); !found {
			out = slices.Insert(out, i, r)
		}
	}
	return out
}

// splitRooms reads a room list of a script reply ('\n' between rooms).
func splitRooms(v string) []string {
	if v == "" {
		return nil
	}
	return strings.Split(v, "\n")
}

// roomCall runs rooms.lua for one session: op, with room, reason and meta
// as the operation needs. It sends what this Store knows of the session,
// so that the script writes back the session, its rooms and metadata if
// Redis lost them (see "Data loss" in the package documentation), and
// records what the operation changed. It returns the script's status, and
// the transitions decided.
func (s *Store) roomCall(ctx context.Context, op, clientID, sessionID, room string, reason presence.Reason, meta string, act presence.SessionActivity) (int64, []presence.Event, error) {
	b := s.bucket(clientID)
	s.knownMu.Lock()
	k := s.known[clientID][sessionID]
	s.knownMu.Unlock()
	args := newArgv(nRoomsArgs).
		set(roomsArgOp, op).set(roomsArgClient, clientID).set(roomsArgSession, sessionID).
		set(roomsArgRoom, room).set(roomsArgReason, string(reason)).set(roomsArgMeta, meta).
		set(roomsArgNode, k.node).set(roomsArgTTL, k.ttl).set(roomsArgSpan, max(k.span, k.ttl)).
		set(roomsArgKnownGen, k.gen).set(roomsArgRoomsGen, k.rgen).
		set(roomsArgRooms, strings.Join(k.rooms, "\n")).set(roomsArgKnownMeta, k.meta).set(roomsArgStamp, k.stamp).
		set(roomsArgBucketGen, s.knownGen(b)).set(roomsArgReassert, s.reassertMS()).
		set(roomsArgConsumer, s.claimer()).set(roomsArgJournalLen, s.cfg.JournalLen).
		set(roomsArgActivity, "").set(roomsArgIdleFor, 0).withActivity(k)
	if op == roomsOpActivity {
		args.set(roomsArgActivity, activityArg(act.Activity)).set(roomsArgIdleFor, act.IdleFor.Milliseconds())
	}
	if k.node == "" {
		// Not a session this Store wrote: nothing to write back.
		args.set(roomsArgKnownGen, "").set(roomsArgRoomsGen, "")
	}
	v, err := scriptRooms.Run(ctx, s.rdb, s.buckets[b], args...).Slice()
	s.out.observe(ctx, err)
	if err == nil && len(v) < 3 {
		err = errReply
	}
	if err != nil {
		return 0, nil, err
	}
	gen, _ := v[0].(string)
	st, _ := v[1].(int64)
	stamp, _ := v[2].(int64)
	s.sawGen(b, gen)
	evs, err := s.events(b, v[3:])
	if st == roomsStatusOk {
		s.knownMu.Lock()
		if k, ok := s.known[clientID][sessionID]; ok {
			if k.gen != gen && k.reason == "" {
				k.gen = gen // re-created by the script
			}
			switch op {
			case roomsOpJoin:
				k.rooms = joinRooms(k.rooms, []string{room})
			case roomsOpLeave:
				if i, found := slices.BinarySearch(k.rooms, room); found {
					k.rooms = slices.Delete(slices.Clone(k.rooms), i, i+1)
				}
			case roomsOpMeta:
				k.meta, k.stamp = meta, stamp
			case roomsOpActivity:
				k.away, k.activeAt = act.Activity == presence.ActivityAway, time.Time{}
				if k.away {
					k.activeAt = time.Now().Add(-act.IdleFor)
				}
			}
			k.rgen = gen
			s.known[clientID][sessionID] = k
		}
		s.knownMu.Unlock()
	}
	return st, evs, err
}

// Join implements presence.RoomStore: one script call.
func (s *Store) Join(ctx context.Context, m presence.Membership) ([]presence.Event, error) {
	if err := m.Validate(); err != nil {
		return nil, fmt.Errorf("redis: join: %w", err)
	}
	st, evs, err := s.roomCall(ctx, roomsOpJoin, m.ClientID, m.SessionID, m.Room, "", "", presence.SessionActivity{})
	return evs, s.roomErr("join", m.ClientID, m.SessionID, m.Room, st, err)
}

// Leave implements presence.RoomStore: one script call.
func (s *Store) Leave(ctx context.Context, m presence.Membership) ([]presence.Event, error) {
	if err := m.Validate(); err != nil {
		return nil, fmt.Errorf("redis: leave: %w", err)
	}
	reason := m.Reason
	if reason == "" {
		reason = presence.ReasonLeft
	}
	st, evs, err := s.roomCall(ctx, roomsOpLeave, m.ClientID, m.SessionID, m.Room, reason, "", presence.SessionActivity{})
	return evs, s.roomErr("leave", m.ClientID, m.SessionID, m.Room, st, err)
}

// SetMeta implements presence.RoomStore: one script call.
func (s *Store) SetMeta(ctx context.Context, m presence.SessionMeta) ([]presence.Event, error) {
	if err := m.Validate(); err != nil {
		return nil, fmt.Errorf("redis: set metadata: %w", err)
	}
	st, evs, err := s.roomCall(ctx, roomsOpMeta, m.ClientID, m.SessionID, "", "", string(m.Meta), presence.SessionActivity{})
	return evs, s.roomErr("set metadata", m.ClientID, m.SessionID, "", st, err)
}

// roomErr is the error of a rooms.lua call that answered status st, or
// failed with err.
func (s *Store) roomErr(what, clientID, sessionID, room string, st int64, err error) error {
	name := fmt.Sprintf("client %q session %q", clientID, sessionID)
	if room != "" {
		name += fmt.Sprintf(" room %q", room)
	}
	if err != nil {
		return fmt.Errorf("redis: %s %s: %w", what, name, err)
	}
	switch st {
	case roomsStatusOk:
		return nil
	case roomsStatusNoSession:
		return fmt.Errorf("redis: %s %s: %w: no live session", what, name, presence.ErrNotFound)
	case roomsStatusNotIn:
		return fmt.Errorf("redis: %s %s: %w: the session is not in the room", what, name, presence.ErrNotFound)
	case roomsStatusLimit:
		return fmt.Errorf("redis: %s %s: %w: the session is in %d rooms", what, name, presence.ErrLimit, presence.MaxRoomsPerSession)
	}
	return fmt.Errorf("redis: %s %s: %w", what, name, errReply)
}

// reassertRooms writes back the rooms and metadata of this Store's live
// sessions in the buckets Redis lost (lost), one rooms.lua call each,
// pipelined; reassert calls it once the sessions themselves are back. It
// returns the transitions the calls decided (a hold the window left, that
// a call settled first).
func (s *Store) reassertRooms(ctx context.Context, lost map[int]bool) ([]presence.Event, error) {
	var ts []target
	s.knownMu.Lock()
	for c, m := range s.known {
		if !lost[s.bucket(c)] {
			continue
		}
		for sid, k := range m {
			if k.reason == "" && k.hasRooms() {
				ts = append(ts, target{c, sid})
			}
		}
	}
	s.knownMu.Unlock()
	return s.assertRooms(ctx, ts)
}

// withActivity sets, in the ARGV of a rooms.lua call, the session's
// activity as its Store knows it (k), which the script writes back with
// its rooms.
func (a argv) withActivity(k knownSession) argv {
	if !k.away {
		return a.set(roomsArgKnownActivity, "").set(roomsArgKnownIdleFor, 0)
	}
	return a.set(roomsArgKnownActivity, "away").set(roomsArgKnownIdleFor, max(0, time.Since(k.activeAt).Milliseconds()))
}

// target names a session.
type target struct{ client, session string }

// staleRooms lists the live sessions e selects whose rooms or metadata
// this Store last wrote in another generation of their bucket than the
// one it knows now: Redis lost them (a Touch may have re-created such a
// session, without its rooms), and End must write them back first, so
// that the session's end gives their Leaves. Usually none.
func (s *Store) staleRooms(e presence.Ending) []target {
	var ts []target
	s.knownMu.Lock()
	defer s.knownMu.Unlock()
	add := func(c string, m map[string]knownSession) {
		for sid, k := range m {
			if (e.Node == "" || k.node == e.Node) && k.reason == "" && k.hasRooms() && k.rgen != s.knownGen(s.bucket(c)) {
				ts = append(ts, target{c, sid})
			}
		}
	}
	if e.ClientID != "" {
		add(e.ClientID, s.known[e.ClientID])
		return ts
	}
	for c, m := range s.known {
		add(c, m)
	}
	return ts
}

// assertRooms writes back what this Store knows of the rooms and metadata
// of sessions ts (rooms.lua, op reassert), pipelined in batches.
func (s *Store) assertRooms(ctx context.Context, ts []target) ([]presence.Event, error) {
	if len(ts) == 0 {
		return nil, nil
	}
	var evs []presence.Event
	// One call each, but pipelined in batches: a data loss re-asserts
	// every session with rooms at once.
	const batch = 256
	for i := 0; i < len(ts); i += batch {
		part := ts[i:min(i+batch, len(ts))]
		calls := make([]call, len(part))
		for j, t := range part {
			b := s.bucket(t.client)
			s.knownMu.Lock()
			k := s.known[t.client][t.session]
			s.knownMu.Unlock()
			calls[j] = call{keys: s.buckets[b], args: newArgv(nRoomsArgs).
				set(roomsArgOp, roomsOpReassert).set(roomsArgClient, t.client).set(roomsArgSession, t.session).
				set(roomsArgRoom, "").set(roomsArgReason, "").set(roomsArgMeta, "").
				set(roomsArgNode, k.node).set(roomsArgTTL, k.ttl).set(roomsArgSpan, max(k.span, k.ttl)).
				set(roomsArgKnownGen, k.gen).set(roomsArgRoomsGen, k.rgen).
				set(roomsArgRooms, strings.Join(k.rooms, "\n")).set(roomsArgKnownMeta, k.meta).set(roomsArgStamp, k.stamp).
				set(roomsArgBucketGen, s.knownGen(b)).set(roomsArgReassert, s.reassertMS()).
				set(roomsArgConsumer, s.claimer()).set(roomsArgJournalLen, s.cfg.JournalLen).
				set(roomsArgActivity, "").set(roomsArgIdleFor, 0).withActivity(k)}
		}
		replies, err := s.runAll(ctx, scriptRooms, calls)
		for j, r := range replies {
			v, _ := r.([]any)
			if len(v) < 3 {
				continue
			}
			gen, _ := v[0].(string)
			st, _ := v[1].(int64)
			b := s.bucket(part[j].client)
			s.sawGen(b, gen)
			more, perr := s.events(b, v[3:])
			evs = append(evs, more...)
			if perr != nil && err == nil {
				err = perr
			}
			if st != roomsStatusOk {
				continue
			}
			s.knownMu.Lock()
			if k, ok := s.known[part[j].client][part[j].session]; ok {
				k.rgen = gen
				s.known[part[j].client][part[j].session] = k
			}
			s.knownMu.Unlock()
		}
		if err != nil {
			return evs, err
		}
	}
	return evs, nil
}

// RoomCount implements presence.RoomStore: one HGET per bucket, pipelined
// (on a Cluster, one pipeline per shard, in parallel).
func (s *Store) RoomCount(ctx context.Context, room string) (int, error) {
	if err := presence.ValidateRoom(room); err != nil {
		return 0, fmt.Errorf("redis: room count: %w", err)
	}
	counts, err := s.roomCounts(ctx, room, 0)
	if err != nil {
		return 0, fmt.Errorf("redis: count of room %q: %w", room, err)
	}
	n := 0
	for _, c := range counts {
		n += c
	}
	return n, nil
}

// roomCounts returns room's members in each bucket from bucket from on.
func (s *Store) roomCounts(ctx context.Context, room string, from int) ([]int, error) {
	pipe := s.rdb.Pipeline()
	cmds := make([]*goredis.StringCmd, len(s.buckets)-from)
	layouts := make([]*goredis.SliceCmd, len(cmds))
	for i := range cmds {
		cmds[i] = pipe.HGet(ctx, s.buckets[from+i][keyRoomCounts], room)
		layouts[i] = pipe.MGet(ctx, layoutKeys(s.buckets[from+i])...)
	}
	if _, err := pipe.Exec(ctx); err != nil && err != goredis.Nil {
		s.out.observe(ctx, err)
		return nil, err
	}
	s.out.observe(ctx, nil)
	for _, l := range layouts {
		if isLayout1(l.Val()) {
			return nil, errLayout1
		}
	}
	out := make([]int, len(cmds))
	for i, c := range cmds {
		n, err := c.Int()
		if err != nil && err != goredis.Nil {
			return nil, err
		}
		out[i] = n
	}
	return out, nil
}

// Members implements presence.RoomStore. Members come bucket by bucket, in
// ID (byte) order within a bucket, the cursor holding the bucket and the
// last ID returned; buckets where the room has no member (one pipelined
// HGET each, first) are skipped.
func (s *Store) Members(ctx context.Context, room, cursor string, limit int) (presence.MemberPage, error) {
	if err := presence.ValidateRoom(room); err != nil {
		return presence.MemberPage{}, fmt.Errorf("redis: members: %w", err)
	}
	if limit <= 0 {
		return presence.MemberPage{}, fmt.Errorf("%w: redis: page limit %d", presence.ErrInvalidArgument, limit)
	}
	b, after, err := decodeMembersCursor(cursor, len(s.buckets))
	if err != nil {
		return presence.MemberPage{}, err
	}
	counts, err := s.roomCounts(ctx, room, b)
	if err != nil {
		return presence.MemberPage{}, fmt.Errorf("redis: members of room %q: %w", room, err)
	}
	page := presence.MemberPage{Room: room}
	// next returns the first bucket after b where the room has members.
	next := func(b int) int {
		for b++; b < len(s.buckets) && counts[b-(len(s.buckets)-len(counts))] == 0; b++ {
		}
		return b
	}
	if counts[0] == 0 {
		b, after = next(b), ""
	}
	for ; b < len(s.buckets); b, after = next(b), "" {
		need := limit - len(page.Members)
		args := newArgv(nMembersArgs).set(membersArgRoom, room).set(membersArgAfter, after).set(membersArgLimit, need+1)
		v, err := scriptMembers.Run(ctx, s.rdb, s.buckets[b], args...).Slice()
		s.out.observe(ctx, err)
		if err != nil {
			return presence.MemberPage{}, fmt.Errorf("redis: members of room %q: %w", room, err)
		}
		n := 0
		for len(v) > 0 {
			id, _ := v[0].(string)
			m, rest, err := decodeMember(id, v[1:])
			if err != nil {
				return presence.MemberPage{}, fmt.Errorf("redis: members of room %q: %w", room, err)
			}
			v = rest
			n++
			if n <= need {
				m.In = true
				page.Members = append(page.Members, m)
			}
		}
		switch {
		case n > need: // more in this bucket
			page.Next = encodeMembersCursor(b, page.Members[len(page.Members)-1].ClientID)
			return page, nil
		case n == need:
			if nb := next(b); nb < len(s.buckets) {
				page.Next = encodeMembersCursor(nb, "")
			}
			return page, nil
		}
	}
	return page, nil
}

// decodeMember reads memberinfo's fields (see lua/common.lua) of client
// id from v, and returns the rest of v.
func decodeMember(id string, v []any) (presence.Member, []any, error) {
	if len(v) < 6 {
		return presence.Member{}, nil, errReply
	}
	since, seen, n, state, la, k := num(v[0]), num(v[1]), num(v[2]), str(v[3]), num(v[4]), num(v[5])
	if k < 0 || int64(len(v)-6) < k {
		return presence.Member{}, nil, errReply
	}
	m := presence.Member{ClientID: id, Sessions: int(n)}
	if state != "" {
		fillState(state, la, &m.State, &m.LastActive)
	}
	if since > 0 {
		m.Since = time.UnixMilli(since)
	}
	if seen > 0 {
		m.LastSeen = time.UnixMilli(seen)
	}
	for i := range k {
		meta, _ := v[6+i].(string)
		m.Metas = append(m.Metas, json.RawMessage(meta))
	}
	return m, v[6+k:], nil
}

// num reads an integer of a script reply, sent as a number or a string.
func num(v any) int64 {
	switch x := v.(type) {
	case int64:
		return x
	case string:
		n, _ := strconv.ParseInt(x, 10, 64)
		return n
	}
	return 0
}

// MembersAmong implements presence.RoomStore: one script call per bucket
// involved, pipelined.
func (s *Store) MembersAmong(ctx context.Context, room string, clientIDs []string) ([]presence.Member, error) {
	if err := presence.ValidateRoom(room); err != nil {
		return nil, fmt.Errorf("redis: members among: %w", err)
	}
	if len(clientIDs) > presence.MaxLookup {
		return nil, fmt.Errorf("%w: redis: %d ids in one lookup, more than %d", presence.ErrInvalidArgument, len(clientIDs), presence.MaxLookup)
	}
	for _, id := range clientIDs {
		if err := presence.ValidateID(id); err != nil {
			return nil, fmt.Errorf("redis: members among: %w", err)
		}
	}
	out := make([]presence.Member, len(clientIDs))
	if len(clientIDs) == 0 {
		return out, nil
	}
	byBucket := make(map[int][]int)
	var bs []int
	for i, id := range clientIDs {
		b := s.bucket(id)
		if byBucket[b] == nil {
			bs = append(bs, b)
		}
		byBucket[b] = append(byBucket[b], i)
	}
	calls := make([]call, len(bs))
	for j, b := range bs {
		args := newArgv(nAmongArgs).set(amongArgRoom, room)
		for _, i := range byBucket[b] {
			item := make(argv, nAmongItem)
			item[amongItemClient] = clientIDs[i]
			args = append(args, item...)
		}
		calls[j] = call{keys: s.buckets[b], args: args}
	}
	replies, err := s.runAll(ctx, scriptAmong, calls)
	if err != nil {
		return nil, fmt.Errorf("redis: members of room %q among %d clients: %w", room, len(clientIDs), err)
	}
	for j, b := range bs {
		v, _ := replies[j].([]any)
		for _, i := range byBucket[b] {
			if len(v) < 1 {
				return nil, fmt.Errorf("redis: members among: %w", errReply)
			}
			in, _ := v[0].(string)
			m, rest, err := decodeMember(clientIDs[i], v[1:])
			if err != nil {
				return nil, fmt.Errorf("redis: members among: %w", err)
			}
			v = rest
			m.In = in == "1"
			out[i] = m
		}
	}
	return out, nil
}

// ClientRooms implements presence.RoomStore: the rooms of the client's
// sessions (one script call, as Sessions).
func (s *Store) ClientRooms(ctx context.Context, clientID string) ([]string, error) {
	ss, err := s.Sessions(ctx, clientID)
	if err != nil {
		if errors.Is(err, presence.ErrNotFound) {
			return nil, nil
		}
		return nil, fmt.Errorf("redis: rooms of %q: %w", clientID, err)
	}
	var rooms []string
	for _, si := range ss {
		rooms = joinRooms(rooms, si.Rooms)
	}
	return rooms, nil
}

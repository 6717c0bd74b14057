package memory

import (
	"cmp"
	"container/heap"
	"context"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"math"
	"slices"
	"sync"
	"time"

	"github.com/vigilhq/vigil/presence"
)

// Defaults of Config.
const (
	DefaultMaxClients  = 1_000_000
	DefaultMaxSessions = 2_000_000
	DefaultRetention   = 24 * time.Hour
)

// maxClientSessions is the most sessions one client may have.
const maxClientSessions = 0xffff

// shards is the number of maps clients are spread over. List walks one
// shard at a time, so a page costs a shard's size, not the store's.
const shards = 1024

// Config tunes a Store. The zero value is ready to use.
type Config struct {
	// MaxClients caps the clients the Store holds: online ones plus offline
	// ones remembered for their last-seen time. When it is reached, the
	// client offline the longest is forgotten to make room; when every
	// client is online, Add fails with presence.ErrLimit. Default: 1,000,000.
	MaxClients int

	// MaxSessions caps live and ending sessions; past it Add fails with
	// presence.ErrLimit, as it does for a client's 65,536th session.
	// Default: 2,000,000.
	MaxSessions int

	// Retention is how long an offline client's last-seen time is kept.
	// Negative: forget a client as soon as it goes offline. Default: 24h.
	Retention time.Duration
}

// Store is a presence.Store kept in process memory: the default store of a
// single node, or of several Trackers in one process. It starts no
// goroutine: expiry happens in Sweep, which every Tracker calls, so it is
// exact to the sweep step. A Store is safe for concurrent use; use New to
// make one.
type Store struct {
	cfg   Config
	epoch time.Time // monotonic origin of now()

	// mu makes every method atomic; it guards the fields below and every
	// client and session.
	mu      sync.Mutex
	shards  [shards]map[string]*client // client ID -> client
	nodeIDs []string                   // a session's node is an index here
	nodeIdx map[string]uint16          // inverse of nodeIDs
	leases  []int64                    // by node index: its lease's end (now()); 0: none
	// Interned end reasons: session.ending indexes reasonNames; an
	// ending session whose reason the table has no room for keeps it in
	// otherReasons.
	reasonIDs    map[presence.Reason]uint8
	reasonNames  []presence.Reason // [0] unused: 0 means live
	otherReasons map[*session]presence.Reason
	nclients     int
	online       int
	nsessions    int
	expiry       deadlines
	// offline lists offline clients, longest offline first, for Retention
	// and MaxClients.
	oldest, newest *client
	rooms          roomTable // see rooms.go
}

var (
	_ presence.Store       = (*Store)(nil)
	_ presence.NodeSweeper = (*Store)(nil)
	_ presence.RoomStore   = (*Store)(nil)
)

// New returns an empty Store.
func New(cfg Config) (*Store, error) {
	if cfg.MaxClients == 0 {
		cfg.MaxClients = DefaultMaxClients
	}
	if cfg.MaxSessions == 0 {
		cfg.MaxSessions = DefaultMaxSessions
	}
	if cfg.Retention == 0 {
		cfg.Retention = DefaultRetention
	}
	if cfg.MaxClients < 0 || cfg.MaxSessions < 0 || cfg.MaxSessions > math.MaxInt32 {
		return nil, fmt.Errorf("%w: memory: MaxClients %d or MaxSessions %d out of range", presence.ErrInvalidArgument, cfg.MaxClients, cfg.MaxSessions)
	}
	s := &Store{
		cfg: cfg, epoch: time.Now(), nodeIdx: make(map[string]uint16),
		reasonIDs: make(map[presence.Reason]uint8), reasonNames: make([]presence.Reason, 1), otherReasons: make(map[*session]presence.Reason),
	}
	s.rooms.init()
	for i := range s.shards {
		s.shards[i] = make(map[string]*client)
	}
	return s, nil
}

// client and session are laid out to fit 64-byte allocations: a store may
// hold a million of each.
type client struct {
	id string
	// sn packs the client's transition number (high 48 bits: see
	// seqBase) and its number of sessions (low 16 bits; none means offline
	// and remembered).
	sn uint64
	// since is when it came online, or while offline when it went offline.
	since int64
	seen  int64    // now() of its latest beat
	head  *session // its sessions, chained by session.next
	// While offline: its place in the Store's offline list.
	prev, next *client
}

type session struct {
	c        *client
	id       string
	deadline int64 // now() past which Sweep removes it
	seen     int64
	next     *session
	rx       *sessionRooms // rooms and metadata; nil if it has neither
	index    int32         // in Store.expiry
	node     uint16        // in Store.nodeIDs
	ending   uint8         // 0 while live; why it ended (see Store.setEnding)
}

// now is the time since the Store was made, on the monotonic clock, so that
// a step of the wall clock expires nothing.
func (s *Store) now() int64 { return int64(time.Since(s.epoch)) }

func (s *Store) wall(t int64) time.Time { return s.epoch.Add(time.Duration(t)) }

func (s *Store) shard(id string) map[string]*client { return s.shards[shardOf(id)] }

// shardOf hashes id with FNV-1a, so that the order of List is stable.
func shardOf(id string) int {
	return int(idHash(id) % shards)
}

func (s *Store) get(id string) *client {
	return s.shard(id)[id]
}

func (c *client) sessions() int { return int(c.sn & 0xffff) }
func (c *client) seq() uint64   { return c.sn >> 16 }

// seqBase is the first transition number of a client record made at now:
// seconds since 2023-11-14 times 2^16, so that a client forgotten and seen
// again never reuses an Event.ID (unless it made 65,536 transitions, of
// every kind, a second). Every transition takes the next number, so
// Online numbers have no parity of their own.
func (s *Store) seqBase(now int64) uint64 {
	sec := s.wall(now).Unix() - 1_700_000_000
	return uint64(max(sec, 0)) << 16
}

// live counts c's sessions that are neither ending nor past their lease at
// now: those Lease.MaxSessions caps.
func (c *client) live(now int64) int {
	n := 0
	for x := c.head; x != nil; x = x.next {
		if x.ending == 0 && x.deadline > now {
			n++
		}
	}
	return n
}

func (c *client) find(id string) *session {
	for x := c.head; x != nil; x = x.next {
		if x.id == id {
			return x
		}
	}
	return nil
}

// unlink removes x from its client's chain.
func (c *client) unlink(x *session) {
	for p := &c.head; *p != nil; p = &(*p).next {
		if *p == x {
			*p = x.next
			x.next = nil
			c.sn--
			return
		}
	}
}

func checkLease(l presence.Lease) error {
	if err := l.Validate(); err != nil {
		return fmt.Errorf("memory: %w", err)
	}
	return nil
}

// Add implements presence.Store.
func (s *Store) Add(ctx context.Context, l presence.Lease) ([]presence.Event, error) {
	if err := checkLease(l); err != nil {
		return nil, err
	}
	rooms := sortedRooms(l.Rooms)
	s.mu.Lock()
	defer s.mu.Unlock()
	node, err := s.node(l.Node)
	if err != nil {
		return nil, err
	}
	now := s.now()
	c := s.get(l.ClientID)
	if c != nil {
		if x := c.find(l.SessionID); x != nil {
			if n := roomsAfter(x, rooms, &s.rooms); n > presence.MaxRoomsPerSession {
				return nil, fmt.Errorf("%w: memory: session %q of %q would be in %d rooms", presence.ErrLimit, x.id, c.id, n)
			}
			s.clearEnding(x)
			x.deadline = 0 // the lease, not an earlier grace, decides
			s.renew(x, l, node, now)
			return s.enter(nil, x, rooms, l.Meta, now), nil
		}
	}
	if l.MaxSessions > 0 && c != nil && c.live(now) >= l.MaxSessions {
		return nil, fmt.Errorf("%w: memory: client %q holds %d", presence.ErrTooManySessions, c.id, l.MaxSessions)
	}
	if c != nil && c.sessions() == maxClientSessions {
		return nil, fmt.Errorf("%w: memory: %d sessions of client %q", presence.ErrLimit, maxClientSessions, c.id)
	}
	if s.nsessions >= s.cfg.MaxSessions {
		return nil, fmt.Errorf("%w: memory: %d sessions", presence.ErrLimit, s.nsessions)
	}
	wasOffline := c != nil && c.sessions() == 0 // and so in the offline list
	if c == nil {
		if s.nclients >= s.cfg.MaxClients {
			if s.oldest == nil {
				return nil, fmt.Errorf("%w: memory: %d clients online", presence.ErrLimit, s.online)
			}
			s.forget(s.oldest)
		}
		c = &client{id: l.ClientID, sn: s.seqBase(now) << 16}
		s.shard(c.id)[c.id] = c
		s.nclients++
	}
	if s.leases[node] == 0 {
		// A node's first session gives it a lease as long as the
		// session's, until its sweeps renew it: so a node that dies
		// before its first sweep still loses its sessions as node_lost.
		s.leases[node] = now + int64(l.TTL)
	}
	x := &session{c: c, id: l.SessionID, index: -1, next: c.head}
	c.head = x
	c.sn++
	s.nsessions++
	s.renew(x, l, node, now)
	if c.sessions() > 1 {
		// Sessions lingering through their grace stay, each with its own
		// deadline and reason: one may outlast the new session. What a
		// client reconnecting in a loop piles up is bounded by its grace,
		// maxClientSessions and MaxSessions.
		return s.enter(nil, x, rooms, l.Meta, now), nil
	}
	if wasOffline {
		s.unlinkOffline(c)
	}
	c.sn += 1 << 16
	c.since = now
	s.online++
	evs := make([]presence.Event, 1, 1+len(rooms))
	evs[0] = presence.Event{
		ClientID: c.id, Transition: presence.Online, Reason: presence.ReasonConnect,
		Time: s.wall(now), LastSeen: s.wall(c.seen), SessionID: x.id, Seq: c.seq(),
	}
	return s.enter(evs, x, rooms, l.Meta, now), nil
}

// renew applies a lease to a live session.
func (s *Store) renew(x *session, l presence.Lease, node uint16, now int64) {
	x.node = node
	x.deadline = max(x.deadline, now+int64(l.TTL))
	x.seen = max(x.seen, now-int64(l.Age))
	x.c.seen = max(x.c.seen, x.seen)
	if x.index < 0 {
		heap.Push(&s.expiry, x)
	} else {
		heap.Fix(&s.expiry, int(x.index))
	}
}

// node returns the index of a node ID.
func (s *Store) node(id string) (uint16, error) {
	i, ok := s.nodeIdx[id]
	if !ok {
		if len(s.nodeIDs) > math.MaxUint16 {
			return 0, fmt.Errorf("%w: memory: more than %d node IDs", presence.ErrLimit, math.MaxUint16+1)
		}
		i = uint16(len(s.nodeIDs))
		s.nodeIDs = append(s.nodeIDs, id)
		s.leases = append(s.leases, 0)
		s.nodeIdx[id] = i
	}
	return i, nil
}

// otherReason marks an ending session whose reason is in otherReasons.
const otherReason = math.MaxUint8

// setEnding marks x as ending for r. The usual reasons take a byte of the
// session; applications' own reasons past the first 254 take a map entry.
func (s *Store) setEnding(x *session, r presence.Reason) {
	s.clearEnding(x)
	k, ok := s.reasonIDs[r]
	if !ok {
		if len(s.reasonNames) == otherReason {
			x.ending = otherReason
			s.otherReasons[x] = r
			return
		}
		k = uint8(len(s.reasonNames))
		s.reasonNames = append(s.reasonNames, r)
		s.reasonIDs[r] = k
	}
	x.ending = k
}

// clearEnding marks x as live.
func (s *Store) clearEnding(x *session) {
	if x.ending == otherReason {
		delete(s.otherReasons, x)
	}
	x.ending = 0
}

// endReason is why an ending session ended.
func (s *Store) endReason(x *session) presence.Reason {
	if x.ending == otherReason {
		return s.otherReasons[x]
	}
	return s.reasonNames[x.ending]
}

// Touch implements presence.Store.
func (s *Store) Touch(ctx context.Context, leases []presence.Lease) ([]presence.Gone, error) {
	for _, l := range leases {
		if err := checkLease(l); err != nil {
			return nil, err
		}
	}
	var gone []presence.Gone
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	for i, l := range leases {
		var x *session
		if c := s.get(l.ClientID); c != nil {
			x = c.find(l.SessionID)
		}
		switch {
		case x == nil:
			gone = append(gone, presence.Gone{Index: i, Reason: presence.ReasonExpired})
		case x.ending != 0:
			gone = append(gone, presence.Gone{Index: i, Reason: s.endReason(x)})
		default:
			node, err := s.node(l.Node)
			if err != nil {
				return gone, err
			}
			s.renew(x, l, node, now)
		}
	}
	return gone, nil
}

// End implements presence.Store.
func (s *Store) End(ctx context.Context, e presence.Ending) ([]presence.Event, error) {
	if err := checkEnding(e); err != nil {
		return nil, err
	}
	if e.Reason == "" {
		e.Reason = presence.ReasonClosed
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var sel []*session
	switch {
	case e.ClientID != "":
		if c := s.get(e.ClientID); c != nil {
			for x := c.head; x != nil; x = x.next {
				if e.SessionID == "" || x.id == e.SessionID {
					sel = append(sel, x)
				}
			}
		}
	default:
		for _, x := range s.expiry {
			if s.nodeIDs[x.node] == e.Node {
				sel = append(sel, x)
			}
		}
	}
	if len(sel) == 0 {
		return nil, fmt.Errorf("memory: end %q/%q node %q: %w", e.ClientID, e.SessionID, e.Node, presence.ErrNotFound)
	}
	now := s.now()
	var evs []presence.Event
	for _, x := range sel {
		if !e.Reason.Unseen() {
			x.seen = now // the client was there until it ended
			x.c.seen = max(x.c.seen, now)
		}
		if e.Grace <= 0 {
			evs = s.remove(evs, x, e.Reason, now)
			continue
		}
		deadline := now + int64(e.Grace)
		if x.ending != 0 {
			deadline = min(deadline, x.deadline)
		}
		s.setEnding(x, e.Reason)
		x.deadline = deadline
		heap.Fix(&s.expiry, int(x.index))
	}
	return evs, nil
}

func checkEnding(e presence.Ending) error {
	if err := e.Validate(); err != nil {
		return fmt.Errorf("memory: %w", err)
	}
	return nil
}

// remove deletes a session and appends the Leave events of the rooms its
// client leaves with it, then the Offline event if it was its client's
// last.
func (s *Store) remove(evs []presence.Event, x *session, reason presence.Reason, now int64) []presence.Event {
	heap.Remove(&s.expiry, int(x.index))
	s.clearEnding(x)
	if x.rx != nil {
		evs = s.leaveAll(evs, x, reason, now)
	}
	c := x.c
	c.unlink(x)
	s.nsessions--
	if c.sessions() > 0 {
		return evs
	}
	c.sn += 1 << 16
	s.online--
	evs = append(evs, presence.Event{
		ClientID: c.id, Transition: presence.Offline, Reason: reason,
		// Online until the last beat or session end: not through the
		// Grace or TTL that passed since.
		Time: s.wall(now), LastSeen: s.wall(c.seen), OnlineFor: time.Duration(max(0, c.seen-c.since)),
		SessionID: x.id, Seq: c.seq(),
	})
	if s.cfg.Retention < 0 {
		delete(s.shard(c.id), c.id)
		delete(s.rooms.left, c)
		s.nclients--
		return evs
	}
	c.since = now
	c.prev = s.newest
	if s.newest != nil {
		s.newest.next = c
	} else {
		s.oldest = c
	}
	s.newest = c
	return evs
}

func (s *Store) unlinkOffline(c *client) {
	if c.prev != nil {
		c.prev.next = c.next
	} else {
		s.oldest = c.next
	}
	if c.next != nil {
		c.next.prev = c.prev
	} else {
		s.newest = c.prev
	}
	c.prev, c.next = nil, nil
}

// forget drops an offline client and its last-seen time.
func (s *Store) forget(c *client) {
	s.unlinkOffline(c)
	delete(s.shard(c.id), c.id)
	delete(s.rooms.left, c)
	s.nclients--
}

// Sweep implements presence.Store.
func (s *Store) Sweep(ctx context.Context) ([]presence.Event, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sweep(-1, s.now()), nil
}

// SweepNode implements presence.NodeSweeper. Several Trackers may share
// one Store in a process: one whose loop stops calling it (wedged, or a
// test's node cut off from the Store) loses its lease like a dead node.
func (s *Store) SweepNode(ctx context.Context, l presence.NodeLease) ([]presence.Event, error) {
	if err := l.Validate(); err != nil {
		return nil, fmt.Errorf("memory: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	node, err := s.node(l.Node)
	if err != nil { // past the node IDs the Store can hold: sweep, with no lease
		return s.sweep(-1, now), nil
	}
	evs := s.sweep(int(node), now)
	s.leases[node] = now + int64(l.TTL)
	return evs, nil
}

// sweep removes what ran out at now. by is the index of the sweeping node,
// whose lease (if it had not run out) lets it tell a lost node's sessions
// from expired ones; -1 for none. mu must be held.
func (s *Store) sweep(by int, now int64) []presence.Event {
	live := by >= 0 && s.leases[by] > now
	var evs []presence.Event
	for len(s.expiry) > 0 && s.expiry[0].deadline <= now {
		x := s.expiry[0]
		reason := presence.ReasonExpired
		if x.ending != 0 {
			reason = s.endReason(x)
		} else if end := s.leases[x.node]; live && end != 0 && end <= now {
			reason = presence.ReasonNodeLost
		}
		evs = s.remove(evs, x, reason, now)
	}
	for s.oldest != nil && s.oldest.since+int64(s.cfg.Retention) <= now {
		s.forget(s.oldest)
	}
	return evs
}

// Lookup implements presence.Store.
func (s *Store) Lookup(ctx context.Context, clientIDs []string) ([]presence.Presence, error) {
	for _, id := range clientIDs {
		if err := presence.ValidateID(id); err != nil {
			return nil, fmt.Errorf("memory: lookup: %w", err)
		}
	}
	out := make([]presence.Presence, len(clientIDs))
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, id := range clientIDs {
		out[i].ClientID = id
		if c := s.get(id); c != nil {
			out[i] = s.presence(c)
		}
	}
	return out, nil
}

func (s *Store) presence(c *client) presence.Presence {
	p := presence.Presence{ClientID: c.id, Online: c.sessions() > 0, LastSeen: s.wall(c.seen), Sessions: c.sessions()}
	if p.Online {
		p.Since = s.wall(c.since)
	}
	return p
}

// Sessions implements presence.Store.
func (s *Store) Sessions(ctx context.Context, clientID string) ([]presence.SessionInfo, error) {
	if err := presence.ValidateID(clientID); err != nil {
		return nil, fmt.Errorf("memory: sessions: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.get(clientID)
	if c == nil {
		return nil, fmt.Errorf("memory: sessions of %q: %w", clientID, presence.ErrNotFound)
	}
	out := make([]presence.SessionInfo, 0, c.sessions())
	for x := c.head; x != nil; x = x.next {
		info := presence.SessionInfo{ClientID: c.id, ID: x.id, Node: s.nodeIDs[x.node], LastSeen: s.wall(x.seen), Ending: x.ending != 0}
		if info.Ending {
			info.Reason = s.endReason(x)
		}
		if x.rx != nil {
			for _, i := range s.roomsByName(x) {
				info.Rooms = append(info.Rooms, s.rooms.list[i].name)
			}
			info.Meta = slices.Clone(x.rx.meta)
		}
		out = append(out, info)
	}
	return out, nil
}

// List implements presence.Store. Clients come shard by shard, in ID order
// within a shard; the cursor holds the shard and the last ID returned.
func (s *Store) List(ctx context.Context, cursor string, limit int) (presence.Page, error) {
	if limit <= 0 {
		return presence.Page{}, fmt.Errorf("%w: memory: page limit %d", presence.ErrInvalidArgument, limit)
	}
	shard, after, err := decodeCursor(cursor)
	if err != nil {
		return presence.Page{}, err
	}
	var page presence.Page
	for ; shard < shards; shard, after = shard+1, "" {
		s.mu.Lock()
		m := s.shards[shard]
		ids := make([]string, 0, len(m))
		for id, c := range m {
			if c.sessions() > 0 && (after == "" || id > after) {
				ids = append(ids, id)
			}
		}
		slices.SortFunc(ids, cmp.Compare)
		for _, id := range ids {
			if len(page.Clients) == limit {
				break
			}
			page.Clients = append(page.Clients, s.presence(m[id]))
		}
		s.mu.Unlock()
		if len(page.Clients) == limit {
			last := page.Clients[limit-1].ClientID
			if last == ids[len(ids)-1] {
				shard, last = shard+1, ""
			}
			if shard < shards {
				page.Next = encodeCursor(shard, last)
			}
			return page, nil
		}
	}
	return page, nil
}

// Count implements presence.Store.
func (s *Store) Count(ctx context.Context) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.online, nil
}

func encodeCursor(shard int, after string) string {
	b := binary.BigEndian.AppendUint16(nil, uint16(shard))
	return base64.RawURLEncoding.EncodeToString(append(b, after...))
}

func decodeCursor(cursor string) (shard int, after string, err error) {
	if cursor == "" {
		return 0, "", nil
	}
	b, err := base64.RawURLEncoding.DecodeString(cursor)
	if err != nil || len(b) < 2 {
		return 0, "", fmt.Errorf("%w: memory: unreadable cursor", presence.ErrInvalidArgument)
	}
	shard, after = int(binary.BigEndian.Uint16(b)), string(b[2:])
	if shard >= shards || (after != "" && presence.ValidateID(after) != nil) {
		return 0, "", fmt.Errorf("%w: memory: unreadable cursor", presence.ErrInvalidArgument)
	}
	return shard, after, nil
}

// deadlines is a min-heap of sessions by deadline.
type deadlines []*session

func (d deadlines) Len() int           { return len(d) }
func (d deadlines) Less(i, j int) bool { return d[i].deadline < d[j].deadline }
func (d deadlines) Swap(i, j int) {
	d[i], d[j] = d[j], d[i]
	d[i].index, d[j].index = int32(i), int32(j)
}
func (d *deadlines) Push(x any) {
	e := x.(*session)
	e.index = int32(len(*d))
	*d = append(*d, e)
}
func (d *deadlines) Pop() any {
	old := *d
	e := old[len(old)-1]
	old[len(old)-1] = nil
	*d = old[:len(old)-1]
	e.index = -1
	return e
}

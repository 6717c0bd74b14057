package memory

import (
	"cmp"
	"container/heap"
	"context"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/patrickmn/go-cache"

	"github.com/vigilhq/vigil/presence"
)

// Defaults of Config.
const (
	DefaultMaxClients  = 1_000_000
	DefaultMaxSessions = 2_000_000
	DefaultRetention   = 24 * time.Hour
)

// shards is the number of go-cache maps clients are spread over. List walks
// one shard at a time, so a page costs a shard's size, not the store's.
const shards = 1024

// Config tunes a Store. The zero value is ready to use.
type Config struct {
	// MaxClients caps the clients the Store holds: online ones plus offline
	// ones remembered for their last-seen time. When it is reached, the
	// client offline the longest is forgotten to make room; when every
	// client is online, Add fails with presence.ErrLimit. Default: 1,000,000.
	MaxClients int

	// MaxSessions caps live and ending sessions; past it Add fails with
	// presence.ErrLimit. Default: 2,000,000.
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
	mu        sync.Mutex
	shards    [shards]*cache.Cache // client ID -> *client
	nclients  int
	online    int
	nsessions int
	expiry    deadlines
	// offline lists offline clients, longest offline first, for Retention
	// and MaxClients.
	oldest, newest *client
}

var _ presence.Store = (*Store)(nil)

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
	if cfg.MaxClients < 0 || cfg.MaxSessions < 0 {
		return nil, fmt.Errorf("%w: memory: negative MaxClients or MaxSessions", presence.ErrInvalidArgument)
	}
	s := &Store{cfg: cfg, epoch: time.Now()}
	for i := range s.shards {
		// No janitor: go-cache's janitor runs on the wall clock, scans the
		// whole map under its lock and cannot be stopped. Nothing here
		// expires by go-cache; Sweep removes what is due.
		s.shards[i] = cache.New(cache.NoExpiration, 0)
	}
	return s, nil
}

type client struct {
	id       string
	seq      uint64
	since    int64 // now() it came online
	seen     int64 // now() of its latest beat
	sessions []*session
	// While offline and remembered: its place in the Store's offline list.
	offline    bool
	offlineAt  int64
	prev, next *client
}

type session struct {
	c        *client
	id       string
	node     string
	deadline int64 // now() past which Sweep removes it
	seen     int64
	ending   bool
	reason   presence.Reason
	index    int // in Store.expiry
}

// now is the time since the Store was made, on the monotonic clock, so that
// a step of the wall clock expires nothing.
func (s *Store) now() int64 { return int64(time.Since(s.epoch)) }

func (s *Store) wall(t int64) time.Time { return s.epoch.Add(time.Duration(t)) }

func (s *Store) shard(id string) *cache.Cache { return s.shards[shardOf(id)] }

// shardOf hashes id with FNV-1a, so that the order of List is stable.
func shardOf(id string) int {
	h := uint32(2166136261)
	for i := 0; i < len(id); i++ {
		h ^= uint32(id[i])
		h *= 16777619
	}
	return int(h % shards)
}

func (s *Store) get(id string) *client {
	if v, ok := s.shard(id).Get(id); ok {
		return v.(*client)
	}
	return nil
}

func (c *client) find(id string) *session {
	for _, x := range c.sessions {
		if x.id == id {
			return x
		}
	}
	return nil
}

func checkLease(l presence.Lease) error {
	if err := presence.ValidateID(l.ClientID); err != nil {
		return fmt.Errorf("memory: client: %w", err)
	}
	if err := presence.ValidateID(l.SessionID); err != nil {
		return fmt.Errorf("memory: session: %w", err)
	}
	if err := presence.ValidateID(l.Node); err != nil {
		return fmt.Errorf("memory: node: %w", err)
	}
	if l.TTL <= 0 || l.Age < 0 {
		return fmt.Errorf("%w: memory: lease ttl %v age %v", presence.ErrInvalidArgument, l.TTL, l.Age)
	}
	return nil
}

// Add implements presence.Store.
func (s *Store) Add(ctx context.Context, l presence.Lease) ([]presence.Event, error) {
	if err := checkLease(l); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	c := s.get(l.ClientID)
	if c != nil {
		if x := c.find(l.SessionID); x != nil {
			x.ending, x.reason = false, ""
			x.deadline = 0 // the lease, not an earlier grace, decides
			s.renew(x, l, now)
			return nil, nil
		}
	}
	if s.nsessions >= s.cfg.MaxSessions {
		return nil, fmt.Errorf("%w: memory: %d sessions", presence.ErrLimit, s.nsessions)
	}
	if c == nil {
		if s.nclients >= s.cfg.MaxClients {
			if s.oldest == nil {
				return nil, fmt.Errorf("%w: memory: %d clients online", presence.ErrLimit, s.online)
			}
			s.forget(s.oldest)
		}
		c = &client{id: l.ClientID}
		s.shard(c.id).Set(c.id, c, cache.NoExpiration)
		s.nclients++
	}
	x := &session{c: c, id: l.SessionID, index: -1}
	c.sessions = append(c.sessions, x)
	s.nsessions++
	s.renew(x, l, now)
	if len(c.sessions) > 1 {
		// The new session keeps the client online: sessions lingering
		// through their grace have done their job. Dropping them bounds
		// what a client that reconnects in a loop can pile up.
		c.sessions = slices.DeleteFunc(c.sessions, func(y *session) bool {
			if y.ending {
				heap.Remove(&s.expiry, y.index)
				s.nsessions--
			}
			return y.ending
		})
		return nil, nil
	}
	if c.offline {
		s.unlinkOffline(c)
	}
	c.seq++
	c.since = now
	s.online++
	return []presence.Event{{
		ClientID: c.id, Transition: presence.Online, Reason: presence.ReasonConnect,
		Time: s.wall(now), LastSeen: s.wall(c.seen), SessionID: x.id, Seq: c.seq,
	}}, nil
}

// renew applies a lease to a live session.
func (s *Store) renew(x *session, l presence.Lease, now int64) {
	x.node = l.Node
	x.deadline = max(x.deadline, now+int64(l.TTL))
	x.seen = max(x.seen, now-int64(l.Age))
	x.c.seen = max(x.c.seen, x.seen)
	if x.index < 0 {
		heap.Push(&s.expiry, x)
	} else {
		heap.Fix(&s.expiry, x.index)
	}
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
			gone = append(gone, presence.Gone{Index: i, Reason: presence.ReasonTimeout})
		case x.ending:
			gone = append(gone, presence.Gone{Index: i, Reason: x.reason})
		default:
			s.renew(x, l, now)
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
			for _, x := range c.sessions {
				if e.SessionID == "" || x.id == e.SessionID {
					sel = append(sel, x)
				}
			}
		}
	default:
		for _, x := range s.expiry {
			if x.node == e.Node {
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
		if e.Reason != presence.ReasonTimeout && e.Reason != presence.ReasonNodeLost {
			x.seen = now // the client was there until it ended
			x.c.seen = max(x.c.seen, now)
		}
		if e.Grace <= 0 {
			evs = s.remove(evs, x, e.Reason, now)
			continue
		}
		deadline := now + int64(e.Grace)
		if x.ending {
			deadline = min(deadline, x.deadline)
		}
		x.ending, x.reason, x.deadline = true, e.Reason, deadline
		heap.Fix(&s.expiry, x.index)
	}
	return evs, nil
}

func checkEnding(e presence.Ending) error {
	switch {
	case e.ClientID != "":
		if err := presence.ValidateID(e.ClientID); err != nil {
			return fmt.Errorf("memory: end client: %w", err)
		}
		if e.SessionID != "" {
			if err := presence.ValidateID(e.SessionID); err != nil {
				return fmt.Errorf("memory: end session: %w", err)
			}
		}
	case e.SessionID != "":
		return fmt.Errorf("%w: memory: end session %q without its client", presence.ErrInvalidArgument, e.SessionID)
	case e.Node != "":
		if err := presence.ValidateID(e.Node); err != nil {
			return fmt.Errorf("memory: end node: %w", err)
		}
	default:
		return fmt.Errorf("%w: memory: end selects nothing", presence.ErrInvalidArgument)
	}
	return nil
}

// remove deletes a session and appends the Offline event if it was its
// client's last.
func (s *Store) remove(evs []presence.Event, x *session, reason presence.Reason, now int64) []presence.Event {
	heap.Remove(&s.expiry, x.index)
	c := x.c
	i := slices.Index(c.sessions, x)
	c.sessions = slices.Delete(c.sessions, i, i+1)
	s.nsessions--
	if len(c.sessions) > 0 {
		return evs
	}
	c.seq++
	s.online--
	evs = append(evs, presence.Event{
		ClientID: c.id, Transition: presence.Offline, Reason: reason,
		Time: s.wall(now), LastSeen: s.wall(c.seen), OnlineFor: time.Duration(now - c.since),
		SessionID: x.id, Seq: c.seq,
	})
	c.since = 0
	c.sessions = nil
	if s.cfg.Retention < 0 {
		s.shard(c.id).Delete(c.id)
		s.nclients--
		return evs
	}
	c.offline, c.offlineAt = true, now
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
	c.prev, c.next, c.offline = nil, nil, false
}

// forget drops an offline client and its last-seen time.
func (s *Store) forget(c *client) {
	s.unlinkOffline(c)
	s.shard(c.id).Delete(c.id)
	s.nclients--
}

// Sweep implements presence.Store.
func (s *Store) Sweep(ctx context.Context) ([]presence.Event, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	var evs []presence.Event
	for len(s.expiry) > 0 && s.expiry[0].deadline <= now {
		x := s.expiry[0]
		reason := presence.ReasonTimeout
		if x.ending {
			reason = x.reason
		}
		evs = s.remove(evs, x, reason, now)
	}
	for s.oldest != nil && s.oldest.offlineAt+int64(s.cfg.Retention) <= now {
		s.forget(s.oldest)
	}
	return evs, nil
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
	p := presence.Presence{ClientID: c.id, Online: len(c.sessions) > 0, LastSeen: s.wall(c.seen), Sessions: len(c.sessions)}
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
	out := make([]presence.SessionInfo, len(c.sessions))
	for i, x := range c.sessions {
		out[i] = presence.SessionInfo{ClientID: c.id, ID: x.id, Node: x.node, LastSeen: s.wall(x.seen), Ending: x.ending, Reason: x.reason}
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
		items := s.shards[shard].Items()
		ids := make([]string, 0, len(items))
		s.mu.Lock()
		for id, it := range items {
			if c := it.Object.(*client); len(c.sessions) > 0 && (after == "" || id > after) {
				ids = append(ids, id)
			}
		}
		slices.SortFunc(ids, cmp.Compare)
		for _, id := range ids {
			if len(page.Clients) == limit {
				break
			}
			page.Clients = append(page.Clients, s.presence(items[id].Object.(*client)))
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
	d[i].index, d[j].index = i, j
}
func (d *deadlines) Push(x any) {
	e := x.(*session)
	e.index = len(*d)
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

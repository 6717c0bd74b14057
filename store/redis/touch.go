package redis

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"time"

	"github.com/vigilhq/vigil/presence"
)

// knownSession is what this Store last wrote of one session, kept in
// Store.known (under knownMu): what lets Touch refresh the session by
// moving its deadline alone (see "Cost" in the package documentation), and
// Touch and End restore it after Redis lost it.
type knownSession struct {
	node string
	ttl  int64  // a lease written (Add's, or a full Touch's), ms
	span int64  // its TTL + Age, ms, as Redis holds it; -1 if unknown
	gen  string // the bucket's generation when the session was last written
	// An ending session: why it ended, and when its grace is over, on
	// this node's clock and on Redis's (ms); reason empty for a live one.
	reason   presence.Reason
	until    time.Time
	deadline int64
	// The session's rooms (sorted) and metadata, set at stamp (Redis µs),
	// as last written in generation rgen: what reassert writes back if
	// Redis loses them. A lease written again keeps them (rememberLocked).
	rooms []string
	meta  string
	stamp int64
	rgen  string
	// away: the session is away, its user last active at activeAt (this
	// node's clock); written back with its rooms, in generation rgen.
	away     bool
	activeAt time.Time
}

// hasRooms reports whether the session has rooms, metadata or an away
// activity to keep.
func (k knownSession) hasRooms() bool { return len(k.rooms) > 0 || k.meta != "" || k.away }

// span is l.Span, the deadline minus the last beat of a lease, in the
// milliseconds the scripts get: the same on every lease a Tracker writes of
// a session (see presence.Lease), which lets Touch refresh a session by
// moving its deadline alone.
func span(l presence.Lease) int64 { return ms(l.TTL) + l.Age.Milliseconds() }

// rememberLocked records what this Store wrote of a session, keeping
// the rooms, metadata and activity it knew of it unless k has its own. knownMu must
// be held.
func (s *Store) rememberLocked(clientID, sessionID string, k knownSession) {
	m := s.known[clientID]
	if m == nil {
		m = make(map[string]knownSession, 1)
		s.known[clientID] = m
		s.knownIn[s.bucket(clientID)]++
	}
	if old, ok := m[sessionID]; ok && !k.hasRooms() && k.rgen == "" {
		k.rooms, k.meta, k.stamp, k.rgen = old.rooms, old.meta, old.stamp, old.rgen
		k.away, k.activeAt = old.away, old.activeAt
	}
	m[sessionID] = k
}

// forgetSession drops what this Store knew of one session, or of every
// session of a client when sessionID is empty. knownMu must be held.
func (s *Store) forgetSession(clientID, sessionID string) {
	if sessionID == "" {
		if _, ok := s.known[clientID]; ok {
			s.knownIn[s.bucket(clientID)]--
		}
		delete(s.known, clientID)
		return
	}
	if m := s.known[clientID]; m != nil {
		delete(m, sessionID)
		if len(m) == 0 {
			delete(s.known, clientID)
			s.knownIn[s.bucket(clientID)]--
		}
	}
}

// touchChunk is about the most leases one Touch script call carries on a
// single server: a bigger batch is split into calls of whole buckets, run
// concurrently over the client's connection pool, so that encoding the
// next call overlaps with Redis running the previous one, and no one call
// blocks Redis for long.
const touchChunk = 500

// touchParallel bounds the Touch calls in flight at once.
const touchParallel = 4

// touchGroups splits the buckets of a Touch into script calls: on a single
// server, runs of whole buckets of about touchChunk leases each; elsewhere
// one per bucket.
func (s *Store) touchGroups(bs []int, byBucket map[int][]int) [][]int {
	if !s.single {
		return s.groups(bs)
	}
	var out [][]int
	var cur []int
	n := 0
	for _, b := range bs {
		if n > 0 && n+len(byBucket[b]) > touchChunk {
			out = append(out, cur)
			cur, n = nil, 0
		}
		cur = append(cur, b)
		n += len(byBucket[b])
	}
	return append(out, cur)
}

// Touch implements presence.Store. On a single server it writes the leases
// in one script call, or, for more than about 500 leases, in calls of
// whole buckets run concurrently (each call's arguments built while the
// calls before it run); on a Cluster in one call per bucket, pipelined.
func (s *Store) Touch(ctx context.Context, leases []presence.Lease) ([]presence.Gone, error) {
	for _, l := range leases {
		if err := checkLease(l); err != nil {
			return nil, err
		}
	}
	if len(leases) == 0 {
		return nil, nil
	}
	byBucket := make(map[int][]int) // bucket -> lease indexes
	for i, l := range leases {
		b := s.bucket(l.ClientID)
		byBucket[b] = append(byBucket[b], i)
	}
	bs := slices.Sorted(maps.Keys(byBucket))
	groups := s.touchGroups(bs, byBucket)
	sent := make([][]touchBatch, len(groups)) // per group, per bucket: what was sent
	build := func(gi int) call {
		args := []any(newArgv(nTouchArgs).set(touchArgConsumer, s.claimer()).
			set(touchArgJournalLen, s.cfg.JournalLen).set(touchArgReassert, s.reassertMS()))
		sent[gi] = make([]touchBatch, len(groups[gi]))
		s.knownMu.Lock()
		for j, b := range groups[gi] {
			bh := make([]any, nTouchBucket)
			bh[touchBucketGen] = s.knownGen(b)
			args = append(args, bh...)
			args, sent[gi][j] = s.touchArgs(args, leases, byBucket[b])
		}
		s.knownMu.Unlock()
		return call{keys: s.keysOf(groups[gi]), args: args}
	}
	var replies []any
	var err error
	if s.single && len(groups) > 1 {
		replies, err = s.runConcurrent(ctx, scriptTouch, len(groups), touchParallel, build)
	} else {
		calls := make([]call, len(groups))
		for gi := range groups {
			calls[gi] = build(gi)
		}
		replies, err = s.runAll(ctx, scriptTouch, calls)
	}
	if err != nil {
		return nil, fmt.Errorf("redis: touch %s: %w", touching(leases), err)
	}
	var gone []presence.Gone
	var kept []int // full leases whose span Redis did not take
	restored := 0
	for gi, g := range groups {
		v, _ := replies[gi].([]any)
		for j := range g {
			t := &sent[gi][j]
			if len(v) < 2 {
				return nil, fmt.Errorf("redis: touch: %w", errReply)
			}
			t.gen, _ = v[0].(string)
			s.sawGen(g[j], t.gen)
			m, _ := v[1].(int64)
			v = v[2:]
			if int64(len(v)) < 2*m {
				return nil, fmt.Errorf("redis: touch: %w", errReply)
			}
			for k := int64(0); k < m; k++ {
				pos, _ := v[2*k].(int64)
				reason, _ := v[2*k+1].(string)
				if pos < 1 || pos > int64(len(t.order)) {
					return nil, fmt.Errorf("redis: touch: %w", errReply)
				}
				i := t.order[pos-1]
				switch reason {
				case "!":
					restored++ // re-created in a new generation: remembered below
				case "~":
					kept = append(kept, i)
				default:
					gone = append(gone, presence.Gone{Index: i, Reason: presence.Reason(reason)})
				}
			}
			v = v[2*m:]
		}
	}
	if restored > 0 {
		s.log.LogAttrs(ctx, slog.LevelWarn, "redis: restored sessions that Redis lost", slog.Int("sessions", restored))
	}
	slices.SortFunc(gone, func(a, b presence.Gone) int { return a.Index - b.Index })
	s.knownMu.Lock()
	for _, bt := range sent {
		for _, t := range bt {
			s.rememberTouched(leases, t)
		}
	}
	for _, g := range gone {
		l := leases[g.Index]
		s.forgetSession(l.ClientID, l.SessionID)
	}
	for _, i := range kept {
		l := leases[i]
		if k, ok := s.known[l.ClientID][l.SessionID]; ok {
			k.span = -1
			s.known[l.ClientID][l.SessionID] = k
		}
	}
	s.knownMu.Unlock()
	return gone, nil
}

// touchBatch is what a Touch sent for one bucket: the lease indexes in the
// order sent (refreshes first), how many were refreshes, what they shared,
// and the generation Redis replied with.
type touchBatch struct {
	order     []int
	refreshes int
	lead      knownSession
	gen       string
}

// rememberTouched records what a Touch wrote for one bucket: every full
// lease, and the refreshes too if the bucket's generation is not the one
// they were sent with (which is so for every re-created session). Gone
// sessions are forgotten after. knownMu must be held.
func (s *Store) rememberTouched(leases []presence.Lease, t touchBatch) {
	for j, i := range t.order {
		if j < t.refreshes && t.gen == t.lead.gen {
			continue // a refresh changes nothing this Store knows
		}
		l := leases[i]
		s.rememberLocked(l.ClientID, l.SessionID, knownSession{node: l.Node, ttl: ms(l.TTL), span: span(l), gen: t.gen})
	}
}

// touchArgs appends to args the script arguments of one bucket's leases
// (idx, indexes in leases). Refreshes come first: leases of sessions this
// Store wrote with the same node and span, sharing the node, span and
// generation of the first of them. The other leases are sent whole.
// knownMu must be held.
func (s *Store) touchArgs(args []any, leases []presence.Lease, idx []int) ([]any, touchBatch) {
	t := touchBatch{order: make([]int, 0, len(idx))}
	var full []int
	head := len(args)
	args = append(args, make([]any, nTouchRefresh)...)
	for _, i := range idx {
		l := leases[i]
		k, ok := s.known[l.ClientID][l.SessionID]
		if ok && k.node == l.Node && k.span == span(l) {
			if len(t.order) == 0 {
				t.lead = k
			}
			if k.node == t.lead.node && k.span == t.lead.span && k.gen == t.lead.gen {
				at := len(args)
				args = append(args, make([]any, nTouchRefreshItem)...)
				args[at+touchRefreshItemKey] = l.ClientID + "\x00" + l.SessionID
				args[at+touchRefreshItemTTL] = ms(l.TTL)
				t.order = append(t.order, i)
				continue
			}
		}
		full = append(full, i)
	}
	t.refreshes = len(t.order)
	args[head+touchRefreshCount], args[head+touchRefreshNode] = t.refreshes, t.lead.node
	args[head+touchRefreshSpan], args[head+touchRefreshGen] = t.lead.span, t.lead.gen
	at := len(args)
	args = append(args, make([]any, nTouchFulls)...)
	args[at+touchFullsCount] = len(full)
	for _, i := range full {
		l := leases[i]
		at := len(args)
		args = append(args, make([]any, nTouchFull)...)
		args[at+touchFullClient], args[at+touchFullSession], args[at+touchFullNode] = l.ClientID, l.SessionID, l.Node
		args[at+touchFullTTL], args[at+touchFullAge] = ms(l.TTL), l.Age.Milliseconds()
		args[at+touchFullGen] = s.known[l.ClientID][l.SessionID].gen
	}
	t.order = append(t.order, full...)
	return args, t
}

// touching names the sessions of a Touch, for error texts.
func touching(leases []presence.Lease) string {
	l := leases[0]
	if len(leases) == 1 {
		return fmt.Sprintf("client %q session %q", l.ClientID, l.SessionID)
	}
	return fmt.Sprintf("%d sessions (client %q session %q and others)", len(leases), l.ClientID, l.SessionID)
}

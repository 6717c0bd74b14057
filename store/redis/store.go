package redis

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/vigilhq/vigil/presence"
)

// Store is a presence.Store kept in Redis, shared by every node of an
// application: a single server, a Sentinel-managed primary or a Cluster,
// through the goredis.UniversalClient the caller passes in. It is also a
// presence.Journal: every transition is recorded in a Redis stream by the
// script that decides it; and a presence.NodeSweeper: the sessions of a
// node that died go with presence.ReasonNodeLost (see "Nodes" in the
// package documentation).
//
// Every decision is one Lua script over one bucket (one Cluster slot),
// timed by Redis's own clock. The Store holds no connection of its own:
// closing the client is the caller's business. It starts one goroutine,
// on a single server only, when Read is called with a cursor (see Read);
// the goroutine ends by itself a few seconds after the last Read, when the
// client is closed, or at Close. A Store is safe for concurrent use; use
// New to make one.
//
// The Store remembers, in process memory, which Redis generation each
// session it wrote was last seen in, and the sessions it ended until their
// grace is over, so that after Redis loses its data (a restart without
// persistence) it writes them all back at its next Sweep, silently, and a
// Touch or End of such a session restores it instead of reporting it gone
// (see "Data loss" in the package documentation), with their rooms and
// metadata; that costs about a hundred bytes per live session of the
// nodes using this Store value, plus the rooms' names and the metadata.
//
// It is a presence.RoomStore and a presence.StateStore too: see "Rooms"
// and "States" in the package documentation.
type Store struct {
	rdb goredis.UniversalClient
	cfg Config
	log *slog.Logger
	out *outage
	// single: the client talks to one server (not a Cluster or Ring), so
	// one script may span every bucket and a batch is one command.
	single   bool
	buckets  [][]string
	consumer string // this Store's name in the journal's consumer group

	// knownMu guards known: client ID -> session ID -> what this Store
	// last wrote of the session, ending sessions included until their
	// grace is over (endings lists those, in the order they ended).
	knownMu sync.Mutex
	known   map[string]map[string]knownSession
	endings []endingRef
	knownIn []int // per bucket, the clients of known there

	// genMu guards gens, per bucket the generation this Store last saw
	// ('' before it saw any), and lost, the buckets seen with a new
	// generation since, whose sessions Sweep re-asserts.
	genMu sync.Mutex
	gens  []string
	lost  map[int]bool
	// offMu guards offs, the Offlines this Store decided lately, by client,
	// and its Leaves, by client and room (see offKey and offMemory), and
	// offOrder, the same in the order decided.
	offMu    sync.Mutex
	offs     map[string]offDecided
	offOrder []offRef
	offAt    []time.Time // per bucket, when this Store last decided one there
	// reassertMu orders re-assertion after End: End holds it shared, so a
	// session ended while its bucket is re-asserted is never written back.
	reassertMu sync.RWMutex

	// journalMu guards the fields below.
	journalMu sync.Mutex
	pending   map[string]pendingEntry // by Event.ID(): returned, not acknowledged
	reclaimed []presence.Event        // claimed by Sweep, not yet handed out

	sched sched // this Store's share of the background work (schedule.go)
	tail  tail  // reads the journal ahead of Read, on a single server

	journalBucket map[string]int // journal key -> its bucket
}

type pendingEntry struct {
	bucket int
	id     string // stream entry ID
	at     time.Time
}

var (
	_ presence.Store       = (*Store)(nil)
	_ presence.RoomStore   = (*Store)(nil)
	_ presence.Journal     = (*Store)(nil)
	_ presence.NodeSweeper = (*Store)(nil)
)

// New returns a Store over rdb. It does no I/O: the scripts are loaded on
// first use.
func New(rdb goredis.UniversalClient, cfg Config) (*Store, error) {
	if rdb == nil {
		return nil, fmt.Errorf("%w: redis: nil client", presence.ErrInvalidArgument)
	}
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	s := &Store{
		rdb:      rdb,
		cfg:      cfg,
		log:      cfg.Logger,
		consumer: "c-" + rand.Text(),
		known:    make(map[string]map[string]knownSession),
		pending:  make(map[string]pendingEntry),
		gens:     make([]string, cfg.Buckets),
		lost:     make(map[int]bool),
		offs:     make(map[string]offDecided),
		knownIn:  make([]int, cfg.Buckets),
		offAt:    make([]time.Time, cfg.Buckets),
		sched:    newSched(cfg.Buckets),
	}
	_, s.single = rdb.(*goredis.Client)
	s.out = newOutage(cfg.Logger, rdb)
	s.buckets = make([][]string, cfg.Buckets)
	s.journalBucket = make(map[string]int, cfg.Buckets)
	for b := range s.buckets {
		s.buckets[b] = bucketKeys(cfg.Prefix, b)
		s.journalBucket[s.buckets[b][keyJournal]] = b
	}
	return s, nil
}

// Config returns the Store's configuration, defaults filled in.
func (s *Store) Config() Config { return s.cfg }

func (s *Store) bucket(clientID string) int { return bucketOf(clientID, s.cfg.Buckets) }

func (s *Store) claimer() string {
	if s.cfg.ReclaimAfter < 0 {
		return ""
	}
	return s.consumer
}

func (s *Store) retentionMS() int64 {
	if s.cfg.Retention < 0 {
		return -1
	}
	return s.cfg.Retention.Milliseconds()
}

func (s *Store) reassertMS() int64 {
	if s.cfg.Reassert < 0 {
		return 0
	}
	return s.cfg.Reassert.Milliseconds()
}

// knownGen returns the generation this Store last saw of bucket b.
func (s *Store) knownGen(b int) string {
	s.genMu.Lock()
	defer s.genMu.Unlock()
	return s.gens[b]
}

// sawGen records generation g of bucket b from a reply. A generation other
// than the one seen before means Redis lost the bucket's data: its
// sessions are re-asserted by the next Sweep.
func (s *Store) sawGen(b int, g string) {
	if g == "" {
		return
	}
	s.genMu.Lock()
	defer s.genMu.Unlock()
	if old := s.gens[b]; old != g {
		s.gens[b] = g
		if old != "" {
			s.lost[b] = true
		}
	}
}

func checkLease(l presence.Lease) error {
	if err := l.Validate(); err != nil {
		return fmt.Errorf("redis: %w", err)
	}
	return nil
}

// ms rounds a duration up to whole milliseconds, Redis's resolution here.
func ms(d time.Duration) int64 { return int64((d + time.Millisecond - 1) / time.Millisecond) }

// Add implements presence.Store.
func (s *Store) Add(ctx context.Context, l presence.Lease) ([]presence.Event, error) {
	if err := checkLease(l); err != nil {
		return nil, err
	}
	b := s.bucket(l.ClientID)
	s.knownMu.Lock()
	var sibling string
	for _, k := range s.known[l.ClientID] {
		if k.reason == "" { // live: an ending session does not keep its client online
			sibling = k.gen
			break
		}
	}
	s.knownMu.Unlock()
	args := newArgv(nAddArgs).
		set(addArgClient, l.ClientID).set(addArgSession, l.SessionID).set(addArgNode, l.Node).
		set(addArgTTL, ms(l.TTL)).set(addArgAge, l.Age.Milliseconds()).set(addArgSiblingGen, sibling).
		set(addArgConsumer, s.claimer()).set(addArgJournalLen, s.cfg.JournalLen).
		set(addArgMaxSessions, l.MaxSessions).set(addArgBucketGen, s.knownGen(b)).set(addArgReassert, s.reassertMS()).
		set(addArgBucketSessions, s.share(s.cfg.MaxSessions)).set(addArgBucketClients, s.share(s.cfg.MaxClients)).
		set(addArgRooms, strings.Join(l.Rooms, "\n")).set(addArgMeta, string(l.Meta)).
		set(addArgActivity, activityArg(l.Activity)).set(addArgIdleFor, l.IdleFor.Milliseconds())
	v, err := scriptAdd.Run(ctx, s.rdb, s.buckets[b], args...).Slice()
	s.out.observe(ctx, err)
	if err == nil && len(v) < 1 {
		err = errReply
	}
	if err != nil {
		return nil, fmt.Errorf("redis: add client %q session %q: %w", l.ClientID, l.SessionID, err)
	}
	if no, ok := v[0].(int64); ok { // refused by a cap: add.lua wrote nothing
		return nil, fmt.Errorf("redis: add client %q session %q: %w", l.ClientID, l.SessionID, s.refusal(no))
	}
	// Written: the generation, Redis's time (µs: the metadata's stamp),
	// then the transitions.
	var stamp int64
	if len(v) >= 2 {
		stamp, _ = v[1].(int64)
	}
	if stamp == 0 {
		return nil, fmt.Errorf("redis: add client %q session %q: %w", l.ClientID, l.SessionID, errReply)
	}
	gen, _ := v[0].(string)
	s.sawGen(b, gen)
	s.knownMu.Lock()
	s.rememberLocked(l.ClientID, l.SessionID, knownSession{node: l.Node, ttl: ms(l.TTL), span: span(l), gen: gen})
	{
		k := s.known[l.ClientID][l.SessionID]
		k.away, k.activeAt = l.Activity == presence.ActivityAway, time.Time{}
		if k.away {
			k.activeAt = time.Now().Add(-l.IdleFor)
			if k.rgen == "" { // no rooms known: its activity was written in gen
				k.rgen = gen
			}
		}
		s.known[l.ClientID][l.SessionID] = k
	}
	if len(l.Rooms) > 0 || len(l.Meta) > 0 {
		k := s.known[l.ClientID][l.SessionID]
		k.rooms = joinRooms(k.rooms, l.Rooms)
		if len(l.Meta) > 0 && k.meta != string(l.Meta) {
			k.meta, k.stamp = string(l.Meta), stamp // Redis's clock, as every stamp
		}
		k.rgen = gen
		s.known[l.ClientID][l.SessionID] = k
	}
	s.knownMu.Unlock()
	evs, err := s.events(b, v[2:])
	if err != nil {
		return nil, fmt.Errorf("redis: add client %q session %q: %w", l.ClientID, l.SessionID, err)
	}
	return evs, nil
}

// share is a bucket's share of a cap of the Store (Config.MaxClients,
// MaxSessions), as the scripts take it: 0 for no cap.
func (s *Store) share(limit int) int {
	if limit < 0 {
		return 0
	}
	return limit / s.cfg.Buckets
}

// refusal is the error of an Add that add.lua refused with code no.
func (s *Store) refusal(no int64) error {
	switch no {
	case addRefusedClientSessions:
		return presence.ErrTooManySessions
	case addRefusedSessions:
		return fmt.Errorf("%w: its bucket is at its share (%d) of MaxSessions %d", presence.ErrLimit, s.share(s.cfg.MaxSessions), s.cfg.MaxSessions)
	case addRefusedRooms:
		return fmt.Errorf("%w: the session would be in more than %d rooms", presence.ErrLimit, presence.MaxRoomsPerSession)
	case addRefusedClients:
		return fmt.Errorf("%w: its bucket is at its share (%d) of MaxClients %d and has no offline client it may forget", presence.ErrLimit, s.share(s.cfg.MaxClients), s.cfg.MaxClients)
	}
	return errReply
}

// groups splits bucket numbers into script calls: all in one on a single
// server, one per bucket (one per slot) otherwise.
func (s *Store) groups(bs []int) [][]int {
	if s.single {
		return [][]int{bs}
	}
	out := make([][]int, len(bs))
	for i, b := range bs {
		out[i] = []int{b}
	}
	return out
}

func (s *Store) keysOf(bs []int) []string {
	keys := make([]string, 0, len(bs)*keysPerBucket)
	for _, b := range bs {
		keys = append(keys, s.buckets[b]...)
	}
	return keys
}

// ending names what e selects, for error texts.
func ending(e presence.Ending) string {
	switch {
	case e.SessionID != "":
		return fmt.Sprintf("client %q session %q", e.ClientID, e.SessionID)
	case e.ClientID != "":
		return fmt.Sprintf("client %q", e.ClientID)
	}
	return fmt.Sprintf("sessions of node %q", e.Node)
}

func checkEnding(e presence.Ending) error {
	if err := e.Validate(); err != nil {
		return fmt.Errorf("redis: %w", err)
	}
	return nil
}

// End implements presence.Store. Ending a node's sessions runs one script
// per bucket, pipelined.
func (s *Store) End(ctx context.Context, e presence.Ending) ([]presence.Event, error) {
	if err := checkEnding(e); err != nil {
		return nil, err
	}
	if e.Reason == "" {
		e.Reason = presence.ReasonClosed
	}
	s.reassertMu.RLock()
	defer s.reassertMu.RUnlock()
	var early []presence.Event
	if e.SessionID == "" {
		// Rooms Redis lost with sessions a Touch re-created: back first,
		// so that the sessions' end gives their Leaves (one session's End
		// carries its rooms itself).
		evs, err := s.assertRooms(ctx, s.staleRooms(e))
		if err != nil {
			return evs, fmt.Errorf("redis: end %s: %w", ending(e), err)
		}
		early = evs
	}
	var bs []int
	var calls []call
	if e.ClientID != "" {
		b := s.bucket(e.ClientID)
		var k knownSession
		if e.SessionID != "" {
			s.knownMu.Lock()
			k = s.known[e.ClientID][e.SessionID]
			s.knownMu.Unlock()
		}
		bs = []int{b}
		calls = []call{{keys: s.buckets[b], args: s.endArgs(e, "c", e.ClientID, e.SessionID, k.gen, k.node, k.ttl, b).withRooms(k)}}
	} else {
		for b := range s.buckets {
			bs = append(bs, b)
			calls = append(calls, call{keys: s.buckets[b], args: s.endArgs(e, "n", e.Node, "", "", e.Node, 0, b)})
		}
	}
	replies, err := s.runAll(ctx, scriptEnd, calls)
	var evs []presence.Event
	var n int64
	gens := make(map[int]string, len(bs))
	nows := make(map[int]int64, len(bs))
	for i, r := range replies {
		v, _ := r.([]any)
		if len(v) < 3 {
			continue // failed; err says why
		}
		gens[bs[i]], _ = v[0].(string)
		s.sawGen(bs[i], gens[bs[i]])
		k, _ := v[1].(int64)
		n += k
		nows[bs[i]], _ = v[2].(int64)
		more, perr := s.events(bs[i], v[3:])
		evs = append(evs, more...)
		if perr != nil && err == nil {
			err = perr
		}
	}
	if err == nil {
		s.ended(e, gens, nows, n > 0)
	}
	evs = append(early, evs...)
	if err != nil {
		return evs, fmt.Errorf("redis: end %s: %w", ending(e), err)
	}
	if n == 0 {
		return early, fmt.Errorf("redis: end %s: %w", ending(e), presence.ErrNotFound)
	}
	return evs, nil
}

// endArgs is the ARGV of one end.lua call for e in bucket b: mode 'c'
// (client who, one session or all), 'n' (node who) or 'r' (re-assert
// session of client who as ending, see reassert).
func (s *Store) endArgs(e presence.Ending, mode, who, session, knownGen, node string, linger int64, b int) argv {
	if e.Reason == "" {
		e.Reason = presence.ReasonClosed
	}
	unseen := "0"
	if e.Reason.Unseen() {
		unseen = "1"
	}
	return newArgv(nEndArgs).
		set(endArgMode, mode).set(endArgWho, who).set(endArgSession, session).
		set(endArgReason, string(e.Reason)).set(endArgGrace, ms(e.Grace)).set(endArgKnownGen, knownGen).
		set(endArgRetention, s.retentionMS()).set(endArgConsumer, s.claimer()).
		set(endArgJournalLen, s.cfg.JournalLen).set(endArgNode, node).
		set(endArgLinger, linger).set(endArgUnseen, unseen).
		set(endArgBucketGen, s.knownGen(b)).set(endArgReassert, s.reassertMS()).
		set(endArgRooms, "").set(endArgMeta, "").set(endArgStamp, 0).set(endArgRoomsGen, "").
		set(endArgKnownActivity, "").set(endArgKnownIdleFor, 0)
}

// withRooms sets, in the ARGV of an end.lua call for one session, the
// rooms, metadata and activity its Store knows it has (see reassertrooms).
func (a argv) withRooms(k knownSession) argv {
	a = a.set(endArgRooms, strings.Join(k.rooms, "\n")).set(endArgMeta, k.meta).
		set(endArgStamp, k.stamp).set(endArgRoomsGen, k.rgen)
	if k.away {
		a = a.set(endArgKnownActivity, "away").set(endArgKnownIdleFor, max(0, time.Since(k.activeAt).Milliseconds()))
	}
	return a
}

// ended updates what this Store knows of the sessions e ended: with a
// Grace they are ending until it is over, in the generations of gens
// (per bucket) and with their grace deadline on Redis's clock (nows, per
// bucket, is Redis's time when End ran), so that reassert can write them
// back as ending if Redis loses them meanwhile; without one, or when End
// found nothing (!found), they are forgotten.
func (s *Store) ended(e presence.Ending, gens map[int]string, nows map[int]int64, found bool) {
	until := time.Now().Add(e.Grace)
	reason := e.Reason
	if reason == "" {
		reason = presence.ReasonClosed
	}
	s.knownMu.Lock()
	defer s.knownMu.Unlock()
	mark := func(client string, m map[string]knownSession, sid string) {
		k, ok := m[sid]
		if !ok {
			return
		}
		if e.Grace <= 0 || !found {
			s.forgetSession(client, sid)
			return
		}
		b := s.bucket(client)
		k.reason, k.until, k.gen, k.deadline = reason, until, gens[b], nows[b]+ms(e.Grace)
		m[sid] = k
		s.endings = append(s.endings, endingRef{client: client, session: sid, until: until})
	}
	switch {
	case e.SessionID != "":
		mark(e.ClientID, s.known[e.ClientID], e.SessionID)
	case e.ClientID != "":
		m := s.known[e.ClientID]
		for sid := range m {
			mark(e.ClientID, m, sid)
		}
	default:
		for c, m := range s.known {
			for sid, k := range m {
				if k.node == e.Node {
					mark(c, m, sid)
				}
			}
		}
	}
}

// Sweep implements presence.Store. On a single server one script call
// sweeps every bucket; on a Cluster one call per bucket, pipelined. It also
// forgets the offline clients of a bucket over its share of
// Config.MaxClients, longest offline first, claims the journal entries
// left unacknowledged for Config.ReclaimAfter, which Reclaim hands out,
// and re-asserts the sessions of the buckets that Redis lost since the
// last Sweep (see reassert).
func (s *Store) Sweep(ctx context.Context) ([]presence.Event, error) {
	evs, err := s.sweep(ctx)
	if err != nil {
		return evs, fmt.Errorf("redis: sweep: %w", err)
	}
	return evs, nil
}

// SweepNode implements presence.NodeSweeper: this Store's share of the
// namespace's sweeping. The Stores that call SweepNode share the buckets,
// each sweeping those it has the duty of, and any bucket it holds
// something in whose data Redis lost; it renews l.Node's lease in the
// buckets it sweeps and in those where it holds sessions (see "Nodes" and
// "Background work" in the package documentation).
func (s *Store) SweepNode(ctx context.Context, l presence.NodeLease) ([]presence.Event, error) {
	if err := l.Validate(); err != nil {
		return nil, fmt.Errorf("redis: %w", err)
	}
	evs, err := s.sweepShare(ctx, l.Node, ms(l.TTL))
	if err != nil {
		return evs, fmt.Errorf("redis: sweep as node %q: %w", l.Node, err)
	}
	return evs, nil
}

// sweep is Sweep: every bucket, then re-assertion of what Redis lost.
func (s *Store) sweep(ctx context.Context) ([]presence.Event, error) {
	all := make([]int, len(s.buckets))
	for b := range all {
		all[b] = b
	}
	s.prunePending()
	start := time.Now()
	evs, done, err := s.sweepBuckets(ctx, all, "", 0)
	if err != nil {
		return evs, err
	}
	more, err := s.reassert(ctx)
	evs = append(evs, more...)
	if err != nil {
		return evs, err
	}
	if done {
		s.pruneEndings(start)
		s.pruneOffs(start)
	}
	return evs, nil
}

// sweepBuckets runs sweep.lua over buckets bs until none has more due (or
// a hundred rounds), and reports whether they all ran out of work (done):
// node renews its lease for leaseMS in each, unless node is empty.
func (s *Store) sweepBuckets(ctx context.Context, bs []int, node string, leaseMS int64) (evs []presence.Event, done bool, err error) {
	if len(bs) == 0 {
		return nil, true, nil
	}
	groups := s.groups(bs)
	var claimed []presence.Event
	for round := 0; len(groups) > 0 && round < 100; round++ {
		calls := make([]call, len(groups))
		for i, g := range groups {
			reclaim := int64(-1)
			if s.cfg.ReclaimAfter >= 0 && round == 0 {
				reclaim = s.cfg.ReclaimAfter.Milliseconds()
			}
			perBucket := max(1, sweepBatch/len(g))
			args := newArgv(nSweepArgs).
				set(sweepArgRetention, s.retentionMS()).set(sweepArgLimit, perBucket).
				set(sweepArgConsumer, s.claimer()).set(sweepArgJournalLen, s.cfg.JournalLen).
				set(sweepArgReclaim, reclaim).set(sweepArgNode, node).set(sweepArgLease, leaseMS).
				set(sweepArgReassert, s.reassertMS()).set(sweepArgBucketClients, s.share(s.cfg.MaxClients))
			for _, b := range g {
				bh := make(argv, nSweepBucket)
				bh[sweepBucketGen] = s.knownGen(b)
				args = append(args, bh...)
			}
			calls[i] = call{keys: s.keysOf(g), args: args}
		}
		replies, err := s.runAll(ctx, scriptSweep, calls)
		var next [][]int
		for i, r := range replies {
			v, _ := r.([]any)
			if len(v) < 1+len(groups[i]) {
				continue
			}
			more, _ := v[0].(int64)
			if more > 0 {
				next = append(next, groups[i])
			}
			for j, b := range groups[i] {
				g, _ := v[1+j].(string)
				s.sawGen(b, g)
			}
			ev, cl, perr := s.sweepReply(v[1+len(groups[i]):])
			evs = append(evs, ev...)
			claimed = append(claimed, cl...)
			if perr != nil && err == nil {
				err = perr
			}
		}
		if len(claimed) > 0 {
			s.stashReclaimed(ctx, claimed)
			claimed = nil
		}
		if err != nil {
			return evs, false, err
		}
		groups = next
	}
	return evs, len(groups) == 0, nil
}

// sweepReply splits a sweep reply into transitions and reclaimed entries.
// A transition's bucket is its client's; so is a reclaimed entry's.
func (s *Store) sweepReply(v []any) (evs, claimed []presence.Event, err error) {
	sep := slices.Index(v, any("|"))
	if sep < 0 {
		return nil, nil, errReply
	}
	for i := 0; i+nEventFields <= sep; i += nEventFields {
		ev, eid, err := decodeEvent(v[i : i+nEventFields])
		if err != nil {
			return evs, claimed, err
		}
		evs = append(evs, ev)
		s.addPending(s.bucket(ev.ClientID), ev, eid)
		s.decided(s.bucket(ev.ClientID), ev)
	}
	rest := v[sep+1:]
	for len(rest) >= 2 {
		eid, _ := rest[0].(string)
		nf, _ := rest[1].(int64)
		if nf < 0 || int64(len(rest)-2) < nf {
			return evs, claimed, errReply
		}
		fields := make([]string, nf)
		for i := range fields {
			fields[i], _ = rest[2+i].(string)
		}
		rest = rest[2+nf:]
		ev, err := decodeEntry(fields)
		if err != nil {
			s.log.Warn("redis: unreadable journal entry", slog.String("entry", eid), slog.Any("err", err))
			continue
		}
		claimed = append(claimed, ev)
		s.addPending(s.bucket(ev.ClientID), ev, eid)
		s.decided(s.bucket(ev.ClientID), ev)
	}
	return evs, claimed, nil
}

// Lookup implements presence.Store: one HMGET per bucket, pipelined, then
// for online clients their sessions' last beats (see lastSeen).
func (s *Store) Lookup(ctx context.Context, clientIDs []string) ([]presence.Presence, error) {
	for _, id := range clientIDs {
		if err := presence.ValidateID(id); err != nil {
			return nil, fmt.Errorf("redis: lookup: %w", err)
		}
	}
	out := make([]presence.Presence, len(clientIDs))
	if len(clientIDs) == 0 {
		return out, nil
	}
	sess := make([][]sessionRec, len(clientIDs))
	acts := make([]activity, len(clientIDs))
	byBucket := make(map[int][]int)
	for i, id := range clientIDs {
		out[i].ClientID = id
		out[i].State = presence.StateOffline
		b := s.bucket(id)
		byBucket[b] = append(byBucket[b], i)
	}
	pipe := s.rdb.Pipeline()
	type q struct {
		idx      []int
		cmd, act *goredis.SliceCmd
	}
	var qs []q
	for b, idx := range byBucket {
		fields := make([]string, len(idx))
		for j, i := range idx {
			fields[j] = clientIDs[i]
		}
		qs = append(qs, q{idx, pipe.HMGet(ctx, s.buckets[b][keyClients], fields...), pipe.HMGet(ctx, s.buckets[b][keyClientActivity], fields...)})
	}
	if err := s.exec(ctx, pipe); err != nil {
		return nil, fmt.Errorf("redis: lookup %d clients: %w", len(clientIDs), err)
	}
	for _, q := range qs {
		for j, v := range q.cmd.Val() {
			rec, ok := v.(string)
			if !ok {
				continue
			}
			p, ss, err := decodeClient(clientIDs[q.idx[j]], rec)
			if err != nil {
				return nil, fmt.Errorf("redis: lookup: %w", err)
			}
			out[q.idx[j]] = p
			sess[q.idx[j]] = ss
			if a, ok := q.act.Val()[j].(string); ok {
				acts[q.idx[j]] = decodeActivity(a)
			}
		}
	}
	if err := s.lastSeen(ctx, out, sess, acts); err != nil {
		return nil, fmt.Errorf("redis: lookup %d clients: %w", len(clientIDs), err)
	}
	return out, nil
}

// lastSeen moves the LastSeen of the online clients among ps to their
// sessions' latest beat: a live session's last beat is its deadline in the
// expiry index minus its span (see "Cost" in the package documentation),
// which its client's record does not follow. sess[i] are ps[i]'s sessions
// as its record has them. Plain commands, pipelined, in one round trip:
// the sessions' deadlines and end reasons. A session that ends in between
// counts with what was read of it: this is a read, not a decision. With
// acts (the clients' activity records), it also sets their State and
// LastActive, reading the away sessions' last active times in the same
// round trip.
func (s *Store) lastSeen(ctx context.Context, ps []presence.Presence, sess [][]sessionRec, acts []activity) error {
	if acts != nil {
		defer setStates(ps, acts)
	}
	type batch struct {
		sks     []string     // session keys
		recs    []sessionRec // per session key, its record
		owners  []int        // per session key, its client's index in ps
		ends    *goredis.FloatSliceCmd
		reasons *goredis.SliceCmd
		aways   *goredis.SliceCmd // nil without acts
	}
	bs := make(map[int]*batch)
	for i, p := range ps {
		if !p.Online {
			continue
		}
		if len(sess[i]) == 0 {
			continue
		}
		b := s.bucket(p.ClientID)
		bt := bs[b]
		if bt == nil {
			bt = &batch{}
			bs[b] = bt
		}
		for _, r := range sess[i] {
			bt.sks = append(bt.sks, p.ClientID+"\x00"+r.id)
			bt.recs = append(bt.recs, r)
			bt.owners = append(bt.owners, i)
		}
	}
	if len(bs) == 0 {
		return nil
	}
	pipe := s.rdb.Pipeline()
	for b, bt := range bs {
		keys := s.buckets[b]
		bt.ends = pipe.ZMScore(ctx, keys[keyExpiry], bt.sks...)
		bt.reasons = pipe.HMGet(ctx, keys[keyReasons], bt.sks...)
		if acts != nil {
			bt.aways = pipe.HMGet(ctx, keys[keySessionAway], bt.sks...)
		}
	}
	if err := s.exec(ctx, pipe); err != nil {
		return err
	}
	for _, bt := range bs {
		ends, reasons := bt.ends.Val(), bt.reasons.Val()
		if len(ends) != len(bt.owners) || len(reasons) != len(bt.owners) {
			return errReply
		}
		for j, i := range bt.owners {
			seen := bt.recs[j].seen
			if reasons[j] == nil && ends[j] > 0 {
				seen = max(seen, int64(ends[j])-bt.recs[j].span)
			}
			if t := time.UnixMilli(seen); t.After(ps[i].LastSeen) {
				ps[i].LastSeen = t
			}
			if acts != nil {
				active := seen
				if a, ok := bt.aways.Val()[j].(string); ok {
					active = num(a)
				}
				acts[i].latest = max(acts[i].latest, active)
			}
		}
	}
	return nil
}

// activity is what Lookup reads of a client's activity record (see
// decodeActivity), and latest the latest last active time of its
// sessions (ms).
type activity struct {
	away, active int64
	hasActive    bool
	latest       int64
}

func decodeActivity(rec string) activity {
	away, active, ok := splitActivity(rec)
	return activity{away: away, active: active, hasActive: ok}
}

// setStates sets the State and LastActive of ps from acts.
func setStates(ps []presence.Presence, acts []activity) {
	for i := range ps {
		p, a := &ps[i], acts[i]
		switch {
		case p.LastSeen.IsZero() && !p.Online: // unknown
			p.State = presence.StateOffline
			continue
		case !p.Online:
			p.State = presence.StateOffline
			p.LastActive = p.LastSeen
			if a.hasActive {
				p.LastActive = time.UnixMilli(a.active)
			}
			continue
		case a.away >= int64(p.Sessions):
			p.State = presence.StateAway
		default:
			p.State = presence.StateOnline
		}
		t := a.latest
		if a.hasActive {
			t = max(t, a.active)
		}
		if t > 0 {
			p.LastActive = time.UnixMilli(t)
		}
	}
}

// Sessions implements presence.Store.
func (s *Store) Sessions(ctx context.Context, clientID string) ([]presence.SessionInfo, error) {
	if err := presence.ValidateID(clientID); err != nil {
		return nil, fmt.Errorf("redis: sessions: %w", err)
	}
	args := newArgv(nSessionsArgs).set(sessionsArgClient, clientID)
	v, err := scriptSessions.Run(ctx, s.rdb, s.buckets[s.bucket(clientID)], args...).Slice()
	s.out.observe(ctx, err)
	if err == goredis.Nil {
		return nil, fmt.Errorf("redis: sessions of %q: %w", clientID, presence.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("redis: sessions of %q: %w", clientID, err)
	}
	out := make([]presence.SessionInfo, 0, len(v)/6)
	for i := 0; i+6 <= len(v); i += 6 {
		sid, _ := v[i].(string)
		rec, _ := v[i+1].(string)
		reason, _ := v[i+2].(string)
		rooms, _ := v[i+3].(string)
		meta, _ := v[i+4].(string)
		seen, _, node, ok := splitSession(rec)
		if !ok {
			return nil, fmt.Errorf("redis: sessions of %q: %w", clientID, errReply)
		}
		si := presence.SessionInfo{
			ClientID: clientID, ID: sid, Node: node, LastSeen: time.UnixMilli(seen),
			Ending: reason != "", Reason: presence.Reason(reason), Rooms: splitRooms(rooms),
		}
		if meta != "" {
			si.Meta = json.RawMessage(meta)
		}
		si.Activity, si.LastActive = presence.ActivityActive, si.LastSeen
		if at := num(v[i+5]); str(v[i+5]) != "" {
			si.Activity, si.LastActive = presence.ActivityAway, time.UnixMilli(at)
		}
		out = append(out, si)
	}
	return out, nil
}

// List implements presence.Store. Clients come bucket by bucket, in ID
// (byte) order within a bucket; the cursor holds the bucket and the last ID
// returned.
func (s *Store) List(ctx context.Context, cursor string, limit int) (presence.Page, error) {
	if limit <= 0 {
		return presence.Page{}, fmt.Errorf("%w: redis: page limit %d", presence.ErrInvalidArgument, limit)
	}
	b, after, err := decodeListCursor(cursor, len(s.buckets))
	if err != nil {
		return presence.Page{}, err
	}
	var page presence.Page
	for ; b < len(s.buckets); b, after = b+1, "" {
		need := limit - len(page.Clients)
		args := newArgv(nListArgs).set(listArgAfter, after).set(listArgLimit, need+1)
		v, err := scriptList.Run(ctx, s.rdb, s.buckets[b], args...).Slice()
		s.out.observe(ctx, err)
		if err != nil {
			return presence.Page{}, fmt.Errorf("redis: list: %w", err)
		}
		n := len(v) / 4
		first := len(page.Clients)
		var sess [][]sessionRec
		for i := 0; i < n && i < need; i++ {
			id, _ := v[4*i].(string)
			rec, _ := v[4*i+1].(string)
			p, ss, err := decodeClient(id, rec)
			if err != nil {
				return presence.Page{}, fmt.Errorf("redis: list: %w", err)
			}
			fillState(str(v[4*i+2]), num(v[4*i+3]), &p.State, &p.LastActive)
			page.Clients = append(page.Clients, p)
			sess = append(sess, ss)
		}
		if err := s.lastSeen(ctx, page.Clients[first:], sess, nil); err != nil {
			return presence.Page{}, fmt.Errorf("redis: list: %w", err)
		}
		switch {
		case n > need: // more in this bucket
			page.Next = encodeListCursor(b, page.Clients[len(page.Clients)-1].ClientID)
			return page, nil
		case n == need:
			if b+1 < len(s.buckets) {
				page.Next = encodeListCursor(b+1, "")
			}
			return page, nil
		}
	}
	return page, nil
}

// Count implements presence.Store: one MGET of the bucket's count of
// online clients (and the markers that tell its key layout) per bucket,
// pipelined.
func (s *Store) Count(ctx context.Context) (int, error) {
	pipe := s.rdb.Pipeline()
	cmds := make([]*goredis.SliceCmd, len(s.buckets))
	for b, keys := range s.buckets {
		cmds[b] = pipe.MGet(ctx, append([]string{keys[keyOnlineCount]}, layoutKeys(keys)...)...)
	}
	if err := s.exec(ctx, pipe); err != nil {
		return 0, fmt.Errorf("redis: count: %w", err)
	}
	n := 0
	for _, c := range cmds {
		v := c.Val()
		if len(v) != 3 {
			return 0, fmt.Errorf("redis: count: %w", errReply)
		}
		if isLayout1(v[1:]) {
			return 0, fmt.Errorf("redis: count: %w", errLayout1)
		}
		if v[0] == nil {
			continue
		}
		k, err := strconv.Atoi(str(v[0]))
		if err != nil {
			return 0, fmt.Errorf("redis: count: %w", errReply)
		}
		n += k
	}
	return n, nil
}

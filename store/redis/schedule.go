package redis

import (
	"cmp"
	"context"
	"hash/fnv"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/vigilhq/vigil/presence"
)

// The background work of a namespace (see "Background work" in the
// package documentation) is shared among the Stores that sweep it through
// SweepNode: each registers in one small sorted set, and a bucket is
// swept by the live Store that ranks first for it (rendezvous hashing over
// the registry), so its cost grows with the buckets, not with the nodes
// times the buckets.
const (
	// maintEvery bounds how long a bucket a Store sweeps goes without a
	// look at its chores (Retention, MaxClients, reclaiming the journal:
	// see chores), swept in full when it has any, while nothing falls due
	// in it; lower with a short ReclaimAfter.
	maintEvery = 10 * time.Second
	// youngGen is how long past its re-assertion window a bucket whose
	// generation is new is checked at every Sweep for transitions the
	// window held, swept in full when it has any, so that they are decided
	// at once.
	youngGen = 5 * time.Second
	// pruneLag: the sessions a Store ended are forgotten this long after
	// their grace, rather than at its next Sweep: the bucket's sweeper
	// (maybe another Store) removes them within a SweepInterval, or a
	// takeover, of their grace.
	pruneLag = 5 * time.Second
	// clusterSkew is how early, on a Cluster, a bucket whose earliest
	// deadline is near counts as due: the registry's shard tells the time,
	// and the bucket's shard may run a little ahead of it.
	clusterSkew = 100 * time.Millisecond
	// clockFresh: on a single server, a Store that read Redis's clock
	// less than this long ago writes its registry entry, and renews its
	// node's leases, with plain commands from that reading (see
	// registryQueue), not through nodes.lua and lease.lua: a script call
	// costs Redis several times what the commands it runs cost.
	clockFresh = 10 * time.Second
	// clockSlack is how far the Redis time a Store infers from its last
	// reading may be off the time Redis tells in the same round trip
	// before the Store writes its entry, and the leases, again.
	clockSlack = 50 * time.Millisecond
	// registryForget: entries that ran out this long ago are of Stores
	// gone for good, and dropped (nodes.lua drops them too), by the plain
	// calls every registryPrune of them.
	registryForget = time.Minute
	registryPrune  = 20
	// leaseForget: a node new to a bucket drops the leases there that ran
	// out this long ago (lease.lua and sweep.lua: a day).
	leaseForget = 24 * time.Hour
)

// sched is what a Store knows of its share of the background work.
type sched struct {
	// mu guards the fields below.
	mu   sync.Mutex
	last time.Time // when SweepNode last began
	ok   time.Time // when the last SweepNode that succeeded began
	now  int64     // Redis's time (ms) at the last registry call
	at   time.Time // when, locally, Redis's clock read now (mid round trip)
	// calls counts the registry's plain calls, to drop the entries gone
	// for good every registryPrune of them.
	calls int
	// unfinished: the last sweep failed or left sessions due.
	unfinished bool
	view       []string // the live Stores of the registry, sorted, as last read
	mine       []bool   // per bucket: this Store sweeps it, under view
	full       []time.Time
	// lease: per node that swept through this Store, per bucket, when
	// this Store last renewed the node's lease there (by a sweep or
	// lease.lua).
	lease map[string][]time.Time
}

func newSched(buckets int) sched {
	return sched{full: make([]time.Time, buckets), lease: make(map[string][]time.Time)}
}

// registryKey is the registry of the Stores sharing the namespace's
// background work: one zset, in bucket 0's slot (so its name starts as
// every key of the namespace does).
func registryKey(prefix string) string { return "{" + prefix + ":b0}:sw" }

// owners returns, per bucket, whether member ranks first for it among
// view (rendezvous hashing: a Store joining or leaving moves only the
// buckets it takes or leaves).
func owners(view []string, member string, buckets int) []bool {
	mine := make([]bool, buckets)
	if len(view) == 0 {
		for b := range mine {
			mine[b] = true
		}
		return mine
	}
	for b := range mine {
		var best uint64
		var who string
		for _, m := range view {
			h := fnv.New64a()
			h.Write([]byte(m))
			h.Write([]byte{0})
			h.Write([]byte(strconv.Itoa(b)))
			if v := mix(h.Sum64()); who == "" || v > best {
				best, who = v, m
			}
		}
		mine[b] = who == member
	}
	return mine
}

// mix is MurmurHash3's 64-bit finalizer: FNV-1a barely stirs its high bits
// with the last bytes, which alone tell the buckets apart here.
func mix(h uint64) uint64 {
	h ^= h >> 33
	h *= 0xff51afd7ed558ccd
	h ^= h >> 33
	h *= 0xc4ceb9fe1a85ec53
	h ^= h >> 33
	return h
}

// genTime reads the Redis time (ms) a generation marker was made at.
func genTime(g string) (int64, bool) {
	sec, usec, ok := strings.Cut(g, ".")
	if !ok {
		return 0, false
	}
	s, err1 := strconv.ParseInt(sec, 10, 64)
	u, err2 := strconv.ParseInt(usec, 10, 64)
	return s*1000 + u/1000, err1 == nil && err2 == nil
}

// young reports whether a bucket of generation g may hold transitions of
// its re-assertion window still (now: Redis's time, ms, 0 if unknown).
func (s *Store) young(g string, now int64) bool {
	gt, ok := genTime(g)
	return !ok || now == 0 || gt+s.reassertMS()+youngGen.Milliseconds() > now
}

// holding reports, per bucket, whether this Store holds anything there that
// a data loss would make it re-assert: sessions (live or ending), or
// Offlines and Leaves it decided within offMemory.
func (s *Store) holding() []bool {
	held := make([]bool, len(s.buckets))
	s.knownMu.Lock()
	for b, n := range s.knownIn {
		held[b] = n > 0
	}
	s.knownMu.Unlock()
	s.offMu.Lock()
	for b, at := range s.offAt {
		if !at.IsZero() && time.Since(at) < offMemory+pruneLag {
			held[b] = true
		}
	}
	s.offMu.Unlock()
	return held
}

// sweepShare is SweepNode: it sweeps the buckets this Store has the duty of
// (see sched), renews node's lease where it holds sessions, and sweeps any
// bucket it holds something in whose data Redis lost.
func (s *Store) sweepShare(ctx context.Context, node string, leaseMS int64) ([]presence.Event, error) {
	start := time.Now()
	sc := &s.sched
	sc.mu.Lock()
	// Until a second call tells the interval, the entry lasts its
	// shortest: a Store that sweeps once and stops holds no bucket long.
	interval := 100 * time.Millisecond
	if !sc.last.IsZero() {
		interval = min(max(start.Sub(sc.last), 100*time.Millisecond), 2*time.Second)
	}
	sc.last = start
	lastOK := sc.ok
	rnow := sc.now
	mineBefore := sc.mine
	if mineBefore == nil {
		mineBefore = owners(nil, s.consumer, len(s.buckets))
	}
	fullBefore := slices.Clone(sc.full)
	// On a single server, with Redis's clock read lately, the registry
	// entry and the leases due are written with plain commands (see
	// registryQueue).
	var reg registryCall
	if s.single && rnow != 0 && start.Sub(sc.at) < clockFresh {
		reg.est = rnow + start.Sub(sc.at).Milliseconds()
		sc.calls++
		reg.prune = sc.calls%registryPrune == 0
		if leases := sc.lease[node]; node != "" && leases != nil && !sc.unfinished {
			ttl := time.Duration(leaseMS) * time.Millisecond
			for b, at := range leases {
				// Renewed by this Store less than two thirds of the TTL
				// ago: the lease has not run out, so renewing it before
				// the sweep vouches for nothing the sweep could miss
				// (see "Nodes"). Older, it is left to the sweep, or to
				// lease.lua after it.
				if age := start.Sub(at); !at.IsZero() && age >= ttl/3 && age < 2*ttl/3 {
					reg.leases = append(reg.leases, b)
				}
			}
		}
	}
	sc.mu.Unlock()
	held := s.holding()
	if len(reg.leases) > 0 {
		reg.leases = slices.DeleteFunc(reg.leases, func(b int) bool { return !mineBefore[b] && !held[b] })
	}

	// One round trip: the registry (which tells Redis's time), the
	// generation of every bucket this Store sweeps or holds something in,
	// and the earliest deadline of each bucket it sweeps.
	regLease := min(max(3*interval, 300*time.Millisecond), 3*time.Second)
	reg.key, reg.member, reg.lease = registryKey(s.cfg.Prefix), s.consumer, regLease.Milliseconds()
	reg.node, reg.nodeLease = node, leaseMS
	pipe := s.rdb.Pipeline()
	s.registryQueue(ctx, pipe, &reg)
	var watched []int
	for b := range s.buckets {
		if mineBefore[b] || held[b] {
			watched = append(watched, b)
		}
	}
	gens := make(map[int]*goredis.StringCmd, len(watched))
	var mget *goredis.SliceCmd
	if s.single && len(watched) > 0 {
		keys := make([]string, len(watched))
		for i, b := range watched {
			keys[i] = s.buckets[b][keyGen]
		}
		mget = pipe.MGet(ctx, keys...)
	} else {
		for _, b := range watched {
			gens[b] = pipe.Get(ctx, s.buckets[b][keyGen])
		}
	}
	maint := maintEvery
	if s.cfg.ReclaimAfter > 0 {
		maint = max(min(maint, s.cfg.ReclaimAfter/3), interval)
	}
	firsts := make(map[int]*goredis.ZSliceCmd)
	holds := make(map[int]*goredis.IntCmd)
	chores := make(map[int]*chores)
	for _, b := range watched {
		if mineBefore[b] {
			firsts[b] = pipe.ZRangeWithScores(ctx, s.buckets[b][keyExpiry], 0, 0)
			if g := s.knownGen(b); s.young(g, rnow) && s.windowEnding(g, rnow, interval) {
				holds[b] = pipe.Exists(ctx, s.buckets[b][keyHeld])
			}
			if start.Sub(fullBefore[b]) >= maint {
				chores[b] = s.queueChores(ctx, pipe, b)
			}
		}
	}
	sent := time.Now()
	_, _ = pipe.Exec(ctx) // errors are read per command below
	at := sent.Add(time.Since(sent) / 2)
	now, view, regErr := s.registryResult(ctx, &reg)
	if goredis.HasErrorPrefix(regErr, "NOSCRIPT") {
		regErr = scriptNodes.Run(ctx, s.rdb, []string{reg.key},
			newArgv(nNodesArgs).set(nodesArgMember, reg.member).set(nodesArgLease, reg.lease)...).Err()
		if regErr == nil {
			// The registry is written; read the rest next time, sweeping
			// all this Store's buckets this once.
			return s.sweepSome(ctx, start, mineBefore, held, nil, node, leaseMS)
		}
	}
	s.out.observe(ctx, regErr)
	if regErr != nil {
		// No registry (its shard is down, say): sweep what this Store
		// swept, in full, so that the buckets on the shards that answer
		// are still swept; the others take its buckets over as its entry
		// runs out, harmlessly.
		evs, err := s.sweepSome(ctx, start, mineBefore, held, nil, node, leaseMS)
		return evs, cmp.Or(err, regErr)
	}

	margin := int64(0)
	if !s.single {
		margin = clusterSkew.Milliseconds()
	}
	seen := make(map[int]string, len(watched))
	present := make(map[int]bool, len(watched))
	for i, b := range watched {
		var v any
		if mget != nil {
			if i < len(mget.Val()) {
				v = mget.Val()[i]
			}
		} else if g, err := gens[b].Result(); err == nil {
			v = g
		}
		if g, ok := v.(string); ok {
			seen[b], present[b] = g, true
		}
	}
	due := make([]bool, len(s.buckets))
	var taken []int
	sc.mu.Lock()
	sc.now, sc.at = now, at
	if leases := sc.lease[node]; leases != nil {
		for _, b := range reg.leases {
			leases[b] = start
		}
	}
	if !slices.Equal(view, sc.view) || sc.mine == nil {
		sc.view = view
		sc.mine = owners(view, s.consumer, len(s.buckets))
	}
	mine := sc.mine
	for b := range s.buckets {
		switch {
		case !mine[b] && !held[b]:
			continue
		case mine[b] && !mineBefore[b]: // taken over
			due[b] = true
			taken = append(taken, b)
			continue
		case !present[b] || seen[b] != s.knownGen(b): // lost, or new to this Store
			due[b] = true
			continue
		case !mine[b]:
			continue
		case start.Sub(sc.full[b]) >= maint:
			if c := chores[b]; c == nil || c.due(s, now) {
				due[b] = true
				continue
			}
			sc.full[b] = start // nothing for a full sweep to do
		}
		if h := holds[b]; h != nil && h.Val() > 0 {
			// Transitions held by a re-assertion window: decided by the
			// first sweep after it (a sweep inside it decides nothing).
			if gt, ok := genTime(seen[b]); !ok || gt+s.reassertMS() <= now {
				due[b] = true
				continue
			}
		}
		if z := firsts[b]; z != nil {
			if zs := z.Val(); len(zs) > 0 && int64(zs[0].Score) <= now+margin {
				due[b] = true
			}
		}
	}
	sc.mu.Unlock()
	// This Store's entry never ran out since its last Sweep: it was live,
	// and Redis reachable, all along, so its lease in the buckets it takes
	// over may vouch for that at once, and their sessions whose node went
	// silent meanwhile go as node_lost from the first sweep on.
	if len(taken) > 0 && node != "" && !lastOK.IsZero() && start.Sub(lastOK) < regLease {
		if err := s.renewLeases(ctx, taken, node, leaseMS); err != nil {
			return nil, err
		}
	}
	return s.sweepSome(ctx, start, mine, held, due, node, leaseMS)
}

// sweepSome sweeps the buckets due (every bucket of mine when due is nil),
// renews node's lease where mine or held says this Store needs one and no
// sweep renewed it lately, then re-asserts what Redis lost.
func (s *Store) sweepSome(ctx context.Context, start time.Time, mine, held, due []bool, node string, leaseMS int64) ([]presence.Event, error) {
	var bs []int
	for b := range s.buckets {
		if due == nil && mine[b] || due != nil && due[b] {
			bs = append(bs, b)
		}
	}
	s.prunePending()
	evs, done, err := s.sweepBuckets(ctx, bs, node, leaseMS)
	sc := &s.sched
	sc.mu.Lock()
	leases := sc.lease[node]
	if leases == nil {
		leases = make([]time.Time, len(s.buckets))
		sc.lease[node] = leases
	}
	// A sweep that left sessions due (a hundred rounds were not enough)
	// may not have renewed the lease where it had run out: until a Sweep
	// finishes, no lease is renewed before a sweep (see registryCall).
	sc.unfinished = err != nil || !done
	if err == nil {
		for _, b := range bs {
			sc.full[b] = start
			leases[b] = start
		}
	}
	var renew []int
	for b := range s.buckets {
		if (mine[b] || held[b]) && start.Sub(leases[b]) >= time.Duration(leaseMS)*time.Millisecond/3 {
			renew = append(renew, b)
		}
	}
	sc.mu.Unlock()
	if err != nil {
		return evs, err
	}
	if len(renew) > 0 {
		if err := s.renewLeases(ctx, renew, node, leaseMS); err != nil {
			return evs, err
		}
		sc.mu.Lock()
		for _, b := range renew {
			leases[b] = start
		}
		sc.mu.Unlock()
	}
	more, err := s.reassert(ctx)
	evs = append(evs, more...)
	if err != nil {
		return evs, err
	}
	if done {
		s.pruneEndings(start.Add(-pruneLag))
		s.pruneOffs(start)
	}
	sc.mu.Lock()
	sc.ok = start
	sc.mu.Unlock()
	return evs, nil
}

// renewLeases renews node's lease in buckets bs: one lease.lua call on a
// single server, one per bucket, pipelined, on a Cluster.
func (s *Store) renewLeases(ctx context.Context, bs []int, node string, leaseMS int64) error {
	args := newArgv(nLeaseArgs).set(leaseArgNode, node).set(leaseArgLease, leaseMS)
	var calls []call
	for _, g := range s.groups(bs) {
		keys := make([]string, len(g))
		for i, b := range g {
			keys[i] = s.buckets[b][keyLeases]
		}
		calls = append(calls, call{keys: keys, args: args})
	}
	_, err := s.runAll(ctx, scriptLease, calls)
	return err
}

// registryCall is the registry's part of the first round trip of a
// SweepNode (see "Background work" in the package documentation): through
// nodes.lua, or on a single server, once the Store has read Redis's clock,
// through plain commands (see registryQueue), which renew the node's leases
// due in the same round trip.
type registryCall struct {
	key, member string
	lease       int64 // how long the entry runs (ms)
	node        string
	nodeLease   int64 // how long node's leases run (ms)
	// est is Redis's time (ms) as the Store infers it from its last
	// reading (its clock, a monotonic one, advances at Redis's rate over
	// clockFresh); 0: the call goes through nodes.lua.
	est    int64
	prune  bool  // drop the entries that ran out registryForget ago
	leases []int // buckets where the call renews node's lease

	script *goredis.Cmd
	time   *goredis.TimeCmd
	add    *goredis.IntCmd
	live   *goredis.StringSliceCmd
	renew  []*goredis.IntCmd
}

// registryQueue queues r's commands on pipe.
//
// Plain commands: nodes.lua is TIME, ZADD, ZREMRANGEBYSCORE and
// ZRANGEBYSCORE, and lease.lua TIME and a ZADD GT per bucket; queued as
// plain commands, the entry and the leases are written at the Redis time
// the Store infers (est), and TIME, read just before them in the same
// round trip, checks it (registryResult writes them again if it was off by
// more than clockSlack: a clock stepped, or a failover to another host).
// The live entries are read as ZRANGEBYSCORE from est (without scores:
// formatting them cost Redis more than the rest of the read), read again
// from TIME when est was off. The entries gone for good are dropped
// every registryPrune calls.
func (s *Store) registryQueue(ctx context.Context, pipe goredis.Pipeliner, r *registryCall) {
	if r.est == 0 {
		r.script = scriptNodes.EvalSha(ctx, pipe, []string{r.key},
			newArgv(nNodesArgs).set(nodesArgMember, r.member).set(nodesArgLease, r.lease)...)
		return
	}
	r.time = pipe.Time(ctx)
	r.add = pipe.ZAdd(ctx, r.key, goredis.Z{Score: float64(r.est + r.lease), Member: r.member})
	if r.prune {
		pipe.ZRemRangeByScore(ctx, r.key, "-inf", strconv.FormatInt(r.est-registryForget.Milliseconds(), 10))
	}
	r.live = pipe.ZRangeByScore(ctx, r.key, &goredis.ZRangeBy{Min: "(" + strconv.FormatInt(r.est, 10), Max: "+inf"})
	for _, b := range r.leases {
		r.renew = append(r.renew, pipe.ZAddGT(ctx, s.buckets[b][keyLeases],
			goredis.Z{Score: float64(r.est + r.nodeLease), Member: r.node}))
	}
}

// registryResult reads r's replies: Redis's time (ms) and the live Stores
// of the registry, sorted. It leaves in r.leases only the buckets where
// the lease was renewed.
func (s *Store) registryResult(ctx context.Context, r *registryCall) (now int64, view []string, err error) {
	if r.script != nil {
		if err := r.script.Err(); err != nil {
			return 0, nil, err
		}
		rv, _ := r.script.Val().([]any)
		if len(rv) < 2 {
			return 0, nil, errReply
		}
		now, _ = rv[0].(int64)
		members, _ := rv[1].([]any)
		for _, m := range members {
			view = append(view, str(m))
		}
		slices.Sort(view)
		return now, view, nil
	}
	if err := cmp.Or(r.time.Err(), r.add.Err(), r.live.Err()); err != nil {
		r.leases = nil
		return 0, nil, err
	}
	now = r.time.Val().UnixMilli()
	view = r.live.Val()
	var renewed, fresh []int
	for i, c := range r.renew {
		if c.Err() == nil {
			renewed = append(renewed, r.leases[i])
			if c.Val() == 1 { // new to the bucket: as lease.lua does
				fresh = append(fresh, r.leases[i])
			}
		}
	}
	r.leases = renewed
	off := time.Duration(r.est-now) * time.Millisecond
	skewed := off > clockSlack || off < -clockSlack
	if !skewed && len(fresh) == 0 {
		slices.Sort(view)
		return now, view, nil
	}
	pipe := s.rdb.Pipeline()
	var live *goredis.StringSliceCmd
	if skewed {
		pipe.ZAdd(ctx, r.key, goredis.Z{Score: float64(now + r.lease), Member: r.member})
		for _, b := range r.leases {
			pipe.ZAdd(ctx, s.buckets[b][keyLeases], goredis.Z{Score: float64(now + r.nodeLease), Member: r.node})
		}
		live = pipe.ZRangeByScore(ctx, r.key, &goredis.ZRangeBy{Min: "(" + strconv.FormatInt(now, 10), Max: "+inf"})
	}
	for _, b := range fresh {
		pipe.ZRemRangeByScore(ctx, s.buckets[b][keyLeases], "-inf", strconv.FormatInt(now-leaseForget.Milliseconds(), 10))
	}
	if err := s.exec(ctx, pipe); err != nil {
		r.leases = nil
		return 0, nil, err
	}
	if live != nil {
		view = live.Val()
	}
	slices.Sort(view)
	return now, view, nil
}

// windowEnding reports whether a bucket of generation g may have its
// re-assertion window closed by the next SweepNode (now: Redis's time,
// ms, 0 if unknown): only then may what the window held be due.
func (s *Store) windowEnding(g string, now int64, interval time.Duration) bool {
	gt, ok := genTime(g)
	return !ok || now == 0 || gt+s.reassertMS() <= now+2*interval.Milliseconds()
}

// chores are what a SweepNode reads of a bucket it sweeps once per
// maintEvery (or ReclaimAfter/3) to tell whether the bucket needs the full
// sweep that Retention, MaxClients and reclaiming the journal need: a
// quiet bucket needs none, and these reads cost Redis far less than the
// sweep script.
type chores struct {
	offline *goredis.ZSliceCmd   // the client offline the longest (Retention)
	clients *goredis.IntCmd      // the clients (MaxClients)
	pending *goredis.XPendingCmd // the oldest unacknowledged transition
}

func (s *Store) queueChores(ctx context.Context, pipe goredis.Pipeliner, b int) *chores {
	var c chores
	keys := s.buckets[b]
	if s.retentionMS() >= 0 {
		c.offline = pipe.ZRangeWithScores(ctx, keys[keyOffline], 0, 0)
	}
	if s.share(s.cfg.MaxClients) > 0 {
		c.clients = pipe.HLen(ctx, keys[keyClients])
	}
	if s.cfg.ReclaimAfter >= 0 {
		c.pending = pipe.XPending(ctx, keys[keyJournal], "hooks")
	}
	return &c
}

// due reports whether the bucket needs a full sweep (now: Redis's time,
// ms): as sweep.lua decides, a client offline for longer than Retention,
// more clients than the bucket's share of MaxClients, or a transition
// unacknowledged for ReclaimAfter (a journal entry's ID is its creation
// time, never later than its delivery). A read that failed says yes.
func (c *chores) due(s *Store, now int64) bool {
	if c.offline != nil {
		zs, err := c.offline.Result()
		if err != nil || len(zs) > 0 && int64(zs[0].Score) <= now-s.retentionMS() {
			return true
		}
	}
	if c.clients != nil {
		n, err := c.clients.Result()
		if err != nil || n > int64(s.share(s.cfg.MaxClients)) {
			return true
		}
	}
	if c.pending != nil {
		p, err := c.pending.Result()
		switch {
		case goredis.HasErrorPrefix(err, "NOGROUP"): // no journal yet
		case err != nil:
			return true
		case p.Count > 0:
			id, ok := parseEntryID(p.Lower)
			if !ok || int64(id.ms) <= now-s.cfg.ReclaimAfter.Milliseconds() {
				return true
			}
		}
	}
	return false
}

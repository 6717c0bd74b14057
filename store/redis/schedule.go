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
	// full sweep (retention, MaxClients, reclaim, the sweeper's lease)
	// while nothing falls due in it; lower with a short ReclaimAfter.
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
)

// sched is what a Store knows of its share of the background work.
type sched struct {
	// mu guards the fields below.
	mu   sync.Mutex
	last time.Time // when SweepNode last began
	ok   time.Time // when the last SweepNode that succeeded began
	now  int64     // Redis's time (ms) at the last registry call
	view []string  // the live Stores of the registry, sorted, as last read
	mine []bool    // per bucket: this Store sweeps it, under view
	full []time.Time
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
	sc.mu.Unlock()
	held := s.holding()

	// One round trip: the registry (which tells Redis's time), the
	// generation of every bucket this Store sweeps or holds something in,
	// and the earliest deadline of each bucket it sweeps.
	regLease := min(max(3*interval, 300*time.Millisecond), 3*time.Second)
	pipe := s.rdb.Pipeline()
	reg := scriptNodes.EvalSha(ctx, pipe, []string{registryKey(s.cfg.Prefix)},
		newArgv(nNodesArgs).set(nodesArgMember, s.consumer).set(nodesArgLease, regLease.Milliseconds())...)
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
	firsts := make(map[int]*goredis.ZSliceCmd)
	holds := make(map[int]*goredis.IntCmd)
	for _, b := range watched {
		if mineBefore[b] {
			firsts[b] = pipe.ZRangeWithScores(ctx, s.buckets[b][keyExpiry], 0, 0)
			if s.young(s.knownGen(b), rnow) {
				holds[b] = pipe.Exists(ctx, s.buckets[b][keyHeld])
			}
		}
	}
	_, _ = pipe.Exec(ctx) // errors are read per command below
	regErr := reg.Err()
	if goredis.HasErrorPrefix(regErr, "NOSCRIPT") {
		regErr = scriptNodes.Run(ctx, s.rdb, []string{registryKey(s.cfg.Prefix)},
			newArgv(nNodesArgs).set(nodesArgMember, s.consumer).set(nodesArgLease, regLease.Milliseconds())...).Err()
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
	rv, _ := reg.Val().([]any)
	if len(rv) < 2 {
		return nil, errReply
	}
	now, _ := rv[0].(int64)
	members, _ := rv[1].([]any)
	view := make([]string, 0, len(members))
	for _, m := range members {
		view = append(view, str(m))
	}
	slices.Sort(view)

	margin := int64(0)
	if !s.single {
		margin = clusterSkew.Milliseconds()
	}
	maint := maintEvery
	if s.cfg.ReclaimAfter > 0 {
		maint = max(min(maint, s.cfg.ReclaimAfter/3), interval)
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
	sc.now = now
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
			due[b] = true
			continue
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

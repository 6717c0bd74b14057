// Package redis is a presence.Store kept in Redis, for applications that
// run on several nodes. It takes a goredis.UniversalClient
// (github.com/redis/go-redis/v9), so a single server, Sentinel and Cluster
// all work; it never builds a client of its own. Import it as redisstore:
//
//	rdb := goredis.NewUniversalClient(&goredis.UniversalOptions{Addrs: addrs})
//	st, err := redisstore.New(rdb, redisstore.Config{Prefix: "myapp"})
//	...
//	tr, err := presence.New(ctx, st, presence.Config{Node: nodeID})
//
// # Start-up
//
// New does no I/O, and presence.New starts even when Redis is unreachable
// (the node serves its clients and re-asserts them once Redis answers), so
// a wrong address shows only in errors and logs. To fail fast at start
// instead, ping first:
//
//	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
//	defer cancel()
//	if err := rdb.Ping(pctx).Err(); err != nil {
//		log.Fatalf("redis at %v: %v", addrs, err)
//	}
//
// # Layout
//
// Clients are spread by a hash of their ID over Config.Buckets buckets.
// Every key of a bucket carries the hash tag "{prefix:bN}", so a bucket is
// one Cluster slot and every Lua script touches one slot, while a namespace
// spreads over all shards. Client and session IDs are only ever hash fields
// and sorted-set members, never parts of key names, so no ID can steer or
// escape the layout. Needs Redis 7.0 or later; HEXPIRE is not used.
//
// The keys of bucket N, after "{prefix:bN}" (short on purpose: they are in
// every command; store/redis/luanames.go names each position, and Go and
// the Lua scripts are checked to agree):
//
//	:g   string  the generation marker (a new value means Redis lost data)
//	:s   hash    session key -> "seen|span|node"
//	:x   zset    session key -> deadline (ms, Redis clock): what Sweep reaps
//	:k   zset    session keys by client: a client's sessions
//	:n   zset    session keys by node: a node's sessions
//	:r   hash    session key -> end reason, while the session is ending
//	:c   hash    client ID -> "seq|since|seen|sessions|sid"
//	:o   zset    offline client -> when it went offline (Retention, MaxClients)
//	:on  zset    online clients
//	:j   stream  the journal of transitions (consumer group "hooks")
//
// # Time
//
// Every decision is a Lua script that reads Redis's clock (TIME): node
// clocks never need to agree. Sessions sit in a sorted set by deadline per
// bucket; Sweep reads what is due from it (never a scan of all keys) and
// removes each expired session in one script, so exactly one caller reports
// each Offline.
//
// # Cost
//
// A session's deadline in the expiry index is its last beat plus its span
// (presence.Lease.Span, which the presence.Lease contract keeps the same
// for every lease a Tracker writes of a session), so refreshing a session
// this Store wrote before moves its deadline and nothing else: one multi-member ZADD per bucket. Its last beat is read
// back as deadline - span, so Lookup and List read an online client's
// sessions too, not only its record: the record names the session of a
// client that has one, and a client with several costs one more round
// trip to list them (about 5µs of Redis time per online client looked up,
// against 1µs for the record alone). A lease with another node or span
// than the one written before rewrites the session's record.
//
// On a single server (or Sentinel primary), one Touch of up to about 500
// sessions and one Sweep of every bucket are one script call each; a bigger
// Touch is split into calls of whole buckets, run four at a time over the
// client's pool, each built while the ones before it run, so no one call
// blocks Redis for long: with the Tracker's defaults that is about 0.015
// Redis commands per beat at 10,000 sessions beating every 25s, and one
// node refreshes over 200,000 sessions a second through one Redis.
// docs/BENCHMARKS.md has the measured figures. On a Cluster a script
// cannot span slots, so a Touch or Sweep costs one call per bucket
// involved, pipelined per shard: choose Buckets as a small multiple of the
// shard count there.
//
// The stored layout is not stable before vigil v1: all nodes sharing a
// namespace must run the same version.
//
// # Sequence numbers and retention
//
// Event.Seq grows by one per transition of a client while Redis remembers
// the client. An offline client's record (its last-seen time and Seq) is
// kept for Config.Retention, then forgotten, or earlier when MaxClients
// needs its place (see Limits). A client record created from
// nothing (first seen, forgotten, or lost with Redis's data) starts its Seq
// from Redis's clock (seconds since 2023-11-14, times 2^21), so Seq never
// goes back for a client and Event.ID stays unique; Online Seqs are odd.
// For that, MaxClients never forgets a record created in the current
// second (its client, back within the second, would repeat its Seqs):
// while the client offline the longest has a record that new, its bucket
// refuses new clients, for at most that second.
//
// # Limits
//
// Config.MaxClients and Config.MaxSessions bound what a flood of client IDs
// can make the Store hold (an application whose client IDs come from the
// request, as the demo's ?id= does, lets anyone make up new ones): past
// them Add answers presence.ErrLimit, which the middleware turns into 503
// with Retry-After, or close 1013 (try again later) on a WebSocket, and
// writes nothing. Clients count online and offline alike: an offline
// client's record is kept for Config.Retention unless a new client needs
// its place, the one offline the longest going first, so that clients
// flooded and gone cannot keep new ones out for a day. Refreshing or
// reviving a session the Store holds is never refused, and neither are the
// sessions nodes re-assert after Redis lost its data.
//
// The caps are enforced per bucket, in the script that adds the session:
// each bucket holds at most MaxClients/Buckets clients (31,250 at the
// defaults) and MaxSessions/Buckets sessions, counted with HLEN of the
// bucket's own hashes. The decision is atomic for every node sharing the
// namespace, on a single server and on a Cluster alike (a bucket is one
// slot, and one script sees all of it); a count is the stored data itself,
// so no counter can drift when sessions are swept, ended, expired or lost
// with Redis's data; and it costs Add two O(1) commands (HLEN), a few more
// when the bucket is full, and no round trip (Touch, a beat, is
// unchanged). The price is precision: Add never takes a
// total past its cap, but the first refusal comes when a new client's
// bucket is full, before the total reaches the cap: with random IDs (ten
// trials each), at 98.5 to 99% of the cap at the defaults, 96% on average
// at 100,000 clients over 32 buckets, 89% at 10,000 and 66% at 1,000. Keep
// MaxClients/Buckets in the thousands. (An exact cap would need a counter
// key of its own: on a Cluster it is in another slot than the bucket, where
// no script can update both atomically; on a single server every script
// that adds or removes a client would have to keep it in step, and a
// partial loss of data would leave it wrong for good.)
//
// Every node sharing a namespace should use the same caps: each Add takes
// its node's, and each Sweep forgets, longest offline first, the offline
// clients of a bucket over the sweeping node's share (after a cap was
// lowered, or when sessions re-asserted after a data loss went offline).
//
// Redis memory. Measured (redis-server 7.0, IDs of 10 to 20 bytes): an
// online client with one session holds about 770 bytes, each further
// session about 490, an offline client about 230, and a journal entry about
// 95. So the Store holds at most about
//
//	MaxClients × 300 B + MaxSessions × 500 B + Buckets × JournalLen × 100 B
//
// with such IDs: about 1.3 GB at the defaults. Longer IDs cost about two
// bytes per byte of client ID for each client, four per byte of client and
// session ID for each session, and one per byte for each journal entry: at
// presence.MaxIDLen (256 bytes) an offline client holds about 850 bytes and
// an online one with one session about 3,600, several times the figures
// above. Size Redis's maxmemory for the bound at the ID lengths the
// application accepts, or lower the caps: at maxmemory, with the
// noeviction policy this package needs, every write fails, honest clients'
// included.
//
// # Redis outages
//
// Errors from Redis are returned wrapped, naming what the call did (the
// client and session, or the node), so the Tracker treats them as
// transient and retries; no Offline fires while nobody can sweep. The Store
// logs one line per outage (see Config.Logger). go-redis itself logs every
// failed dial through its own package-level logger (the standard log
// package, by default); an application that wants only the Store's line
// replaces that logger with goredis.SetLogger, which this package leaves
// alone. When Redis
// comes back empty (a restart without persistence), each bucket gets a new
// generation marker. A Touch or End of a session this Store wrote in an
// earlier generation re-creates it silently (no Online); an End then lets
// it linger at least one lease before it is gone, so the client's sessions
// on other nodes are re-asserted first, and a client that left during the
// outage gets exactly one Offline. Limits: a client that opened its first
// session on one node during the outage while already online on another
// node may get a second Online; a session that had ended and was lingering
// through its grace when Redis lost its data gets no Offline. Run Redis
// with maxmemory-policy noeviction: an evicted generation marker looks like
// data loss.
//
// # Journal
//
// The script that decides a transition also appends it to the bucket's
// stream (about Config.JournalLen entries kept) and marks it pending for
// this Store in the stream's consumer group. The Store implements
// presence.Journal: a Tracker acknowledges each transition once its hooks
// ran; a transition left unacknowledged for Config.ReclaimAfter (its node
// died first) is claimed by the next Sweep of any node and delivered by
// that node's Tracker, with the same Event.ID. Tracker.Watch reads every
// bucket's stream to see all nodes' transitions. The journal lives in
// Redis: what Redis loses, it loses too.
package redis

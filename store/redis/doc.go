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
//	:g2  string  the generation marker (a new value means Redis lost data);
//	             its name is the key layout's (see Upgrading)
//	:x   zset    session key -> deadline (ms, Redis clock): what Sweep reaps
//	:r   hash    session key -> end reason, while the session is ending
//	:c   hash    client ID -> its record, its sessions' included:
//	             "seq|seen|since", then per session "\x01" ID "\x02" seen
//	             "\x02" span "\x02" node (numbers in base 36, since and a
//	             session's seen as differences from the client's seen)
//	:o   zset    offline client -> when it went offline (Retention, MaxClients)
//	:on:N zset   online clients, spread over 512 sets (N in base 36) by a
//	             hash of the ID, each small enough for Redis's compact
//	             encoding; List walks them in order
//	:oc  string  the number of online clients (Count)
//	:j   stream  the journal of transitions (consumer group "hooks")
//	:l   zset    node -> when its lease ends (ms, Redis clock)
//	:w   string  set while the bucket's re-assertion window is open
//	:h   hash    client ID -> its held transition, in and just after the window
//	:sr  hash    session key -> the session's rooms
//	:sm  hash    session key -> "stamp|meta": its metadata, and when it was set
//	:rm  hash    room "\0" client ID -> "sessions|since": a member of a room
//	:rz  zset    room "\0" client ID: a room's members in the bucket, by ID
//	:rc  hash    room -> its members in the bucket
//	:rl  zset    client ID "\0" room -> when the client last left the room
//	:hr  hash    client ID -> its held room transitions, in and after the window
//	:a   hash    session key -> its last active time (ms), away sessions only
//	:ca  hash    client ID -> "away|active": its away sessions, and the last
//	             active time of the sessions it no longer has (see States)
//
// and one more key, in bucket 0's slot: "{prefix:b0}:sw", a zset, the
// registry of the Stores that sweep the namespace (see "Background work").
//
// # Time
//
// Every decision is a Lua script that reads Redis's clock (TIME): node
// clocks never need to agree. Sessions sit in a sorted set by deadline per
// bucket; Sweep reads what is due from it (never a scan of all keys) and
// removes each expired session in one script, so exactly one caller reports
// each Offline.
//
// # Nodes
//
// The Store is a presence.NodeSweeper: it tells the sessions of a node
// that died (presence.ReasonNodeLost) from sessions that stopped beating
// on a live node (presence.ReasonExpired). Each node holds a lease (:l)
// in every bucket it sweeps or holds sessions in (see "Background work"
// for which buckets a node sweeps), renewed from its SweepNode calls: the
// sweep script renews the lease of the node that runs it in each bucket
// it sweeps, and in the buckets it holds sessions in but does not sweep,
// or sweeps with nothing due, it is renewed every third of the lease's TTL
// (presence.NodeLease.TTL: 8.75s at the Tracker's defaults, so about every
// 3s): on a single server by a ZADD GT per bucket in the SweepNode's
// first round trip (see "Background work"), written at the Redis time the
// Store infers from its last reading of Redis's clock and checked against
// TIME in the same round trip, while this Store renewed the lease less
// than two thirds of its TTL before (so it cannot have run out: see
// below); otherwise by a small script (lease.lua) after the sweep, one
// call for all of them on a single server, one per bucket, pipelined, on
// a Cluster. The lease is per
// bucket because a script reads one Cluster slot: the script that judges
// a bucket's expired sessions finds their nodes' leases in that bucket.
// (A Touch would not do: it writes only the buckets of the sessions that
// beat since the last flush.) A node's first session in a bucket gives it
// a lease there as long as the session's (Add), so a node that dies
// before its first sweep is lost too. A node that takes over the sweeping
// of a bucket (see "Background work") renews its lease there before its
// first sweep of it when its own registry entry never ran out since its
// previous Sweep (it was live, and Redis reachable, all along); otherwise
// (it was cut off itself) that first sweep reports the sessions due as
// expired, and renews it.
//
// When a sweep removes a session whose lease ran out and that was not
// ending, it reads the session's node's lease in the bucket: node_lost if
// that lease ran out too and the sweeping node's own had not, expired
// otherwise (a node with no lease in the bucket, forgotten or lost with
// Redis's data, proves nothing). The sweeper's own lease is the proof that
// Redis was reachable and sweeps ran while the other node was silent:
// after an outage or a stall of Redis, every lease ran out at once, and the
// first sweep of each node, which finds its own run out too, reports
// expired; it renews its lease only once it has swept everything due, so
// the later rounds of the same sweep cannot vouch for what it missed.
// A lease that ran out is kept for a day (far longer than its node's
// sessions take to expire) and dropped when a node new to the bucket gets
// a lease there, so the set holds the nodes seen lately.
//
// A node that restarts with the same node ID ends its previous process's
// sessions with presence.ReasonRestart, which the sweep keeps: a reason
// recorded on a session always wins over the node's lease.
//
// # Cost
//
// A session's deadline in the expiry index is its last beat plus its span
// (presence.Lease.Span, which the presence.Lease contract keeps the same
// for every lease a Tracker writes of a session), so refreshing a session
// this Store wrote before moves its deadline and nothing else: one multi-member ZADD per bucket. Its last beat is read
// back as deadline - span, so Lookup and List read an online client's
// sessions' deadlines too, not only its record: the record lists its
// sessions (with their spans), so that is one more round trip whatever
// their number (about 5µs of Redis time per online client looked up,
// against 1µs for the record alone). A lease with another node or span
// than the one written before rewrites the session's part of its client's
// record. No index lists a node's sessions: the End of all of them (a
// Tracker's Close) reads the records of every session of each bucket, once
// per node's life. A client's sessions are part of its record, about 30
// bytes each: an Add, End or full lease of one of them reads and rewrites
// the whole record, so a client with thousands of sessions makes those
// calls cost in proportion (a refresh, what a beat is, never reads the
// record). Where clients are not trusted, cap their sessions
// (presence.Config.MaxSessionsPerClient, and the middleware's
// MaxConnsPerClient per node).
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
// goes back for a client and Event.ID stays unique. Every transition kind
// (Online, Offline, and a room's Join, Leave and Update) takes the next Seq
// of its client.
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
// bucket's client records and ZCARD of its expiry index. The decision is
// atomic for every node sharing the namespace, on a single server and on
// a Cluster alike (a bucket is one slot, and one script sees all of it); a
// count is the stored data itself, so no counter can drift when sessions
// are swept, ended, expired or lost with Redis's data; and it costs Add two
// O(1) commands (HLEN, ZCARD), a few more when the bucket is full, and
// no round trip (Touch, a beat, is unchanged). The price is precision: Add
// never takes a total past its cap, but the first refusal comes when a new client's
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
// Redis memory. Measured (redis-server 7.0, default configuration, client
// IDs of up to 6 bytes, the Tracker's session IDs of 11, a node ID of 5;
// docs/BENCHMARKS.md, "Cheaper Redis"), as INFO memory's used_memory grows:
// an online client with one session holds about 265 bytes, and its Online's
// journal entry about 80 more (342 to 345 together, at 100,000 clients);
// each further session about 150 to 170; an offline client about 200 (its
// Offline's journal entry apart). Where it goes: per client, one field of
// :c, its record with its sessions' (an entry of a Redis hash table, about
// 75 bytes plus its sessions' parts), and while online one member of an :on
// set (about 20 bytes: the sets are compact), while offline one of :o
// (about 105: a skiplist); per session, one member of :x, the expiry index
// (about 110 to 120 bytes: a skiplist), and its part of the record (about
// 15 bytes plus its ID and its node's); per journal entry, about 75 to 80
// bytes of the stream. The journal keeps about JournalLen entries per
// bucket, whatever the number of clients. So the Store holds at most about
//
//	MaxClients × 200 B + MaxSessions × 170 B + Buckets × JournalLen × 80 B
//
// with such IDs (an online client costs less than 200 itself, plus its
// sessions; with rooms, add what "Rooms" below says): about 0.57 GB at the
// defaults (1M clients, 2M sessions, 32 buckets of 10,000 entries), against
// 1.3 GB for the layout before issue 17. Longer IDs cost about two bytes
// per byte of client ID for each client (its record's field, and its member
// of :on or :o), two per byte of session ID and one per byte of node ID for
// each session (its part of the record, its member of :x), and one per byte
// of each for each journal entry. An online set stays compact while it
// holds at most 128 clients, each ID at most 64 bytes (Redis's
// zset-max-listpack-entries and -value): with 512 sets per bucket that is
// about 32,000 online clients per bucket (a million over the default 32
// buckets); past it, or for a client ID longer than 64 bytes, the set it
// falls in turns into a skiplist for good, about 100 bytes per member
// instead of 20. Size Redis's maxmemory for the bound at the ID lengths the
// application accepts, or lower the caps: at maxmemory, with the noeviction
// policy this package needs, every write fails, honest clients' included.
//
// # Upgrading
//
// The key layout changed with issue 17 (layout 2: a client's sessions are
// part of its record, the online clients are spread over small sets, the
// journal's entries are shorter). The generation marker's name (:g2) names
// the layout. A bucket written by the layout before (layout 1: its marker
// is :g) is refused, never misread: every script that writes a bucket
// fails with an error naming the older key layout (VIGILLAYOUT), and so do
// Count, List and RoomCount over such a bucket, and Lookup, Sessions and
// Members on a client record of layout 1. So nodes of the two
// versions cannot share a namespace: stop every node of the old version,
// then start the new one with another Config.Prefix, or delete the old
// namespace's keys first (they all match "{prefix:b*"; SCAN MATCH and DEL,
// or UNLINK, on each Cluster master). Presence is transient: the clients
// reconnect to the new nodes and come online there (an Online each, with a
// Seq taken from Redis's clock, so Event IDs do not repeat); the old
// namespace's sessions get no Offline, and its journal's undelivered
// transitions are not delivered.
//
// # Rooms
//
// The Store is a presence.RoomStore. Room state is partitioned like
// everything else, by the bucket of the client: a client's memberships
// live in its own bucket, so a room of 100,000 members spreads over every
// bucket (every Cluster shard) and no room makes a hot slot. Per bucket, a
// session's rooms are one field of :sr and its metadata one of :sm; the
// bucket's members of a room are a hash entry (:rm, its sessions there
// and since when) and a sorted-set member (:rz, for Members' cursor), and
// their number is one field of :rc. So:
//
//   - Join, Leave, SetMeta, and Add with rooms or metadata, are one script
//     call each, on the client's bucket: the script decides the events
//     with the client's one Seq, journals them (with their room and
//     metadata) and marks them pending, as for Online and Offline, so
//     Watch sees them and Reclaim redelivers them.
//   - A session's removal (End without grace, Sweep, SweepNode) takes it
//     out of its rooms in the same script: a Leave, with the session's
//     reason (node_lost when its node is lost), for each room no other
//     session of the client is in, before the client's Offline. A session
//     ending with a grace stays in its rooms until it is removed, so a
//     reload that comes back within the grace fires nothing.
//   - Touch, a beat, never reads or writes a membership: its cost does not
//     grow with the rooms a session is in (docs/BENCHMARKS.md, "Rooms
//     (Redis store)").
//   - RoomCount is one HGET per bucket, pipelined (one round trip per
//     shard, in parallel on a Cluster). Members walks the buckets in
//     order, skipping those where the room has no member, and each
//     bucket's members by ID, so a client in the room for the whole walk
//     appears exactly once; a page is one script call, which reads each
//     member's sessions (about 25µs of Redis time per member on a loaded
//     Cluster), so keep pages in the hundreds. MembersAmong is one
//     script call per bucket involved, pipelined; a client not in the
//     room has the time it last left it as LastSeen, kept for the
//     LEFT_MAX (128) rooms it left last, and forgotten with its record
//     (Retention, MaxClients).
//   - ClientRooms reads the client's sessions, as Sessions does.
//
// A session is in at most presence.MaxRoomsPerSession rooms (past it,
// Join and Add answer presence.ErrLimit); the caps (see Limits) bound the
// sessions, so memberships are at most MaxSessions × MaxRoomsPerSession.
// They take Redis memory. Measured (redis-server 7.0, client IDs of 6
// bytes, room names of 4 to 7): about 330 bytes per membership (200 as
// MEMORY USAGE counts the keys, the rest the allocator's and the hash
// tables' slack), about 100 per room a client left and is remembered for,
// and about 30 plus the metadata's length per session with metadata. So,
// with rooms, add
//
//	memberships × 330 B + rooms left × 100 B + sessions with metadata × (30 B + its length)
//
// to the bound under Limits, rooms left being at most MaxClients ×
// LEFT_MAX (128). Longer names cost more: about three bytes per byte of
// room name and of client ID for each membership (they are in :rm, :rz
// and, the room, :sr), two for each room left. docs/BENCHMARKS.md
// ("Rooms (Redis store)") has the figures.
//
// # States
//
// The Store is a presence.StateStore. SetActivity, and Add with an
// activity, are one script call each on the client's bucket (SetActivity
// goes through rooms.lua, so it writes back a session Redis lost, as Join
// does): the script decides Away or Back with the client's one Seq,
// journals it and marks it pending, as it does Online and Offline, so
// Watch sees it and Reclaim redelivers it. An Add's Away or Back comes
// after its Online and before its Joins. A removal (End without grace,
// Sweep, SweepNode) that takes a client's last active session while away
// ones remain gives its Away after the session's Leaves, once the call's
// removals are done: a call that removes every session of a client gives
// its Offline alone.
//
// Storage stays small, and a beat never reads or writes any of it: an
// active session has no entry at all (its last active time is its last
// beat); an away one has a field of :a, its last active time; a client
// has a field of :ca, its number of away sessions (it is away when that
// reaches its record's count of sessions) and the last active time of the
// sessions it no longer has, only while it has an away session or that
// time differs from what its record says. So Touch costs the same for an
// away session as for an active one. Lookup reads :ca in the round trip
// that reads the client records, and the away sessions' times with the
// sessions' deadlines; List, Members and MembersAmong compute each
// client's state and last active time in their scripts.
//
// After Redis loses data (see "Data loss"), each Store writes back the
// activity of its sessions with their rooms, silently: an away session's,
// with the time its user was last active, in the rooms.lua call of the
// Sweep that re-asserts the bucket (a Touch re-creates a session active
// until then), in any SetActivity, Join, Leave or SetMeta of the session
// first, and in the End call that writes back an ending session (which
// keeps its activity while it lingers). Inside the window, Away and Back
// are held as Online and Offline are: the bucket remembers, per held
// client, the activity the nodes re-asserted for each of its sessions,
// and the Sweep that decides the client gives an Away or a Back, between
// its Online and its rooms, if it was online before and is now and
// whether it has an active session changed (a client that comes online in
// the window counts as active, as for an Add), with the session and reason
// of the last change the window held (none if the window held none: the
// client went offline and came back in it).
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
// alone. On a Cluster, a call that got no answer has the ClusterClient
// reload its slot map (ReloadState), so that after a failover the Store
// follows the promoted replica at once: go-redis reloads by itself only on
// a redirect and every ClusterStateReloadInterval (60s by default), and
// until then sends the failed shard's calls to its dead master. When Redis
// comes back empty (a restart without persistence), each bucket gets a new
// generation marker.
//
// # Data loss: the re-assertion window
//
// Every call tells the scripts the generation its Store last saw of each
// bucket it touches. A bucket whose marker is gone, or newer than the
// caller knew and younger than Config.Reassert, lost its data: the script
// opens the bucket's re-assertion window (Config.Reassert from the new
// marker, 5s by default). Then:
//
//   - every node notices at its next Sweep (every SweepInterval of its
//     Tracker, 500ms by default: each SweepNode reads the generation
//     marker of every bucket it sweeps or holds anything in, sessions or
//     Offlines of the last minute, and sweeps at once a bucket whose
//     marker is gone or new, which makes the new marker and opens the
//     window) and writes again, at once, every session
//     it holds in the bucket: live ones with their lease, ended ones that
//     linger in their grace (or whose grace ran out while nobody could
//     sweep) as ending, with their reason and what is left of their grace.
//     Such sessions come back without an event. A Touch or End of a
//     session written in an earlier generation does the same. It also
//     tells the bucket the Offlines, and the Leaves of rooms, it decided
//     in the last minute.
//   - every transition the bucket would decide inside the window is held
//     instead: the bucket remembers, per client, whether it counted as
//     online before, and what its Offline would carry. It did if a node
//     held one of its sessions live, or held one ending whose grace ended
//     (on Redis's clock) after the last Offline any node remembers
//     deciding for it: that Offline was still owed.
//   - the first Sweep after the window (of any node) decides each held
//     client once, against the re-asserted state: an Online if it is online
//     now and was not before, an Offline if it was and is not, nothing
//     otherwise. A transition of the client that comes first decides its
//     hold first, so Seq order is kept.
//
// Rooms ride on the same window. Each Store remembers, with each session
// it wrote, the session's rooms and metadata (and the generation they were
// written in), and writes them back with the session: the Sweep that
// re-asserts a bucket's sessions then writes back their rooms and metadata
// (one rooms.lua call per session with any, pipelined), an ending session
// gets its rooms back in the call that re-creates it, a Join, Leave,
// SetMeta or End of a session whose rooms Redis lost writes them back
// first, in the same script, and an End of all of a client's or a node's
// sessions writes back first the rooms of those among them it last wrote
// in an earlier generation. Written back so, a membership fires no Join.
// Inside the window every Join, Leave and Update is held as Online and
// Offline are (per client and room: whether it was in the room before,
// which a written-back membership says it was, and what its Leave or
// Update would carry), and the Sweep that decides the client decides its
// rooms too, between its Online and its Offline: a Join if it is in the
// room now and was not, a Leave the other way round, an Update if its
// metadata there changed and it stayed. A room written back from an ending
// session counts only if its Leave was still owed: if the session's grace
// ended after the last Offline of its client, and after the last Leave of
// that room, that any node remembers deciding (a client that left a room
// and stays online through another session has a Leave and no Offline:
// back in the room in the window, it gets its Join). So an empty
// Redis restart yields no second Join, no lost Leave and no ghost member.
// Touch still decides nothing: a session it re-creates comes back without
// its rooms until the next Sweep (or room call of its node) writes them
// back, a few hundred milliseconds in which Members and RoomCount miss it.
//
// So a client that connects on one node while another node still holds it
// gets no second Online, a client whose session was lingering in its grace
// gets its one Offline, and a client that left during the outage gets
// exactly one. The price is delay: a transition decided in the window fires
// up to Config.Reassert + SweepInterval after it happened (measured in
// docs/RELIABILITY.md), and changes that cancel out inside the window (a
// client that connects and leaves again) fire nothing. Lookup, List and
// Count show the truth throughout.
//
// Limits. A node that is down (or cannot reach Redis) for the whole window
// re-asserts nothing: its clients that were online get no Offline from
// this data loss, and may get a second Online when they come back; keep
// Config.Reassert above the time a node takes to reconnect. A transition
// that a node decided and died before delivering waits Config.ReclaimAfter
// in the journal for another node to deliver it; if Redis loses the
// journal first, it is lost. A session removed (its Offline or Leaves
// decided) just before the loss, and still in its node's memory of ending
// sessions (until that node's next Sweep), is written back with its rooms;
// if the node that decided its Offline or Leaves re-asserts nothing in the
// window (it is down, as above), they count as owed: a second Offline or
// Leave, or no Join for a client back in such a room in the window. A
// failover that
// loses recent writes but keeps the buckets' markers (a Sentinel or
// Cluster replica promoted before it had the primary's last writes) opens
// no window: a session whose Add was lost is reported gone to its node,
// which closes it, and its client may get a second Online when it
// reconnects. Run Redis with maxmemory-policy noeviction: an evicted
// generation marker looks like data loss.
//
// # Journal
//
// The script that decides a transition also appends it to the bucket's
// stream (about Config.JournalLen entries kept) and marks it pending for
// this Store in the stream's consumer group. The Store implements
// presence.Journal: a Tracker acknowledges each transition once its hooks
// ran; a transition left unacknowledged for Config.ReclaimAfter (its node
// died first) is claimed by a Sweep of the node that sweeps its bucket
// (within ReclaimAfter + min(ReclaimAfter/3, 10s) + a SweepInterval) and
// delivered by that node's Tracker, with the same Event.ID; every node
// sharing a namespace should use the same ReclaimAfter, and a node with a
// negative one claims nothing in the buckets it sweeps. Tracker.Watch reads
// every bucket's stream to see all nodes' transitions: on a single server
// through one XREAD blocked on a connection of the client's pool (see
// Store.Read), so a watching node costs Redis one XREAD every 10s while
// nothing happens, and on a Cluster through one XREAD per bucket, pipelined, at
// each of the Tracker's reads (every half SweepInterval). The journal
// lives in Redis: what Redis loses, it loses too.
//
// # Background work
//
// A Store does the namespace's background work (expiry, the grace of
// ending sessions, Retention, MaxClients, reclaiming the journal, deciding
// what a re-assertion window held) only in its share of the buckets, so
// that its cost grows with the buckets, not with the nodes times the
// buckets. Each SweepNode (every SweepInterval of a Tracker):
//
//   - renews the Store's entry in a registry of the Stores that sweep the
//     namespace (one sorted set, "{prefix:b0}:sw", entries on Redis's
//     clock, lasting three SweepIntervals, at least 300ms and at most 3s)
//     and reads the live entries back: on a single server, once the
//     Store has read Redis's clock (its first call), plain commands: TIME,
//     a ZADD of its entry at the Redis time it infers from its last
//     reading (written again if TIME, read just before it, says that was
//     more than 50ms off), and a ZRANGEBYSCORE of the entries live at that
//     time (read again if it was off); on a Cluster (and at the first
//     call), one script call (nodes.lua, a few commands, without the
//     common prelude of the other scripts), as a script call costs Redis
//     several times the commands it runs, while TIME in a Cluster
//     pipeline may go to another shard than the registry's. A bucket is
//     the duty of the live Store that ranks first for it by
//     rendezvous hashing (FNV-1a of the Store's name and the bucket), so a
//     Store that joins or leaves moves only the buckets it takes or
//     leaves;
//   - in the same round trip, reads the generation marker of each bucket
//     it sweeps or holds anything in (one MGET on a single server, one GET
//     per bucket on a Cluster) and the earliest deadline of each bucket it
//     sweeps (ZRANGE 0 0 WITHSCORES), for a bucket whose re-assertion
//     window closes about now (up to 5s after it), whether it holds
//     transitions, and every min(10s, ReclaimAfter/3) per bucket it
//     sweeps, what tells whether Retention, MaxClients or reclaiming the
//     journal has work there: the client offline the longest (ZRANGE 0 0
//     WITHSCORES of :o), the number of clients (HLEN, with MaxClients) and
//     the oldest unacknowledged transition (XPENDING);
//   - runs the sweep script only on the buckets with something to do: a
//     deadline passed (on a Cluster, within 100ms, as shards' clocks may
//     differ), a generation that is gone or new to this Store, transitions
//     held by a closed window, a bucket it just took over, or such work
//     (a client offline for longer than Retention, more clients than the
//     bucket's share of MaxClients, a transition unacknowledged for
//     ReclaimAfter);
//   - renews its node's lease where it must (see "Nodes").
//
// Scripts are atomic, so two Stores that both think a bucket theirs (one
// joined, and the other has not yet read the registry again) sweep it
// twice, harmlessly: each session's removal, and each Offline, is decided
// once. When the Store that sweeps a bucket stops (it died, was closed, or
// lost Redis), its registry entry runs out within three of its
// SweepIntervals, and the Store that ranks next takes the bucket over at
// its next Sweep: the Offlines that fall due in the bucket meanwhile
// (none of the stopped node's own sessions, whose TTL is far longer) land
// up to about 3.5 SweepIntervals (1.75s at the defaults, at most 3s +
// SweepInterval) later than the bound of the presence package. A Store
// that cannot read the registry (its shard is down) sweeps in full the
// buckets it swept before, so the buckets of the shards that answer are
// still swept. Sweep (without a node) sweeps every bucket, as before.
//
// The cost when nothing happens, per SweepInterval, on a single server:
// one round trip per node (the registry's three commands; the MGET; one
// ZRANGE per bucket the node sweeps; a ZADD per bucket whose lease is
// due, about every 3s), so about
//
//	4 × nodes + Buckets commands per SweepInterval
//
// plus, every 10s (every ReclaimAfter/3 when ReclaimAfter is shorter than
// 30s), three commands per bucket to look for the work of a full sweep. A
// node watching the journal adds
// one blocked XREAD that times out every 10s. On a Cluster each bucket read
// is a command of its own (pipelined per shard), and Watch polls one XREAD
// per bucket every half SweepInterval per watching node. docs/BENCHMARKS.md
// ("Idle cost per node") has the measured figures: with 16 idle nodes on
// one redis-server, about 15 commands a second per node (520 before the
// work was shared, 24 with a script call in every Sweep).
package redis

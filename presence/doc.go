// Package presence knows which clients are online: it is vigil's core,
// with no HTTP in it.
//
// A client (a user or a device, named by a client ID) is online while it has
// at least one session: a WebSocket connection, say, or one browser tab
// sending HTTP heartbeats. A Tracker, one per process (a node), opens
// sessions with Connect, keeps them alive with Session.Beat, ends them with
// Session.End, and calls the hooks registered with OnOnline and OnOffline on
// every transition. Several nodes may share one Store; the Store decides
// every transition atomically, so each change of a client's state produces
// exactly one Event across all of them, numbered by a per-client Seq.
//
//	store, _ := memory.New(memory.Config{})
//	tr, _ := presence.New(ctx, store, presence.Config{Node: "web-1"})
//	defer tr.Close(ctx)
//	tr.OnOnline(func(ctx context.Context, ev presence.Event) { log.Println(ev.ClientID, "online") })
//	s, _ := tr.Connect(ctx, "alice", presence.SessionOptions{})
//	s.Beat()                          // on every pong or heartbeat
//	s.End(ctx, presence.ReasonClosed) // when the connection closes
//
// Packages middleware (WebSocket and HTTP heartbeats) and adapters/vigilchi
// drive a Tracker for you; use this package directly for other transports.
//
// # Timeouts
//
// TTL is how long a session lives after its last beat; beats never more than
// TTL apart keep it alive, whatever their rhythm. The middleware's ping
// interval plus its pong timeout should not exceed TTL (the defaults, 25s +
// 10s = 35s, match DefaultTTL). A session that stops beating expires and
// its client goes offline at once, within TTL + 2×SweepInterval of the last
// beat. A session that ends for any other reason (closed, left, kicked,
// cleared when its node restarts, shut down) lingers for Grace first, so a
// page reload or a reconnect to another node fires no Offline/Online pair.
// Every Offline therefore lands within TTL + Grace + 2×SweepInterval (1s by
// default) of the last beat.
//
// Beats are not Store writes: Session.Beat records the time in memory and
// the Tracker writes the leases of all sessions beaten since, in one Touch,
// every SweepInterval/2. Each lease runs TTL + SweepInterval past its beat,
// so the batching never lets a live session expire. Expiry is measured on
// the Store's clock: nodes pass durations, never timestamps.
//
// # Which clock decides that a session is gone
//
// Four checks decide that a session stopped beating. Each is needed for a
// case the others miss; in this order, the first that fires wins:
//
//  1. The middleware's ping scheduler (WebSockets only, the node's clock):
//     no frame for PingInterval+PongTimeout (35s by default). It is the
//     only check that sees the socket, so it closes it, and it ends the
//     session with ReasonExpired, which the Store removes at once. Since
//     PingInterval+PongTimeout ≤ TTL, it fires first for every WebSocket
//     whose node is alive.
//  2. Store.Sweep (every SweepInterval, on the Store's clock, which is the
//     one clock all nodes share): removes the sessions whose lease ran out
//     (last written beat + TTL + SweepInterval) and returns their Offline
//     events. It is the authority: it alone decides transitions, and it
//     alone covers a node that died (nobody is left to end its sessions:
//     ReasonNodeLost, see Restarts) and HTTP-heartbeat sessions (no socket
//     to watch).
//  3. expireLocal (every TTL/2, the node's clock): ends, in this process,
//     the local sessions with no beat for TTL + SweepInterval. The Store has
//     already removed them (or is about to: End then finds nothing), so this
//     only tells their owners (OnGone: the middleware forgets an HTTP
//     session) and frees them. Touch reports gone only the sessions it is
//     given, and a session that stopped beating is given to no Touch: without
//     this, such a session would stay in memory for ever.
//  4. The check in Connect (the node's clock): Connect with the ID of a
//     local session whose last beat is more than TTL ago (an HTTP tab that
//     slept past its TTL, between two runs of expireLocal) starts a new
//     session, rather than beat one the Store no longer holds: its client
//     went offline, and must come online again with a new Online.
//
// # Concurrency
//
// Tracker and Session methods are safe for concurrent use. Session.Beat does
// no I/O and does not allocate; call it from any goroutine, as often as you
// like. Connect, Session.End, Kick and the queries call the Store and may
// block on it; they take a context.
//
// Hooks run on the Tracker's goroutines, never while it holds a lock, and
// never on the goroutine that called Connect or End. For one client, hook
// calls are serialised in event order (an Online always before the Offline
// that ends it); different clients' hooks run concurrently, on at most 256
// goroutines, so a burst of transitions queues rather than starting a
// goroutine per client. A slow hook delays only its own client's later
// events; Config.HookTimeout bounds it. (With HookTimeout negative, 256
// clients whose hooks block forever stall every hook.) A panicking hook is
// recovered and logged at Error level.
//
// # Words
//
// For maintainers, one name per idea, in code and docs:
//
//   - beat: proof that a session is alive (a frame, a pong, an HTTP
//     heartbeat), recorded by Session.Beat; middleware's Conn.heard records
//     a frame from the client, Server.heartbeat an HTTP heartbeat.
//   - end: a session stops on purpose (closed, left, kicked, shut down,
//     restart) and lingers for Grace: Session.End, Ending, Store.End;
//     Tracker.end, endOrRetry (the Store side, retried), storeEnd (one
//     Store.End), callEnd (Store.End with its events queued in order).
//   - expire: no beat for TTL; gone at once, without Grace (ReasonExpired).
//   - lost: a node whose lease ran out (it stopped sweeping: NodeSweeper,
//     NodeLease, Tracker.nodeLease); its sessions, when they expire, say
//     ReasonNodeLost.
//   - gone: the Store no longer holds a session as live (Gone from Touch);
//     the session's owner hears it through OnGone (Session.notifyGone;
//     Tracker.forgetGone).
//   - drop (middleware only): the TCP connection closed at once, without a
//     close handshake.
//
// # Locks
//
// For maintainers: the Tracker's locks, in the order they may be taken, and
// what runs under each. A lock is never taken while one later in the list
// is held, and no hook runs under any of them.
//
//  1. order.wideMu: one wide Store call at a time (Sweep, Reclaim, a
//     node-wide End), for as long as the call and the queueing of its
//     events take. Nothing else waits for it.
//  2. a stripe (64, by client ID): one Store call for that client (Add,
//     End of its sessions) until its events are queued, so a client's calls
//     never overlap; its holder also queues the events set aside for the
//     stripe's clients. A wide call takes a stripe only when it is free
//     (TryLock), to queue what was set aside, so it never waits for
//     per-client calls; Close waits for them (order.go).
//  3. order.mu: whether a wide call is in flight, and the events set aside
//     meanwhile. Held for a few instructions.
//  4. localMu: the registry of this node's sessions and their states. No
//     Store call runs under it.
//  5. dirtyMu: the sessions beaten since their last write (Session.Beat).
//  6. hooks.mu, the journal's mu: queues; leaves.
//
// Store calls (network calls with Redis) run under a stripe or wideMu only.
// A slow wide call (a Redis sweep reaping 100,000 sessions loops for
// seconds) does not hold up Connect and End of this node; docs/BENCHMARKS.md
// ("A slow store") has the figures.
//
// # Failures
//
// When the Store fails (a Redis outage, say), sessions stay up and keep
// beating; Connect and End succeed and the Tracker retries the Store calls
// until they go through, then fires the transitions they decide. No false
// Offline fires, since no node can sweep. When the Store answers again
// after a stall longer than a lease (a paused Redis), a node that still
// holds beats it could not write does not sweep until a Touch gets them
// through (for one TTL at most), so its own sweep never expires its live
// sessions first. Store errors are logged at Warn level and counted in
// Stats.
//
// # Restarts
//
// New ends, through Grace, the sessions that a previous process with the
// same Config.Node left in the Store, so a node that crashed and restarted
// leaves no ghosts: their Offline events say ReasonRestart. A node that
// never comes back loses its sessions by TTL; a surviving node's sweep
// fires their Offline events, with ReasonNodeLost when the Store is a
// NodeSweeper (both of vigil's stores are), ReasonExpired otherwise.
//
// A node's sweeps prove it alive: each renews the node's lease in the
// Store for max(TTL/4, 2×SweepInterval), 8.75s by default, whether or not
// the node has sessions and whether or not they beat. When a session's
// lease runs out after its node's did, and the sweeping node's own had
// not, the session was lost with its node. Its client still goes offline
// only when the session's own lease runs out: the reason changes, never
// the timing. A session that stops beating on a live node keeps
// ReasonExpired; so does one whose last written beat came so long before
// its node died (more than about 3/4 of TTL, by default) that the
// session's lease ran out before the node's.
package presence

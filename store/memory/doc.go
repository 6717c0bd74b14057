// Package memory is a presence.Store kept in process memory, the default
// store: one node, or several Trackers in one process.
//
// Clients are held in plain maps under the Store's one mutex. Expiry runs on
// the monotonic clock from a deadline index, when a Tracker calls Sweep, so
// it is exact to the sweep step and a step of the wall clock expires
// nothing. The Store starts no goroutine and needs no Close.
//
// (Earlier versions kept clients in github.com/patrickmn/go-cache maps,
// used without their expiry: go-cache's janitor runs on the wall clock,
// scans a whole map under its lock and cannot be stopped, and its
// per-entry expiry cannot express Grace, TTL measured from a beat, or the
// longest-offline-first retention. What was left was a map behind a second
// lock, so the dependency went.)
//
// # Nodes
//
// The Store is a presence.NodeSweeper: each Tracker's sweeps renew its
// node's lease, so when several Trackers share a Store and one stops
// calling it (a wedged loop, or a test's node cut off from the Store), the
// others report its clients offline with presence.ReasonNodeLost once
// their sessions' leases run out. A Tracker dropped without Close is not
// lost: its goroutine sweeps until Close. A process that dies takes the
// Store with it, so there is no survivor to report anything: that case is
// the Redis store's.
//
// # Limits
//
// Config.MaxClients and Config.MaxSessions bound memory: past them Add
// answers presence.ErrLimit rather than growing. An offline client's
// last-seen time is remembered for Config.Retention (24h by default) or
// until room is needed for a new client, longest-offline first. Measured:
// 1M live sessions of 1M clients, with their Tracker, hold about 330 MB;
// the Store alone, with each session in 3 rooms, about 480 MB.
//
// # Rooms
//
// The Store is a presence.RoomStore. Each room is a map from client to its
// membership (sessions in the room, when it joined), and each session holds
// the small indices of its rooms, whose names are interned once: a
// membership costs tens of bytes and Touch never looks at it. A session
// removed takes its client out of the rooms no other session of it is in.
// Members reads a room's whole map for each page (about 2 ms per 100,000
// members), in the order of a hash of the client ID.
// A client's last-left time, for MembersAmong, is kept for the 64 rooms it
// left most recently, and forgotten with the client.
//
// # Concurrency
//
// A Store is safe for concurrent use; every method is atomic.
package memory

// Package middleware adds connection heartbeats, dead-peer detection, idle
// timeouts and presence to an existing net/http application, for WebSocket
// and plain-HTTP clients. It is built on github.com/gorilla/websocket and
// records presence in a presence.Tracker.
//
// Make one Server per process with New, then mount everything with one
// call (net/http's ServeMux and chi's Router both take it), or the pieces
// you need: every piece is an http.Handler or a func(http.Handler)
// http.Handler.
//
//	srv, err := middleware.New(tracker, middleware.Config{Identify: middleware.IdentifyCookie("uid")})
//	mounted, err := srv.Mount(mux, "/presence", middleware.MountConfig{Handler: chat})
//	defer mounted.Close()
//	handler = srv.TrackRequests(mux) // every successful identified request is a beat
//
// Mount serves prefix/ws (WebSocket), prefix/heartbeat and prefix/leave
// (pages without WebSockets), prefix and prefix/{id} (who is online),
// prefix/rooms/{room} (who is in a room), prefix/feed (live, Server-Sent
// Events), prefix/vigil.js (the browser client) and prefix/metrics
// (Prometheus text format). Mounting a piece by
// hand, register the path without a method ("/presence/heartbeat", not
// "POST /presence/heartbeat"): each handler answers a wrong method with 405
// and Allow, while a method pattern would send GET /presence/heartbeat to
// "GET /presence/{id}" and a 404. With IdentifyContext, TrackRequests and
// the routes must sit behind the authentication middleware that sets the
// context value; at the router's root they would count nothing and answer
// 401.
//
// docs/PROTOCOL.md describes the wire protocol and the close codes for
// client authors.
//
// # Identity and origin
//
// Config.Identify derives the client ID from each request before anything
// else happens; IdentifyHeader, IdentifyQuery, IdentifyCookie and
// IdentifyContext cover the usual places. No identity is answered 401, an
// ID that presence.ValidateID rejects 400. Browser requests must come from
// the request's own origin (scheme, host and port) or one listed in
// Config.AllowedOrigins, else 403: this stops other sites from opening
// connections with your users' cookies. Behind a proxy that terminates TLS,
// list your public https origin in AllowedOrigins.
//
// # Refusals
//
// Every refusal (any status of 400 or more) has one JSON body, an
// ErrorReply: {"error":{"code":"origin_not_allowed","message":"…"}}, with a
// stable code (the Code constants) and a sentence saying why, also for the
// WebSocket handshake. Stats.Refusals and MetricsHandler count refusals by
// code.
//
// # Rooms
//
// A session joins rooms and carries metadata (see presence.RoomStore); the
// application decides which, on the server. Config.Rooms names the rooms
// and metadata of each new session from its request (WebSocket upgrades,
// Attach, every HTTP heartbeat), joined in the same Store step as the
// client's Online; a bad room or metadata is answered 400 (invalid_room,
// invalid_meta) before any upgrade or session. Later, the Handler joins,
// leaves and sets metadata through Conn.Session, and the app's own HTTP
// handlers through Server.HTTPSession. A session leaves its rooms when it
// ends, through Grace. RoomEndpoint (prefix/rooms/{room}) pages through a
// room's members with their metadata, and the Feed carries join, leave and
// update events. Rooms need a Tracker over a Store that keeps them
// (store/memory, store/redis): New refuses Config.Rooms otherwise, and
// RoomEndpoint answers 501.
//
// # Away and back
//
// Clients report whether their user is there (docs/PROTOCOL.md,
// "Activity"): over WebSocket with the text messages "vigil:active" and
// "vigil:away <idle_ms>" (see ActivityPrefix), handled like the application
// ping and never delivered to the Handler; over HTTP heartbeats with the
// "state" and "idle_ms" fields. A malformed report closes the connection
// with 1008 "bad state", or is answered 400 invalid_state. Each report
// becomes a presence.Session.SetActivity call, only on a change and at
// most one per session per second (later changes wait, and the latest
// wins), so a client flipping states costs one Store call a second. The
// status endpoints answer each client's "state" and "last_active". Over a
// Store without states (not a presence.StateStore) reports are checked and
// ignored; Config.DisableActivity hands "vigil:" messages to the
// application.
//
// # Feeds
//
// A Feed streams presence to user interfaces, as Server-Sent Events or
// over a WebSocket. Without a query it is the version-1 feed: a snapshot of
// the online clients, then every transition as its own message. With
// ?room=, ?ids= or ?v=2 it is coalesced: a snapshot of a room's members, of
// a list of clients or of the node's online clients, then at most one diff
// per FeedConfig.Window (250ms) carrying the latest state of each member
// that changed, read from the Tracker once per window and shared by the
// scope's subscribers; a subscriber that does not drain gets a fresh
// snapshot instead of a backlog, and a scope past
// FeedConfig.CountOnlyAbove is followed as a count. docs/PROTOCOL.md
// documents every message.
//
// # Connections
//
// After the upgrade the HTTP handler returns, and the connection lives on
// one goroutine of its own that runs the application's Handler, which reads
// with Conn.Receive. Conn.Send queues a message and returns; a short-lived
// goroutine writes queued messages and exits when the queue is empty. Pings,
// dead-peer checks and idle checks for all connections come from one shared
// scheduler goroutine, so an idle connection costs one goroutine with a
// small stack (it waits for data outside gorilla's read path, and reads
// the pongs and pings that come while it waits itself), and neither a
// read nor a write buffer: both are borrowed from pools while a frame is
// read or written (read buffers of Config.ReadBufferSize above 256 bytes;
// a smaller one, and TLS connections, keep theirs). Apps
// that upgrade connections themselves keep their code and call
// Server.Attach.
//
// Go starts a new goroutine with a stack sized by the average stack in use
// at the last GC. Idle connections use little, so each new request's
// goroutine starts at 2 KiB and grows its stack by copying on its way
// through net/http and the upgrade (about 8% of the CPU of a server taking
// thousands of connections a second, docs/BENCHMARKS.md). While many
// requests wait half way through their set-up the average rises instead,
// and readers born then start, and stay, at 4 KiB;
// GODEBUG=adaptivestackstart=0 (or a //go:debug line in the app's main
// package) starts every goroutine at 2 KiB, which measured about 1 KiB
// less per connection after a fast ramp.
//
// # Timeouts
//
// The server sends a protocol ping every PingInterval (25s by default, well
// under the 60s after which proxies such as nginx cut silent connections).
// Every frame the client sends (a pong, a message, an application "ping")
// is a beat. A connection with no frame for PingInterval+PongTimeout (35s
// by default) is dropped at once, without a close handshake a dead peer
// would never answer, and its session ends with presence.ReasonExpired,
// which skips Grace: the client goes offline right away. The Tracker's TTL
// must be at least PingInterval+PongTimeout, so that beats of a live
// connection always arrive within TTL; New checks it. HTTP-heartbeat
// sessions have the same TTL and are told to beat every PingInterval.
//
// IdleTimeout, when set, closes connections (4501 "idle") whose client sent
// no application message for that long; pongs and application pings do not
// count. It must be longer than PingInterval. WriteTimeout bounds every
// write: a client that does not take a message within it, or whose send
// queue (SendQueueSize messages) overflows, is a slow consumer and is closed
// with 4001. A ping that falls due while a message is being written goes
// out right after that write, so WriteTimeout must not exceed PongTimeout
// (New checks it; by default it is the shorter of 10s and PongTimeout). No
// write deadline outlives its write: the scheduler's pings are written
// without one, and clear the one the last write left. docs/PROTOCOL.md
// ("Timing relations") lists every relation and why it holds. All timing is checked by the scheduler once per tick (1/16 of
// the shorter of PingInterval and PongTimeout, between 5ms and 500ms), which
// bounds how late a deadline can be noticed.
//
// # Ending
//
// A connection ends with a close code and a presence reason: the client
// closed it (its code; presence.ReasonClosed); the Handler returned (1000;
// ReasonClosed); no frame in time (4000, dropped; ReasonExpired); idle (4501;
// ReasonIdle); kicked through Conn.Kick or Tracker.Kick (4500; ReasonKicked);
// shutdown (1001; ReasonShutdown); a frame over ReadLimit (1009); invalid
// UTF-8 in a text message (1007); slow consumer (4001). Every reason but
// ReasonExpired lets the session linger for the Tracker's Grace, so a
// reload or a reconnect fires no events.
//
// # Shutdown
//
// http.Server.Shutdown does not touch hijacked connections. Call
// Server.Shutdown as well: it refuses new upgrades with 503 and Retry-After,
// closes every connection with 1001 spread over DrainWindow, and waits; then
// close the Tracker. See Server.Shutdown for the wiring.
//
// # Concurrency
//
// A Server and its handlers are safe for concurrent use. On a Conn, Send,
// Close, Kick and the accessors may be called from any goroutine; Receive
// only from one goroutine at a time, normally the Handler's. A Handler that
// does not call Receive stops the connection's reading, so pongs go unseen
// and the connection is dropped after PingInterval+PongTimeout. Hooks
// registered on the Tracker never run on a connection's goroutine.
//
// # Logging and metrics
//
// Config.Logger receives Debug lines per connection and refused request
// (attributes client_id, session_id, remote_addr, close_code, reason,
// status, code, err);
// nil logs nothing. The Server reports connections, beats, pings, closes,
// timeouts and refusals through the Tracker's Observer
// (presence.Tracker.Observer), each once: Server.MetricsHandler serves them
// with the Tracker's transitions and Store calls as the families of package
// metrics (docs/METRICS.md), the same names and labels as metrics/prometheus
// and metrics/otel; Server.Stats reads the same counts. No metric label
// carries a client ID.
package middleware

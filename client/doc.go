// Package client is a Go client for vigil servers (package middleware): a
// WebSocket connection that stays connected.
//
//	c, err := client.Dial(ctx, "wss://app.example/presence/ws", client.Config{
//		Header: http.Header{"Authorization": {"Bearer " + token}},
//		OnState: func(sc client.StateChange) { log.Println(sc.From, "->", sc.To) },
//	})
//	if err != nil { ... }
//	defer c.Close()
//	c.Send(ctx, client.Text, []byte("hello"))
//	m, err := c.Receive(ctx)
//
// It implements the client side of docs/PROTOCOL.md, with the same
// semantics as the browser client (client/js):
//
//   - Heartbeat. Any frame from the server proves it alive. When the
//     connection has been silent for PingInterval the Client sends the
//     application ping ("ping"); when nothing at all arrives within
//     PongTimeout of it, the connection is dropped as dead and the Client
//     reconnects. The server's protocol pings are answered automatically.
//   - Reconnect. After a drop the Client waits a random time in
//     [0, min(BackoffMax, BackoffBase·2^n)) before attempt n (full
//     jitter), so the clients of a node that restarts do not all come back
//     at the same instant; the counter starts again after a connection
//     that stayed open for StableAfter. After a 1001 (the server drains)
//     the first attempt is spread over DrainWindow. A 429 or 503 answer
//     waits its Retry-After as well.
//   - Close codes. 1000, 1007, 1008, 1009 and 4500–4999 end the Client
//     (4500: kicked; 4501: idle), as do the handshake answers 401, 403 and
//     other client errors; everything else reconnects. See Retryable.
//   - At most one connection at a time, and Close never reconnects.
//   - Away and back. SetAway(ctx, idleFor) and SetActive(ctx) report
//     whether the user is there ("vigil:away <idle_ms>", "vigil:active");
//     the server marks the client away once all its sessions are. Only
//     changes are sent, and an away report again at the start of each new
//     connection, whose session starts active.
//
// # Concurrency
//
// Send, Receive, State, Err, Done, Close, SetAway, SetActive and Away are
// safe for concurrent use.
// Messages from every connection arrive on one Receive; call it in a loop,
// or the Client stops reading once Config.ReceiveBuffer messages wait.
// Config.OnState is called on the Client's own goroutine, one call at a
// time.
//
// # Timeouts
//
// The Client notices a dead server within PingInterval + PongTimeout of the
// last frame plus a quarter of the shorter of the two (its check period).
// Keep PingInterval + PongTimeout at most the server's Tracker TTL, so that
// the pings of an otherwise silent client also keep its presence.
package client

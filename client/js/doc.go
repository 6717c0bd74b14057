// Package js embeds vigil's browser client, vigil.js (one ES module with no
// dependencies) and its type declarations vigil.d.ts, and serves them.
//
//	mux.Handle("GET /vigil/", js.Handler())
//
// and in the page:
//
//	<script type="module">
//	  import { VigilSocket, PresenceFeed } from "/vigil/vigil.js";
//	  const ws = new VigilSocket("/presence/ws");
//	  ws.addEventListener("statechange", (e) => status.textContent = e.detail.state);
//	  ws.addEventListener("message", (e) => console.log(e.data));
//	</script>
//
// The script implements the client side of docs/PROTOCOL.md with the same
// semantics as the Go package client: application pings, any message as
// proof of life, a dead server noticed by the age of the last message (hidden
// tabs run timers about once a minute, so no timer is trusted to fire on
// time), reconnects with full-jitter exponential backoff, at most one socket
// at a time, an immediate reconnect when the browser comes back online and
// none while it is offline, the states connecting, open, reconnecting,
// offline and closed as events, a send queue while reconnecting, and a clean
// close. VigilHeartbeat keeps a page online with HTTP heartbeats instead,
// and PresenceFeed follows the server's live presence feed
// (middleware.Feed): every transition, or, for a room, a list of client IDs
// or the node, the coalesced feed of members' states and metadata. The files work as they are, without a bundler; copy
// them if you prefer to serve them yourself.
package js

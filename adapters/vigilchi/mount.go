// Package vigilchi mounts a vigil middleware.Server in a github.com/go-chi/chi/v5
// router in one call.
//
// Only the mounting needs this package: the Server's TrackRequests is plain
// func(http.Handler) http.Handler middleware, so r.Use(srv.TrackRequests)
// works in chi as it is, and net/http's ServeMux needs no adapter at all
// (see the middleware package's examples).
package vigilchi

import (
	"strings"

	"github.com/go-chi/chi/v5"

	"github.com/vigilhq/vigil/client/js"
	"github.com/vigilhq/vigil/middleware"
)

// Mount registers the Server's endpoints under prefix ("/presence", say; ""
// for the root):
//
//	GET  prefix/ws         the WebSocket endpoint, running h (nil: presence only)
//	POST prefix/heartbeat  HTTP connection heartbeat
//	POST prefix/leave      end an HTTP session (navigator.sendBeacon)
//	GET  prefix            the online clients, cursor-paged
//	GET  prefix/{id}       one client's presence
//	GET  prefix/vigil.js   the browser client (and prefix/vigil.d.ts)
//
// The live presence feed needs a middleware.Feed, which the app owns and
// closes: mount it with r.Method("GET", prefix+"/feed", feed).
//
// The status routes list every client: mount them inside a chi Group with
// the app's authorisation middleware if that matters, or mount the handlers
// one by one. Because chi matches static segments first, the clients named
// "ws", "heartbeat", "leave", "vigil.js" and "vigil.d.ts" (and "feed", if
// mounted) are reachable only through the Tracker.
func Mount(r chi.Router, prefix string, srv *middleware.Server, h middleware.Handler) {
	prefix = strings.TrimSuffix(prefix, "/")
	r.Method("GET", prefix+"/ws", srv.WebSocket(h))
	r.Method("POST", prefix+"/heartbeat", srv.HeartbeatEndpoint())
	r.Method("POST", prefix+"/leave", srv.LeaveEndpoint())
	r.Method("GET", prefix+"/vigil.js", js.Handler())
	r.Method("GET", prefix+"/vigil.d.ts", js.Handler())
	root := prefix
	if root == "" {
		root = "/"
	}
	r.Method("GET", root, srv.OnlineEndpoint())
	r.Method("GET", prefix+"/{id}", srv.PresenceEndpoint())
}

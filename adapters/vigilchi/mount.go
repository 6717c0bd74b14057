// Package vigilchi mounts a vigil middleware.Server in a
// github.com/go-chi/chi/v5 router in one call. It is named vigilchi, not
// chi, so that it imports beside go-chi's chi package without an alias:
//
//	import (
//		"github.com/go-chi/chi/v5"
//
//		"github.com/vigilhq/vigil/adapters/vigilchi"
//	)
//
// The Server's TrackRequests is plain func(http.Handler) http.Handler
// middleware, so r.Use(srv.TrackRequests) works in chi as it is; net/http's
// ServeMux needs no adapter at all (middleware.Server.Mount takes it).
package vigilchi

import (
	"github.com/go-chi/chi/v5"

	"github.com/vigilhq/vigil/middleware"
)

// Mount registers srv's endpoints on r under prefix ("/presence", say): the
// WebSocket (prefix/ws, running cfg.Handler), HTTP heartbeat and leave,
// the online list (prefix) and one client (prefix/{id}), a room's members
// (prefix/rooms/{room}), the live feed (prefix/feed), the browser script
// (prefix/vigil.js) and metrics (prefix/metrics), unless cfg leaves some
// out. See
// middleware.Server.Mount for the routes and their answers.
//
// Close the returned Mounted (or Shutdown srv) before http.Server.Shutdown:
// it ends the feed's streams, which the HTTP server would wait for.
//
// In chi, mount inside r.Group(…) to put the routes behind the app's
// authentication and authorisation middleware, with the full prefix (a
// r.Route subrouter's patterns are relative to its path, and Mount needs a
// non-empty prefix).
// chi matches static segments before {id}, so clients named like a route
// ("ws", "feed", …) are reachable only through the Tracker.
func Mount(r chi.Router, prefix string, srv *middleware.Server, cfg middleware.MountConfig) (*middleware.Mounted, error) {
	return srv.Mount(r, prefix, cfg)
}

package middleware

import (
	"fmt"
	"net/http"
	"strings"

	"github.com/vigilhq/vigil/client/js"
)

// Router is where Mount registers its routes. *http.ServeMux and chi's
// Router both satisfy it.
type Router interface {
	Handle(pattern string, h http.Handler)
}

// MountConfig chooses what Server.Mount serves. The zero value serves
// every route; each Disable field leaves one group out.
type MountConfig struct {
	// Handler runs each WebSocket connection of prefix/ws. Nil: a
	// presence-only endpoint that reads and discards messages.
	Handler Handler
	// DisableWebSocket leaves out prefix/ws. Default: false.
	DisableWebSocket bool
	// DisableHTTPHeartbeat leaves out prefix/heartbeat and prefix/leave.
	// Default: false.
	DisableHTTPHeartbeat bool
	// DisableStatus leaves out prefix (the online list) and prefix/{id}
	// (one client). Default: false.
	DisableStatus bool
	// DisableFeed leaves out prefix/feed, and Mount makes no Feed.
	// Default: false.
	DisableFeed bool
	// DisableScript leaves out prefix/vigil.js and prefix/vigil.d.ts.
	// Default: false.
	DisableScript bool
	// DisableMetrics leaves out prefix/metrics. Default: false.
	DisableMetrics bool
	// DisableRooms leaves out prefix/rooms/{room} (a room's members).
	// Default: false.
	DisableRooms bool
	// Feed configures the Feed of prefix/feed. A nil Feed.Logger takes the
	// Server's Logger, a nil Feed.CheckOrigin the Server's origin check
	// (Config.AllowedOrigins). Default: the FeedConfig defaults.
	Feed FeedConfig
}

// Route is one route Mount registered.
type Route struct {
	// Pattern is the path registered, with no method: the handler answers
	// other methods with 405 and Allow itself.
	Pattern string
	// Methods lists the methods the handler serves, as in its Allow
	// header ("GET, HEAD").
	Methods string
	// Handler serves the route.
	Handler http.Handler
}

// Mounted is what Server.Mount registered. Its Close closes the Feed Mount
// made; Server.Shutdown closes it too. It is safe for concurrent use.
type Mounted struct {
	routes []Route
	feed   *Feed
}

// Routes returns the routes registered, in registration order.
func (m *Mounted) Routes() []Route { return append([]Route(nil), m.routes...) }

// Feed returns the Feed of prefix/feed, nil with DisableFeed.
func (m *Mounted) Feed() *Feed { return m.feed }

// Close closes the Feed Mount made, ending its streams (http.Server.Shutdown
// waits for open streams, so close it first). The other routes keep
// working. Calling it again is safe.
func (m *Mounted) Close() error {
	if m.feed == nil {
		return nil
	}
	return m.feed.Close()
}

// Mount registers the Server's endpoints on r under prefix ("/presence",
// say), all of them unless cfg leaves some out:
//
//	prefix/ws            GET   the WebSocket endpoint, running cfg.Handler
//	prefix/heartbeat     POST  HTTP connection heartbeat (HeartbeatEndpoint)
//	prefix/leave         POST  end an HTTP session, for navigator.sendBeacon (LeaveEndpoint)
//	prefix               GET   the online clients, cursor-paged (OnlineEndpoint)
//	prefix/{id}          GET   one client (PresenceEndpoint)
//	prefix/rooms/{room}  GET   a room's members, cursor-paged (RoomEndpoint)
//	prefix/feed          GET   the live presence feed, Server-Sent Events or WebSocket (a Feed)
//	prefix/vigil.js      GET   the browser client, and prefix/vigil.d.ts (js.Handler)
//	prefix/metrics       GET   Prometheus text format (MetricsHandler)
//
// Patterns carry no method, so that a request with the wrong method gets
// 405 with Allow from the handler (not the {id} route's 404), and so that
// net/http's ServeMux ranks the named routes above prefix/{id}. The clients
// named like a route ("ws", "feed", …) are reachable only through the
// Tracker.
//
// The room route answers 501 over a Store without rooms. The status routes,
// the rooms, the feed and metrics list every client: register
// them on a router whose middleware authorises the request (a chi Group,
// say), or leave them out and mount the handlers one by one. When Identify
// reads the request context (IdentifyContext), r's requests must pass
// through the authentication middleware before they reach these routes.
//
// prefix must be a path like "/presence" with no trailing slash: at the
// root, prefix/{id} would take every one-segment path of the app. Mount
// fails with ErrInvalidConfig for another prefix or a bad cfg.Feed.
func (s *Server) Mount(r Router, prefix string, cfg MountConfig) (*Mounted, error) {
	if !strings.HasPrefix(prefix, "/") || strings.HasSuffix(prefix, "/") || strings.ContainsAny(prefix, "{} ") {
		return nil, fmt.Errorf("%w: mount prefix %q: want a path like /presence, without a trailing slash", ErrInvalidConfig, prefix)
	}
	m := &Mounted{}
	if !cfg.DisableFeed {
		fc := cfg.Feed
		if fc.Logger == nil {
			fc.Logger = s.log
		}
		if fc.CheckOrigin == nil {
			fc.CheckOrigin = s.origins.check
		}
		f, err := NewFeed(s.tr, fc)
		if err != nil {
			return nil, err
		}
		m.feed = f
		s.mu.Lock()
		s.feeds = append(s.feeds, f)
		draining := s.draining
		s.mu.Unlock()
		if draining {
			_ = f.Close()
		}
	}
	add := func(path, methods string, h http.Handler) {
		m.routes = append(m.routes, Route{Pattern: prefix + path, Methods: methods, Handler: h})
	}
	if !cfg.DisableWebSocket {
		add("/ws", "GET", s.WebSocket(cfg.Handler))
	}
	if !cfg.DisableHTTPHeartbeat {
		add("/heartbeat", "POST", s.HeartbeatEndpoint())
		add("/leave", "POST", s.LeaveEndpoint())
	}
	if m.feed != nil {
		add("/feed", "GET", m.feed)
	}
	if !cfg.DisableScript {
		script := s.getOnly(js.Handler())
		add("/vigil.js", "GET, HEAD", script)
		add("/vigil.d.ts", "GET, HEAD", script)
	}
	if !cfg.DisableMetrics {
		add("/metrics", "GET, HEAD", s.MetricsHandler())
	}
	if !cfg.DisableStatus {
		add("", "GET, HEAD", s.OnlineEndpoint())
		add("/{id}", "GET, HEAD", s.PresenceEndpoint())
	}
	if !cfg.DisableRooms {
		add("/rooms/{room}", "GET, HEAD", s.RoomEndpoint())
	}
	for _, rt := range m.routes {
		r.Handle(rt.Pattern, rt.Handler)
	}
	return m, nil
}

// getOnly serves GET and HEAD with h, marks the request as the Server's
// own, and refuses other methods.
func (s *Server) getOnly(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ownEndpoint(r)
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			s.refuseMethod(w, r, "GET, HEAD")
			return
		}
		h.ServeHTTP(w, r)
	})
}

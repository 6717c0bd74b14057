package vigilgin

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"

	"github.com/gin-gonic/gin"

	"github.com/vigilhq/vigil/middleware"
)

// Mount registers srv's endpoints on r under prefix ("/presence", say),
// relative to r's base path when r is a *gin.RouterGroup: the WebSocket
// (prefix/ws, running cfg.Handler), HTTP heartbeat and leave, the online
// list (prefix) and one client (prefix/:id), a room's members
// (prefix/rooms/:room), the live feed (prefix/feed), the browser script
// (prefix/vigil.js) and metrics (prefix/metrics), unless cfg leaves some
// out. See middleware.Server.Mount for the routes and their answers; the
// Patterns of the returned Mounted's Routes are written as for net/http
// ({id}) and relative to r.
//
// gin routes on the unescaped path by default, so a client ID or room name
// with a "/" (sent escaped, as a%2Fb) matches no route: set the engine's
// UseRawPath to true to serve them.
//
// Register it on a group (or engine) whose middleware authenticates and
// authorises the request: the status routes and the feed list every
// client. Close the returned Mounted (or Shutdown srv) before
// http.Server.Shutdown: it ends the feed's streams, which the HTTP server
// would wait for.
func Mount(r gin.IRouter, prefix string, srv *middleware.Server, cfg middleware.MountConfig) (*middleware.Mounted, error) {
	return srv.Mount(router{r}, prefix, cfg)
}

// router registers Mount's routes on a gin router, for every method: the
// handlers answer the methods they do not serve with 405 and Allow.
type router struct{ r gin.IRouter }

func (rt router) Handle(pattern string, h http.Handler) {
	path, params := ginPath(pattern)
	rt.r.Any(path, func(c *gin.Context) {
		r, end := bridge(c.Request, c)
		defer end()
		for _, p := range params {
			r.SetPathValue(p, c.Param(p))
		}
		h.ServeHTTP(c.Writer, r)
	})
}

// ginPath turns a net/http pattern's wildcards ({id}) into gin's (:id) and
// returns their names, which the handler copies into r.PathValue.
func ginPath(pattern string) (string, []string) {
	segs := strings.Split(pattern, "/")
	var params []string
	for i, s := range segs {
		if name, ok := strings.CutPrefix(s, "{"); ok && strings.HasSuffix(name, "}") {
			name = strings.TrimSuffix(name, "}")
			params = append(params, name)
			segs[i] = ":" + name
		}
	}
	return strings.Join(segs, "/"), params
}

// TrackRequests returns srv.TrackRequests as gin middleware: requests of
// an identified client that the handlers after it answer with a status
// below 400 (middleware.Config.CountRequest) count as beats of the
// client's HTTP session. Register it after the app's authentication
// middleware when Identify is IdentifyContext.
func TrackRequests(srv *middleware.Server) gin.HandlerFunc {
	return func(c *gin.Context) {
		r, end := bridge(c.Request, c)
		defer end()
		srv.TrackRequests(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			c.Request = r // carries what vigil's endpoints tell TrackRequests
			c.Next()
			if w != http.ResponseWriter(c.Writer) {
				// The handlers wrote through gin's writer, under the one
				// TrackRequests watches: tell it the status. gin's writer
				// already has that status, so it ignores the call.
				w.WriteHeader(c.Writer.Status())
			}
		})).ServeHTTP(c.Writer, r)
	}
}

// IdentifyContext returns a middleware.Config.Identify function that reads
// the client ID that the app's gin middleware stored with c.Set(key, id).
// The value must be a string or a fmt.Stringer. It finds the value only in
// requests served by vigilgin's handlers (Mount's routes, TrackRequests),
// while they run; see the package doc. A missing value is an error wrapping
// middleware.ErrNoIdentity.
func IdentifyContext(key any) func(*http.Request) (string, error) {
	return func(r *http.Request) (string, error) {
		var v any
		if f, ok := r.Context().Value(frameKey{}).(*frame); ok {
			if c := f.c.Load(); c != nil {
				v, _ = c.Get(key)
			}
		}
		var id string
		switch x := v.(type) {
		case string:
			id = x
		case fmt.Stringer:
			id = x.String()
		}
		if id == "" {
			return "", fmt.Errorf("vigilgin: gin context key %v: %w", key, middleware.ErrNoIdentity)
		}
		return id, nil
	}
}

// frameKey is the request context key of the gin.Context being served.
type frameKey struct{}

// frame gives a request's context access to its gin.Context while one of
// vigilgin's handlers runs; it holds nil after, because gin reuses the
// Context for other requests.
type frame struct{ c atomic.Pointer[gin.Context] }

// bridge returns r with c reachable from its context, and the function
// that ends the access.
func bridge(r *http.Request, c *gin.Context) (*http.Request, func()) {
	f := &frame{}
	f.c.Store(c)
	return r.WithContext(context.WithValue(r.Context(), frameKey{}, f)), func() { f.c.Store(nil) }
}

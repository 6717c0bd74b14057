package vigilecho

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"

	"github.com/labstack/echo/v4"

	"github.com/vigilhq/vigil/middleware"
)

// Router is where Mount registers its routes: *echo.Echo and *echo.Group
// both satisfy it.
type Router interface {
	Any(path string, h echo.HandlerFunc, m ...echo.MiddlewareFunc) []*echo.Route
}

// Mount registers srv's endpoints on r under prefix ("/presence", say),
// after the prefix of r when r is an *echo.Group: the WebSocket
// (prefix/ws, running cfg.Handler), HTTP heartbeat and leave, the online
// list (prefix) and one client (prefix/:id), a room's members
// (prefix/rooms/:room), the live feed (prefix/feed),
// the browser script (prefix/vigil.js) and metrics (prefix/metrics),
// unless cfg leaves some out. See middleware.Server.Mount for the routes
// and their answers; the Patterns of the returned Mounted's Routes are
// written as for net/http ({id}) and relative to r.
//
// Register it on a group whose middleware authenticates and authorises the
// request: the status routes and the feed list every client. Close the
// returned Mounted (or Shutdown srv) before echo's Shutdown: it ends the
// feed's streams, which the HTTP server would wait for.
func Mount(r Router, prefix string, srv *middleware.Server, cfg middleware.MountConfig) (*middleware.Mounted, error) {
	return srv.Mount(router{r}, prefix, cfg)
}

// router registers Mount's routes on an echo router, for every method: the
// handlers answer the methods they do not serve with 405 and Allow.
type router struct{ r Router }

func (rt router) Handle(pattern string, h http.Handler) {
	path, params := echoPath(pattern)
	rt.r.Any(path, func(c echo.Context) error {
		r, end := bridge(c.Request(), c)
		defer end()
		for _, p := range params {
			v := c.Param(p)
			if r.URL.RawPath != "" {
				// echo routed on the escaped path, and its parameters
				// are escaped; r.PathValue's are not.
				if u, err := url.PathUnescape(v); err == nil {
					v = u
				}
			}
			r.SetPathValue(p, v)
		}
		h.ServeHTTP(c.Response(), r)
		return nil
	})
}

// echoPath turns a net/http pattern's wildcards ({id}) into echo's (:id)
// and returns their names, which the handler copies into r.PathValue.
func echoPath(pattern string) (string, []string) {
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

// TrackRequests returns srv.TrackRequests as echo middleware: requests of
// an identified client that the handlers after it answer with a status
// below 400 (middleware.Config.CountRequest) count as beats of the
// client's HTTP session. Register it after the app's authentication
// middleware when Identify is IdentifyContext. An error from the handlers
// after it goes to c.Error before TrackRequests returns it (see the
// package doc).
func TrackRequests(srv *middleware.Server) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			r, end := bridge(c.Request(), c)
			defer end()
			res := c.Response()
			orig := res.Writer
			defer func() { res.Writer = orig }()
			var err error
			srv.TrackRequests(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				c.SetRequest(r) // carries what vigil's endpoints tell TrackRequests
				res.Writer = w  // the writer TrackRequests watches
				if err = next(c); err != nil {
					c.Error(err) // writes the answer, whose status TrackRequests needs
				}
			})).ServeHTTP(orig, r)
			return err
		}
	}
}

// IdentifyContext returns a middleware.Config.Identify function that reads
// the client ID that the app's echo middleware stored with c.Set(key, id).
// The value must be a string or a fmt.Stringer. It finds the value only in
// requests served by vigilecho's handlers (Mount's routes, TrackRequests),
// while they run; see the package doc. A missing value is an error wrapping
// middleware.ErrNoIdentity.
func IdentifyContext(key string) func(*http.Request) (string, error) {
	return func(r *http.Request) (string, error) {
		var v any
		if f, ok := r.Context().Value(frameKey{}).(*frame); ok {
			if c := f.c.Load(); c != nil {
				v = (*c).Get(key)
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
			return "", fmt.Errorf("vigilecho: echo context key %s: %w", key, middleware.ErrNoIdentity)
		}
		return id, nil
	}
}

// frameKey is the request context key of the echo.Context being served.
type frameKey struct{}

// frame gives a request's context access to its echo.Context while one of
// vigilecho's handlers runs; it holds nil after, because echo reuses the
// Context for other requests.
type frame struct{ c atomic.Pointer[echo.Context] }

// bridge returns r with c reachable from its context, and the function
// that ends the access.
func bridge(r *http.Request, c echo.Context) (*http.Request, func()) {
	f := &frame{}
	f.c.Store(&c)
	return r.WithContext(context.WithValue(r.Context(), frameKey{}, f)), func() { f.c.Store(nil) }
}

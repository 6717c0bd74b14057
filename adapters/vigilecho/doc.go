// Package vigilecho mounts a vigil middleware.Server in a
// github.com/labstack/echo/v4 router. It is a Go module of its own, so that
// vigil's root module does not require echo:
//
//	import (
//		"github.com/labstack/echo/v4"
//
//		"github.com/vigilhq/vigil/adapters/vigilecho"
//		"github.com/vigilhq/vigil/middleware"
//	)
//
// Mount registers the routes of middleware.Server.Mount on an *echo.Echo or
// *echo.Group, TrackRequests is the Server's TrackRequests as an
// echo.MiddlewareFunc, and IdentifyContext reads the client ID that the
// app's authentication middleware stored with c.Set.
//
// # Identity from echo's context
//
// middleware.Config.Identify gets the *http.Request, which does not lead to
// the echo.Context. vigilecho's handlers (Mount's routes and TrackRequests)
// bridge the two: while they serve a request, its context gives access to
// the values of the request's echo.Context, and IdentifyContext(key) reads
// the value under key there. So an app whose authentication middleware
// calls c.Set("user", id) configures the Server with
//
//	middleware.Config{Identify: vigilecho.IdentifyContext("user")}
//
// and registers TrackRequests and Mount after that middleware
// (g := e.Group("/api", auth, vigilecho.TrackRequests(srv));
// vigilecho.Mount(g, …)). The access ends when the handler returns, because
// echo reuses its Context for later requests: an Identify run after that
// finds no identity. An app that puts the user in the request context
// instead (c.SetRequest(c.Request().WithContext(…))) uses
// middleware.IdentifyContext, as with net/http.
//
// # Errors and status
//
// TrackRequests counts a request by the status it was answered. echo writes
// the answer to an error a handler returns only when the error reaches its
// HTTPErrorHandler, after every middleware has returned; so TrackRequests,
// like echo's RequestLogger with HandleError, passes such an error to
// c.Error itself (which writes the answer) and then returns it. echo's
// DefaultHTTPErrorHandler ignores an error whose answer is already
// committed; a custom HTTPErrorHandler must do the same.
//
// # Methods
//
// The routes are registered with Any: each of vigil's handlers answers a
// method it does not serve with 405 and an Allow header, as it does under
// net/http's ServeMux, rather than letting the {id} route take it.
package vigilecho

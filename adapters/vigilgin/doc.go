// Package vigilgin mounts a vigil middleware.Server in a
// github.com/gin-gonic/gin router. It is a Go module of its own, so that
// vigil's root module does not require gin:
//
//	import (
//		"github.com/gin-gonic/gin"
//
//		"github.com/vigilhq/vigil/adapters/vigilgin"
//		"github.com/vigilhq/vigil/middleware"
//	)
//
// Mount registers the routes of middleware.Server.Mount on a gin.IRouter
// (the engine or a *gin.RouterGroup), TrackRequests is the Server's
// TrackRequests as a gin.HandlerFunc, and IdentifyContext reads the client
// ID that the app's authentication middleware stored with c.Set.
//
// # Identity from gin's context
//
// middleware.Config.Identify gets the *http.Request, which does not lead to
// the *gin.Context. vigilgin's handlers (Mount's routes and TrackRequests)
// bridge the two: while they serve a request, its context gives access to
// the values of the request's *gin.Context, and IdentifyContext(key) reads
// the value under key there. So an app whose authentication middleware
// calls c.Set("user", id) configures the Server with
//
//	middleware.Config{Identify: vigilgin.IdentifyContext("user")}
//
// and registers TrackRequests and Mount after that middleware (r.Use(auth,
// vigilgin.TrackRequests(srv)); vigilgin.Mount(r, …)). The access ends when
// the handler returns, because gin reuses its Context for later requests:
// an Identify run after that finds no identity. An app that puts the user
// in the request context instead (c.Request = c.Request.WithContext(…))
// uses middleware.IdentifyContext, as with net/http.
//
// # Methods
//
// The routes are registered with Any: each of vigil's handlers answers a
// method it does not serve with 405 and an Allow header, as it does under
// net/http's ServeMux, rather than letting the {id} route or gin's 404
// take it. A method outside gin's Any list (a WebDAV one, say) gets gin's
// own answer.
//
// # Paths
//
// gin matches routes on the decoded path (unless Engine.UseRawPath is set),
// so a client ID with an escaped slash ("/presence/a%2Fb") does not reach
// prefix/:id; net/http's ServeMux would serve it. Such clients are
// reachable through the Tracker, or with Engine.UseRawPath.
package vigilgin

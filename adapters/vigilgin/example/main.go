package main

import (
	"context"
	"log"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/vigilhq/vigil/adapters/vigilgin"
	"github.com/vigilhq/vigil/middleware"
	"github.com/vigilhq/vigil/presence"
	"github.com/vigilhq/vigil/store/memory"
)

// auth stands in for the app's authentication: it stores the user in gin's
// context, where vigilgin.IdentifyContext("user") finds it.
func auth(c *gin.Context) {
	uid, err := c.Cookie("uid") // a real app checks a session, a token…
	if err != nil {
		c.AbortWithStatus(http.StatusUnauthorized)
		return
	}
	c.Set("user", uid)
}

func main() {
	ctx := context.Background()
	store, _ := memory.New(memory.Config{})
	tracker, err := presence.New(ctx, store, presence.Config{})
	if err != nil {
		log.Fatal(err)
	}
	defer tracker.Close(ctx)
	vs, err := middleware.New(tracker, middleware.Config{Identify: vigilgin.IdentifyContext("user")})
	if err != nil {
		log.Fatal(err)
	}
	defer vs.Shutdown(ctx) // also ends the feed's streams

	r := gin.Default()
	api := r.Group("/api", auth, vigilgin.TrackRequests(vs)) // vigil after the app's authentication
	api.GET("/hello", func(c *gin.Context) { c.String(http.StatusOK, "hello %s\n", c.GetString("user")) })
	if _, err := vigilgin.Mount(api, "/presence", vs, middleware.MountConfig{}); err != nil {
		log.Fatal(err)
	}
	hs := &http.Server{Addr: ":8080", Handler: r, ReadHeaderTimeout: 10 * time.Second}
	log.Fatal(hs.ListenAndServe())
}

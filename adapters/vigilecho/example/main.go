package main

import (
	"context"
	"log"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"
	echomw "github.com/labstack/echo/v4/middleware"

	"github.com/vigilhq/vigil/adapters/vigilecho"
	"github.com/vigilhq/vigil/middleware"
	"github.com/vigilhq/vigil/presence"
	"github.com/vigilhq/vigil/store/memory"
)

// auth stands in for the app's authentication: it stores the user in echo's
// context, where vigilecho.IdentifyContext("user") finds it.
func auth(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		uid, err := c.Cookie("uid") // a real app checks a session, a token…
		if err != nil || uid.Value == "" {
			return echo.ErrUnauthorized
		}
		c.Set("user", uid.Value)
		return next(c)
	}
}

func main() {
	ctx := context.Background()
	store, _ := memory.New(memory.Config{})
	tracker, err := presence.New(ctx, store, presence.Config{})
	if err != nil {
		log.Fatal(err)
	}
	defer tracker.Close(ctx)
	vs, err := middleware.New(tracker, middleware.Config{Identify: vigilecho.IdentifyContext("user")})
	if err != nil {
		log.Fatal(err)
	}
	defer vs.Shutdown(ctx) // also ends the feed's streams

	e := echo.New()
	e.Use(echomw.RequestLogger())
	api := e.Group("/api", auth, vigilecho.TrackRequests(vs)) // vigil after the app's authentication
	api.GET("/hello", func(c echo.Context) error { return c.String(http.StatusOK, "hello "+c.Get("user").(string)+"\n") })
	if _, err := vigilecho.Mount(api, "/presence", vs, middleware.MountConfig{}); err != nil {
		log.Fatal(err)
	}
	hs := &http.Server{Addr: ":8080", Handler: e, ReadHeaderTimeout: 10 * time.Second}
	log.Fatal(hs.ListenAndServe())
}

package vigilecho_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log"
	"net/http/httptest"

	"github.com/labstack/echo/v4"

	"github.com/vigilhq/vigil/adapters/vigilecho"
	"github.com/vigilhq/vigil/middleware"
	"github.com/vigilhq/vigil/presence"
	"github.com/vigilhq/vigil/store/memory"
)

// Everything vigil serves, in an echo group behind the app's
// authentication, which stores the user in echo's context with c.Set:
// IdentifyContext reads it there.
func Example() {
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
	defer vs.Shutdown(ctx)

	auth := func(next echo.HandlerFunc) echo.HandlerFunc { // the app's own: here everyone is alice
		return func(c echo.Context) error {
			c.Set("user", "alice")
			return next(c)
		}
	}
	e := echo.New()
	api := e.Group("/api", auth, vigilecho.TrackRequests(vs))
	api.GET("/app", func(c echo.Context) error { return c.String(200, "hello\n") })
	mounted, err := vigilecho.Mount(api, "/presence", vs, middleware.MountConfig{})
	if err != nil {
		log.Fatal(err)
	}
	defer mounted.Close() // ends the feed's streams; before e.Shutdown

	serve := func(method, path string) *httptest.ResponseRecorder {
		rec := httptest.NewRecorder()
		e.ServeHTTP(rec, httptest.NewRequest(method, path, nil))
		return rec
	}
	rec := serve("GET", "/api/app") // a request of alice's: she is online
	fmt.Print("GET /api/app: ", rec.Code, " ", rec.Body)

	var alice middleware.ClientStatus // reading presence counts nothing
	rec = serve("GET", "/api/presence/alice")
	_ = json.Unmarshal(rec.Body.Bytes(), &alice)
	fmt.Println("GET /api/presence/alice:", rec.Code, alice.Online, alice.Sessions)

	var refusal middleware.ErrorReply // the heartbeat route is POST only
	rec = serve("GET", "/api/presence/heartbeat")
	_ = json.Unmarshal(rec.Body.Bytes(), &refusal)
	fmt.Println("GET /api/presence/heartbeat:", rec.Code, rec.Header().Get("Allow"), refusal.Error.Code)
	// Output:
	// GET /api/app: 200 hello
	// GET /api/presence/alice: 200 true 1
	// GET /api/presence/heartbeat: 405 POST method_not_allowed
}

package vigilchi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"

	"github.com/go-chi/chi/v5"

	"github.com/vigilhq/vigil/adapters/vigilchi"
	"github.com/vigilhq/vigil/middleware"
	"github.com/vigilhq/vigil/presence"
	"github.com/vigilhq/vigil/store/memory"
)

// Everything vigil serves, in a chi router behind the app's authentication:
// TrackRequests and the routes come after the middleware that puts the
// user in the request context.
func Example() {
	ctx := context.Background()
	store, _ := memory.New(memory.Config{})
	tracker, err := presence.New(ctx, store, presence.Config{})
	if err != nil {
		log.Fatal(err)
	}
	defer tracker.Close(ctx)
	type userKey struct{}
	vs, err := middleware.New(tracker, middleware.Config{Identify: middleware.IdentifyContext(userKey{})})
	if err != nil {
		log.Fatal(err)
	}
	defer vs.Shutdown(ctx)

	auth := func(next http.Handler) http.Handler { // the app's own: here everyone is alice
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), userKey{}, "alice")))
		})
	}
	r := chi.NewRouter()
	var mounted *middleware.Mounted
	r.Group(func(r chi.Router) {
		r.Use(auth, vs.TrackRequests)
		r.Get("/app", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "hello") })
		mounted, err = vigilchi.Mount(r, "/presence", vs, middleware.MountConfig{})
	})
	if err != nil {
		log.Fatal(err)
	}
	defer mounted.Close() // ends the feed's streams; before http.Server.Shutdown

	serve := func(method, path string) *httptest.ResponseRecorder {
		rec := httptest.NewRecorder()
		r.ServeHTTP(rec, httptest.NewRequest(method, path, nil))
		return rec
	}
	rec := serve("GET", "/app") // a request of alice's: she is online
	fmt.Print("GET /app: ", rec.Code, " ", rec.Body)

	var alice middleware.ClientStatus // reading presence counts nothing
	rec = serve("GET", "/presence/alice")
	_ = json.Unmarshal(rec.Body.Bytes(), &alice)
	fmt.Println("GET /presence/alice:", rec.Code, alice.Online, alice.Sessions)

	var refusal middleware.ErrorReply // the heartbeat route is POST only
	rec = serve("GET", "/presence/heartbeat")
	_ = json.Unmarshal(rec.Body.Bytes(), &refusal)
	fmt.Println("GET /presence/heartbeat:", rec.Code, rec.Header().Get("Allow"), refusal.Error.Code)
	// Output:
	// GET /app: 200 hello
	// GET /presence/alice: 200 true 1
	// GET /presence/heartbeat: 405 POST method_not_allowed
}

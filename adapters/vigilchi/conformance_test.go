package vigilchi_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/go-chi/chi/v5"

	"github.com/vigilhq/vigil/adapters/vigilchi"
	"github.com/vigilhq/vigil/internal/adaptertest"
	"github.com/vigilhq/vigil/middleware"
)

type userKey struct{}

// The suite every router adapter passes (internal/adaptertest), on chi:
// the app's auth puts the X-User header's user in the request context,
// where middleware.IdentifyContext finds it.
func TestConformance(t *testing.T) {
	adaptertest.Run(t, func(t *testing.T) *adaptertest.App {
		tr, srv := adaptertest.NewVigil(t, middleware.IdentifyContext(userKey{}))
		auth := func(next http.Handler) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if u := r.Header.Get("X-User"); u != "" {
					r = r.WithContext(context.WithValue(r.Context(), userKey{}, u))
				}
				next.ServeHTTP(w, r)
			})
		}
		a := &adaptertest.App{Tracker: tr}
		r := chi.NewRouter()
		r.Route("/api", func(api chi.Router) {
			api.Use(auth, srv.TrackRequests)
			api.Get("/app", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("app")) })
			api.Get("/denied", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusForbidden) })
			var err error
			if a.Mounted, err = vigilchi.Mount(api, "/presence", srv, middleware.MountConfig{Handler: adaptertest.Echo}); err != nil {
				t.Fatal(err)
			}
		})
		ts := httptest.NewServer(r)
		a.URL = ts.URL
		t.Cleanup(func() {
			a.Mounted.Close()
			ts.Close()
		})
		return a
	})
}

package vigilgin_test

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gin-gonic/gin"
	"go.uber.org/goleak"

	"github.com/vigilhq/vigil/adapters/vigilgin"
	"github.com/vigilhq/vigil/internal/adaptertest"
	"github.com/vigilhq/vigil/middleware"
)

// The suite every router adapter passes.
func TestConformance(t *testing.T) {
	adaptertest.Run(t, func(t *testing.T) *adaptertest.App { return start(t).App })
}

func TestMain(m *testing.M) {
	gin.SetMode(gin.TestMode)
	goleak.VerifyTestMain(m)
}

// auth is the app's authentication: the user named by X-User, stored in
// gin's context under "user". It refuses nobody, so that vigil's own
// answer to a request without identity shows.
func auth(c *gin.Context) {
	if u := c.GetHeader("X-User"); u != "" {
		c.Set("user", u)
	}
	c.Next()
}

type env struct {
	*adaptertest.App
	// captured is the request the /api/capture handler saw.
	captured chan *http.Request
}

// start serves an engine with vigil mounted at /api/presence in a group
// behind auth and TrackRequests, beside app routes /api/app (200),
// /api/denied (403) and /api/capture.
func start(t *testing.T) *env {
	t.Helper()
	tr, srv := adaptertest.NewVigil(t, vigilgin.IdentifyContext("user"))
	e := &env{App: &adaptertest.App{Tracker: tr}, captured: make(chan *http.Request, 1)}
	var err error
	r := gin.New()
	r.UseRawPath = true // a/b reaches rooms/{room} as a%2Fb (see Mount)
	api := r.Group("/api", auth, vigilgin.TrackRequests(srv))
	api.GET("/app", func(c *gin.Context) { c.String(200, "app") })
	api.GET("/denied", func(c *gin.Context) { c.AbortWithStatus(http.StatusForbidden) })
	api.GET("/capture", func(c *gin.Context) {
		if id, err := vigilgin.IdentifyContext("user")(c.Request); err != nil || id != "ann" {
			t.Errorf("IdentifyContext in the handler: %q, %v", id, err)
		}
		e.captured <- c.Request
	})
	e.Mounted, err = vigilgin.Mount(api, "/presence", srv, middleware.MountConfig{Handler: adaptertest.Echo})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(r)
	e.URL = ts.URL
	t.Cleanup(func() {
		e.Mounted.Close() // ends the feed's streams, which ts.Close waits for
		ts.Close()
	})
	return e
}

func TestIdentifyContextEndsWithRequest(t *testing.T) {
	e := start(t)
	if resp, _ := e.Do(t, "GET", "/api/capture", "ann", ""); resp.StatusCode != 200 {
		t.Fatalf("GET /api/capture: %d", resp.StatusCode)
	}
	r := <-e.captured
	// gin reuses the Context for the next request: the access has ended.
	if id, err := vigilgin.IdentifyContext("user")(r); !errors.Is(err, middleware.ErrNoIdentity) {
		t.Fatalf("after the request: %q, %v; want ErrNoIdentity", id, err)
	}
	req := httptest.NewRequest("GET", "/", nil) // not served by vigilgin
	if _, err := vigilgin.IdentifyContext("user")(req); !errors.Is(err, middleware.ErrNoIdentity) || !strings.HasPrefix(err.Error(), "vigilgin: ") {
		t.Fatalf("plain request: %v", err)
	}
}

func TestMountPrefix(t *testing.T) {
	if _, err := vigilgin.Mount(gin.New(), "/presence/", nil, middleware.MountConfig{}); err == nil {
		t.Error("Mount with a trailing slash: no error")
	}
}

// Without TrackRequests, Mount's routes bridge gin's context themselves.
func TestMountWithoutTrackRequests(t *testing.T) {
	tr, srv := adaptertest.NewVigil(t, vigilgin.IdentifyContext("user"))
	r := gin.New()
	r.Use(auth)
	m, err := vigilgin.Mount(r, "/presence", srv, middleware.MountConfig{DisableFeed: true})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	rec := httptest.NewRecorder()
	req := httptest.NewRequest("POST", "/presence/heartbeat", strings.NewReader(`{"session":"t1"}`))
	req.Header.Set("X-User", "ann")
	r.ServeHTTP(rec, req)
	if rec.Code != 200 {
		t.Fatalf("heartbeat: %d %s", rec.Code, rec.Body)
	}
	if p, err := tr.Presence(t.Context(), "ann"); err != nil || !p.Online {
		t.Fatalf("ann: %+v, %v", p, err)
	}
}

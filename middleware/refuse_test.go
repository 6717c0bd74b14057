package middleware_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/vigilhq/vigil/metrics"
	"github.com/vigilhq/vigil/middleware"
	"github.com/vigilhq/vigil/presence"
)

// checkRefusal checks that rec holds status and the one JSON error shape,
// {"error":{"code":code,"message":"…"}}, and nothing else.
func checkRefusal(t *testing.T, rec *httptest.ResponseRecorder, status int, code string) middleware.ErrorDetail {
	t.Helper()
	if rec.Code != status {
		t.Fatalf("status %d, want %d; body %s", rec.Code, status, rec.Body)
	}
	if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q, want application/json", ct)
	}
	var got middleware.ErrorReply
	dec := json.NewDecoder(bytes.NewReader(rec.Body.Bytes()))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&got); err != nil {
		t.Fatalf("body %q is not {\"error\":{\"code\",\"message\"}}: %v", rec.Body, err)
	}
	if got.Error.Code != code || got.Error.Message == "" {
		t.Errorf("error %+v, want code %q and a message", got.Error, code)
	}
	return got.Error
}

// TestRefusalsAreJSON checks one refusal per status vigil answers: each
// carries the JSON error shape with its code.
func TestRefusalsAreJSON(t *testing.T) {
	e := newEnv(t, presence.Config{}, middleware.Config{MaxConnsPerClient: 1, MaxBodyBytes: 64})
	routes := e.mux(nil)
	closed := newEnv(t, presence.Config{}, middleware.Config{})
	if err := closed.srv.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	// A second heartbeat session of "max" is over MaxConnsPerClient.
	if rec := serve(routes, "POST", "/presence/heartbeat?id=max&session=a", "", nil); rec.Code != 200 {
		t.Fatalf("first heartbeat: %d %s", rec.Code, rec.Body)
	}
	gone := newEnv(t, presence.Config{}, middleware.Config{})
	if err := gone.tr.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	feed, err := middleware.NewFeed(e.tr, middleware.FeedConfig{})
	if err != nil {
		t.Fatal(err)
	}
	feed.Close()

	tests := []struct {
		name, method, target, body string
		header                     http.Header
		h                          http.Handler
		status                     int
		code                       string
		alsoHeader                 string // a header the answer must carry
	}{
		{name: "400 handshake", method: "GET", target: "/ws?id=a", h: routes, status: 400, code: middleware.CodeBadHandshake},
		{name: "400 client id", method: "POST", target: "/presence/heartbeat?id=%00", h: routes, status: 400, code: middleware.CodeInvalidClientID},
		{name: "400 body", method: "POST", target: "/presence/heartbeat?id=a", body: "{", h: routes, status: 400, code: middleware.CodeInvalidBody},
		{name: "400 session", method: "POST", target: "/presence/heartbeat?id=a&session=x", body: `{"session":"y"}`, h: routes, status: 400, code: middleware.CodeInvalidSession},
		{name: "400 query", method: "GET", target: "/presence?limit=-1", h: routes, status: 400, code: middleware.CodeInvalidQuery},
		{name: "401", method: "POST", target: "/presence/heartbeat", h: routes, status: 401, code: middleware.CodeNoIdentity},
		{name: "401 ws", method: "GET", target: "/ws", h: routes, status: 401, code: middleware.CodeNoIdentity},
		{name: "403", method: "POST", target: "/presence/heartbeat?id=a", header: http.Header{"Origin": {"https://evil.example"}}, h: routes, status: 403, code: middleware.CodeOriginNotAllowed},
		{name: "403 ws", method: "GET", target: "/ws?id=a", header: http.Header{"Origin": {"https://evil.example"}}, h: routes, status: 403, code: middleware.CodeOriginNotAllowed},
		{name: "404", method: "GET", target: "/presence/nobody", h: routes, status: 404, code: middleware.CodeUnknownClient},
		{name: "405", method: "PUT", target: "/presence/heartbeat?id=a", h: e.srv.HeartbeatEndpoint(), status: 405, code: middleware.CodeMethodNotAllowed, alsoHeader: "Allow"},
		{name: "405 feed", method: "POST", target: "/feed", h: feed, status: 405, code: middleware.CodeMethodNotAllowed, alsoHeader: "Allow"},
		{name: "413", method: "POST", target: "/presence/heartbeat?id=a", body: `{"session":"` + strings.Repeat("x", 100) + `"}`, h: routes, status: 413, code: middleware.CodeBodyTooLarge},
		{name: "429", method: "POST", target: "/presence/heartbeat?id=max&session=b", h: routes, status: 429, code: middleware.CodeTooManyConns, alsoHeader: "Retry-After"},
		{name: "503 draining", method: "GET", target: "/ws?id=a", h: closed.mux(nil), status: 503, code: middleware.CodeDraining, alsoHeader: "Retry-After"},
		{name: "503 tracker closed", method: "POST", target: "/presence/heartbeat?id=a", h: gone.mux(nil), status: 503, code: middleware.CodeUnavailable, alsoHeader: "Retry-After"},
		{name: "503 feed closed", method: "GET", target: "/feed", h: feed, status: 503, code: middleware.CodeDraining},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := serve(tt.h, tt.method, tt.target, tt.body, tt.header)
			checkRefusal(t, rec, tt.status, tt.code)
			if tt.alsoHeader != "" && rec.Header().Get(tt.alsoHeader) == "" {
				t.Errorf("no %s header", tt.alsoHeader)
			}
		})
	}
}

func serve(h http.Handler, method, target, body string, hdr http.Header) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, target, strings.NewReader(body))
	for k, v := range hdr {
		req.Header[k] = v
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

// TestOriginRefusalSaysWhy checks that the 403 names the origin, the
// request's own origin and the allow-list, and that refusals meaning
// misconfiguration are counted by code.
func TestOriginRefusalSaysWhy(t *testing.T) {
	e := newEnv(t, presence.Config{}, middleware.Config{})
	rec := serve(e.srv.HeartbeatEndpoint(), "POST", "http://app.example/presence/heartbeat?id=a", "",
		http.Header{"Origin": {"https://evil.example"}})
	d := checkRefusal(t, rec, 403, middleware.CodeOriginNotAllowed)
	for _, want := range []string{`"https://evil.example"`, "http://app.example:80", "AllowedOrigins"} {
		if !strings.Contains(d.Message, want) {
			t.Errorf("message %q does not name %s", d.Message, want)
		}
	}
	serve(e.srv.HeartbeatEndpoint(), "POST", "/presence/heartbeat", "", nil) // no identity

	st := e.srv.Stats()
	if st.Refusals[middleware.CodeOriginNotAllowed] != 1 || st.Refusals[middleware.CodeNoIdentity] != 1 {
		t.Errorf("Refusals %v, want one origin_not_allowed and one no_identity", st.Refusals)
	}
	m := serve(e.srv.MetricsHandler(), "GET", "/metrics", "", nil).Body.String()
	for _, want := range []string{`vigil_http_refusals_total{code="origin_not_allowed"} 1`, `vigil_http_refusals_total{code="no_identity"} 1`} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

// TestRefusalCodes checks that metrics.RefusalCodes, the label values of
// vigil_http_refusals_total, lists every refusal code: a code missing there
// would be counted as "other".
func TestRefusalCodes(t *testing.T) {
	for _, code := range []string{
		middleware.CodeBadHandshake, middleware.CodeInvalidClientID, middleware.CodeInvalidBody,
		middleware.CodeInvalidSession, middleware.CodeInvalidQuery, middleware.CodeNoIdentity,
		middleware.CodeOriginNotAllowed, middleware.CodeUnknownClient, middleware.CodeMethodNotAllowed,
		middleware.CodeBodyTooLarge, middleware.CodeTooManyConns, middleware.CodeInternal,
		middleware.CodeDraining, middleware.CodeUnavailable, middleware.CodeInvalidRoom,
		middleware.CodeInvalidMeta, middleware.CodeRoomsUnsupported,
	} {
		if !slices.Contains(metrics.RefusalCodes, code) {
			t.Errorf("metrics.RefusalCodes lacks %q", code)
		}
	}
}

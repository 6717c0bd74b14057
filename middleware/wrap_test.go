package middleware_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// loggingWriter is the kind of ResponseWriter wrapper logging and tracing
// middleware add: it exposes only Unwrap, not Hijacker.
type loggingWriter struct {
	http.ResponseWriter
	status int
}

func (w *loggingWriter) WriteHeader(code int) {
	w.status = code
	w.ResponseWriter.WriteHeader(code)
}

func (w *loggingWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func logging(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		next.ServeHTTP(&loggingWriter{ResponseWriter: w}, r)
	})
}

func TestUpgradeBehindWrappingMiddleware(t *testing.T) {
	e := newEnv(t, fastTracker(), fastServer())
	ts := startHTTP(t, logging(logging(e.mux(echo))))
	c := mustDial(t, wsURL(ts, "/ws?id=wrapped"))
	c.WriteMessage(websocket.TextMessage, []byte("hi"))
	c.SetReadDeadline(time.Now().Add(2 * time.Second))
	if _, got, err := c.ReadMessage(); err != nil || string(got) != "hi" {
		t.Fatalf("echo: %q %v", got, err)
	}
}

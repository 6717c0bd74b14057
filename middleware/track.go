package middleware

import (
	"bufio"
	"context"
	"log/slog"
	"net"
	"net/http"

	"github.com/gorilla/websocket"
)

// DefaultCountRequest is the rule TrackRequests applies when
// Config.CountRequest is nil: a request counts as a beat when its handler
// answered a status below 400. A refused or failed request (a 401 from the
// app's own auth, a 404, a 500) proves nothing about the client.
func DefaultCountRequest(r *http.Request, status int) bool { return status < http.StatusBadRequest }

// TrackRequests is middleware that counts requests of an identified client
// as beats of its HTTP session (DefaultHTTPSession), so a client that makes
// a request at least once per Tracker TTL stays online; one that stops goes
// offline a TTL after its last counted request.
//
// A request counts when, after its handler returned, all of these hold:
// Identify found its client (the request as TrackRequests got it: mount
// TrackRequests after the middleware that authenticates, when Identify is
// IdentifyContext); its Origin is allowed; it is not a WebSocket upgrade
// (the connection has its own session); it was not served by one of the
// Server's own endpoints (the heartbeat and leave endpoints keep their own
// sessions, and reading who is online must not make the reader online); and
// Config.CountRequest (default DefaultCountRequest: status below 400)
// accepts it. It never changes the response. To learn the status it wraps
// the ResponseWriter of identified requests, keeping http.Flusher,
// http.Hijacker and Unwrap.
func (s *Server) TrackRequests(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if websocket.IsWebSocketUpgrade(r) || !s.origins.check(r) {
			next.ServeHTTP(w, r)
			return
		}
		id, _, err := s.identify(r)
		if err != nil {
			next.ServeHTTP(w, r)
			return
		}
		t := &tracked{}
		r = r.WithContext(context.WithValue(r.Context(), trackedKey{}, t))
		sw := &statusWriter{ResponseWriter: w}
		next.ServeHTTP(sw.wrap(), r)
		if t.own || !s.cfg.CountRequest(r, sw.code()) {
			return
		}
		if err := s.heartbeat(r.Context(), id, DefaultHTTPSession, SessionRooms{}, nil); err != nil {
			s.log.LogAttrs(r.Context(), slog.LevelDebug, "middleware: request not counted",
				slog.String("client_id", id), slog.Any("err", err))
		}
	})
}

// trackedKey is the context key of a request TrackRequests watches.
type trackedKey struct{}

// tracked is what a request's handlers tell TrackRequests; the request's
// goroutine writes it before TrackRequests reads it.
type tracked struct{ own bool }

// ownEndpoint marks r as served by one of the Server's endpoints, which
// TrackRequests never counts.
func ownEndpoint(r *http.Request) {
	if t, ok := r.Context().Value(trackedKey{}).(*tracked); ok {
		t.own = true
	}
}

// statusWriter records the status a handler answers.
type statusWriter struct {
	http.ResponseWriter
	status int
}

// wrap returns w with the optional interfaces of the ResponseWriter it
// wraps, and no others.
func (w *statusWriter) wrap() http.ResponseWriter {
	_, fl := w.ResponseWriter.(http.Flusher)
	_, hj := w.ResponseWriter.(http.Hijacker)
	switch {
	case fl && hj:
		return flushHijackWriter{w}
	case fl:
		return flushWriter{w}
	case hj:
		return hijackWriter{w}
	}
	return w
}

// code is the status answered: 200 when the handler wrote nothing.
func (w *statusWriter) code() int {
	if w.status == 0 {
		return http.StatusOK
	}
	return w.status
}

func (w *statusWriter) WriteHeader(code int) {
	// 1xx answers other than 101 are informational; the final one follows.
	if w.status == 0 && (code >= 200 || code == http.StatusSwitchingProtocols) {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap returns the wrapped ResponseWriter, for http.ResponseController.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (w *statusWriter) flush() {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	w.ResponseWriter.(http.Flusher).Flush()
}

func (w *statusWriter) hijack() (net.Conn, *bufio.ReadWriter, error) {
	c, rw, err := w.ResponseWriter.(http.Hijacker).Hijack()
	if err == nil && w.status == 0 {
		w.status = http.StatusSwitchingProtocols
	}
	return c, rw, err
}

type flushWriter struct{ *statusWriter }

func (w flushWriter) Flush() { w.flush() }

type hijackWriter struct{ *statusWriter }

func (w hijackWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) { return w.hijack() }

type flushHijackWriter struct{ *statusWriter }

func (w flushHijackWriter) Flush() { w.flush() }

func (w flushHijackWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) { return w.hijack() }

package middleware

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/vigilhq/vigil/presence"
)

// DefaultHTTPSession is the session ID of HTTP heartbeats that name none,
// and of requests counted by TrackRequests: one session per client.
const DefaultHTTPSession = "http"

type httpKey struct{ client, session string }

// httpSession holds one HTTP-heartbeat session; its identity tells a stale
// OnGone from a current one.
type httpSession struct {
	sess *presence.Session
	act  *reporter
	// gone is set, under Server.mu, when the session's OnGone was called:
	// maybe before beat could keep it, so that forget found nothing.
	gone bool
}

// heartbeat beats the HTTP session (client, session), opening it if this node
// holds none, and joins it to rooms (see Config.Rooms). It fails with
// ErrTooManyConns, the Tracker's error, or one wrapping errJoin (joining a
// session it held to rooms).
//
// st is the activity the heartbeat reports, if any: recorded as a
// WebSocket's activity messages are, and given to a session it opens.
func (s *Server) heartbeat(ctx context.Context, client, session string, rooms SessionRooms, st *activityReport) error {
	return s.heartbeatOnce(ctx, client, session, rooms, st, true)
}

// activityReport is the activity an HTTP heartbeat reports.
type activityReport struct {
	a    presence.Activity
	idle time.Duration
}

// heartbeatOnce is heartbeat; when the session it opens has already ended (kicked,
// expired, or the Tracker closed while Connect was in flight), it tries
// once more if retry is set, and otherwise leaves it to the next beat.
func (s *Server) heartbeatOnce(ctx context.Context, client, session string, rooms SessionRooms, st *activityReport, retry bool) error {
	k := httpKey{client, session}
	s.mu.Lock()
	if h, ok := s.httpSess[k]; ok {
		s.mu.Unlock()
		h.sess.Beat()
		s.obs.Beat(presence.TransportHTTP)
		if st != nil {
			h.act.report(st.a, st.idle)
		}
		return joinRooms(ctx, h.sess, rooms)
	}
	if err := s.admit(client); err != nil {
		s.mu.Unlock()
		return err
	}
	s.perClient[client]++
	s.mu.Unlock()

	h := &httpSession{}
	opts := rooms.options(func(r presence.Reason) { s.forget(k, h, r) })
	opts.ID = session
	if st != nil && s.states {
		opts.Activity, opts.IdleFor = st.a, st.idle
	}
	sess, err := s.tr.Connect(ctx, client, opts)
	s.mu.Lock()
	_, raced := s.httpSess[k] // a concurrent beat opened it first
	// The Tracker ended the session before it could be kept here: its
	// OnGone has come and gone, so keeping it would send later beats to a
	// dead session.
	ended := h.gone
	if err != nil || raced || ended {
		s.uncount(client)
	} else {
		h.sess = sess
		h.act = newReporter(s, sess, opts.Activity)
		s.httpSess[k] = h
	}
	s.mu.Unlock()
	if err != nil {
		return err
	}
	if ended && !raced {
		if retry {
			return s.heartbeatOnce(ctx, client, session, rooms, st, false)
		}
		return nil
	}
	s.obs.Beat(presence.TransportHTTP)
	if !raced {
		s.obs.ConnOpened(presence.TransportHTTP)
	}
	return nil
}

// forget drops an HTTP session that ended, unless a newer one replaced it.
func (s *Server) forget(k httpKey, h *httpSession, r presence.Reason) {
	s.mu.Lock()
	h.gone = true
	cur := s.httpSess[k] == h
	if cur {
		delete(s.httpSess, k)
		s.uncount(k.client)
	}
	act := h.act // nil when the session ended before it was kept
	s.mu.Unlock()
	if act != nil {
		act.stop()
	}
	if cur {
		s.obs.ConnClosed(presence.TransportHTTP, 0, r)
	}
}

// leave ends the HTTP session (client, session) through Grace; it reports
// whether this node held it.
func (s *Server) leave(ctx context.Context, client, session string) (bool, error) {
	k := httpKey{client, session}
	s.mu.Lock()
	h, ok := s.httpSess[k]
	if ok {
		delete(s.httpSess, k)
		s.uncount(client)
	}
	s.mu.Unlock()
	if !ok {
		return false, nil
	}
	h.act.stop()
	s.obs.ConnClosed(presence.TransportHTTP, 0, presence.ReasonLeft)
	return true, h.sess.End(ctx, presence.ReasonLeft)
}

// heartbeatReply is the answer of the heartbeat endpoint.
type heartbeatReply struct {
	Online       bool  `json:"online"`
	IntervalMS   int64 `json:"interval_ms"`
	TTLMS        int64 `json:"ttl_ms"`
	ServerTimeMS int64 `json:"server_time_ms"`
}

// HeartbeatEndpoint returns the handler of the HTTP connection-heartbeat
// endpoint (POST) for pages without a WebSocket: each request beats the
// client's session and answers
// {"online":true,"interval_ms":…,"ttl_ms":…,"server_time_ms":…}; the client
// sends the next heartbeat after interval_ms (PingInterval), and is offline
// ttl_ms (the Tracker's TTL) after its last one. The session is named by the
// "session" field of the optional JSON body ({"session":"tab-1","ts":…}) or
// the "session" query parameter; without either the client has one session,
// DefaultHTTPSession. With Config.Rooms, each heartbeat joins the session
// to the rooms it gives (the first one in the same Store step as the
// Online) and sets its metadata. Errors: 400 malformed body or session ID,
// a bad room (invalid_room) or metadata (invalid_meta) from Config.Rooms,
// 401 no identity, 403 foreign Origin, 405 not POST, 413 body over
// MaxBodyBytes, 429 over MaxConnsPerClient or the Tracker's
// MaxSessionsPerClient (with Retry-After), 503 the Store failing.
func (s *Server) HeartbeatEndpoint() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ownEndpoint(r)
		id, session, b, ok := s.httpPrelude(w, r)
		if !ok {
			return
		}
		st, err := parseState(b, r.URL.RawQuery)
		if err != nil {
			s.refuse(w, r, http.StatusBadRequest, CodeInvalidState, plain(err))
			return
		}
		rooms, code, err := s.roomsFor(r, id)
		if err != nil {
			s.refuseRooms(w, r, id, code, err)
			return
		}
		if err := s.heartbeat(r.Context(), id, session, rooms, st); err != nil {
			switch {
			case errors.Is(err, ErrTooManyConns):
				w.Header().Set("Retry-After", s.retryAfter())
				s.refuseTooMany(w, r)
			case errors.Is(err, errJoin) && errors.Is(err, presence.ErrLimit):
				s.refuseRooms(w, r, id, CodeInvalidRoom, errors.New(maxRoomsMsg))
			case errors.Is(err, errJoin):
				w.Header().Set("Retry-After", s.retryAfter())
				s.refuse(w, r, http.StatusServiceUnavailable, CodeUnavailable, "joining the session to its rooms: "+plain(err))
			default:
				s.refuseSession(w, r, err)
			}
			return
		}
		writeJSON(w, http.StatusOK, heartbeatReply{
			Online:       true,
			IntervalMS:   s.cfg.PingInterval.Milliseconds(),
			TTLMS:        s.tr.Config().TTL.Milliseconds(),
			ServerTimeMS: time.Now().UnixMilli(),
		})
	})
}

// LeaveEndpoint returns the handler of the leave endpoint (POST): it ends
// the client's HTTP session, named as for HeartbeatEndpoint, through Grace,
// and answers 204, also when this node holds no such session. It accepts
// any Content-Type, so navigator.sendBeacon can call it on page unload.
// Errors as for HeartbeatEndpoint.
func (s *Server) LeaveEndpoint() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ownEndpoint(r)
		id, session, _, ok := s.httpPrelude(w, r)
		if !ok {
			return
		}
		if _, err := s.leave(r.Context(), id, session); err != nil {
			s.log.LogAttrs(r.Context(), slog.LevelWarn, "middleware: leave",
				slog.String("client_id", id), slog.Any("err", err))
		}
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(http.StatusNoContent)
	})
}

// httpPrelude checks method, Origin, identity and body of a heartbeat or
// leave request; it answers and returns false when one fails.
func (s *Server) httpPrelude(w http.ResponseWriter, r *http.Request) (id, session string, b beatBody, ok bool) {
	if r.Method != http.MethodPost {
		s.refuseMethod(w, r, "POST")
		return "", "", beatBody{}, false
	}
	if !s.origins.check(r) {
		s.refuseOrigin(w, r)
		return "", "", beatBody{}, false
	}
	id, status, err := s.identify(r)
	if err != nil {
		s.refuseIdentity(w, r, status, err)
		return "", "", beatBody{}, false
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.cfg.MaxBodyBytes))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			s.refuse(w, r, http.StatusRequestEntityTooLarge, CodeBodyTooLarge,
				"the body is over "+strconv.FormatInt(s.cfg.MaxBodyBytes, 10)+" bytes (Config.MaxBodyBytes)")
		} else {
			s.refuse(w, r, http.StatusBadRequest, CodeInvalidBody, "reading the body: "+err.Error())
		}
		return "", "", beatBody{}, false
	}
	session, b, err = parseSession(body, queryValue(r.URL.RawQuery, "session"))
	if err != nil {
		code := CodeInvalidSession
		if errors.Is(err, errBody) {
			code = CodeInvalidBody
		}
		s.refuse(w, r, http.StatusBadRequest, code, plain(err))
		return "", "", beatBody{}, false
	}
	return id, session, b, true
}

// errBody reports a heartbeat or leave body that is not the documented JSON.
var errBody = errors.New("middleware: heartbeat body is not {\"session\":…,\"ts\":…}")

// beatBody is the optional JSON body of heartbeat and leave requests.
type beatBody struct {
	Session *string  `json:"session"`
	TS      *float64 `json:"ts"` // client time in ms; checked, not used
	State   *string  `json:"state"`
	IdleMS  *float64 `json:"idle_ms"`
}

// parseState reads the activity a heartbeat reports: "state" ("active" or
// "away") and "idle_ms" (with away only: 0 to MaxIdleMS, an integer) from
// the body parseSession decoded, or the query; when both
// give a field they must agree. It returns nil when neither names a state.
func parseState(b beatBody, rawQuery string) (*activityReport, error) {
	state, idle := queryValue(rawQuery, "state"), queryValue(rawQuery, "idle_ms")
	if b.State != nil {
		if state != "" && state != *b.State {
			return nil, fmt.Errorf("%w: body and query name different states", errActivity)
		}
		state = *b.State
	}
	if b.IdleMS != nil {
		v := *b.IdleMS
		if v < 0 || v > MaxIdleMS || v != float64(int64(v)) {
			return nil, fmt.Errorf("%w: idle_ms %v is not an integer from 0 to %d", errActivity, v, MaxIdleMS)
		}
		n := strconv.FormatInt(int64(v), 10)
		if idle != "" && idle != n {
			return nil, fmt.Errorf("%w: body and query give different idle_ms", errActivity)
		}
		idle = n
	}
	var st activityReport
	switch state {
	case "":
		if idle != "" {
			return nil, fmt.Errorf("%w: idle_ms without state", errActivity)
		}
		return nil, nil
	case string(presence.ActivityActive):
		if idle != "" {
			return nil, fmt.Errorf("%w: idle_ms with state %q", errActivity, state)
		}
		st.a = presence.ActivityActive
	case string(presence.ActivityAway):
		st.a = presence.ActivityAway
		if idle != "" {
			d, err := parseIdleMS(idle)
			if err != nil {
				return nil, err
			}
			st.idle = d
		}
	default:
		return nil, fmt.Errorf("%w: state %s, want \"active\" or \"away\"", errActivity, quoteShort(state))
	}
	return &st, nil
}

// parseSession reads the session ID from a heartbeat or leave body (empty,
// or a JSON object) and the "session" query parameter; when both name one
// they must agree. Without either it returns DefaultHTTPSession.
func parseSession(body []byte, query string) (string, beatBody, error) {
	session := query
	var b beatBody
	if len(bytes.TrimSpace(body)) > 0 {
		dec := json.NewDecoder(bytes.NewReader(body))
		if err := dec.Decode(&b); err != nil {
			return "", beatBody{}, fmt.Errorf("%w: %w", errBody, err)
		}
		if dec.More() {
			return "", beatBody{}, fmt.Errorf("%w: data after the JSON object", errBody)
		}
		if b.Session != nil && *b.Session != "" {
			if query != "" && query != *b.Session {
				return "", beatBody{}, errors.New("middleware: heartbeat: body and query name different sessions")
			}
			session = *b.Session
		}
	}
	if session == "" {
		return DefaultHTTPSession, b, nil
	}
	if err := presence.ValidateID(session); err != nil {
		return "", beatBody{}, fmt.Errorf("middleware: heartbeat session: %w", err)
	}
	return session, b, nil
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

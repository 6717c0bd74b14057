package middleware

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"strings"
)

// Refusal codes: the "code" of every error answer, stable and
// machine-readable. docs/PROTOCOL.md lists them with what a client should
// do on each.
const (
	CodeBadHandshake     = "bad_handshake"        // 400: not a valid WebSocket handshake
	CodeInvalidClientID  = "invalid_client_id"    // 400: Identify returned an ID presence.ValidateID rejects
	CodeInvalidBody      = "invalid_body"         // 400: a heartbeat or leave body that is not the documented JSON
	CodeInvalidSession   = "invalid_session"      // 400: a bad session ID, or body and query disagree
	CodeInvalidQuery     = "invalid_query"        // 400: a bad cursor or limit
	CodeInvalidRoom      = "invalid_room"         // 400: a room name presence.ValidateRoom rejects, too many rooms, or an error from Config.Rooms
	CodeInvalidMeta      = "invalid_meta"         // 400: session metadata presence.ValidateMeta rejects
	CodeInvalidState     = "invalid_state"        // 400: a heartbeat's state or idle_ms that is not the documented one
	CodeNoIdentity       = "no_identity"          // 401: Identify found no client identity
	CodeOriginNotAllowed = "origin_not_allowed"   // 403: a browser request from a foreign Origin
	CodeUnknownClient    = "unknown_client"       // 404: a client never seen (or forgotten)
	CodeMethodNotAllowed = "method_not_allowed"   // 405: see the Allow header
	CodeBodyTooLarge     = "body_too_large"       // 413: a body over Config.MaxBodyBytes
	CodeTooManyConns     = "too_many_connections" // 429: over Config.MaxConnsPerClient; see Retry-After
	CodeInternal         = "internal_error"       // 500
	CodeDraining         = "draining"             // 503: the Server is shutting down; see Retry-After
	CodeUnavailable      = "unavailable"          // 503: the Tracker is closed or its Store failing
	CodeRoomsUnsupported = "rooms_unsupported"    // 501: the Tracker's Store keeps no rooms (not a presence.RoomStore)
)

// codeStatus is the HTTP status of each code's answers (the Upgrader's
// errors other than 400, 403 and 405 are answered as CodeInternal with
// their own status; Stats counts them as 500). Package metrics lists the
// same codes, as metrics.RefusalCodes, for the refusals counter;
// TestRefusalCodes checks that the two agree.
var codeStatus = map[string]int{
	CodeBadHandshake: 400, CodeInvalidClientID: 400, CodeInvalidBody: 400, CodeInvalidSession: 400,
	CodeInvalidQuery: 400, CodeNoIdentity: 401, CodeOriginNotAllowed: 403, CodeUnknownClient: 404,
	CodeMethodNotAllowed: 405, CodeBodyTooLarge: 413, CodeTooManyConns: 429, CodeInternal: 500,
	CodeDraining: 503, CodeUnavailable: 503,
	CodeInvalidRoom: 400, CodeInvalidMeta: 400, CodeRoomsUnsupported: 501, CodeInvalidState: 400,
}

// ErrorReply is the JSON body of every answer with a status of 400 or more
// from the Server's handlers and the Feed:
//
//	{"error":{"code":"origin_not_allowed","message":"origin \"https://evil.example\" is not allowed; …"}}
type ErrorReply struct {
	Error ErrorDetail `json:"error"`
}

// ErrorDetail says why a request was refused: Code is one of the Code
// constants, for programs; Message is a sentence for the developer reading
// the browser's network tab, and may change between versions.
type ErrorDetail struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// refuse answers a request the Server will not serve, reports it by code,
// and logs it at Debug.
func (s *Server) refuse(w http.ResponseWriter, r *http.Request, status int, code, msg string) {
	s.obs.Refused(code)
	s.log.LogAttrs(r.Context(), slog.LevelDebug, "middleware: request refused",
		slog.Int("status", status), slog.String("code", code), slog.String("remote_addr", r.RemoteAddr), slog.String("err", msg))
	writeError(w, status, code, msg)
}

// writeError writes the JSON error answer.
func writeError(w http.ResponseWriter, status int, code, msg string) {
	h := w.Header()
	h.Set("X-Content-Type-Options", "nosniff")
	writeJSON(w, status, ErrorReply{ErrorDetail{Code: code, Message: msg}})
}

// refuseMethod answers 405 with the Allow header.
func (s *Server) refuseMethod(w http.ResponseWriter, r *http.Request, allow string) {
	w.Header().Set("Allow", allow)
	s.refuse(w, r, http.StatusMethodNotAllowed, CodeMethodNotAllowed,
		"method "+r.Method+" is not allowed here; allowed: "+allow)
}

// refuseOrigin answers 403 for a foreign Origin, naming what is allowed so
// that a proxy that rewrites the scheme or host is easy to spot.
func (s *Server) refuseOrigin(w http.ResponseWriter, r *http.Request) {
	msg := "origin " + quoteShort(strings.Join(r.Header.Values("Origin"), ", ")) + " is not allowed; allowed: the request's own origin"
	if self, ok := requestOrigin(r); ok {
		msg += " (" + self.String() + ")"
	}
	msg += " and Config.AllowedOrigins"
	if len(s.origins.allowed) == 0 {
		msg += " (none listed)"
	}
	s.refuse(w, r, http.StatusForbidden, CodeOriginNotAllowed, msg)
}

// refuseIdentity answers the error of identify: 401 without identity, 400
// for an invalid ID.
func (s *Server) refuseIdentity(w http.ResponseWriter, r *http.Request, status int, err error) {
	if status == http.StatusBadRequest {
		s.refuse(w, r, status, CodeInvalidClientID, "the client ID is invalid: "+plain(err))
		return
	}
	s.refuse(w, r, status, CodeNoIdentity, "the request carries no client identity ("+plain(err)+
		"); if the identity comes from your authentication middleware, mount vigil's handlers after it")
}

// plain is err's text without our package prefix, for messages.
func plain(err error) string {
	return strings.TrimPrefix(err.Error(), "middleware: ")
}

// quoteShort quotes s, cut to 200 bytes: the message echoes client input.
func quoteShort(s string) string {
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	b, _ := json.Marshal(s)
	return string(b)
}

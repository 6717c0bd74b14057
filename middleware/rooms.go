package middleware

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/vigilhq/vigil/presence"
)

// SessionRooms is what Config.Rooms returns for a request: the rooms a
// session joins and its metadata.
type SessionRooms struct {
	// Rooms are the rooms the session joins; duplicates count once. Each
	// must pass presence.ValidateRoom, and there may be at most
	// presence.MaxRoomsPerSession of them.
	Rooms []string
	// Meta is the session's metadata, one JSON value of at most
	// presence.MaxMetaLen bytes ({"name":"Ada"}, say); empty for none.
	Meta json.RawMessage
}

// validate checks sr as the Tracker will, and returns the refusal code of
// what fails.
func (sr SessionRooms) validate() (code string, err error) {
	seen := make(map[string]struct{}, len(sr.Rooms))
	for _, r := range sr.Rooms {
		if err := presence.ValidateRoom(r); err != nil {
			return CodeInvalidRoom, fmt.Errorf("middleware: room %s: %w", quoteShort(r), err)
		}
		seen[r] = struct{}{}
	}
	if len(seen) > presence.MaxRoomsPerSession {
		return CodeInvalidRoom, fmt.Errorf("middleware: %d rooms, more than %d (presence.MaxRoomsPerSession): %w",
			len(seen), presence.MaxRoomsPerSession, presence.ErrInvalidArgument)
	}
	if err := presence.ValidateMeta(sr.Meta); err != nil {
		return CodeInvalidMeta, fmt.Errorf("middleware: %w", err)
	}
	return "", nil
}

// options returns the presence.SessionOptions that open a session in sr's
// rooms with its metadata.
func (sr SessionRooms) options(onGone func(presence.Reason)) presence.SessionOptions {
	return presence.SessionOptions{OnGone: onGone, Rooms: sr.Rooms, Meta: sr.Meta}
}

// roomsFor asks Config.Rooms what a new session of client id, opened by r,
// joins. On error it returns the refusal code to answer with.
func (s *Server) roomsFor(r *http.Request, id string) (SessionRooms, string, error) {
	if s.cfg.Rooms == nil {
		return SessionRooms{}, "", nil
	}
	sr, err := s.cfg.Rooms(r, id)
	if err != nil {
		return SessionRooms{}, CodeInvalidRoom, fmt.Errorf("middleware: rooms of %s: %w", quoteShort(id), err)
	}
	if code, err := sr.validate(); err != nil {
		return SessionRooms{}, code, err
	}
	return sr, "", nil
}

// refuseRooms answers 400 for a Config.Rooms that failed, or gave rooms or
// metadata vigil refuses, and logs it at Warn: a page that keeps asking
// for them is broken, or the app's rule is.
func (s *Server) refuseRooms(w http.ResponseWriter, r *http.Request, id, code string, err error) {
	s.log.LogAttrs(r.Context(), slog.LevelWarn, "middleware: rooms refused",
		slog.String("client_id", id), slog.String("code", code), slog.Any("err", err))
	s.refuse(w, r, http.StatusBadRequest, code, plain(err))
}

// errJoin marks an error of joining a session this node holds already to
// the rooms of a heartbeat.
var errJoin = errors.New("middleware: join")

// joinRooms joins sess to the rooms of sr it is not in yet and sets sr's
// metadata if it differs: the rooms of a heartbeat of a session this node
// holds. Only what changed reaches the Store.
func joinRooms(ctx context.Context, sess *presence.Session, sr SessionRooms) error {
	if len(sr.Rooms) > 0 {
		in := sess.Rooms()
		for _, room := range sr.Rooms {
			if _, found := slices.BinarySearch(in, room); found {
				continue
			}
			if err := sess.Join(ctx, room); err != nil {
				return fmt.Errorf("%w: %w", errJoin, err)
			}
		}
	}
	if len(sr.Meta) > 0 && !bytes.Equal(sess.Meta(), sr.Meta) {
		if err := sess.SetMeta(ctx, sr.Meta); err != nil {
			return fmt.Errorf("%w: %w", errJoin, err)
		}
	}
	return nil
}

// Session returns the connection's presence session. The Handler puts the
// connection in rooms and sets its metadata with the session's Join, Leave
// and SetMeta; the session leaves its rooms by itself when the connection
// ends. Close the Conn rather than End the session: closing ends it with
// the right reason.
func (c *Conn) Session() *presence.Session { return c.sess }

// HTTPSession returns the presence session of the HTTP-heartbeat session
// sessionID (empty: DefaultHTTPSession) of clientID, if this node holds
// it: the application's own handlers put it in rooms with its Join, Leave
// and SetMeta. Its heartbeats keep it, and the rooms Config.Rooms gives
// them join it; the leave endpoint, or no heartbeat for a TTL, ends it.
func (s *Server) HTTPSession(clientID, sessionID string) (*presence.Session, bool) {
	if sessionID == "" {
		sessionID = DefaultHTTPSession
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	h, ok := s.httpSess[httpKey{clientID, sessionID}]
	if !ok {
		return nil, false
	}
	return h.sess, true
}

// RoomPage is the JSON answer of RoomEndpoint.
type RoomPage struct {
	Room string `json:"room"`
	// Count is how many clients are in the room, on every node. It is
	// read after the page, so it may differ from what the pages list
	// while clients come and go.
	Count   int          `json:"count"`
	Members []RoomMember `json:"members"`
	// Next is the cursor of the next page; empty after the last.
	Next string `json:"next"`
}

// RoomMember is the JSON form of one client in a room.
type RoomMember struct {
	ID string `json:"id"`
	// Sessions counts the client's sessions in the room, ending ones
	// included.
	Sessions int `json:"sessions"`
	// Meta lists the metadata of those sessions that have any, oldest
	// first: the last one is the latest (presence.Member.Meta). Never
	// null.
	Meta []json.RawMessage `json:"meta"`
	// State is the client's state, "online" or "away" (see the status
	// endpoints).
	State string `json:"state"`
	// LastActive is when the client's user was last active (RFC 3339,
	// UTC); omitted when the Store keeps no activity.
	LastActive string `json:"last_active,omitempty"`
}

// RoomEndpoint returns the handler (GET) that lists the clients in a room,
// on every node, one page at a time:
// {"room":R,"count":N,"members":[{"id":…,"sessions":N,"meta":[…],"state":…,"last_active":…}],"next":CURSOR}.
// The room is the path wildcard {room} (r.PathValue, set by net/http's
// ServeMux and by chi), or else the "room" query parameter. Query
// parameters: cursor (from the previous page's next) and limit (default
// 100, at most 1000). A room nobody is in answers 200 with count 0. Errors:
// 400 an invalid room name (invalid_room), cursor or limit (invalid_query),
// 501 a Store without rooms (rooms_unsupported), 503 the Store failing. It
// exposes who is in the room and their metadata: mount it behind the app's
// authorisation.
func (s *Server) RoomEndpoint() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ownEndpoint(r)
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			s.refuseMethod(w, r, "GET, HEAD")
			return
		}
		room, cursor, limit, code, err := roomParams(lastPathValue(r, "room"), r.URL.RawQuery)
		if err != nil {
			s.refuse(w, r, http.StatusBadRequest, code, plain(err))
			return
		}
		if !s.rooms {
			s.refuseUnsupported(w, r)
			return
		}
		page, err := s.tr.Members(r.Context(), room, cursor, limit)
		var n int
		if err == nil {
			n, err = s.tr.RoomCount(r.Context(), room)
		}
		switch {
		case err == nil:
		case errors.Is(err, presence.ErrInvalidID):
			s.refuse(w, r, http.StatusBadRequest, CodeInvalidRoom, "the room name is invalid: "+err.Error())
			return
		case errors.Is(err, presence.ErrInvalidArgument):
			s.refuse(w, r, http.StatusBadRequest, CodeInvalidQuery, "the cursor is not one this endpoint returned: "+err.Error())
			return
		default:
			s.refuse(w, r, http.StatusServiceUnavailable, CodeUnavailable, "presence is unavailable: "+err.Error())
			return
		}
		out := RoomPage{Room: room, Count: n, Members: make([]RoomMember, 0, len(page.Members)), Next: page.Next}
		for _, m := range page.Members {
			meta := m.Metas
			if meta == nil {
				meta = []json.RawMessage{}
			}
			out.Members = append(out.Members, RoomMember{ID: m.ClientID, Sessions: m.Sessions, Meta: meta,
				State: string(m.State), LastActive: fmtTime(m.LastActive)})
		}
		writeJSON(w, http.StatusOK, out)
	})
}

// lastPathValue returns the path wildcard name, the last segment of the
// path, unescaped. Routers disagree on escapes: net/http's ServeMux
// unescapes a wildcard ("a%2Fb" is "a/b"), chi leaves it as the request
// spelt it when it has escapes; unescaping the path's last segment gives
// both the same value.
func lastPathValue(r *http.Request, name string) string {
	v := r.PathValue(name)
	if v == "" {
		return ""
	}
	p := r.URL.EscapedPath()
	seg := p[strings.LastIndexByte(p, '/')+1:]
	if u, err := url.PathUnescape(seg); err == nil && (u == v || seg == v) {
		return u
	}
	return v
}

// roomParams reads the room (pathRoom, else the "room" query parameter),
// cursor and limit of RoomEndpoint, and on error the refusal code.
func roomParams(pathRoom, rawQuery string) (room, cursor string, limit int, code string, err error) {
	room = pathRoom
	if room == "" {
		room = queryValue(rawQuery, "room")
	}
	if err := presence.ValidateRoom(room); err != nil {
		return "", "", 0, CodeInvalidRoom, fmt.Errorf("middleware: the room name %s is invalid: %w", quoteShort(room), err)
	}
	cursor, limit, err = pageParams(rawQuery)
	if err != nil {
		return "", "", 0, CodeInvalidQuery, err
	}
	return room, cursor, limit, "", nil
}

// refuseUnsupported answers 501 for a room endpoint over a Store without
// rooms.
func (s *Server) refuseUnsupported(w http.ResponseWriter, r *http.Request) {
	s.refuse(w, r, http.StatusNotImplemented, CodeRoomsUnsupported,
		"the presence store keeps no rooms: it is not a presence.RoomStore (store/memory and store/redis are)")
}

// maxRoomsMsg is the message of a session over presence.MaxRoomsPerSession.
var maxRoomsMsg = "the session is in " + strconv.Itoa(presence.MaxRoomsPerSession) + " rooms, the most presence.MaxRoomsPerSession allows"

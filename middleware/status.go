package middleware

import (
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/vigilhq/vigil/presence"
)

// Page sizes of OnlineEndpoint.
const (
	DefaultPageSize = 100
	MaxPageSize     = 1000
)

// ClientStatus is the JSON form of one client's presence in the status
// endpoints.
type ClientStatus struct {
	ID       string `json:"id"`
	Online   bool   `json:"online"`
	Sessions int    `json:"sessions"`
	// Since is when the client came online (RFC 3339, UTC); empty while
	// offline.
	Since string `json:"since,omitempty"`
	// LastSeen is the client's latest beat, or when it went offline.
	LastSeen string `json:"last_seen,omitempty"`
	// State is "online", "away" or "offline" (presence.State); more
	// states may come, and a client should treat an unknown one as
	// online.
	State string `json:"state"`
	// LastActive is when the client's user was last active (RFC 3339,
	// UTC): the latest beat of an active session, or when the user went
	// idle; empty when the Store keeps no activity.
	LastActive string `json:"last_active,omitempty"`
}

// OnlinePage is the JSON answer of OnlineEndpoint.
type OnlinePage struct {
	Clients []ClientStatus `json:"clients"`
	// Next is the cursor of the next page; empty after the last.
	Next string `json:"next"`
}

func statusOf(p presence.Presence) ClientStatus {
	// The Tracker fills State (and Member.State) in, whatever the Store.
	cs := ClientStatus{ID: p.ClientID, Online: p.Online, Sessions: p.Sessions, State: string(p.State),
		LastActive: fmtTime(p.LastActive), LastSeen: fmtTime(p.LastSeen)}
	if p.Online {
		cs.Since = fmtTime(p.Since)
	}
	return cs
}

// fmtTime formats t for the JSON answers (RFC 3339, UTC); empty if zero.
func fmtTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339Nano)
}

// OnlineEndpoint returns the handler (GET) that lists the online clients of
// every node, one page at a time:
// {"clients":[{"id":…,"online":true,"sessions":N,"since":…,"last_seen":…,"state":"online","last_active":…}],"next":CURSOR}.
// Query parameters: cursor (from the previous page's next) and limit
// (default 100, at most 1000). A bad cursor or limit is answered 400. It
// exposes every client ID: mount it behind the app's authorisation.
func (s *Server) OnlineEndpoint() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ownEndpoint(r)
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			s.refuseMethod(w, r, "GET, HEAD")
			return
		}
		cursor, limit, err := pageParams(r.URL.RawQuery)
		if err != nil {
			s.refuse(w, r, http.StatusBadRequest, CodeInvalidQuery, plain(err))
			return
		}
		page, err := s.tr.List(r.Context(), cursor, limit)
		if err != nil {
			if errors.Is(err, presence.ErrInvalidArgument) {
				s.refuse(w, r, http.StatusBadRequest, CodeInvalidQuery, "the cursor is not one this endpoint returned: "+err.Error())
			} else {
				s.refuse(w, r, http.StatusServiceUnavailable, CodeUnavailable, "presence is unavailable: "+err.Error())
			}
			return
		}
		out := OnlinePage{Clients: make([]ClientStatus, 0, len(page.Clients)), Next: page.Next}
		for _, p := range page.Clients {
			out.Clients = append(out.Clients, statusOf(p))
		}
		writeJSON(w, http.StatusOK, out)
	})
}

// pageParams reads cursor and limit from a raw query.
func pageParams(rawQuery string) (cursor string, limit int, err error) {
	cursor = queryValue(rawQuery, "cursor")
	limit = DefaultPageSize
	if v := queryValue(rawQuery, "limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			return "", 0, errors.New("middleware: limit must be a positive integer")
		}
		limit = min(n, MaxPageSize)
	}
	if len(cursor) > 4096 {
		return "", 0, errors.New("middleware: cursor too long")
	}
	return cursor, limit, nil
}

// PresenceEndpoint returns the handler (GET) that reports one client:
// {"id":…,"online":bool,"sessions":N,"since":…,"last_seen":…,"state":…,"last_active":…}, 200 also for
// a client seen before and now offline, 404 for one never seen (or
// forgotten), 400 for an invalid ID. The ID is the path wildcard {id}
// (r.PathValue, set by net/http's ServeMux and by chi), or else the "id"
// query parameter.
func (s *Server) PresenceEndpoint() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ownEndpoint(r)
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			s.refuseMethod(w, r, "GET, HEAD")
			return
		}
		id := lastPathValue(r, "id")
		if id == "" {
			id = queryValue(r.URL.RawQuery, "id")
		}
		if err := presence.ValidateID(id); err != nil {
			s.refuse(w, r, http.StatusBadRequest, CodeInvalidClientID, "the client ID is invalid: "+err.Error())
			return
		}
		p, err := s.tr.Presence(r.Context(), id)
		switch {
		case errors.Is(err, presence.ErrNotFound):
			s.refuse(w, r, http.StatusNotFound, CodeUnknownClient, "no client "+quoteShort(id)+" has been seen (or it was forgotten)")
			return
		case err != nil:
			s.refuse(w, r, http.StatusServiceUnavailable, CodeUnavailable, "presence is unavailable: "+err.Error())
			return
		}
		writeJSON(w, http.StatusOK, statusOf(p))
	})
}

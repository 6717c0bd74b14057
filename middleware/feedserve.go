package middleware

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"

	"github.com/vigilhq/vigil/presence"
)

// feedQuery is what a subscriber asked for.
type feedQuery struct {
	v2     bool
	kind   scopeKind
	room   string
	ids    []string
	window time.Duration
}

// feedQueryError is a query the feed refuses, with the code of its answer.
type feedQueryError struct {
	status int
	code   string
	msg    string
}

func (e *feedQueryError) Error() string { return e.msg }

func badFeedQuery(code, format string, args ...any) error {
	return &feedQueryError{status: http.StatusBadRequest, code: code, msg: fmt.Sprintf(format, args...)}
}

// parseFeedQuery reads the query of a feed request: room, ids (or id,
// repeated), window (ms) and v. Any of them selects the coalesced feed.
func (f *Feed) parseFeedQuery(q url.Values) (feedQuery, error) {
	var fq feedQuery
	if q.Has("v") {
		switch q.Get("v") {
		case "1":
		case "2":
			fq.v2 = true
		default:
			return fq, badFeedQuery(CodeInvalidQuery, "v=%q: want 1 or 2", q.Get("v"))
		}
	}
	if len(q["room"]) > 1 {
		return fq, badFeedQuery(CodeInvalidRoom, "one room per feed; open one feed per room")
	}
	if q.Has("room") {
		fq.v2, fq.kind, fq.room = true, scopeRoom, q.Get("room")
		if err := presence.ValidateRoom(fq.room); err != nil {
			return fq, badFeedQuery(CodeInvalidRoom, "room %q: %v", fq.room, err)
		}
		if !f.tr.HasRooms() {
			return fq, &feedQueryError{status: http.StatusNotImplemented, code: CodeRoomsUnsupported,
				msg: "the presence store keeps no rooms"}
		}
	}
	var ids []string
	for _, v := range q["ids"] {
		if v != "" {
			ids = append(ids, strings.Split(v, ",")...)
		}
	}
	ids = append(ids, q["id"]...)
	if q.Has("ids") || q.Has("id") {
		if fq.kind == scopeRoom {
			return fq, badFeedQuery(CodeInvalidQuery, "a feed follows a room or a list of IDs, not both")
		}
		if len(ids) == 0 {
			return fq, badFeedQuery(CodeInvalidQuery, "ids is empty")
		}
		if len(ids) > f.cfg.MaxIDs {
			return fq, badFeedQuery(CodeInvalidQuery, "%d ids, more than the %d one feed may follow", len(ids), f.cfg.MaxIDs)
		}
		seen := make(map[string]bool, len(ids))
		for _, id := range ids {
			if err := presence.ValidateID(id); err != nil {
				return fq, badFeedQuery(CodeInvalidClientID, "ids: %q: %v", id, err)
			}
			if !seen[id] {
				seen[id] = true
				fq.ids = append(fq.ids, id)
			}
		}
		fq.v2, fq.kind = true, scopeIDs
	}
	fq.window = f.cfg.Window
	if q.Has("window") {
		ms, err := strconv.ParseInt(q.Get("window"), 10, 64)
		w := time.Duration(ms) * time.Millisecond
		if err != nil || w < f.cfg.Window || w > MaxFeedWindow {
			return fq, badFeedQuery(CodeInvalidQuery, "window=%q: want milliseconds from %d to %d",
				q.Get("window"), f.cfg.Window.Milliseconds(), MaxFeedWindow.Milliseconds())
		}
		fq.v2, fq.window = true, w
	}
	return fq, nil
}

// subscribeHub adds a subscriber to the hub of fq's scope, making the hub
// (and starting its goroutine) if it is the first.
func (f *Feed) subscribeHub(fq feedQuery) (*coalSub, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	select {
	case <-f.closed:
		return nil, false
	default:
	}
	key := ""
	switch fq.kind {
	case scopeNode:
		key = "node"
	case scopeRoom:
		key = "room:" + fq.room
	}
	h := f.hubs[key]
	if h == nil {
		h = &hub{f: f, kind: fq.kind, room: fq.room, ids: fq.ids, key: key,
			wake: make(chan struct{}, 1), stop: make(chan struct{}),
			state: make(map[string]feedMember), dirty: make(map[string]struct{}), subs: make(map[*coalSub]struct{})}
		if key != "" {
			f.hubs[key] = h
		} else {
			for _, id := range fq.ids {
				if f.idHubs[id] == nil {
					f.idHubs[id] = make(map[*hub]struct{})
				}
				f.idHubs[id][h] = struct{}{}
			}
		}
		f.wg.Add(1)
		go h.run()
	}
	s := &coalSub{h: h, window: fq.window, notify: make(chan struct{}, 1), resync: true}
	h.mu.Lock()
	h.subs[s] = struct{}{}
	if h.loaded || h.loadErr != nil {
		s.poke()
	}
	h.mu.Unlock()
	f.wg.Add(1)
	return s, true
}

// unsubscribeHub removes s; the last subscriber of a hub stops it.
func (f *Feed) unsubscribeHub(s *coalSub) {
	h := s.h
	f.mu.Lock()
	h.mu.Lock()
	delete(h.subs, s)
	last := len(h.subs) == 0
	h.mu.Unlock()
	if last {
		if h.key != "" {
			delete(f.hubs, h.key)
		} else {
			for _, id := range h.ids {
				delete(f.idHubs[id], h)
				if len(f.idHubs[id]) == 0 {
					delete(f.idHubs, id)
				}
			}
		}
		close(h.stop)
	}
	f.mu.Unlock()
	f.wg.Done()
}

// feedOut is one subscriber's transport: Server-Sent Events or a
// WebSocket.
type feedOut interface {
	// send writes one message of type typ with JSON object data.
	send(typ string, data []byte) bool
	// keepAlive writes a comment (SSE) or a ping (WebSocket).
	keepAlive() bool
	// gone is closed when the peer went away (WebSocket only).
	gone() <-chan struct{}
}

// sseOut writes Server-Sent Events.
type sseOut struct {
	w       http.ResponseWriter
	rc      *http.ResponseController
	timeout time.Duration
}

func (f *Feed) startSSE(w http.ResponseWriter) *sseOut {
	o := &sseOut{w: w, rc: http.NewResponseController(w), timeout: f.cfg.WriteTimeout}
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no") // nginx: do not buffer the stream
	w.WriteHeader(http.StatusOK)
	o.write(fmt.Appendf(nil, "retry: %d\n\n", f.cfg.Retry.Milliseconds()))
	return o
}

func (o *sseOut) write(chunks ...[]byte) bool {
	_ = o.rc.SetWriteDeadline(time.Now().Add(o.timeout))
	for _, c := range chunks {
		if _, err := o.w.Write(c); err != nil {
			return false
		}
	}
	return o.rc.Flush() == nil
}

func (o *sseOut) send(typ string, data []byte) bool {
	return o.write([]byte("event: "+typ+"\ndata: "), data, []byte("\n\n"))
}

func (o *sseOut) keepAlive() bool       { return o.write([]byte(": keepalive\n\n")) }
func (o *sseOut) gone() <-chan struct{} { return nil }

// wsOut writes each message as one text frame, the JSON object with its
// type first: {"type":"diff",…}. Its reader answers the application ping
// and closes the connection on any other message.
type wsOut struct {
	c       *websocket.Conn
	timeout time.Duration
	done    chan struct{}
	// mu serialises data writes (the reader's pongs and the messages).
	mu sync.Mutex
}

// maxFeedRead is the largest message a feed subscriber may send (its
// application pings).
const maxFeedRead = 512

func (f *Feed) upgrader() *websocket.Upgrader {
	return &websocket.Upgrader{
		HandshakeTimeout: f.cfg.WriteTimeout,
		CheckOrigin:      f.cfg.CheckOrigin,
		Error: func(w http.ResponseWriter, r *http.Request, status int, reason error) {
			code := CodeInternal
			switch status {
			case http.StatusBadRequest:
				code = CodeBadHandshake
			case http.StatusForbidden:
				code = CodeOriginNotAllowed
			}
			writeError(w, status, code, plain(reason))
		},
	}
}

func (f *Feed) startWS(w http.ResponseWriter, r *http.Request) (*wsOut, bool) {
	c, err := f.upgrader().Upgrade(w, r, nil)
	if err != nil {
		return nil, false // answered by Error
	}
	o := &wsOut{c: c, timeout: f.cfg.WriteTimeout, done: make(chan struct{})}
	c.SetReadLimit(maxFeedRead)
	wait := time.Duration(0)
	if f.cfg.KeepAlive > 0 {
		wait = f.cfg.KeepAlive + f.cfg.WriteTimeout
	}
	extend := func() {
		if wait > 0 {
			_ = c.SetReadDeadline(time.Now().Add(wait))
		}
	}
	extend()
	c.SetPongHandler(func(string) error { extend(); return nil })
	go func() {
		defer close(o.done)
		for {
			typ, msg, err := c.ReadMessage()
			if err != nil {
				return
			}
			extend()
			if typ == websocket.TextMessage && string(msg) == DefaultAppPing {
				o.mu.Lock()
				_ = c.SetWriteDeadline(time.Now().Add(o.timeout))
				err = c.WriteMessage(websocket.TextMessage, []byte(DefaultAppPong))
				o.mu.Unlock()
				if err != nil {
					return
				}
				continue
			}
			_ = c.WriteControl(websocket.CloseMessage,
				websocket.FormatCloseMessage(websocket.ClosePolicyViolation, "unexpected message"), time.Now().Add(o.timeout))
			return
		}
	}()
	return o, true
}

// send writes data, a JSON object the hub encoded once for every
// subscriber, with a "type" field put first, straight into the frame:
// no copy of it per subscriber (a snapshot of a big room is a megabyte).
func (o *wsOut) send(typ string, data []byte) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	_ = o.c.SetWriteDeadline(time.Now().Add(o.timeout))
	w, err := o.c.NextWriter(websocket.TextMessage)
	if err != nil {
		return false
	}
	sep := ""
	if len(data) > 2 {
		sep = ","
	}
	_, err = io.WriteString(w, `{"type":"`+typ+`"`+sep)
	if err == nil {
		_, err = w.Write(data[1:])
	}
	return w.Close() == nil && err == nil
}

func (o *wsOut) keepAlive() bool {
	return o.c.WriteControl(websocket.PingMessage, nil, time.Now().Add(o.timeout)) == nil
}

func (o *wsOut) gone() <-chan struct{} { return o.done }

// close ends the connection with code and reason, and waits for the reader.
func (o *wsOut) close(code int, reason string) {
	_ = o.c.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, reason), time.Now().Add(o.timeout))
	_ = o.c.Close()
	<-o.done
}

// start opens the transport the request asks for; false when it could not
// (the answer is written).
func (f *Feed) start(w http.ResponseWriter, r *http.Request) (feedOut, func(code int, reason string), bool) {
	if websocket.IsWebSocketUpgrade(r) {
		o, ok := f.startWS(w, r)
		if !ok {
			return nil, nil, false
		}
		return o, o.close, true
	}
	return f.startSSE(w), func(int, string) {}, true
}

// serveCoalesced streams a version-2 feed: a snapshot, then at most one
// diff per window.
func (f *Feed) serveCoalesced(w http.ResponseWriter, r *http.Request, fq feedQuery) {
	sub, ok := f.subscribeHub(fq)
	if !ok {
		writeError(w, http.StatusServiceUnavailable, CodeDraining, "the presence feed is closed; the server is shutting down")
		return
	}
	defer f.unsubscribeHub(sub)
	// The first message is the snapshot: wait for it before answering, so
	// that a Store that fails gets a 503.
	var typ string
	var data []byte
	for typ == "" {
		select {
		case <-sub.notify:
		case <-r.Context().Done():
			return
		case <-f.closed:
			writeError(w, http.StatusServiceUnavailable, CodeDraining, "the presence feed is closed; the server is shutting down")
			return
		}
		var err error
		if typ, data, err = sub.take(); err != nil {
			writeError(w, http.StatusServiceUnavailable, CodeUnavailable, "presence is unavailable: "+err.Error())
			return
		}
	}
	out, closeOut, ok := f.start(w, r)
	if !ok {
		return
	}
	code, reason := websocket.CloseNormalClosure, ""
	defer func() { closeOut(code, reason) }()
	if !out.send(typ, data) {
		return
	}
	last := time.Now()
	keepAlive, stopKeepAlive := f.keepAliveTicks()
	defer stopKeepAlive()
	// One timer for the whole stream: each message that comes before its
	// window ends waits on it (Go 1.23 timers may be Reset at any time).
	window := time.NewTimer(time.Hour)
	window.Stop()
	defer window.Stop()
	for {
		select {
		case <-sub.notify:
			// At most one message per window: what arrives meanwhile
			// merges into what waits.
			if wait := time.Until(last.Add(sub.window)); wait > 0 {
				window.Reset(wait)
				select {
				case <-window.C:
				case <-r.Context().Done():
					return
				case <-f.closed:
					code, reason = websocket.CloseGoingAway, "shutdown"
					return
				case <-out.gone():
					return
				}
			}
			typ, data, err := sub.take()
			if err != nil {
				code, reason = websocket.CloseInternalServerErr, "unavailable"
				return
			}
			if typ == "" {
				continue
			}
			last = time.Now()
			if !out.send(typ, data) {
				f.log.LogAttrs(r.Context(), slog.LevelDebug, "middleware: feed write failed, stream ended",
					slog.String("remote_addr", r.RemoteAddr))
				return
			}
		case <-keepAlive:
			if !out.keepAlive() {
				return
			}
		case <-out.gone():
			return
		case <-r.Context().Done():
			return
		case <-f.closed:
			code, reason = websocket.CloseGoingAway, "shutdown"
			return
		}
	}
}

// refuseQuery answers a feed request whose query was refused.
func refuseQuery(w http.ResponseWriter, err error) {
	var qe *feedQueryError
	if errors.As(err, &qe) {
		writeError(w, qe.status, qe.code, qe.msg)
		return
	}
	writeError(w, http.StatusBadRequest, CodeInvalidQuery, err.Error())
}

package middleware

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"sync"
	"time"

	"github.com/gorilla/websocket"

	"github.com/vigilhq/vigil/internal/waitctx"
	"github.com/vigilhq/vigil/presence"
)

// Defaults of FeedConfig.
const (
	DefaultFeedKeepAlive   = 15 * time.Second
	DefaultFeedBuffer      = 256
	DefaultFeedMaxSnapshot = 10000
	DefaultFeedRetry       = 2 * time.Second
	DefaultFeedWindow      = 250 * time.Millisecond
	DefaultFeedCountOnly   = 10000
	DefaultFeedMaxIDs      = 1000
	// MaxFeedWindow is the longest window a subscriber may ask for.
	MaxFeedWindow = time.Minute
)

// FeedConfig tunes a Feed. Every zero field takes the default its comment
// names.
type FeedConfig struct {
	// KeepAlive is how often an idle stream gets a comment line, so that
	// proxies do not cut it (nginx cuts idle proxied connections after
	// 60s). Negative: none. Default: 15s.
	KeepAlive time.Duration
	// Buffer is how many events wait for one subscriber of the
	// version-1 feed (one message per event). A subscriber that falls
	// further behind has its stream ended; its EventSource reconnects and
	// starts again from a fresh snapshot. In a coalesced feed (version 2)
	// a subscriber that has not written its last diff merges the next
	// ones into it; once it holds more members than Buffer and than its
	// scope has, it is sent a fresh snapshot instead. Default: 256.
	Buffer int
	// Window is the coalescing window of the version-2 feed: a subscriber
	// gets at most one message per Window (the snapshot counts), carrying
	// the latest state of every member that changed since the last one.
	// It is also the shortest window a subscriber may ask for with
	// ?window=. Default: 250ms.
	Window time.Duration
	// CountOnlyAbove: a room (or, for the node's feed, the node's online
	// list) with more members than this is followed as a count only: the
	// snapshot and diffs carry the count and no members. A room that
	// grows past it while followed switches to counts (with a fresh
	// snapshot) until its last subscriber leaves. Negative: never counts
	// only. Default: 10000.
	CountOnlyAbove int
	// MaxIDs caps the client IDs one feed may follow (?ids=). Default:
	// 1000.
	MaxIDs int
	// CheckOrigin decides whether a browser may open the feed as a
	// WebSocket (which, unlike EventSource, is not held to CORS). Nil: a
	// request with no Origin header, or with the request's own origin.
	// Server.Mount sets the Server's check (Config.AllowedOrigins).
	// Default: nil.
	CheckOrigin func(r *http.Request) bool
	// MaxSnapshot caps the clients listed in a version-1 snapshot; a
	// longer list is cut and marked "truncated" (a coalesced feed's
	// snapshot is bounded by CountOnlyAbove instead). Default: 10000.
	MaxSnapshot int
	// Retry is the reconnection delay the stream asks EventSource to use.
	// Default: 2s.
	Retry time.Duration
	// WriteTimeout bounds each write to a subscriber. Default: 10s.
	WriteTimeout time.Duration
	// Logger receives the Feed's logs. Nil: nothing is logged.
	Logger *slog.Logger
}

// Feed is the live presence feed for user interfaces: an http.Handler (GET)
// that streams Server-Sent Events, first a snapshot of the clients online,
// then each transition as it happens:
//
//	event: snapshot
//	data: {"clients":[{"id":"alice","online":true,"sessions":1,"since":…,"last_seen":…}],"truncated":false}
//
//	event: online
//	data: {"id":"bob","seq":1,"time":…,"node":"web-1"}
//
//	event: offline
//	data: {"id":"bob","seq":2,"time":…,"node":"web-1","reason":"closed"}
//
// With a Store that keeps rooms, the stream carries the rooms' transitions
// too, in the same per-client order (the snapshot lists no rooms: read a
// room's members from RoomEndpoint, then apply these):
//
//	event: join
//	data: {"id":"bob","seq":3,"time":…,"node":"web-1","room":"general","session":"…","meta":{"name":"Bob"}}
//
//	event: update
//	data: {"id":"bob","seq":4,"time":…,"node":"web-1","room":"general","session":"…","meta":{"name":"Robert"}}
//
//	event: leave
//	data: {"id":"bob","seq":5,"time":…,"node":"web-1","room":"general","session":"…","reason":"closed"}
//
// meta is the joining session's metadata (join) or its new one (update),
// absent when it has none.
//
// That is the version-1 feed, for requests without a query. With ?room=,
// ?ids= (a friends list) or ?v=2 (the node) the Feed serves the coalesced
// feed instead: a snapshot of the scope, then at most one "diff" message
// per FeedConfig.Window with the latest state (state, metadata, last
// active) of each member that changed; see docs/PROTOCOL.md. A WebSocket
// handshake gets either version as text frames.
//
// The snapshot is read from the Store, so it covers every node. Events come
// from Tracker.Watch: with a Store that journals transitions (store/redis),
// those of every node; otherwise those this node observes. Clients
// apply events in Seq order per client and drop those with a Seq they have
// already seen (the browser's PresenceFeed does).
//
// It lists every online client ID: mount it behind the application's
// authorisation. A Feed is safe for concurrent use. Its hooks run until
// Close, which also ends every stream; http.Server.Shutdown waits for open
// streams, so call Close first (or from RegisterOnShutdown).
type Feed struct {
	tr  *presence.Tracker
	cfg FeedConfig
	log *slog.Logger

	unwatch   func()
	closed    chan struct{}
	closeOnce sync.Once
	wg        sync.WaitGroup

	// mu guards subs, hubs and idHubs.
	mu     sync.Mutex
	subs   map[*feedSub]struct{}
	hubs   map[string]*hub              // the node's and the rooms' hubs, by key
	idHubs map[string]map[*hub]struct{} // friends-list hubs by each ID they follow
}

type feedSub struct {
	ch   chan presence.Event
	over chan struct{} // closed when the subscriber fell behind
}

// NewFeed returns a Feed of tr's transitions; it registers a Watch hook on
// tr, which Close removes.
func NewFeed(tr *presence.Tracker, cfg FeedConfig) (*Feed, error) {
	if tr == nil {
		return nil, fmt.Errorf("%w: nil tracker", ErrInvalidConfig)
	}
	cfg.KeepAlive = cmp.Or(cfg.KeepAlive, DefaultFeedKeepAlive)
	cfg.Buffer = cmp.Or(cfg.Buffer, DefaultFeedBuffer)
	cfg.MaxSnapshot = cmp.Or(cfg.MaxSnapshot, DefaultFeedMaxSnapshot)
	cfg.Retry = cmp.Or(cfg.Retry, DefaultFeedRetry)
	cfg.WriteTimeout = cmp.Or(cfg.WriteTimeout, DefaultWriteTimeout)
	cfg.Window = cmp.Or(cfg.Window, DefaultFeedWindow)
	cfg.CountOnlyAbove = cmp.Or(cfg.CountOnlyAbove, DefaultFeedCountOnly)
	cfg.MaxIDs = cmp.Or(cfg.MaxIDs, DefaultFeedMaxIDs)
	if cfg.CheckOrigin == nil {
		cfg.CheckOrigin = originChecker{}.check
	}
	if cfg.CountOnlyAbove < 0 {
		cfg.CountOnlyAbove = math.MaxInt
	}
	if cfg.Window < 0 || cfg.Window > MaxFeedWindow || cfg.MaxIDs < 0 {
		return nil, fmt.Errorf("%w: feed Window must be within 0..%v and MaxIDs not negative", ErrInvalidConfig, MaxFeedWindow)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Buffer < 0 || cfg.MaxSnapshot < 0 || cfg.Retry < 0 || cfg.WriteTimeout < 0 {
		return nil, fmt.Errorf("%w: feed Buffer, MaxSnapshot, Retry and WriteTimeout must not be negative", ErrInvalidConfig)
	}
	f := &Feed{tr: tr, cfg: cfg, log: cfg.Logger, closed: make(chan struct{}),
		subs: make(map[*feedSub]struct{}), hubs: make(map[string]*hub), idHubs: make(map[string]map[*hub]struct{})}
	f.unwatch = tr.Watch(func(_ context.Context, ev presence.Event) { f.Publish(ev) })
	return f, nil
}

// Publish sends ev to every subscriber. It never blocks: a version-1
// subscriber whose buffer is full is dropped (see FeedConfig.Buffer); for
// coalesced feeds, ev only names a member whose state the next window
// reads from the Tracker. The Feed calls it from its Watch hook; call it
// with events from other sources.
func (f *Feed) Publish(ev presence.Event) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for s := range f.subs {
		select {
		case s.ch <- ev:
		default:
			delete(f.subs, s)
			close(s.over)
		}
	}
	// Each room hub checks its own members; a node with subscribers in
	// many rooms pays one map lookup per room per event.
	for _, h := range f.hubs {
		h.note(ev)
	}
	for h := range f.idHubs[ev.ClientID] {
		h.note(ev)
	}
}

// Close unregisters the Feed's hooks, ends every stream and waits for their
// handlers to return. Calling it again is safe.
func (f *Feed) Close() error {
	f.end()
	f.wg.Wait()
	return nil
}

// end unregisters the Feed's hooks and ends every stream, without waiting.
func (f *Feed) end() {
	f.closeOnce.Do(func() {
		f.unwatch()
		f.mu.Lock() // subscribe checks closed and adds to wg under mu
		close(f.closed)
		f.mu.Unlock()
	})
}

// wait waits for the handlers of the streams that end ended to return, or
// for ctx to end. A handler stuck in a write returns by itself within
// WriteTimeout.
func (f *Feed) wait(ctx context.Context) error { return waitctx.Wait(ctx, &f.wg) }

// feedEvent is the JSON form of a transition on the feed.
type feedEvent struct {
	ID      string          `json:"id"`
	Seq     uint64          `json:"seq"`
	Time    string          `json:"time"`
	Node    string          `json:"node,omitempty"`
	Room    string          `json:"room,omitempty"`
	Session string          `json:"session,omitempty"`
	Reason  string          `json:"reason,omitempty"`
	Meta    json.RawMessage `json:"meta,omitempty"`
}

// feedEventOf is ev's JSON form on the feed.
func feedEventOf(ev presence.Event) feedEvent {
	fe := feedEvent{ID: ev.ClientID, Seq: ev.Seq, Time: ev.Time.UTC().Format(time.RFC3339Nano), Node: ev.Node}
	switch ev.Transition {
	case presence.Offline:
		fe.Reason = string(ev.Reason)
	case presence.Join, presence.Update:
		fe.Room, fe.Session, fe.Meta = ev.Room, ev.SessionID, ev.Meta
	case presence.Leave:
		fe.Room, fe.Session, fe.Reason = ev.Room, ev.SessionID, string(ev.Reason)
	}
	if len(fe.Meta) > 0 && !json.Valid(fe.Meta) {
		fe.Meta = nil // a Store returned what it was not given: keep the stream valid
	}
	return fe
}

type feedSnapshot struct {
	Clients   []ClientStatus `json:"clients"`
	Truncated bool           `json:"truncated"`
}

func (f *Feed) subscribe() (*feedSub, bool) {
	s := &feedSub{ch: make(chan presence.Event, f.cfg.Buffer), over: make(chan struct{})}
	f.mu.Lock()
	defer f.mu.Unlock()
	select {
	case <-f.closed:
		return nil, false
	default:
	}
	f.subs[s] = struct{}{}
	f.wg.Add(1)
	return s, true
}

func (f *Feed) unsubscribe(s *feedSub) {
	f.mu.Lock()
	delete(f.subs, s)
	f.mu.Unlock()
	f.wg.Done()
}

// snapshot lists the online clients, at most MaxSnapshot of them.
func (f *Feed) snapshot(ctx context.Context) (feedSnapshot, error) {
	snap := feedSnapshot{Clients: []ClientStatus{}}
	cursor := ""
	for {
		limit := min(MaxPageSize, f.cfg.MaxSnapshot-len(snap.Clients))
		if limit <= 0 {
			snap.Truncated = cursor != ""
			return snap, nil
		}
		page, err := f.tr.List(ctx, cursor, limit)
		if err != nil {
			return snap, err
		}
		for _, p := range page.Clients {
			snap.Clients = append(snap.Clients, statusOf(p))
		}
		if cursor = page.Next; cursor == "" {
			return snap, nil
		}
	}
}

// ServeHTTP streams the feed to one subscriber until it goes away, falls
// behind, or the Feed closes: the version-1 feed, or with room, ids, window
// or v=2 in the query the coalesced one (see docs/PROTOCOL.md). A
// WebSocket handshake gets the same messages as text frames.
func (f *Feed) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ownEndpoint(r)
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", "GET")
		writeError(w, http.StatusMethodNotAllowed, CodeMethodNotAllowed, "method "+r.Method+" is not allowed here; allowed: GET")
		return
	}
	fq, err := f.parseFeedQuery(r.URL.Query())
	if err != nil {
		refuseQuery(w, err)
		return
	}
	if fq.v2 {
		f.serveCoalesced(w, r, fq)
		return
	}
	// Subscribe before reading the snapshot, so that no transition falls
	// between the two; one that the snapshot already shows is applied
	// twice, which changes nothing.
	sub, ok := f.subscribe()
	if !ok {
		writeError(w, http.StatusServiceUnavailable, CodeDraining, "the presence feed is closed; the server is shutting down")
		return
	}
	defer f.unsubscribe(sub)
	snap, err := f.snapshot(r.Context())
	if err != nil {
		f.log.LogAttrs(r.Context(), slog.LevelWarn, "middleware: feed snapshot", slog.Any("err", err))
		writeError(w, http.StatusServiceUnavailable, CodeUnavailable, "presence is unavailable: "+err.Error())
		return
	}
	out, closeOut, ok := f.start(w, r)
	if !ok {
		return
	}
	code, reason := websocket.CloseNormalClosure, ""
	defer func() { closeOut(code, reason) }()
	data, _ := json.Marshal(snap)
	if !out.send("snapshot", data) {
		return
	}
	keepAlive, stopKeepAlive := f.keepAliveTicks()
	defer stopKeepAlive()
	for {
		select {
		case ev := <-sub.ch:
			data, _ := json.Marshal(feedEventOf(ev))
			if !out.send(ev.Transition.String(), data) {
				return
			}
		case <-keepAlive:
			if !out.keepAlive() {
				return
			}
		case <-sub.over:
			f.log.LogAttrs(r.Context(), slog.LevelWarn, "middleware: feed subscriber fell behind, stream ended",
				slog.String("remote_addr", r.RemoteAddr))
			code, reason = CloseSlowConsumer, "slow"
			return
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

// keepAliveTicks returns the ticks of a stream's keep-alives (nil, never,
// without Config.KeepAlive) and the function that stops them.
func (f *Feed) keepAliveTicks() (<-chan time.Time, func()) {
	if f.cfg.KeepAlive <= 0 {
		return nil, func() {}
	}
	t := time.NewTicker(f.cfg.KeepAlive)
	return t.C, t.Stop
}

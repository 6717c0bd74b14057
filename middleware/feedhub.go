package middleware

import (
	"context"
	"encoding/json"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/vigilhq/vigil/presence"
)

// Coalesced feeds (version 2). Every subscriber of one scope (the node, one
// room) shares a hub; a friends-list subscriber has a hub of its own. A hub
// keeps the latest state of everyone in its scope, collects the IDs that
// transitions name, and at most once per window asks the Store for their
// state (one Lookup or MembersAmong per window, whatever the churn) and
// hands the same encoded diff to each subscriber. A subscriber that has not
// written the previous diff yet merges the new one into it (latest state
// per member, never a backlog); when what it holds grows larger than the
// scope itself, it gets a fresh snapshot instead.

// scopeKind is what a coalesced feed follows.
type scopeKind uint8

const (
	scopeNode scopeKind = iota // every online client
	scopeRoom                  // one room's members
	scopeIDs                   // a list of client IDs
)

// feedMember is the JSON form of one member's latest state in a coalesced
// feed.
type feedMember struct {
	ID         string          `json:"id"`
	State      presence.State  `json:"state"`
	Sessions   int             `json:"sessions,omitempty"`
	Meta       json.RawMessage `json:"meta,omitempty"`
	Since      string          `json:"since,omitempty"`
	LastSeen   string          `json:"last_seen,omitempty"`
	LastActive string          `json:"last_active,omitempty"`
}

func memberOfPresence(p presence.Presence) feedMember {
	m := feedMember{ID: p.ClientID, State: p.State, Sessions: p.Sessions, LastSeen: fmtTime(p.LastSeen), LastActive: fmtTime(p.LastActive)}
	if p.Online {
		m.Since = fmtTime(p.Since)
	}
	return m
}

func memberOfRoom(mb presence.Member) feedMember {
	m := feedMember{ID: mb.ClientID, State: mb.State, Sessions: mb.Sessions, Meta: mb.Meta(),
		Since: fmtTime(mb.Since), LastSeen: fmtTime(mb.LastSeen), LastActive: fmtTime(mb.LastActive)}
	if m.State == "" {
		m.State = presence.StateOnline
	}
	if len(m.Meta) > 0 && !json.Valid(m.Meta) {
		m.Meta = nil // a Store returned what it was not given: keep the stream valid
	}
	return m
}

// feedDiff is the JSON form of a diff message.
type feedDiff struct {
	Count *int         `json:"count,omitempty"`
	Set   []feedMember `json:"set,omitempty"`
	Gone  []string     `json:"gone,omitempty"`
}

// feedSnapshot2 is the JSON form of a coalesced feed's snapshot.
type feedSnapshot2 struct {
	Scope     string       `json:"scope"`
	Room      string       `json:"room,omitempty"`
	Count     int          `json:"count"`
	CountOnly bool         `json:"count_only"`
	Members   []feedMember `json:"members"`
	WindowMS  int64        `json:"window_ms"`
}

// hub is the shared state of the subscribers of one scope.
type hub struct {
	f    *Feed
	kind scopeKind
	room string
	ids  []string // scopeIDs: the IDs followed, as asked
	key  string   // key in Feed.hubs; "" for a friends-list hub

	wake chan struct{} // cap 1: something is dirty, or a subscriber waits for the first load
	stop chan struct{} // closed when the last subscriber left

	// mu guards the fields below. Lock order: Feed.mu, then hub.mu.
	mu         sync.Mutex
	loaded     bool
	loadErr    error
	countOnly  bool
	count      int
	state      map[string]feedMember
	dirty      map[string]struct{}
	countDirty bool
	subs       map[*coalSub]struct{}
	// snap caches the snapshot's encoding at the Feed's window (most
	// subscribers ask for it): a 10,000-member room's is about 1 MB. Nil
	// after each change.
	snap []byte
}

// coalSub is one subscriber of a hub.
type coalSub struct {
	h      *hub
	window time.Duration
	notify chan struct{} // cap 1

	// Guarded by h.mu: what waits to be written.
	resync bool
	shared []byte    // one diff's encoding, taken as is
	diff   *feedDiff // that diff, kept to merge into
	merged map[string]*feedMember
	count  *int
}

func (s *coalSub) poke() {
	select {
	case s.notify <- struct{}{}:
	default:
	}
}

func (h *hub) poke() {
	select {
	case h.wake <- struct{}{}:
	default:
	}
}

// note marks the client of ev dirty when ev concerns the hub's scope.
// Called with Feed.mu held.
func (h *hub) note(ev presence.Event) {
	roomEv := ev.Transition == presence.Join || ev.Transition == presence.Leave || ev.Transition == presence.Update
	// kind and room never change: an event of another room, or a room
	// event for the node's hub, is turned away without the lock.
	if roomEv && (h.kind == scopeNode || (h.kind == scopeRoom && ev.Room != h.room)) {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	switch h.kind {
	case scopeNode:
		if roomEv {
			return
		}
		if h.countOnly {
			if ev.Transition == presence.Online || ev.Transition == presence.Offline {
				h.countDirty = true
				h.poke()
			}
			return
		}
	case scopeRoom:
		if roomEv {
			if ev.Room != h.room {
				return
			}
			if h.countOnly {
				if ev.Transition != presence.Update {
					h.countDirty = true
					h.poke()
				}
				return
			}
		} else {
			// A state change concerns the room only for its members (or,
			// before the first load ends, anyone: the load may have read
			// the member before it).
			if h.countOnly {
				return
			}
			if _, in := h.state[ev.ClientID]; h.loaded && !in {
				if _, d := h.dirty[ev.ClientID]; !d {
					return
				}
			}
		}
	case scopeIDs:
		if roomEv {
			return // the friends list follows states; rooms have their own feeds
		}
	}
	h.dirty[ev.ClientID] = struct{}{}
	h.poke()
}

// run loads the hub's scope, then flushes at most once per window until the
// hub stops or the Feed closes.
func (h *hub) run() {
	defer h.f.wg.Done()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-h.stop:
		case <-h.f.closed:
		case <-ctx.Done():
		}
		cancel()
	}()
	if err := h.load(ctx); err != nil {
		if ctx.Err() == nil {
			h.f.log.LogAttrs(ctx, slog.LevelWarn, "middleware: feed snapshot", slog.String("room", h.room), slog.Any("err", err))
		}
		h.mu.Lock()
		h.loadErr = err
		for s := range h.subs {
			s.poke()
		}
		h.mu.Unlock()
		return
	}
	var last time.Time
	for {
		select {
		case <-h.wake:
		case <-ctx.Done():
			return
		}
		if wait := time.Until(last.Add(h.f.cfg.Window)); wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				return
			}
		}
		last = time.Now()
		if err := h.flush(ctx); err != nil && ctx.Err() == nil {
			h.f.log.LogAttrs(ctx, slog.LevelWarn, "middleware: feed update, retried next window", slog.String("room", h.room), slog.Any("err", err))
			h.poke()
		}
	}
}

// load reads the scope's state from the Store.
func (h *hub) load(ctx context.Context) error {
	state := make(map[string]feedMember)
	countOnly := false
	count := 0
	limit := h.f.cfg.CountOnlyAbove
	switch h.kind {
	case scopeIDs:
		for c := range slices.Chunk(h.ids, presence.MaxLookup) {
			ps, err := h.f.tr.Lookup(ctx, c)
			if err != nil {
				return err
			}
			for i, p := range ps {
				p.ClientID = c[i]
				state[p.ClientID] = memberOfPresence(p)
			}
		}
	case scopeNode:
		n, err := h.f.tr.Count(ctx)
		if err != nil {
			return err
		}
		if countOnly = n > limit; countOnly {
			count = n
			break
		}
		for cursor := ""; ; {
			page, err := h.f.tr.List(ctx, cursor, MaxPageSize)
			if err != nil {
				return err
			}
			for _, p := range page.Clients {
				state[p.ClientID] = memberOfPresence(p)
			}
			if cursor = page.Next; cursor == "" {
				break
			}
		}
	case scopeRoom:
		n, err := h.f.tr.RoomCount(ctx, h.room)
		if err != nil {
			return err
		}
		if countOnly = n > limit; countOnly {
			count = n
			break
		}
		for cursor := ""; ; {
			page, err := h.f.tr.Members(ctx, h.room, cursor, MaxPageSize)
			if err != nil {
				return err
			}
			for _, m := range page.Members {
				state[m.ClientID] = memberOfRoom(m)
			}
			if cursor = page.Next; cursor == "" {
				break
			}
		}
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.loaded, h.countOnly, h.snap = true, countOnly, nil
	if countOnly {
		h.count, h.state = count, nil
		clear(h.dirty)
	} else {
		h.state = state
		h.count = len(state)
		if h.kind == scopeIDs {
			h.count = h.online()
		}
	}
	for s := range h.subs {
		s.poke() // each waits with resync set: its snapshot is ready
	}
	if len(h.dirty) > 0 {
		h.poke()
	}
	return nil
}

// online counts the online members of a friends-list hub.
func (h *hub) online() int {
	n := 0
	for _, m := range h.state {
		if m.State != presence.StateOffline {
			n++
		}
	}
	return n
}

// flush asks the Store for the state of the members named since the last
// flush and hands the diff to every subscriber.
func (h *hub) flush(ctx context.Context) error {
	h.mu.Lock()
	ids := slices.Sorted(maps.Keys(h.dirty))
	clear(h.dirty)
	countDirty := h.countDirty
	h.countDirty = false
	countOnly := h.countOnly
	h.mu.Unlock()
	redo := func(err error) error {
		h.mu.Lock()
		for _, id := range ids {
			h.dirty[id] = struct{}{}
		}
		h.countDirty = h.countDirty || countDirty
		h.mu.Unlock()
		return err
	}
	if countOnly {
		if !countDirty {
			return nil
		}
		var n int
		var err error
		if h.kind == scopeRoom {
			n, err = h.f.tr.RoomCount(ctx, h.room)
		} else {
			n, err = h.f.tr.Count(ctx)
		}
		if err != nil {
			return redo(err)
		}
		h.mu.Lock()
		defer h.mu.Unlock()
		if n != h.count {
			h.count = n
			h.publish(&feedDiff{Count: &n})
		}
		return nil
	}
	if len(ids) == 0 {
		return nil
	}
	latest := make(map[string]feedMember, len(ids))
	for c := range slices.Chunk(ids, presence.MaxLookup) {
		if h.kind == scopeRoom {
			ms, err := h.f.tr.MembersAmong(ctx, h.room, c)
			if err != nil {
				return redo(err)
			}
			for _, m := range ms {
				if m.In {
					latest[m.ClientID] = memberOfRoom(m)
				}
			}
			continue
		}
		ps, err := h.f.tr.Lookup(ctx, c)
		if err != nil {
			return redo(err)
		}
		for i, p := range ps {
			p.ClientID = c[i]
			if p.Online || h.kind == scopeIDs {
				latest[p.ClientID] = memberOfPresence(p)
			}
		}
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.countOnly {
		return nil // switched meanwhile
	}
	d := &feedDiff{}
	for _, id := range ids {
		m, in := latest[id]
		old, was := h.state[id]
		switch {
		case in && (!was || !sameMember(old, m)):
			h.state[id] = m
			d.Set = append(d.Set, m)
		case !in && was:
			delete(h.state, id)
			d.Gone = append(d.Gone, id)
		}
	}
	if len(d.Set) == 0 && len(d.Gone) == 0 {
		return nil
	}
	if h.kind == scopeIDs {
		n := h.online()
		d.Count = &n
	} else {
		n := len(h.state)
		d.Count = &n
		if n > h.f.cfg.CountOnlyAbove {
			// The scope outgrew full diffs: from now on, counts only.
			h.countOnly, h.state, h.count, h.snap = true, nil, n, nil
			for s := range h.subs {
				s.resync, s.shared, s.diff, s.merged, s.count = true, nil, nil, nil, nil
				s.poke()
			}
			return nil
		}
	}
	h.count = *d.Count
	h.publish(d)
	return nil
}

func sameMember(a, b feedMember) bool {
	return a.State == b.State && a.Sessions == b.Sessions && string(a.Meta) == string(b.Meta) &&
		a.Since == b.Since && a.LastActive == b.LastActive
}

// publish hands d to every subscriber. Called with h.mu held.
func (h *hub) publish(d *feedDiff) {
	h.snap = nil
	var enc []byte
	for s := range h.subs {
		if s.resync {
			continue // its snapshot, read when it writes, includes d
		}
		if s.shared == nil && s.merged == nil && s.count == nil {
			if enc == nil {
				enc, _ = json.Marshal(d)
			}
			s.shared, s.diff = enc, d
			s.poke()
			continue
		}
		if s.shared != nil { // a second diff before the first was written
			s.mergeIn(s.diff)
			s.shared, s.diff = nil, nil
		}
		s.mergeIn(d)
		if len(s.merged) > max(h.f.cfg.Buffer, len(h.state)) {
			// Holding more than the scope itself: a snapshot is cheaper.
			s.resync, s.merged, s.count = true, nil, nil
		}
		s.poke()
	}
}

// mergeIn merges d into what s holds. Called with h.mu held.
func (s *coalSub) mergeIn(d *feedDiff) {
	if d.Count != nil {
		n := *d.Count
		s.count = &n
	}
	if len(d.Set) == 0 && len(d.Gone) == 0 {
		return
	}
	if s.merged == nil {
		s.merged = make(map[string]*feedMember)
	}
	for i := range d.Set {
		s.merged[d.Set[i].ID] = &d.Set[i]
	}
	for _, id := range d.Gone {
		s.merged[id] = nil
	}
}

// take returns the message s should write next: "snapshot" or "diff" and
// its JSON, or "" when nothing waits. It fails when the scope could not be
// loaded.
func (s *coalSub) take() (typ string, data []byte, err error) {
	h := s.h
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.loadErr != nil {
		return "", nil, h.loadErr
	}
	if !h.loaded {
		return "", nil, nil
	}
	switch {
	case s.resync:
		s.resync, s.shared, s.diff, s.merged, s.count = false, nil, nil, nil, nil
		if s.window != h.f.cfg.Window {
			data, _ = json.Marshal(h.snapshot(s.window))
			return "snapshot", data, nil
		}
		if h.snap == nil {
			h.snap, _ = json.Marshal(h.snapshot(s.window))
		}
		return "snapshot", h.snap, nil
	case s.shared != nil:
		data = s.shared
		s.shared, s.diff = nil, nil
		return "diff", data, nil
	case s.merged != nil || s.count != nil:
		d := feedDiff{Count: s.count}
		for _, id := range slices.Sorted(maps.Keys(s.merged)) {
			if m := s.merged[id]; m != nil {
				d.Set = append(d.Set, *m)
			} else {
				d.Gone = append(d.Gone, id)
			}
		}
		s.merged, s.count = nil, nil
		data, _ = json.Marshal(d)
		return "diff", data, nil
	}
	return "", nil, nil
}

// snapshot is the hub's state as a snapshot message. Called with h.mu held.
func (h *hub) snapshot(window time.Duration) feedSnapshot2 {
	snap := feedSnapshot2{Room: h.room, Count: h.count, CountOnly: h.countOnly, Members: []feedMember{}, WindowMS: window.Milliseconds()}
	switch h.kind {
	case scopeNode:
		snap.Scope = "node"
	case scopeRoom:
		snap.Scope = "room"
	case scopeIDs:
		snap.Scope = "ids"
	}
	if h.kind == scopeIDs {
		for _, id := range h.ids {
			snap.Members = append(snap.Members, h.state[id])
		}
		return snap
	}
	for _, id := range slices.Sorted(maps.Keys(h.state)) {
		snap.Members = append(snap.Members, h.state[id])
	}
	return snap
}

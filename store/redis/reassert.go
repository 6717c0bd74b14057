package redis

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/vigilhq/vigil/presence"
)

// endingRef names a session known to be ending, until its grace is over:
// Store.endings lists them so Sweep can forget them without walking every
// session this Store knows.
type endingRef struct {
	client, session string
	until           time.Time
}

// pruneEndings forgets the ending sessions whose grace was over when a
// Sweep that succeeded began (before), in the generation it saw: Redis has
// removed them, and decided their Offline. The others stay known, to be
// re-asserted if Redis loses them first: even one whose grace ran out while
// Redis was down, since nobody could sweep it.
func (s *Store) pruneEndings(before time.Time) {
	s.knownMu.Lock()
	defer s.knownMu.Unlock()
	kept := s.endings[:0]
	for _, r := range s.endings {
		k, ok := s.known[r.client][r.session]
		switch {
		case !ok || k.reason == "" || !k.until.Equal(r.until):
			// revived, forgotten, or ended again (listed again)
		case !r.until.Before(before) || k.gen != s.knownGen(s.bucket(r.client)):
			kept = append(kept, r)
		default:
			s.forgetSession(r.client, r.session)
		}
	}
	clear(s.endings[len(kept):])
	s.endings = kept
}

// offMemory is how long a Store remembers the Offlines (and Leaves) it decided, for
// reassert: long enough for every node to have swept past the grace of
// the sessions they cover, counted only while Redis answers (pruneOffs
// runs after a Sweep that succeeded).
const offMemory = time.Minute

// offDecided is an Offline this Store decided: when, on Redis's clock
// (ms), and in which generation of the client's bucket.
type offDecided struct {
	at  int64
	gen string
}

// offRef lists an Offline (or Leave) in offOrder, by its key in offs,
// with when this Store learnt it.
type offRef struct {
	key   string
	at    int64
	local time.Time
}

// offKey is the key in Store.offs of an Offline of client (room empty) or a
// Leave of room: IDs have no control characters, so the pair is
// unambiguous.
func offKey(client, room string) string {
	if room == "" {
		return client
	}
	return client + "\x00" + room
}

// offOf splits a key of Store.offs into its client and room (empty for an
// Offline).
func offOf(key string) (client, room string) {
	client, room, _ = strings.Cut(key, "\x00")
	return client, room
}

// decided remembers an Offline or Leave this Store returned (from bucket
// b): after Redis lost the data, reassert tells the bucket, so that an
// ending session some node re-asserts is known to owe its Offline, and
// the Leave of each of its rooms, or not.
func (s *Store) decided(b int, ev presence.Event) {
	var key string
	switch ev.Transition {
	case presence.Offline:
		key = offKey(ev.ClientID, "")
	case presence.Leave:
		key = offKey(ev.ClientID, ev.Room)
	default:
		return
	}
	at := ev.Time.UnixMilli()
	gen := s.knownGen(b)
	s.offMu.Lock()
	defer s.offMu.Unlock()
	if o, ok := s.offs[key]; ok && o.at > at {
		return
	}
	s.offs[key] = offDecided{at: at, gen: gen}
	s.offOrder = append(s.offOrder, offRef{key: key, at: at, local: time.Now()})
	s.offAt[b] = time.Now()
}

// pruneOffs forgets the Offlines and Leaves learnt more than offMemory before a Sweep
// that succeeded began (before).
func (s *Store) pruneOffs(before time.Time) {
	s.offMu.Lock()
	defer s.offMu.Unlock()
	i := 0
	for ; i < len(s.offOrder) && s.offOrder[i].local.Before(before.Add(-offMemory)); i++ {
		r := s.offOrder[i]
		if o, ok := s.offs[r.key]; ok && o.at == r.at {
			delete(s.offs, r.key)
		}
	}
	if i > 0 {
		s.offOrder = slices.Delete(s.offOrder, 0, i)
	}
}

// reassert writes again every session this Store holds in the buckets
// Redis lost since the last call (sawGen found them with a new
// generation): the live ones with the lease last written, the ending ones
// as ending, through what is left of their grace and with their reason. A
// session this Store wrote in an earlier generation is re-created silently
// (no Online), and while the bucket's re-assertion window is open
// (Config.Reassert) its client counts as having been online before; so the
// window's held transitions are decided against what every node held.
//
// It holds reassertMu, so that no End runs meanwhile: a session ended
// while its bucket is re-asserted could otherwise be written back.
func (s *Store) reassert(ctx context.Context) ([]presence.Event, error) {
	s.genMu.Lock()
	if len(s.lost) == 0 {
		s.genMu.Unlock()
		return nil, nil
	}
	lost := s.lost
	s.lost = make(map[int]bool)
	s.genMu.Unlock()

	s.reassertMu.Lock()
	defer s.reassertMu.Unlock()
	now := time.Now()
	var leases []presence.Lease
	var ends []endingSession
	s.knownMu.Lock()
	for c, m := range s.known {
		if !lost[s.bucket(c)] {
			continue
		}
		for sid, k := range m {
			if k.reason != "" {
				// A grace that ran out while Redis was down still owes
				// its Offline: a moment's grace, swept at once.
				left := max(k.until.Sub(now), time.Millisecond)
				ends = append(ends, endingSession{c, sid, k, left})
				continue
			}
			ttl := time.Duration(k.ttl) * time.Millisecond
			age := max(0, time.Duration(k.span-k.ttl)*time.Millisecond)
			leases = append(leases, presence.Lease{ClientID: c, SessionID: sid, Node: k.node, TTL: ttl, Age: age})
		}
	}
	s.knownMu.Unlock()
	type offSent struct {
		client, room string
		at           int64
	}
	var offs []offSent
	s.offMu.Lock()
	for key, o := range s.offs {
		c, room := offOf(key)
		if b := s.bucket(c); lost[b] && o.gen != s.knownGen(b) {
			offs = append(offs, offSent{c, room, o.at})
		}
	}
	s.offMu.Unlock()
	if len(offs) > 0 {
		calls := make([]call, len(offs))
		for i, o := range offs {
			b := s.bucket(o.client)
			args := s.endArgs(presence.Ending{}, "o", o.client, "", "", "", 0, b).set(endArgAt, o.at)
			if o.room != "" {
				args = args.set(endArgMode, "l").set(endArgRooms, o.room)
			}
			calls[i] = call{keys: s.buckets[b], args: args}
		}
		if _, err := s.runAll(ctx, scriptEnd, calls); err != nil {
			s.relose(lost)
			return nil, fmt.Errorf("re-assert %d offlines and leaves after Redis lost data: %w", len(offs), err)
		}
	}

	evs, err := s.reassertEnding(ctx, ends)
	if err == nil && len(leases) > 0 {
		_, err = s.Touch(ctx, leases)
	}
	if err == nil {
		// Their rooms and metadata, once the sessions are back.
		var more []presence.Event
		more, err = s.reassertRooms(ctx, lost)
		evs = append(evs, more...)
	}
	if err != nil {
		s.relose(lost)
		return evs, fmt.Errorf("re-assert %d sessions after Redis lost data: %w", len(leases)+len(ends), err)
	}
	s.log.LogAttrs(ctx, slog.LevelWarn, "redis: Redis lost data; re-asserted this node's sessions",
		slog.Int("buckets", len(lost)), slog.Int("sessions", len(leases)), slog.Int("ending", len(ends)),
		slog.Int("offlines and leaves", len(offs)))
	return evs, nil
}

// endingSession is an ending session to re-assert, with what is left of
// its grace.
type endingSession struct {
	client, session string
	k               knownSession
	left            time.Duration
}

// reassertEnding writes the ending sessions ends back as ending (end.lua
// mode 'r': only a session Redis no longer holds), pipelined, and records
// their new generation. It returns the transitions decided, if any.
func (s *Store) reassertEnding(ctx context.Context, ends []endingSession) ([]presence.Event, error) {
	if len(ends) == 0 {
		return nil, nil
	}
	calls := make([]call, len(ends))
	bs := make([]int, len(ends))
	for i, e := range ends {
		bs[i] = s.bucket(e.client)
		end := presence.Ending{Reason: e.k.reason, Grace: e.left}
		calls[i] = call{keys: s.buckets[bs[i]], args: s.endArgs(end, "r", e.client, e.session, e.k.gen, e.k.node, 0, bs[i]).set(endArgAt, e.k.deadline).withRooms(e.k)}
	}
	replies, err := s.runAll(ctx, scriptEnd, calls)
	var evs []presence.Event
	for i, r := range replies {
		v, _ := r.([]any)
		if len(v) < 3 {
			continue // failed; err says why
		}
		g, _ := v[0].(string)
		s.sawGen(bs[i], g)
		more, perr := s.events(bs[i], v[3:])
		evs = append(evs, more...)
		if perr != nil && err == nil {
			err = perr
		}
		e := ends[i]
		s.knownMu.Lock()
		if k, ok := s.known[e.client][e.session]; ok && k.reason != "" && k.until.Equal(e.k.until) {
			k.gen, k.until = g, time.Now().Add(e.left)
			if k.hasRooms() {
				k.rgen = g
			}
			s.known[e.client][e.session] = k
			s.endings = append(s.endings, endingRef{client: e.client, session: e.session, until: k.until})
		}
		s.knownMu.Unlock()
	}
	return evs, err
}

// relose marks the buckets of a re-assertion that failed lost again: the
// next Sweep re-asserts them.
func (s *Store) relose(lost map[int]bool) {
	s.genMu.Lock()
	defer s.genMu.Unlock()
	for b := range lost {
		s.lost[b] = true
	}
}

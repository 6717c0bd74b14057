package presence_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/vigilhq/vigil/presence"
)

// roomList lists events as "client:transition:room".
func (e *events) roomList() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []string
	for _, ev := range e.evs {
		out = append(out, ev.ClientID+":"+ev.Transition.String()+":"+ev.Room)
	}
	return out
}

// listenAll records every kind of transition of tr in rec.
func listenAll(tr *presence.Tracker, rec *events) {
	tr.OnOnline(rec.hook)
	tr.OnOffline(rec.hook)
	tr.OnJoin("", rec.hook)
	tr.OnLeave("", rec.hook)
	tr.OnUpdate("", rec.hook)
}

// A session's rooms and metadata, through the Tracker: Connect's rooms go
// with its Online, Join, Leave and SetMeta fire their events in the
// client's order, and the session's end takes it out of its rooms before
// the Offline.
//
// timing: Grace alone, on fake time.
func TestSessionRooms(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tr := newTracker(t, newStore(t), presence.Config{Grace: time.Second})
		rec := &events{}
		listenAll(tr, rec)
		s, err := tr.Connect(ctx, "ann", presence.SessionOptions{Rooms: []string{"b", "a", "b"}, Meta: json.RawMessage(`{"name":"Ann"}`)})
		if err != nil {
			t.Fatal(err)
		}
		if got := s.Rooms(); !slices.Equal(got, []string{"a", "b"}) || string(s.Meta()) != `{"name":"Ann"}` {
			t.Fatalf("Rooms, Meta = %v, %s; want [a b] and the metadata given", got, s.Meta())
		}
		if err := s.Join(ctx, "c"); err != nil {
			t.Fatal(err)
		}
		if err := s.SetMeta(ctx, json.RawMessage(`{"name":"Anne"}`)); err != nil {
			t.Fatal(err)
		}
		if err := s.SetMeta(ctx, json.RawMessage(`{"name":"Anne"}`)); err != nil {
			t.Fatal(err)
		}
		if err := s.Leave(ctx, "a"); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		want := []string{"ann:online:", "ann:join:a", "ann:join:b", "ann:join:c", "ann:update:a", "ann:update:b", "ann:update:c", "ann:leave:a"}
		if got := rec.roomList(); !slices.Equal(got, want) {
			t.Fatalf("events = %v, want %v", got, want)
		}
		if rooms, err := tr.ClientRooms(ctx, "ann"); err != nil || !slices.Equal(rooms, []string{"b", "c"}) {
			t.Fatalf("ClientRooms = %v, %v; want [b c]", rooms, err)
		}
		ms, err := tr.MembersAmong(ctx, "b", []string{"ann"})
		if err != nil || !ms[0].In || string(ms[0].Meta()) != `{"name":"Anne"}` {
			t.Fatalf("MembersAmong = %+v, %v; want ann in b with her new metadata", ms, err)
		}
		s.End(ctx, presence.ReasonClosed)
		time.Sleep(3 * time.Second)
		synctest.Wait()
		want = append(want, "ann:leave:b", "ann:leave:c", "ann:offline:")
		if got := rec.roomList(); !slices.Equal(got, want) {
			t.Fatalf("events after the end = %v, want %v", got, want)
		}
		if n, err := tr.RoomCount(ctx, "b"); err != nil || n != 0 {
			t.Fatalf("RoomCount(b) = %d, %v after the end; want 0", n, err)
		}
	})
}

// Room calls refuse bad input and ended sessions with the sentinels a
// caller tells apart, and change nothing when they fail.
func TestSessionRoomErrors(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tr := newTracker(t, newStore(t), presence.Config{})
		s, _ := tr.Connect(ctx, "bob", presence.SessionOptions{})
		for _, tc := range []struct {
			name string
			err  error
			want error
		}{
			{"join bad room", s.Join(ctx, "a\nb"), presence.ErrInvalidID},
			{"leave bad room", s.Leave(ctx, ""), presence.ErrInvalidID},
			{"leave room not in", s.Leave(ctx, "r"), presence.ErrNotFound},
			{"metadata not JSON", s.SetMeta(ctx, json.RawMessage(`{`)), presence.ErrInvalidArgument},
			{"metadata too big", s.SetMeta(ctx, json.RawMessage(fmt.Sprintf("%q", make([]byte, presence.MaxMetaLen)))), presence.ErrInvalidArgument},
			{"members bad room", func() error { _, err := tr.Members(ctx, "\x00", "", 1); return err }(), presence.ErrInvalidID},
			{"members limit 0", func() error { _, err := tr.Members(ctx, "r", "", 0); return err }(), presence.ErrInvalidArgument},
			{"count bad room", func() error { _, err := tr.RoomCount(ctx, ""); return err }(), presence.ErrInvalidID},
			{"client rooms bad id", func() error { _, err := tr.ClientRooms(ctx, ""); return err }(), presence.ErrInvalidID},
			{"members among too many", func() error {
				_, err := tr.MembersAmong(ctx, "r", make([]string, presence.MaxLookup+1))
				return err
			}(), presence.ErrInvalidArgument},
			{"connect bad room", func() error {
				_, err := tr.Connect(ctx, "bob", presence.SessionOptions{Rooms: []string{"ok", "\t"}})
				return err
			}(), presence.ErrInvalidID},
			{"connect bad metadata", func() error {
				_, err := tr.Connect(ctx, "bob", presence.SessionOptions{Meta: json.RawMessage(`nope`)})
				return err
			}(), presence.ErrInvalidArgument},
		} {
			if !errors.Is(tc.err, tc.want) {
				t.Errorf("%s: got %v, want %v", tc.name, tc.err, tc.want)
			}
		}
		for i := range presence.MaxRoomsPerSession {
			if err := s.Join(ctx, fmt.Sprintf("r%d", i)); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.Join(ctx, "one-more"); !errors.Is(err, presence.ErrLimit) {
			t.Fatalf("Join past MaxRoomsPerSession = %v, want ErrLimit", err)
		}
		if n := len(s.Rooms()); n != presence.MaxRoomsPerSession {
			t.Fatalf("%d rooms after a refused Join, want %d", n, presence.MaxRoomsPerSession)
		}
		s.End(ctx, presence.ReasonClosed)
		for name, err := range map[string]error{
			"join":     s.Join(ctx, "x"),
			"leave":    s.Leave(ctx, "r1"),
			"set meta": s.SetMeta(ctx, json.RawMessage(`1`)),
		} {
			if !errors.Is(err, presence.ErrNotFound) {
				t.Errorf("%s on an ended session = %v, want ErrNotFound", name, err)
			}
		}
		if len(s.Rooms()) != 0 {
			t.Errorf("an ended session still reports rooms %v", s.Rooms())
		}
	})
}

// onlyStore hides every optional ability of the Store it wraps.
type onlyStore struct{ presence.Store }

// Over a Store that keeps no rooms, every room call fails with
// errors.ErrUnsupported; presence alone works as before.
func TestRoomsUnsupported(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tr := newTracker(t, onlyStore{newStore(t)}, presence.Config{})
		s, err := tr.Connect(ctx, "cat", presence.SessionOptions{})
		if err != nil {
			t.Fatalf("Connect without rooms: %v", err)
		}
		calls := map[string]error{
			"Join":    s.Join(ctx, "r"),
			"Leave":   s.Leave(ctx, "r"),
			"SetMeta": s.SetMeta(ctx, json.RawMessage(`1`)),
		}
		_, calls["Connect with rooms"] = tr.Connect(ctx, "cat", presence.SessionOptions{Rooms: []string{"r"}})
		_, calls["Connect with metadata"] = tr.Connect(ctx, "cat", presence.SessionOptions{Meta: json.RawMessage(`1`)})
		_, calls["Members"] = tr.Members(ctx, "r", "", 10)
		_, calls["RoomCount"] = tr.RoomCount(ctx, "r")
		_, calls["ClientRooms"] = tr.ClientRooms(ctx, "cat")
		_, calls["MembersAmong"] = tr.MembersAmong(ctx, "r", []string{"cat"})
		for name, err := range calls {
			if !errors.Is(err, errors.ErrUnsupported) {
				t.Errorf("%s = %v, want errors.ErrUnsupported", name, err)
			}
		}
		if p, err := tr.Presence(ctx, "cat"); err != nil || p.Sessions != 1 {
			t.Fatalf("Presence = %+v, %v; want the one session", p, err)
		}
	})
}

// downRooms wraps a RoomStore and fails its session calls while down is
// set, as a Store whose backend is unreachable does.
type downRooms struct {
	presence.RoomStore
	down atomic.Bool

	mu   sync.Mutex
	adds []presence.Lease // leases Add was given while up
}

func (d *downRooms) lastAdd() presence.Lease {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.adds[len(d.adds)-1]
}

func (d *downRooms) Add(ctx context.Context, l presence.Lease) ([]presence.Event, error) {
	if d.down.Load() {
		return nil, errDown
	}
	d.mu.Lock()
	d.adds = append(d.adds, l)
	d.mu.Unlock()
	return d.RoomStore.Add(ctx, l)
}

func (d *downRooms) Touch(ctx context.Context, ls []presence.Lease) ([]presence.Gone, error) {
	if d.down.Load() {
		return nil, errDown
	}
	return d.RoomStore.Touch(ctx, ls)
}

func (d *downRooms) Sweep(ctx context.Context) ([]presence.Event, error) {
	if d.down.Load() {
		return nil, errDown
	}
	return d.RoomStore.Sweep(ctx)
}

func (d *downRooms) Join(ctx context.Context, m presence.Membership) ([]presence.Event, error) {
	if d.down.Load() {
		return nil, errDown
	}
	return d.RoomStore.Join(ctx, m)
}

// A session connected while the Store is unreachable keeps what Join,
// Leave and SetMeta did meanwhile, and its Add carries it when the Store is
// back: the Online, then the Joins of the rooms it is in then, with its
// latest metadata, in one Store step. A Join of a live session that fails
// for a transient reason changes nothing.
//
// timing: the outage is shorter than TTL, on fake time.
func TestPendingSessionCarriesRooms(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := &downRooms{RoomStore: newStore(t)}
		tr := newTracker(t, store, presence.Config{TTL: 3 * time.Second})
		rec := &events{}
		listenAll(tr, rec)
		store.down.Store(true)
		s, err := tr.Connect(ctx, "dan", presence.SessionOptions{Rooms: []string{"a", "b"}})
		if err != nil {
			t.Fatalf("Connect during the outage: %v", err)
		}
		for _, err := range []error{s.Join(ctx, "c"), s.Leave(ctx, "a"), s.SetMeta(ctx, json.RawMessage(`"dan"`))} {
			if err != nil {
				t.Fatalf("room call on a pending session: %v", err)
			}
		}
		synctest.Wait()
		if got := rec.roomList(); len(got) != 0 {
			t.Fatalf("events during the outage: %v", got)
		}
		store.down.Store(false)
		time.Sleep(time.Second)
		s.Beat()
		synctest.Wait()
		if got := rec.roomList(); !slices.Equal(got, []string{"dan:online:", "dan:join:b", "dan:join:c"}) {
			t.Fatalf("events after the outage = %v, want the Online, then the Joins of b and c", got)
		}
		if l := store.lastAdd(); !slices.Equal(l.Rooms, []string{"b", "c"}) || string(l.Meta) != `"dan"` {
			t.Fatalf("the Add = %+v; want rooms [b c] and the metadata set during the outage", l)
		}
		store.down.Store(true)
		if err := s.Join(ctx, "d"); !errors.Is(err, errDown) {
			t.Fatalf("Join of a live session while the Store is down = %v, want its error", err)
		}
		store.down.Store(false)
		if got := s.Rooms(); !slices.Equal(got, []string{"b", "c"}) {
			t.Fatalf("Rooms after a failed Join = %v, want [b c]", got)
		}
	})
}

// OnJoin, OnLeave and OnUpdate take every room (""), one room, or the rooms
// with a prefix ("game:*"); one client's hooks of every kind run in its
// Seq order, even behind a blocked hook.
func TestRoomHookPatterns(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tr := newTracker(t, newStore(t), presence.Config{Grace: -1, HookTimeout: -1})
		all, one, games := &events{}, &events{}, &events{}
		for _, h := range []struct {
			room string
			rec  *events
		}{{"", all}, {"lobby", one}, {"game:*", games}} {
			tr.OnJoin(h.room, h.rec.hook)
			tr.OnLeave(h.room, h.rec.hook)
			tr.OnUpdate(h.room, h.rec.hook)
		}
		release := make(chan struct{})
		tr.OnOnline(func(ctx context.Context, ev presence.Event) {
			<-release // holds back the client's later events
			all.hook(ctx, ev)
		})
		tr.OnOffline(all.hook)
		s, _ := tr.Connect(ctx, "eve", presence.SessionOptions{Rooms: []string{"lobby", "game:1", "game"}})
		s.SetMeta(ctx, json.RawMessage(`1`))
		s.Leave(ctx, "game:1")
		s.End(ctx, presence.ReasonClosed)
		synctest.Wait()
		if got := all.roomList(); len(got) != 0 {
			t.Fatalf("events behind a blocked Online hook: %v", got)
		}
		close(release)
		synctest.Wait()
		want := []string{"eve:online:", "eve:join:game", "eve:join:game:1", "eve:join:lobby",
			"eve:update:game", "eve:update:game:1", "eve:update:lobby", "eve:leave:game:1",
			"eve:leave:game", "eve:leave:lobby", "eve:offline:"}
		if got := all.roomList(); !slices.Equal(got, want) {
			t.Errorf(`hooks for "" = %v, want %v`, got, want)
		}
		if got, want := one.roomList(), []string{"eve:join:lobby", "eve:update:lobby", "eve:leave:lobby"}; !slices.Equal(got, want) {
			t.Errorf(`hooks for "lobby" = %v, want %v`, got, want)
		}
		if got, want := games.roomList(), []string{"eve:join:game:1", "eve:update:game:1", "eve:leave:game:1"}; !slices.Equal(got, want) {
			t.Errorf(`hooks for "game:*" = %v, want %v`, got, want)
		}
	})
}

// Watch sees room transitions along with Online and Offline, in order.
func TestWatchSeesRooms(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tr := newTracker(t, newStore(t), presence.Config{Grace: -1})
		rec := &events{}
		unwatch := tr.Watch(rec.hook)
		defer unwatch()
		s, _ := tr.Connect(ctx, "fred", presence.SessionOptions{Rooms: []string{"r"}})
		s.SetMeta(ctx, json.RawMessage(`true`))
		s.End(ctx, presence.ReasonClosed)
		synctest.Wait()
		want := []string{"fred:online:", "fred:join:r", "fred:update:r", "fred:leave:r", "fred:offline:"}
		if got := rec.roomList(); !slices.Equal(got, want) {
			t.Fatalf("Watch saw %v, want %v", got, want)
		}
	})
}

// Connect with the ID of a live session of this node joins that session to
// the rooms given and sets its metadata: an HTTP-heartbeat page that
// reconnects into another room is in both.
func TestConnectSameSessionIDJoinsRooms(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tr := newTracker(t, newStore(t), presence.Config{})
		rec := &events{}
		listenAll(tr, rec)
		a, _ := tr.Connect(ctx, "gus", presence.SessionOptions{ID: "tab", Rooms: []string{"r"}})
		b, err := tr.Connect(ctx, "gus", presence.SessionOptions{ID: "tab", Rooms: []string{"q"}, Meta: json.RawMessage(`2`)})
		if err != nil || a != b {
			t.Fatalf("Connect with the same ID = %p, %v; want the same session %p", b, err, a)
		}
		synctest.Wait()
		if got := a.Rooms(); !slices.Equal(got, []string{"q", "r"}) || string(a.Meta()) != "2" {
			t.Fatalf("Rooms, Meta = %v, %s; want [q r], 2", got, a.Meta())
		}
		if got, want := rec.roomList(), []string{"gus:online:", "gus:join:r", "gus:join:q", "gus:update:q", "gus:update:r"}; !slices.Equal(got, want) {
			t.Fatalf("events = %v, want %v", got, want)
		}
	})
}

// A page that reloads into another room within Grace, with the same
// session ID (an HTTP-heartbeat tab), revives its session in the Store: it
// leaves the rooms it no longer asks for, instead of haunting them while
// the tab lives, and rejoins the one it asks for again without a flap.
//
// timing: Grace alone, on fake time.
func TestRevivedSessionLeavesRoomsNoLongerAsked(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tr := newTracker(t, newStore(t), presence.Config{Grace: 5 * time.Second})
		rec := &events{}
		listenAll(tr, rec)
		s, _ := tr.Connect(ctx, "hal", presence.SessionOptions{ID: "tab", Rooms: []string{"a", "keep"}, Meta: json.RawMessage(`"old"`)})
		s.End(ctx, presence.ReasonClosed)
		time.Sleep(time.Second)
		s2, err := tr.Connect(ctx, "hal", presence.SessionOptions{ID: "tab", Rooms: []string{"b", "keep"}})
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(6 * time.Second)
		s2.Beat()
		synctest.Wait()
		want := []string{"hal:online:", "hal:join:a", "hal:join:keep", "hal:join:b", "hal:leave:a", "hal:update:b", "hal:update:keep"}
		if got := rec.roomList(); !slices.Equal(got, want) {
			t.Fatalf("events = %v, want %v", got, want)
		}
		if rooms, _ := tr.ClientRooms(ctx, "hal"); !slices.Equal(rooms, s2.Rooms()) {
			t.Fatalf("ClientRooms = %v, the session's Rooms %v: want the same", rooms, s2.Rooms())
		}
		infos, _ := tr.Sessions(ctx, "hal")
		if len(infos) != 1 || len(infos[0].Meta) != 0 {
			t.Fatalf("Sessions = %+v; want one, without the metadata of the page before", infos)
		}
	})
}

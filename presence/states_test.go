package presence_test

import (
	"context"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/vigilhq/vigil/presence"
)

// listenStates records Online, Offline, Away and Back of tr in rec.
func listenStates(tr *presence.Tracker, rec *events) {
	tr.OnOnline(rec.hook)
	tr.OnOffline(rec.hook)
	tr.OnAway(rec.hook)
	tr.OnBack(rec.hook)
}

// presenceOf returns the client's presence, failing the test on an error.
func presenceOf(t *testing.T, tr *presence.Tracker, clientID string) presence.Presence {
	t.Helper()
	p, err := tr.Presence(ctx, clientID)
	if err != nil {
		t.Fatalf("Presence(%s): %v", clientID, err)
	}
	return p
}

// Session.SetActivity: the client goes away with its last active session,
// back with its first active one; a report that changes nothing fires
// nothing; hooks, Watch and queries see it.
//
// timing: none but the clock read by last active times, on fake time.
func TestSessionSetActivity(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tr := newTracker(t, newStore(t), presence.Config{Grace: -1})
		if !tr.HasStates() {
			t.Fatal("HasStates over a memory store = false")
		}
		rec, watched := &events{}, &events{}
		listenStates(tr, rec)
		unwatch := tr.Watch(watched.hook)
		defer unwatch()
		s1, _ := tr.Connect(ctx, "amy", presence.SessionOptions{})
		s2, _ := tr.Connect(ctx, "amy", presence.SessionOptions{})
		if s1.Activity() != presence.ActivityActive {
			t.Fatalf("a new session's Activity = %q, want active", s1.Activity())
		}
		time.Sleep(5 * time.Second)
		reported := time.Now()
		for _, step := range []struct {
			s    *presence.Session
			a    presence.Activity
			idle time.Duration
		}{
			{s1, presence.ActivityAway, 30 * time.Second}, // s2 is active: nothing
			{s2, presence.ActivityAway, 10 * time.Second}, // Away
			{s2, presence.ActivityAway, 10 * time.Second}, // nothing
		} {
			if err := step.s.SetActivity(ctx, step.a, step.idle); err != nil {
				t.Fatal(err)
			}
		}
		synctest.Wait()
		if got, want := rec.list(), []string{"amy:online", "amy:away"}; !slices.Equal(got, want) {
			t.Fatalf("events = %v, want %v", got, want)
		}
		if s1.Activity() != presence.ActivityAway || s2.Activity() != presence.ActivityAway {
			t.Fatalf("Activity = %q, %q; want away, away", s1.Activity(), s2.Activity())
		}
		p := presenceOf(t, tr, "amy")
		if p.State != presence.StateAway || !p.LastActive.Equal(reported.Add(-10*time.Second)) {
			t.Fatalf("Presence = %+v; want away, last active 10s before the report (%v)", p, reported.Add(-10*time.Second))
		}
		infos, err := tr.Sessions(ctx, "amy")
		if err != nil || len(infos) != 2 || infos[0].Activity != presence.ActivityAway || infos[1].Activity != presence.ActivityAway {
			t.Fatalf("Sessions = %+v, %v; want two away sessions", infos, err)
		}
		if err := s1.SetActivity(ctx, presence.ActivityActive, 0); err != nil {
			t.Fatal(err)
		}
		if err := s1.SetActivity(ctx, "", 0); err != nil { // empty is active
			t.Fatal(err)
		}
		synctest.Wait()
		want := []string{"amy:online", "amy:away", "amy:back"}
		if got := rec.list(); !slices.Equal(got, want) {
			t.Fatalf("events = %v, want %v", got, want)
		}
		if p := presenceOf(t, tr, "amy"); p.State != presence.StateOnline {
			t.Fatalf("State = %q after a session came back, want online", p.State)
		}
		ev := rec.evs[2]
		if ev.SessionID != s1.ID() || ev.Node != "n1" || ev.Reason != "" || ev.Seq != rec.evs[1].Seq+1 {
			t.Fatalf("Back = %+v; want s1's, on n1, no reason, the Seq after the Away", ev)
		}
		s1.End(ctx, presence.ReasonClosed) // s2 is away: the client goes away
		s2.End(ctx, presence.ReasonClosed)
		synctest.Wait()
		want = append(want, "amy:away", "amy:offline")
		if got := rec.list(); !slices.Equal(got, want) {
			t.Fatalf("events = %v, want %v", got, want)
		}
		if got := watched.list(); !slices.Equal(got, want) {
			t.Fatalf("Watch saw %v, want %v", got, want)
		}
		if p, _ := tr.Presence(ctx, "amy"); p.State != presence.StateOffline || p.LastActive.IsZero() {
			t.Fatalf("Presence after the end = %+v; want offline, with the last active time", p)
		}
	})
}

// SessionOptions.Activity opens a session away: the client's Online and
// Away come in one Store step.
func TestConnectAway(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tr := newTracker(t, newStore(t), presence.Config{Grace: -1})
		rec := &events{}
		listenStates(tr, rec)
		time.Sleep(time.Minute)
		s, err := tr.Connect(ctx, "ben", presence.SessionOptions{Activity: presence.ActivityAway, IdleFor: 5 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		if got, want := rec.list(), []string{"ben:online", "ben:away"}; !slices.Equal(got, want) {
			t.Fatalf("events = %v, want %v", got, want)
		}
		if rec.evs[1].Reason != presence.ReasonConnect || rec.evs[1].Seq != rec.evs[0].Seq+1 {
			t.Fatalf("Away = %+v; want ReasonConnect, the Seq after the Online", rec.evs[1])
		}
		if s.Activity() != presence.ActivityAway {
			t.Fatalf("Activity = %q, want away", s.Activity())
		}
		if p := presenceOf(t, tr, "ben"); p.State != presence.StateAway || !p.LastActive.Equal(time.Now().Add(-5*time.Second)) {
			t.Fatalf("Presence = %+v; want away, last active 5s before Connect", p)
		}
		// An active session of the away client brings it back.
		if _, err := tr.Connect(ctx, "ben", presence.SessionOptions{Activity: presence.ActivityActive}); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		if got, want := rec.list(), []string{"ben:online", "ben:away", "ben:back"}; !slices.Equal(got, want) {
			t.Fatalf("events = %v, want %v", got, want)
		}
	})
}

// downStates wraps a StateStore and fails Add while down is set, as a
// Store whose backend is unreachable does.
type downStates struct {
	presence.StateStore
	down atomic.Bool

	mu   sync.Mutex
	adds []presence.Lease

	setActivities atomic.Int32 // SetActivity calls
}

func (d *downStates) SetActivity(ctx context.Context, a presence.SessionActivity) ([]presence.Event, error) {
	d.setActivities.Add(1)
	return d.StateStore.SetActivity(ctx, a)
}

func (d *downStates) Add(ctx context.Context, l presence.Lease) ([]presence.Event, error) {
	if d.down.Load() {
		return nil, errDown
	}
	d.mu.Lock()
	d.adds = append(d.adds, l)
	d.mu.Unlock()
	return d.StateStore.Add(ctx, l)
}

func (d *downStates) lastAdd() presence.Lease {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.adds[len(d.adds)-1]
}

// A session connected while the Store is unreachable keeps the activity
// SetActivity gave it meanwhile, and its Add carries it: the Online and
// the Away in one step, the last active time as reported (IdleFor grown
// by the time the Add waited).
//
// timing: the outage is shorter than TTL, on fake time.
func TestPendingSessionCarriesActivity(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := &downStates{StateStore: newStore(t)}
		tr := newTracker(t, store, presence.Config{TTL: 3 * time.Second})
		rec := &events{}
		listenStates(tr, rec)
		store.down.Store(true)
		s, err := tr.Connect(ctx, "cleo", presence.SessionOptions{})
		if err != nil {
			t.Fatalf("Connect during the outage: %v", err)
		}
		reported := time.Now()
		if err := s.SetActivity(ctx, presence.ActivityAway, 4*time.Second); err != nil {
			t.Fatalf("SetActivity of a pending session: %v", err)
		}
		synctest.Wait()
		if got := rec.list(); len(got) != 0 {
			t.Fatalf("events during the outage: %v", got)
		}
		time.Sleep(time.Second)
		store.down.Store(false)
		time.Sleep(time.Second)
		synctest.Wait()
		if got, want := rec.list(), []string{"cleo:online", "cleo:away"}; !slices.Equal(got, want) {
			t.Fatalf("events after the outage = %v, want %v", got, want)
		}
		if l := store.lastAdd(); l.Activity != presence.ActivityAway || l.IdleFor <= 4*time.Second {
			t.Fatalf("the Add = %+v; want away, idle for more than the 4s reported", l)
		}
		if p := presenceOf(t, tr, "cleo"); p.State != presence.StateAway || !p.LastActive.Equal(reported.Add(-4*time.Second)) {
			t.Fatalf("Presence = %+v; want away, last active 4s before the report (%v)", p, reported.Add(-4*time.Second))
		}
	})
}

// SetActivity and Connect refuse bad activities with ErrInvalidArgument,
// and an ended session with ErrNotFound, changing nothing.
func TestSetActivityErrors(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tr := newTracker(t, newStore(t), presence.Config{Grace: -1})
		s, _ := tr.Connect(ctx, "dee", presence.SessionOptions{})
		for _, tc := range []struct {
			name string
			err  error
			want error
		}{
			{"unknown activity", s.SetActivity(ctx, "busy", 0), presence.ErrInvalidArgument},
			{"negative idle", s.SetActivity(ctx, presence.ActivityAway, -time.Second), presence.ErrInvalidArgument},
			{"idle while active", s.SetActivity(ctx, presence.ActivityActive, time.Second), presence.ErrInvalidArgument},
			{"connect unknown activity", func() error {
				_, err := tr.Connect(ctx, "dee", presence.SessionOptions{Activity: "busy"})
				return err
			}(), presence.ErrInvalidArgument},
			{"connect negative idle", func() error {
				_, err := tr.Connect(ctx, "dee", presence.SessionOptions{Activity: presence.ActivityAway, IdleFor: -1})
				return err
			}(), presence.ErrInvalidArgument},
		} {
			if !errors.Is(tc.err, tc.want) {
				t.Errorf("%s: got %v, want %v", tc.name, tc.err, tc.want)
			}
		}
		if s.Activity() != presence.ActivityActive {
			t.Fatalf("Activity after refused calls = %q, want active", s.Activity())
		}
		if n, _ := tr.Count(ctx); n != 1 {
			t.Fatalf("Count = %d after refused Connects, want 1", n)
		}
		s.End(ctx, presence.ReasonClosed)
		if err := s.SetActivity(ctx, presence.ActivityAway, 0); !errors.Is(err, presence.ErrNotFound) {
			t.Fatalf("SetActivity of an ended session = %v, want ErrNotFound", err)
		}
	})
}

// stateless hides the states of the Store it wraps, and every other
// optional ability: a Store written before states.
type stateless struct{ presence.Store }

func (s stateless) Lookup(ctx context.Context, ids []string) ([]presence.Presence, error) {
	ps, err := s.Store.Lookup(ctx, ids)
	for i := range ps {
		ps[i].State, ps[i].LastActive = "", time.Time{}
	}
	return ps, err
}

func (s stateless) List(ctx context.Context, cursor string, limit int) (presence.Page, error) {
	p, err := s.Store.List(ctx, cursor, limit)
	for i := range p.Clients {
		p.Clients[i].State, p.Clients[i].LastActive = "", time.Time{}
	}
	return p, err
}

func (s stateless) Sessions(ctx context.Context, clientID string) ([]presence.SessionInfo, error) {
	infos, err := s.Store.Sessions(ctx, clientID)
	for i := range infos {
		infos[i].Activity, infos[i].LastActive = "", time.Time{}
	}
	return infos, err
}

// statelessRooms is stateless for a RoomStore.
type statelessRooms struct{ presence.RoomStore }

func (s statelessRooms) Members(ctx context.Context, room, cursor string, limit int) (presence.MemberPage, error) {
	p, err := s.RoomStore.Members(ctx, room, cursor, limit)
	for i := range p.Members {
		p.Members[i].State, p.Members[i].LastActive = "", time.Time{}
	}
	return p, err
}

func (s statelessRooms) MembersAmong(ctx context.Context, room string, ids []string) ([]presence.Member, error) {
	ms, err := s.RoomStore.MembersAmong(ctx, room, ids)
	for i := range ms {
		ms[i].State, ms[i].LastActive = "", time.Time{}
	}
	return ms, err
}

// Over a Store that keeps no activity, SetActivity and an away Connect
// fail with errors.ErrUnsupported; queries report online clients as
// online, and others as offline.
func TestStatesUnsupported(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tr := newTracker(t, stateless{newStore(t)}, presence.Config{Grace: -1})
		if tr.HasStates() {
			t.Fatal("HasStates over a Store without states = true")
		}
		s, err := tr.Connect(ctx, "eli", presence.SessionOptions{Activity: presence.ActivityActive})
		if err != nil {
			t.Fatalf("Connect active: %v", err)
		}
		if err := s.SetActivity(ctx, presence.ActivityAway, 0); !errors.Is(err, errors.ErrUnsupported) {
			t.Errorf("SetActivity = %v, want errors.ErrUnsupported", err)
		}
		if _, err := tr.Connect(ctx, "eli", presence.SessionOptions{Activity: presence.ActivityAway}); !errors.Is(err, errors.ErrUnsupported) {
			t.Errorf("Connect away = %v, want errors.ErrUnsupported", err)
		}
		if s.Activity() != presence.ActivityActive {
			t.Errorf("Activity = %q, want active", s.Activity())
		}
		tr.Connect(ctx, "fay", presence.SessionOptions{})
		gil, _ := tr.Connect(ctx, "gil", presence.SessionOptions{})
		gil.End(ctx, presence.ReasonClosed)
		ps, err := tr.Lookup(ctx, []string{"eli", "gil", "nobody"})
		if err != nil {
			t.Fatal(err)
		}
		for i, want := range []presence.State{presence.StateOnline, presence.StateOffline, presence.StateOffline} {
			if ps[i].State != want || !ps[i].LastActive.IsZero() {
				t.Errorf("Lookup: %+v; want State %q, no LastActive", ps[i], want)
			}
		}
		page, err := tr.List(ctx, "", 10)
		if err != nil || len(page.Clients) != 2 {
			t.Fatalf("List = %+v, %v", page, err)
		}
		for _, p := range page.Clients {
			if p.State != presence.StateOnline {
				t.Errorf("List: %+v; want online", p)
			}
		}
		infos, err := tr.Sessions(ctx, "eli")
		if err != nil || len(infos) != 1 || infos[0].Activity != "" {
			t.Errorf("Sessions = %+v, %v; want one session, no activity", infos, err)
		}
	})
	synctest.Test(t, func(t *testing.T) {
		tr := newTracker(t, statelessRooms{newStore(t)}, presence.Config{Grace: -1})
		tr.Connect(ctx, "hal", presence.SessionOptions{Rooms: []string{"r"}})
		ivy, _ := tr.Connect(ctx, "ivy", presence.SessionOptions{Rooms: []string{"r"}})
		ivy.End(ctx, presence.ReasonClosed)
		ms, err := tr.MembersAmong(ctx, "r", []string{"hal", "ivy"})
		if err != nil || ms[0].State != presence.StateOnline || ms[1].State != "" {
			t.Fatalf("MembersAmong = %+v, %v; want hal online, ivy (not in the room) with no state", ms, err)
		}
		p, err := tr.Members(ctx, "r", "", 10)
		if err != nil || len(p.Members) != 1 || p.Members[0].State != presence.StateOnline {
			t.Fatalf("Members = %+v, %v; want hal, online", p, err)
		}
	})
}

// A Connect with the ID of a live session (an HTTP-heartbeat page beating)
// sets the activity it gives when it differs from the session's, and
// fires what that changes.
func TestConnectSameSessionIDSetsActivity(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := &downStates{StateStore: newStore(t)}
		tr := newTracker(t, store, presence.Config{})
		rec := &events{}
		listenStates(tr, rec)
		s, _ := tr.Connect(ctx, "jo", presence.SessionOptions{ID: "tab"})
		for _, a := range []presence.Activity{presence.ActivityAway, presence.ActivityAway, ""} {
			got, err := tr.Connect(ctx, "jo", presence.SessionOptions{ID: "tab", Activity: a})
			if err != nil || got != s {
				t.Fatalf("Connect(%q) = %p, %v; want the same session %p", a, got, err, s)
			}
		}
		synctest.Wait()
		// A page beating with the activity it has costs no Store call: one
		// SetActivity for the first away, none for the second, none for
		// no activity given.
		if n := store.setActivities.Load(); n != 1 {
			t.Fatalf("%d SetActivity calls, want 1", n)
		}
		if got, want := rec.list(), []string{"jo:online", "jo:away"}; !slices.Equal(got, want) {
			t.Fatalf("events = %v, want %v", got, want)
		}
		if _, err := tr.Connect(ctx, "jo", presence.SessionOptions{ID: "tab", Activity: presence.ActivityActive}); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		if got, want := rec.list(), []string{"jo:online", "jo:away", "jo:back"}; !slices.Equal(got, want) {
			t.Fatalf("events = %v, want %v", got, want)
		}
		if s.Activity() != presence.ActivityActive {
			t.Fatalf("Activity = %q, want active", s.Activity())
		}
	})
}

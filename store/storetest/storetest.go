// Package storetest is the conformance suite of presence.Store: every store,
// vigil's own and third-party ones, runs it to prove it keeps the contract
// the Tracker relies on.
//
// A store's test calls Run with a function that makes a fresh, empty store:
//
//	func TestConformance(t *testing.T) {
//		storetest.Run(t, storetest.Config{
//			New: func(t *testing.T) presence.Store {
//				s, err := memory.New(memory.Config{})
//				if err != nil {
//					t.Fatal(err)
//				}
//				return s
//			},
//			Synctest: true,
//		})
//	}
//
// The suite drives the store through real Trackers (several of them, as
// nodes sharing the store) and records every event their hooks see. The
// tests of an optional ability (presence.RoomStore, presence.StateStore)
// run on a store that has it, found by type assertion, and are skipped on
// one that has not.
//
// # Time
//
// With Config.Synctest, each test runs in a testing/synctest bubble: time is
// fake and the suite's waits take no real time. Use it for stores whose
// clock is the process's own. A store whose clock lives elsewhere (a Redis
// server) runs in real time, with durations scaled by Config.Unit.
package storetest

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/vigilhq/vigil/presence"
)

// Config tells Run how to make and drive the store under test.
type Config struct {
	// New returns a fresh, empty store. It is called once per test, inside
	// the bubble when Synctest is set; register cleanup with t.Cleanup.
	New func(t *testing.T) presence.Store

	// Synctest runs every test in a testing/synctest bubble, with fake
	// time. Default: false (real time).
	Synctest bool

	// Unit scales every duration of the suite: TTL is 10 units, Grace 5,
	// SweepInterval 2. It must not exceed 500ms. Default: 100ms with
	// Synctest, 50ms without.
	Unit time.Duration

	// NewCapped returns a fresh, empty store that holds at most maxClients
	// clients (online ones plus offline ones remembered, forgetting the
	// one offline the longest to make room for a new one) and maxSessions
	// sessions (live and ending), across every Tracker sharing it, and
	// answers presence.ErrLimit past them, as store/memory and store/redis
	// do. Nil: the store has no caps, and the test of them is skipped.
	NewCapped func(t *testing.T, maxClients, maxSessions int) presence.Store
}

// Run runs the conformance suite as subtests of t.
func Run(t *testing.T, cfg Config) {
	if cfg.Unit == 0 {
		cfg.Unit = 50 * time.Millisecond
		if cfg.Synctest {
			cfg.Unit = 100 * time.Millisecond
		}
	}
	tests := []struct {
		name string
		fn   func(*env)
	}{
		{"OnlineThenOfflineAfterGrace", testOnlineOffline},
		{"ReconnectWithinGraceFiresNothing", testGraceReconnect},
		{"SeveralSessionsOneTransition", testSeveralSessions},
		{"ExpiryWithoutBeats", testExpiry},
		{"BeatsKeepSessionAlive", testBeatsKeepAlive},
		{"KickClientAndSession", testKick},
		{"KickSeenByOwningNode", testKickOtherNode},
		{"RestartClearsNodeSessions", testRestartCleanup},
		{"NodeLostWhenItStopsSweeping", testNodeLost},
		{"TouchReportsGoneSessions", testTouchGone},
		{"NewSessionKeepsLingeringOnes", testLingerBesideNew},
		{"Queries", testQueries},
		{"LastSeenFollowsBeats", testLastSeen},
		{"EndSetsLastSeenByReason", testEndLastSeen},
		{"LeaseDeadlines", testDeadlines},
		{"ListPaging", testListPaging},
		{"BadArguments", testBadArguments},
		{"ConcurrentNodesAlternate", testConcurrentNodes},
		{"MaxSessionsAcrossNodes", testMaxSessions},
		{"StoreCaps", testStoreCaps},
		{"RoomAddIsAtomic", testRoomAddAtomic},
		{"RoomJoinLeaveInOneSeq", testRoomJoinLeave},
		{"RoomReloadWithinGraceFiresNothing", testRoomGraceReload},
		{"RoomExpiryLeavesAtOnce", testRoomExpiry},
		{"RoomSeveralSessionsOneMembership", testRoomSeveralSessions},
		{"RoomMetadata", testRoomMeta},
		{"RoomJoinLeaveErrors", testRoomStoreCalls},
		{"RoomNodeLostAndRestart", testRoomNodeLost},
		{"RoomQueries", testRoomQueries},
		{"RoomMembersPaging", testRoomMembersPaging},
		{"RoomBadArguments", testRoomBadArguments},
		{"RoomCaps", testRoomCaps},
		{"StateSetActivity", testStateSetActivity},
		{"StateAdd", testStateAdd},
		{"StateRemoval", testStateRemoval},
		{"StateExpiry", testStateExpiry},
		{"StateTouch", testStateTouch},
		{"StateLastActive", testStateLastActive},
		{"StateQueries", testStateQueries},
		{"StateBadArguments", testStateBadArguments},
		{"StateTracker", testStateTracker},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if cfg.Synctest {
				synctest.Test(t, func(t *testing.T) { tc.fn(newEnv(t, cfg)) })
				return
			}
			tc.fn(newEnv(t, cfg))
		})
	}
}

// env is one test's store, trackers and event recorder.
type env struct {
	*testing.T
	cfg   Config
	store presence.Store
	u     time.Duration
	ttl   time.Duration
	grace time.Duration
	sweep time.Duration
	rec   *recorder
	ctx   context.Context
}

func newEnv(t *testing.T, cfg Config) *env {
	u := cfg.Unit
	return &env{
		T: t, cfg: cfg, store: cfg.New(t), u: u,
		ttl: 10 * u, grace: 5 * u, sweep: 2 * u,
		rec: &recorder{}, ctx: context.Background(),
	}
}

// tracker starts a node on the shared store with hooks that record events.
func (e *env) tracker(node string) *presence.Tracker {
	e.Helper()
	return e.trackerWith(presence.Config{Node: node})
}

// trackerWith is tracker with cfg, whose TTL, Grace and SweepInterval
// default to the suite's.
func (e *env) trackerWith(cfg presence.Config) *presence.Tracker {
	e.Helper()
	node := cfg.Node
	if cfg.TTL == 0 {
		cfg.TTL = e.ttl
	}
	if cfg.Grace == 0 {
		cfg.Grace = e.grace
	}
	if cfg.SweepInterval == 0 {
		cfg.SweepInterval = e.sweep
	}
	tr, err := presence.New(e.ctx, e.store, cfg)
	if err != nil {
		e.Fatalf("presence.New(%q): %v", node, err)
	}
	e.rec.listen(tr)
	e.Cleanup(func() {
		if err := tr.Close(context.Background()); err != nil {
			e.Errorf("Close(%q): %v", node, err)
		}
	})
	return tr
}

func (e *env) connect(tr *presence.Tracker, clientID string, opts presence.SessionOptions) *presence.Session {
	e.Helper()
	s, err := tr.Connect(e.ctx, clientID, opts)
	if err != nil {
		e.Fatalf("Connect(%q): %v", clientID, err)
	}
	return s
}

func (e *env) end(s *presence.Session, reason presence.Reason) {
	e.Helper()
	if err := s.End(e.ctx, reason); err != nil {
		e.Fatalf("End(%q): %v", s.ClientID(), err)
	}
}

// settle lets hooks and the trackers' goroutines catch up.
func (e *env) settle() {
	if e.cfg.Synctest {
		synctest.Wait()
		return
	}
	time.Sleep(e.u / 2)
}

// sleep lets d pass (fake time in a bubble), then settles.
func (e *env) sleep(d time.Duration) {
	time.Sleep(d)
	e.settle()
}

// waitFor polls cond until it holds, failing the test after within.
func (e *env) waitFor(within time.Duration, what string, cond func() bool) {
	e.Helper()
	deadline := time.Now().Add(within)
	for {
		if e.cfg.Synctest {
			synctest.Wait()
		}
		if cond() {
			return
		}
		if time.Now().After(deadline) {
			e.Fatalf("not within %v: %s", within, what)
		}
		time.Sleep(e.u / 10)
	}
}

// expect fails unless the events of clientID are exactly want, compared by
// transition and reason.
func (e *env) expect(clientID string, want ...string) {
	e.Helper()
	got := e.rec.kinds(clientID)
	if !slices.Equal(got, want) {
		e.Fatalf("events of %q = %v, want %v", clientID, got, want)
	}
}

// recorder keeps every event the hooks of every tracker see.
type recorder struct {
	mu     sync.Mutex
	events []presence.Event
}

func (r *recorder) hook(_ context.Context, ev presence.Event) {
	r.mu.Lock()
	r.events = append(r.events, ev)
	r.mu.Unlock()
}

// listen records every transition tr observes, rooms' included.
func (r *recorder) listen(tr *presence.Tracker) {
	tr.OnOnline(r.hook)
	tr.OnOffline(r.hook)
	tr.OnJoin("", r.hook)
	tr.OnLeave("", r.hook)
	tr.OnUpdate("", r.hook)
	tr.OnAway(r.hook)
	tr.OnBack(r.hook)
}

func (r *recorder) of(clientID string) []presence.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []presence.Event
	for _, ev := range r.events {
		if ev.ClientID == clientID {
			out = append(out, ev)
		}
	}
	return out
}

// kinds lists the events of clientID as "online/connect", "offline/closed",
// and for rooms "join/connect room", "leave/left room", "update/ room"...
func (r *recorder) kinds(clientID string) []string {
	return kinds(r.of(clientID))
}

func kinds(evs []presence.Event) []string {
	var out []string
	for _, ev := range evs {
		k := ev.Transition.String() + "/" + string(ev.Reason)
		if ev.Room != "" {
			k += " " + ev.Room
		}
		out = append(out, k)
	}
	return out
}

const (
	on         = "online/connect"
	offClosed  = "offline/closed"
	offExp     = "offline/expired"
	offKick    = "offline/kicked"
	offRestart = "offline/restart"
)

func testOnlineOffline(e *env) {
	tr := e.tracker("n1")
	connected := time.Now()
	s := e.connect(tr, "alice", presence.SessionOptions{})
	e.settle()
	e.expect("alice", on)
	ev := e.rec.of("alice")[0]
	if ev.Seq == 0 || ev.Node != "n1" || ev.SessionID != s.ID() || ev.Time.IsZero() {
		e.Fatalf("online event = %+v: want a Seq, Node n1, SessionID %q, Time set", ev, s.ID())
	}
	e.sleep(3 * e.u)
	e.end(s, presence.ReasonClosed)
	ended := time.Since(connected)
	e.sleep(e.grace - e.u)
	e.expect("alice", on) // still lingering
	if p, err := tr.Presence(e.ctx, "alice"); err != nil || !p.Online {
		e.Fatalf("Presence during grace = %+v, %v; want online", p, err)
	}
	e.waitFor(e.u+2*e.sweep+e.u, "offline after grace", func() bool { return len(e.rec.of("alice")) == 2 })
	e.expect("alice", on, offClosed)
	off := e.rec.of("alice")[1]
	if off.Seq != ev.Seq+1 {
		e.Errorf("offline Seq = %d, want %d", off.Seq, ev.Seq+1)
	}
	// OnlineFor runs from the Online to the end of the last session, not
	// through the Grace that followed.
	if off.OnlineFor < 3*e.u || off.OnlineFor > ended+e.u/10 {
		e.Errorf("OnlineFor = %v, want the %v from online to the session's end, without the grace %v", off.OnlineFor, ended, e.grace)
	}
	e.checkOnlineFor(ev, off)
	if off.LastSeen.Before(ev.Time) || off.LastSeen.After(off.Time) {
		e.Errorf("LastSeen %v not between online %v and offline %v", off.LastSeen, ev.Time, off.Time)
	}
	p, err := tr.Presence(e.ctx, "alice")
	if err != nil || p.Online || p.LastSeen.IsZero() {
		e.Fatalf("Presence after offline = %+v, %v; want offline with a last-seen time", p, err)
	}
	if n, err := tr.Count(e.ctx); err != nil || n != 0 {
		e.Fatalf("Count = %d, %v; want 0", n, err)
	}
}

func testGraceReconnect(e *env) {
	tr := e.tracker("n1")
	s := e.connect(tr, "bob", presence.SessionOptions{})
	e.end(s, presence.ReasonClosed)
	e.sleep(e.grace / 2)
	s2 := e.connect(tr, "bob", presence.SessionOptions{})
	for range 4 {
		e.sleep(e.ttl / 2)
		s2.Beat()
	}
	e.expect("bob", on)
	e.end(s2, presence.ReasonClosed)
	e.waitFor(e.grace+3*e.sweep, "offline after the second session", func() bool { return len(e.rec.of("bob")) == 2 })
	e.expect("bob", on, offClosed)

	// Same session ID coming back within grace (an HTTP-heartbeat tab that
	// reloads) revives the session.
	s3 := e.connect(tr, "bob", presence.SessionOptions{ID: "tab-1"})
	e.end(s3, presence.ReasonClosed)
	e.sleep(e.grace / 2)
	e.connect(tr, "bob", presence.SessionOptions{ID: "tab-1"})
	e.sleep(e.grace + 2*e.sweep)
	e.expect("bob", on, offClosed, on)
}

func testSeveralSessions(e *env) {
	a, b := e.tracker("n1"), e.tracker("n2")
	s1 := e.connect(a, "carol", presence.SessionOptions{})
	s2 := e.connect(b, "carol", presence.SessionOptions{})
	s3 := e.connect(a, "carol", presence.SessionOptions{})
	e.settle()
	e.expect("carol", on)
	if p, err := a.Presence(e.ctx, "carol"); err != nil || p.Sessions != 3 {
		e.Fatalf("Presence = %+v, %v; want 3 sessions", p, err)
	}
	e.end(s1, presence.ReasonClosed)
	e.end(s2, presence.ReasonExpired)
	// s3 beats, as a live client does: the wait is as long as a TTL, and
	// without beats s3 would expire in it on a slow machine.
	for range 2 {
		s3.Beat()
		e.sleep((e.grace + 2*e.sweep + e.u) / 2)
	}
	e.expect("carol", on)
	e.end(s3, presence.ReasonClosed)
	e.waitFor(e.grace+3*e.sweep, "offline after the last session", func() bool { return len(e.rec.of("carol")) == 2 })
	e.expect("carol", on, offClosed)
}

func testExpiry(e *env) {
	tr := e.tracker("n1")
	gone := make(chan presence.Reason, 1)
	e.connect(tr, "dave", presence.SessionOptions{OnGone: func(r presence.Reason) { gone <- r }})
	start := time.Now()
	e.sleep(e.ttl - e.u)
	e.expect("dave", on)
	e.waitFor(4*e.sweep, "offline by expiry", func() bool { return len(e.rec.of("dave")) == 2 })
	e.expect("dave", on, offExp)
	if d := time.Since(start); d < e.ttl {
		e.Errorf("offline after %v, before TTL %v", d, e.ttl)
	}
	// An expired session ended at its last beat (here, when it came
	// online): OnlineFor leaves out the TTL that passed after it.
	evs := e.rec.of("dave")
	if evs[1].OnlineFor > e.u {
		e.Errorf("OnlineFor = %v, want it to end at the last beat, not %v later", evs[1].OnlineFor, e.ttl)
	}
	e.checkOnlineFor(evs[0], evs[1])
	// The Tracker lets the owner know, so it can close the connection.
	e.waitFor(e.ttl, "OnGone of the expired session", func() bool { return len(gone) == 1 })
	if r := <-gone; r != presence.ReasonExpired {
		e.Errorf("OnGone reason = %q, want %q", r, presence.ReasonExpired)
	}
}

func testBeatsKeepAlive(e *env) {
	tr := e.tracker("n1")
	s := e.connect(tr, "erin", presence.SessionOptions{})
	// Irregular beats, each less than TTL after the previous one.
	for _, gap := range []time.Duration{e.ttl - e.u, e.u, e.ttl / 2, e.ttl - e.u, e.ttl - e.u} {
		time.Sleep(gap)
		s.Beat()
	}
	last := time.Now()
	e.settle()
	e.expect("erin", on)
	e.waitFor(e.ttl+4*e.sweep, "offline after the beats stop", func() bool { return len(e.rec.of("erin")) == 2 })
	e.expect("erin", on, offExp)
	if d := time.Since(last); d < e.ttl {
		e.Errorf("offline %v after the last beat, before TTL %v", d, e.ttl)
	}
}

func testKick(e *env) {
	tr := e.tracker("n1")
	var mu sync.Mutex
	var gone []string
	onGone := func(id string) func(presence.Reason) {
		return func(r presence.Reason) {
			mu.Lock()
			gone = append(gone, id+"/"+string(r))
			mu.Unlock()
		}
	}
	e.connect(tr, "frank", presence.SessionOptions{ID: "s1", OnGone: onGone("s1")})
	e.connect(tr, "frank", presence.SessionOptions{ID: "s2", OnGone: onGone("s2")})
	if err := tr.KickSession(e.ctx, "frank", "s1"); err != nil {
		e.Fatalf("KickSession: %v", err)
	}
	mu.Lock()
	if !slices.Equal(gone, []string{"s1/kicked"}) {
		e.Errorf("OnGone after KickSession = %v, want [s1/kicked]", gone)
	}
	mu.Unlock()
	e.sleep(e.grace + 2*e.sweep + e.u)
	e.expect("frank", on)
	if err := tr.Kick(e.ctx, "frank"); err != nil {
		e.Fatalf("Kick: %v", err)
	}
	e.waitFor(e.grace+3*e.sweep, "offline after kick", func() bool { return len(e.rec.of("frank")) == 2 })
	e.expect("frank", on, offKick)
	mu.Lock()
	if !slices.Equal(gone, []string{"s1/kicked", "s2/kicked"}) {
		e.Errorf("OnGone = %v, want both sessions kicked", gone)
	}
	mu.Unlock()
	if err := tr.Kick(e.ctx, "nobody"); !errors.Is(err, presence.ErrNotFound) {
		e.Errorf("Kick(unknown) = %v, want ErrNotFound", err)
	}
}

func testKickOtherNode(e *env) {
	a, b := e.tracker("n1"), e.tracker("n2")
	gone := make(chan presence.Reason, 1)
	s := e.connect(b, "gina", presence.SessionOptions{OnGone: func(r presence.Reason) { gone <- r }})
	if err := a.Kick(e.ctx, "gina"); err != nil {
		e.Fatalf("Kick from another node: %v", err)
	}
	s.Beat() // the owner learns when it next writes the session's beats
	e.waitFor(2*e.sweep, "OnGone on the owning node", func() bool { return len(gone) == 1 })
	if r := <-gone; r != presence.ReasonKicked {
		e.Errorf("OnGone reason = %q, want kicked", r)
	}
	e.waitFor(e.grace+3*e.sweep, "offline", func() bool { return len(e.rec.of("gina")) == 2 })
	e.expect("gina", on, offKick)
}

func testRestartCleanup(e *env) {
	// What a crashed incarnation of node n1 left behind, and a live session
	// of another node.
	long := presence.Lease{Node: "n1", TTL: time.Hour}
	for _, l := range []presence.Lease{
		{ClientID: "henry", SessionID: "old-1"},
		{ClientID: "iris", SessionID: "old-2"},
		{ClientID: "iris", SessionID: "live", Node: "n2"},
		{ClientID: "jack", SessionID: "old-3"},
	} {
		l.TTL = long.TTL
		if l.Node == "" {
			l.Node = long.Node
		}
		if _, err := e.store.Add(e.ctx, l); err != nil {
			e.Fatalf("Add(%+v): %v", l, err)
		}
	}
	tr := e.tracker("n1") // the restart
	// jack reconnects within grace: no flap.
	e.sleep(e.grace / 2)
	e.connect(tr, "jack", presence.SessionOptions{})
	e.waitFor(e.grace+3*e.sweep, "henry offline after restart", func() bool { return len(e.rec.of("henry")) == 1 })
	e.sleep(2 * e.sweep)
	e.expect("henry", offRestart)
	e.expect("iris") // still has a session on n2
	e.expect("jack")
	ps, err := tr.Lookup(e.ctx, []string{"henry", "iris", "jack"})
	if err != nil {
		e.Fatal(err)
	}
	if ps[0].Online || !ps[1].Online || !ps[2].Online {
		e.Fatalf("Lookup after restart = %+v; want henry offline, iris and jack online", ps)
	}
}

// testNodeLost pins down node leases (presence.NodeSweeper), at the
// Store's level so that no Tracker's timing takes part: a node that swept
// and then stopped (it died) has its sessions removed with
// ReasonNodeLost once their own leases run out, and not before; so has a
// node that died before its first sweep (its first Add gave it a lease).
// A session that stopped beating on a live node expires (ReasonExpired),
// as does any session a sweeper removes whose own lease had run out (it
// cannot tell who was silent). A store that is no NodeSweeper skips it.
func testNodeLost(e *env) {
	ns, ok := e.store.(presence.NodeSweeper)
	if !ok {
		e.Skip("the store is no presence.NodeSweeper: a dead node's sessions expire")
	}
	sweep := func(node string, ttl time.Duration) []string {
		e.Helper()
		evs, err := ns.SweepNode(e.ctx, presence.NodeLease{Node: node, TTL: ttl})
		if err != nil {
			e.Fatalf("SweepNode(%s): %v", node, err)
		}
		var out []string
		for _, ev := range evs {
			out = append(out, ev.ClientID+":"+ev.Transition.String()+"/"+string(ev.Reason))
		}
		slices.Sort(out)
		return out
	}
	sweep("alive", time.Hour)
	sweep("late", e.u) // sweeps again only once its lease ran out
	for _, l := range []presence.Lease{
		{ClientID: "olga", SessionID: "s", Node: "dead", TTL: e.ttl},
		{ClientID: "both", SessionID: "d", Node: "dead", TTL: e.ttl},
		{ClientID: "both", SessionID: "a", Node: "alive", TTL: time.Hour},
		{ClientID: "pat", SessionID: "s", Node: "alive", TTL: e.ttl},    // stops beating
		{ClientID: "quinn", SessionID: "s", Node: "silent", TTL: e.ttl}, // its node dies before it sweeps
		{ClientID: "rita", SessionID: "s", Node: "dead", TTL: 2 * e.ttl},
	} {
		if _, err := e.store.Add(e.ctx, l); err != nil {
			e.Fatalf("Add(%+v): %v", l, err)
		}
	}
	sweep("dead", e.u) // its last sweep: it dies

	e.sleep(e.ttl / 2)
	if got := sweep("alive", time.Hour); len(got) != 0 {
		e.Errorf("sweep after the node's lease ran out, before its sessions' = %v; want nothing", got)
	}
	e.sleep(e.ttl/2 + e.u)
	want := []string{"olga:offline/node_lost", "pat:offline/expired", "quinn:offline/node_lost"}
	if got := sweep("alive", time.Hour); !slices.Equal(got, want) {
		e.Errorf("sweep by a live node = %v, want %v", got, want)
	}
	if p := e.lookup("both"); !p.Online || p.Sessions != 1 {
		e.Errorf("both = %+v, want online with its session on the live node", p)
	}
	e.sleep(e.ttl)
	want = []string{"rita:offline/expired"}
	if got := sweep("late", e.u); !slices.Equal(got, want) {
		e.Errorf("sweep by a node whose own lease ran out = %v, want %v", got, want)
	}
}

func testTouchGone(e *env) {
	for _, l := range []presence.Lease{
		{ClientID: "kim", SessionID: "a", Node: "n1", TTL: time.Hour},
		{ClientID: "kim", SessionID: "b", Node: "n1", TTL: time.Hour},
	} {
		if _, err := e.store.Add(e.ctx, l); err != nil {
			e.Fatal(err)
		}
	}
	if _, err := e.store.End(e.ctx, presence.Ending{ClientID: "kim", SessionID: "b", Reason: presence.ReasonKicked, Grace: time.Hour}); err != nil {
		e.Fatal(err)
	}
	gone, err := e.store.Touch(e.ctx, []presence.Lease{
		{ClientID: "kim", SessionID: "a", Node: "n1", TTL: time.Hour},
		{ClientID: "kim", SessionID: "b", Node: "n1", TTL: time.Hour},
		{ClientID: "kim", SessionID: "never", Node: "n1", TTL: time.Hour},
		{ClientID: "nobody", SessionID: "x", Node: "n1", TTL: time.Hour},
	})
	if err != nil {
		e.Fatal(err)
	}
	want := []presence.Gone{{Index: 1, Reason: presence.ReasonKicked}, {Index: 2, Reason: presence.ReasonExpired}, {Index: 3, Reason: presence.ReasonExpired}}
	if !slices.Equal(gone, want) {
		e.Fatalf("Touch gone = %+v, want %+v", gone, want)
	}
	infos, err := e.store.Sessions(e.ctx, "kim")
	if err != nil || len(infos) != 2 {
		e.Fatalf("Sessions = %+v, %v; want 2", infos, err)
	}
	slices.SortFunc(infos, func(a, b presence.SessionInfo) int { return cmp.Compare(a.ID, b.ID) })
	if infos[0].Ending || !infos[1].Ending || infos[1].Reason != presence.ReasonKicked || infos[0].Node != "n1" {
		e.Fatalf("Sessions = %+v; want a live, b ending (kicked), both on n1", infos)
	}
}

// testLingerBesideNew pins down that a new session of a client leaves the
// client's ending sessions lingering: each keeps its own grace, reason and
// last-seen time, and keeps the client online through its grace even when
// the new session is gone first.
func testLingerBesideNew(e *env) {
	const id = "kate"
	add := func(sid string) []presence.Event {
		e.Helper()
		evs, err := e.store.Add(e.ctx, presence.Lease{ClientID: id, SessionID: sid, Node: "n1", TTL: time.Hour})
		if err != nil {
			e.Fatalf("Add(%s/%s): %v", id, sid, err)
		}
		return evs
	}
	add("old")
	e.sleep(e.u)
	ended := beat{at: e.timed(func() error {
		_, err := e.store.End(e.ctx, presence.Ending{ClientID: id, SessionID: "old", Reason: presence.ReasonClosed, Grace: e.grace})
		return err
	})}
	e.sleep(e.u)
	if evs := add("new"); len(evs) != 0 {
		e.Fatalf("Add of a new session beside a lingering one = %+v; want no event", evs)
	}
	if p := e.lookup(id); !p.Online || p.Sessions != 2 {
		e.Fatalf("Lookup(%s) = %+v; want online with 2 sessions, the lingering one included", id, p)
	}
	if s := e.session(id, "old"); !s.Ending || s.Reason != presence.ReasonClosed {
		e.Fatalf("session %s/old = %+v; want still ending, closed", id, s)
	}
	e.checkSeen("lingering session", e.session(id, "old").LastSeen, ended)
	gone, err := e.store.Touch(e.ctx, []presence.Lease{{ClientID: id, SessionID: "old", Node: "n1", TTL: time.Hour}})
	if want := []presence.Gone{{Index: 0, Reason: presence.ReasonClosed}}; err != nil || !slices.Equal(gone, want) {
		e.Fatalf("Touch of the lingering session = %+v, %v; want %+v", gone, err, want)
	}

	// The new session goes at once: the lingering one still holds the
	// client online until its own grace runs out.
	evs, err := e.store.End(e.ctx, presence.Ending{ClientID: id, SessionID: "new", Reason: presence.ReasonKicked})
	if err != nil || len(evs) != 0 {
		e.Fatalf("End of the new session = %+v, %v; want no event while the old one lingers", evs, err)
	}
	if p := e.lookup(id); !p.Online || p.Sessions != 1 {
		e.Fatalf("Lookup(%s) = %+v; want online with the lingering session", id, p)
	}
	var off []presence.Event
	e.waitFor(e.grace+2*e.sweep, "offline once the lingering session's grace ran out", func() bool {
		evs, err := e.store.Sweep(e.ctx)
		if err != nil {
			e.Fatal(err)
		}
		off = append(off, evs...)
		return len(off) > 0
	})
	if len(off) != 1 || off[0].ClientID != id || off[0].Transition != presence.Offline || off[0].Reason != presence.ReasonClosed || off[0].SessionID != "old" {
		e.Fatalf("Sweep = %+v; want one Offline of %s/old, closed", off, id)
	}
}

func testQueries(e *env) {
	tr := e.tracker("n1")
	e.connect(tr, "liam", presence.SessionOptions{ID: "one"})
	e.connect(tr, "liam", presence.SessionOptions{ID: "two"})
	m := e.connect(tr, "mia", presence.SessionOptions{})
	e.end(m, presence.ReasonExpired) // gone at once
	e.settle()
	ps, err := tr.Lookup(e.ctx, []string{"mia", "nobody", "liam"})
	if err != nil {
		e.Fatal(err)
	}
	if len(ps) != 3 || ps[0].ClientID != "mia" || ps[1].ClientID != "nobody" || ps[2].ClientID != "liam" {
		e.Fatalf("Lookup order = %+v", ps)
	}
	if ps[0].Online || ps[0].LastSeen.IsZero() || !ps[0].Since.IsZero() {
		e.Errorf("mia = %+v; want offline with LastSeen and no Since", ps[0])
	}
	if ps[1].Online || !ps[1].LastSeen.IsZero() {
		e.Errorf("nobody = %+v; want never seen", ps[1])
	}
	if !ps[2].Online || ps[2].Sessions != 2 || ps[2].Since.IsZero() {
		e.Errorf("liam = %+v; want online with 2 sessions and Since", ps[2])
	}
	if _, err := tr.Presence(e.ctx, "nobody"); !errors.Is(err, presence.ErrNotFound) {
		e.Errorf("Presence(unknown) = %v, want ErrNotFound", err)
	}
	infos, err := tr.Sessions(e.ctx, "liam")
	if err != nil || len(infos) != 2 {
		e.Fatalf("Sessions = %+v, %v", infos, err)
	}
	ids := []string{infos[0].ID, infos[1].ID}
	slices.Sort(ids)
	if !slices.Equal(ids, []string{"one", "two"}) || infos[0].Node != "n1" || infos[0].ClientID != "liam" {
		e.Errorf("Sessions = %+v; want one and two on n1", infos)
	}
	if _, err := tr.Sessions(e.ctx, "nobody"); !errors.Is(err, presence.ErrNotFound) {
		e.Errorf("Sessions(unknown) = %v, want ErrNotFound", err)
	}
	// An offline client the store remembers (mia has a LastSeen) is known,
	// with no sessions.
	if infos, err := e.store.Sessions(e.ctx, "mia"); err != nil || len(infos) != 0 {
		e.Errorf("store Sessions(offline client) = %+v, %v; want none and no error", infos, err)
	}
	if n, err := tr.Count(e.ctx); err != nil || n != 1 {
		e.Errorf("Count = %d, %v; want 1", n, err)
	}
}

// checkOnlineFor fails unless the Offline event off reports OnlineFor as
// the time from the Online event on to off's LastSeen: the last beat or the
// end of the client's last session.
func (e *env) checkOnlineFor(on, off presence.Event) {
	e.Helper()
	want := max(0, off.LastSeen.Sub(on.Time))
	if d := off.OnlineFor - want; d < -time.Millisecond || d > time.Millisecond {
		e.Errorf("OnlineFor = %v, want %v: from the online event (%v) to LastSeen (%v)", off.OnlineFor, want, on.Time, off.LastSeen)
	}
}

// when is when the test made one store call: between from and to on the
// test's clock (the same instant in a bubble).
type when struct{ from, to time.Time }

// timed makes one store call and reports when.
func (e *env) timed(call func() error) when {
	e.Helper()
	from := time.Now()
	if err := call(); err != nil {
		e.Fatal(err)
	}
	return when{from, time.Now()}
}

// beat is a last-seen time as a store should report it: age before a store
// call the test made.
type beat struct {
	at  when
	age time.Duration
}

// checkSeen fails unless got is the beat b, give or take a tenth of a unit:
// stores keep milliseconds, and a Redis server reads its own clock (the
// same machine's) a little before or after ours.
func (e *env) checkSeen(what string, got time.Time, b beat) {
	e.Helper()
	slack := e.u / 10
	lo, hi := b.at.from.Add(-b.age-slack), b.at.to.Add(-b.age+slack)
	if got.Before(lo) || got.After(hi) {
		e.Errorf("%s: LastSeen is %v from the beat %v before the store call, want within %v (the call took %v)",
			what, got.Sub(b.at.from.Add(-b.age)), b.age, slack, b.at.to.Sub(b.at.from))
	}
}

// session returns one session of clientID as Store.Sessions lists it.
func (e *env) session(clientID, sessionID string) presence.SessionInfo {
	e.Helper()
	infos, err := e.store.Sessions(e.ctx, clientID)
	if err != nil {
		e.Fatalf("Sessions(%q): %v", clientID, err)
	}
	for _, s := range infos {
		if s.ID == sessionID {
			return s
		}
	}
	e.Fatalf("Sessions(%q) = %+v; no session %q", clientID, infos, sessionID)
	return presence.SessionInfo{}
}

// lookup returns clientID's presence as Store.Lookup reports it.
func (e *env) lookup(clientID string) presence.Presence {
	e.Helper()
	ps, err := e.store.Lookup(e.ctx, []string{clientID})
	if err != nil || len(ps) != 1 {
		e.Fatalf("Lookup(%q) = %+v, %v", clientID, ps, err)
	}
	return ps[0]
}

// listed returns clientID's entry in a walk of List, failing if it is not
// there.
func (e *env) listed(clientID string) presence.Presence {
	e.Helper()
	cursor := ""
	for {
		page, err := e.store.List(e.ctx, cursor, 2)
		if err != nil {
			e.Fatalf("List: %v", err)
		}
		for _, p := range page.Clients {
			if p.ClientID == clientID {
				return p
			}
		}
		if cursor = page.Next; cursor == "" {
			e.Fatalf("List has no %q", clientID)
		}
	}
}

// expectSeen checks the LastSeen of one session of clientID against
// session, and the client's (online), as Lookup and List report it, against
// client.
func (e *env) expectSeen(clientID, sessionID string, session, client beat) {
	e.Helper()
	e.checkSeen(fmt.Sprintf("session %s/%s", clientID, sessionID), e.session(clientID, sessionID).LastSeen, session)
	e.checkSeen("client "+clientID, e.lookup(clientID).LastSeen, client)
	e.checkSeen("listed client "+clientID, e.listed(clientID).LastSeen, client)
}

// testLastSeen pins down the last-seen times of Lease.Age: a store reports
// now-Age of each session's latest beat, whatever TTL comes with it, and the
// latest of its sessions' for the client; an older beat moves nothing back,
// nor does a beat of a session that ended.
func testLastSeen(e *env) {
	const id = "nina"
	// lease is a beat age old from a caller whose leases run total past
	// the beat: the Tracker always writes TTL+Age = its TTL+SweepInterval.
	lease := func(sid string, age, total time.Duration) presence.Lease {
		return presence.Lease{ClientID: id, SessionID: sid, Node: "n1", TTL: total - age, Age: age}
	}
	touch := func(leases ...presence.Lease) when {
		e.Helper()
		return e.timed(func() error {
			gone, err := e.store.Touch(e.ctx, leases)
			if err == nil && len(gone) > 0 {
				err = fmt.Errorf("touch: gone %+v, want none", gone)
			}
			return err
		})
	}

	var evs []presence.Event
	a0 := beat{at: e.timed(func() (err error) {
		evs, err = e.store.Add(e.ctx, lease("a", 0, e.ttl))
		return err
	})}
	if len(evs) != 1 || evs[0].Transition != presence.Online {
		e.Fatalf("Add = %+v; want one Online", evs)
	}
	e.checkSeen("Online event", evs[0].LastSeen, a0)
	e.expectSeen(id, "a", a0, a0)
	b0 := beat{at: e.timed(func() error {
		_, err := e.store.Add(e.ctx, lease("b", 0, e.ttl))
		return err
	})}
	e.expectSeen(id, "b", b0, b0)

	// Times below in units after the Adds: a beat at 1 written at 4.
	e.sleep(4 * e.u)
	a1 := beat{touch(lease("a", 3*e.u, e.ttl)), 3 * e.u}
	e.expectSeen(id, "a", a1, a1)
	e.expectSeen(id, "b", b0, a1)

	// Written at 6: b's beat at 5, then a's at 4. Each session keeps its
	// own; the client the latest of them, not the latest written.
	e.sleep(2 * e.u)
	b1 := beat{touch(lease("b", e.u, e.ttl)), e.u}
	e.expectSeen(id, "b", b1, b1)
	e.expectSeen(id, "a", a1, b1)
	a2 := beat{touch(lease("a", 2*e.u, e.ttl)), 2 * e.u}
	e.expectSeen(id, "a", a2, b1)
	e.expectSeen(id, "b", b1, b1)

	// Beats older than those written (a write delayed or reordered) move
	// nothing back.
	touch(lease("a", 4*e.u, e.ttl), lease("b", 3*e.u, e.ttl))
	e.expectSeen(id, "a", a2, b1)
	e.expectSeen(id, "b", b1, b1)

	// Written at 8 by callers with other settings (TTL+Age shorter, then
	// longer, than the Add's): a's beat at 7, b's at 6. The last-seen time
	// is still now-Age, not a time derived from the lease's deadline.
	e.sleep(2 * e.u)
	a3 := beat{touch(lease("a", e.u, 3*e.u)), e.u}
	b2 := beat{touch(lease("b", 2*e.u, 2*e.ttl)), 2 * e.u}
	e.expectSeen(id, "a", a3, a3)
	e.expectSeen(id, "b", b2, a3)
	// Again a unit later with the same shorter lease, which ends before
	// the one the store holds: still now-Age (a store that keeps the
	// longer deadline must not read the beat back from it).
	e.sleep(e.u)
	a4 := beat{touch(lease("a", e.u, 3*e.u)), e.u}
	e.expectSeen(id, "a", a4, a4)

	// A session that ended unseen (Reason.Unseen: expired, as here) keeps
	// its latest beat as its last-seen time, and so does its client
	// (Store.End; testEndLastSeen tries every kind of reason).
	off, err := e.store.End(e.ctx, presence.Ending{ClientID: id, Reason: presence.ReasonExpired})
	if err != nil || len(off) != 1 || off[0].Transition != presence.Offline || off[0].Reason != presence.ReasonExpired {
		e.Fatalf("End(%s, expired) = %+v, %v; want one Offline, expired", id, off, err)
	}
	e.checkSeen("Offline event", off[0].LastSeen, a4)
	e.sleep(e.u)
	if p := e.lookup(id); p.Online {
		e.Errorf("Lookup(%s) after End = %+v; want offline", id, p)
	}
	e.checkSeen("client "+id+" after End", e.lookup(id).LastSeen, a4)

	// A session ended with grace reports its end time while it lingers,
	// even past a beat of it, which the store reports gone and ignores.
	// Once the grace runs out, the client's LastSeen is still the end
	// time, not when the Sweep took it offline.
	const id2 = "omar"
	if _, err := e.store.Add(e.ctx, presence.Lease{ClientID: id2, SessionID: "c", Node: "n1", TTL: e.ttl}); err != nil {
		e.Fatal(err)
	}
	e.sleep(2 * e.u)
	ended := beat{at: e.timed(func() error {
		_, err := e.store.End(e.ctx, presence.Ending{ClientID: id2, SessionID: "c", Reason: presence.ReasonClosed, Grace: e.grace})
		return err
	})}
	e.expectSeen(id2, "c", ended, ended)
	e.sleep(e.u)
	gone, err := e.store.Touch(e.ctx, []presence.Lease{{ClientID: id2, SessionID: "c", Node: "n1", TTL: e.ttl}})
	if want := []presence.Gone{{Index: 0, Reason: presence.ReasonClosed}}; err != nil || !slices.Equal(gone, want) {
		e.Fatalf("Touch of an ending session = %+v, %v; want %+v", gone, err, want)
	}
	if s := e.session(id2, "c"); !s.Ending || s.Reason != presence.ReasonClosed {
		e.Errorf("session %s/c = %+v; want ending, closed", id2, s)
	}
	e.expectSeen(id2, "c", ended, ended)
	e.sleep(e.grace)
	swept, err := e.store.Sweep(e.ctx)
	if err != nil {
		e.Fatal(err)
	}
	i := slices.IndexFunc(swept, func(ev presence.Event) bool { return ev.ClientID == id2 })
	if i < 0 || swept[i].Transition != presence.Offline || swept[i].Reason != presence.ReasonClosed {
		e.Fatalf("Sweep after grace = %+v; want %s offline, closed", swept, id2)
	}
	e.checkSeen("Offline event", swept[i].LastSeen, ended)
	e.checkSeen("client "+id2+" after Sweep", e.lookup(id2).LastSeen, ended)

	// A client down to one of its sessions: that session's beats are its
	// client's, whichever session went first.
	const id3 = "pia"
	for _, sid := range []string{"x", "y", "z"} {
		if _, err := e.store.Add(e.ctx, presence.Lease{ClientID: id3, SessionID: sid, Node: "n1", TTL: e.ttl}); err != nil {
			e.Fatal(err)
		}
	}
	for _, sid := range []string{"x", "z"} {
		if _, err := e.store.End(e.ctx, presence.Ending{ClientID: id3, SessionID: sid, Reason: presence.ReasonClosed}); err != nil {
			e.Fatal(err)
		}
	}
	e.sleep(2 * e.u)
	y := beat{touch(presence.Lease{ClientID: id3, SessionID: "y", Node: "n1", TTL: e.ttl - e.u, Age: e.u}), e.u}
	if p := e.lookup(id3); !p.Online || p.Sessions != 1 {
		e.Errorf("Lookup(%s) = %+v; want online with one session", id3, p)
	}
	e.expectSeen(id3, "y", y, y)
}

// testEndLastSeen pins down the last-seen times End writes (Store.End): a
// session that ends for a Reason.Unseen keeps its last beat, one that ends
// for any other reason (an application's own, or none, which is
// ReasonClosed) gets its end time; its client's LastSeen and the Offline
// event's follow. With and without grace, selecting by session, client or
// node.
func testEndLastSeen(e *env) {
	const age = 3 // units between the beat and the Add that writes it
	// A store may hold no time before its own start (store/memory's clock
	// starts there): let the beats come after it.
	e.sleep((age + 1) * e.u)
	for i, tc := range []struct {
		reason presence.Reason
		want   presence.Reason // as recorded and reported
	}{
		{presence.ReasonExpired, presence.ReasonExpired},
		{presence.ReasonNodeLost, presence.ReasonNodeLost},
		{presence.ReasonRestart, presence.ReasonRestart},
		{presence.ReasonClosed, presence.ReasonClosed},
		{presence.ReasonKicked, presence.ReasonKicked},
		{presence.ReasonLeft, presence.ReasonLeft},
		{"app_defined", "app_defined"},
		{"", presence.ReasonClosed},
	} {
		for _, grace := range []time.Duration{0, e.grace} {
			for _, by := range []string{"session", "client", "node"} {
				id := fmt.Sprintf("end%d-%s-%d", i, by, grace/e.u)
				node := "n-" + id
				added := beat{at: e.timed(func() error {
					_, err := e.store.Add(e.ctx, presence.Lease{ClientID: id, SessionID: "s", Node: node, TTL: e.ttl, Age: age * e.u})
					return err
				}), age: age * e.u}
				sel := presence.Ending{ClientID: id, SessionID: "s", Reason: tc.reason, Grace: grace}
				switch by {
				case "client":
					sel.SessionID = ""
				case "node":
					sel.ClientID, sel.SessionID, sel.Node = "", "", node
				}
				var evs []presence.Event
				ended := beat{at: e.timed(func() (err error) {
					evs, err = e.store.End(e.ctx, sel)
					return err
				})}
				want := ended
				if tc.reason.Unseen() {
					want = added
				}
				what := fmt.Sprintf("End(%+v)", sel)
				if grace > 0 {
					if len(evs) != 0 {
						e.Errorf("%s = %+v; want no event while the session lingers", what, evs)
					}
					s := e.session(id, "s")
					if !s.Ending || s.Reason != tc.want {
						e.Errorf("%s: session = %+v; want ending, reason %q", what, s, tc.want)
					}
					e.checkSeen(what+": session", s.LastSeen, want)
				} else {
					if len(evs) != 1 || evs[0].Transition != presence.Offline || evs[0].Reason != tc.want {
						e.Fatalf("%s = %+v; want one Offline, reason %q", what, evs, tc.want)
					}
					e.checkSeen(what+": Offline event", evs[0].LastSeen, want)
				}
				e.checkSeen(what+": client", e.lookup(id).LastSeen, want)
			}
		}
	}
}

// testDeadlines pins down how leases move a session's deadline: Touch never
// brings it earlier, while Add of an ending session revives it with the
// lease's deadline, its grace forgotten.
func testDeadlines(e *env) {
	lease := func(id string, ttl time.Duration) presence.Lease {
		return presence.Lease{ClientID: id, SessionID: "s", Node: "n1", TTL: ttl}
	}
	for _, id := range []string{"long", "revived"} {
		if _, err := e.store.Add(e.ctx, lease(id, e.ttl)); err != nil {
			e.Fatal(err)
		}
	}
	// A shorter lease, as from a caller with other settings.
	if gone, err := e.store.Touch(e.ctx, []presence.Lease{lease("long", e.u)}); err != nil || len(gone) != 0 {
		e.Fatalf("Touch = %+v, %v; want nothing gone", gone, err)
	}
	if _, err := e.store.End(e.ctx, presence.Ending{ClientID: "revived", SessionID: "s", Reason: presence.ReasonClosed, Grace: time.Hour}); err != nil {
		e.Fatal(err)
	}
	if evs, err := e.store.Add(e.ctx, lease("revived", 2*e.u)); err != nil || len(evs) != 0 {
		e.Fatalf("Add of an ending session = %+v, %v; want no event", evs, err)
	}
	if s := e.session("revived", "s"); s.Ending {
		e.Errorf("revived session = %+v; want live", s)
	}
	e.sleep(4 * e.u) // past both short leases, well before the long ones
	swept, err := e.store.Sweep(e.ctx)
	if err != nil {
		e.Fatal(err)
	}
	var got []string
	for _, ev := range swept {
		got = append(got, ev.ClientID+":"+ev.Transition.String()+"/"+string(ev.Reason))
	}
	if want := []string{"revived:offline/expired"}; !slices.Equal(got, want) {
		e.Errorf("Sweep = %v, want %v: the shorter Touch keeps the longer deadline, the revived session expires by its lease", got, want)
	}
	if s := e.session("long", "s"); s.Ending {
		e.Errorf("session long/s = %+v; want live", s)
	}
}

func testListPaging(e *env) {
	// Paging, not expiry: a TTL that 150 Connects on a slow machine (a
	// Cluster, -race) cannot outlast, since these sessions never beat.
	tr := e.trackerWith(presence.Config{Node: "n1", TTL: 100 * e.ttl})
	want := map[string]bool{}
	var sessions []*presence.Session
	for i := range 150 {
		id := fmt.Sprintf("user-%03d", i)
		sessions = append(sessions, e.connect(tr, id, presence.SessionOptions{}))
		want[id] = true
	}
	// Some go offline: they must not be listed.
	for i := 0; i < 150; i += 10 {
		e.end(sessions[i], presence.ReasonExpired)
		delete(want, sessions[i].ClientID())
	}
	seen := map[string]int{}
	cursor, pages := "", 0
	for {
		page, err := tr.List(e.ctx, cursor, 7)
		if err != nil {
			e.Fatalf("List(%q): %v", cursor, err)
		}
		if len(page.Clients) > 7 {
			e.Fatalf("page of %d, limit 7", len(page.Clients))
		}
		for _, p := range page.Clients {
			seen[p.ClientID]++
			if !p.Online || p.Sessions != 1 {
				e.Errorf("listed %+v; want online with one session", p)
			}
		}
		pages++
		if page.Next == "" {
			break
		}
		if pages > 150 {
			e.Fatal("List never ends")
		}
		cursor = page.Next
	}
	for id := range want {
		if seen[id] != 1 {
			e.Errorf("%s listed %d times, want once", id, seen[id])
		}
	}
	for id := range seen {
		if !want[id] {
			e.Errorf("%s listed but offline", id)
		}
	}
	if n, err := tr.Count(e.ctx); err != nil || n != len(want) {
		e.Errorf("Count = %d, %v; want %d", n, err, len(want))
	}
}

func testBadArguments(e *env) {
	tr := e.tracker("n1")
	long := string(make([]byte, presence.MaxIDLen+1))
	for _, id := range []string{"", "a\x00b", "tab\there", "\xff\xfe", long} {
		if _, err := tr.Connect(e.ctx, id, presence.SessionOptions{}); !errors.Is(err, presence.ErrInvalidID) {
			e.Errorf("Connect(%q) = %v, want ErrInvalidID", id, err)
		}
		if _, err := e.store.Add(e.ctx, presence.Lease{ClientID: id, SessionID: "s", Node: "n1", TTL: time.Second}); !errors.Is(err, presence.ErrInvalidID) {
			e.Errorf("store Add(client %q) = %v, want ErrInvalidID", id, err)
		}
		if _, err := e.store.Lookup(e.ctx, []string{"ok", id}); !errors.Is(err, presence.ErrInvalidID) {
			e.Errorf("store Lookup(%q) = %v, want ErrInvalidID", id, err)
		}
		if _, err := e.store.Sessions(e.ctx, id); !errors.Is(err, presence.ErrInvalidID) {
			e.Errorf("store Sessions(%q) = %v, want ErrInvalidID", id, err)
		}
	}
	if _, err := tr.Connect(e.ctx, "ok", presence.SessionOptions{ID: "bad\nid"}); !errors.Is(err, presence.ErrInvalidID) {
		e.Errorf("Connect with a bad session ID = %v, want ErrInvalidID", err)
	}
	for _, l := range []presence.Lease{
		{ClientID: "ok", SessionID: "s", Node: "n1", TTL: 0},
		{ClientID: "ok", SessionID: "s", Node: "n1", TTL: -time.Second},
		{ClientID: "ok", SessionID: "s", Node: "n1", TTL: time.Second, Age: -time.Second},
	} {
		if _, err := e.store.Add(e.ctx, l); !errors.Is(err, presence.ErrInvalidArgument) {
			e.Errorf("store Add(%+v) = %v, want ErrInvalidArgument", l, err)
		}
		if _, err := e.store.Touch(e.ctx, []presence.Lease{l}); !errors.Is(err, presence.ErrInvalidArgument) {
			e.Errorf("store Touch(%+v) = %v, want ErrInvalidArgument", l, err)
		}
	}
	for _, en := range []presence.Ending{{}, {SessionID: "s"}, {Reason: presence.ReasonClosed}} {
		if _, err := e.store.End(e.ctx, en); !errors.Is(err, presence.ErrInvalidArgument) {
			e.Errorf("store End(%+v) = %v, want ErrInvalidArgument", en, err)
		}
	}
	if _, err := e.store.End(e.ctx, presence.Ending{ClientID: "ghost", Reason: presence.ReasonClosed}); !errors.Is(err, presence.ErrNotFound) {
		e.Errorf("store End(unknown client) = %v, want ErrNotFound", err)
	}
	if _, err := e.store.End(e.ctx, presence.Ending{Node: "no-such-node"}); !errors.Is(err, presence.ErrNotFound) {
		e.Errorf("store End(unknown node) = %v, want ErrNotFound", err)
	}
	for _, limit := range []int{0, -1} {
		if _, err := e.store.List(e.ctx, "", limit); !errors.Is(err, presence.ErrInvalidArgument) {
			e.Errorf("store List(limit %d) = %v, want ErrInvalidArgument", limit, err)
		}
	}
	for _, cursor := range []string{"!!!", "\x00", "bm90IGEgY3Vyc29y"} {
		if _, err := e.store.List(e.ctx, cursor, 10); !errors.Is(err, presence.ErrInvalidArgument) {
			e.Errorf("store List(cursor %q) = %v, want ErrInvalidArgument", cursor, err)
		}
	}
	// Nothing above disturbed the store.
	if n, err := e.store.Count(e.ctx); err != nil || n != 0 {
		e.Errorf("Count after bad calls = %d, %v; want 0", n, err)
	}
}

// testConcurrentNodes churns sessions of a few clients from many goroutines
// on four nodes and checks that, per client, the events of all nodes
// together follow one Seq with no gap and no duplicate, and make sense in
// that order: Online and Offline alternate; on a RoomStore, where the
// sessions also join, leave and update rooms, each room's Join and Leave
// alternate, between the client's Online and its Offline, and Updates come
// only while the client is in the room; on a StateStore, where sessions
// open away or active and report both, Away and Back alternate between the
// client's Online and its Offline.
func testConcurrentNodes(e *env) {
	const (
		nodes      = 4
		goroutines = 64
		clients    = 12
		rounds     = 25
	)
	_, withRooms := e.store.(presence.RoomStore)
	_, withStates := e.store.(presence.StateStore)
	roomNames := []string{"r0", "r1", "r2"}
	trs := make([]*presence.Tracker, nodes)
	for i := range trs {
		trs[i] = e.tracker(fmt.Sprintf("node-%d", i))
	}
	// Per node, the order in which its hooks saw each client's events.
	perNode := make([]*recorder, nodes)
	for i, tr := range trs {
		perNode[i] = &recorder{}
		perNode[i].listen(tr)
	}
	// A room call may race with a Kick from another goroutine.
	check := func(what string, err error) {
		if err != nil && !errors.Is(err, presence.ErrNotFound) {
			e.Errorf("%s: %v", what, err)
		}
	}
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(g), 7))
			for range rounds {
				tr := trs[r.IntN(nodes)]
				id := fmt.Sprintf("c%d", r.IntN(clients))
				var opts presence.SessionOptions
				if withRooms {
					for _, room := range roomNames {
						if r.IntN(2) == 0 {
							opts.Rooms = append(opts.Rooms, room)
						}
					}
					if r.IntN(2) == 0 {
						opts.Meta = []byte(fmt.Sprintf(`{"g":%d}`, g))
					}
				}
				if withStates && r.IntN(3) == 0 {
					opts.Activity = presence.ActivityAway
				}
				s, err := tr.Connect(e.ctx, id, opts)
				if err != nil {
					e.Errorf("Connect: %v", err)
					return
				}
				time.Sleep(time.Duration(r.IntN(int(e.grace))))
				if withStates {
					for range r.IntN(3) {
						a := presence.ActivityActive
						if r.IntN(2) == 0 {
							a = presence.ActivityAway
						}
						check("SetActivity", s.SetActivity(e.ctx, a, 0))
						time.Sleep(time.Duration(r.IntN(int(e.u / 2))))
					}
				}
				if withRooms {
					room := roomNames[r.IntN(len(roomNames))]
					switch r.IntN(3) {
					case 0:
						check("Join", s.Join(e.ctx, room))
					case 1:
						check("SetMeta", s.SetMeta(e.ctx, []byte(fmt.Sprintf(`{"g":%d,"r":%d}`, g, r.IntN(3)))))
					default:
						check("Leave", s.Leave(e.ctx, room))
					}
					time.Sleep(time.Duration(r.IntN(int(e.u))))
				}
				switch r.IntN(10) {
				case 0:
					_ = tr.Kick(e.ctx, id) // may race with another kick: ErrNotFound is fine
				case 1, 2:
					err = s.End(e.ctx, presence.ReasonExpired)
				default:
					s.Beat()
					err = s.End(e.ctx, presence.ReasonClosed)
				}
				if err != nil {
					e.Errorf("End: %v", err)
				}
			}
		}()
	}
	wg.Wait()
	e.waitFor(e.grace+4*e.sweep+e.ttl, "every client offline", func() bool {
		n, err := trs[0].Count(e.ctx)
		return err == nil && n == 0
	})
	e.sleep(2 * e.sweep)

	for c := range clients {
		id := fmt.Sprintf("c%d", c)
		evs := e.rec.of(id)
		slices.SortFunc(evs, func(a, b presence.Event) int { return cmp.Compare(a.Seq, b.Seq) })
		if len(evs) == 0 {
			continue
		}
		if err := checkSequence(evs); err != nil {
			e.Fatalf("client %s: %v (all: %v)", id, err, seqs(evs))
		}
		for n, rec := range perNode {
			local := rec.of(id)
			if !slices.IsSortedFunc(local, func(a, b presence.Event) int { return cmp.Compare(a.Seq, b.Seq) }) {
				e.Errorf("node %d delivered %s's events out of order: %v", n, id, seqs(local))
			}
		}
	}
	if withStates {
		var aways, backs int
		for c := range clients {
			for _, ev := range e.rec.of(fmt.Sprintf("c%d", c)) {
				switch ev.Transition {
				case presence.Away:
					aways++
				case presence.Back:
					backs++
				}
			}
		}
		if aways == 0 || backs == 0 {
			e.Errorf("%d Aways and %d Backs in the whole run; want some of each", aways, backs)
		}
	}
	if withRooms {
		for _, room := range roomNames {
			if n, err := trs[0].RoomCount(e.ctx, room); err != nil || n != 0 {
				e.Errorf("RoomCount(%s) = %d, %v after every client went offline; want 0", room, n, err)
			}
		}
	}
}

// checkSequence checks one client's events, sorted by Seq, from its first
// Online to its last Offline: consecutive Seqs, Online and Offline
// alternating, each room's Join and Leave alternating while the client is
// online, Updates only in a room it is in, no room left at its Offline,
// Away and Back alternating while it is online, starting with Away.
func checkSequence(evs []presence.Event) error {
	online, away := false, false
	in := map[string]bool{}
	for i, ev := range evs {
		if want := evs[0].Seq + uint64(i); ev.Seq != want {
			return fmt.Errorf("event %d (%v) has Seq %d, want %d: a gap or a duplicate", i, ev.Transition, ev.Seq, want)
		}
		ok := true
		switch ev.Transition {
		case presence.Online:
			ok, online, away = !online, true, false
		case presence.Offline:
			ok, online, away = online && len(in) == 0, false, false
		case presence.Away:
			ok, away = online && !away, true
		case presence.Back:
			ok, away = online && away, false
		case presence.Join:
			ok, in[ev.Room] = online && !in[ev.Room], true
		case presence.Leave:
			ok = online && in[ev.Room]
			delete(in, ev.Room)
		case presence.Update:
			ok = online && in[ev.Room]
		}
		if !ok {
			return fmt.Errorf("event %d (Seq %d) is %v %q while online=%v, away=%v, in rooms %v", i, ev.Seq, ev.Transition, ev.Room, online, away, in)
		}
	}
	if online {
		return errors.New("ends online")
	}
	return nil
}

// testMaxSessions races nodes opening sessions for one client under
// Config.MaxSessionsPerClient: exactly the cap are recorded, across nodes,
// the others fail with ErrTooManySessions and leave no trace, and ending
// sessions (lingering) do not count.
func testMaxSessions(e *env) {
	const (
		limit   = 3
		nodes   = 4
		perNode = 4
		id      = "capped"
	)
	trs := make([]*presence.Tracker, nodes)
	for i := range trs {
		trs[i] = e.trackerWith(presence.Config{Node: fmt.Sprintf("cap-node-%d", i), MaxSessionsPerClient: limit})
	}
	var (
		mu      sync.Mutex
		opened  []*presence.Session
		refused int
		wg      sync.WaitGroup
	)
	for _, tr := range trs {
		for range perNode {
			wg.Add(1)
			go func() {
				defer wg.Done()
				s, err := tr.Connect(e.ctx, id, presence.SessionOptions{})
				mu.Lock()
				defer mu.Unlock()
				switch {
				case err == nil:
					opened = append(opened, s)
				case errors.Is(err, presence.ErrTooManySessions):
					refused++
				default:
					e.Errorf("Connect: %v, want nil or ErrTooManySessions", err)
				}
			}()
		}
	}
	wg.Wait()
	if len(opened) != limit || refused != nodes*perNode-limit {
		e.Fatalf("%d opened, %d refused; want %d and %d", len(opened), refused, limit, nodes*perNode-limit)
	}
	stored := func() []string {
		e.Helper()
		infos, err := e.store.Sessions(e.ctx, id)
		if err != nil {
			e.Fatalf("Sessions: %v", err)
		}
		var ids []string
		for _, in := range infos {
			if !in.Ending {
				ids = append(ids, in.ID)
			}
		}
		slices.Sort(ids)
		return ids
	}
	var want []string
	for _, s := range opened {
		want = append(want, s.ID())
	}
	slices.Sort(want)
	if got := stored(); !slices.Equal(got, want) {
		e.Fatalf("live sessions in the Store = %v, want the opened ones %v", got, want)
	}
	if p := e.lookup(id); p.Sessions != limit {
		e.Fatalf("Lookup Sessions = %d, want %d", p.Sessions, limit)
	}
	e.settle()
	e.expect(id, "online/connect")

	// An ending session lingers but no longer counts: one more may open,
	// and then the cap holds again.
	e.end(opened[0], presence.ReasonClosed)
	s := e.connect(trs[1], id, presence.SessionOptions{})
	if _, err := trs[2].Connect(e.ctx, id, presence.SessionOptions{}); !errors.Is(err, presence.ErrTooManySessions) {
		e.Fatalf("Connect over the cap after a replacement = %v, want ErrTooManySessions", err)
	}
	if got := len(stored()); got != limit {
		e.Fatalf("%d live sessions after the replacement, want %d", got, limit)
	}
	// The Store holds the one that was refused nowhere.
	if p := e.lookup(id); p.Sessions != limit+1 {
		e.Fatalf("Lookup Sessions = %d, want %d (one lingering)", p.Sessions, limit+1)
	}
	// Reviving a session the Store holds is never refused.
	if _, err := e.store.Add(e.ctx, presence.Lease{ClientID: id, SessionID: s.ID(), Node: "cap-node-1", TTL: e.ttl, MaxSessions: 1}); err != nil {
		e.Fatalf("Add of a held session under a lower cap = %v, want nil", err)
	}
}

// testStoreCaps pins down the caps of Config.NewCapped, over two nodes: a
// new client takes the place of the one offline the longest; with every
// client online, or every session taken, a new one is refused with
// ErrLimit (not ErrTooManySessions) and nothing is written; a session the
// store holds is always refreshed; an ending session counts until it is
// gone.
func testStoreCaps(e *env) {
	if e.cfg.NewCapped == nil {
		e.Skip("storetest.Config.NewCapped is nil: no caps to test")
	}
	const maxClients, maxSessions = 3, 4
	e.store = e.cfg.NewCapped(e.T, maxClients, maxSessions)
	trs := []*presence.Tracker{e.tracker("n1"), e.tracker("n2")}
	refused := func(node int, id string) {
		e.Helper()
		_, err := trs[node].Connect(e.ctx, id, presence.SessionOptions{})
		if !errors.Is(err, presence.ErrLimit) || errors.Is(err, presence.ErrTooManySessions) {
			e.Fatalf("Connect(%q) past the caps = %v, want ErrLimit, not ErrTooManySessions", id, err)
		}
	}
	offline := func(id string) {
		e.Helper()
		e.waitFor(e.grace+3*e.sweep, id+" offline", func() bool { return len(e.rec.of(id)) == 2 })
	}
	remembered := func(want bool, ids ...string) {
		e.Helper()
		for _, id := range ids {
			if got := !e.lookup(id).LastSeen.IsZero(); got != want {
				e.Fatalf("Lookup(%q) remembered = %v, want %v", id, got, want)
			}
			if _, err := e.store.Sessions(e.ctx, id); errors.Is(err, presence.ErrNotFound) == want {
				e.Fatalf("Sessions(%q) = %v; remembered: %v", id, err, want)
			}
		}
	}

	// Three clients, gone offline in turn: the Store is full of clients it
	// remembers. (After a second: a store may keep the record of a client
	// made within the current second, as store/redis does, so that its
	// Seqs, which start from the second, never repeat.)
	for i, id := range []string{"ann", "bob", "cat"} {
		e.end(e.connect(trs[i%2], id, presence.SessionOptions{}), presence.ReasonClosed)
		offline(id)
		e.sleep(e.u)
	}
	e.sleep(time.Second)

	// Each new client takes the place of the one offline the longest.
	dan := e.connect(trs[0], "dan", presence.SessionOptions{})
	remembered(false, "ann")
	remembered(true, "bob", "cat")
	eve := e.connect(trs[1], "eve", presence.SessionOptions{})
	remembered(false, "bob")
	remembered(true, "cat")
	fay := e.connect(trs[0], "fay", presence.SessionOptions{})
	remembered(false, "cat")

	// Every client online: a new one is refused, and nothing is written.
	refused(1, "gus")
	remembered(false, "gus")
	if n, err := e.store.Count(e.ctx); err != nil || n != maxClients {
		e.Fatalf("Count = %d, %v after a refusal; want %d", n, err, maxClients)
	}
	// Known clients may open sessions up to MaxSessions, on any node.
	dan2 := e.connect(trs[1], "dan", presence.SessionOptions{})
	refused(0, "eve")
	if p := e.lookup("eve"); p.Sessions != 1 {
		e.Fatalf("Lookup(eve).Sessions = %d after a refusal, want 1", p.Sessions)
	}
	// A session the store holds is refreshed and revived, full or not.
	l := presence.Lease{ClientID: "dan", SessionID: dan.ID(), Node: "n1", TTL: e.ttl}
	if evs, err := e.store.Add(e.ctx, l); err != nil || len(evs) != 0 {
		e.Fatalf("Add of a held session at the caps = %+v, %v; want nothing, nil", evs, err)
	}
	if gone, err := e.store.Touch(e.ctx, []presence.Lease{l}); err != nil || len(gone) != 0 {
		e.Fatalf("Touch at the caps = %+v, %v; want nothing gone", gone, err)
	}
	// An ending session counts until it is gone.
	e.end(dan2, presence.ReasonClosed)
	refused(1, "fay")
	for _, s := range []*presence.Session{dan, eve, fay} {
		s.Beat()
	}
	e.waitFor(e.grace+3*e.sweep, "the ending session gone", func() bool { return e.lookup("dan").Sessions == 1 })
	e.connect(trs[1], "fay", presence.SessionOptions{})
	refused(0, "gus")

	e.settle()
	e.expect("ann", on, offClosed)
	e.expect("dan", on)
	e.expect("gus")
}

func seqs(evs []presence.Event) []string {
	var out []string
	for _, ev := range evs {
		k := fmt.Sprintf("%d:%s@%s", ev.Seq, ev.Transition, ev.Node)
		if ev.Room != "" {
			k += ":" + ev.Room
		}
		out = append(out, k)
	}
	return out
}

package storetest

import (
	"errors"
	"slices"
	"time"

	"github.com/vigilhq/vigil/presence"
)

// The state tests run on stores that are a presence.StateStore; the others
// skip them.
//
// What they pin down beyond the StateStore doc, so that every store numbers
// the same events the same way:
//   - Away and Back from SetActivity have an empty Reason; from an Add,
//     ReasonConnect; an Away from a session's removal has the reason it
//     ended with.
//   - An Add's events are its Online, then its Away or Back, then its
//     room events; a removal's are its Leaves, then its Away (or Offline).

const (
	away     = "away/"
	back     = "back/"
	awayConn = "away/connect"
	backConn = "back/connect"
)

// states returns the store as a StateStore, or skips the test.
func (e *env) states() presence.StateStore {
	e.Helper()
	ss, ok := e.store.(presence.StateStore)
	if !ok {
		e.Skip("the store is no presence.StateStore")
	}
	return ss
}

// setActivity records a session's activity and returns the events.
func (e *env) setActivity(clientID, sessionID string, a presence.Activity, idleFor time.Duration) []presence.Event {
	e.Helper()
	evs, err := e.states().SetActivity(e.ctx, presence.SessionActivity{ClientID: clientID, SessionID: sessionID, Activity: a, IdleFor: idleFor})
	if err != nil {
		e.Fatalf("SetActivity(%s/%s, %s, %v): %v", clientID, sessionID, a, idleFor, err)
	}
	return evs
}

// timedActivity is setActivity, reporting when it was called.
func (e *env) timedActivity(clientID, sessionID string, a presence.Activity, idleFor time.Duration, want ...string) when {
	e.Helper()
	var evs []presence.Event
	w := e.timed(func() error {
		var err error
		evs, err = e.states().SetActivity(e.ctx, presence.SessionActivity{ClientID: clientID, SessionID: sessionID, Activity: a, IdleFor: idleFor})
		return err
	})
	if got := kinds(evs); !slices.Equal(got, want) {
		e.Fatalf("SetActivity(%s/%s, %s) = %v, want %v", clientID, sessionID, a, got, want)
	}
	return w
}

// expectEvents fails unless evs are want, compared as kinds, in
// consecutive Seqs following after (0: any).
func (e *env) expectEvents(what string, evs []presence.Event, after uint64, want ...string) {
	e.Helper()
	if got := kinds(evs); !slices.Equal(got, want) {
		e.Fatalf("%s = %v, want %v", what, got, want)
	}
	e.checkSeqs(what, evs)
	if len(evs) > 0 && after != 0 && evs[0].Seq != after+1 {
		e.Fatalf("%s: first Seq %d, want %d (right after the previous event)", what, evs[0].Seq, after+1)
	}
}

// lastSeq returns the Seq of the last of evs.
func lastSeq(evs []presence.Event) uint64 { return evs[len(evs)-1].Seq }

// expectState checks clientID's State as Lookup and List report it (List
// only while online).
func (e *env) expectState(clientID string, want presence.State) {
	e.Helper()
	if got := e.lookup(clientID).State; got != want {
		e.Fatalf("Lookup(%s).State = %q, want %q", clientID, got, want)
	}
	if want != presence.StateOffline {
		if got := e.listed(clientID).State; got != want {
			e.Fatalf("List: %s's State = %q, want %q", clientID, got, want)
		}
	}
}

func (e *env) expectActivity(clientID, sessionID string, want presence.Activity) {
	e.Helper()
	if got := e.session(clientID, sessionID).Activity; got != want {
		e.Fatalf("Sessions(%s): %s's Activity = %q, want %q", clientID, sessionID, got, want)
	}
}

// checkActive fails unless got is the beat b, give or take a tenth of a
// unit (see checkSeen).
func (e *env) checkActive(what string, got time.Time, b beat) {
	e.Helper()
	slack := e.u / 10
	lo, hi := b.at.from.Add(-b.age-slack), b.at.to.Add(-b.age+slack)
	if got.Before(lo) || got.After(hi) {
		e.Errorf("%s: LastActive is %v from %v before the store call, want within %v", what, got.Sub(b.at.from.Add(-b.age)), b.age, slack)
	}
}

// testStateSetActivity drives one client's sessions through SetActivity:
// Away exactly when its last active session goes away, Back when one is
// active again, nothing for a report that changes no state, each in the
// client's Seq after its Online.
func testStateSetActivity(e *env) {
	e.states()
	evs := e.add(presence.Lease{ClientID: "ava", SessionID: "s1"})
	e.expectState("ava", presence.StateOnline)
	e.expectActivity("ava", "s1", presence.ActivityActive)
	seq := lastSeq(evs)

	evs = e.setActivity("ava", "s1", presence.ActivityAway, 3*e.u)
	e.expectEvents("first session away", evs, seq, away)
	if ev := evs[0]; ev.SessionID != "s1" || ev.ClientID != "ava" || ev.Time.IsZero() || ev.LastSeen.IsZero() {
		e.Fatalf("Away = %+v; want ClientID ava, SessionID s1, Time and LastSeen", ev)
	}
	seq = lastSeq(evs)
	e.expectState("ava", presence.StateAway)
	e.expectActivity("ava", "s1", presence.ActivityAway)
	e.expectEvents("away again", e.setActivity("ava", "s1", presence.ActivityAway, e.u), 0)

	evs = e.setActivity("ava", "s1", presence.ActivityActive, 0)
	e.expectEvents("back", evs, seq, back)
	seq = lastSeq(evs)
	e.expectState("ava", presence.StateOnline)
	e.expectEvents("active again", e.setActivity("ava", "s1", "", 0), 0)

	// Two sessions: the client is online while either is active.
	e.expectEvents("second session", e.add(presence.Lease{ClientID: "ava", SessionID: "s2"}), 0)
	e.expectEvents("one of two away", e.setActivity("ava", "s1", presence.ActivityAway, 0), 0)
	e.expectState("ava", presence.StateOnline)
	evs = e.setActivity("ava", "s2", presence.ActivityAway, 0)
	e.expectEvents("both away", evs, seq, away)
	seq = lastSeq(evs)
	e.expectState("ava", presence.StateAway)
	evs = e.setActivity("ava", "s1", "", 0) // empty is active
	e.expectEvents("one back", evs, seq, back)
	seq = lastSeq(evs)
	e.expectEvents("the other back", e.setActivity("ava", "s2", presence.ActivityActive, 0), 0)
	e.expectState("ava", presence.StateOnline)
	e.expectActivity("ava", "s1", presence.ActivityActive)

	// The transitions share the Seq of the client's others.
	evs, err := e.store.End(e.ctx, presence.Ending{ClientID: "ava", Reason: presence.ReasonClosed})
	if err != nil {
		e.Fatal(err)
	}
	e.expectEvents("End", evs, seq, offClosed)
	e.expectState("ava", presence.StateOffline)
}

// testStateAdd pins down Add with an activity: a new client recorded away
// goes Online then Away in one step; an away client's new active session
// brings it Back; Add of a session the store holds sets its activity as
// SetActivity would; room events come after.
func testStateAdd(e *env) {
	e.states()
	evs := e.add(presence.Lease{ClientID: "bo", SessionID: "s1", Activity: presence.ActivityAway, IdleFor: e.u})
	e.expectEvents("Add away", evs, 0, on, awayConn)
	if evs[1].SessionID != "s1" || !evs[1].Time.Equal(evs[0].Time) {
		e.Fatalf("Away of Add = %+v; want SessionID s1, the Online's Time", evs[1])
	}
	seq := lastSeq(evs)
	e.expectState("bo", presence.StateAway)
	e.expectActivity("bo", "s1", presence.ActivityAway)
	e.expectEvents("a second away session", e.add(presence.Lease{ClientID: "bo", SessionID: "s2", Activity: presence.ActivityAway}), 0)
	evs = e.add(presence.Lease{ClientID: "bo", SessionID: "s3"})
	e.expectEvents("an active session of an away client", evs, seq, backConn)
	seq = lastSeq(evs)
	e.expectState("bo", presence.StateOnline)
	// Add of a session the store holds sets its activity.
	e.expectEvents("s3 re-added away", e.add(presence.Lease{ClientID: "bo", SessionID: "s3", Activity: presence.ActivityAway}), seq, awayConn)
	e.expectActivity("bo", "s3", presence.ActivityAway)
	e.expectEvents("s2 re-added away", e.add(presence.Lease{ClientID: "bo", SessionID: "s2", Activity: presence.ActivityAway}), 0)
	evs = e.add(presence.Lease{ClientID: "bo", SessionID: "s2"})
	e.expectEvents("s2 re-added active", evs, seq+1, backConn)
	e.expectActivity("bo", "s2", presence.ActivityActive)

	// With rooms: the state before the room events.
	if _, ok := e.store.(presence.RoomStore); !ok {
		return
	}
	evs = e.add(presence.Lease{ClientID: "cy", SessionID: "s1", Activity: presence.ActivityAway, Rooms: []string{"b", "a"}})
	e.expectEvents("Add away with rooms", evs, 0, on, awayConn, "join/connect a", "join/connect b")
	evs2 := e.add(presence.Lease{ClientID: "cy", SessionID: "s2", Rooms: []string{"c"}})
	e.expectEvents("Add active with rooms", evs2, lastSeq(evs), backConn, "join/connect c")
	if m := e.memberOf("a", "cy"); m.State != presence.StateOnline || m.LastActive.IsZero() {
		e.Fatalf("member cy of a = %+v; want online, with LastActive", m)
	}
}

// testStateRemoval pins down what a session's removal does to its client's
// state: removing its last active session while away ones remain makes it
// Away (after the session's Leaves, with the session's reason); an ending
// active session keeps it online until it is removed; removing every
// session at once gives the Offline alone.
func testStateRemoval(e *env) {
	e.states()
	_, withRooms := e.store.(presence.RoomStore)
	var rooms []string
	if withRooms {
		rooms = []string{"r"}
	}
	evs := e.add(presence.Lease{ClientID: "di", SessionID: "on", Rooms: rooms})
	evs = append(evs, e.add(presence.Lease{ClientID: "di", SessionID: "off", Activity: presence.ActivityAway})...)
	seq := lastSeq(evs)
	evs, err := e.store.End(e.ctx, presence.Ending{ClientID: "di", SessionID: "on", Reason: presence.ReasonClosed})
	if err != nil {
		e.Fatal(err)
	}
	if withRooms {
		e.expectEvents("End of the active session", evs, seq, "leave/closed r", "away/closed")
	} else {
		e.expectEvents("End of the active session", evs, seq, "away/closed")
	}
	if evs[len(evs)-1].SessionID != "on" {
		e.Fatalf("Away = %+v; want the removed session's ID", evs[len(evs)-1])
	}
	seq = lastSeq(evs)
	e.expectState("di", presence.StateAway)
	evs, err = e.store.End(e.ctx, presence.Ending{ClientID: "di", SessionID: "off", Reason: presence.ReasonClosed})
	if err != nil {
		e.Fatal(err)
	}
	e.expectEvents("End of the last session, away", evs, seq, offClosed)
	e.expectState("di", presence.StateOffline)

	// Removing an active and an away session at once: Offline alone.
	e.add(presence.Lease{ClientID: "ed", SessionID: "on", Rooms: rooms})
	e.add(presence.Lease{ClientID: "ed", SessionID: "off", Activity: presence.ActivityAway, Rooms: rooms})
	evs, err = e.store.End(e.ctx, presence.Ending{ClientID: "ed", Reason: presence.ReasonKicked})
	if err != nil {
		e.Fatal(err)
	}
	if withRooms {
		e.expectEvents("End of every session", evs, 0, "leave/kicked r", offKick)
	} else {
		e.expectEvents("End of every session", evs, 0, offKick)
	}

	// Grace: an ending active session keeps its client online, and keeps
	// its activity, until it is removed.
	evs = e.add(presence.Lease{ClientID: "fi", SessionID: "on", Rooms: rooms})
	e.add(presence.Lease{ClientID: "fi", SessionID: "off", Activity: presence.ActivityAway})
	seq = lastSeq(evs)
	evs, err = e.store.End(e.ctx, presence.Ending{ClientID: "fi", SessionID: "on", Reason: presence.ReasonClosed, Grace: 2 * e.u})
	if err != nil || len(evs) != 0 {
		e.Fatalf("End with grace = %v, %v; want nothing", kinds(evs), err)
	}
	e.expectState("fi", presence.StateOnline)
	e.expectActivity("fi", "on", presence.ActivityActive)
	if _, err := e.states().SetActivity(e.ctx, presence.SessionActivity{ClientID: "fi", SessionID: "on", Activity: presence.ActivityAway}); !errors.Is(err, presence.ErrNotFound) {
		e.Fatalf("SetActivity of an ending session = %v, want ErrNotFound", err)
	}
	e.expectActivity("fi", "on", presence.ActivityActive)
	// The away session's own reports change nothing while the ending one
	// is active.
	e.expectEvents("away session reports away", e.setActivity("fi", "off", presence.ActivityAway, 0), 0)
	e.sleep(3 * e.u)
	evs, err = e.store.Sweep(e.ctx)
	if err != nil {
		e.Fatal(err)
	}
	evs = slices.DeleteFunc(evs, func(ev presence.Event) bool { return ev.ClientID != "fi" })
	if withRooms {
		e.expectEvents("Sweep past the grace", evs, seq, "leave/closed r", "away/closed")
	} else {
		e.expectEvents("Sweep past the grace", evs, seq, "away/closed")
	}
	e.expectState("fi", presence.StateAway)

	// Revived within its grace, an ending session is live again with the
	// activity its Add gives.
	evs = e.add(presence.Lease{ClientID: "gu", SessionID: "on"})
	e.expectEvents("an away session beside an active one", e.add(presence.Lease{ClientID: "gu", SessionID: "off", Activity: presence.ActivityAway}), 0)
	if _, err := e.store.End(e.ctx, presence.Ending{ClientID: "gu", SessionID: "on", Reason: presence.ReasonClosed, Grace: time.Hour}); err != nil {
		e.Fatal(err)
	}
	e.expectEvents("revived away", e.add(presence.Lease{ClientID: "gu", SessionID: "on", Activity: presence.ActivityAway}), lastSeq(evs), awayConn)
	e.expectState("gu", presence.StateAway)
}

// testStateExpiry: an active session that expires beside away ones makes
// its client Away, with ReasonExpired, in the Sweep that removes it; so
// does the end of a node's sessions, with the reason given; a call that
// removes every session of a client gives its Offline alone.
func testStateExpiry(e *env) {
	e.states()
	evs := e.add(presence.Lease{ClientID: "hu", SessionID: "short", TTL: 2 * e.u})
	evs = append(evs, e.add(presence.Lease{ClientID: "hu", SessionID: "long", Activity: presence.ActivityAway})...)
	e.add(presence.Lease{ClientID: "iv", SessionID: "short", TTL: 2 * e.u})
	e.add(presence.Lease{ClientID: "iv", SessionID: "short2", TTL: 2 * e.u, Activity: presence.ActivityAway})
	e.sleep(3 * e.u)
	all, err := e.store.Sweep(e.ctx)
	if err != nil {
		e.Fatal(err)
	}
	var hu, iv []presence.Event
	for _, ev := range all {
		switch ev.ClientID {
		case "hu":
			hu = append(hu, ev)
		case "iv":
			iv = append(iv, ev)
		}
	}
	e.expectEvents("expiry of the active session", hu, lastSeq(evs), "away/expired")
	e.expectState("hu", presence.StateAway)
	e.expectEvents("expiry of both sessions", iv, 0, offExp)

	// A node's sessions ended at once: a client with an away session on
	// another node goes away, one with every session there goes offline
	// alone.
	evs = e.add(presence.Lease{ClientID: "jun", SessionID: "a", Node: "gone"})
	e.add(presence.Lease{ClientID: "jun", SessionID: "b", Node: "kept", Activity: presence.ActivityAway})
	e.add(presence.Lease{ClientID: "kit", SessionID: "a", Node: "gone"})
	e.add(presence.Lease{ClientID: "kit", SessionID: "b", Node: "gone", Activity: presence.ActivityAway})
	all, err = e.store.End(e.ctx, presence.Ending{Node: "gone", Reason: presence.ReasonRestart})
	if err != nil {
		e.Fatal(err)
	}
	var jun, kit []presence.Event
	for _, ev := range all {
		switch ev.ClientID {
		case "jun":
			jun = append(jun, ev)
		case "kit":
			kit = append(kit, ev)
		}
	}
	e.expectEvents("end of the node of jun's active session", jun, lastSeq(evs), "away/restart")
	e.expectEvents("end of the node of both kit's sessions", kit, 0, offRestart)
}

// testStateTouch: Touch keeps a session's activity, whatever its lease
// says, and an away session's last active time; it moves its last seen.
func testStateTouch(e *env) {
	e.states()
	e.add(presence.Lease{ClientID: "jo", SessionID: "s", Activity: presence.ActivityAway})
	before := e.session("jo", "s")
	e.sleep(e.u)
	for _, a := range []presence.Activity{"", presence.ActivityActive, presence.ActivityAway} {
		gone, err := e.store.Touch(e.ctx, []presence.Lease{{ClientID: "jo", SessionID: "s", Node: "n1", TTL: time.Hour, Activity: a}})
		if err != nil || len(gone) != 0 {
			e.Fatalf("Touch = %v, %v", gone, err)
		}
	}
	after := e.session("jo", "s")
	if after.Activity != presence.ActivityAway || !after.LastActive.Equal(before.LastActive) || !after.LastSeen.After(before.LastSeen) {
		e.Fatalf("after Touch: %+v, before %+v; want still away, LastActive unchanged, LastSeen later", after, before)
	}
	e.expectState("jo", presence.StateAway)
	e.add(presence.Lease{ClientID: "ka", SessionID: "s"})
	if _, err := e.store.Touch(e.ctx, []presence.Lease{{ClientID: "ka", SessionID: "s", Node: "n1", TTL: time.Hour, Activity: presence.ActivityAway}}); err != nil {
		e.Fatal(err)
	}
	e.expectActivity("ka", "s", presence.ActivityActive)
	e.expectState("ka", presence.StateOnline)
}

// testStateLastActive pins down last active times: an active session's is
// its last beat; an away session's is its report's time less IdleFor,
// moved by each away report and by nothing else; a client's is the latest
// of its sessions', kept after it goes offline.
func testStateLastActive(e *env) {
	e.states()
	const id = "lu"
	touch := func(sid string, age time.Duration) when {
		e.Helper()
		return e.timed(func() error {
			_, err := e.store.Touch(e.ctx, []presence.Lease{{ClientID: id, SessionID: sid, Node: "n1", TTL: time.Hour, Age: age}})
			return err
		})
	}
	add := func(l presence.Lease) when {
		e.Helper()
		l.ClientID, l.Node, l.TTL = id, "n1", time.Hour
		return e.timed(func() error { _, err := e.store.Add(e.ctx, l); return err })
	}
	check := func(what, sid string, session, client beat) {
		e.Helper()
		e.checkActive(what+": session "+sid, e.session(id, sid).LastActive, session)
		e.checkActive(what+": client", e.lookup(id).LastActive, client)
		e.checkActive(what+": listed client", e.listed(id).LastActive, client)
	}
	e.sleep(2 * e.u) // a store may keep no time before it was made
	a := add(presence.Lease{SessionID: "a", Age: e.u})
	check("active Add", "a", beat{a, e.u}, beat{a, e.u})
	e.sleep(e.u)
	ta := touch("a", 0)
	check("beat", "a", beat{ta, 0}, beat{ta, 0})
	e.sleep(e.u)
	b := add(presence.Lease{SessionID: "b", Activity: presence.ActivityAway, IdleFor: 4 * e.u})
	check("away Add", "b", beat{b, 4 * e.u}, beat{ta, 0})
	e.sleep(e.u)
	wentAway := e.timedActivity(id, "a", presence.ActivityAway, e.u, away)
	check("a away", "a", beat{wentAway, e.u}, beat{wentAway, e.u})
	e.sleep(e.u)
	touch("a", 0)
	touch("b", 0)
	check("beats of away sessions", "a", beat{wentAway, e.u}, beat{wentAway, e.u})
	again := e.timedActivity(id, "a", presence.ActivityAway, 0)
	check("a away again", "a", beat{again, 0}, beat{again, 0})
	e.sleep(e.u)
	e.timedActivity(id, "b", presence.ActivityActive, 0, back)
	// An active session's last active is its last beat, not the report.
	if info := e.session(id, "b"); !info.LastActive.Equal(info.LastSeen) {
		e.Errorf("session b back: LastActive %v, LastSeen %v; want equal", info.LastActive, info.LastSeen)
	}
	tb := touch("b", 0)
	check("beat of b", "b", beat{tb, 0}, beat{tb, 0})
	// Offline: the client keeps the latest.
	e.sleep(e.u)
	if _, err := e.store.End(e.ctx, presence.Ending{ClientID: id, SessionID: "b", Reason: presence.ReasonClosed}); err != nil {
		e.Fatal(err)
	}
	e.sleep(e.u)
	endAt := e.timed(func() error {
		_, err := e.store.End(e.ctx, presence.Ending{ClientID: id, SessionID: "a", Reason: presence.ReasonExpired})
		return err
	})
	p := e.lookup(id)
	if p.State != presence.StateOffline {
		e.Fatalf("State after End = %q, want offline", p.State)
	}
	// b ended closed: the client was there until it ended, active.
	slack := e.u / 10 // a Redis server reads its own clock
	if p.LastActive.Before(tb.to.Add(-slack)) || p.LastActive.After(endAt.from.Add(slack)) {
		e.Errorf("offline client's LastActive %v; want when its active session closed, between %v and %v", p.LastActive, tb.to, endAt.from)
	}
	// Back online with a session idle since before: the client keeps
	// the latest, its sessions' or those it had.
	e.sleep(e.u)
	c := add(presence.Lease{SessionID: "c", Activity: presence.ActivityAway, IdleFor: 50 * e.u})
	e.checkActive("away session idle since before", e.session(id, "c").LastActive, beat{c, 50 * e.u})
	if got := e.lookup(id).LastActive; !got.Equal(p.LastActive) {
		e.Errorf("client back online, away since before: LastActive %v, want %v as while offline", got, p.LastActive)
	}
	// A session removed while the client stays online counts too.
	e.sleep(e.u)
	add(presence.Lease{SessionID: "d"})
	e.sleep(e.u)
	dEnd := e.timed(func() error {
		_, err := e.store.End(e.ctx, presence.Ending{ClientID: id, SessionID: "d", Reason: presence.ReasonClosed})
		return err
	})
	e.timedActivity(id, "c", presence.ActivityAway, 80*e.u)
	if got := e.lookup(id).LastActive; got.Before(dEnd.from.Add(-slack)) || got.After(dEnd.to.Add(slack)) {
		e.Errorf("client whose active session closed beside an away one: LastActive %v, want when it closed (%v)", got, dEnd.from)
	}
}

// testStateQueries: room member queries report the client's State and
// LastActive, as Lookup does.
func testStateQueries(e *env) {
	e.states()
	rs := e.rooms()
	e.add(presence.Lease{ClientID: "mo", SessionID: "s", Rooms: []string{"r"}, Activity: presence.ActivityAway, IdleFor: e.u})
	e.add(presence.Lease{ClientID: "nu", SessionID: "s", Rooms: []string{"r"}})
	e.add(presence.Lease{ClientID: "nu", SessionID: "t", Activity: presence.ActivityAway})
	p, err := rs.Members(e.ctx, "r", "", 10)
	if err != nil || len(p.Members) != 2 {
		e.Fatalf("Members(r) = %+v, %v", p, err)
	}
	want := map[string]presence.State{"mo": presence.StateAway, "nu": presence.StateOnline}
	for _, m := range p.Members {
		if m.State != want[m.ClientID] || !m.LastActive.Equal(e.lookup(m.ClientID).LastActive) {
			e.Errorf("member %+v; want State %q, LastActive as Lookup's %v", m, want[m.ClientID], e.lookup(m.ClientID).LastActive)
		}
	}
	ms, err := rs.MembersAmong(e.ctx, "r", []string{"mo", "nu", "nobody"})
	if err != nil || len(ms) != 3 {
		e.Fatalf("MembersAmong = %+v, %v", ms, err)
	}
	for _, m := range ms[:2] {
		if m.State != want[m.ClientID] || !m.LastActive.Equal(e.lookup(m.ClientID).LastActive) {
			e.Errorf("MembersAmong: %+v; want State %q, LastActive as Lookup's", m, want[m.ClientID])
		}
	}
	if ms[2].In || ms[2].State == presence.StateOnline || ms[2].State == presence.StateAway {
		e.Errorf("MembersAmong: unknown client %+v", ms[2])
	}
	// Through the Tracker.
	tr := e.tracker("n1")
	ps, err := tr.Lookup(e.ctx, []string{"mo", "nobody"})
	if err != nil || ps[0].State != presence.StateAway || ps[1].State != presence.StateOffline {
		e.Errorf("Tracker.Lookup = %+v, %v; want away, offline", ps, err)
	}
	if tms, err := tr.MembersAmong(e.ctx, "r", []string{"mo"}); err != nil || tms[0].State != presence.StateAway {
		e.Errorf("Tracker.MembersAmong = %+v, %v; want away", tms, err)
	}
}

// testStateBadArguments: SetActivity and Add refuse a bad activity or
// IdleFor, SetActivity a session that is not live, and none changes
// anything.
func testStateBadArguments(e *env) {
	ss := e.states()
	for _, a := range []presence.SessionActivity{
		{ClientID: "ok", SessionID: "s", Activity: "busy"},
		{ClientID: "ok", SessionID: "s", Activity: presence.ActivityAway, IdleFor: -time.Second},
		{ClientID: "ok", SessionID: "s", Activity: presence.ActivityActive, IdleFor: time.Second},
	} {
		if _, err := ss.SetActivity(e.ctx, a); !errors.Is(err, presence.ErrInvalidArgument) {
			e.Errorf("SetActivity(%+v) = %v, want ErrInvalidArgument", a, err)
		}
		l := presence.Lease{ClientID: "ok", SessionID: "s", Node: "n1", TTL: time.Hour, Activity: a.Activity, IdleFor: a.IdleFor}
		if _, err := ss.Add(e.ctx, l); !errors.Is(err, presence.ErrInvalidArgument) {
			e.Errorf("Add(%+v) = %v, want ErrInvalidArgument", l, err)
		}
	}
	for _, a := range []presence.SessionActivity{{ClientID: "", SessionID: "s"}, {ClientID: "ok", SessionID: "a\x00"}} {
		if _, err := ss.SetActivity(e.ctx, a); !errors.Is(err, presence.ErrInvalidID) {
			e.Errorf("SetActivity(%+v) = %v, want ErrInvalidID", a, err)
		}
	}
	if n, err := e.store.Count(e.ctx); err != nil || n != 0 {
		e.Fatalf("Count after bad calls = %d, %v; want 0", n, err)
	}
	e.add(presence.Lease{ClientID: "ok", SessionID: "s"})
	for _, a := range []presence.SessionActivity{
		{ClientID: "ghost", SessionID: "s", Activity: presence.ActivityAway},
		{ClientID: "ok", SessionID: "other", Activity: presence.ActivityAway},
	} {
		if _, err := ss.SetActivity(e.ctx, a); !errors.Is(err, presence.ErrNotFound) {
			e.Errorf("SetActivity(%+v) = %v, want ErrNotFound", a, err)
		}
	}
	if _, err := ss.SetActivity(e.ctx, presence.SessionActivity{ClientID: "ok", SessionID: "s", Activity: "busy"}); !errors.Is(err, presence.ErrInvalidArgument) {
		e.Errorf("SetActivity(busy) of a live session = %v, want ErrInvalidArgument", err)
	}
	e.expectActivity("ok", "s", presence.ActivityActive)
	e.expectState("ok", presence.StateOnline)
	if ps, err := ss.Lookup(e.ctx, []string{"ghost"}); err != nil || ps[0].State == presence.StateOnline || ps[0].State == presence.StateAway {
		e.Errorf("Lookup(unknown) = %+v, %v; want no online or away state", ps, err)
	}
}

// testStateTracker drives states through Trackers: SessionOptions.Activity,
// Session.SetActivity, OnAway and OnBack, ordered with Online, Joins,
// Leaves and Offline in the client's Seq, and across nodes.
func testStateTracker(e *env) {
	e.states()
	_, withRooms := e.store.(presence.RoomStore)
	tr1, tr2 := e.tracker("n1"), e.tracker("n2")
	var opts presence.SessionOptions
	var joins, leaves []string
	if withRooms {
		opts.Rooms = []string{"lobby"}
		joins, leaves = []string{"join/connect lobby"}, []string{"leave/closed lobby"}
	}
	opts.Activity, opts.IdleFor = presence.ActivityAway, e.u
	s1 := e.connect(tr1, "oz", opts)
	e.settle()
	want := append([]string{on, awayConn}, joins...)
	e.expect("oz", want...)
	if got := s1.Activity(); got != presence.ActivityAway {
		e.Fatalf("Session.Activity = %q, want away", got)
	}
	s2 := e.connect(tr2, "oz", presence.SessionOptions{})
	e.settle()
	want = append(want, backConn)
	e.expect("oz", want...)
	if err := s2.SetActivity(e.ctx, presence.ActivityAway, 0); err != nil {
		e.Fatal(err)
	}
	e.settle()
	want = append(want, away)
	e.expect("oz", want...)
	if p := e.lookup("oz"); p.State != presence.StateAway {
		e.Fatalf("State = %q, want away", p.State)
	}
	if err := s1.SetActivity(e.ctx, presence.ActivityActive, 0); err != nil {
		e.Fatal(err)
	}
	if err := s1.SetActivity(e.ctx, presence.ActivityActive, 0); err != nil {
		e.Fatal(err)
	}
	e.settle()
	want = append(want, back)
	e.expect("oz", want...)
	// s1, the active one, ends through its grace: the client stays online
	// until it is removed, then goes away.
	e.end(s1, presence.ReasonClosed)
	if err := s1.SetActivity(e.ctx, presence.ActivityAway, 0); !errors.Is(err, presence.ErrNotFound) {
		e.Errorf("SetActivity of an ended session = %v, want ErrNotFound", err)
	}
	e.sleep(e.grace / 2)
	if p := e.lookup("oz"); p.State != presence.StateOnline {
		e.Fatalf("State while the active session lingers = %q, want online", p.State)
	}
	n := len(want) + len(leaves) + 1
	e.waitFor(e.grace+3*e.sweep, "away after the grace", func() bool { return len(e.rec.of("oz")) >= n })
	want = append(append(want, leaves...), "away/closed")
	e.expect("oz", want...)
	e.end(s2, presence.ReasonClosed)
	e.waitFor(e.grace+3*e.sweep, "offline after the grace", func() bool { return len(e.rec.of("oz")) >= n+1 })
	e.expect("oz", append(want, offClosed)...)
	if err := checkSequence(sortedBySeq(e.rec.of("oz"))); err != nil {
		e.Fatal(err)
	}
}

func sortedBySeq(evs []presence.Event) []presence.Event {
	evs = slices.Clone(evs)
	slices.SortFunc(evs, func(a, b presence.Event) int {
		switch {
		case a.Seq < b.Seq:
			return -1
		case a.Seq > b.Seq:
			return 1
		}
		return 0
	})
	return evs
}

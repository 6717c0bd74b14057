package storetest

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/vigilhq/vigil/presence"
)

// The room tests run on stores that are a presence.RoomStore; the others
// skip them.

// rooms returns the store as a RoomStore, or skips the test.
func (e *env) rooms() presence.RoomStore {
	e.Helper()
	rs, ok := e.store.(presence.RoomStore)
	if !ok {
		e.Skip("the store is no presence.RoomStore")
	}
	return rs
}

// add records a session in the store with a lease of an hour.
func (e *env) add(l presence.Lease) []presence.Event {
	e.Helper()
	if l.Node == "" {
		l.Node = "n1"
	}
	if l.TTL == 0 {
		l.TTL = time.Hour
	}
	evs, err := e.store.Add(e.ctx, l)
	if err != nil {
		e.Fatalf("Add(%+v): %v", l, err)
	}
	return evs
}

// checkSeqs fails unless evs carry consecutive Seqs.
func (e *env) checkSeqs(what string, evs []presence.Event) {
	e.Helper()
	for i, ev := range evs {
		if ev.Seq != evs[0].Seq+uint64(i) {
			e.Fatalf("%s: Seqs %v, want consecutive", what, seqs(evs))
		}
	}
}

func (e *env) members(room string) []string {
	e.Helper()
	var ids []string
	cursor := ""
	for {
		p, err := e.rooms().Members(e.ctx, room, cursor, 100)
		if err != nil {
			e.Fatalf("Members(%s): %v", room, err)
		}
		for _, m := range p.Members {
			ids = append(ids, m.ClientID)
		}
		if cursor = p.Next; cursor == "" {
			return ids
		}
	}
}

func (e *env) memberOf(room, clientID string) presence.Member {
	e.Helper()
	ms, err := e.rooms().MembersAmong(e.ctx, room, []string{clientID})
	if err != nil || len(ms) != 1 || ms[0].ClientID != clientID {
		e.Fatalf("MembersAmong(%s, %s) = %+v, %v", room, clientID, ms, err)
	}
	return ms[0]
}

func (e *env) clientRooms(clientID string) []string {
	e.Helper()
	rooms, err := e.rooms().ClientRooms(e.ctx, clientID)
	if err != nil {
		e.Fatalf("ClientRooms(%s): %v", clientID, err)
	}
	return rooms
}

func (e *env) roomCount(room string) int {
	e.Helper()
	n, err := e.rooms().RoomCount(e.ctx, room)
	if err != nil {
		e.Fatalf("RoomCount(%s): %v", room, err)
	}
	return n
}

func metas(ms []json.RawMessage) []string {
	var out []string
	for _, m := range ms {
		out = append(out, string(m))
	}
	return out
}

// testRoomAddAtomic pins down Add with rooms and metadata: one step whose
// events are the Online, then a Join per room (sorted, carrying the
// metadata), in consecutive Seqs; refreshing the session with the same
// rooms fires nothing; with a new room and new metadata, the Join of the
// new room comes before the Updates of the rooms it was in.
func testRoomAddAtomic(e *env) {
	rs := e.rooms()
	meta := json.RawMessage(`{"name":"Ann"}`)
	evs := e.add(presence.Lease{ClientID: "ann", SessionID: "s", Rooms: []string{"b", "a", "b"}, Meta: meta})
	want := []string{on, "join/connect a", "join/connect b"}
	if got := kinds(evs); !slices.Equal(got, want) {
		e.Fatalf("Add with rooms = %v, want %v", got, want)
	}
	e.checkSeqs("Add with rooms", evs)
	for _, ev := range evs[1:] {
		if string(ev.Meta) != string(meta) || ev.SessionID != "s" || ev.Time.IsZero() || !ev.LastSeen.Equal(ev.Time) {
			e.Fatalf("Join = %+v; want the session's metadata, SessionID s, LastSeen = Time", ev)
		}
	}
	if evs := e.add(presence.Lease{ClientID: "ann", SessionID: "s", Rooms: []string{"a"}, Meta: meta}); len(evs) != 0 {
		e.Fatalf("Add refreshing the same rooms and metadata = %v, want nothing", kinds(evs))
	}
	meta2 := json.RawMessage(`{"name":"Anne"}`)
	evs2 := e.add(presence.Lease{ClientID: "ann", SessionID: "s", Rooms: []string{"c"}, Meta: meta2})
	want = []string{"join/connect c", "update/ a", "update/ b"}
	if got := kinds(evs2); !slices.Equal(got, want) {
		e.Fatalf("Add with a new room and new metadata = %v, want %v", got, want)
	}
	e.checkSeqs("Add with a new room", append(evs, evs2...))
	for _, ev := range evs2 {
		if string(ev.Meta) != string(meta2) {
			e.Fatalf("%v %s carries %s, want the new metadata %s", ev.Transition, ev.Room, ev.Meta, meta2)
		}
	}
	if got := e.clientRooms("ann"); !slices.Equal(got, []string{"a", "b", "c"}) {
		e.Fatalf("ClientRooms = %v, want [a b c]", got)
	}
	info := e.session("ann", "s")
	if !slices.Equal(info.Rooms, []string{"a", "b", "c"}) || string(info.Meta) != string(meta2) {
		e.Fatalf("Sessions = %+v; want rooms [a b c], metadata %s", info, meta2)
	}
	// Touch ignores rooms and metadata.
	if _, err := rs.Touch(e.ctx, []presence.Lease{{ClientID: "ann", SessionID: "s", Node: "n1", TTL: time.Hour, Rooms: []string{"d"}, Meta: meta}}); err != nil {
		e.Fatal(err)
	}
	if got := e.clientRooms("ann"); !slices.Equal(got, []string{"a", "b", "c"}) || string(e.session("ann", "s").Meta) != string(meta2) {
		e.Fatalf("after a Touch with rooms: ClientRooms = %v, meta %s; want unchanged", got, e.session("ann", "s").Meta)
	}
	// A second session of the client: its rooms the client is in already
	// fire nothing.
	evs3 := e.add(presence.Lease{ClientID: "ann", SessionID: "t", Rooms: []string{"a", "e"}})
	if got := kinds(evs3); !slices.Equal(got, []string{"join/connect e"}) || evs3[0].Seq != evs2[len(evs2)-1].Seq+1 {
		e.Fatalf("second session's Add = %v, want one Join of e with the next Seq", seqs(evs3))
	}
}

// testRoomJoinLeave drives one session through a Tracker: Joins after the
// Online, Leave with ReasonLeft, and, when the session ends, the Leaves of
// its remaining rooms with the session's reason before the Offline, all in
// one Seq.
func testRoomJoinLeave(e *env) {
	e.rooms()
	tr := e.tracker("n1")
	s := e.connect(tr, "bea", presence.SessionOptions{Rooms: []string{"lobby", "game:1"}, Meta: json.RawMessage(`{"n":1}`)})
	if err := s.Join(e.ctx, "chat"); err != nil {
		e.Fatalf("Join: %v", err)
	}
	if err := s.Join(e.ctx, "chat"); err != nil {
		e.Fatalf("Join of a room the session is in: %v", err)
	}
	e.settle()
	e.expect("bea", on, "join/connect game:1", "join/connect lobby", "join/connect chat")
	if got := e.members("chat"); !slices.Equal(got, []string{"bea"}) || e.roomCount("chat") != 1 {
		e.Fatalf("Members(chat) = %v, count %d; want [bea], 1", got, e.roomCount("chat"))
	}
	if err := s.Leave(e.ctx, "lobby"); err != nil {
		e.Fatalf("Leave: %v", err)
	}
	if err := s.Leave(e.ctx, "lobby"); !errors.Is(err, presence.ErrNotFound) {
		e.Fatalf("Leave of a room the session is not in = %v, want ErrNotFound", err)
	}
	e.settle()
	e.expect("bea", on, "join/connect game:1", "join/connect lobby", "join/connect chat", "leave/left lobby")
	if e.roomCount("lobby") != 0 || len(e.members("lobby")) != 0 {
		e.Fatalf("lobby still has members after its only member left")
	}
	e.end(s, presence.ReasonClosed)
	e.sleep(e.grace / 2)
	// Lingering through its grace, the session keeps its rooms.
	if got := e.clientRooms("bea"); !slices.Equal(got, []string{"chat", "game:1"}) {
		e.Fatalf("ClientRooms while lingering = %v, want [chat game:1]", got)
	}
	e.waitFor(e.grace+3*e.sweep, "offline after grace", func() bool { return len(e.rec.of("bea")) == 8 })
	e.expect("bea", on, "join/connect game:1", "join/connect lobby", "join/connect chat", "leave/left lobby",
		"leave/closed chat", "leave/closed game:1", offClosed)
	evs := e.rec.of("bea")
	e.checkSeqs("bea's events", evs)
	if got := e.clientRooms("bea"); len(got) != 0 || e.roomCount("chat") != 0 {
		e.Fatalf("ClientRooms after offline = %v, chat count %d; want none", got, e.roomCount("chat"))
	}
	if err := s.Join(e.ctx, "chat"); !errors.Is(err, presence.ErrNotFound) {
		e.Fatalf("Join of an ended session = %v, want ErrNotFound", err)
	}
}

// testRoomGraceReload pins down that a reload within Grace fires nothing
// in the rooms: a new session joining the room of a lingering one, or the
// same session ID coming back.
func testRoomGraceReload(e *env) {
	e.rooms()
	tr := e.tracker("n1")
	s := e.connect(tr, "cid", presence.SessionOptions{Rooms: []string{"r"}})
	e.end(s, presence.ReasonClosed)
	e.sleep(e.grace / 2)
	s2 := e.connect(tr, "cid", presence.SessionOptions{Rooms: []string{"r"}})
	e.sleep(e.grace / 2)
	s2.Beat()
	e.sleep(e.grace/2 + 2*e.sweep)
	e.expect("cid", on, "join/connect r")
	if m := e.memberOf("r", "cid"); !m.In || m.Sessions != 1 {
		e.Fatalf("member after the old session went = %+v; want in, with 1 session", m)
	}
	// The same session ID comes back (an HTTP-heartbeat tab reloads).
	e.end(s2, presence.ReasonClosed)
	s3 := e.connect(tr, "cid", presence.SessionOptions{ID: "tab", Rooms: []string{"r"}})
	e.end(s3, presence.ReasonClosed)
	e.sleep(e.grace / 2)
	s4 := e.connect(tr, "cid", presence.SessionOptions{ID: "tab", Rooms: []string{"r"}})
	e.sleep(e.grace / 2)
	s4.Beat()
	e.sleep(e.grace/2 + 2*e.sweep)
	e.expect("cid", on, "join/connect r")
	if got := e.members("r"); !slices.Equal(got, []string{"cid"}) {
		e.Fatalf("Members(r) = %v, want [cid]", got)
	}
}

// testRoomExpiry pins down that an expired session leaves its rooms at
// once, with ReasonExpired, before the Offline: no member lingers.
func testRoomExpiry(e *env) {
	e.rooms()
	tr := e.tracker("n1")
	e.connect(tr, "dov", presence.SessionOptions{Rooms: []string{"x", "y"}})
	e.waitFor(e.ttl+4*e.sweep, "offline by expiry", func() bool { return len(e.rec.of("dov")) == 6 })
	e.expect("dov", on, "join/connect x", "join/connect y", "leave/expired x", "leave/expired y", offExp)
	e.checkSeqs("dov's events", e.rec.of("dov"))
	if e.roomCount("x") != 0 || len(e.members("y")) != 0 {
		e.Fatalf("rooms keep an expired member")
	}
	// Ended as expired, a session goes at once, rooms and all.
	s := e.connect(tr, "eli", presence.SessionOptions{Rooms: []string{"x"}})
	e.end(s, presence.ReasonExpired)
	e.settle()
	e.expect("eli", on, "join/connect x", "leave/expired x", offExp)
	if e.roomCount("x") != 0 {
		e.Fatalf("RoomCount(x) = %d right after the expired session went, want 0", e.roomCount("x"))
	}
	// The Leave's LastSeen is the session's last beat, as the Offline's.
	evs := e.rec.of("eli")
	if !evs[2].LastSeen.Equal(evs[3].LastSeen) {
		e.Errorf("Leave LastSeen %v, Offline LastSeen %v; want the same last beat", evs[2].LastSeen, evs[3].LastSeen)
	}
}

// testRoomSeveralSessions pins down that a client is in a room while any of
// its sessions is, across nodes: one Join, one Leave, Member.Sessions.
func testRoomSeveralSessions(e *env) {
	e.rooms()
	a, b := e.tracker("n1"), e.tracker("n2")
	s1 := e.connect(a, "fay", presence.SessionOptions{Rooms: []string{"r"}})
	s2 := e.connect(b, "fay", presence.SessionOptions{})
	if err := s2.Join(e.ctx, "r"); err != nil {
		e.Fatal(err)
	}
	e.settle()
	e.expect("fay", on, "join/connect r")
	if m := e.memberOf("r", "fay"); !m.In || m.Sessions != 2 || m.Since.IsZero() {
		e.Fatalf("member = %+v; want in with 2 sessions and Since", m)
	}
	if err := s1.Leave(e.ctx, "r"); err != nil {
		e.Fatal(err)
	}
	e.end(s2, presence.ReasonKicked)
	e.sleep(e.grace)
	s1.Beat()
	e.sleep(3 * e.sweep)
	e.expect("fay", on, "join/connect r", "leave/kicked r")
	e.end(s1, presence.ReasonClosed)
	e.waitFor(e.grace+3*e.sweep, "offline", func() bool { return len(e.rec.of("fay")) == 4 })
	e.expect("fay", on, "join/connect r", "leave/kicked r", offClosed)
}

// testRoomMeta pins down metadata: one Update per room of the session,
// none when unchanged or when the session is in no room; a client's Metas
// ordered by when each session's metadata was last set.
func testRoomMeta(e *env) {
	rs := e.rooms()
	e.add(presence.Lease{ClientID: "gil", SessionID: "s1", Rooms: []string{"r", "q"}, Meta: json.RawMessage(`"one"`)})
	e.add(presence.Lease{ClientID: "gil", SessionID: "s2", Rooms: []string{"r"}, Meta: json.RawMessage(`"two"`)})
	e.add(presence.Lease{ClientID: "gil", SessionID: "s3", Rooms: []string{"q"}})
	if m := e.memberOf("r", "gil"); !slices.Equal(metas(m.Metas), []string{`"one"`, `"two"`}) || string(m.Meta()) != `"two"` {
		e.Fatalf("Metas in r = %v, Meta %s; want [\"one\" \"two\"], \"two\"", metas(m.Metas), m.Meta())
	}
	set := func(sid, meta string) []presence.Event {
		e.Helper()
		evs, err := rs.SetMeta(e.ctx, presence.SessionMeta{ClientID: "gil", SessionID: sid, Meta: json.RawMessage(meta)})
		if err != nil {
			e.Fatalf("SetMeta(%s, %s): %v", sid, meta, err)
		}
		return evs
	}
	evs := set("s1", `"uno"`)
	if got := kinds(evs); !slices.Equal(got, []string{"update/ q", "update/ r"}) {
		e.Fatalf("SetMeta of a session in two rooms = %v, want an Update of each", got)
	}
	e.checkSeqs("Updates", evs)
	if string(evs[0].Meta) != `"uno"` || evs[0].SessionID != "s1" {
		e.Fatalf("Update = %+v; want the new metadata and SessionID s1", evs[0])
	}
	if evs := set("s1", `"uno"`); len(evs) != 0 {
		e.Fatalf("SetMeta with unchanged metadata = %v, want nothing", kinds(evs))
	}
	// s1 was set last: it comes last, and is the client's one value.
	if m := e.memberOf("r", "gil"); !slices.Equal(metas(m.Metas), []string{`"two"`, `"uno"`}) || string(m.Meta()) != `"uno"` {
		e.Fatalf("Metas in r = %v; want [\"two\" \"uno\"], the latest last", metas(m.Metas))
	}
	if m := e.memberOf("q", "gil"); m.Sessions != 2 || !slices.Equal(metas(m.Metas), []string{`"uno"`}) {
		e.Fatalf("member of q = %+v; want 2 sessions, one with metadata", m)
	}
	// Cleared metadata: an Update with none.
	if evs := set("s2", ""); len(evs) != 1 || evs[0].Room != "r" || len(evs[0].Meta) != 0 {
		e.Fatalf("SetMeta clearing = %+v, want one Update of r with no metadata", evs)
	}
	e.add(presence.Lease{ClientID: "gil", SessionID: "s4"})
	if evs := set("s4", `{"a":1}`); len(evs) != 0 {
		e.Fatalf("SetMeta of a session in no room = %v, want nothing", kinds(evs))
	}
	if got := string(e.session("gil", "s4").Meta); got != `{"a":1}` {
		e.Fatalf("Sessions meta = %s, want {\"a\":1}", got)
	}
	// A session that is ending, or unknown, cannot set metadata.
	if _, err := rs.End(e.ctx, presence.Ending{ClientID: "gil", SessionID: "s4", Grace: time.Hour}); err != nil {
		e.Fatal(err)
	}
	for _, sid := range []string{"s4", "nope"} {
		if _, err := rs.SetMeta(e.ctx, presence.SessionMeta{ClientID: "gil", SessionID: sid, Meta: json.RawMessage(`1`)}); !errors.Is(err, presence.ErrNotFound) {
			e.Errorf("SetMeta(%s) = %v, want ErrNotFound", sid, err)
		}
	}
}

// testRoomStoreCalls pins down Join and Leave on the store: ErrNotFound
// for a session it does not hold as live, ErrLimit past
// MaxRoomsPerSession, a Leave of an ending session, Leave with a reason.
func testRoomStoreCalls(e *env) {
	rs := e.rooms()
	join := func(cid, sid, room string) ([]presence.Event, error) {
		return rs.Join(e.ctx, presence.Membership{ClientID: cid, SessionID: sid, Room: room})
	}
	e.add(presence.Lease{ClientID: "hal", SessionID: "s"})
	for _, m := range [][2]string{{"hal", "nope"}, {"nobody", "s"}} {
		if _, err := join(m[0], m[1], "r"); !errors.Is(err, presence.ErrNotFound) {
			e.Errorf("Join of unknown session %v = %v, want ErrNotFound", m, err)
		}
	}
	for i := range presence.MaxRoomsPerSession {
		if _, err := join("hal", "s", fmt.Sprintf("room-%02d", i)); err != nil {
			e.Fatalf("Join %d: %v", i, err)
		}
	}
	if _, err := join("hal", "s", "one-more"); !errors.Is(err, presence.ErrLimit) {
		e.Fatalf("Join past MaxRoomsPerSession = %v, want ErrLimit", err)
	}
	if evs, err := join("hal", "s", "room-00"); err != nil || len(evs) != 0 {
		e.Fatalf("Join of a room the session is in, at the limit = %v, %v; want nothing", evs, err)
	}
	if n := len(e.clientRooms("hal")); n != presence.MaxRoomsPerSession {
		e.Fatalf("%d rooms after a refused Join, want %d", n, presence.MaxRoomsPerSession)
	}
	evs, err := rs.Leave(e.ctx, presence.Membership{ClientID: "hal", SessionID: "s", Room: "room-01", Reason: presence.ReasonKicked})
	if err != nil || !slices.Equal(kinds(evs), []string{"leave/kicked room-01"}) {
		e.Fatalf("Leave with a reason = %v, %v; want a Leave with it", kinds(evs), err)
	}
	if _, err := rs.Leave(e.ctx, presence.Membership{ClientID: "hal", SessionID: "s", Room: "room-01"}); !errors.Is(err, presence.ErrNotFound) {
		e.Fatalf("second Leave = %v, want ErrNotFound", err)
	}
	// An ending session cannot join, and keeps its rooms.
	if _, err := rs.End(e.ctx, presence.Ending{ClientID: "hal", SessionID: "s", Reason: presence.ReasonClosed, Grace: time.Hour}); err != nil {
		e.Fatal(err)
	}
	if _, err := join("hal", "s", "one-more"); !errors.Is(err, presence.ErrNotFound) {
		e.Fatalf("Join of an ending session = %v, want ErrNotFound", err)
	}
	if e.roomCount("room-02") != 1 {
		e.Fatalf("an ending session left its rooms")
	}
	// Ended without grace: each room's Leave with the reason, then the
	// Offline.
	evs, err = rs.End(e.ctx, presence.Ending{ClientID: "hal", Reason: presence.ReasonKicked})
	if err != nil || len(evs) != presence.MaxRoomsPerSession {
		e.Fatalf("End = %d events, %v; want %d Leaves and the Offline", len(evs), err, presence.MaxRoomsPerSession)
	}
	for i, ev := range evs[:len(evs)-1] {
		if ev.Transition != presence.Leave || ev.Reason != presence.ReasonKicked {
			e.Fatalf("event %d of End = %v/%s, want a Leave, kicked", i, ev.Transition, ev.Reason)
		}
	}
	if last := evs[len(evs)-1]; last.Transition != presence.Offline {
		e.Fatalf("End's last event = %v, want the Offline", last.Transition)
	}
	e.checkSeqs("End", evs)
}

// testRoomNodeLost pins down that a lost node's and a restarted node's
// sessions leave their rooms with ReasonNodeLost and ReasonRestart, before
// the Offline.
func testRoomNodeLost(e *env) {
	ns, ok := e.rooms().(presence.NodeSweeper)
	if !ok {
		e.Skip("the store is no presence.NodeSweeper")
	}
	if _, err := ns.SweepNode(e.ctx, presence.NodeLease{Node: "alive", TTL: time.Hour}); err != nil {
		e.Fatal(err)
	}
	e.add(presence.Lease{ClientID: "ida", SessionID: "s", Node: "dead", TTL: e.ttl, Rooms: []string{"r"}})
	e.add(presence.Lease{ClientID: "ida", SessionID: "t", Node: "alive", Rooms: []string{"q"}})
	if _, err := ns.SweepNode(e.ctx, presence.NodeLease{Node: "dead", TTL: e.u}); err != nil {
		e.Fatal(err)
	}
	e.sleep(e.ttl + e.u)
	evs, err := ns.SweepNode(e.ctx, presence.NodeLease{Node: "alive", TTL: time.Hour})
	if err != nil || !slices.Equal(kinds(evs), []string{"leave/node_lost r"}) {
		e.Fatalf("sweep after the node died = %v, %v; want a Leave of r, node_lost", kinds(evs), err)
	}
	if got := e.clientRooms("ida"); !slices.Equal(got, []string{"q"}) {
		e.Fatalf("ClientRooms = %v, want [q]", got)
	}

	// What a crashed incarnation of n1 left behind; a Tracker restarting
	// as n1 clears it.
	e.add(presence.Lease{ClientID: "jon", SessionID: "old", Node: "n1", Rooms: []string{"r", "s"}})
	e.add(presence.Lease{ClientID: "kit", SessionID: "old", Node: "n1", Rooms: []string{"r"}})
	tr := e.tracker("n1")
	e.sleep(e.grace / 2)
	kit := e.connect(tr, "kit", presence.SessionOptions{Rooms: []string{"r"}}) // back within grace: no flap
	e.waitFor(e.grace+3*e.sweep, "jon offline after the restart", func() bool { return len(e.rec.of("jon")) == 3 })
	kit.Beat()
	e.sleep(2 * e.sweep)
	e.expect("jon", "leave/restart r", "leave/restart s", offRestart)
	e.checkSeqs("jon's events", e.rec.of("jon"))
	e.expect("kit")
	if got := e.members("r"); !slices.Equal(got, []string{"kit"}) {
		e.Fatalf("Members(r) = %v, want [kit]", got)
	}
}

// testRoomQueries pins down Members, RoomCount, ClientRooms and
// MembersAmong, LastSeen included.
func testRoomQueries(e *env) {
	rs := e.rooms()
	e.add(presence.Lease{ClientID: "lea", SessionID: "s", Rooms: []string{"r", "a"}})
	e.add(presence.Lease{ClientID: "max", SessionID: "s", Rooms: []string{"r"}, Meta: json.RawMessage(`{"m":1}`)})
	e.add(presence.Lease{ClientID: "ned", SessionID: "s", Rooms: []string{"r"}})
	e.sleep(e.u)
	left := e.timed(func() error {
		_, err := rs.Leave(e.ctx, presence.Membership{ClientID: "ned", SessionID: "s", Room: "r"})
		return err
	})
	e.sleep(e.u)
	if got := e.members("r"); !slices.Equal(got, []string{"lea", "max"}) || e.roomCount("r") != 2 {
		e.Fatalf("Members(r) = %v, count %d; want [lea max], 2", got, e.roomCount("r"))
	}
	if got := e.clientRooms("lea"); !slices.Equal(got, []string{"a", "r"}) {
		e.Fatalf("ClientRooms(lea) = %v, want [a r]", got)
	}
	if got := e.clientRooms("nobody"); len(got) != 0 {
		e.Fatalf("ClientRooms(unknown) = %v, want none", got)
	}
	if n := e.roomCount("empty"); n != 0 || len(e.members("empty")) != 0 {
		e.Fatalf("a room nobody is in has members")
	}
	ms, err := rs.MembersAmong(e.ctx, "r", []string{"max", "nobody", "ned", "lea"})
	if err != nil || len(ms) != 4 {
		e.Fatalf("MembersAmong = %+v, %v", ms, err)
	}
	for i, id := range []string{"max", "nobody", "ned", "lea"} {
		if ms[i].ClientID != id {
			e.Fatalf("MembersAmong order = %+v", ms)
		}
	}
	if m := ms[0]; !m.In || m.Sessions != 1 || string(m.Meta()) != `{"m":1}` || m.Since.IsZero() || m.LastSeen.IsZero() {
		e.Errorf("max = %+v; want in, 1 session, its metadata, Since and LastSeen", m)
	}
	if m := ms[1]; m.In || !m.LastSeen.IsZero() || m.Sessions != 0 {
		e.Errorf("nobody = %+v; want not in, never seen", m)
	}
	if m := ms[2]; m.In || m.Sessions != 0 || !m.Since.IsZero() {
		e.Errorf("ned = %+v; want not in", m)
	} else {
		e.checkSeen("ned's LastSeen in the room it left", m.LastSeen, beat{at: left})
	}
	if m := ms[3]; !m.In || len(m.Metas) != 0 || m.Meta() != nil {
		e.Errorf("lea = %+v; want in, with no metadata", m)
	}
	// Through the Tracker too.
	tr := e.tracker("n1")
	if n, err := tr.RoomCount(e.ctx, "r"); err != nil || n != 2 {
		e.Errorf("Tracker.RoomCount = %d, %v; want 2", n, err)
	}
	if p, err := tr.Members(e.ctx, "r", "", 1); err != nil || len(p.Members) != 1 || p.Next == "" || p.Room != "r" {
		e.Errorf("Tracker.Members(limit 1) = %+v, %v; want one member and a cursor", p, err)
	}
}

// testRoomMembersPaging walks a room's members in small pages while others
// join and leave: the walk ends, and every member there for the whole walk
// appears exactly once. (A client that left and joined again during the
// walk may appear twice: the contract does not say.)
func testRoomMembersPaging(e *env) {
	rs := e.rooms()
	const stay, churn = 60, 40
	for i := range stay {
		e.add(presence.Lease{ClientID: fmt.Sprintf("stay-%02d", i), SessionID: "s", Rooms: []string{"big"}, Meta: json.RawMessage(`true`)})
	}
	for i := range churn {
		if i%2 == 0 {
			e.add(presence.Lease{ClientID: fmt.Sprintf("churn-%02d", i), SessionID: "s", Rooms: []string{"big"}})
		}
	}
	seen := map[string]int{}
	cursor, pages := "", 0
	for {
		p, err := rs.Members(e.ctx, "big", cursor, 7)
		if err != nil {
			e.Fatalf("Members page %d: %v", pages, err)
		}
		if len(p.Members) > 7 || p.Room != "big" {
			e.Fatalf("page %d = %d members of %q, want at most 7 of big", pages, len(p.Members), p.Room)
		}
		for _, m := range p.Members {
			seen[m.ClientID]++
			if !m.In || m.Sessions < 1 {
				e.Fatalf("listed member %+v is not in the room", m)
			}
			if strings.HasPrefix(m.ClientID, "stay-") && string(m.Meta()) != "true" {
				e.Fatalf("member %s without its metadata: %+v", m.ClientID, m)
			}
		}
		// Between pages, half the churning clients join, the others leave.
		for i := range churn {
			id := fmt.Sprintf("churn-%02d", i)
			if (i+pages)%2 == 0 {
				if _, err := rs.End(e.ctx, presence.Ending{ClientID: id, Reason: presence.ReasonClosed}); err != nil && !errors.Is(err, presence.ErrNotFound) {
					e.Fatal(err)
				}
			} else {
				e.add(presence.Lease{ClientID: id, SessionID: "s", Rooms: []string{"big"}})
			}
		}
		pages++
		if cursor = p.Next; cursor == "" {
			break
		}
		if pages > 2*(stay+churn) {
			e.Fatalf("no end after %d pages", pages)
		}
	}
	for i := range stay {
		if id := fmt.Sprintf("stay-%02d", i); seen[id] != 1 {
			e.Errorf("%s, in the room for the whole walk, listed %d times", id, seen[id])
		}
	}
}

// testRoomBadArguments pins down the errors of bad input: room names
// (ErrInvalidID), metadata over MaxMetaLen or not JSON, limits, cursors,
// lookups over MaxLookup (ErrInvalidArgument). Nothing is written.
func testRoomBadArguments(e *env) {
	rs := e.rooms()
	e.add(presence.Lease{ClientID: "ok", SessionID: "s"})
	long := strings.Repeat("r", presence.MaxIDLen+1)
	for _, room := range []string{"", "a\x00b", "tab\there", "\xff\xfe", long} {
		m := presence.Membership{ClientID: "ok", SessionID: "s", Room: room}
		if _, err := rs.Join(e.ctx, m); !errors.Is(err, presence.ErrInvalidID) {
			e.Errorf("Join(room %q) = %v, want ErrInvalidID", room, err)
		}
		if _, err := rs.Leave(e.ctx, m); !errors.Is(err, presence.ErrInvalidID) {
			e.Errorf("Leave(room %q) = %v, want ErrInvalidID", room, err)
		}
		if _, err := rs.Members(e.ctx, room, "", 10); !errors.Is(err, presence.ErrInvalidID) {
			e.Errorf("Members(room %q) = %v, want ErrInvalidID", room, err)
		}
		if _, err := rs.RoomCount(e.ctx, room); !errors.Is(err, presence.ErrInvalidID) {
			e.Errorf("RoomCount(room %q) = %v, want ErrInvalidID", room, err)
		}
		if _, err := rs.MembersAmong(e.ctx, room, []string{"ok"}); !errors.Is(err, presence.ErrInvalidID) {
			e.Errorf("MembersAmong(room %q) = %v, want ErrInvalidID", room, err)
		}
		if _, err := rs.Add(e.ctx, presence.Lease{ClientID: "new", SessionID: "s", Node: "n1", TTL: time.Hour, Rooms: []string{"fine", room}}); !errors.Is(err, presence.ErrInvalidID) {
			e.Errorf("Add(room %q) = %v, want ErrInvalidID", room, err)
		}
	}
	tooMany := make([]string, presence.MaxRoomsPerSession+1)
	for i := range tooMany {
		tooMany[i] = fmt.Sprintf("r%d", i)
	}
	if _, err := rs.Add(e.ctx, presence.Lease{ClientID: "new", SessionID: "s", Node: "n1", TTL: time.Hour, Rooms: tooMany}); !errors.Is(err, presence.ErrInvalidArgument) {
		e.Errorf("Add with %d rooms = %v, want ErrInvalidArgument", len(tooMany), err)
	}
	big := json.RawMessage(`"` + strings.Repeat("x", presence.MaxMetaLen-1) + `"`)
	for _, meta := range []json.RawMessage{big, json.RawMessage(`{"a":`), json.RawMessage(`1 2`), json.RawMessage("\xff")} {
		if _, err := rs.SetMeta(e.ctx, presence.SessionMeta{ClientID: "ok", SessionID: "s", Meta: meta}); !errors.Is(err, presence.ErrInvalidArgument) {
			e.Errorf("SetMeta(%.20q) = %v, want ErrInvalidArgument", meta, err)
		}
		if _, err := rs.Add(e.ctx, presence.Lease{ClientID: "new", SessionID: "s", Node: "n1", TTL: time.Hour, Meta: meta}); !errors.Is(err, presence.ErrInvalidArgument) {
			e.Errorf("Add(meta %.20q) = %v, want ErrInvalidArgument", meta, err)
		}
	}
	// The largest metadata is fine.
	ok := json.RawMessage(`"` + strings.Repeat("x", presence.MaxMetaLen-2) + `"`)
	if _, err := rs.SetMeta(e.ctx, presence.SessionMeta{ClientID: "ok", SessionID: "s", Meta: ok}); err != nil {
		e.Errorf("SetMeta of %d bytes = %v, want nil", len(ok), err)
	}
	for _, limit := range []int{0, -1} {
		if _, err := rs.Members(e.ctx, "r", "", limit); !errors.Is(err, presence.ErrInvalidArgument) {
			e.Errorf("Members(limit %d) = %v, want ErrInvalidArgument", limit, err)
		}
	}
	for _, cursor := range []string{"!!!", "\x00"} {
		if _, err := rs.Members(e.ctx, "r", cursor, 10); !errors.Is(err, presence.ErrInvalidArgument) {
			e.Errorf("Members(cursor %q) = %v, want ErrInvalidArgument", cursor, err)
		}
	}
	ids := make([]string, presence.MaxLookup+1)
	for i := range ids {
		ids[i] = fmt.Sprintf("c%d", i)
	}
	if _, err := rs.MembersAmong(e.ctx, "r", ids); !errors.Is(err, presence.ErrInvalidArgument) {
		e.Errorf("MembersAmong of %d IDs = %v, want ErrInvalidArgument", len(ids), err)
	}
	if _, err := rs.MembersAmong(e.ctx, "r", []string{"ok", "bad\n"}); !errors.Is(err, presence.ErrInvalidID) {
		e.Errorf("MembersAmong with a bad ID = %v, want ErrInvalidID", err)
	}
	if _, err := rs.ClientRooms(e.ctx, "bad\n"); !errors.Is(err, presence.ErrInvalidID) {
		e.Errorf("ClientRooms(bad ID) = %v, want ErrInvalidID", err)
	}
	// Nothing above wrote anything.
	if p := e.lookup("new"); !p.LastSeen.IsZero() {
		e.Errorf("a refused Add recorded a client: %+v", p)
	}
	if got := e.clientRooms("ok"); len(got) != 0 {
		e.Errorf("ClientRooms(ok) = %v after bad calls, want none", got)
	}
}

// testRoomCaps pins down rooms at the store's caps (Config.NewCapped): an
// Add refused past them joins nothing; a client's last-left time is
// remembered while the client is, and forgotten with it.
func testRoomCaps(e *env) {
	if e.cfg.NewCapped == nil {
		e.Skip("storetest.Config.NewCapped is nil: no caps to test")
	}
	e.store = e.cfg.NewCapped(e.T, 2, 3)
	rs := e.rooms()
	e.add(presence.Lease{ClientID: "ned", SessionID: "s", Rooms: []string{"r"}})
	e.add(presence.Lease{ClientID: "oli", SessionID: "s", Rooms: []string{"r"}})
	if _, err := rs.Add(e.ctx, presence.Lease{ClientID: "pam", SessionID: "s", Node: "n1", TTL: time.Hour, Rooms: []string{"r", "q"}}); !errors.Is(err, presence.ErrLimit) {
		e.Fatalf("Add of a third client past MaxClients 2 = %v, want ErrLimit", err)
	}
	if got := e.members("r"); !slices.Equal(got, []string{"ned", "oli"}) || e.roomCount("q") != 0 {
		e.Fatalf("after a refused Add: Members(r) = %v, RoomCount(q) = %d; want [ned oli], 0", got, e.roomCount("q"))
	}
	evs, err := rs.End(e.ctx, presence.Ending{ClientID: "ned", Reason: presence.ReasonClosed})
	if err != nil || !slices.Equal(kinds(evs), []string{"leave/closed r", offClosed}) {
		e.Fatalf("End = %v, %v; want the Leave of r, then the Offline", kinds(evs), err)
	}
	if m := e.memberOf("r", "ned"); m.In || !m.LastSeen.Equal(evs[0].LastSeen) {
		e.Fatalf("ned offline = %+v; want out of r, LastSeen %v as its Leave said", m, evs[0].LastSeen)
	}
	// A new client takes the place of ned, the one offline the longest:
	// ned's time in r goes with it. (After a second: see testStoreCaps.)
	e.sleep(time.Second)
	e.add(presence.Lease{ClientID: "pam", SessionID: "s"})
	if m := e.memberOf("r", "ned"); m.In || !m.LastSeen.IsZero() {
		e.Fatalf("ned forgotten = %+v; want out of r, no LastSeen", m)
	}
}

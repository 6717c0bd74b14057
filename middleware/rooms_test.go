package middleware_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/gorilla/websocket"

	"github.com/vigilhq/vigil/middleware"
	"github.com/vigilhq/vigil/presence"
	"github.com/vigilhq/vigil/store/memory"
)

// queryRooms is a Config.Rooms as the chat demo's: the "room" query
// parameters (none: "general"), and {"name": the "name" parameter, or the
// client ID} as metadata.
func queryRooms(r *http.Request, id string) (middleware.SessionRooms, error) {
	q := r.URL.Query()
	if q.Get("fail") != "" {
		return middleware.SessionRooms{}, errors.New("not allowed in " + q.Get("fail"))
	}
	rooms := q["room"]
	if len(rooms) == 0 {
		rooms = []string{"general"}
	}
	name := q.Get("name")
	if name == "" {
		name = id
	}
	meta, err := json.Marshal(map[string]string{"name": name})
	return middleware.SessionRooms{Rooms: rooms, Meta: meta}, err
}

// roomsEnv is an env whose Server joins sessions to rooms with queryRooms,
// recording every transition (rooms' too) in evCh, served with the rooms
// endpoint at /rooms/{room} and the feed at /feed.
func roomsEnv(t *testing.T, h middleware.Handler) (*env, string) {
	t.Helper()
	return roomsEnvWith(t, fastTracker(), h)
}

// roomsEnvWith is roomsEnv over a Tracker configured by tcfg.
func roomsEnvWith(t *testing.T, tcfg presence.Config, h middleware.Handler) (*env, string) {
	t.Helper()
	cfg := fastServer()
	cfg.Rooms = queryRooms
	e := newEnv(t, tcfg, cfg)
	rec := func(_ context.Context, ev presence.Event) { e.evCh <- ev }
	e.tr.OnJoin("", rec)
	e.tr.OnLeave("", rec)
	e.tr.OnUpdate("", rec)
	m := e.mux(h)
	m.Handle("/rooms/{room}", e.srv.RoomEndpoint())
	feed, err := middleware.NewFeed(e.tr, middleware.FeedConfig{})
	if err != nil {
		t.Fatal(err)
	}
	m.Handle("/feed", feed)
	ts := startHTTP(t, m)
	t.Cleanup(func() { feed.Close() }) // before ts.Close, which waits for the streams
	return e, ts.URL
}

// step is a transition as the tests compare them.
type step struct {
	Client, Transition, Room, Reason, Meta string
}

func stepOf(ev presence.Event) step {
	s := step{Client: ev.ClientID, Transition: ev.Transition.String(), Room: ev.Room, Meta: string(ev.Meta)}
	if ev.Transition != presence.Online && ev.Transition != presence.Join {
		s.Reason = string(ev.Reason)
	}
	return s
}

// expect waits for the next len(want) transitions of client and compares
// them, checking that their Seqs grow. A Store orders the transitions of
// one step (a session's Leaves, the Updates of new metadata) as it likes:
// within a run of one kind, rooms are compared in any order.
func (e *env) expect(t *testing.T, client string, want ...step) []presence.Event {
	t.Helper()
	var evs []presence.Event
	var got []step
	for range want {
		ev := e.waitEvent(t, client, 5*time.Second)
		if len(evs) > 0 && ev.Seq <= evs[len(evs)-1].Seq {
			t.Errorf("seq %d after %d", ev.Seq, evs[len(evs)-1].Seq)
		}
		evs = append(evs, ev)
		got = append(got, stepOf(ev))
	}
	if d := cmp.Diff(sortRuns(want), sortRuns(got)); d != "" {
		t.Fatalf("transitions of %s (-want +got):\n%s", client, d)
	}
	return evs
}

// sortRuns sorts by room each run of steps of one transition.
func sortRuns(steps []step) []step {
	steps = slices.Clone(steps)
	for i := 0; i < len(steps); {
		j := i + 1
		for j < len(steps) && steps[j].Transition == steps[i].Transition {
			j++
		}
		slices.SortStableFunc(steps[i:j], func(a, b step) int { return strings.Compare(a.Room, b.Room) })
		i = j
	}
	return steps
}

// roomPage reads GET /rooms/{room}?query.
func roomPage(t *testing.T, base, room, query string) (int, middleware.RoomPage) {
	t.Helper()
	var p middleware.RoomPage
	u := base + "/rooms/" + url.PathEscape(room)
	if query != "" {
		u += "?" + query
	}
	return getJSON(t, u, &p), p
}

func member(id string, sessions int, names ...string) middleware.RoomMember {
	m := middleware.RoomMember{ID: id, Sessions: sessions, Meta: []json.RawMessage{}, State: "online"}
	for _, n := range names {
		b, _ := json.Marshal(map[string]string{"name": n})
		m.Meta = append(m.Meta, b)
	}
	return m
}

func wantRoom(t *testing.T, base, room string, members ...middleware.RoomMember) {
	t.Helper()
	code, p := roomPage(t, base, room, "")
	want := middleware.RoomPage{Room: room, Count: len(members), Members: members}
	if want.Members == nil {
		want.Members = []middleware.RoomMember{}
	}
	// Every member's last active time is set, and is its own: checked
	// apart (states_test.go), then left out of the comparison.
	for i := range p.Members {
		if _, err := time.Parse(time.RFC3339Nano, p.Members[i].LastActive); err != nil {
			t.Errorf("GET /rooms/%s: member %s last_active %q: %v", room, p.Members[i].ID, p.Members[i].LastActive, err)
		}
		p.Members[i].LastActive = ""
	}
	if d := cmp.Diff(want, p); code != 200 || d != "" {
		t.Fatalf("GET /rooms/%s: %d (-want +got):\n%s", room, code, d)
	}
}

// A WebSocket session joins Config.Rooms' rooms with its metadata in its
// Online's Store step: the Joins follow the Online, each room lists the
// client with its name, and the close takes it out of every room (Leaves
// before the Offline) after Grace.
func TestRoomsAtConnect(t *testing.T) {
	e, base := roomsEnv(t, echo)
	c := mustDial(t, wsURL2(base, "/ws?id=alice&room=a&room=b&room=a&name=Ada"))
	meta := `{"name":"Ada"}`
	e.expect(t, "alice",
		step{"alice", "online", "", "", ""},
		step{"alice", "join", "a", "", meta},
		step{"alice", "join", "b", "", meta})
	wantRoom(t, base, "a", member("alice", 1, "Ada"))
	wantRoom(t, base, "b", member("alice", 1, "Ada"))
	wantRoom(t, base, "general")

	// The default room of queryRooms, and a second client.
	mustDial(t, wsURL2(base, "/ws?id=bob"))
	e.expect(t, "bob", step{"bob", "online", "", "", ""}, step{"bob", "join", "general", "", `{"name":"bob"}`})
	wantRoom(t, base, "general", member("bob", 1, "bob"))

	c.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(1000, ""))
	e.expect(t, "alice",
		step{"alice", "leave", "a", "closed", ""},
		step{"alice", "leave", "b", "closed", ""},
		step{"alice", "offline", "", "closed", ""})
	wantRoom(t, base, "a")
}

// With a cluster-wide session cap the session opens before the upgrade:
// it joins its rooms there, in the same Store step, and a client over the
// cap gets 429 and joins nothing.
func TestRoomsAtConnectCapped(t *testing.T) {
	tcfg := fastTracker()
	tcfg.MaxSessionsPerClient = 1
	e, base := roomsEnvWith(t, tcfg, echo)
	mustDial(t, wsURL2(base, "/ws?id=kim&room=k1&name=Kim"))
	e.expect(t, "kim", step{"kim", "online", "", "", ""}, step{"kim", "join", "k1", "", `{"name":"Kim"}`})
	wantRoom(t, base, "k1", member("kim", 1, "Kim"))
	_, resp, err := dial(t, wsURL2(base, "/ws?id=kim&room=k2"), nil)
	if err == nil || resp == nil || resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("second session: %v %v; want 429", resp, err)
	}
	wantRoom(t, base, "k2")
	e.noEvent(t, 100*time.Millisecond)
}

func wsURL2(base, path string) string { return "ws" + strings.TrimPrefix(base, "http") + path }

// A Handler joins, leaves and sets metadata through Conn.Session; bad
// room names and metadata fail the call and disturb nothing else.
func TestRoomsFromHandler(t *testing.T) {
	h := func(ctx context.Context, c *middleware.Conn) {
		for {
			m, err := c.Receive(ctx)
			if err != nil {
				return
			}
			verb, arg, _ := strings.Cut(string(m.Data), " ")
			switch verb {
			case "join":
				err = c.Session().Join(ctx, arg)
			case "leave":
				err = c.Session().Leave(ctx, arg)
			case "meta":
				err = c.Session().SetMeta(ctx, json.RawMessage(arg))
			case "rooms":
				_ = c.Send(middleware.Text, []byte(strings.Join(c.Session().Rooms(), ",")))
				continue
			}
			reply := "ok"
			switch {
			case errors.Is(err, presence.ErrInvalidID):
				reply = "invalid id"
			case errors.Is(err, presence.ErrInvalidArgument):
				reply = "invalid argument"
			case errors.Is(err, presence.ErrNotFound):
				reply = "not found"
			case err != nil:
				reply = err.Error()
			}
			_ = c.Send(middleware.Text, []byte(reply))
		}
	}
	e, base := roomsEnv(t, h)
	c := mustDial(t, wsURL2(base, "/ws?id=carl&room=lobby"))
	e.expect(t, "carl", step{"carl", "online", "", "", ""}, step{"carl", "join", "lobby", "", `{"name":"carl"}`})
	call := func(msg, want string) {
		t.Helper()
		if err := c.WriteMessage(websocket.TextMessage, []byte(msg)); err != nil {
			t.Fatal(err)
		}
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, got, err := c.ReadMessage()
		if err != nil || string(got) != want {
			t.Fatalf("%q: %q, %v; want %q", msg, got, err, want)
		}
	}
	call("join game:1", "ok")
	e.expect(t, "carl", step{"carl", "join", "game:1", "", `{"name":"carl"}`})
	call("join game:1", "ok") // already in it: nothing
	call("meta {\"name\":\"Carl\"}", "ok")
	e.expect(t, "carl",
		step{"carl", "update", "game:1", "", `{"name":"Carl"}`},
		step{"carl", "update", "lobby", "", `{"name":"Carl"}`})
	wantRoom(t, base, "game:1", member("carl", 1, "Carl"))
	call("leave lobby", "ok")
	e.expect(t, "carl", step{"carl", "leave", "lobby", "left", ""})
	wantRoom(t, base, "lobby")

	call("join "+strings.Repeat("x", presence.MaxIDLen+1), "invalid id")
	call("join ", "invalid id")
	call("meta {", "invalid argument")
	call("meta "+strings.Repeat(" ", presence.MaxMetaLen+1)+"1", "invalid argument")
	call("leave nowhere", "not found")
	call("rooms", "game:1")
	e.noEvent(t, 100*time.Millisecond)
}

// An HTTP-heartbeat session joins Config.Rooms' rooms with its first
// heartbeat; later heartbeats join only the rooms it is not in and set
// changed metadata (an Update per room, never a Leave and a Join); the
// application reaches the session with Server.HTTPSession; leaving ends it
// through Grace.
func TestRoomsHTTPHeartbeat(t *testing.T) {
	e, base := roomsEnv(t, echo)
	beat := func(query string) {
		t.Helper()
		if resp := post(t, base+"/presence/heartbeat?"+query, "", ""); resp.StatusCode != 200 {
			t.Fatalf("heartbeat ?%s: %d", query, resp.StatusCode)
		}
	}
	beat("id=dee&session=t1&room=a&name=Dee")
	e.expect(t, "dee", step{"dee", "online", "", "", ""}, step{"dee", "join", "a", "", `{"name":"Dee"}`})
	beat("id=dee&session=t1&room=a&name=Dee")
	beat("id=dee&session=t1&room=a&room=b&name=Dee")
	e.expect(t, "dee", step{"dee", "join", "b", "", `{"name":"Dee"}`})
	beat("id=dee&session=t1&room=b&name=D")
	e.expect(t, "dee",
		step{"dee", "update", "a", "", `{"name":"D"}`},
		step{"dee", "update", "b", "", `{"name":"D"}`})
	// A second tab of the same client: one member, two sessions.
	beat("id=dee&session=t2&room=b&name=Dee")
	wantRoom(t, base, "b", member("dee", 2, "D", "Dee"))
	wantRoom(t, base, "a", member("dee", 1, "D"))

	sess, ok := e.srv.HTTPSession("dee", "t1")
	if !ok || !slices.Equal(sess.Rooms(), []string{"a", "b"}) {
		t.Fatalf("HTTPSession: %v, %v", sess, ok)
	}
	if err := sess.Leave(context.Background(), "a"); err != nil {
		t.Fatal(err)
	}
	e.expect(t, "dee", step{"dee", "leave", "a", "left", ""})
	if _, ok := e.srv.HTTPSession("dee", "t9"); ok {
		t.Error("HTTPSession of a session never opened")
	}

	for _, s := range []string{"t1", "t2"} {
		if resp := post(t, base+"/presence/leave?id=dee&session="+s, "", ""); resp.StatusCode != 204 {
			t.Fatalf("leave %s: %d", s, resp.StatusCode)
		}
	}
	e.expect(t, "dee", step{"dee", "leave", "b", "left", ""}, step{"dee", "offline", "", "left", ""})
}

// Bad rooms and metadata from Config.Rooms are answered 400 with their
// code before any upgrade or session: no transition, nothing counted.
func TestRoomsBadInput(t *testing.T) {
	e, base := roomsEnv(t, echo)
	many := ""
	for i := range presence.MaxRoomsPerSession + 1 {
		many += "&room=r" + strconv.Itoa(i)
	}
	tests := []struct {
		name, query, code string
	}{
		{"long room", "room=" + strings.Repeat("r", presence.MaxIDLen+1), middleware.CodeInvalidRoom},
		{"control character", "room=a%01b", middleware.CodeInvalidRoom},
		{"invalid UTF-8", "room=%ff", middleware.CodeInvalidRoom},
		{"empty room", "room=", middleware.CodeInvalidRoom},
		{"too many rooms", many[1:], middleware.CodeInvalidRoom},
		{"metadata over 1 KiB", "name=" + strings.Repeat("n", presence.MaxMetaLen), middleware.CodeInvalidMeta},
		{"refused by the app", "fail=vip", middleware.CodeInvalidRoom},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			check := func(what string, resp *http.Response) {
				t.Helper()
				var reply middleware.ErrorReply
				_ = json.NewDecoder(resp.Body).Decode(&reply)
				if resp.StatusCode != 400 || reply.Error.Code != tt.code || reply.Error.Message == "" {
					t.Errorf("%s: %d %+v; want 400 %s", what, resp.StatusCode, reply, tt.code)
				}
			}
			_, resp, err := dial(t, wsURL2(base, "/ws?id=eve&"+tt.query), nil)
			if err == nil {
				t.Fatal("upgraded")
			}
			check("upgrade", resp)
			check("heartbeat", post(t, base+"/presence/heartbeat?id=eve&"+tt.query, "", ""))
		})
	}
	// A page over the rooms cap, in several heartbeats of one session.
	for i := 0; i < presence.MaxRoomsPerSession; i += 16 {
		q := "id=fay"
		for j := i; j < i+16; j++ {
			q += "&room=r" + strconv.Itoa(j)
		}
		if resp := post(t, base+"/presence/heartbeat?"+q, "", ""); resp.StatusCode != 200 {
			t.Fatalf("heartbeat: %d", resp.StatusCode)
		}
	}
	var reply middleware.ErrorReply
	resp := post(t, base+"/presence/heartbeat?id=fay&room=one-more", "", "")
	_ = json.NewDecoder(resp.Body).Decode(&reply)
	if resp.StatusCode != 400 || reply.Error.Code != middleware.CodeInvalidRoom {
		t.Errorf("65th room: %d %+v", resp.StatusCode, reply)
	}
	if n, _ := e.tr.Count(context.Background()); n != 1 {
		t.Errorf("%d clients online, want fay alone", n)
	}
	if got := e.srv.Stats().Refusals[middleware.CodeInvalidMeta]; got != 2 {
		t.Errorf("invalid_meta refusals %d, want 2", got)
	}
	// The client refused first is fine afterwards.
	mustDial(t, wsURL2(base, "/ws?id=eve&room=ok"))
	e.expect(t, "eve", step{"eve", "online", "", "", ""}, step{"eve", "join", "ok", "", `{"name":"eve"}`})
}

// The room endpoint pages through a room's members with a cursor, as the
// online list does, and answers 200 with count 0 for a room nobody is in
// and 400 for an invalid room name, limit or cursor.
func TestRoomEndpoint(t *testing.T) {
	_, base := roomsEnv(t, echo)
	var want []string
	for i := range 7 {
		id := "m" + strconv.Itoa(i)
		want = append(want, id)
		if resp := post(t, base+"/presence/heartbeat?room=big&room=%23other&id="+id, "", ""); resp.StatusCode != 200 {
			t.Fatalf("heartbeat: %d", resp.StatusCode)
		}
	}
	var got []string
	cursor, pages := "", 0
	for {
		code, p := roomPage(t, base, "big", "limit=3&cursor="+url.QueryEscape(cursor))
		if code != 200 || p.Room != "big" || p.Count != 7 || len(p.Members) > 3 {
			t.Fatalf("page %d: %d %+v", pages, code, p)
		}
		for _, m := range p.Members {
			if m.Sessions != 1 || len(m.Meta) != 1 || string(m.Meta[0]) != `{"name":"`+m.ID+`"}` {
				t.Errorf("member %+v", m)
			}
			got = append(got, m.ID)
		}
		pages++
		if cursor = p.Next; cursor == "" {
			break
		}
	}
	slices.Sort(got)
	if !slices.Equal(got, want) || pages < 3 {
		t.Errorf("members %q in %d pages, want %q", got, pages, want)
	}
	if code, p := roomPage(t, base, "#other", ""); code != 200 || p.Count != 7 || len(p.Members) != 7 || p.Next != "" {
		t.Errorf("#other: %d %+v", code, p)
	}
	// An empty room, and its raw JSON: "members" is [], never null.
	resp, err := http.Get(base + "/rooms/empty")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := bufio.NewReader(resp.Body).ReadString(0)
	resp.Body.Close()
	if resp.StatusCode != 200 || strings.TrimSpace(body) != `{"room":"empty","count":0,"members":[],"next":""}` {
		t.Errorf("empty room: %d %s", resp.StatusCode, body)
	}

	for _, tt := range []struct {
		path, code string
		status     int
	}{
		{"/rooms/" + strings.Repeat("r", presence.MaxIDLen+1), middleware.CodeInvalidRoom, 400},
		{"/rooms/a%01", middleware.CodeInvalidRoom, 400},
		{"/rooms/big?limit=0", middleware.CodeInvalidQuery, 400},
		{"/rooms/big?limit=x", middleware.CodeInvalidQuery, 400},
		{"/rooms/big?cursor=%21%21", middleware.CodeInvalidQuery, 400},
	} {
		resp, err := http.Get(base + tt.path)
		if err != nil {
			t.Fatal(err)
		}
		var reply middleware.ErrorReply
		_ = json.NewDecoder(resp.Body).Decode(&reply)
		resp.Body.Close()
		if resp.StatusCode != tt.status || reply.Error.Code != tt.code {
			t.Errorf("GET %.60s: %d %q, want %d %q", tt.path, resp.StatusCode, reply.Error.Code, tt.status, tt.code)
		}
	}
	resp = post(t, base+"/rooms/big", "", "")
	if resp.StatusCode != 405 || resp.Header.Get("Allow") != "GET, HEAD" {
		t.Errorf("POST: %d, Allow %q", resp.StatusCode, resp.Header.Get("Allow"))
	}
}

// noRooms hides a Store's RoomStore methods.
type noRooms struct{ presence.Store }

// Over a Store without rooms, Config.Rooms fails New and the room
// endpoint answers 501, while presence works as before.
func TestRoomsUnsupported(t *testing.T) {
	st, err := memory.New(memory.Config{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	tr, err := presence.New(ctx, noRooms{st}, presence.Config{Node: "n1"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Close(ctx) })
	_, err = middleware.New(tr, middleware.Config{Identify: middleware.IdentifyQuery("id"), Rooms: queryRooms})
	if !errors.Is(err, middleware.ErrInvalidConfig) || !errors.Is(err, errors.ErrUnsupported) {
		t.Fatalf("New with Rooms: %v", err)
	}
	srv, err := middleware.New(tr, middleware.Config{Identify: middleware.IdentifyQuery("id")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Shutdown(ctx) })
	m := http.NewServeMux()
	if _, err := srv.Mount(m, "/presence", middleware.MountConfig{DisableFeed: true}); err != nil {
		t.Fatal(err)
	}
	ts := startHTTP(t, m)
	resp, err := http.Get(ts.URL + "/presence/rooms/general")
	if err != nil {
		t.Fatal(err)
	}
	var reply middleware.ErrorReply
	_ = json.NewDecoder(resp.Body).Decode(&reply)
	resp.Body.Close()
	if resp.StatusCode != 501 || reply.Error.Code != middleware.CodeRoomsUnsupported {
		t.Errorf("rooms endpoint: %d %+v", resp.StatusCode, reply)
	}
	if resp := post(t, ts.URL+"/presence/heartbeat?id=gus", "", ""); resp.StatusCode != 200 {
		t.Errorf("heartbeat: %d", resp.StatusCode)
	}
}

// Attach opens the session in Config.Rooms' rooms, from the upgrade
// request; the application's handler reaches it through Conn.Session.
func TestRoomsAttach(t *testing.T) {
	e, _ := roomsEnv(t, echo)
	up := websocket.Upgrader{}
	attached := make(chan *middleware.Conn, 1)
	ts := startHTTP(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.URL.Query().Get("id")
		ws, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		c, err := e.srv.Attach(r, id, ws)
		if err != nil {
			ws.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(1008, err.Error()))
			ws.Close()
			return
		}
		attached <- c
		for {
			typ, data, err := ws.ReadMessage()
			if err != nil {
				c.Finish(err)
				return
			}
			c.Received(typ, data)
		}
	}))
	c := mustDial(t, wsURL(ts, "/?id=hal&room=den&name=Hal"))
	e.expect(t, "hal", step{"hal", "online", "", "", ""}, step{"hal", "join", "den", "", `{"name":"Hal"}`})
	conn := <-attached
	if got := conn.Session().Rooms(); !slices.Equal(got, []string{"den"}) {
		t.Errorf("Session().Rooms() = %q", got)
	}
	if err := conn.Session().Join(context.Background(), "den2"); err != nil {
		t.Fatal(err)
	}
	e.expect(t, "hal", step{"hal", "join", "den2", "", `{"name":"Hal"}`})
	c.Close()
	e.expect(t, "hal",
		step{"hal", "leave", "den", "closed", ""},
		step{"hal", "leave", "den2", "closed", ""},
		step{"hal", "offline", "", "closed", ""})

	// A bad room: Attach fails with ErrInvalidID, and the app closes.
	bad := mustDial(t, wsURL(ts, "/?id=hal&room="))
	if code, _ := closeCode(t, bad, 5*time.Second); code != 1008 {
		t.Errorf("close %d, want the app's 1008", code)
	}
	e.noEvent(t, 100*time.Millisecond)
}

// The feed carries the rooms' transitions, in each client's Seq order,
// with their room, session and metadata.
func TestFeedRooms(t *testing.T) {
	_, base := roomsEnv(t, echo)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", base+"/feed", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	next := func() (string, map[string]any) {
		t.Helper()
		var event string
		var data map[string]any
		for sc.Scan() {
			line := sc.Text()
			switch {
			case strings.HasPrefix(line, "event: "):
				event = strings.TrimPrefix(line, "event: ")
			case strings.HasPrefix(line, "data: "):
				if err := json.Unmarshal([]byte(strings.TrimPrefix(line, "data: ")), &data); err != nil {
					t.Fatalf("data %q: %v", line, err)
				}
			case line == "" && event != "":
				return event, data
			}
		}
		t.Fatalf("feed ended: %v", sc.Err())
		return "", nil
	}
	if ev, _ := next(); ev != "snapshot" {
		t.Fatalf("first event %s", ev)
	}
	post(t, base+"/presence/heartbeat?id=ivy&session=s1&room=r1&name=Ivy", "", "")
	post(t, base+"/presence/heartbeat?id=ivy&session=s1&room=r1&name=Ives", "", "")
	post(t, base+"/presence/leave?id=ivy&session=s1", "", "")
	var seq float64
	for _, want := range []struct {
		event string
		keys  map[string]any
	}{
		{"online", map[string]any{"id": "ivy"}},
		{"join", map[string]any{"id": "ivy", "room": "r1", "session": "s1", "meta": map[string]any{"name": "Ivy"}}},
		{"update", map[string]any{"id": "ivy", "room": "r1", "session": "s1", "meta": map[string]any{"name": "Ives"}}},
		{"leave", map[string]any{"id": "ivy", "room": "r1", "session": "s1", "reason": "left"}},
		{"offline", map[string]any{"id": "ivy", "reason": "left"}},
	} {
		ev, data := next()
		if ev != want.event {
			t.Fatalf("event %s %v, want %s", ev, data, want.event)
		}
		for k, v := range want.keys {
			if d := cmp.Diff(v, data[k]); d != "" {
				t.Errorf("%s %s: %s", ev, k, d)
			}
		}
		if s, _ := data["seq"].(float64); s <= seq {
			t.Errorf("%s: seq %v after %v", ev, data["seq"], seq)
		} else {
			seq = s
		}
	}
}

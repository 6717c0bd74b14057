package main

import (
	"bufio"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.Cleanup(func(code int) {
		if builtBin != "" {
			os.RemoveAll(filepath.Dir(builtBin))
		}
		os.Exit(code)
	}))
}

// demo is the chat binary running as a process, with its JSON log lines.
type demo struct {
	cmd  *exec.Cmd
	addr string

	mu    sync.Mutex
	lines []map[string]any
	cond  *sync.Cond
	done  chan struct{}
}

var (
	buildOnce sync.Once
	builtBin  string
	buildErr  error
)

// demoBinary builds the demo once per test binary run.
func demoBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "vigil-chat-")
		if err != nil {
			buildErr = err
			return
		}
		builtBin = filepath.Join(dir, "chat")
		build := exec.Command("go", "build", "-o", builtBin, ".")
		build.Stderr = os.Stderr
		buildErr = build.Run()
	})
	if buildErr != nil {
		t.Fatalf("go build: %v", buildErr)
	}
	return builtBin
}

func startDemo(t *testing.T, args ...string) *demo {
	t.Helper()
	d := &demo{done: make(chan struct{})}
	d.cond = sync.NewCond(&d.mu)
	d.cmd = exec.Command(demoBinary(t), append([]string{"-addr", "127.0.0.1:0", "-log-format", "json"}, args...)...)
	stderr, err := d.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		defer close(d.done)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			var m map[string]any
			if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
				t.Errorf("log line is not JSON: %q", sc.Text())
				continue
			}
			m[recvKey] = time.Now()
			d.mu.Lock()
			d.lines = append(d.lines, m)
			d.cond.Broadcast()
			d.mu.Unlock()
		}
		d.mu.Lock()
		d.cond.Broadcast()
		d.mu.Unlock()
	}()
	t.Cleanup(func() {
		d.cmd.Process.Kill()
		<-d.done
		d.cmd.Wait()
	})
	listening := d.wait(t, map[string]string{"event": "listening"})
	d.addr = listening["addr"].(string)
	return d
}

// recvKey is the key, in a log line, of the time the test read it.
const recvKey = "_recv"

// wait returns the first log line with all the attributes of want, waiting
// up to 10s for it.
func (d *demo) wait(t *testing.T, want map[string]string) map[string]any {
	t.Helper()
	return d.waitFor(t, want, 10*time.Second)
}

// waitFor is wait with a time limit of its own.
func (d *demo) waitFor(t *testing.T, want map[string]string, within time.Duration) map[string]any {
	t.Helper()
	deadline := time.Now().Add(within)
	timer := time.AfterFunc(within, func() { d.mu.Lock(); d.cond.Broadcast(); d.mu.Unlock() })
	defer timer.Stop()
	d.mu.Lock()
	defer d.mu.Unlock()
	for {
		for _, l := range d.lines {
			if matches(l, want) {
				return l
			}
		}
		select {
		case <-d.done:
			t.Fatalf("demo exited without logging %v", want)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("no log line %v within %v", want, within)
		}
		d.cond.Wait()
	}
}

func matches(l map[string]any, want map[string]string) bool {
	for k, v := range want {
		if s, _ := l[k].(string); s != v {
			return false
		}
	}
	return true
}

func (d *demo) index(want map[string]string) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	for i, l := range d.lines {
		if matches(l, want) {
			return i
		}
	}
	return -1
}

func (d *demo) get(t *testing.T, path string, v any) int {
	t.Helper()
	resp, err := http.Get("http://" + d.addr + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if v != nil && resp.StatusCode == 200 {
		if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
			t.Fatal(err)
		}
	}
	return resp.StatusCode
}

type client struct {
	ws   *websocket.Conn
	msgs chan string
	code chan int
}

func (d *demo) connect(t *testing.T, name string) *client {
	t.Helper()
	return d.connectTo(t, "/ws?id="+name)
}

// connectTo opens a WebSocket to path (with its query).
func (d *demo) connectTo(t *testing.T, path string) *client {
	t.Helper()
	ws, _, err := websocket.DefaultDialer.Dial("ws://"+d.addr+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	c := &client{ws: ws, msgs: make(chan string, 10), code: make(chan int, 1)}
	go func() {
		for {
			_, data, err := ws.ReadMessage()
			if err != nil {
				code := 1006
				if ce, ok := err.(*websocket.CloseError); ok {
					code = ce.Code
				}
				c.code <- code
				return
			}
			c.msgs <- string(data)
		}
	}()
	t.Cleanup(func() { ws.Close() })
	return c
}

type status struct {
	ID         string `json:"id"`
	Online     bool   `json:"online"`
	Sessions   int    `json:"sessions"`
	LastSeen   string `json:"last_seen"`
	State      string `json:"state"`
	LastActive string `json:"last_active"`
}

func TestDemo(t *testing.T) {
	d := startDemo(t, "-ping-interval", "1s", "-pong-timeout", "1s", "-grace", "300ms", "-drain-window", "200ms")
	if st := d.get(t, "/", nil); st != 200 {
		t.Fatalf("page: %d", st)
	}
	alice := d.connect(t, "alice")
	bob := d.connect(t, "bob")
	d.wait(t, map[string]string{"event": "online", "client": "alice", "client_id": "alice"})
	d.wait(t, map[string]string{"event": "online", "client": "bob"})

	// Each sees the other online through the status endpoint.
	var page struct {
		Clients []status `json:"clients"`
		Next    string   `json:"next"`
	}
	if st := d.get(t, "/presence", &page); st != 200 {
		t.Fatalf("presence: %d", st)
	}
	seen := map[string]bool{}
	for _, c := range page.Clients {
		if c.Online && c.Sessions == 1 && c.LastSeen != "" {
			seen[c.ID] = true
		}
	}
	if !seen["alice"] || !seen["bob"] || len(page.Clients) != 2 {
		t.Fatalf("online list %+v", page)
	}

	// Chat: alice's message reaches both.
	alice.ws.WriteMessage(websocket.TextMessage, []byte("hello bob"))
	for _, c := range []*client{alice, bob} {
		select {
		case m := <-c.msgs:
			var cm struct{ From, Text string }
			json.Unmarshal([]byte(m), &cm)
			if cm.From != "alice" || cm.Text != "hello bob" {
				t.Fatalf("message %q", m)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("no chat message")
		}
	}
	// The app ping is answered, not broadcast.
	bob.ws.WriteMessage(websocket.TextMessage, []byte("ping"))
	if m := <-bob.msgs; m != "pong" {
		t.Fatalf("got %q, want pong", m)
	}

	// Bad input gets a clear answer.
	if _, resp, _ := websocket.DefaultDialer.Dial("ws://"+d.addr+"/ws?id=%00", nil); resp == nil || resp.StatusCode != 400 {
		t.Fatalf("invalid id: %+v", resp)
	}
	resp, err := http.Post("http://"+d.addr+"/presence/heartbeat?id=carol", "application/json", strings.NewReader("{"))
	if err != nil || resp.StatusCode != 400 {
		t.Fatalf("malformed heartbeat: %v %v", resp, err)
	}
	resp.Body.Close()
	if st := d.get(t, "/presence/nobody", nil); st != 404 {
		t.Fatalf("unknown client: %d", st)
	}

	// HTTP heartbeat client, then leave.
	resp, err = http.Post("http://"+d.addr+"/presence/heartbeat?id=carol&session=tab", "", nil)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("heartbeat: %v %v", resp, err)
	}
	var hb map[string]any
	json.NewDecoder(resp.Body).Decode(&hb)
	resp.Body.Close()
	if hb["online"] != true || hb["interval_ms"] != float64(1000) || hb["ttl_ms"] != float64(2000) {
		t.Fatalf("heartbeat reply %v", hb)
	}
	d.wait(t, map[string]string{"event": "online", "client": "carol"})
	resp, _ = http.Post("http://"+d.addr+"/presence/leave?id=carol&session=tab", "text/plain", nil)
	resp.Body.Close()
	if resp.StatusCode != 204 {
		t.Fatalf("leave: %d", resp.StatusCode)
	}
	d.wait(t, map[string]string{"event": "offline", "client": "carol", "reason": "left"})

	// Bob leaves: offline after Grace, and 200 with online false after.
	bob.ws.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(1000, ""))
	d.wait(t, map[string]string{"event": "offline", "client": "bob", "client_id": "bob", "reason": "closed"})
	var one status
	if st := d.get(t, "/presence/bob", &one); st != 200 || one.Online {
		t.Fatalf("bob after leaving: %d %+v", st, one)
	}
	for _, who := range []string{"bob", "carol"} {
		on := d.index(map[string]string{"event": "online", "client": who})
		off := d.index(map[string]string{"event": "offline", "client": who})
		if on < 0 || off < on {
			t.Errorf("%s: online at line %d, offline at %d", who, on, off)
		}
	}
	var metrics string
	if resp, err := http.Get("http://" + d.addr + "/metrics"); err == nil {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		metrics = string(b)
	}
	if !strings.Contains(metrics, `vigil_connections{transport="ws"} 1`+"\n") {
		t.Errorf("metrics:\n%s", metrics)
	}

	// SIGTERM drains: alice gets 1001 and the process exits cleanly.
	d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case code := <-alice.code:
		if code != 1001 {
			t.Errorf("alice closed with %d, want 1001", code)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("alice not closed")
	}
	d.wait(t, map[string]string{"event": "stopped"})
	<-d.done
	if err := d.cmd.Wait(); err != nil {
		t.Errorf("demo exit: %v", err)
	}
}

// A wrong method on a /presence/… route gets 405 with Allow from the
// route's own handler, not the 404 "unknown client" of /presence/{id}.
func TestDemoWrongMethod(t *testing.T) {
	d := startDemo(t)
	tests := []struct {
		method, path, allow string
	}{
		{"GET", "/presence/heartbeat?id=alice", "POST"},
		{"PUT", "/presence/heartbeat?id=alice", "POST"},
		{"GET", "/presence/leave?id=alice", "POST"},
		{"DELETE", "/presence/leave?id=alice", "POST"},
		{"POST", "/presence/feed", "GET"},
		{"POST", "/presence/alice", "GET, HEAD"},
		{"POST", "/rooms/general", "GET, HEAD"},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			req, err := http.NewRequest(tt.method, "http://"+d.addr+tt.path, nil)
			if err != nil {
				t.Fatal(err)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var reply struct {
				Error struct{ Code string } `json:"error"`
			}
			_ = json.NewDecoder(resp.Body).Decode(&reply)
			if resp.StatusCode != http.StatusMethodNotAllowed || reply.Error.Code != "method_not_allowed" {
				t.Errorf("status %d, code %q; want 405 method_not_allowed", resp.StatusCode, reply.Error.Code)
			}
			if got := resp.Header.Get("Allow"); got != tt.allow {
				t.Errorf("Allow %q, want %q", got, tt.allow)
			}
		})
	}
	// The routes still serve their methods.
	resp, err := http.Post("http://"+d.addr+"/presence/heartbeat?id=alice", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("POST heartbeat: %d", resp.StatusCode)
	}
	var one status
	if st := d.get(t, "/presence/alice", &one); st != 200 || !one.Online {
		t.Fatalf("GET /presence/alice: %d %+v", st, one)
	}
}

// roomPage is the answer of GET /rooms/{room}.
type roomPage struct {
	Room    string `json:"room"`
	Count   int    `json:"count"`
	Members []struct {
		ID       string            `json:"id"`
		Sessions int               `json:"sessions"`
		Meta     []json.RawMessage `json:"meta"`
	} `json:"members"`
	Next string `json:"next"`
}

// names returns the room's members as id=name (the latest metadata's).
func (p roomPage) names() []string {
	var out []string
	for _, m := range p.Members {
		var meta struct{ Name string }
		if len(m.Meta) > 0 {
			json.Unmarshal(m.Meta[len(m.Meta)-1], &meta)
		}
		out = append(out, m.ID+"="+meta.Name)
	}
	slices.Sort(out)
	return out
}

// lines returns the log lines whose event is one of events, for client.
func (d *demo) clientLines(client string, events ...string) []map[string]any {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []map[string]any
	for _, l := range d.lines {
		if ev, _ := l["event"].(string); l["client"] == client && slices.Contains(events, ev) {
			out = append(out, l)
		}
	}
	return out
}

// The rooms contract: /ws?room=…&name=… joins the connection's session to
// its rooms (none: general) with {"name": …} as metadata; a chat message
// goes to the connections that share a room with its sender's; HTTP
// heartbeats join rooms the same way; GET /rooms/{room} lists members with
// their metadata; join, leave and update log lines carry client, room,
// reason, node and seq, and per client seq orders them with online and
// offline.
func TestDemoRooms(t *testing.T) {
	d := startDemo(t, "-ping-interval", "1s", "-pong-timeout", "1s", "-grace", "300ms", "-drain-window", "200ms")
	alice := d.connectTo(t, "/ws?id=alice&room=a&room=b&name=Alice%20A.")
	bob := d.connectTo(t, "/ws?id=bob&room=b")
	carol := d.connect(t, "carol")
	for _, l := range []map[string]string{
		{"event": "join", "client": "alice", "room": "a", "reason": "connect"},
		{"event": "join", "client": "alice", "room": "b"},
		{"event": "join", "client": "bob", "room": "b"},
		{"event": "join", "client": "carol", "room": "general"},
	} {
		got := d.wait(t, l)
		if got["node"] == "" || got["seq"] == nil || got["client_id"] != l["client"] {
			t.Errorf("join line %v", got)
		}
	}

	for room, want := range map[string][]string{
		"a": {"alice=Alice A."}, "b": {"alice=Alice A.", "bob=bob"}, "general": {"carol=carol"}, "empty": nil,
	} {
		var p roomPage
		if st := d.get(t, "/rooms/"+room, &p); st != 200 || p.Room != room || p.Count != len(want) || !slices.Equal(p.names(), want) {
			t.Errorf("GET /rooms/%s: %d %+v, want %q", room, st, p, want)
		}
	}
	if st := d.get(t, "/rooms/"+strings.Repeat("r", 300), nil); st != 400 {
		t.Errorf("GET an invalid room: %d, want 400", st)
	}
	if _, resp, _ := websocket.DefaultDialer.Dial("ws://"+d.addr+"/ws?id=dave&room=", nil); resp == nil || resp.StatusCode != 400 {
		t.Errorf("upgrade with an empty room: %+v, want 400", resp)
	}

	// A message goes to the rooms of its sender's connection.
	send := func(from *client, text string, to ...*client) {
		t.Helper()
		from.ws.WriteMessage(websocket.TextMessage, []byte(text))
		for _, c := range to {
			select {
			case m := <-c.msgs:
				var cm struct {
					Text  string
					Rooms []string
				}
				json.Unmarshal([]byte(m), &cm)
				if cm.Text != text || len(cm.Rooms) == 0 {
					t.Fatalf("got %q, want %q", m, text)
				}
			case <-time.After(5 * time.Second):
				t.Fatalf("%q not delivered", text)
			}
		}
	}
	send(alice, "to a and b", alice, bob)
	send(bob, "to b", alice, bob)
	send(carol, "to general", carol)
	for _, c := range []*client{alice, bob, carol} {
		select {
		case m := <-c.msgs:
			t.Errorf("a message outside the rooms: %q", m)
		case <-time.After(100 * time.Millisecond):
		}
	}

	// An HTTP session joins rooms the same way.
	resp, err := http.Post("http://"+d.addr+"/presence/heartbeat?id=erin&session=tab&room=b&room=c&name=Erin", "", nil)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("heartbeat: %v %v", resp, err)
	}
	resp.Body.Close()
	d.wait(t, map[string]string{"event": "join", "client": "erin", "room": "c"})
	var p roomPage
	if d.get(t, "/rooms/b", &p); !slices.Equal(p.names(), []string{"alice=Alice A.", "bob=bob", "erin=Erin"}) {
		t.Errorf("room b: %q", p.names())
	}
	// A new name is an update in each of its rooms, never a leave and a join.
	resp, _ = http.Post("http://"+d.addr+"/presence/heartbeat?id=erin&session=tab&room=b&room=c&name=E.", "", nil)
	resp.Body.Close()
	d.wait(t, map[string]string{"event": "update", "client": "erin", "room": "b"})
	d.wait(t, map[string]string{"event": "update", "client": "erin", "room": "c"})
	resp, _ = http.Post("http://"+d.addr+"/presence/leave?id=erin&session=tab", "", nil)
	resp.Body.Close()
	bob.ws.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(1000, ""))
	d.wait(t, map[string]string{"event": "leave", "client": "bob", "room": "b", "reason": "closed"})
	d.wait(t, map[string]string{"event": "offline", "client": "bob"})
	d.wait(t, map[string]string{"event": "leave", "client": "erin", "room": "c", "reason": "left"})
	d.wait(t, map[string]string{"event": "offline", "client": "erin"})
	if d.get(t, "/rooms/b", &p); !slices.Equal(p.names(), []string{"alice=Alice A."}) {
		t.Errorf("room b after the leaves: %q", p.names())
	}

	// Per client, seq orders every line: online, the joins and updates,
	// the leaves, offline.
	for client, want := range map[string][]string{
		"alice": {"online", "join a", "join b"},
		"bob":   {"online", "join b", "leave b", "offline"},
		"erin":  {"online", "join b", "join c", "update b", "update c", "leave b", "leave c", "offline"},
	} {
		lines := d.clientLines(client, "online", "offline", "join", "leave", "update")
		var got []string
		var last float64
		for _, l := range lines {
			s := l["event"].(string)
			if r, _ := l["room"].(string); r != "" {
				s += " " + r
			}
			got = append(got, s)
			seq, _ := l["seq"].(float64)
			if seq <= last {
				t.Errorf("%s: %s with seq %v after %v", client, s, seq, last)
			}
			last = seq
		}
		// The leaves (or updates) of one step come in the Store's order.
		if !slices.Equal(sortRuns(got), sortRuns(want)) {
			t.Errorf("%s's lines %q, want %q", client, got, want)
		}
	}
}

// sortRuns sorts each run of lines of one event ("leave b", "leave c").
func sortRuns(lines []string) []string {
	lines = slices.Clone(lines)
	event := func(s string) string { e, _, _ := strings.Cut(s, " "); return e }
	for i := 0; i < len(lines); {
		j := i + 1
		for j < len(lines) && event(lines[j]) == event(lines[i]) {
			j++
		}
		slices.Sort(lines[i:j])
		i = j
	}
	return lines
}

// The away contract: a client's activity reports (the WebSocket's
// "vigil:away <idle_ms>" and "vigil:active", the HTTP heartbeat's state)
// give away and back log lines with client, node and seq, in seq order
// between online and offline; GET /presence/{id} and the list answer
// state and last_active; -away-after is the page's hidden delay.
func TestDemoAway(t *testing.T) {
	d := startDemo(t, "-ping-interval", "1s", "-pong-timeout", "1s", "-grace", "300ms", "-drain-window", "200ms", "-away-after", "2500ms")
	alice := d.connect(t, "alice")
	d.wait(t, map[string]string{"event": "online", "client": "alice"})
	if err := alice.ws.WriteMessage(websocket.TextMessage, []byte("vigil:away 180000")); err != nil {
		t.Fatal(err)
	}
	got := d.wait(t, map[string]string{"event": "away", "client": "alice"})
	if got["node"] == "" || got["seq"] == nil {
		t.Errorf("away line %v", got)
	}
	var st status
	if code := d.get(t, "/presence/alice", &st); code != 200 || st.State != "away" || !st.Online {
		t.Fatalf("GET /presence/alice: %d %+v, want online and away", code, st)
	}
	if la, err := time.Parse(time.RFC3339Nano, st.LastActive); err != nil || time.Since(la) < 3*time.Minute || time.Since(la) > 4*time.Minute {
		t.Errorf("last_active %q: want 3 minutes ago", st.LastActive)
	}
	var page struct{ Clients []status }
	if code := d.get(t, "/presence", &page); code != 200 || len(page.Clients) != 1 || page.Clients[0].State != "away" {
		t.Errorf("GET /presence: %d %+v, want alice away", code, page)
	}
	if err := alice.ws.WriteMessage(websocket.TextMessage, []byte("vigil:active")); err != nil {
		t.Fatal(err)
	}
	d.wait(t, map[string]string{"event": "back", "client": "alice"})
	if code := d.get(t, "/presence/alice", &st); code != 200 || st.State != "online" {
		t.Fatalf("GET /presence/alice: %d %+v, want online", code, st)
	}

	// An HTTP page away from its first heartbeat: online, then away.
	resp, err := http.Post("http://"+d.addr+"/presence/heartbeat?id=bob&session=tab", "application/json", strings.NewReader(`{"state":"away","idle_ms":60000}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	d.wait(t, map[string]string{"event": "away", "client": "bob"})
	resp, err = http.Post("http://"+d.addr+"/presence/heartbeat?id=bob&session=tab&state=busy", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 400 {
		t.Errorf("state=busy: %d, want 400", resp.StatusCode)
	}
	// A malformed report closes the socket with 1008.
	if err := alice.ws.WriteMessage(websocket.TextMessage, []byte("vigil:away soon")); err != nil {
		t.Fatal(err)
	}
	select {
	case code := <-alice.code:
		if code != 1008 {
			t.Errorf("closed with %d, want 1008", code)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a malformed report did not close the socket")
	}
	d.wait(t, map[string]string{"event": "offline", "client": "alice"})

	for client, want := range map[string][]string{
		"alice": {"online", "away", "back", "offline"},
		"bob":   {"online", "away"},
	} {
		var got []string
		var last float64
		for _, l := range d.clientLines(client, "online", "offline", "away", "back") {
			got = append(got, l["event"].(string))
			seq, _ := l["seq"].(float64)
			if seq <= last {
				t.Errorf("%s: %s with seq %v after %v", client, l["event"], seq, last)
			}
			last = seq
		}
		if !slices.Equal(got, want) {
			t.Errorf("%s's lines %q, want %q", client, got, want)
		}
	}

	// The page carries -away-after.
	resp, err = http.Get("http://" + d.addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), `<meta name="away-after" content="2500">`) {
		t.Errorf("the page lacks -away-after 2500 ms")
	}
}

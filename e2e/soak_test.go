//go:build soak

package e2e

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/vigilhq/vigil/client"
	"github.com/vigilhq/vigil/middleware"
	"github.com/vigilhq/vigil/presence"
	"github.com/vigilhq/vigil/store/memory"
)

// The soak runs every kind of client against two servers at the real
// default timings (ping 25s, write timeout 10s, pong timeout 10s or the
// demo's 20s) over real sockets, for more than three ping intervals of
// quiet. Tests that compress timings never saw issue 10: at the defaults, a
// message written to a connection left its 10s write deadline on the socket,
// and the raw ping written 25s later failed on it, dropping every socket
// that had received one message.

// quiet is how long every client stays idle after set-up: three ping
// intervals (25s) and a few seconds to spare, so that each connection,
// opened before it starts, is pinged at least three times.
const quiet = 80 * time.Second

// burst is how many messages a chatting client sends before it falls silent.
const burst = 3

func TestSoakDefaults(t *testing.T) {
	start := time.Now()
	hc := &http.Client{Transport: &http.Transport{}, Timeout: 10 * time.Second}
	t.Cleanup(hc.CloseIdleConnections)

	// Server a: the demo, at its default flags.
	d := startDemo(t, "")
	// Server b: the library at its zero-value Configs.
	lib := startLibServer(t)

	// Clients of the demo; every text message is broadcast to all of them.
	dChat := []*wsClient{
		dialWS(t, d.url("/ws?id=d-chat-1"), nil),
		dialWS(t, d.url("/ws?id=d-chat-2"), nil),
	}
	dReader := dialWS(t, d.url("/ws?id=d-reader"), nil)
	dHTTP := startBeater(t, hc, d.url("/presence/heartbeat?id=d-http"))
	b := newBrowser(t)
	tab, _ := newTab(t, b, d.url("/?name=d-browser"))
	poll(t, tab, stateIs("open"), 20*time.Second)

	// Clients of the library server.
	lChat := dialWS(t, lib.plain.URL+"/ws?id=l-chat", nil)
	lSilent := dialWS(t, lib.plain.URL+"/ws?id=l-silent", nil)
	lAttach := dialWS(t, lib.plain.URL+"/attach?id=l-attach", nil)
	lTLS := dialWS(t, lib.tls.URL+"/ws?id=l-tls", lib.tls.Client().Transport.(*http.Transport).TLSClientConfig)
	lHTTP := startBeater(t, hc, lib.plain.URL+"/presence/heartbeat?id=l-http")
	goc := dialGoClient(t, wsURL(lib.plain.URL)+"/ws?id=l-go")

	// The chat: a burst from each chatting client, one message from the
	// page and one from the Go client, then silence.
	for _, c := range append(slices.Clone(dChat), lChat, lAttach, lTLS) {
		for i := range burst {
			c.send(t, fmt.Sprintf("%s says %d", c.name, i))
		}
	}
	eval[bool](t, tab, `(document.getElementById("text").value = "hello from the page", document.getElementById("say").requestSubmit(), true)`)
	if err := goc.c.Send(t.Context(), client.Text, []byte("hello from Go")); err != nil {
		t.Fatalf("go client: send: %v", err)
	}
	// Every demo connection gets every message: two bursts, the page's and
	// none from the Go client (which talks to the library server).
	dWant := int64(2*burst + 1)
	for _, c := range append(slices.Clone(dChat), dReader) {
		c.waitMessages(t, dWant, 20*time.Second)
	}
	poll(t, tab, `document.querySelectorAll("#log p:not(.sys)").length >= `+strconv.FormatInt(dWant, 10), 20*time.Second)
	for _, c := range []*wsClient{lChat, lAttach, lTLS} { // echoes
		c.waitMessages(t, burst, 20*time.Second)
	}
	if m, err := goc.receive(t, 20*time.Second); err != nil || string(m.Data) != "hello from Go" {
		t.Fatalf("go client: echo %q, %v", m.Data, err)
	}

	// The quiet period is what this test is about, not a synchronisation:
	// nothing happens in it but pings, pongs, the page's application pings
	// and the HTTP heartbeats. scripts/test waits for the "set-up took" line
	// below before it starts other tests beside this one.
	setup := time.Since(start)
	t.Logf("set-up took %v; now %v of quiet at the default timings", setup.Round(time.Millisecond), quiet)
	<-time.After(quiet)

	dWS := append(slices.Clone(dChat), dReader)
	lWS := []*wsClient{lChat, lSilent, lAttach, lTLS}
	// Pings come every 25s from each connection's opening, so they are all
	// due by now; on a loaded machine the last may come a little late.
	deadline := time.Now().Add(20 * time.Second)
	for _, c := range append(slices.Clone(dWS), lWS...) {
		for c.pings.Load() < 3 && time.Now().Before(deadline) {
			if _, err := c.ended(); err != nil {
				break
			}
			<-time.After(50 * time.Millisecond)
		}
	}

	// Nobody dropped.
	for _, c := range append(slices.Clone(dWS), lWS...) {
		if at, err := c.ended(); err != nil {
			t.Errorf("%s: connection dropped %v after it opened: %v", c.name, at.Round(time.Millisecond), err)
		}
		if n := c.pings.Load(); n < 3 {
			t.Errorf("%s: %d protocol pings, want at least 3", c.name, n)
		}
	}
	for _, h := range []*beater{dHTTP, lHTTP} {
		h.check(t, 1+int(quiet/h.interval()))
	}
	if st := eval[string](t, tab, `chat.sock.state`); st != "open" {
		t.Errorf("page: vigil.js state %q, want open", st)
	}
	if states := eval[[]string](t, tab, `chat.states.map((s) => s.state)`); slices.ContainsFunc(states, func(s string) bool { return s != "connecting" && s != "open" }) {
		t.Errorf("page: vigil.js states %v, want only connecting and open", states)
	}
	goc.check(t)

	// No transition beyond the initial onlines.
	dIDs := []string{"d-browser", "d-chat-1", "d-chat-2", "d-http", "d-reader"}
	var dOnline []string
	for _, l := range d.events("online", "") {
		dOnline = append(dOnline, fmt.Sprint(l["client"]))
	}
	slices.Sort(dOnline)
	if !slices.Equal(dOnline, dIDs) {
		t.Errorf("demo: online lines for %v, want one each for %v", dOnline, dIDs)
	}
	for _, l := range d.events("offline", "") {
		t.Errorf("demo: offline line for %v (reason %v) at %v", l["client"], l["reason"], l["time"])
	}
	// Rooms and activity hold at the defaults too: every demo client joined
	// the demo's default room, the page #random as well, each once; and
	// nobody left a room, changed metadata, or went away (the page stays
	// visible, and the quiet is shorter than vigil.js's awayIdle of 5
	// minutes).
	var dJoined []string
	for _, l := range d.events("join", "") {
		dJoined = append(dJoined, fmt.Sprint(l["client"], " ", l["room"]))
	}
	slices.Sort(dJoined)
	wantJoined := []string{"d-browser general", "d-browser random", "d-chat-1 general", "d-chat-2 general", "d-http general", "d-reader general"}
	if !slices.Equal(dJoined, wantJoined) {
		t.Errorf("demo: joins %q, want %q", dJoined, wantJoined)
	}
	for _, ev := range []string{"leave", "update", "away", "back"} {
		for _, l := range d.events(ev, "") {
			t.Errorf("demo: %s line for %v (room %v, reason %v) at %v", ev, l["client"], l["room"], l["reason"], l["time"])
		}
	}
	var room struct {
		Count int `json:"count"`
	}
	if getJSON(t, hc, d.url("/rooms/general"), &room); room.Count != len(dIDs) {
		t.Errorf("demo: GET /rooms/general counts %d, want %d", room.Count, len(dIDs))
	}
	lIDs := []string{"l-attach", "l-chat", "l-go", "l-http", "l-silent", "l-tls"}
	online, offline := lib.transitions()
	if !slices.Equal(online, lIDs) {
		t.Errorf("library server: OnOnline for %v, want one each for %v", online, lIDs)
	}
	for _, ev := range offline {
		t.Errorf("library server: OnOffline %s (%s)", ev.ClientID, ev.Reason)
	}

	// The servers agree: every WebSocket still open, none timed out, and
	// the clients without a ping counter of their own (the page on the
	// demo, the Go client on the library server) were pinged too: pings
	// sent beyond those the counting clients saw.
	dm := scrapeMetrics(t, hc, d.url("/metrics"))
	st := lib.vs.Stats()
	for time.Now().Before(deadline) && (dm["vigil_ws_pings_total"]-float64(sumPings(dWS)) < 3 || int64(st.Pings)-sumPings(lWS) < 3) {
		<-time.After(50 * time.Millisecond)
		dm, st = scrapeMetrics(t, hc, d.url("/metrics")), lib.vs.Stats()
	}
	t.Logf("demo: %v pings sent, %v beats, %v upgrades; library server: %+v", dm["vigil_ws_pings_total"], dm[`vigil_beats_total{transport="ws"}`], dm[`vigil_connections_opened_total{transport="ws"}`], st)
	if got, want := dm[`vigil_connections{transport="ws"}`], float64(len(dWS)+1); got != want {
		t.Errorf("demo: %v WebSockets open, want %v", got, want)
	}
	if got := dm["vigil_ws_heartbeat_timeouts_total"]; got != 0 {
		t.Errorf("demo: %v heartbeat timeouts", got)
	}
	if got, want := dm[`vigil_connections_opened_total{transport="ws"}`], float64(len(dWS)+1); got != want {
		t.Errorf("demo: %v upgrades, want %v (a reconnect makes more)", got, want)
	}
	if rest := dm["vigil_ws_pings_total"] - float64(sumPings(dWS)); rest < 3 {
		t.Errorf("demo: the page was pinged at most %v times, want at least 3", rest)
	}
	if got, want := st.Open, int64(len(lWS)+1); got != want {
		t.Errorf("library server: %d WebSockets open, want %d", got, want)
	}
	if st.HeartbeatTimeouts != 0 {
		t.Errorf("library server: %d heartbeat timeouts", st.HeartbeatTimeouts)
	}
	if rest := int64(st.Pings) - sumPings(lWS); rest < 3 {
		t.Errorf("library server: the Go client was pinged at most %d times, want at least 3", rest)
	}
	t.Logf("soak took %v (quiet %v)", time.Since(start).Round(time.Millisecond), quiet)
}

// libServer is a server built with the library's defaults: zero-value
// presence.Config and middleware.Config but for Identify, on the memory
// store. It serves the same routes over plain HTTP and over TLS (where pings
// take the WriteControl path rather than the raw socket write).
type libServer struct {
	vs         *middleware.Server
	plain, tls *httptest.Server

	// mu guards the fields below.
	mu      sync.Mutex
	online  []string
	offline []presence.Event
}

func startLibServer(t *testing.T) *libServer {
	t.Helper()
	st, err := memory.New(memory.Config{})
	if err != nil {
		t.Fatal(err)
	}
	tr, err := presence.New(context.Background(), st, presence.Config{})
	if err != nil {
		t.Fatal(err)
	}
	vs, err := middleware.New(tr, middleware.Config{Identify: middleware.IdentifyQuery("id")})
	if err != nil {
		t.Fatal(err)
	}
	ls := &libServer{vs: vs}
	tr.OnOnline(func(_ context.Context, ev presence.Event) {
		ls.mu.Lock()
		ls.online = append(ls.online, ev.ClientID)
		ls.mu.Unlock()
	})
	tr.OnOffline(func(_ context.Context, ev presence.Event) {
		ls.mu.Lock()
		ls.offline = append(ls.offline, ev)
		ls.mu.Unlock()
	})
	mux := http.NewServeMux()
	mux.Handle("GET /ws", vs.WebSocket(echo))
	mux.HandleFunc("GET /attach", ls.attach)
	mux.Handle("POST /presence/heartbeat", vs.HeartbeatEndpoint())
	ls.plain = httptest.NewServer(mux)
	ls.tls = httptest.NewTLSServer(mux)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := vs.Shutdown(ctx); err != nil {
			t.Errorf("library server: shutdown: %v", err)
		}
		ls.plain.Close()
		ls.tls.Close()
		if err := tr.Close(ctx); err != nil {
			t.Errorf("library server: tracker close: %v", err)
		}
	})
	return ls
}

// echo sends every message back.
func echo(ctx context.Context, c *middleware.Conn) {
	for {
		m, err := c.Receive(ctx)
		if err != nil {
			return
		}
		if err := c.Send(m.Type, m.Data); err != nil {
			return
		}
	}
}

// attach is an application's own gorilla handler with vigil attached
// (middleware.Server.Attach): it upgrades, reads, and echoes.
func (ls *libServer) attach(w http.ResponseWriter, r *http.Request) {
	up := websocket.Upgrader{}
	ws, err := up.Upgrade(w, r, nil)
	if err != nil {
		return
	}
	c, err := ls.vs.Attach(r, r.URL.Query().Get("id"), ws)
	if err != nil {
		ws.Close()
		return
	}
	for {
		typ, data, err := ws.ReadMessage()
		if err != nil {
			c.Finish(err)
			return
		}
		if c.Received(typ, data) {
			c.Send(middleware.MessageType(typ), data)
		}
	}
}

// transitions returns the client IDs OnOnline was called for, sorted, and
// the OnOffline events.
func (ls *libServer) transitions() ([]string, []presence.Event) {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	on := slices.Clone(ls.online)
	slices.Sort(on)
	return on, slices.Clone(ls.offline)
}

// wsClient is a plain gorilla/websocket client: it counts the protocol
// pings it answers and the messages it reads, and remembers why its
// connection ended.
type wsClient struct {
	name   string
	ws     *websocket.Conn
	opened time.Time
	pings  atomic.Int64
	msgs   atomic.Int64
	done   chan struct{} // closed when the reader has stopped

	// Set by the reader before it closes done.
	readErr error
	endedAt time.Time
}

// wsURL turns an http(s) URL into its ws(s) one.
func wsURL(u string) string { return "ws" + strings.TrimPrefix(u, "http") }

// dialWS connects to u (an http or https URL) and starts reading.
func dialWS(t *testing.T, u string, tc *tls.Config) *wsClient {
	t.Helper()
	u = wsURL(u)
	pu, err := url.Parse(u)
	if err != nil {
		t.Fatal(err)
	}
	dialer := websocket.Dialer{HandshakeTimeout: 10 * time.Second, TLSClientConfig: tc}
	ws, res, err := dialer.Dial(u, nil)
	if err != nil {
		t.Fatalf("dial %s: %v", u, err)
	}
	res.Body.Close()
	c := &wsClient{name: pu.Query().Get("id"), ws: ws, opened: time.Now(), done: make(chan struct{})}
	ws.SetPingHandler(func(data string) error {
		c.pings.Add(1)
		// As gorilla's own handler: a pong that cannot be written is no
		// reason to stop reading; a broken connection fails the read.
		_ = ws.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(10*time.Second))
		return nil
	})
	go func() {
		defer close(c.done)
		for {
			if _, _, err := ws.ReadMessage(); err != nil {
				c.readErr, c.endedAt = err, time.Now()
				return
			}
			c.msgs.Add(1)
		}
	}()
	t.Cleanup(func() {
		ws.Close()
		<-c.done
	})
	return c
}

func (c *wsClient) send(t *testing.T, text string) {
	t.Helper()
	c.ws.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if err := c.ws.WriteMessage(websocket.TextMessage, []byte(text)); err != nil {
		t.Fatalf("%s: send: %v", c.name, err)
	}
}

// waitMessages polls until c has read n messages; it fails after d.
func (c *wsClient) waitMessages(t *testing.T, n int64, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for c.msgs.Load() < n {
		if _, err := c.ended(); err != nil {
			t.Fatalf("%s: dropped while waiting for messages: %v", c.name, err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %d messages after %v, want %d", c.name, c.msgs.Load(), d, n)
		}
		<-time.After(20 * time.Millisecond)
	}
}

// ended returns how long after it opened the connection ended, and why;
// nil while it is open.
func (c *wsClient) ended() (time.Duration, error) {
	select {
	case <-c.done:
		return c.endedAt.Sub(c.opened), c.readErr
	default:
		return 0, nil
	}
}

func sumPings(cs []*wsClient) int64 {
	var n int64
	for _, c := range cs {
		n += c.pings.Load()
	}
	return n
}

// beater is an HTTP-heartbeat client: it beats, then waits the interval the
// server's answer names (interval_ms), until the test ends.
type beater struct {
	url  string
	hc   *http.Client
	stop context.CancelFunc
	done chan struct{}

	// mu guards the fields below.
	mu    sync.Mutex
	beats int
	errs  []error
	every time.Duration
	ttl   time.Duration
}

func startBeater(t *testing.T, hc *http.Client, u string) *beater {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	b := &beater{url: u, hc: hc, stop: cancel, done: make(chan struct{})}
	if err := b.beat(ctx); err != nil {
		cancel()
		t.Fatalf("heartbeat %s: %v", u, err)
	}
	go b.run(ctx)
	t.Cleanup(func() {
		cancel()
		<-b.done
	})
	return b
}

func (b *beater) run(ctx context.Context) {
	defer close(b.done)
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(b.interval()):
		}
		if err := b.beat(ctx); err != nil && ctx.Err() == nil {
			b.mu.Lock()
			b.errs = append(b.errs, err)
			b.mu.Unlock()
		}
	}
}

// beat sends one heartbeat and records the interval and TTL it answers.
func (b *beater) beat(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, b.url, nil)
	if err != nil {
		return err
	}
	res, err := b.hc.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	var ans struct {
		Online     bool  `json:"online"`
		IntervalMS int64 `json:"interval_ms"`
		TTLMS      int64 `json:"ttl_ms"`
	}
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("status %s", res.Status)
	}
	if err := json.NewDecoder(res.Body).Decode(&ans); err != nil {
		return err
	}
	if !ans.Online || ans.IntervalMS <= 0 || ans.TTLMS <= ans.IntervalMS {
		return fmt.Errorf("answer %+v: want online, and an interval shorter than the TTL", ans)
	}
	b.mu.Lock()
	b.beats++
	b.every = time.Duration(ans.IntervalMS) * time.Millisecond
	b.ttl = time.Duration(ans.TTLMS) * time.Millisecond
	b.mu.Unlock()
	return nil
}

func (b *beater) interval() time.Duration {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.every
}

// check fails the test if a beat failed or fewer than want were answered.
func (b *beater) check(t *testing.T, want int) {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	t.Logf("%s: %d beats every %v (TTL %v)", b.url, b.beats, b.every, b.ttl)
	for _, err := range b.errs {
		t.Errorf("%s: heartbeat: %v", b.url, err)
	}
	if b.beats < want {
		t.Errorf("%s: %d beats answered, want at least %d", b.url, b.beats, want)
	}
}

// goClient is the Go client (package client) at its default Config, with
// the state changes it went through.
type goClient struct {
	c *client.Client

	// mu guards the field below.
	mu     sync.Mutex
	states []client.StateChange
}

func dialGoClient(t *testing.T, u string) *goClient {
	t.Helper()
	g := &goClient{}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	c, err := client.Dial(ctx, u, client.Config{OnState: func(sc client.StateChange) {
		g.mu.Lock()
		g.states = append(g.states, sc)
		g.mu.Unlock()
	}})
	if err != nil {
		t.Fatalf("go client: dial %s: %v", u, err)
	}
	g.c = c
	t.Cleanup(func() { c.Close() })
	return g
}

func (g *goClient) receive(t *testing.T, d time.Duration) (client.Message, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), d)
	defer cancel()
	return g.c.Receive(ctx)
}

// check fails the test unless the client is open and never left Open.
func (g *goClient) check(t *testing.T) {
	t.Helper()
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, sc := range g.states {
		if sc.To != client.Connecting && sc.To != client.Open {
			t.Errorf("go client: went %v after %v: %v", sc.To, sc.From, sc.Err)
		}
	}
	if st := g.c.State(); st != client.Open {
		t.Errorf("go client: state %v, want open", st)
	}
}

// scrapeMetrics returns the unlabelled samples of a Prometheus text page.
func scrapeMetrics(t *testing.T, hc *http.Client, u string) map[string]float64 {
	t.Helper()
	res, err := hc.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	out := make(map[string]float64)
	sc := bufio.NewScanner(res.Body)
	for sc.Scan() {
		name, val, ok := strings.Cut(sc.Text(), " ")
		// Keyed by name and labels: vigil_connections{transport="ws"}.
		if !ok || strings.HasPrefix(name, "#") {
			continue
		}
		if v, err := strconv.ParseFloat(val, 64); err == nil {
			out[name] = v
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

package middleware_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/gorilla/websocket"

	"github.com/vigilhq/vigil/middleware"
	"github.com/vigilhq/vigil/presence"
	"github.com/vigilhq/vigil/store/memory"
)

// pipeListener is a net.Listener of net.Pipe connections, so a whole
// client-server exchange runs inside a synctest bubble on fake time.
type pipeListener struct {
	ch   chan net.Conn
	done chan struct{}
	once sync.Once
}

func newPipeListener() *pipeListener {
	return &pipeListener{ch: make(chan net.Conn), done: make(chan struct{})}
}

func (l *pipeListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ch:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *pipeListener) Close() error { l.once.Do(func() { close(l.done) }); return nil }

func (l *pipeListener) Addr() net.Addr { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 80} }

func (l *pipeListener) dial(context.Context, string, string) (net.Conn, error) {
	a, b := net.Pipe()
	select {
	case l.ch <- a:
		return b, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

// bubble is a Tracker, a Server and an http.Server on a pipe listener, all
// inside the current synctest bubble.
type bubble struct {
	*env
	l    *pipeListener
	hs   *http.Server
	dial websocket.Dialer
}

func newBubble(t *testing.T, tcfg presence.Config, cfg middleware.Config, h middleware.Handler) *bubble {
	t.Helper()
	st, _ := memory.New(memory.Config{})
	return newBubbleOn(t, st, tcfg, cfg, h)
}

// newBubbleOn is newBubble over the Store st.
func newBubbleOn(t *testing.T, st presence.Store, tcfg presence.Config, cfg middleware.Config, h middleware.Handler) *bubble {
	t.Helper()
	tcfg.Node = "n1"
	tr, err := presence.New(context.Background(), st, tcfg)
	if err != nil {
		t.Fatal(err)
	}
	e := &env{tr: tr, evCh: make(chan presence.Event, 1000)}
	rec := func(_ context.Context, ev presence.Event) { e.evCh <- ev }
	tr.OnOnline(rec)
	tr.OnOffline(rec)
	cfg.Identify = middleware.IdentifyQuery("id")
	if e.srv, err = middleware.New(tr, cfg); err != nil {
		t.Fatal(err)
	}
	b := &bubble{env: e, l: newPipeListener()}
	mux := http.NewServeMux()
	mux.Handle("/ws", e.srv.WebSocket(h))
	mux.Handle("POST /presence/heartbeat", e.srv.HeartbeatEndpoint())
	b.hs = &http.Server{Handler: mux}
	go b.hs.Serve(b.l)
	b.dial = websocket.Dialer{NetDialContext: b.l.dial}
	return b
}

// close shuts everything down; call it before the bubble's function returns.
func (b *bubble) close(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	b.hs.Close()
	if err := b.srv.Shutdown(ctx); err != nil {
		t.Error(err)
	}
	if err := b.tr.Close(ctx); err != nil {
		t.Error(err)
	}
}

func (b *bubble) connect(t *testing.T, id string) *websocket.Conn {
	t.Helper()
	c, _, err := b.dial.Dial("ws://pipe/ws?id="+id, nil)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// httpClient is an HTTP client over the bubble's pipes. Call its
// CloseIdleConnections before the bubble's function returns.
func (b *bubble) httpClient() *http.Client {
	return &http.Client{Transport: &http.Transport{DialContext: b.l.dial}}
}

// noEvent fails the test if an event is queued once every goroutine of the
// bubble is blocked.
func (b *bubble) noEvent(t *testing.T) {
	t.Helper()
	synctest.Wait()
	select {
	case ev := <-b.evCh:
		t.Fatalf("unexpected event %+v", ev)
	default:
	}
}

func (b *bubble) next(t *testing.T) presence.Event {
	t.Helper()
	select {
	case ev := <-b.evCh:
		return ev
	case <-time.After(time.Hour):
		t.Fatal("no event within an hour")
		return presence.Event{}
	}
}

// The server pings every PingInterval on the dot, and a client that answers
// stays online indefinitely.
func TestSynctestPingCadence(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBubble(t, presence.Config{}, middleware.Config{}, nil)
		c := b.connect(t, "p")
		var mu sync.Mutex
		var at []time.Duration
		start := time.Now()
		c.SetPingHandler(func(data string) error {
			mu.Lock()
			at = append(at, time.Since(start))
			mu.Unlock()
			return c.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(time.Second))
		})
		go func() {
			for {
				if _, _, err := c.ReadMessage(); err != nil {
					return
				}
			}
		}()
		b.next(t) // online
		time.Sleep(10*middleware.DefaultPingInterval + time.Second)
		mu.Lock()
		got := append([]time.Duration(nil), at...)
		mu.Unlock()
		if len(got) != 10 {
			t.Fatalf("%d pings in 10 intervals: %v", len(got), got)
		}
		tick := 500 * time.Millisecond
		for i, d := range got {
			want := time.Duration(i+1) * middleware.DefaultPingInterval
			if d < want || d > want+tick {
				t.Errorf("ping %d at %v, want %v (+ one %v tick)", i, d, want, tick)
			}
		}
		select {
		case ev := <-b.evCh:
			t.Fatalf("unexpected event %+v", ev)
		default:
		}
		c.Close()
		b.close(t)
	})
}

// A client that reads but never answers is dropped when PingInterval +
// PongTimeout passed since its last frame, and goes offline at once.
//
// timing: the dead-peer deadline PingInterval + PongTimeout = TTL, measured
// on fake time.
func TestSynctestPongTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := middleware.Config{PingInterval: time.Second, PongTimeout: 2 * time.Second}
		b := newBubble(t, presence.Config{TTL: 3 * time.Second}, cfg, nil)
		c := b.connect(t, "mute")
		go io.Copy(io.Discard, c.NetConn()) // the kernel takes the pings; nobody answers
		b.next(t)
		start := time.Now()
		ev := b.next(t)
		took := time.Since(start)
		if ev.Transition != presence.Offline || ev.Reason != presence.ReasonExpired {
			t.Fatalf("event %+v, want offline timeout", ev)
		}
		// 3.2 s is the p99 target for P=1s, PongTimeout=2s.
		if took < 3*time.Second || took > 3200*time.Millisecond {
			t.Errorf("offline after %v, want within [3s, 3.2s]", took)
		}
		c.Close()
		b.close(t)
	})
}

// Pongs keep a connection alive but are not activity: IdleTimeout closes it
// with 4501 "idle".
//
// timing: IdleTimeout longer than PingInterval (New requires it), at
// otherwise default timings on fake time.
func TestSynctestIdleTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := middleware.Config{IdleTimeout: time.Minute}
		b := newBubble(t, presence.Config{}, cfg, nil)
		c := b.connect(t, "idle")
		start := time.Now()
		b.next(t)
		errc := make(chan error, 1)
		go func() { // answers pings until the close
			_, _, err := c.ReadMessage()
			errc <- err
		}()
		// A message after 30s resets the idle clock.
		time.Sleep(30 * time.Second)
		c.WriteMessage(websocket.TextMessage, []byte("hello"))
		err := <-errc
		ce, ok := err.(*websocket.CloseError)
		if !ok || ce.Code != middleware.CloseIdle || ce.Text != "idle" {
			t.Fatalf("read: %v, want close 4501 idle", err)
		}
		took := time.Since(start)
		if took < 90*time.Second || took > 91*time.Second {
			t.Errorf("idle close after %v, want 90s", took)
		}
		ev := b.next(t)
		if ev.Transition != presence.Offline || ev.Reason != presence.ReasonIdle {
			t.Fatalf("event %+v, want offline idle", ev)
		}
		if ev.Time.Sub(start) < 90*time.Second+presence.DefaultGrace {
			t.Errorf("offline at %v, before Grace", ev.Time.Sub(start))
		}
		c.Close()
		b.close(t)
	})
}

// Shutdown spreads its 1001 closes evenly over the drain window.
//
// timing: DrainWindow alone, at otherwise default timings on fake time.
func TestSynctestDrainSpread(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := middleware.Config{DrainWindow: 2 * time.Second}
		b := newBubble(t, presence.Config{}, cfg, nil)
		const n = 10
		var mu sync.Mutex
		var at []time.Duration
		var wg sync.WaitGroup
		start := time.Now()
		for i := range n {
			c := b.connect(t, string(rune('a'+i)))
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, _, err := c.ReadMessage()
				if ce, ok := err.(*websocket.CloseError); !ok || ce.Code != 1001 {
					t.Errorf("read: %v, want 1001", err)
				}
				mu.Lock()
				at = append(at, time.Since(start))
				mu.Unlock()
				c.Close()
			}()
		}
		for range n {
			b.next(t)
		}
		synctest.Wait() // every connection registered with the server
		if err := b.srv.Shutdown(context.Background()); err != nil {
			t.Fatal(err)
		}
		wg.Wait()
		for i, d := range slices.Sorted(slices.Values(at)) {
			want := time.Duration(i) * 200 * time.Millisecond
			if d < want || d > want+10*time.Millisecond {
				t.Errorf("close %d at %v, want %v", i, d, want)
			}
		}
		select {
		case ev := <-b.evCh:
			t.Fatalf("event %+v during drain: sessions should linger through Grace", ev)
		default:
		}
		b.close(t)
	})
}

// A client that only reads, from a connection busy writing for longer than
// PingInterval+PongTimeout, still gets its pings (queued behind the write in
// progress) and stays open: it has nothing else to answer. At the defaults,
// on fake time.
func TestSynctestPingWhileWriting(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const n, every = 40, 1500 * time.Millisecond // 60s of writing > 35s
		burst := func(ctx context.Context, c *middleware.Conn) {
			big := make([]byte, 8<<10) // larger than the client's read buffer: each write waits for a read
			for {
				if _, err := c.Receive(ctx); err != nil {
					return
				}
				for range n {
					if c.Send(middleware.Binary, big) != nil {
						return
					}
				}
			}
		}
		b := newBubble(t, presence.Config{}, middleware.Config{}, burst)
		c := b.connect(t, "reader")
		var pings atomic.Int32
		c.SetPingHandler(func(data string) error {
			pings.Add(1)
			return c.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(time.Second))
		})
		b.next(t) // online
		if err := c.WriteMessage(websocket.TextMessage, []byte("go")); err != nil {
			t.Fatal(err)
		}
		for i := range n {
			if _, _, err := c.ReadMessage(); err != nil {
				t.Fatalf("message %d: %v (after %d pings)", i, err, pings.Load())
			}
			time.Sleep(every) // a slow reader, well within WriteTimeout
		}
		if got := pings.Load(); got < 2 {
			t.Errorf("%d pings while the server wrote for %v, want 2", got, n*every)
		}
		b.noEvent(t)
		c.Close()
		b.close(t)
	})
}

// stallAdd is a Store whose Add, while stall is set, waits for release
// before it writes anything.
type stallAdd struct {
	presence.Store
	stall   atomic.Bool
	entered chan struct{}
	release chan struct{}
}

func (s *stallAdd) Add(ctx context.Context, l presence.Lease) ([]presence.Event, error) {
	if s.stall.Load() {
		s.entered <- struct{}{}
		<-s.release
	}
	return s.Store.Add(ctx, l)
}

// An HTTP session the Tracker ends while its Connect is still in flight
// (here the Store's Add stalls past TTL, and the Tracker expires the
// session meanwhile: its OnGone comes before the Server keeps it) is not
// kept: later heartbeats must not go to the dead session but open a live
// one. Default timings, on fake time.
func TestHTTPSessionEndedDuringConnect(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		mem, err := memory.New(memory.Config{})
		if err != nil {
			t.Fatal(err)
		}
		st := &stallAdd{Store: mem, entered: make(chan struct{}), release: make(chan struct{})}
		tr, err := presence.New(ctx, st, presence.Config{Node: "n1"})
		if err != nil {
			t.Fatal(err)
		}
		srv, err := middleware.New(tr, middleware.Config{Identify: middleware.IdentifyQuery("id")})
		if err != nil {
			t.Fatal(err)
		}
		defer func() {
			if err := srv.Shutdown(ctx); err != nil {
				t.Error(err)
			}
			if err := tr.Close(ctx); err != nil {
				t.Error(err)
			}
		}()
		hb := srv.HeartbeatEndpoint()
		beat := func() int {
			rec := httptest.NewRecorder()
			hb.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/presence/heartbeat?id=ann", nil))
			return rec.Code
		}

		st.stall.Store(true)
		first := make(chan int)
		go func() { first <- beat() }()
		<-st.entered
		// The Tracker gives up on the session, still pending in its Add.
		time.Sleep(2 * tr.Config().TTL)
		synctest.Wait()
		if n := tr.Stats().Sessions; n != 0 {
			t.Fatalf("%d sessions on the Tracker after TTL without a beat, want the stalled one expired", n)
		}
		st.stall.Store(false)
		close(st.release)
		if code := <-first; code != http.StatusOK {
			t.Fatalf("first heartbeat: status %d", code)
		}
		if code := beat(); code != http.StatusOK {
			t.Fatalf("second heartbeat: status %d", code)
		}
		synctest.Wait()
		if n := tr.Stats().Sessions; n != 1 {
			t.Errorf("%d sessions on the Tracker after the heartbeats, want 1: a heartbeat went to the expired session", n)
		}
		if p, err := tr.Presence(ctx, "ann"); err != nil || !p.Online {
			t.Errorf("Presence(ann) = %+v, %v; want online", p, err)
		}
	})
}

//go:build faults && linux

package faults

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	goredis "github.com/redis/go-redis/v9"

	"github.com/vigilhq/vigil/client"
	"github.com/vigilhq/vigil/internal/redistest"
	"github.com/vigilhq/vigil/middleware"
	"github.com/vigilhq/vigil/presence"
	"github.com/vigilhq/vigil/store/memory"
	redisstore "github.com/vigilhq/vigil/store/redis"
)

// timing: TTL ≥ PingInterval + PongTimeout always; Sweep and Grace ≪ TTL.
// The inputs are hostile, the timings only compressed.
func hostileNode(t testing.TB, mc middleware.Config, mem memory.Config) *node {
	t.Helper()
	if mc.PingInterval == 0 {
		mc.PingInterval, mc.PongTimeout = 500*time.Millisecond, 500*time.Millisecond
	}
	ttl := max(1500*time.Millisecond, mc.PingInterval+mc.PongTimeout)
	return memNode(t, mem, presence.Config{TTL: ttl, Grace: 200 * time.Millisecond, SweepInterval: 100 * time.Millisecond}, mc, nil)
}

// B14: slowloris. 200 connections trickle an upgrade request's header one
// byte every 100 ms. The http.Server's ReadHeaderTimeout closes each of
// them; no handler runs for them; an honest client connects meanwhile.
func TestSlowloris(t *testing.T) {
	t.Parallel()
	const conns = 200
	n := hostileNode(t, middleware.Config{}, memory.Config{})
	header := "GET /ws?id=slow HTTP/1.1\r\nHost: " + n.addr() + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nX-Pad: " + strings.Repeat("a", 200)
	start := time.Now()
	var wg sync.WaitGroup
	var worst atomic.Int64
	errs := make(chan error, conns)
	for range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := net.Dial("tcp", n.addr())
			if err != nil {
				errs <- err
				return
			}
			defer c.Close()
			opened := time.Now()
			buf := make([]byte, 512)
			for i := 0; ; i++ {
				if time.Since(opened) > readHeaderTimeout+3*time.Second {
					errs <- errors.New("connection still open")
					return
				}
				if _, err := c.Write([]byte{header[i%len(header)]}); err != nil {
					break
				}
				_ = c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
				if _, err := c.Read(buf); err != nil {
					var ne net.Error
					if errors.As(err, &ne) && ne.Timeout() {
						continue
					}
				}
				break // data (an error status) or EOF: the server gave up on us
			}
			d := int64(time.Since(opened))
			for {
				w := worst.Load()
				if d <= w || worst.CompareAndSwap(w, d) {
					break
				}
			}
		}()
	}
	// An honest client gets through while the slow ones hang on.
	honest := dialClient(t, n.wsURL("honest"), client.Config{MaxAttempts: once})
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	w := time.Duration(worst.Load())
	if w < readHeaderTimeout-200*time.Millisecond || w > readHeaderTimeout+time.Second {
		t.Errorf("slow connections closed after at most %v, want about ReadHeaderTimeout %v", w, readHeaderTimeout)
	}
	if up := n.srv.Stats().Upgrades; up != 1 {
		t.Errorf("%d upgrades, want only the honest client's", up)
	}
	t.Logf("FIGURE slowloris: %d trickling connections closed by ReadHeaderTimeout %v (last after %v); honest client connected %v after the attack began",
		conns, readHeaderTimeout, w.Round(time.Millisecond), honest.openedAt.Sub(start).Round(time.Millisecond))
}

// B15: 2,000 upgrade attempts under one client ID, 32 at a time, against
// MaxConnsPerClient 8: exactly 8 open (the flooder never answers pings, so
// the ping interval is set long enough that none is dropped meanwhile), every other one is refused with 429
// and Retry-After before any upgrade; another client is not disturbed; and
// when the 8 close, the client goes offline once.
//
// timing: a PingInterval + PongTimeout (30s) longer than the test, so
// connections that never answer pings are not dropped meanwhile.
func TestManyConnectionsOneClient(t *testing.T) {
	t.Parallel()
	const attempts, limit, workers = 2000, 8, 32
	n := hostileNode(t, middleware.Config{MaxConnsPerClient: limit, PingInterval: 20 * time.Second, PongTimeout: 10 * time.Second}, memory.Config{})
	other := dialClient(t, n.wsURL("other"), client.Config{MaxAttempts: once})
	var (
		mu     sync.Mutex
		open   []*websocket.Conn
		status = map[int]int{}
		noRA   int
	)
	start := time.Now()
	jobs := make(chan int)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d := websocket.Dialer{HandshakeTimeout: 5 * time.Second}
			for range jobs {
				ws, resp, err := d.Dial(n.wsURL("flood"), nil)
				mu.Lock()
				switch {
				case ws != nil:
					open = append(open, ws)
					status[101]++
				case resp != nil:
					status[resp.StatusCode]++
					if resp.Header.Get("Retry-After") == "" {
						noRA++
					}
				default:
					status[0]++
					t.Errorf("dial: %v", err)
				}
				mu.Unlock()
			}
		}()
	}
	for i := range attempts {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	took := time.Since(start)
	if status[101] != limit || status[429] != attempts-limit || noRA != 0 {
		t.Errorf("answers %v (%d without Retry-After), want %d×101 and %d×429 with Retry-After", status, noRA, limit, attempts-limit)
	}
	if s := n.sessions(); s != limit+1 {
		t.Errorf("%d sessions, want %d", s, limit+1)
	}
	untouched(t, other, "the other client")
	for _, ws := range open {
		ws.Close()
	}
	n.rec.wait(t, 0, 5*time.Second, "offline of flood", func(ev stamped) bool {
		return ev.ClientID == "flood" && ev.Transition == presence.Offline
	})
	if c := n.rec.count("flood", 0); c != 2 {
		t.Errorf("%d transitions of flood, want one online and one offline: %v", c, n.rec.all())
	}
	t.Logf("FIGURE conn-flood: %d upgrades of one client ID in %v: %d open, %d refused 429 before upgrading; other clients undisturbed",
		attempts, took.Round(time.Millisecond), status[101], status[429])
}

// B16, R24: a million distinct client IDs against the memory store's cap
// (100,000 clients): the cap answers 503 with Retry-After, and the heap
// stays where it was when the cap was reached. The flood runs in a helper
// process without the race detector, which would slow it tenfold and
// inflate the heap it measures.
func TestMillionIDs(t *testing.T) {
	t.Parallel()
	const ids, limit = 1_000_000, 100_000
	p := startProc(t, helperBin(t, "faultflood"), "-n", fmt.Sprint(ids), "-cap", fmt.Sprint(limit))
	l := p.next(3*time.Minute, "flood result", func(procLine) bool { return true })
	var res struct {
		Status       map[string]int `json:"status"`
		RetryAfter   int            `json:"retry_after_missing"`
		HeapAtCapMiB float64        `json:"heap_at_cap_mib"`
		HeapEndMiB   float64        `json:"heap_end_mib"`
		HeapMaxMiB   float64        `json:"heap_max_mib"`
		Online       int            `json:"online"`
		Seconds      float64        `json:"seconds"`
	}
	b, _ := json.Marshal(l.M)
	if err := json.Unmarshal(b, &res); err != nil {
		t.Fatal(err)
	}
	if res.Status["200"] != limit || res.Status["503"] != ids-limit || res.RetryAfter != 0 {
		t.Errorf("answers %v (%d 503 without Retry-After), want %d×200 then 503 with Retry-After", res.Status, res.RetryAfter, limit)
	}
	if res.Online != limit {
		t.Errorf("%d online, want the cap %d", res.Online, limit)
	}
	if growth := res.HeapMaxMiB - res.HeapAtCapMiB; growth > 0.1*res.HeapAtCapMiB+4 {
		t.Errorf("heap grew from %.1f MiB at the cap to %.1f MiB under the flood", res.HeapAtCapMiB, res.HeapMaxMiB)
	}
	t.Logf("FIGURE million-ids: %d distinct IDs in %.1fs: %d accepted, %d refused 503; heap %.1f MiB at the cap, at most %.1f MiB after %d more IDs",
		ids, res.Seconds, res.Status["200"], res.Status["503"], res.HeapAtCapMiB, res.HeapMaxMiB, ids-limit)
}

// B16, R24 on Redis, the twin of TestMillionIDs: distinct client IDs flood
// the HTTP-heartbeat endpoint of a node on the Redis store, capped at
// 16,000 clients and sessions and shared with a second node whose honest
// WebSocket clients are online. Round a floods 160,000 IDs: the cap (its
// share in every bucket) answers 503 with Retry-After, and Redis's memory
// stops growing when the cap is reached; a new client of the other node is
// refused too (close 1013), the cap being one for both. Round a's clients
// then go offline, and round b floods 32,000 new IDs: they take the places
// of round a's clients, offline the longest, where without a bound on
// remembered offline clients every one would be refused for Retention
// (24h). Redis stays within the bound store/redis documents throughout,
// the honest clients are never disturbed, and once the flood is offline a
// new honest client is served. The flood runs in a helper process without
// the race detector, as in TestMillionIDs.
//
// timing: the honest node runs the default heartbeat (ping 25s, pong
// timeout 10s, TTL 35s), what users run: with 5s + 5s, honest clients were
// dropped for a late pong when the flood ran beside TestMillionIDs on two
// loaded cores (see TestStoreCapOverWebSocket). Grace and SweepInterval
// are short (≪ TTL) so that each round's clients go offline fast.
func TestIDFloodRedis(t *testing.T) {
	t.Parallel()
	const (
		ids, ids2, limit = 160_000, 32_000, 16_000
		journalLen       = 1000
		honestN          = 3
	)
	r := redistest.StartServer(t)
	rdb := redisClient(t, r.Addr())
	pfx := uniq("flood")
	cfg := redisstore.Config{Prefix: pfx, MaxClients: limit, MaxSessions: limit, JournalLen: journalLen}
	st, err := redisstore.New(rdb, cfg)
	if err != nil {
		t.Fatal(err)
	}
	base := usedMemory(t, rdb)
	n := startNode(t, st, presence.Config{Node: "honest", Grace: 200 * time.Millisecond, SweepInterval: 100 * time.Millisecond},
		middleware.Config{}, nil)
	var honest []*watched
	for i := range honestN {
		honest = append(honest, dialClient(t, n.wsURL(fmt.Sprintf("honest-%d", i)), client.Config{MaxAttempts: once}))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	eventually(t, 5*time.Second, "honest clients online", func() bool {
		c, err := n.tr.Count(ctx)
		return err == nil && c == honestN
	})
	// What store/redis documents (doc.go, "Limits"): at most about
	// MaxClients × 200 B + MaxSessions × 170 B + Buckets × JournalLen × 80 B,
	// with IDs as short as these.
	buckets := st.Config().Buckets
	bound := int64(limit*200 + limit*170 + buckets*journalLen*80)

	p := startProc(t, helperBin(t, "faultflood"), "-redis", r.Addr(), "-prefix", pfx, "-cap", fmt.Sprint(limit),
		"-n", fmt.Sprint(ids), "-n2", fmt.Sprint(ids2), "-others", fmt.Sprint(honestN), "-journal-len", fmt.Sprint(journalLen))
	type sample struct {
		Requests, Online int
		Used             int64
	}
	type round struct {
		Status     map[string]int `json:"status"`
		RetryAfter int            `json:"retry_after_missing"`
		Samples    []sample       `json:"samples"`
		Seconds    float64        `json:"seconds"`
		Remembered int            `json:"remembered"`
		Used       int64          `json:"used"` // of the "-offline" lines
	}
	next := func(phase string) round {
		t.Helper()
		l := p.next(5*time.Minute, "flood round "+phase, func(l procLine) bool { return l.str("phase") == phase })
		var res round
		b, _ := json.Marshal(l.M)
		if err := json.Unmarshal(b, &res); err != nil {
			t.Fatal(err)
		}
		return res
	}
	checkRound := func(name string, res round, requests int) {
		t.Helper()
		if res.Status["200"] != limit-honestN || res.Status["503"] != requests-(limit-honestN) || res.RetryAfter != 0 {
			t.Errorf("round %s: answers %v (%d 503 without Retry-After), want %d×200 then 503 with Retry-After", name, res.Status, res.RetryAfter, limit-honestN)
		}
		for _, s := range res.Samples {
			if s.Used-base > bound {
				t.Errorf("round %s: Redis holds %.1f MiB after %d requests, over the documented bound %.1f MiB", name, mib(s.Used-base), s.Requests, mib(bound))
			}
		}
		if last := res.Samples[len(res.Samples)-1]; last.Online != limit {
			t.Errorf("round %s: %d online at the end, want the cap %d", name, last.Online, limit)
		}
	}

	a := next("a")
	checkRound("a", a, ids)
	full := slices.IndexFunc(a.Samples, func(s sample) bool { return s.Online == limit })
	var atCap, maxAfter int64
	if full < 0 || full == len(a.Samples)-1 {
		t.Fatalf("round a: the cap was not reached early in the flood: %+v", a.Samples)
	}
	atCap = a.Samples[full].Used - base
	for _, s := range a.Samples[full:] {
		maxAfter = max(maxAfter, s.Used-base)
	}
	if maxAfter-atCap > 1<<20 {
		t.Errorf("round a: Redis grew from %.2f MiB at the cap to %.2f MiB under the rest of the flood", mib(atCap), mib(maxAfter))
	}
	ws, _, err := dialRaw(n.addr(), "/ws?id=late")
	if err != nil || ws == nil {
		t.Fatalf("dial: %v", err)
	}
	code, text, err := ws.closeCode(5 * time.Second)
	ws.Close()
	if err != nil || code != 1013 {
		t.Errorf("a new client of the other node at the cap: close %d %q (%v), want 1013", code, text, err)
	}
	fmt.Fprintln(p.stdin)
	aOff := next("a-offline")

	b := next("b")
	checkRound("b", b, ids2)
	if b.Remembered != 0 {
		t.Errorf("round b: %d of round a's clients remembered, want none: each new client takes the place of one offline the longest", b.Remembered)
	}
	fmt.Fprintln(p.stdin)
	bOff := next("b-offline")
	for _, u := range []int64{aOff.Used, bOff.Used} {
		if u-base > bound {
			t.Errorf("Redis holds %.1f MiB with the flood offline, over the documented bound %.1f MiB", mib(u-base), mib(bound))
		}
	}
	if bOff.Used-aOff.Used > 1<<20 {
		t.Errorf("Redis grew from %.2f MiB with round a offline to %.2f MiB with round b offline: the offline clients were not bounded", mib(aOff.Used-base), mib(bOff.Used-base))
	}

	for i, w := range honest {
		untouched(t, w, "honest client")
		if !online(t, n.tr, fmt.Sprintf("honest-%d", i)) {
			t.Errorf("honest-%d offline after the flood", i)
		}
	}
	dialClient(t, n.wsURL("late"), client.Config{MaxAttempts: once})
	eventually(t, 5*time.Second, "a new honest client online after the flood", func() bool { return online(t, n.tr, "late") })
	t.Logf("FIGURE id-flood-redis: cap %d clients and sessions over %d buckets, %d honest clients on another node; "+
		"round a: %d IDs in %.1fs, %d×200, %d×503, Redis +%.2f MiB at the cap, at most +%.2f MiB after; "+
		"round b (round a offline): %d IDs in %.1fs, %d×200 each taking an offline client's place, %d×503, %d of round a remembered; "+
		"with each round offline +%.2f and +%.2f MiB; documented bound +%.1f MiB",
		limit, buckets, honestN, ids, a.Seconds, a.Status["200"], a.Status["503"], mib(atCap), mib(maxAfter),
		ids2, b.Seconds, b.Status["200"], b.Status["503"], b.Remembered, mib(aOff.Used-base), mib(bOff.Used-base), mib(bound))
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }

// usedMemory reads INFO memory used_memory.
func usedMemory(t testing.TB, rdb *goredis.Client) int64 {
	t.Helper()
	n, err := redistest.UsedMemory(context.Background(), rdb)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// B16 over WebSocket: a new client over the store's cap is upgraded and
// then closed with 1013 (try again later).
//
// timing: a heartbeat (5s + 5s) far longer than the test, so that on a
// loaded machine neither the two clients holding the cap nor the third are
// dropped for a late pong: with 500ms + 500ms one of them was, which freed
// a place and let the third in.
func TestStoreCapOverWebSocket(t *testing.T) {
	t.Parallel()
	n := hostileNode(t, middleware.Config{PingInterval: 5 * time.Second, PongTimeout: 5 * time.Second}, memory.Config{MaxClients: 2, MaxSessions: 2})
	for _, id := range []string{"a", "b"} {
		dialClient(t, n.wsURL(id), client.Config{MaxAttempts: once})
		// The session opens after the upgrade: on a loaded machine the
		// third client's could reach the store first and take the place.
		n.rec.wait(t, 0, 5*time.Second, "online of "+id, func(ev stamped) bool {
			return ev.ClientID == id && ev.Transition == presence.Online
		})
	}
	ws, _, err := dialRaw(n.addr(), "/ws?id=c")
	if err != nil || ws == nil {
		t.Fatalf("dial: %v", err)
	}
	defer ws.Close()
	code, text, err := ws.closeCode(5 * time.Second)
	if err != nil || code != 1013 {
		t.Fatalf("close %d %q (%v), want 1013", code, text, err)
	}
}

// B22, B24, B29, B27: hostile frames, each on its own connection, next to
// a well-behaved client that must not notice: each gets its documented
// close code, and its client goes offline once.
func TestHostileFrames(t *testing.T) {
	t.Parallel()
	const readLimit = 1024
	n := hostileNode(t, middleware.Config{ReadLimit: readLimit}, memory.Config{})
	good := dialClient(t, n.wsURL("good"), client.Config{MaxAttempts: once})
	big := make([]byte, 2*readLimit)
	var flood []byte
	flood = append(flood, frame(false, 1, []byte("a"))...)
	for range 2 * readLimit {
		flood = append(flood, frame(false, 0, []byte("a"))...)
	}
	hugeHeader := []byte{0x81, 0x80 | 127, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 1, 2, 3, 4}
	for _, tc := range []struct {
		name string
		data []byte
		want int
	}{
		{"oversized text", frame(true, 1, big), 1009},
		{"oversized binary", frame(true, 2, big), 1009},
		{"length 2^63-1 in the header", hugeHeader, 1009},
		{"1-byte continuation flood", flood, 1009},
		{"invalid UTF-8", frame(true, 1, []byte("ok \xff\xfe")), 1007},
		{"control frame over 125 bytes", frame(true, 9, big[:200]), 1002},
		{"reserved opcode", frame(true, 3, []byte("x")), 1002},
		{"unmasked frame", []byte{0x81, 0x01, 'x'}, 1002},
		{"close code 999", frame(true, 8, []byte{0x03, 0xe7}), 1002},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id := strings.ReplaceAll(tc.name, " ", "-")
			ws, st, err := dialRaw(n.addr(), "/ws?id="+url.QueryEscape(id))
			if err != nil || ws == nil {
				t.Fatalf("dial: %d %v", st, err)
			}
			defer ws.Close()
			mark := len(n.rec.all())
			n.rec.wait(t, 0, 5*time.Second, "online of "+id, func(ev stamped) bool { return ev.ClientID == id })
			_ = ws.write(tc.data) // the server may close before it has read everything
			code, text, err := ws.closeCode(5 * time.Second)
			if err != nil {
				t.Fatal(err)
			}
			if code != tc.want {
				t.Errorf("close %d %q, want %d", code, text, tc.want)
			}
			n.rec.wait(t, mark, 5*time.Second, "offline of "+id, func(ev stamped) bool {
				return ev.ClientID == id && ev.Transition == presence.Offline
			})
		})
	}
	untouched(t, good, "the well-behaved client")
	if st := n.srv.Stats(); st.HandlerPanics != 0 {
		t.Errorf("%d handler panics", st.HandlerPanics)
	}
	checkAlternation(t, n.rec.all())
}

// B31: malformed, oversized and misdirected heartbeat requests get their
// documented status and open no session.
func TestHostileHeartbeats(t *testing.T) {
	t.Parallel()
	n := hostileNode(t, middleware.Config{}, memory.Config{})
	base := "http://" + n.addr() + "/heartbeat"
	hc := &http.Client{Timeout: 5 * time.Second}
	for _, tc := range []struct {
		name, method, query, body string
		header                    []string
		want                      int
	}{
		{"not JSON", "POST", "?id=x1", "{session:", nil, 400},
		{"two objects", "POST", "?id=x2", `{"session":"a"}{"session":"b"}`, nil, 400},
		{"session not a string", "POST", "?id=x3", `{"session":42}`, nil, 400},
		{"session with a control character", "POST", "?id=x4", `{"session":"a\u0000b"}`, nil, 400},
		{"session of 300 bytes", "POST", "?id=x5", `{"session":"` + strings.Repeat("s", 300) + `"}`, nil, 400},
		{"body and query disagree", "POST", "?id=x6&session=a", `{"session":"b"}`, nil, 400},
		{"body over 1 KiB", "POST", "?id=x7", `{"session":"a","pad":"` + strings.Repeat("p", 4096) + `"}`, nil, 413},
		{"body of 10 MiB", "POST", "?id=x8", strings.Repeat(" ", 10<<20), nil, 413},
		{"GET", "GET", "?id=x9", "", nil, 405},
		{"no identity", "POST", "", "", nil, 401},
		{"invalid identity", "POST", "?id=%FF", "", nil, 400},
		{"identity of 300 bytes", "POST", "?id=" + strings.Repeat("i", 300), "", nil, 400},
		{"foreign origin", "POST", "?id=x10", "", []string{"Origin", "https://evil.example"}, 403},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, err := http.NewRequest(tc.method, base+tc.query, strings.NewReader(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			if tc.header != nil {
				req.Header.Set(tc.header[0], tc.header[1])
			}
			resp, err := hc.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.want {
				t.Errorf("status %d, want %d", resp.StatusCode, tc.want)
			}
		})
	}
	hc.CloseIdleConnections()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if c, err := n.tr.Count(ctx); err != nil || c != 0 || n.sessions() != 0 {
		t.Errorf("after hostile heartbeats: %d online, %d sessions (%v), want none", c, n.sessions(), err)
	}
}

// B6, B7: cross-site WebSocket hijacking. The app identifies clients by a
// cookie, which a browser attaches to a foreign page's WebSocket too. The
// origin check refuses every foreign origin with 403 before the upgrade,
// so no session opens in the victim's name.
func TestCrossSiteHijacking(t *testing.T) {
	t.Parallel()
	n := hostileNode(t, middleware.Config{Identify: middleware.IdentifyCookie("session")}, memory.Config{})
	self := "http://" + n.addr()
	for _, tc := range []struct {
		origin string
		want   int
	}{
		{"https://evil.example", 403},
		{"http://evil.example:" + strings.Split(n.addr(), ":")[1], 403},
		{"https://" + n.addr(), 403}, // scheme mismatch
		{"null", 403},
		{"http://" + n.addr() + ".evil.example", 403},
		{self, 101},
	} {
		ws, st, err := dialRaw(n.addr(), "/ws", "Cookie: session=victim", "Origin: "+tc.origin)
		if err != nil {
			t.Fatalf("Origin %s: %v", tc.origin, err)
		}
		if ws != nil {
			ws.Close()
		}
		if st != tc.want {
			t.Errorf("Origin %s: status %d, want %d", tc.origin, st, tc.want)
		}
	}
	// The server counts an upgrade once its session is open, and may run
	// the Online hook first: wait for the count. The foreign origins were
	// answered 403 before any upgrade, so nothing else can come.
	n.rec.wait(t, 0, 5*time.Second, "online of victim", func(ev stamped) bool { return ev.ClientID == "victim" })
	eventually(t, 5*time.Second, "the upgrade counted", func() bool { return n.srv.Stats().Upgrades > 0 })
	if up := n.srv.Stats().Upgrades; up != 1 {
		t.Errorf("%d upgrades, want only the same-origin one", up)
	}
}

// B19, B20: client IDs that try to escape the Redis key namespace (glob
// characters, braces that would steer a Cluster slot, the key separator,
// another prefix's key names) stay data: every key in Redis is under the
// store's prefix, each ID reads back as itself, and invalid IDs are
// refused before anything is written.
//
// timing: compressed for speed: TTL ≥ PingInterval + PongTimeout; the keys
// are the subject.
func TestRedisKeyEscape(t *testing.T) {
	t.Parallel()
	r := redistest.StartServer(t)
	rdb := redisClient(t, r.Addr())
	pfx := uniq("esc")
	st, err := redisstore.New(rdb, redisstore.Config{Prefix: pfx})
	if err != nil {
		t.Fatal(err)
	}
	n := startNode(t, st, presence.Config{TTL: 3 * time.Second, Grace: 200 * time.Millisecond, SweepInterval: 100 * time.Millisecond},
		middleware.Config{PingInterval: time.Second, PongTimeout: time.Second}, nil)
	hostile := []string{"*", "?", "[a-z]*", "\\*", "{" + pfx + ":b0}:g", "}", "{", "{}", "a:b", ":", pfx + ":b1",
		"{vigil:b0}:s", "../../etc", "' OR 1=1", "\"quoted\"", "%2A", "ü😀", strings.Repeat("x", presence.MaxIDLen)}
	for _, id := range hostile {
		dialClient(t, n.wsURL(url.QueryEscape(id)), client.Config{MaxAttempts: once})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	eventually(t, 5*time.Second, "all hostile IDs online", func() bool {
		c, err := n.tr.Count(ctx)
		return err == nil && c == len(hostile)
	})
	ps, err := n.tr.Lookup(ctx, append([]string{"a"}, hostile...))
	if err != nil {
		t.Fatal(err)
	}
	if ps[0].Online || !ps[0].LastSeen.IsZero() {
		t.Errorf("Lookup(a) = %+v: a glob matched a client that does not exist", ps[0])
	}
	for i, p := range ps[1:] {
		if p.ClientID != hostile[i] || !p.Online || p.Sessions != 1 {
			t.Errorf("Lookup(%q) = %+v", hostile[i], p)
		}
	}
	keys, err := rdb.Keys(ctx, "*").Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		if !strings.HasPrefix(k, "{"+pfx+":b") {
			t.Errorf("key %q outside the namespace {%s:b…", k, pfx)
		}
	}
	before := rdb.DBSize(ctx).Val()
	for _, q := range []string{"%00", "a%0Ab", "%FF%FE", strings.Repeat("y", presence.MaxIDLen+1), "", "%E2%80"} {
		ws, st, err := dialRaw(n.addr(), "/ws?id="+q)
		if ws != nil {
			ws.Close()
			t.Errorf("id %q upgraded", q)
		}
		if err != nil || (st != 400 && st != 401) {
			t.Errorf("id %q: status %d (%v), want 400 (or 401 when empty)", q, st, err)
		}
	}
	if after := rdb.DBSize(ctx).Val(); after != before {
		t.Errorf("refused IDs changed Redis: %d keys before, %d after", before, after)
	}
	t.Logf("FIGURE key-escape: %d hostile IDs stored as data under {%s:b…} (%d keys, none outside); 6 invalid IDs refused before any write",
		len(hostile), pfx, len(keys))
}

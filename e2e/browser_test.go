//go:build browser

package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
)

// Short timings keep the suite fast: TTL = 400ms + 800ms = 1.2s (it must
// exceed twice the Tracker's 500ms sweep).
var demoArgs = []string{"-ping-interval", "400ms", "-pong-timeout", "800ms", "-grace", "500ms", "-drain-window", "200ms"}

const (
	ping  = 400 * time.Millisecond
	ttl   = 1200 * time.Millisecond
	grace = 500 * time.Millisecond
	// The page's own client timings (see examples/chat/static/index.html).
	pageOpts = "ping=500&pong=1000&base=200&max=2000&drain=200"
)

func chatPage(d *demo, name string) string {
	return d.url(fmt.Sprintf("/?name=%s&%s", name, pageOpts))
}

func listHas(id string) string {
	return fmt.Sprintf(`window.chat.presence.online.has(%q)`, id)
}

// Two pages see each other online within 1s of the second one coming
// online (issue 5's figure); one closes, and the other sees it leave after
// Grace.
//
// The 1s runs from the moment bob is online (the demo's online line for
// him, or his page's socket opening, whichever comes first) to the moment
// both pages list each other, on the machine's clock (the demo's log
// times, Date.now in the pages). Loading the tab and its scripts comes
// before that and is Chromium's time, not vigil's.
func TestBrowserTwoPages(t *testing.T) {
	d := startDemo(t, "", demoArgs...)
	b := newBrowser(t)
	alice, _ := newTab(t, b, chatPage(d, "alice"))
	poll(t, alice, stateIs("open"), 5*time.Second)
	d.waitPresence(t, "alice", true, 2*time.Second)
	start := time.Now()
	bob, closeBob := newTab(t, b, chatPage(d, "bob"))
	poll(t, bob, listHas("alice")+" && "+listHas("bob"), 10*time.Second)
	poll(t, alice, listHas("bob"), 10*time.Second)
	loaded := time.Since(start)
	ms := func(v float64) time.Time { return time.UnixMilli(int64(v)) }
	bobOpen := ms(eval[float64](t, bob, `window.chat.states.find((s) => s.state === "open").t`))
	on := d.events("online", "bob")
	if len(on) != 1 {
		t.Fatalf("online log lines for bob: %v, want one", on)
	}
	bobOnline, err := time.Parse(time.RFC3339Nano, fmt.Sprint(on[0]["time"]))
	if err != nil {
		t.Fatalf("online log line for bob: %v", err)
	}
	aliceSawBob := ms(eval[float64](t, alice,
		`window.chat.feed.find((f) => f.type === "online" && f.id === "bob").t`))
	bobSawAlice := ms(eval[float64](t, bob,
		`window.chat.feed.find((f) => (f.type === "snapshot" && f.ids.includes("alice")) || (f.type === "online" && f.id === "alice")).t`))
	from := bobOnline
	if bobOpen.Before(from) {
		from = bobOpen
	}
	to := aliceSawBob
	if bobSawAlice.After(to) {
		to = bobSawAlice
	}
	took := to.Sub(from)
	t.Logf("both pages list each other %v after bob came online (alice's page %v, bob's %v; bob's socket open %v after the server's online; %v after bob's tab started loading)",
		took.Round(time.Millisecond), aliceSawBob.Sub(from).Round(time.Millisecond), bobSawAlice.Sub(from).Round(time.Millisecond), bobOpen.Sub(bobOnline).Round(time.Millisecond), loaded.Round(time.Millisecond))
	if took > time.Second {
		t.Errorf("pages saw each other %v after bob came online, want within 1s", took)
	}
	closed := time.Now()
	closeBob()
	poll(t, alice, "!"+listHas("bob"), grace+ttl+2*time.Second)
	left := time.Since(closed)
	t.Logf("alice's page saw bob leave %v after his tab closed (grace %v)", left.Round(time.Millisecond), grace)
	if left < grace-50*time.Millisecond {
		t.Errorf("bob left after %v, before Grace (%v)", left, grace)
	}
	if off := d.eventsSoon("offline", "bob"); len(off) != 1 || off[0]["reason"] != "closed" {
		t.Errorf("offline log lines for bob: %v, want one with reason closed", off)
	}
}

// The demo is stopped (SIGTERM: 1001) and started again on the same
// address: the page shows reconnecting, comes back by itself with a
// bounded number of attempts, and presence is right afterwards.
func TestBrowserServerRestart(t *testing.T) {
	d := startDemo(t, "", demoArgs...)
	b := newBrowser(t)
	alice, _ := newTab(t, b, chatPage(d, "alice"))
	poll(t, alice, stateIs("open"), 5*time.Second)
	d.stop()
	poll(t, alice, stateIs("reconnecting"), 2*time.Second)
	down := time.Now()
	<-time.After(time.Second) // the server stays down for a second
	d = d.restart()
	took := poll(t, alice, stateIs("open"), 5*time.Second)
	attempts := eval[int](t, alice, `window.chat.states.filter((s) => s.state === "reconnecting").length`)
	t.Logf("page back %v after the restart, %v after the stop; %d attempts", took.Round(time.Millisecond),
		time.Since(down).Round(time.Millisecond), attempts)
	// Backoff 200ms doubling to 2s: over about 1.5s down, a handful of
	// attempts; a tight loop would make hundreds.
	if attempts < 1 || attempts > 8 {
		t.Errorf("%d reconnect attempts, want 1 to 8", attempts)
	}
	d.waitPresence(t, "alice", true, 2*time.Second)
	poll(t, alice, listHas("alice"), 5*time.Second) // the feed reconnected too
}

// Network loss: the page shows offline, the server marks the client
// offline after TTL, and on recovery the page reconnects at once. The
// DevTools protocol takes the browser offline (navigator.onLine, the
// offline and online events, new requests); a cable the test unplugs drops
// the bytes of the connections already open, which DevTools leaves alone.
func TestBrowserOffline(t *testing.T) {
	d := startDemo(t, "", demoArgs...)
	cab := newCable(t, d.addr)
	b := newBrowser(t)
	alice, _ := newTab(t, b, cab.url(fmt.Sprintf("/?name=alice&%s&base=5000&max=30000", pageOpts)))
	poll(t, alice, stateIs("open"), 5*time.Second)
	d.waitPresence(t, "alice", true, time.Second)
	lost := time.Now()
	cab.cut.Store(true)
	setOffline(t, alice, true)
	poll(t, alice, stateIs("offline"), 2*time.Second)
	d.waitPresence(t, "alice", false, ttl+grace+3*time.Second)
	took := time.Since(lost)
	t.Logf("server marked alice offline %v after the network went (TTL %v)", took.Round(time.Millisecond), ttl)
	// The server last heard alice at most one ping interval before the cut
	// (her pong to its last ping), and expires her TTL after that: never
	// sooner than TTL - ping after the cut.
	if took < ttl-ping {
		t.Errorf("offline after %v, sooner than TTL - ping interval (%v): the session expired before its TTL", took, ttl-ping)
	}
	if off := d.eventsSoon("offline", "alice"); len(off) != 1 || off[0]["reason"] != "expired" {
		t.Errorf("offline log lines %v, want one with reason expired", off)
	}
	cab.cut.Store(false)
	setOffline(t, alice, false)
	// base=5000: a backoff retry would take seconds; the online event
	// reconnects at once.
	back := poll(t, alice, stateIs("open"), 2*time.Second)
	t.Logf("page open again %v after the network returned", back.Round(time.Millisecond))
	if back > time.Second {
		t.Errorf("reconnect took %v after online, want at once", back)
	}
	d.waitPresence(t, "alice", true, 2*time.Second)
}

// hiddenTab makes a page look hidden and throttles its timers harder than
// Chrome does for hidden tabs: no timer fires more often than every
// period (Chrome's intensive throttling: once a minute; here 3s against a
// TTL of 1.2s, so that the page's own pings could never keep it online).
// Headless Chromium shows every tab, so the test emulates it.
const hiddenTab = `(() => {
  const period = 3000, st = window.setTimeout, si = window.setInterval;
  Object.defineProperty(document, "visibilityState", { get: () => "hidden" });
  Object.defineProperty(document, "hidden", { get: () => true });
  window.setTimeout = (fn, ms, ...a) => st(fn, Math.max(ms || 0, period), ...a);
  window.setInterval = (fn, ms, ...a) => si(fn, Math.max(ms || 0, period), ...a);
})();`

// A hidden page whose timers barely run stays online: the browser answers
// the server's protocol pings by itself, and those carry liveness; the
// page's watchdog, woken late, probes instead of dropping the connection.
func TestBrowserHiddenPageStaysOnline(t *testing.T) {
	d := startDemo(t, "", demoArgs...)
	b := newBrowser(t)
	alice, _ := newTab(t, b, chatPage(d, "alice"), hiddenTab)
	poll(t, alice, stateIs("open"), 5*time.Second)
	if !eval[bool](t, alice, `document.hidden`) {
		t.Fatal("page not hidden")
	}
	watch := 6 * ttl
	deadline := time.Now().Add(watch)
	for time.Now().Before(deadline) {
		if on, _ := d.presence(t, "alice"); !on {
			t.Fatal("alice went offline while her page was hidden")
		}
		<-time.After(100 * time.Millisecond)
	}
	states := eval[string](t, alice, `JSON.stringify(window.chat.states.map((s) => s.state))`)
	if states != `["open"]` || len(d.events("offline", "alice")) != 0 {
		t.Errorf("states %s, offline lines %v: want only open and no offline", states, d.events("offline", "alice"))
	}
	t.Logf("hidden page with 3s timers stayed online for %v (TTL %v), states %s", watch, ttl, states)
}

// setOffline cuts the tab's network (every request, WebSocket frames
// included) and sets navigator.onLine, which fires offline or online, as
// DevTools' "Offline" throttling does.
func setOffline(t *testing.T, tab context.Context, off bool) {
	t.Helper()
	if _, err := chromedp.Call(tab, network.Enable, network.EnableParams{}); err != nil {
		t.Fatal(err)
	}
	conds := []*network.Conditions{{Offline: off, DownloadThroughput: -1, UploadThroughput: -1}}
	if !off {
		conds = []*network.Conditions{}
	}
	if _, err := chromedp.Call(tab, network.EmulateNetworkConditionsByRule, network.EmulateNetworkConditionsByRuleParams{MatchedNetworkConditions: conds}); err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.Call(tab, network.OverrideNetworkState, network.OverrideNetworkStateParams{Offline: off, DownloadThroughput: -1, UploadThroughput: -1}); err != nil {
		t.Fatal(err)
	}
}

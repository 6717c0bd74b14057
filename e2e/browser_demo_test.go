//go:build browser

package e2e

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"

	"github.com/vigilhq/vigil/client"
)

var updateScreenshots = flag.Bool("update-screenshots", false, "write the demo page's screenshots to ../docs (otherwise to a temporary directory)")

// The demo page's DOM, as the tests read it.
const (
	// onlineNames lists the names in the page's online list.
	onlineNames = `[...document.querySelectorAll("#online li:not(.none) .name")].map((n) => n.firstChild.textContent)`
	// recentNames lists the names under "recently offline".
	recentNames = `[...document.querySelectorAll("#recent li:not(.none) .name")].map((n) => n.textContent)`
	// sysLines lists the page's system lines (joins, leaves, connection).
	sysLines = `[...document.querySelectorAll("#log p.sys")].map((p) => p.textContent)`
	// badge is the connection badge's text.
	badge = `document.getElementById("state").textContent`
)

// hasMessage is true when the page shows a chat message from `from` with
// text `text` and a time.
func hasMessage(from, text string) string {
	return fmt.Sprintf(`[...document.querySelectorAll("#log p.msg")].some((p) =>
		p.querySelector(".text").textContent === %q &&
		/\d/.test(p.querySelector("time").textContent) && p.dataset.from === %q)`, text, from)
}

// sees is true when the page lists exactly ids online (in any order), with
// the count, and marks self as "you".
func sees(self string, ids ...string) string {
	return fmt.Sprintf(`(() => {
		const want = %s, got = %s;
		const you = document.querySelector("#online li.self .you");
		return got.length === want.length && want.every((id) => got.includes(id)) &&
			document.getElementById("online-count").textContent === String(want.length) &&
			!!you && you.closest("li").querySelector(".name").firstChild.textContent === %q;
	})()`, jsArray(ids), onlineNames, self)
}

func jsArray(ss []string) string {
	out := "["
	for i, s := range ss {
		if i > 0 {
			out += ","
		}
		out += fmt.Sprintf("%q", s)
	}
	return out + "]"
}

// say sends text through the page's form, as a person would.
func say(t *testing.T, tab context.Context, text string) {
	t.Helper()
	eval[bool](t, tab, fmt.Sprintf(`(document.getElementById("text").value = %q, document.getElementById("say").requestSubmit(), true)`, text))
}

// The demo page, as two people use it: they join and see each other (and
// a third client, the Go client) with the count; chat, with times, and
// the page shows markup in a message as text; the server restarts and
// both pages show reconnecting, come back and see each other again; one
// closes, and the other shows the leave and moves the person to "recently
// offline". At the end it takes the screenshots the README shows.
//
// timing: the demo runs the browser tests' compressed timings (demoArgs:
// ping 400ms, pong 800ms, TTL 1.2s ≥ ping + pong); the Go client's backoff
// and drain window are shortened so it is back within the test after the
// restart, and its heartbeat stays at its defaults (the server's pings keep
// it alive).
func TestBrowserDemoPage(t *testing.T) {
	d := startDemo(t, "", demoArgs...)
	b := newBrowser(t)
	alice, _ := newTab(t, b, d.url("/?id=alice&"+pageOpts))
	if err := chromedp.Do(alice, chromedp.EmulateViewport(1280, 800)); err != nil {
		t.Fatal(err)
	}
	poll(t, alice, stateIs("open"), 5*time.Second)
	bob, closeBob := newTab(t, b, d.url("/?id=bob&"+pageOpts))
	if err := chromedp.Do(bob, chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile)); err != nil {
		t.Fatal(err)
	}
	poll(t, bob, stateIs("open"), 5*time.Second)

	// A third person, on vigil's Go client; it reconnects by itself after
	// the restart.
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	carol, err := client.Dial(ctx, "ws"+d.url("/ws?id=carol")[len("http"):], client.Config{
		BackoffBase: 200 * time.Millisecond, BackoffMax: 2 * time.Second, DrainWindow: 200 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { carol.Close() })

	// Join: each sees the others, the count, and itself marked "you"; the
	// joins after the page's own are system lines.
	poll(t, alice, sees("alice", "alice", "bob", "carol"), 5*time.Second)
	poll(t, bob, sees("bob", "alice", "bob", "carol"), 5*time.Second)
	poll(t, alice, sysLines+`.some((s) => s.startsWith("bob joined"))`, 5*time.Second)
	poll(t, alice, sysLines+`.some((s) => s.startsWith("carol joined"))`, 5*time.Second)

	// Chat: a message appears on both pages with its time.
	say(t, alice, "Hi Bob! Can you see me online?")
	say(t, bob, "Yes: green dot, top of the list.")
	if err := carol.Send(ctx, client.Text, []byte("Is <b>this</b> bold? No: names and messages are text.")); err != nil {
		t.Fatal(err)
	}
	for _, tab := range []context.Context{alice, bob} {
		poll(t, tab, hasMessage("alice", "Hi Bob! Can you see me online?"), 5*time.Second)
		poll(t, tab, hasMessage("bob", "Yes: green dot, top of the list."), 5*time.Second)
		poll(t, tab, hasMessage("carol", "Is <b>this</b> bold? No: names and messages are text."), 5*time.Second)
		if n := eval[int](t, tab, `document.querySelectorAll("#log .msg .text *").length`); n != 0 {
			t.Errorf("a message's markup became %d elements, want text", n)
		}
	}

	// A server restart: the badge counts down to each attempt, and both
	// pages come back by themselves and see each other again.
	d.stop()
	countdown := regexp.MustCompile(`^Reconnecting in \d+ s$`)
	for _, tab := range []context.Context{alice, bob} {
		poll(t, tab, stateIs("reconnecting")+` && /^Reconnecting in \d+ s$/.test(`+badge+`)`, 3*time.Second)
		if s := eval[string](t, tab, badge); !countdown.MatchString(s) && s != "Reconnecting…" {
			t.Errorf("badge %q while reconnecting", s)
		}
	}
	d = d.restart()
	for _, tab := range []context.Context{alice, bob} {
		poll(t, tab, stateIs("open")+` && `+badge+` === "Connected"`, 5*time.Second)
		poll(t, tab, sysLines+`.some((s) => s.startsWith("Reconnected"))`, 5*time.Second)
	}
	// The lists come from the new process once the feed has reconnected
	// (its retry is 2s) and sent a fresh snapshot.
	for _, tab := range []context.Context{alice, bob} {
		poll(t, tab, `window.chat.feed.filter((f) => f.type === "snapshot").length === 2`, 10*time.Second)
	}
	poll(t, alice, sees("alice", "alice", "bob", "carol"), 5*time.Second)
	poll(t, bob, sees("bob", "alice", "bob", "carol"), 5*time.Second)
	say(t, bob, "Back after the restart.")
	poll(t, alice, hasMessage("bob", "Back after the restart."), 5*time.Second)

	// A leave: bob's tab closes; after Grace alice's page shows the leave
	// and lists him under recently offline, with when he was last seen.
	closeBob()
	poll(t, alice, sysLines+`.some((s) => s.startsWith("bob left"))`, grace+ttl+3*time.Second)
	poll(t, alice, sees("alice", "alice", "carol"), time.Second)
	poll(t, alice, recentNames+`.includes("bob")`, time.Second)
	poll(t, alice, `[...document.querySelectorAll("#recent li .when")].some((w) => /^last seen (just now|\d+ s ago)$/.test(w.textContent))`, time.Second)

	say(t, alice, "Bob left: he's under recently offline now.")
	poll(t, alice, hasMessage("alice", "Bob left: he's under recently offline now."), 5*time.Second)
	dir := screenshots(t, alice)

	// Without ?id= the page asks for a name, suggesting the one last used
	// in this browser (bob's, whose tab stored it last).
	dave, _ := newTab(t, b, d.url("/?"+pageOpts))
	poll(t, dave, `!document.getElementById("join").hidden && document.getElementById("name").value === "bob"`, 5*time.Second)
	if st := eval[string](t, dave, `document.getElementById("state").dataset.state || ""`); st != "" {
		t.Errorf("page connected (%s) before a name was given", st)
	}
	if err := chromedp.Do(dave, chromedp.EmulateViewport(390, 844, chromedp.EmulateScale(2), chromedp.EmulateMobile)); err != nil {
		t.Fatal(err)
	}
	shot(t, dave, filepath.Join(dir, "demo-join.png"))
	eval[bool](t, dave, `(document.getElementById("name").value = " dave ", document.querySelector("#join form").requestSubmit(), true)`)
	poll(t, dave, stateIs("open")+` && document.getElementById("join").hidden`, 5*time.Second)
	poll(t, alice, sees("alice", "alice", "carol", "dave"), 5*time.Second)
	if got := eval[string](t, dave, `localStorage.getItem("vigil-chat-name")`); got != "dave" {
		t.Errorf("remembered name %q, want dave", got)
	}
}

// shot saves a screenshot of the tab's viewport to path.
func shot(t *testing.T, tab context.Context, path string) {
	t.Helper()
	png, err := chromedp.Run(tab, chromedp.CaptureScreenshot())
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot %s", path)
}

// screenshots saves the page at 1280 and 390 px width, light and dark:
// to ../docs with -update-screenshots, else to a temporary directory, which
// it returns.
func screenshots(t *testing.T, tab context.Context) string {
	t.Helper()
	dir := t.TempDir()
	if *updateScreenshots {
		dir = filepath.Join("..", "docs")
	}
	shots := []struct {
		file          string
		width, height int64
		scale         float64
		dark          bool
	}{
		{"demo-desktop.png", 1280, 800, 1, false},
		{"demo-phone.png", 390, 844, 2, false},
		{"demo-phone-dark.png", 390, 844, 2, true},
	}
	for _, s := range shots {
		scheme := "light"
		if s.dark {
			scheme = "dark"
		}
		opts := []chromedp.EmulateViewportOption{chromedp.EmulateScale(s.scale)}
		if s.width < 700 {
			opts = append(opts, chromedp.EmulateMobile)
		}
		if err := chromedp.Do(tab, chromedp.EmulateViewport(s.width, s.height, opts...)); err != nil {
			t.Fatal(err)
		}
		media := emulation.SetEmulatedMediaParams{Features: []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: scheme}}}
		if _, err := chromedp.Call(tab, emulation.SetEmulatedMedia, media); err != nil {
			t.Fatal(err)
		}
		// Scroll the chat to its end at this size, and let the page lay out.
		eval[bool](t, tab, `(document.getElementById("log").scrollTop = 1e9, true)`)
		shot(t, tab, filepath.Join(dir, s.file))
	}
	return dir
}

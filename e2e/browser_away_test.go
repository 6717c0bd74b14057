//go:build browser

package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/input"
	"github.com/chromedp/chromedp"
)

// awayIn is true when the page shows id away in its online list (amber
// dot, "last active …") and in every room list that has id.
func awayIn(id string, away bool) string {
	return fmt.Sprintf(`(() => {
		const on = [...document.querySelectorAll("#online li")].find((li) => li.title === %[1]q);
		const rooms = [...document.querySelectorAll("#rooms li[data-id]")].filter((li) => li.dataset.id === %[1]q);
		if (!on || !rooms.length) return false;
		const is = (li) => li.classList.contains("away") && li.dataset.state === "away" && !!li.querySelector(".avatar.dot.away") &&
			/^last active (just now|\d+ s ago)$/.test(li.querySelector(".when")?.textContent || "");
		const not = (li) => !li.classList.contains("away") && !li.querySelector(".avatar.away");
		return [on, ...rooms].every(%[2]t ? is : not);
	})()`, id, away)
}

// setMinimized minimizes or restores the tab's window: a real visibility
// change (document.visibilityState becomes "hidden"), not an emulation.
func setMinimized(t *testing.T, tab context.Context, min bool) {
	t.Helper()
	w, err := chromedp.Call(tab, browser.GetWindowForTarget, browser.GetWindowForTargetParams{})
	if err != nil {
		t.Fatal(err)
	}
	st := browser.WindowStateNormal
	if min {
		st = browser.WindowStateMinimized
	}
	if _, err := chromedp.Call(tab, browser.SetWindowBounds, browser.SetWindowBoundsParams{WindowID: w.WindowID, Bounds: &browser.Bounds{WindowState: st}}); err != nil {
		t.Fatal(err)
	}
}

// A page hidden for -away-after (its window minimized) goes away: the other
// page shows it with an amber dot and "last active …" in the online list
// and its rooms, and the demo logs away; visible again, it is back. With no
// input for its idle time it goes away again, and the first real input (a
// mouse move through the DevTools protocol) brings it back.
//
// timing: -away-after (1.5s) and the page's idle time (3s) are shortened
// from 60s and 5min, keeping hidden < idle as at the defaults; both exceed
// the demo's TTL (1.2s, demoArgs), so a hidden page stays online through
// them, as a hidden tab does for a minute at the defaults.
func TestBrowserAway(t *testing.T) {
	const awayAfter, idle = 1500 * time.Millisecond, 3 * time.Second
	d := startDemo(t, "", append(demoArgs, "-away-after", awayAfter.String())...)
	b := newBrowser(t)
	alice, _ := newTab(t, b, d.url(fmt.Sprintf("/?id=alice&idle=%d&%s", idle.Milliseconds(), pageOpts)))
	poll(t, alice, stateIs("open"), 5*time.Second)
	bob, _ := newTab(t, b, chatPage(d, "bob"))
	poll(t, bob, stateIs("open"), 5*time.Second)
	poll(t, bob, sees("bob", "alice", "bob"), 5*time.Second)
	poll(t, bob, awayIn("alice", false), 5*time.Second)

	// Hidden: away after -away-after, not before.
	setMinimized(t, alice, true)
	hidden := time.Now()
	if v := eval[string](t, alice, `document.visibilityState`); v != "hidden" {
		t.Fatalf("minimized page's visibilityState %q, want hidden", v)
	}
	poll(t, bob, awayIn("alice", true), awayAfter+5*time.Second)
	if took := time.Since(hidden); took < awayAfter-100*time.Millisecond {
		t.Errorf("away %v after the page was hidden, before -away-after %v", took, awayAfter)
	}
	if on, _ := d.presence(t, "alice"); !on {
		t.Error("alice offline while away")
	}
	d.waitLine(t, map[string]string{"event": "away", "client": "alice"}, 5*time.Second)

	// Visible again: back.
	setMinimized(t, alice, false)
	if v := eval[string](t, alice, `document.visibilityState`); v != "visible" {
		t.Fatalf("restored page's visibilityState %q, want visible", v)
	}
	poll(t, bob, awayIn("alice", false), 5*time.Second)
	d.waitLine(t, map[string]string{"event": "back", "client": "alice"}, 5*time.Second)

	// No input for the idle time: away; the first input: back.
	poll(t, bob, awayIn("alice", true), idle+5*time.Second)
	if _, err := chromedp.Call(alice, input.DispatchMouseEvent, input.DispatchMouseEventParams{Type: input.DispatchMouseEventTypeMouseMoved, X: 200, Y: 200}); err != nil {
		t.Fatal(err)
	}
	poll(t, bob, awayIn("alice", false), 5*time.Second)
	for deadline := time.Now().Add(5 * time.Second); len(d.events("back", "alice")) < 2 && time.Now().Before(deadline); {
		<-time.After(20 * time.Millisecond)
	}

	var got []string
	var last float64
	d.mu.Lock()
	lines := append([]map[string]any(nil), d.lines...)
	d.mu.Unlock()
	for _, l := range lines {
		ev, _ := l["event"].(string)
		if l["client"] != "alice" || (ev != "online" && ev != "away" && ev != "back") {
			continue
		}
		got = append(got, ev)
		seq, _ := l["seq"].(float64)
		if seq <= last {
			t.Errorf("alice's %s with seq %v after %v", ev, seq, last)
		}
		last = seq
	}
	if want := "[online away back away back]"; fmt.Sprint(got) != want {
		t.Errorf("alice's lines %v, want %s", got, want)
	}
}

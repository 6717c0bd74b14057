//go:build browser

package e2e

import (
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// roomHas is true when the page lists exactly members (id=name pairs, any
// order) in room, with the count, and marks self as "you" when it is one.
func roomHas(self, room string, members ...string) string {
	return fmt.Sprintf(`(() => {
		const sec = document.querySelector(%q);
		if (!sec) return false;
		const want = %s;
		const got = [...sec.querySelectorAll("li[data-id]")].map((li) =>
			li.dataset.id + "=" + li.querySelector(".name").firstChild.textContent);
		const you = sec.querySelector("li.self .you");
		return got.length === want.length && want.every((m) => got.includes(m)) &&
			sec.querySelector("h3 .count").textContent === String(want.length) &&
			(!want.some((m) => m.startsWith(%q + "=")) || (!!you && you.closest("li").dataset.id === %q));
	})()`, fmt.Sprintf(`#rooms section[data-room=%q]`, room), jsArray(members), self, self)
}

// pageRooms lists the rooms the page shows, in order.
const pageRooms = `[...document.querySelectorAll("#rooms section")].map((s) => s.dataset.room).join(",")`

// Two pages in two rooms each (one shared), with display names carried as
// metadata: each page lists the right members of each of its rooms, by
// name, live. An HTTP-heartbeat client joins a room and leaves it; one
// page joins a room it types and leaves one with its × button; then it
// closes, and the other page's shared room loses it.
//
// timing: the demo runs the browser tests' compressed timings (demoArgs:
// ping 400ms, pong 800ms, TTL 1.2s ≥ ping + pong, Grace 500ms); the
// waits for a leave allow Grace + TTL + slack, the relation every offline
// keeps.
func TestBrowserRooms(t *testing.T) {
	d := startDemo(t, "", demoArgs...)
	b := newBrowser(t)
	ann, _ := newTab(t, b, d.url("/?id=u-ann&display=Ann%20Lee&room=red&room=both&"+pageOpts))
	if err := chromedp.Do(ann, chromedp.EmulateViewport(1280, 800)); err != nil {
		t.Fatal(err)
	}
	bob, closeBob := newTab(t, b, d.url("/?id=u-bob&display=Bob&room=blue&room=%23both&"+pageOpts))
	for _, tab := range []context.Context{ann, bob} {
		poll(t, tab, stateIs("open"), 5*time.Second)
	}
	if got := eval[string](t, ann, pageRooms); got != "red,both" {
		t.Errorf("ann's rooms %q", got)
	}
	if got := eval[string](t, bob, pageRooms); got != "blue,both" { // "#both" is the room both
		t.Errorf("bob's rooms %q", got)
	}

	// Each page: its own rooms' members, by the names in their metadata.
	poll(t, ann, roomHas("u-ann", "red", "u-ann=Ann Lee"), 5*time.Second)
	poll(t, ann, roomHas("u-ann", "both", "u-ann=Ann Lee", "u-bob=Bob"), 5*time.Second)
	poll(t, bob, roomHas("u-bob", "blue", "u-bob=Bob"), 5*time.Second)
	poll(t, bob, roomHas("u-bob", "both", "u-ann=Ann Lee", "u-bob=Bob"), 5*time.Second)

	// A chat message goes to the rooms of its sender: bob's, in blue and
	// both, reaches ann's page through both, tagged with it.
	say(t, bob, "Hello from blue and both")
	poll(t, ann, hasMessage("u-bob", "Hello from blue and both"), 5*time.Second)
	if tag := eval[string](t, ann, `[...document.querySelectorAll("#log p.msg")].pop().querySelector(".rooms")?.textContent || ""`); tag != "#both" {
		t.Errorf("message tagged %q, want #both (the rooms ann shares)", tag)
	}

	// An HTTP-heartbeat client (no page) joins red with a name, then
	// leaves: ann's page lists it, then drops it after Grace.
	beat := func(path string) {
		t.Helper()
		resp, err := http.Post(d.url(path), "", nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode >= 300 {
			t.Fatalf("POST %s: %d", path, resp.StatusCode)
		}
	}
	beat("/presence/heartbeat?id=u-cy&session=s&room=red&name=Cy")
	poll(t, ann, roomHas("u-ann", "red", "u-ann=Ann Lee", "u-cy=Cy"), 5*time.Second)
	beat("/presence/leave?id=u-cy&session=s")
	poll(t, ann, roomHas("u-ann", "red", "u-ann=Ann Lee"), grace+ttl+3*time.Second)

	// Bob types a room, green, and joins it (a new socket with one more
	// room); then leaves blue with its × button. Ann's both stays as it
	// was: the new session joined both within the old one's Grace.
	eval[bool](t, bob, `(document.getElementById("room-name").value = "#green", document.getElementById("room-form").requestSubmit(), true)`)
	poll(t, bob, pageRooms+` === "blue,both,green"`, 5*time.Second)
	poll(t, bob, roomHas("u-bob", "green", "u-bob=Bob"), 5*time.Second)
	eval[bool](t, bob, `(document.querySelector('#rooms section[data-room="blue"] h3 .x').click(), true)`)
	poll(t, bob, pageRooms+` === "both,green"`, 5*time.Second)
	poll(t, bob, stateIs("open"), 5*time.Second)
	poll(t, bob, roomHas("u-bob", "both", "u-ann=Ann Lee", "u-bob=Bob"), 5*time.Second)
	if n := len(d.events("leave", "u-bob")); n > 1 {
		t.Errorf("bob left %d rooms; only blue, after Grace, may have gone", n)
	}
	d.waitLine(t, map[string]string{"event": "leave", "client": "u-bob", "room": "blue"}, grace+ttl+3*time.Second)
	if got := len(d.events("join", "u-bob")); got != 3 { // blue, both, green: once each
		t.Errorf("bob joined %d times, want 3 (blue, both, green)", got)
	}
	dir := t.TempDir()
	if *updateScreenshots {
		dir = filepath.Join("..", "docs")
	}
	shot(t, bob, filepath.Join(dir, "demo-rooms.png"))

	// Bob's tab closes: ann's both loses him after Grace.
	closeBob()
	poll(t, ann, roomHas("u-ann", "both", "u-ann=Ann Lee"), grace+ttl+3*time.Second)
	poll(t, ann, roomHas("u-ann", "red", "u-ann=Ann Lee"), time.Second)
	d.waitLine(t, map[string]string{"event": "leave", "client": "u-bob", "room": "both", "reason": "closed"}, time.Second)
	shot(t, ann, filepath.Join(dir, "demo-rooms-after.png"))
}

// waitLine waits for a log line with every attribute of want.
func (d *demo) waitLine(t *testing.T, want map[string]string, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		d.mu.Lock()
		for _, m := range d.lines {
			ok := true
			for k, v := range want {
				if s, _ := m[k].(string); s != v {
					ok = false
					break
				}
			}
			if ok {
				d.mu.Unlock()
				return
			}
		}
		d.mu.Unlock()
		if time.Now().After(deadline) {
			t.Fatalf("no log line %v within %v", want, within)
		}
		<-time.After(20 * time.Millisecond)
	}
}

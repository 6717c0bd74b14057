package middleware_test

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/vigilhq/vigil/middleware"
	"github.com/vigilhq/vigil/presence"
)

// sseEvent is one Server-Sent Event.
type sseEvent struct {
	typ  string
	data string
}

// readSSE streams the events of url to a channel, closed when the stream
// ends.
func readSSE(t *testing.T, url string) (<-chan sseEvent, func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != 200 || res.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("status %d, Content-Type %q", res.StatusCode, res.Header.Get("Content-Type"))
	}
	ch := make(chan sseEvent, 100)
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer close(ch)
		defer res.Body.Close()
		sc := bufio.NewScanner(res.Body)
		var ev sseEvent
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == "":
				if ev.typ != "" {
					ch <- ev
				}
				ev = sseEvent{}
			case strings.HasPrefix(line, "event: "):
				ev.typ = line[7:]
			case strings.HasPrefix(line, "data: "):
				ev.data = line[6:]
			}
		}
	}()
	stop := func() { cancel(); <-done }
	t.Cleanup(stop)
	return ch, stop
}

func nextSSE(t *testing.T, ch <-chan sseEvent, typ string) map[string]any {
	t.Helper()
	timer := time.NewTimer(3 * time.Second)
	defer timer.Stop()
	for {
		select {
		case ev, ok := <-ch:
			if !ok {
				t.Fatalf("stream ended waiting for %q", typ)
			}
			if ev.typ != typ {
				continue
			}
			var m map[string]any
			if err := json.Unmarshal([]byte(ev.data), &m); err != nil {
				t.Fatalf("event %q data %q: %v", ev.typ, ev.data, err)
			}
			return m
		case <-timer.C:
			t.Fatalf("no %q event", typ)
		}
	}
}

func newFeed(t *testing.T, e *env, cfg middleware.FeedConfig) *middleware.Feed {
	t.Helper()
	f, err := middleware.NewFeed(e.tr, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

func TestFeedSnapshotThenTransitions(t *testing.T) {
	e := newEnv(t, fastTracker(), fastServer())
	f := newFeed(t, e, middleware.FeedConfig{KeepAlive: 50 * time.Millisecond})
	mux := e.mux(nil)
	mux.Handle("GET /presence/feed", f)
	ts := startHTTP(t, mux)
	a := mustDial(t, wsURL(ts, "/ws?id=alice"))
	e.waitEvent(t, "alice", 2*time.Second)

	ch, _ := readSSE(t, ts.URL+"/presence/feed")
	snap := nextSSE(t, ch, "snapshot")
	clients := snap["clients"].([]any)
	if len(clients) != 1 || clients[0].(map[string]any)["id"] != "alice" || snap["truncated"] != false {
		t.Fatalf("snapshot %v, want alice alone", snap)
	}
	mustDial(t, wsURL(ts, "/ws?id=bob"))
	// alice's own online may still arrive after the snapshot (Watch hooks
	// run on their own goroutines); applying it again changes nothing.
	ev := nextSSE(t, ch, "online")
	if ev["id"] == "alice" {
		ev = nextSSE(t, ch, "online")
	}
	if ev["id"] != "bob" || ev["seq"].(float64) < 1 {
		t.Fatalf("online event %v, want bob", ev)
	}
	a.Close()
	if ev := nextSSE(t, ch, "offline"); ev["id"] != "alice" || ev["reason"] == "" {
		t.Fatalf("offline event %v, want alice with a reason", ev)
	}
}

func TestFeedDropsSlowSubscriberAndCloses(t *testing.T) {
	e := newEnv(t, fastTracker(), fastServer())
	f := newFeed(t, e, middleware.FeedConfig{Buffer: 1})
	ts := startHTTP(t, f)
	ch, _ := readSSE(t, ts.URL)
	nextSSE(t, ch, "snapshot")
	// Publish faster than any stream can be written: the second event
	// overflows the buffer of one.
	for i := range 50 {
		f.Publish(presence.Event{ClientID: "x", Transition: presence.Online, Seq: uint64(i + 1)})
	}
	timer := time.NewTimer(3 * time.Second)
	defer timer.Stop()
	for ended := false; !ended; {
		select {
		case _, ok := <-ch:
			ended = !ok
		case <-timer.C:
			t.Fatal("stream of a slow subscriber not ended")
		}
	}
	ch2, _ := readSSE(t, ts.URL)
	nextSSE(t, ch2, "snapshot")
	f.Close()
	for range ch2 {
	}
	res, err := http.Get(ts.URL)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("after Close: status %d, want 503", res.StatusCode)
	}
	res, err = http.Post(ts.URL, "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST: status %d, want 405", res.StatusCode)
	}
}

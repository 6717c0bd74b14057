package client

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vigilhq/vigil/presence"
)

// awayMS parses a "vigil:away <idle_ms>" report.
func awayMS(t *testing.T, m Message) time.Duration {
	t.Helper()
	ms, ok := strings.CutPrefix(string(m.Data), "vigil:away ")
	n, err := strconv.ParseInt(ms, 10, 64)
	if !ok || err != nil {
		t.Fatalf("got %q, want vigil:away <idle_ms>", m.Data)
	}
	return time.Duration(n) * time.Millisecond
}

// The reports reach the server as the protocol's text messages, only on a
// change, and again at the start of each new connection while away. The
// server here delivers them to its echo handler (DisableActivity), so the
// client receives what it sent.
func TestSetAwayAndActive(t *testing.T) {
	cfg := fastServer()
	cfg.DisableActivity = true
	n := newNode(t, fastTracker(), cfg, echo)
	c := dialT(t, n.url(), Config{ClientID: "alice"})
	n.waitEvent("alice", presence.Online, 2*time.Second)
	ctx := context.Background()

	if err := c.SetActive(ctx); err != nil { // active already: nothing sent
		t.Fatal(err)
	}
	if err := c.SetAway(ctx, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if err := c.SetAway(ctx, time.Minute); err != nil { // away already: nothing sent
		t.Fatal(err)
	}
	if err := c.Send(ctx, Text, []byte("mark")); err != nil {
		t.Fatal(err)
	}
	if d := awayMS(t, recvT(t, c, 2*time.Second)); d < 5*time.Second || d > 6*time.Second {
		t.Fatalf("idle %v, want 5s", d)
	}
	if m := recvT(t, c, 2*time.Second); string(m.Data) != "mark" {
		t.Fatalf("got %q, want mark: a report was sent twice", m.Data)
	}
	if !c.Away() {
		t.Fatal("Away() = false")
	}

	// A new connection (a new session, which starts active) hears it again.
	n.crash()
	n.restart()
	if d := awayMS(t, recvT(t, c, 10*time.Second)); d < 5*time.Second {
		t.Fatalf("idle %v after the reconnect, want at least 5s", d)
	}
	if err := c.SetActive(ctx); err != nil {
		t.Fatal(err)
	}
	if m := recvT(t, c, 2*time.Second); string(m.Data) != "vigil:active" {
		t.Fatalf("got %q, want vigil:active", m.Data)
	}
	c.Close()
	if err := c.SetAway(ctx, 0); !errors.Is(err, ErrClosed) {
		t.Fatalf("SetAway after Close: %v, want ErrClosed", err)
	}
}

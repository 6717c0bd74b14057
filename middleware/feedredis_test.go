//go:build integration

package middleware_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/vigilhq/vigil/internal/redistest"
	"github.com/vigilhq/vigil/middleware"
	"github.com/vigilhq/vigil/presence"
	redisstore "github.com/vigilhq/vigil/store/redis"
)

// TestFeedAcrossNodes: the coalesced feeds of one node show what happens
// on another (a friends list, the node, and with a Store that keeps rooms
// a room), through the Redis journal that Tracker.Watch reads.
//
// timing: a 50ms feed Window; no Grace, so that an ended session goes
// offline at once; the Trackers keep their other defaults (the journal is
// read every half SweepInterval).
func TestFeedAcrossNodes(t *testing.T) {
	for _, srv := range redistest.Servers {
		t.Run(srv.Name, func(t *testing.T) {
			rdb := srv.Client(t)
			prefix := redistest.Prefix(t, rdb)
			node := func(name string) *presence.Tracker {
				st := redistest.Store(t, rdb, redisstore.Config{Prefix: prefix})
				tr, err := presence.New(context.Background(), st, presence.Config{Node: name, Grace: -1})
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { tr.Close(context.Background()) })
				return tr
			}
			n1, n2 := node("n1"), node("n2")
			f, err := middleware.NewFeed(n1, middleware.FeedConfig{Window: 50 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { f.Close() })
			ts := startHTTP(t, f)
			// A friends list and the node: bob comes online on n2, then
			// goes.
			ch, _ := readSSE(t, ts.URL+"?ids=bob,carol")
			if snap := nextSSE(t, ch, "snapshot"); snap["count"].(float64) != 0 {
				t.Fatalf("snapshot %v, want nobody online", snap)
			}
			nodeCh, _ := readSSE(t, ts.URL+"?v=2")
			nextSSE(t, nodeCh, "snapshot")
			bob, err := n2.Connect(context.Background(), "bob", presence.SessionOptions{})
			if err != nil {
				t.Fatal(err)
			}
			d := nextSSE(t, ch, "diff")
			if m := d["set"].([]any)[0].(map[string]any); m["id"] != "bob" || m["state"] != "online" || d["count"].(float64) != 1 {
				t.Fatalf("diff %v, want bob online from n2", d)
			}
			if d := nextSSE(t, nodeCh, "diff"); ids(d["set"].([]any))[0] != "bob" {
				t.Fatalf("node diff %v, want bob", d)
			}
			bob.End(context.Background(), presence.ReasonClosed)
			for {
				d = nextSSE(t, ch, "diff")
				if m := d["set"].([]any)[0].(map[string]any); m["state"] == "offline" && m["last_seen"] != nil {
					break
				}
			}
			if d := nextSSE(t, nodeCh, "diff"); d["gone"].([]any)[0] != "bob" {
				t.Fatalf("node diff %v, want bob gone", d)
			}
			if !n1.HasRooms() {
				return // rooms over a Store that keeps them only
			}
			connectIn(t, n1, "alice", `{"name":"Ada"}`, "general")
			ch, _ = readSSE(t, ts.URL+"?room=general")
			if snap := nextSSE(t, ch, "snapshot"); snap["count"].(float64) != 1 {
				t.Fatalf("snapshot %v, want alice", snap)
			}
			bob2 := connectIn(t, n2, "bob", `{"name":"Bob"}`, "general")
			d = nextSSE(t, ch, "diff")
			if got := ids(d["set"].([]any)); len(got) != 1 || got[0] != "bob" || d["count"].(float64) != 2 {
				t.Fatalf("diff %v, want bob from n2", d)
			}
			if err := bob2.SetMeta(context.Background(), json.RawMessage(`{"name":"Robert"}`)); err != nil {
				t.Fatal(err)
			}
			d = nextSSE(t, ch, "diff")
			if m := d["set"].([]any)[0].(map[string]any); m["meta"].(map[string]any)["name"] != "Robert" {
				t.Fatalf("diff %v, want bob's new meta", d)
			}
			if err := bob2.Leave(context.Background(), "general"); err != nil {
				t.Fatal(err)
			}
			if d = nextSSE(t, ch, "diff"); d["gone"].([]any)[0] != "bob" {
				t.Fatalf("diff %v, want bob gone", d)
			}
		})
	}
}

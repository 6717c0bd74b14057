package presence_test

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/vigilhq/vigil/presence"
	"github.com/vigilhq/vigil/store/memory"
)

func Example() {
	ctx := context.Background()
	store, _ := memory.New(memory.Config{})
	tr, err := presence.New(ctx, store, presence.Config{Node: "web-1", Grace: -1})
	if err != nil {
		panic(err)
	}
	// Hooks run on the Tracker's goroutines; this example waits for them.
	done := make(chan struct{})
	var onlineSeq uint64
	tr.OnOnline(func(ctx context.Context, ev presence.Event) {
		fmt.Println(ev.ClientID, ev.Transition, "on node", ev.Node)
		onlineSeq = ev.Seq
		done <- struct{}{}
	})
	tr.OnOffline(func(ctx context.Context, ev presence.Event) {
		// Seq grows by one per transition: consumers order and de-duplicate
		// with it (Event.ID).
		fmt.Println(ev.ClientID, ev.Transition, ev.Reason, "next seq:", ev.Seq == onlineSeq+1)
		done <- struct{}{}
	})

	s, _ := tr.Connect(ctx, "alice", presence.SessionOptions{})
	<-done
	s.Beat() // on every pong or heartbeat
	n, _ := tr.Count(ctx)
	fmt.Println("online:", n)
	s.End(ctx, presence.ReasonClosed) // Grace is off: offline at once
	<-done
	tr.Close(ctx)
	// Output:
	// alice online on node web-1
	// online: 1
	// alice offline closed next seq: true
}

func ExampleTracker_Lookup() {
	ctx := context.Background()
	store, _ := memory.New(memory.Config{})
	tr, _ := presence.New(ctx, store, presence.Config{Node: "web-1"})
	defer tr.Close(ctx)
	tr.Connect(ctx, "alice", presence.SessionOptions{})

	ps, _ := tr.Lookup(ctx, []string{"alice", "bob"})
	for _, p := range ps {
		fmt.Println(p.ClientID, p.Online, p.LastSeen.IsZero())
	}
	// Output:
	// alice true false
	// bob false true
}

func ExampleTracker_List() {
	ctx := context.Background()
	store, _ := memory.New(memory.Config{})
	tr, _ := presence.New(ctx, store, presence.Config{Node: "web-1"})
	defer tr.Close(ctx)
	for _, id := range []string{"a", "b", "c"} {
		tr.Connect(ctx, id, presence.SessionOptions{})
	}
	total := 0
	for cursor := ""; ; {
		page, err := tr.List(ctx, cursor, 2)
		if err != nil {
			panic(err)
		}
		total += len(page.Clients)
		if page.Next == "" {
			break
		}
		cursor = page.Next
	}
	fmt.Println(total, "online")
	// Output: 3 online
}

func ExampleTracker_Kick() {
	ctx := context.Background()
	store, _ := memory.New(memory.Config{})
	tr, _ := presence.New(ctx, store, presence.Config{Node: "web-1"})
	defer tr.Close(ctx)
	tr.Connect(ctx, "mallory", presence.SessionOptions{
		OnGone: func(r presence.Reason) { fmt.Println("close the connection:", r) },
	})
	if err := tr.Kick(ctx, "mallory"); err != nil {
		panic(err)
	}
	// Output: close the connection: kicked
}

func ExampleValidateID() {
	fmt.Println(presence.ValidateID("alice"))
	fmt.Println(presence.ValidateID("bad\x00id"))
	// Output:
	// <nil>
	// presence: invalid id: control character at byte 3
}

// A session joins rooms as it connects and later; OnJoin and OnLeave take
// one room, every room (""), or a prefix ("game:*"). Metadata travels with
// the session: a room lists its members with their sessions' metadata.
func ExampleSession_Join() {
	ctx := context.Background()
	store, _ := memory.New(memory.Config{})
	tr, _ := presence.New(ctx, store, presence.Config{Node: "web-1", Grace: -1})
	done := make(chan struct{})
	tr.OnJoin("game:*", func(ctx context.Context, ev presence.Event) {
		fmt.Println(ev.ClientID, "joined", ev.Room, "as", string(ev.Meta))
		done <- struct{}{}
	})
	tr.OnLeave("", func(ctx context.Context, ev presence.Event) {
		fmt.Println(ev.ClientID, "left", ev.Room, ev.Reason)
		if ev.Room == "game:7" {
			done <- struct{}{}
		}
	})

	s, _ := tr.Connect(ctx, "alice", presence.SessionOptions{
		Rooms: []string{"lobby"},
		Meta:  json.RawMessage(`{"name":"Alice"}`),
	})
	s.Join(ctx, "game:7")
	<-done
	page, _ := tr.Members(ctx, "game:7", "", 50)
	for _, m := range page.Members {
		fmt.Println("in game:7:", m.ClientID, string(m.Meta()))
	}
	s.Leave(ctx, "game:7")
	<-done
	rooms, _ := tr.ClientRooms(ctx, "alice")
	fmt.Println("rooms:", rooms)
	tr.Close(ctx) // ends the session, which leaves the lobby
	// Output:
	// alice joined game:7 as {"name":"Alice"}
	// in game:7: alice {"name":"Alice"}
	// alice left game:7 left
	// rooms: [lobby]
	// alice left lobby shutdown
}

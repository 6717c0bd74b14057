package redis_test

import (
	"context"
	"fmt"
	"log"

	goredis "github.com/redis/go-redis/v9"

	"github.com/vigilhq/vigil/presence"
	redisstore "github.com/vigilhq/vigil/store/redis"
)

// Two nodes of an application share presence through Redis. Each would be
// its own process; Watch lets each push every transition, whichever node
// saw it, to its own clients.
func Example() {
	ctx := context.Background()
	rdb := goredis.NewUniversalClient(&goredis.UniversalOptions{Addrs: []string{"127.0.0.1:6379"}})
	defer rdb.Close()

	st, err := redisstore.New(rdb, redisstore.Config{Prefix: "chat"})
	if err != nil {
		log.Fatal(err)
	}
	tr, err := presence.New(ctx, st, presence.Config{Node: "node-a"})
	if err != nil {
		log.Fatal(err)
	}
	defer tr.Close(ctx)

	// Once per transition, on one node: webhooks, database writes.
	tr.OnOffline(func(ctx context.Context, ev presence.Event) {
		fmt.Println("offline:", ev.ClientID, ev.ID())
	})
	// Every transition of every node: push to this node's clients.
	tr.Watch(func(ctx context.Context, ev presence.Event) {
		fmt.Println(ev.ClientID, ev.Transition)
	})

	s, err := tr.Connect(ctx, "alice", presence.SessionOptions{})
	if err != nil {
		log.Fatal(err)
	}
	s.Beat()
	_ = s.End(ctx, presence.ReasonClosed)
}

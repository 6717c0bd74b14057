package memory_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/vigilhq/vigil/presence"
	"github.com/vigilhq/vigil/store/memory"
)

func ExampleNew() {
	ctx := context.Background()
	store, err := memory.New(memory.Config{MaxClients: 1, Retention: time.Hour})
	if err != nil {
		panic(err)
	}
	tr, _ := presence.New(ctx, store, presence.Config{Node: "web-1"})
	defer tr.Close(ctx)

	tr.Connect(ctx, "alice", presence.SessionOptions{})
	_, err = tr.Connect(ctx, "bob", presence.SessionOptions{})
	fmt.Println(errors.Is(err, presence.ErrLimit))
	// Output: true
}

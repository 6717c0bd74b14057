package client_test

import (
	"context"
	"log"
	"net/http"
	"time"

	"github.com/vigilhq/vigil/client"
)

func ExampleDial() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := client.Dial(ctx, "ws://localhost:8080/presence/ws", client.Config{
		Header:  http.Header{"Authorization": {"Bearer token"}},
		OnState: func(sc client.StateChange) { log.Println(sc.From, "->", sc.To, sc.Err) },
	})
	if err != nil {
		log.Println(err) // 401 and the like, or ctx's deadline
		return
	}
	defer c.Close()
	if err := c.Send(ctx, client.Text, []byte("hello")); err != nil {
		log.Println(err)
	}
	for {
		m, err := c.Receive(context.Background())
		if err != nil {
			log.Println("stopped:", err) // see c.Err()
			return
		}
		log.Printf("%s", m.Data)
	}
}

// Command faultclient runs vigil's Go client (package client, the one we
// ship) against one URL and prints each state change as a JSON line on
// stdout. The disconnect suite runs it inside a network namespace with
// `ip netns exec`, where an in-process client cannot go. It exits when its
// stdin closes, so it never outlives the test that started it.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"time"

	"github.com/gorilla/websocket"

	"github.com/vigilhq/vigil/client"
)

// line is one state change, as printed.
type line struct {
	State   string `json:"state"`
	From    string `json:"from"`
	Attempt int    `json:"attempt"`
	DelayMS int64  `json:"delay_ms,omitempty"`
	// Timeout: the connection was dropped because the server answered no
	// heartbeat (client.ErrTimeout).
	Timeout bool `json:"timeout,omitempty"`
	// Code is the close code that ended the connection, 1006 when none.
	Code int    `json:"code,omitempty"`
	Err  string `json:"err,omitempty"`
}

var (
	outMu sync.Mutex
	out   = json.NewEncoder(os.Stdout)
)

func emit(l line) {
	outMu.Lock()
	defer outMu.Unlock()
	_ = out.Encode(l)
}

func main() {
	url := flag.String("url", "", "WebSocket URL")
	ping := flag.Duration("ping-interval", time.Second, "client.Config.PingInterval")
	pong := flag.Duration("pong-timeout", time.Second, "client.Config.PongTimeout")
	dialTimeout := flag.Duration("dial-timeout", time.Second, "TCP connect and handshake timeout")
	base := flag.Duration("backoff-base", 100*time.Millisecond, "client.Config.BackoffBase")
	maxBackoff := flag.Duration("backoff-max", time.Second, "client.Config.BackoffMax")
	flag.Parse()

	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		cancel()
	}()
	c, err := client.Dial(ctx, *url, client.Config{
		Dialer: &websocket.Dialer{
			HandshakeTimeout: *dialTimeout,
			NetDialContext:   (&net.Dialer{Timeout: *dialTimeout}).DialContext,
		},
		PingInterval: *ping,
		PongTimeout:  *pong,
		BackoffBase:  *base,
		BackoffMax:   *maxBackoff,
		OnState: func(sc client.StateChange) {
			l := line{State: sc.To.String(), From: sc.From.String(), Attempt: sc.Attempt, DelayMS: sc.Delay.Milliseconds()}
			if sc.Err != nil {
				l.Err = sc.Err.Error()
				l.Timeout = errors.Is(sc.Err, client.ErrTimeout)
				var ce *client.CloseError
				if errors.As(sc.Err, &ce) {
					l.Code = ce.Code
				}
			}
			emit(l)
		},
	})
	if err != nil {
		if ctx.Err() == nil {
			emit(line{State: "error", Err: err.Error()})
			os.Exit(1)
		}
		return
	}
	<-ctx.Done()
	if err := c.Close(); err != nil {
		fmt.Fprintln(os.Stderr, err)
	}
}

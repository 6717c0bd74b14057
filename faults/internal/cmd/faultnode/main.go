// Command faultnode is one vigil node for the disconnect suite: a Tracker
// on the memory or Redis store, a middleware.Server with a presence-only
// WebSocket endpoint (/ws?id=CLIENT) and the status endpoints (/online,
// /presence/{id}), served by an http.Server with the same ReadHeaderTimeout
// as the chat demo should set. It prints one JSON line on stdout when it
// listens, and one per transition its hooks see. It exits when its stdin
// closes; the suite kills it with SIGKILL to simulate a crash.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"sync"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/vigilhq/vigil/middleware"
	"github.com/vigilhq/vigil/presence"
	"github.com/vigilhq/vigil/store/memory"
	redisstore "github.com/vigilhq/vigil/store/redis"
)

// line is one JSON line of output.
type line struct {
	Ev      string `json:"ev"`
	Addr    string `json:"addr,omitempty"`
	Client  string `json:"client,omitempty"`
	Session string `json:"session,omitempty"`
	Reason  string `json:"reason,omitempty"`
	Seq     uint64 `json:"seq,omitempty"`
	Node    string `json:"node,omitempty"`
	Err     string `json:"err,omitempty"`
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
	addr := flag.String("addr", "127.0.0.1:0", "listen address")
	node := flag.String("node-id", "n1", "node ID")
	store := flag.String("store", "memory", "memory or redis")
	redisAddr := flag.String("redis", "", "Redis address, for -store redis")
	prefix := flag.String("prefix", "vigil", "Redis key prefix")
	ping := flag.Duration("ping", 500*time.Millisecond, "PingInterval")
	pong := flag.Duration("pong", 500*time.Millisecond, "PongTimeout")
	ttl := flag.Duration("ttl", 1500*time.Millisecond, "Tracker TTL")
	grace := flag.Duration("grace", time.Second, "Tracker Grace")
	sweep := flag.Duration("sweep", 100*time.Millisecond, "Tracker SweepInterval")
	flag.Parse()
	if err := run(*addr, *node, *store, *redisAddr, *prefix, *ping, *pong, *ttl, *grace, *sweep); err != nil {
		emit(line{Ev: "error", Err: err.Error()})
		os.Exit(1)
	}
}

func run(addr, node, storeKind, redisAddr, prefix string, ping, pong, ttl, grace, sweep time.Duration) error {
	var st presence.Store
	switch storeKind {
	case "memory":
		m, err := memory.New(memory.Config{})
		if err != nil {
			return err
		}
		st = m
	case "redis":
		rdb := goredis.NewClient(&goredis.Options{Addr: redisAddr, DialTimeout: time.Second,
			ReadTimeout: time.Second, WriteTimeout: time.Second, MaxRetries: -1})
		defer rdb.Close()
		r, err := redisstore.New(rdb, redisstore.Config{Prefix: prefix})
		if err != nil {
			return err
		}
		st = r
	default:
		return fmt.Errorf("unknown store %q", storeKind)
	}
	ctx := context.Background()
	tr, err := presence.New(ctx, st, presence.Config{Node: node, TTL: ttl, Grace: grace, SweepInterval: sweep})
	if err != nil {
		return err
	}
	hook := func(_ context.Context, ev presence.Event) {
		emit(line{Ev: ev.Transition.String(), Client: ev.ClientID, Session: ev.SessionID,
			Reason: string(ev.Reason), Seq: ev.Seq, Node: ev.Node})
	}
	tr.OnOnline(hook)
	tr.OnOffline(hook)
	srv, err := middleware.New(tr, middleware.Config{
		Identify:     middleware.IdentifyQuery("id"),
		PingInterval: ping,
		PongTimeout:  pong,
	})
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.Handle("GET /ws", srv.WebSocket(nil))
	mux.Handle("GET /online", srv.OnlineEndpoint())
	mux.Handle("GET /presence/{id}", srv.PresenceEndpoint())
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = hs.Serve(ln) }()
	emit(line{Ev: "listening", Addr: ln.Addr().String(), Node: node})

	_, _ = io.Copy(io.Discard, os.Stdin)
	sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	_ = hs.Shutdown(sctx)
	_ = srv.Shutdown(sctx)
	return tr.Close(sctx)
}

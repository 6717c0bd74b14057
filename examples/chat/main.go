// Command chat is vigil's demo. Until the middleware lands it only starts a
// Tracker on the in-memory store and serves a page that says what it is.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"syscall"

	"github.com/vigilhq/vigil/presence"
	"github.com/vigilhq/vigil/store/memory"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8080", "listen address")
	node := flag.String("node-id", "", "node ID (default: host name)")
	flag.Parse()
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	if err := run(*addr, *node, log); err != nil {
		log.Error("chat: exit", "err", err)
		os.Exit(1)
	}
}

func run(addr, node string, log *slog.Logger) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	store, err := memory.New(memory.Config{})
	if err != nil {
		return err
	}
	tr, err := presence.New(ctx, store, presence.Config{Node: node, Logger: log})
	if err != nil {
		return err
	}
	defer tr.Close(context.Background())
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		n, _ := tr.Count(r.Context())
		fmt.Fprintf(w, "vigil chat demo (placeholder: the WebSocket chat arrives with the middleware)\nnode %s, %d clients online\n", tr.Node(), n)
	})
	srv := &http.Server{Addr: addr, Handler: mux}
	go func() {
		<-ctx.Done()
		srv.Shutdown(context.Background())
	}()
	log.Info("chat: listening", "addr", addr, "node", tr.Node())
	if err := srv.ListenAndServe(); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

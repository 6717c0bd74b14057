package middleware_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"testing"
	"testing/synctest"
	"time"

	"github.com/vigilhq/vigil/middleware"
	"github.com/vigilhq/vigil/presence"
)

func TestShutdownDrains(t *testing.T) {
	tcfg := fastTracker()
	tcfg.Grace = 2 * time.Second
	cfg := fastServer()
	cfg.DrainWindow = 400 * time.Millisecond
	e := newEnv(t, tcfg, cfg)
	ts := startHTTP(t, e.mux(echo))
	const n = 5
	type closed struct {
		code int
		at   time.Time
	}
	got := make(chan closed, n)
	for i := range n {
		id := fmt.Sprintf("u%d", i)
		c := mustDial(t, wsURL(ts, "/ws?id="+id))
		e.waitEvent(t, id, 2*time.Second)
		go func() {
			code, _ := closeCode(t, c, 5*time.Second)
			got <- closed{code, time.Now()}
		}()
	}
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- e.srv.Shutdown(ctx) }()

	// New upgrades are refused while draining.
	time.Sleep(20 * time.Millisecond)
	_, resp, _ := dial(t, wsURL(ts, "/ws?id=late"), nil)
	if resp == nil || resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") != "5" {
		t.Fatalf("upgrade while draining: %+v", resp)
	}
	var first, last time.Time
	for range n {
		c := <-got
		if c.code != middleware.CloseGoingAway {
			t.Errorf("close %d, want 1001", c.code)
		}
		if first.IsZero() || c.at.Before(first) {
			first = c.at
		}
		if c.at.After(last) {
			last = c.at
		}
	}
	if err := <-done; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if spread := last.Sub(first); spread < 200*time.Millisecond {
		t.Errorf("closes spread over %v, want most of the 400ms drain window", spread)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("Shutdown took %v", took)
	}
	// Sessions linger through Grace: nobody went offline yet.
	e.noEvent(t, 10*time.Millisecond)
	if st := e.srv.Stats(); st.Open != 0 || st.Closes[1001] != n {
		t.Errorf("stats %+v", st)
	}
}

// A feed subscriber that never reads keeps its stream's handler in a write
// until the feed's write timeout. Shutdown stops waiting for it when ctx
// ends, as it does for connections, and returns ctx's error.
//
// timing: ctx's deadline (1s) is shorter than the feed's write timeout
// (DefaultWriteTimeout, 10s), which would end the stuck write by itself.
func TestSynctestShutdownStuckFeedHonoursCtx(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBubble(t, presence.Config{}, middleware.Config{}, nil)
		if _, err := b.srv.Mount(b.hs.Handler.(*http.ServeMux), "/live", middleware.MountConfig{}); err != nil {
			t.Fatal(err)
		}
		c, err := b.l.dial(context.Background(), "", "")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.WriteString(c, "GET /live/feed HTTP/1.1\r\nHost: pipe\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		synctest.Wait() // the handler is stuck writing the snapshot to c, which nobody reads
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		start := time.Now()
		err = b.srv.Shutdown(ctx)
		if took := time.Since(start); !errors.Is(err, context.DeadlineExceeded) || took > time.Second {
			t.Errorf("Shutdown returned %v after %v; want context.DeadlineExceeded after 1s", err, took)
		}
		c.Close() // the stuck write fails and the stream's handler returns
		b.hs.Close()
		if err := b.tr.Close(context.Background()); err != nil {
			t.Error(err)
		}
	})
}

package middleware

import (
	"context"
	"fmt"
	"time"

	"github.com/vigilhq/vigil/internal/waitctx"
	"github.com/vigilhq/vigil/presence"
)

// Shutdown drains the Server: from now on it refuses WebSocket upgrades
// (503 with Retry-After), closes every open connection with 1001 "shutdown",
// spreading the close frames evenly over Config.DrainWindow so that clients
// do not all reconnect at once, and waits until every connection has ended.
// Each session ends with presence.ReasonShutdown and lingers for the
// Tracker's Grace, so a client that reconnects to another node in time never
// looks offline. It closes the Feeds Mount made, ending their streams, and
// waits for their handlers to return too. Other HTTP endpoints keep working.
//
// If ctx ends first, the connections not yet closed are dropped at once and
// Shutdown returns an error matching ctx's error (errors.Is) without waiting
// further; a feed stream stuck writing to a subscriber that does not read
// ends by itself within its FeedConfig.WriteTimeout. Calling it again waits
// for the first call.
//
// http.Server.Shutdown does not close hijacked connections such as
// WebSockets, and Shutdown does not wait for plain requests: run both at
// once, wait for both, then close the Tracker, which must outlive every
// request that beats or ends a session:
//
//	errs := make(chan error, 2)
//	go func() { errs <- httpServer.Shutdown(ctx) }() // stops listeners, waits for plain requests
//	go func() { errs <- vigilServer.Shutdown(ctx) }()
//	err := errors.Join(<-errs, <-errs)
//	err = errors.Join(err, tracker.Close(ctx))
//
// Or register it, httpServer.RegisterOnShutdown(func() { vigilServer.Shutdown(ctx) }),
// and wait for Done as well as for httpServer.Shutdown before closing the
// Tracker: RegisterOnShutdown does not wait for it.
func (s *Server) Shutdown(ctx context.Context) error {
	first := false
	s.shutdownOnce.Do(func() { first = true })
	if !first {
		select {
		case <-s.shutdownDone:
			return s.shutdownErr
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	s.mu.Lock()
	s.draining = true
	conns := make([]*Conn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	feeds := s.feeds
	s.mu.Unlock()
	// End the feeds' streams, which http.Server.Shutdown waits for; their
	// handlers return during the drain, and are waited for after it.
	for _, f := range feeds {
		f.end()
	}

	bye := &CloseError{Code: CloseGoingAway, Text: "shutdown", Reason: presence.ReasonShutdown}
	start := time.Now()
	n := time.Duration(len(conns))
	var err error
	for i, c := range conns {
		if err == nil && s.cfg.DrainWindow > 0 {
			at := start.Add(s.cfg.DrainWindow * time.Duration(i) / n)
			if d := time.Until(at); d > time.Millisecond {
				t := time.NewTimer(d)
				select {
				case <-t.C:
				case <-ctx.Done():
					t.Stop()
					err = ctx.Err()
				}
			}
		}
		if err != nil {
			c.closeAsyncDrop(bye)
			continue
		}
		c.closeAsync(bye)
	}

	if err = waitctx.Wait(ctx, &s.wg); err == nil {
		s.sched.shutdown()
	} else {
		s.mu.Lock()
		for c := range s.conns {
			_ = c.ws.NetConn().Close()
		}
		s.mu.Unlock()
		go func() { // the handlers return on their own
			s.wg.Wait()
			s.sched.shutdown()
		}()
	}
	for _, f := range feeds {
		if err != nil {
			break
		}
		if ferr := f.wait(ctx); ferr != nil {
			err = fmt.Errorf("middleware: shutdown: feed streams still open: %w", ferr)
		}
	}
	s.shutdownErr = err
	close(s.shutdownDone)
	return err
}

// Done returns a channel closed when Shutdown has finished.
func (s *Server) Done() <-chan struct{} { return s.shutdownDone }

// Draining reports whether Shutdown has started.
func (s *Server) Draining() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.draining
}

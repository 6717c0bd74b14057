// Package waitctx waits for a sync.WaitGroup, or for a context to end,
// whichever comes first: the one wait of every Shutdown and Close that
// takes a ctx.
package waitctx

import (
	"context"
	"sync"
)

// Wait returns nil once wg's counter is zero, or ctx.Err() if ctx ends
// first. The goroutine that waits on wg outlives an early return until wg
// is done.
func Wait(ctx context.Context, wg *sync.WaitGroup) error {
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

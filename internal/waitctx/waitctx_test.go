package waitctx

import (
	"context"
	"errors"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

func TestWait(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var wg sync.WaitGroup
		wg.Add(1)
		go func() { time.Sleep(time.Second); wg.Done() }()
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		defer cancel()
		if err := Wait(ctx, &wg); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Wait before the group is done = %v, want the deadline", err)
		}
		if err := Wait(context.Background(), &wg); err != nil {
			t.Fatalf("Wait = %v, want nil once the group is done", err)
		}
	})
}

package presence

import (
	"context"
	"errors"
	"log/slog"
	"testing"
	"time"
)

// Two clients' events that arrive together while one worker is idle run on
// two workers: a hook that blocks delays only its own client, not the
// other client, which an idle worker woken for the first would take only
// after it (or after HookTimeout abandoned it).
//
// timing: HookTimeout a minute, far longer than the test waits (5 s), so
// only a second worker can run b's hook in time.
func TestIdleWorkerWokenOncePerClient(t *testing.T) {
	h := newHooks(slog.New(slog.DiscardHandler), time.Minute)
	release := make(chan struct{})
	ran := make(chan string, 3)
	h.register(Online, "", func(_ context.Context, ev Event) {
		ran <- ev.ClientID
		if ev.ClientID == "a" {
			<-release
		}
	})
	defer func() {
		close(release)
		if err := h.wait(context.Background()); err != nil {
			t.Error(err)
		}
	}()
	h.dispatch(Event{ClientID: "warm", Transition: Online})
	<-ran
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
		h.mu.Lock()
		idle := h.idle
		h.mu.Unlock()
		if idle == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no worker went idle")
		}
	}
	h.dispatch(Event{ClientID: "a", Transition: Online})
	h.dispatch(Event{ClientID: "b", Transition: Online})
	timeout := time.After(5 * time.Second)
	for seen := map[string]bool{}; !seen["b"]; {
		select {
		case id := <-ran:
			seen[id] = true
		case <-timeout:
			t.Fatal("b's hook did not run while a's blocked: both woke the one idle worker")
		}
	}
}

// A context a hook derives from its own registers with it, as with the
// context package's contexts, rather than start a goroutine to watch its
// Done; it is cancelled with it, and forgets it when cancelled first.
func TestHookCtxDerived(t *testing.T) {
	c := &hookCtx{}
	first, cancelFirst := context.WithCancel(c)
	if len(c.afters) != 1 {
		t.Fatalf("%d registrations after context.WithCancel; want 1", len(c.afters))
	}
	cancelFirst()
	if len(c.afters) != 0 || !errors.Is(first.Err(), context.Canceled) {
		t.Fatalf("after the child's cancel: %d registrations, child %v; want 0, context.Canceled", len(c.afters), first.Err())
	}
	child, cancel := context.WithTimeout(c, time.Minute)
	defer cancel()
	c.cancel(context.DeadlineExceeded)
	select {
	case <-child.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("a derived context is not done after the hook's")
	}
	if !errors.Is(child.Err(), context.DeadlineExceeded) {
		t.Fatalf("derived context: %v; want the hook's context.DeadlineExceeded", child.Err())
	}
	late, cancelLate := context.WithCancel(c) // derived after it was done
	defer cancelLate()
	<-late.Done()
}

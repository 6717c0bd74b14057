package presence

import (
	"context"
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

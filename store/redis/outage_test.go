package redis

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/vigilhq/vigil/presence"
)

// logRecorder is a slog.Handler that keeps every record.
type logRecorder struct {
	mu   sync.Mutex
	recs []slog.Record
}

func (h *logRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (h *logRecorder) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *logRecorder) WithGroup(string) slog.Handler            { return h }
func (h *logRecorder) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	h.recs = append(h.recs, r.Clone())
	h.mu.Unlock()
	return nil
}

// lines returns each record as "LEVEL message key=value ...".
func (h *logRecorder) lines() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []string
	for _, r := range h.recs {
		s := r.Level.String() + " " + r.Message
		r.Attrs(func(a slog.Attr) bool {
			s += " " + a.String()
			return true
		})
		out = append(out, s)
	}
	return out
}

func TestAnswered(t *testing.T) {
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}
	tests := []struct {
		name           string
		err            error
		reached, known bool
	}{
		{"success", nil, true, true},
		{"refused", fmt.Errorf("redis: count: %w", refused), false, true},
		{"timeout", context.DeadlineExceeded, false, true},
		{"pool timeout", goredis.ErrPoolTimeout, false, true},
		{"nil reply", goredis.Nil, true, true},
		{"not found", fmt.Errorf("redis: end: %w", presence.ErrNotFound), true, true},
		{"odd reply", errReply, true, true},
		{"cancelled by the caller", context.Canceled, false, false},
		{"client closed by the caller", goredis.ErrClosed, false, false},
		{"refused before I/O", presence.ErrInvalidID, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reached, known := answered(tt.err)
			if reached != tt.reached || known != tt.known {
				t.Errorf("answered(%v) = %v, %v; want %v, %v", tt.err, reached, known, tt.reached, tt.known)
			}
		})
	}
}

// One line when Redis stops answering and one when it answers again, never
// one per failed call; a Redis that flaps logs at most one outage per gap.
func TestOutageLogsOneLinePerOutage(t *testing.T) {
	rec := &logRecorder{}
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	o := &outage{log: slog.New(rec), addr: "127.0.0.1:6379", gap: time.Minute, now: func() time.Time { return now }}
	ctx := context.Background()
	refused := errors.New("dial tcp 127.0.0.1:6379: connect: connection refused")
	calls := func(n int, err error) {
		for range n {
			o.observe(ctx, err)
			now = now.Add(100 * time.Millisecond)
		}
	}
	calls(3, nil)
	calls(50, refused)
	calls(2, context.Canceled) // tells nothing: the outage goes on
	calls(1, nil)
	want := []string{
		"WARN redis: unreachable, retrying addr=127.0.0.1:6379 err=" + refused.Error(),
		"WARN redis: reachable again addr=127.0.0.1:6379 down=5.2s failed_calls=50",
	}
	if got := rec.lines(); !slices.Equal(got, want) {
		t.Fatalf("log lines:\n%q\nwant\n%q", got, want)
	}
	// Two more outages within the gap: neither is logged, nor its end.
	calls(1, refused)
	calls(1, nil)
	calls(1, refused)
	calls(1, nil)
	if got := rec.lines(); len(got) != 2 {
		t.Fatalf("flapping within the gap logged %q", got[2:])
	}
	// The next outage after the gap is logged, and counts those left out.
	now = now.Add(time.Minute)
	calls(1, refused)
	calls(1, nil)
	want = append(want,
		"WARN redis: unreachable, retrying addr=127.0.0.1:6379 err="+refused.Error()+" outages_not_logged=2",
		"WARN redis: reachable again addr=127.0.0.1:6379 down=100ms failed_calls=1",
	)
	if got := rec.lines(); !slices.Equal(got, want) {
		t.Fatalf("log lines:\n%q\nwant\n%q", got, want)
	}
}

// On a Cluster, every call that got no answer asks go-redis to reload the
// slot map (go-redis reloads it by itself only on MOVED or ASK and every
// ClusterStateReloadInterval, 60s by default, so after a failover it kept
// sending a shard's calls to its dead master): faults
// TestRedisClusterFailover is the failover itself. Answers, Redis errors
// and calls that tell nothing ask nothing; other clients have no reload.
func TestOutageReloadsClusterSlots(t *testing.T) {
	ctx := context.Background()
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}
	cc := goredis.NewClusterClient(&goredis.ClusterOptions{Addrs: []string{"127.0.0.1:1"}})
	defer cc.Close()
	if newOutage(nil, cc).reload == nil {
		t.Fatal("no reload for a ClusterClient")
	}
	c := goredis.NewClient(&goredis.Options{Addr: "127.0.0.1:1"})
	defer c.Close()
	if newOutage(nil, c).reload != nil {
		t.Fatal("a reload for a single-server client")
	}
	reloads := 0
	o := &outage{log: slog.New(slog.DiscardHandler), gap: time.Minute, now: time.Now, reload: func() { reloads++ }}
	for _, err := range []error{nil, goredis.Nil, errReply, context.Canceled, presence.ErrInvalidID} {
		o.observe(ctx, err)
	}
	if reloads != 0 {
		t.Fatalf("%d reloads after calls that were answered or tell nothing", reloads)
	}
	for range 3 {
		o.observe(ctx, fmt.Errorf("redis: touch: %w", refused))
	}
	o.observe(ctx, context.DeadlineExceeded)
	if reloads != 4 {
		t.Fatalf("%d reloads after 4 calls without an answer, want 4", reloads)
	}
}

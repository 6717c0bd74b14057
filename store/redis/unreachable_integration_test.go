//go:build integration

package redis_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/vigilhq/vigil/internal/redistest"
	"github.com/vigilhq/vigil/presence"
	redisstore "github.com/vigilhq/vigil/store/redis"
)

// logBuffer is a slog text log that tests can read while it is written.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// lines returns the lines that contain s.
func (b *logBuffer) lines(s string) []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []string
	for l := range strings.Lines(b.buf.String()) {
		if strings.Contains(l, s) {
			out = append(out, strings.TrimSpace(l))
		}
	}
	return out
}

// fastFail returns a client of addr that makes one dial per call.
func fastFail(t *testing.T, addr string) *goredis.Client {
	c := goredis.NewClient(&goredis.Options{Addr: addr, MaxRetries: -1, DialerRetries: 1, DialTimeout: 200 * time.Millisecond})
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// A Redis that stops answering makes the Store log one line, with its
// address, however many calls fail; one more when it answers again. The
// errors name what the call was doing: the client and session, or the node.
func TestUnreachableLogsOncePerOutage(t *testing.T) {
	srv := redistest.StartServer(t)
	logs := &logBuffer{}
	st := redistest.Store(t, fastFail(t, srv.Addr()), redisstore.Config{Logger: slog.New(slog.NewTextHandler(logs, nil))})
	ctx := context.Background()
	if _, err := st.Count(ctx); err != nil {
		t.Fatal(err)
	}
	srv.Kill() // nothing listens on its port now

	for range 20 {
		if _, err := st.Count(ctx); err == nil {
			t.Fatal("Count succeeded with Redis stopped")
		}
	}
	_, err := st.Add(ctx, presence.Lease{ClientID: "alice", SessionID: "s1", Node: "web-1", TTL: time.Second})
	checkErr(t, err, `redis: add client "alice" session "s1": `)
	_, err = st.Touch(ctx, []presence.Lease{{ClientID: "alice", SessionID: "s1", Node: "web-1", TTL: time.Second}})
	checkErr(t, err, `redis: touch client "alice" session "s1": `)
	_, err = st.End(ctx, presence.Ending{ClientID: "alice", SessionID: "s1", Reason: presence.ReasonClosed})
	checkErr(t, err, `redis: end client "alice" session "s1": `)
	_, err = st.End(ctx, presence.Ending{Node: "web-1", Reason: presence.ReasonShutdown})
	checkErr(t, err, `redis: end sessions of node "web-1": `)

	down := logs.lines("redis: unreachable")
	if len(down) != 1 || !strings.Contains(down[0], "addr="+srv.Addr()) || !strings.Contains(down[0], "connection refused") {
		t.Errorf("log lines about the outage: %q; want one, with addr=%s and the error", down, srv.Addr())
	}
	if n := len(logs.lines("")); n != 1 {
		t.Errorf("%d log lines during the outage, want 1:\n%s", n, strings.Join(logs.lines(""), "\n"))
	}

	srv.Start()
	// go-redis keeps failing calls until its own background dial gets
	// through (about a second).
	waitUntil(t, 5*time.Second, "Count after Redis came back", func() bool {
		_, err := st.Count(ctx)
		return err == nil
	})
	up := logs.lines("redis: reachable again")
	if len(up) != 1 || !strings.Contains(up[0], "addr="+srv.Addr()) || !strings.Contains(up[0], "failed_calls=") {
		t.Errorf("log lines about the return: %q; want one, with addr=%s and failed_calls", up, srv.Addr())
	}
	t.Logf("log:\n%s", strings.Join(logs.lines(""), "\n"))
	if n := len(logs.lines("")); n != 2 {
		t.Errorf("%d log lines in all, want 2:\n%s", n, strings.Join(logs.lines(""), "\n"))
	}
}

// The way the package doc gives to fail fast at start: a ping with a
// deadline, which fails at once, not at the deadline, when nothing listens.
func TestPingFailsFastWhenUnreachable(t *testing.T) {
	srv := redistest.StartServer(t)
	srv.Kill()
	rdb := goredis.NewClient(&goredis.Options{Addr: srv.Addr()}) // go-redis's defaults
	t.Cleanup(func() { _ = rdb.Close() })
	pctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := rdb.Ping(pctx).Err()
	if !errors.Is(err, syscall.ECONNREFUSED) || pctx.Err() != nil {
		t.Fatalf("Ping: %v (ctx: %v); want connection refused before the deadline", err, pctx.Err())
	}
}

// checkErr fails unless err is the refused connection to a stopped Redis,
// with a text that starts with prefix.
func checkErr(t *testing.T, err error, prefix string) {
	t.Helper()
	if !errors.Is(err, syscall.ECONNREFUSED) || !strings.HasPrefix(err.Error(), prefix) {
		t.Errorf("error %q: want it to start with %q and match ECONNREFUSED", err, prefix)
	}
}

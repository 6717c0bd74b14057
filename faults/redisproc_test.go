//go:build faults

package faults

import (
	"context"
	"os/exec"
	"strconv"
	"syscall"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

func init() { goredis.SetLogger(quietLog{}) }

// go-redis logs failed dials; the Redis faults make many on purpose.
type quietLog struct{}

func (quietLog) Printf(context.Context, string, ...any) {}

// redisProc is a redis-server the test owns, so it can kill, pause and
// restart it: loopback only, nothing on disk.
type redisProc struct {
	t     testing.TB
	bin   string
	port  int
	dir   string
	extra []string
	cmd   *exec.Cmd
	done  chan struct{}
}

func startRedis(t testing.TB, extra ...string) *redisProc {
	t.Helper()
	r := &redisProc{t: t, bin: requireBin(t, "redis-server"), port: freePort(t), dir: t.TempDir(), extra: extra}
	r.start()
	t.Cleanup(r.kill)
	return r
}

func (r *redisProc) addr() string { return "127.0.0.1:" + strconv.Itoa(r.port) }

// start starts the server (again, after kill, on the same port) and waits
// until it answers PING.
func (r *redisProc) start() {
	r.t.Helper()
	args := append([]string{"--port", strconv.Itoa(r.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
		"--dir", r.dir, "--logfile", ""}, r.extra...)
	r.cmd = exec.Command(r.bin, args...)
	if err := r.cmd.Start(); err != nil {
		r.t.Fatalf("start redis-server: %v", err)
	}
	r.done = make(chan struct{})
	go func(cmd *exec.Cmd, done chan struct{}) { _ = cmd.Wait(); close(done) }(r.cmd, r.done)
	waitRedis(r.t, r.addr())
}

// waitRedis polls addr with PING until it answers, for at most 10 s.
func waitRedis(t testing.TB, addr string) {
	t.Helper()
	c := goredis.NewClient(&goredis.Options{Addr: addr, MaxRetries: -1, DialTimeout: 200 * time.Millisecond})
	defer c.Close()
	eventually(t, 10*time.Second, "redis at "+addr+" answers PING", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		return c.Ping(ctx).Err() == nil
	})
}

// kill sends SIGKILL and waits for the process; a no-op when it is not
// running.
func (r *redisProc) kill() {
	if r.cmd == nil {
		return
	}
	_ = r.cmd.Process.Signal(syscall.SIGCONT)
	_ = r.cmd.Process.Signal(syscall.SIGKILL)
	<-r.done
	r.cmd = nil
}

func (r *redisProc) signal(sig syscall.Signal) {
	r.t.Helper()
	if err := r.cmd.Process.Signal(sig); err != nil {
		r.t.Fatalf("signal redis-server: %v", err)
	}
}

// redisClient is a client of addr tuned for outages: short timeouts, no
// retries, closed when the test ends.
func redisClient(t testing.TB, addr string) *goredis.Client {
	c := goredis.NewClient(&goredis.Options{Addr: addr, DialTimeout: 500 * time.Millisecond,
		ReadTimeout: 500 * time.Millisecond, WriteTimeout: 500 * time.Millisecond, MaxRetries: -1})
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// Package redistest connects tests to the Redis servers that
// scripts/lib/redis.sh starts, and gives each test a namespace of its own.
// With the integration build tag, a test that calls it fails, never skips,
// when the servers are not there.
package redistest

import (
	"context"
	"crypto/rand"
	"errors"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	redisstore "github.com/vigilhq/vigil/store/redis"
)

const hint = ": run ./scripts/test, or source scripts/lib/redis.sh and run redis_setup"

// Standalone returns a client of the server at REDIS_ADDR, closed when the
// test ends.
func Standalone(t testing.TB) *goredis.Client {
	t.Helper()
	addr := os.Getenv("REDIS_ADDR")
	if addr == "" {
		t.Fatal("REDIS_ADDR is not set" + hint)
	}
	rdb := goredis.NewClient(&goredis.Options{Addr: addr})
	t.Cleanup(func() { _ = rdb.Close() })
	if err := rdb.Ping(context.Background()).Err(); err != nil {
		t.Fatalf("redis at %s: %v", addr, err)
	}
	return rdb
}

// Cluster returns a client of the Cluster at REDIS_CLUSTER_ADDRS, closed
// when the test ends.
func Cluster(t testing.TB) *goredis.ClusterClient {
	t.Helper()
	addrs := os.Getenv("REDIS_CLUSTER_ADDRS")
	if addrs == "" {
		t.Fatal("REDIS_CLUSTER_ADDRS is not set" + hint)
	}
	rdb := goredis.NewClusterClient(&goredis.ClusterOptions{Addrs: strings.Split(addrs, ",")})
	t.Cleanup(func() { _ = rdb.Close() })
	if err := rdb.ForEachMaster(context.Background(), func(ctx context.Context, c *goredis.Client) error {
		return c.Ping(ctx).Err()
	}); err != nil {
		t.Fatalf("redis cluster at %s: %v", addrs, err)
	}
	return rdb
}

// Servers are the two kinds of Redis the integration tests run against.
var Servers = []struct {
	Name   string
	Client func(testing.TB) goredis.UniversalClient
}{
	{"standalone", func(t testing.TB) goredis.UniversalClient { return Standalone(t) }},
	{"cluster", func(t testing.TB) goredis.UniversalClient { return Cluster(t) }},
}

// Store returns a Store over rdb, in a namespace of its own (see Prefix)
// unless cfg names one.
func Store(t testing.TB, rdb goredis.UniversalClient, cfg redisstore.Config) *redisstore.Store {
	t.Helper()
	if cfg.Prefix == "" {
		cfg.Prefix = Prefix(t, rdb)
	}
	s, err := redisstore.New(rdb, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// ForEachServer calls fn on every server behind rdb: the one server, or
// each master of a Cluster.
func ForEachServer(ctx context.Context, rdb goredis.UniversalClient, fn func(context.Context, *goredis.Client) error) error {
	switch c := rdb.(type) {
	case *goredis.ClusterClient:
		return c.ForEachMaster(ctx, fn)
	case *goredis.Client:
		return fn(ctx, c)
	}
	return nil
}

// Keys lists the keys of store namespace prefix on one server.
func Keys(ctx context.Context, c *goredis.Client, prefix string) ([]string, error) {
	var out []string
	iter := c.Scan(ctx, 0, "{"+prefix+":b*", 1000).Iterator()
	for iter.Next(ctx) {
		out = append(out, iter.Val())
	}
	return out, iter.Err()
}

// Prefix returns a store namespace unique to this test, whose keys are
// deleted when the test ends.
func Prefix(t testing.TB, rdb goredis.UniversalClient) string {
	t.Helper()
	p := "vt-" + rand.Text()[:10]
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		err := ForEachServer(ctx, rdb, func(ctx context.Context, c *goredis.Client) error {
			keys, err := Keys(ctx, c, p)
			for _, k := range keys {
				c.Del(ctx, k)
			}
			return err
		})
		if err != nil {
			t.Logf("deleting keys of %s: %v", p, err)
		}
	})
	return p
}

// Server is a redis-server process of the test's own, on a free loopback
// port, which the test can kill (as a crash would, losing everything),
// pause with a signal, and start again, empty, on the same port.
type Server struct {
	t    testing.TB
	port int
	args []string
	cmd  *exec.Cmd
}

// StartServer starts a Server with extra redis-server arguments (such as
// "--replicaof", host, port), killed when the test ends.
func StartServer(t testing.TB, args ...string) *Server {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	s := &Server{t: t, port: port, args: args}
	s.Start()
	t.Cleanup(s.Kill)
	return s
}

// Addr is the server's host:port.
func (s *Server) Addr() string { return "127.0.0.1:" + strconv.Itoa(s.port) }

// Port is the server's port.
func (s *Server) Port() int { return s.port }

// Start starts the server, empty, and waits until it answers.
func (s *Server) Start() {
	s.t.Helper()
	s.cmd = exec.Command("redis-server", append([]string{"--port", strconv.Itoa(s.port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--dir", s.t.TempDir()}, s.args...)...)
	if err := s.cmd.Start(); err != nil {
		s.t.Fatalf("start redis-server (install it, or run ./scripts/test): %v", err)
	}
	c := goredis.NewClient(&goredis.Options{Addr: s.Addr(), MaxRetries: -1})
	defer c.Close()
	deadline := time.Now().Add(5 * time.Second)
	for c.Ping(context.Background()).Err() != nil {
		if time.Now().After(deadline) {
			s.t.Fatal("redis-server did not start")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Signal sends sig to the running server: SIGSTOP and SIGCONT pause and
// resume it.
func (s *Server) Signal(sig os.Signal) {
	s.t.Helper()
	if err := s.cmd.Process.Signal(sig); err != nil {
		s.t.Fatalf("signal redis-server: %v", err)
	}
}

// Kill stops the server at once, paused or not; it keeps no data. Killing a stopped server
// does nothing.
func (s *Server) Kill() {
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Kill()
	_ = s.cmd.Wait()
	s.cmd = nil
}

// Info returns the fields of the INFO sections the server c talks to
// reports (used_memory, used_cpu_user, …), by name.
func Info(ctx context.Context, c *goredis.Client, sections ...string) (map[string]string, error) {
	info, err := c.Info(ctx, sections...).Result()
	if err != nil {
		return nil, err
	}
	fields := make(map[string]string)
	for line := range strings.Lines(info) {
		if k, v, ok := strings.Cut(strings.TrimSpace(line), ":"); ok && !strings.HasPrefix(k, "#") {
			fields[k] = v
		}
	}
	return fields, nil
}

// UsedMemory returns used_memory from INFO memory.
func UsedMemory(ctx context.Context, c *goredis.Client) (int64, error) {
	f, err := Info(ctx, c, "memory")
	if err != nil {
		return 0, err
	}
	v, ok := f["used_memory"]
	if !ok {
		return 0, errors.New("redistest: no used_memory in INFO memory")
	}
	return strconv.ParseInt(v, 10, 64)
}

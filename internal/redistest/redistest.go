// Package redistest connects tests to the Redis servers that
// scripts/lib/redis.sh starts, and gives each test a namespace of its own.
// With the integration build tag, a test that calls it fails, never skips,
// when the servers are not there.
package redistest

import (
	"context"
	"crypto/rand"
	"os"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
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

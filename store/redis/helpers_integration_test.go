//go:build integration

package redis_test

import (
	"context"
	"crypto/rand"
	"os"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/vigilhq/vigil/presence"
	redisstore "github.com/vigilhq/vigil/store/redis"
)

// standalone returns a client of the server at REDIS_ADDR. With the
// integration tag, a missing server fails the test: it never skips.
func standalone(t testing.TB) *goredis.Client {
	t.Helper()
	addr := os.Getenv("REDIS_ADDR")
	if addr == "" {
		t.Fatal("REDIS_ADDR is not set: run ./scripts/test, or start redis-server and export REDIS_ADDR")
	}
	rdb := goredis.NewClient(&goredis.Options{Addr: addr})
	t.Cleanup(func() { _ = rdb.Close() })
	if err := rdb.Ping(context.Background()).Err(); err != nil {
		t.Fatalf("redis at %s: %v", addr, err)
	}
	return rdb
}

// cluster returns a client of the Cluster at REDIS_CLUSTER_ADDRS.
func cluster(t testing.TB) *goredis.ClusterClient {
	t.Helper()
	addrs := os.Getenv("REDIS_CLUSTER_ADDRS")
	if addrs == "" {
		t.Fatal("REDIS_CLUSTER_ADDRS is not set: run ./scripts/test")
	}
	rdb := goredis.NewClusterClient(&goredis.ClusterOptions{Addrs: strings.Split(addrs, ",")})
	t.Cleanup(func() { _ = rdb.Close() })
	ctx := context.Background()
	if err := rdb.ForEachMaster(ctx, func(ctx context.Context, c *goredis.Client) error {
		return c.Ping(ctx).Err()
	}); err != nil {
		t.Fatalf("redis cluster at %s: %v", addrs, err)
	}
	return rdb
}

// prefix returns a namespace unique to this test, whose keys are deleted
// when the test ends.
func prefix(t testing.TB, rdb goredis.UniversalClient) string {
	t.Helper()
	p := "vt-" + rand.Text()[:10]
	t.Cleanup(func() { deleteKeys(t, rdb, p) })
	return p
}

// keysOf lists the keys of namespace p on one server.
func keysOf(ctx context.Context, c *goredis.Client, p string) ([]string, error) {
	var out []string
	iter := c.Scan(ctx, 0, "{"+p+":b*", 1000).Iterator()
	for iter.Next(ctx) {
		out = append(out, iter.Val())
	}
	return out, iter.Err()
}

func deleteKeys(t testing.TB, rdb goredis.UniversalClient, p string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	del := func(ctx context.Context, c *goredis.Client) error {
		keys, err := keysOf(ctx, c, p)
		for _, k := range keys {
			c.Del(ctx, k)
		}
		return err
	}
	var err error
	switch c := rdb.(type) {
	case *goredis.ClusterClient:
		err = c.ForEachMaster(ctx, del)
	case *goredis.Client:
		err = del(ctx, c)
	}
	if err != nil {
		t.Logf("deleting keys of %s: %v", p, err)
	}
}

func newStore(t testing.TB, rdb goredis.UniversalClient, cfg redisstore.Config) *redisstore.Store {
	t.Helper()
	if cfg.Prefix == "" {
		cfg.Prefix = prefix(t, rdb)
	}
	s, err := redisstore.New(rdb, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

var _ presence.Store = (*redisstore.Store)(nil)

// go-redis logs failed dials through its own logger; outage tests make
// many on purpose.
func init() { goredis.SetLogger(quiet{}) }

type quiet struct{}

func (quiet) Printf(context.Context, string, ...any) {}

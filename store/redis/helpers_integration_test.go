//go:build integration

package redis_test

import (
	"context"
	"testing"

	goredis "github.com/redis/go-redis/v9"

	"github.com/vigilhq/vigil/internal/redistest"
	"github.com/vigilhq/vigil/presence"
	redisstore "github.com/vigilhq/vigil/store/redis"
)

func standalone(t testing.TB) *goredis.Client     { return redistest.Standalone(t) }
func cluster(t testing.TB) *goredis.ClusterClient { return redistest.Cluster(t) }
func prefix(t testing.TB, rdb goredis.UniversalClient) string {
	return redistest.Prefix(t, rdb)
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

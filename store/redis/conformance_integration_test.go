//go:build integration

package redis_test

import (
	"testing"

	goredis "github.com/redis/go-redis/v9"

	"github.com/vigilhq/vigil/internal/redistest"
	"github.com/vigilhq/vigil/presence"
	redisstore "github.com/vigilhq/vigil/store/redis"
	"github.com/vigilhq/vigil/store/storetest"
)

func TestConformance(t *testing.T) {
	t.Parallel() // beside TestConformanceCluster: another server, and mostly waiting
	rdb := redistest.Standalone(t)
	storetest.Run(t, conformance(rdb))
}

func TestConformanceCluster(t *testing.T) {
	t.Parallel()
	rdb := redistest.Cluster(t)
	storetest.Run(t, conformance(rdb))
}

func conformance(rdb goredis.UniversalClient) storetest.Config {
	return storetest.Config{
		New: func(t *testing.T) presence.Store { return redistest.Store(t, rdb, redisstore.Config{}) },
		// One bucket, so that its share of the caps is all of them (see
		// TestCapsPerBucket for several).
		NewCapped: func(t *testing.T, maxClients, maxSessions int) presence.Store {
			return redistest.Store(t, rdb, redisstore.Config{Buckets: 1, MaxClients: maxClients, MaxSessions: maxSessions})
		},
	}
}

//go:build integration

package redis_test

import (
	"testing"

	"github.com/vigilhq/vigil/internal/redistest"
	"github.com/vigilhq/vigil/presence"
	redisstore "github.com/vigilhq/vigil/store/redis"
	"github.com/vigilhq/vigil/store/storetest"
)

func TestConformance(t *testing.T) {
	rdb := redistest.Standalone(t)
	storetest.Run(t, storetest.Config{
		New: func(t *testing.T) presence.Store { return redistest.Store(t, rdb, redisstore.Config{}) },
	})
}

func TestConformanceCluster(t *testing.T) {
	rdb := redistest.Cluster(t)
	storetest.Run(t, storetest.Config{
		New: func(t *testing.T) presence.Store { return redistest.Store(t, rdb, redisstore.Config{}) },
	})
}

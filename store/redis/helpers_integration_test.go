//go:build integration

package redis_test

import (
	"context"

	goredis "github.com/redis/go-redis/v9"

	"github.com/vigilhq/vigil/presence"
	redisstore "github.com/vigilhq/vigil/store/redis"
)

var _ presence.Store = (*redisstore.Store)(nil)

// go-redis logs failed dials through its own logger; outage tests make
// many on purpose.
func init() { goredis.SetLogger(quiet{}) }

type quiet struct{}

func (quiet) Printf(context.Context, string, ...any) {}

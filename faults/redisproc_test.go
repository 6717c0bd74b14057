//go:build faults && linux

package faults

import (
	"context"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

func init() { goredis.SetLogger(quietLog{}) }

// go-redis logs failed dials; the Redis faults make many on purpose.
type quietLog struct{}

func (quietLog) Printf(context.Context, string, ...any) {}

// redisClient is a client of addr tuned for outages: short timeouts, no
// retries, closed when the test ends.
func redisClient(t testing.TB, addr string) *goredis.Client {
	c := goredis.NewClient(&goredis.Options{Addr: addr, DialTimeout: 500 * time.Millisecond,
		ReadTimeout: 500 * time.Millisecond, WriteTimeout: 500 * time.Millisecond, MaxRetries: -1})
	t.Cleanup(func() { _ = c.Close() })
	return c
}

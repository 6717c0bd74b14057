package redis

import (
	"errors"
	"testing"

	goredis "github.com/redis/go-redis/v9"

	"github.com/vigilhq/vigil/presence"
)

// TestCapsConfig: zero caps take the defaults, negative ones are off (a
// share of 0 for the scripts), and a positive cap below Buckets, which
// would leave a bucket no share at all, is refused by New.
func TestCapsConfig(t *testing.T) {
	rdb := goredis.NewClient(&goredis.Options{Addr: "127.0.0.1:1"}) // New does no I/O
	t.Cleanup(func() { _ = rdb.Close() })
	tests := []struct {
		name                      string
		cfg                       Config
		clients, sessions         int // the bucket shares the scripts get
		wantClients, wantSessions int // Config() after defaults
		err                       bool
	}{
		{name: "defaults", clients: 31_250, sessions: 62_500, wantClients: DefaultMaxClients, wantSessions: DefaultMaxSessions},
		{name: "off", cfg: Config{MaxClients: -1, MaxSessions: -1}, wantClients: -1, wantSessions: -1},
		{name: "rounded down", cfg: Config{Buckets: 4, MaxClients: 11, MaxSessions: 4}, clients: 2, sessions: 1, wantClients: 11, wantSessions: 4},
		{name: "clients below buckets", cfg: Config{Buckets: 4, MaxClients: 3}, err: true},
		{name: "sessions below buckets", cfg: Config{MaxSessions: 31}, err: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := New(rdb, tc.cfg)
			if tc.err {
				if !errors.Is(err, presence.ErrInvalidArgument) {
					t.Fatalf("New(%+v) = %v, want ErrInvalidArgument", tc.cfg, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got := s.Config()
			if got.MaxClients != tc.wantClients || got.MaxSessions != tc.wantSessions {
				t.Errorf("Config() caps = %d, %d; want %d, %d", got.MaxClients, got.MaxSessions, tc.wantClients, tc.wantSessions)
			}
			if c, n := s.share(got.MaxClients), s.share(got.MaxSessions); c != tc.clients || n != tc.sessions {
				t.Errorf("shares = %d, %d; want %d, %d", c, n, tc.clients, tc.sessions)
			}
		})
	}
}

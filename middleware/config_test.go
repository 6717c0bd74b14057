package middleware_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/vigilhq/vigil/middleware"
	"github.com/vigilhq/vigil/presence"
	"github.com/vigilhq/vigil/store/memory"
)

// New fills every zero field with its documented default, turns negative
// "off" values into zero, and refuses invalid configurations.
//
// timing: the relations New enforces, each on its own.
func TestNewConfig(t *testing.T) {
	st, err := memory.New(memory.Config{})
	if err != nil {
		t.Fatal(err)
	}
	tr, err := presence.New(context.Background(), st, presence.Config{Node: "n1"}) // TTL 35s
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Close(context.Background()) })
	id := middleware.IdentifyQuery("id")

	srv, err := middleware.New(tr, middleware.Config{Identify: id, IdleTimeout: -1, DrainWindow: -1, MaxConnsPerClient: -1})
	if err != nil {
		t.Fatal(err)
	}
	got := srv.Config()
	want := middleware.Config{
		PingInterval: middleware.DefaultPingInterval, PongTimeout: middleware.DefaultPongTimeout,
		WriteTimeout: middleware.DefaultWriteTimeout, ReadLimit: middleware.DefaultReadLimit,
		ReadBufferSize: middleware.DefaultReadBufferSize, SendQueueSize: middleware.DefaultSendQueueSize,
		RetryAfter: middleware.DefaultRetryAfter, MaxBodyBytes: middleware.DefaultMaxBodyBytes,
		AppPing: middleware.DefaultAppPing, AppPong: middleware.DefaultAppPong,
	}
	if got.CountRequest == nil {
		t.Error("nil CountRequest not replaced by DefaultCountRequest")
	}
	got.Identify, got.Logger, got.CountRequest = nil, nil, nil
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("defaults (-want +got):\n%s", diff)
	}
	if srv.Config().Logger == nil {
		t.Error("nil Logger not replaced by a silent one")
	}

	// The write timeout's default keeps it within PongTimeout.
	srv, err = middleware.New(tr, middleware.Config{Identify: id, PongTimeout: 4 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if got := srv.Config().WriteTimeout; got != 4*time.Second {
		t.Errorf("WriteTimeout with PongTimeout 4s: %v, want 4s", got)
	}

	for _, tc := range []struct {
		name string
		cfg  middleware.Config
	}{
		{"no Identify", middleware.Config{}},
		{"negative PingInterval", middleware.Config{Identify: id, PingInterval: -time.Second}},
		{"negative ReadLimit", middleware.Config{Identify: id, ReadLimit: -1}},
		{"IdleTimeout not above PingInterval", middleware.Config{Identify: id, IdleTimeout: middleware.DefaultPingInterval}},
		{"TTL under PingInterval+PongTimeout", middleware.Config{Identify: id, PingInterval: 30 * time.Second}},
		{"WriteTimeout over PongTimeout", middleware.Config{Identify: id, PongTimeout: 5 * time.Second, WriteTimeout: 6 * time.Second}},
		{"bad AllowedOrigins", middleware.Config{Identify: id, AllowedOrigins: []string{"app.example"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := middleware.New(tr, tc.cfg); !errors.Is(err, middleware.ErrInvalidConfig) {
				t.Errorf("New: %v, want ErrInvalidConfig", err)
			}
		})
	}
}

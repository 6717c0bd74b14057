package memory_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/vigilhq/vigil/presence"
	"github.com/vigilhq/vigil/store/memory"
)

// BenchmarkSweep100k sweeps a store of 100k sessions of which 1% expired.
// The timer covers only Sweep; re-adding the expired sessions is excluded.
func BenchmarkSweep100k(b *testing.B) {
	const n, expired = 100_000, 1_000
	s, err := memory.New(memory.Config{})
	if err != nil {
		b.Fatal(err)
	}
	for i := range n - expired {
		s.Add(ctx, presence.Lease{ClientID: fmt.Sprintf("c%d", i), SessionID: "s", Node: "n", TTL: time.Hour})
	}
	short := make([]presence.Lease, expired)
	for i := range short {
		short[i] = presence.Lease{ClientID: fmt.Sprintf("x%d", i), SessionID: "s", Node: "n", TTL: time.Nanosecond}
	}
	b.ReportAllocs()
	for b.Loop() {
		b.StopTimer()
		for _, l := range short {
			s.Add(ctx, l)
		}
		time.Sleep(time.Microsecond)
		b.StartTimer()
		evs, err := s.Sweep(ctx)
		if err != nil || len(evs) != expired {
			b.Fatalf("Sweep = %d events, %v", len(evs), err)
		}
	}
}

// BenchmarkTouch1k writes one batch of 1000 leases, as a Tracker does every
// SweepInterval/2.
func BenchmarkTouch1k(b *testing.B) {
	s, err := memory.New(memory.Config{})
	if err != nil {
		b.Fatal(err)
	}
	leases := make([]presence.Lease, 1000)
	for i := range leases {
		leases[i] = presence.Lease{ClientID: fmt.Sprintf("c%d", i), SessionID: "s", Node: "n", TTL: time.Hour}
		s.Add(ctx, leases[i])
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Touch(ctx, leases); err != nil {
			b.Fatal(err)
		}
	}
}

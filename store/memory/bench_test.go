package memory_test

import (
	"fmt"
	"runtime"
	"strconv"
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
func BenchmarkTouch1k(b *testing.B) { benchTouch(b, 0) }

// BenchmarkTouch1kIn5Rooms is BenchmarkTouch1k with each session in 5
// rooms: a beat never touches memberships, so it costs the same.
func BenchmarkTouch1kIn5Rooms(b *testing.B) { benchTouch(b, 5) }

func benchTouch(b *testing.B, rooms int) {
	s, err := memory.New(memory.Config{})
	if err != nil {
		b.Fatal(err)
	}
	leases := make([]presence.Lease, 1000)
	for i := range leases {
		leases[i] = presence.Lease{ClientID: fmt.Sprintf("c%d", i), SessionID: "s", Node: "n", TTL: time.Hour}
		l := leases[i]
		for r := range rooms {
			l.Rooms = append(l.Rooms, fmt.Sprintf("room-%d", (i+r)%50))
		}
		s.Add(ctx, l)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Touch(ctx, leases); err != nil {
			b.Fatal(err)
		}
	}
}

// roomBench is a store of n clients, each with one session, and the
// memberships of those sessions, each client in one of 100 rooms.
func roomBench(b *testing.B, n int) (*memory.Store, []presence.Membership) {
	s, err := memory.New(memory.Config{})
	if err != nil {
		b.Fatal(err)
	}
	ms := make([]presence.Membership, n)
	for i := range ms {
		ms[i] = presence.Membership{ClientID: fmt.Sprintf("c%d", i), SessionID: "s", Room: fmt.Sprintf("room-%d", i%100)}
		if _, err := s.Add(ctx, presence.Lease{ClientID: ms[i].ClientID, SessionID: "s", Node: "n", TTL: time.Hour}); err != nil {
			b.Fatal(err)
		}
	}
	return s, ms
}

// BenchmarkJoin joins sessions to rooms they are not in: each call is a
// Join transition. Every 10,000 calls, the sessions leave again, untimed.
func BenchmarkJoin(b *testing.B) {
	s, ms := roomBench(b, 10_000)
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		k := i % len(ms)
		if k == 0 && i > 0 {
			b.StopTimer()
			for _, m := range ms {
				s.Leave(ctx, m)
			}
			b.StartTimer()
		}
		if evs, err := s.Join(ctx, ms[k]); err != nil || len(evs) != 1 {
			b.Fatalf("Join = %v, %v", evs, err)
		}
	}
}

// BenchmarkLeave takes sessions out of their room: each call is a Leave
// transition. Every 10,000 calls, the sessions join again, untimed.
func BenchmarkLeave(b *testing.B) {
	s, ms := roomBench(b, 10_000)
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		k := i % len(ms)
		if k == 0 {
			b.StopTimer()
			for _, m := range ms {
				s.Join(ctx, m)
			}
			b.StartTimer()
		}
		if evs, err := s.Leave(ctx, ms[k]); err != nil || len(evs) != 1 {
			b.Fatalf("Leave = %v, %v", evs, err)
		}
	}
}

// BenchmarkHeap1MSessions3Rooms reports the heap a Store holds for 1M
// sessions, of 1M clients, each in 3 of 1,000 rooms with a small metadata
// value, as heap-MB (the target is at most 1 GB). Its timing is that of
// building the store, garbage collections included: not a figure to
// compare.
func BenchmarkHeap1MSessions3Rooms(b *testing.B) {
	const n, rooms = 1_000_000, 1_000
	names := make([]string, rooms)
	for i := range names {
		names[i] = fmt.Sprintf("room-%d", i)
	}
	meta := []byte(`{"name":"a"}`)
	for b.Loop() {
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		s, err := memory.New(memory.Config{})
		if err != nil {
			b.Fatal(err)
		}
		for i := range n {
			l := presence.Lease{
				ClientID: "client-" + strconv.Itoa(i), SessionID: "session-" + strconv.Itoa(i), Node: "n", TTL: time.Hour,
				Rooms: []string{names[i%rooms], names[(i/rooms+1)%rooms], names[(i/rooms+2*i+7)%rooms]}, Meta: meta,
			}
			if _, err := s.Add(ctx, l); err != nil {
				b.Fatal(err)
			}
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/1e6, "heap-MB")
		if n, _ := s.RoomCount(ctx, names[0]); n == 0 {
			b.Fatal("empty room")
		}
		runtime.KeepAlive(s)
	}
}

// BenchmarkMembers100k reads one page of 100 members, from the middle of a
// walk, of a room of 100,000: a page costs a pass over the room.
func BenchmarkMembers100k(b *testing.B) {
	s, err := memory.New(memory.Config{})
	if err != nil {
		b.Fatal(err)
	}
	for i := range 100_000 {
		s.Add(ctx, presence.Lease{ClientID: fmt.Sprintf("c%06d", i), SessionID: "s", Node: "n", TTL: time.Hour, Rooms: []string{"big"}})
	}
	first, err := s.Members(ctx, "big", "", 50_000)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if p, err := s.Members(ctx, "big", first.Next, 100); err != nil || len(p.Members) != 100 {
			b.Fatalf("Members = %d, %v", len(p.Members), err)
		}
	}
}

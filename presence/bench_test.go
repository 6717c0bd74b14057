package presence_test

import (
	"context"
	"fmt"
	"runtime"
	"strconv"
	"sync/atomic"
	"testing"

	"github.com/vigilhq/vigil/presence"
	"github.com/vigilhq/vigil/store/memory"
)

// BenchmarkBeat is one beat on a live session: what every pong or heartbeat
// costs. Beats go round-robin over 10k sessions so the batch writer keeps
// clearing the marks (as in a real server), not only the fast path.
func BenchmarkBeat(b *testing.B) {
	tr := benchTracker(b, memory.Config{})
	sessions := make([]*presence.Session, 10_000)
	for i := range sessions {
		s, err := tr.Connect(ctx, fmt.Sprintf("client-%d", i), presence.SessionOptions{})
		if err != nil {
			b.Fatal(err)
		}
		sessions[i] = s
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		sessions[i%len(sessions)].Beat()
		i++
	}
}

func BenchmarkBeatParallel(b *testing.B) {
	tr := benchTracker(b, memory.Config{})
	sessions := make([]*presence.Session, 10_000)
	for i := range sessions {
		sessions[i], _ = tr.Connect(ctx, fmt.Sprintf("client-%d", i), presence.SessionOptions{})
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			sessions[i%len(sessions)].Beat()
			i += 7
		}
	})
}

// BenchmarkConnectClose is a session's whole life: connect (the client goes
// online) and end (through Grace).
func BenchmarkConnectClose(b *testing.B) {
	tr := benchTracker(b, memory.Config{})
	ids := make([]string, 1000)
	for i := range ids {
		ids[i] = fmt.Sprintf("client-%d", i)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		s, err := tr.Connect(ctx, ids[i%len(ids)], presence.SessionOptions{})
		if err != nil {
			b.Fatal(err)
		}
		s.End(ctx, presence.ReasonClosed)
		i++
	}
}

// BenchmarkConnectHooked is a ramp: new clients connect one after another,
// with an Online hook registered, as every app has. Its allocations include
// the hooks' (on the Tracker's goroutines); the hooks' own work is nothing.
func BenchmarkConnectHooked(b *testing.B) {
	tr := benchTracker(b, memory.Config{MaxClients: 1 << 22, MaxSessions: 1 << 22})
	var calls atomic.Int64
	tr.OnOnline(func(context.Context, presence.Event) { calls.Add(1) })
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if _, err := tr.Connect(ctx, "client-"+strconv.Itoa(i), presence.SessionOptions{}); err != nil {
			b.Fatal(err)
		}
		i++
	}
	if err := tr.Close(ctx); err != nil {
		b.Fatal(err)
	}
	if int(calls.Load()) != i {
		b.Fatalf("%d Online hook calls for %d clients", calls.Load(), i)
	}
}

// BenchmarkMemory1M opens 1M sessions of 1M clients through a Tracker on the
// memory store and reports the heap they hold. Run it with -benchtime=1x.
func BenchmarkMemory1M(b *testing.B) {
	const n = 1_000_000
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("user-%07d", i)
	}
	sessions := make([]*presence.Session, n) // the app's, not vigil's
	for b.Loop() {
		before := heap()
		tr := benchTracker(b, memory.Config{MaxClients: n, MaxSessions: n})
		for i, id := range ids {
			s, err := tr.Connect(ctx, id, presence.SessionOptions{})
			if err != nil {
				b.Fatal(err)
			}
			sessions[i] = s
		}
		after := heap()
		b.ReportMetric(float64(after-before)/n, "B/session")
		b.ReportMetric(float64(after-before)/(1<<20), "MiB/1M")
		runtime.KeepAlive(sessions)
		tr.Close(ctx)
	}
}

func heap() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

func benchTracker(b *testing.B, cfg memory.Config) *presence.Tracker {
	b.Helper()
	store, err := memory.New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	tr, err := presence.New(ctx, store, presence.Config{Node: "bench"})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { tr.Close(ctx) })
	return tr
}

//go:build unix

// Command feeds measures the coalesced room feed under churn: one room of
// -members members on the memory store changes -rate times a second (a
// member leaves, someone joins, a member sets new metadata), while -subs
// subscribers follow it over Server-Sent Events on loopback TCP. It runs
// the churn twice, first with no subscriber (the Tracker's own cost), then
// with them, and prints per subscriber the messages and bytes per second
// and the process CPU per change of each run:
//
//	go run ./bench/feeds -members 10000 -rate 200 -subs 100 -seconds 20
//
// The subscribers only count events and bytes (they parse nothing), so the
// CPU of the second run is the node's (Tracker, Feed, HTTP) plus the
// readers' small share, an upper bound on the feed's cost.
// middleware.TestFeedBigRoomBound checks the same scenario's bound and
// final state on fake time.
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"math/rand/v2"
	"net"
	"net/http"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/vigilhq/vigil/middleware"
	"github.com/vigilhq/vigil/presence"
	"github.com/vigilhq/vigil/store/memory"
)

func cpu() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

type reader struct {
	msgs, bytes atomic.Int64
}

func main() {
	members := flag.Int("members", 10000, "members of the room")
	rate := flag.Int("rate", 200, "changes per second")
	subs := flag.Int("subs", 100, "feed subscribers")
	seconds := flag.Int("seconds", 20, "seconds of churn per run")
	window := flag.Duration("window", middleware.DefaultFeedWindow, "the Feed's window")
	flag.Parse()

	ctx := context.Background()
	st, err := memory.New(memory.Config{})
	if err != nil {
		log.Fatal(err)
	}
	tr, err := presence.New(ctx, st, presence.Config{Node: "bench"})
	if err != nil {
		log.Fatal(err)
	}
	defer tr.Close(ctx)
	f, err := middleware.NewFeed(tr, middleware.FeedConfig{Window: *window})
	if err != nil {
		log.Fatal(err)
	}
	defer f.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	hs := &http.Server{Handler: f}
	go hs.Serve(ln)
	defer hs.Close()

	outside := *members / 20
	sessions := make([]*presence.Session, *members+outside)
	in := make([]bool, len(sessions))
	for i := range sessions {
		opts := presence.SessionOptions{ID: "s", Meta: json.RawMessage(fmt.Sprintf(`{"n":%d}`, i))}
		if i < *members {
			opts.Rooms = []string{"big"}
			in[i] = true
		}
		if sessions[i], err = tr.Connect(ctx, fmt.Sprintf("m%05d", i), opts); err != nil {
			log.Fatal(err)
		}
	}
	// The sessions stand for connections that answer every ping: beat them.
	go func() {
		for range time.Tick(5 * time.Second) {
			for _, s := range sessions {
				s.Beat()
			}
		}
	}()
	rnd := rand.New(rand.NewPCG(1, 2))
	step := func(k int) error {
		i := rnd.IntN(len(sessions))
		s := sessions[i]
		switch r := rnd.IntN(3); {
		case r < 2 && in[i]:
			in[i] = false
			return s.Leave(ctx, "big")
		case r < 2:
			in[i] = true
			return s.Join(ctx, "big")
		default:
			return s.SetMeta(ctx, json.RawMessage(fmt.Sprintf(`{"n":%d,"k":%d}`, i, k)))
		}
	}
	run := func(k0 int) (time.Duration, time.Duration) {
		runtime.GC()
		c0, t0 := cpu(), time.Now()
		tick := time.NewTicker(time.Second / time.Duration(*rate))
		defer tick.Stop()
		for k := range *seconds * *rate {
			<-tick.C
			if err := step(k0 + k); err != nil {
				log.Fatal(err)
			}
		}
		return cpu() - c0, time.Since(t0)
	}

	changes := *seconds * *rate
	c, wall := run(0)
	c1 := c
	fmt.Printf("churn alone: %d changes in %v, CPU %v, %.1f µs CPU per change\n",
		changes, wall.Round(time.Millisecond), c.Round(time.Millisecond), float64(c.Microseconds())/float64(changes))

	readers := make([]*reader, *subs)
	rctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	var ready sync.WaitGroup
	for i := range readers {
		r := &reader{}
		readers[i] = r
		req, _ := http.NewRequestWithContext(rctx, "GET", "http://"+ln.Addr().String()+"/?room=big", nil)
		res, err := http.DefaultClient.Do(req)
		if err != nil || res.StatusCode != 200 {
			log.Fatalf("subscribe: %v %v", res, err)
		}
		ready.Add(1)
		wg.Go(func() {
			defer res.Body.Close()
			br := bufio.NewReaderSize(res.Body, 1<<16)
			snapshot, inData := true, false // until the snapshot's data line is read
			for {
				line, err := br.ReadSlice('\n')
				if err != nil && err != bufio.ErrBufferFull {
					return
				}
				if snapshot {
					inData = inData || bytes.HasPrefix(line, []byte("data: "))
					if inData && err == nil {
						snapshot = false
						ready.Done()
					}
					continue
				}
				r.bytes.Add(int64(len(line)))
				if bytes.HasPrefix(line, []byte("event: ")) {
					r.msgs.Add(1)
				}
			}
		})
	}
	ready.Wait()
	t0 := time.Now()
	c, wall = run(changes)
	time.Sleep(2 * *window) // the last changes' message
	span := time.Since(t0)
	var msgs, byts int64
	var most int64
	for _, r := range readers {
		m := r.msgs.Load()
		msgs += m
		byts += r.bytes.Load()
		most = max(most, m)
	}
	n := float64(*subs)
	fmt.Printf("with %d subscribers: %d changes in %v, CPU %v, %.1f µs CPU per change\n",
		*subs, changes, wall.Round(time.Millisecond), c.Round(time.Millisecond), float64(c.Microseconds())/float64(changes))
	fmt.Printf("per subscriber, over %v: %.2f messages/s (most: %d messages, %.2f/s), %.0f bytes/s\n",
		span.Round(time.Millisecond), float64(msgs)/n/span.Seconds(), most, float64(most)/span.Seconds(), float64(byts)/n/span.Seconds())
	fmt.Printf("feed cost: %.1f µs CPU per change for %d subscribers\n",
		float64((c-c1).Microseconds())/float64(changes), *subs)
	cancel()
	wg.Wait()
}

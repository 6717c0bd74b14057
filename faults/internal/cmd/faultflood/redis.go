package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"sync"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/vigilhq/vigil/internal/redistest"
	"github.com/vigilhq/vigil/middleware"
	"github.com/vigilhq/vigil/presence"
	redisstore "github.com/vigilhq/vigil/store/redis"
)

// redisFlood is the flood against the Redis store at addr, namespace
// prefix, capped at limit clients and limit sessions, which nodes of the
// test share: other clients online there count against the cap. Two
// rounds, each on a node of its own: "a" floods n IDs while the cap is full
// of online clients; "b" floods n2 new IDs while it is full of round a's
// offline ones, which they replace. After flooding, a round prints a JSON
// line and waits for a line on stdin; then its node shuts down (its clients
// go offline through Grace, swept by the test's node) and it prints a line
// "<round>-offline". After the last, it waits for stdin to close.
type redisFlood struct {
	rdb    *goredis.Client
	cfg    redisstore.Config
	others int // clients online elsewhere, which stay
	in     *bufio.Scanner
}

// sample is Redis's memory after some of a round's requests.
type sample struct {
	Requests int   `json:"requests"`
	Online   int   `json:"online"`
	Used     int64 `json:"used"` // INFO memory used_memory, bytes
}

type round struct {
	Phase      string      `json:"phase"`
	Requests   int         `json:"requests"`
	Status     map[int]int `json:"status"`
	RetryAfter int         `json:"retry_after_missing"`
	Samples    []sample    `json:"samples"`
	Seconds    float64     `json:"seconds"`
	// Remembered counts the clients of the round before that Lookup still
	// finds (a LastSeen): round a's, after round b.
	Remembered int `json:"remembered"`
}

// offline is the line a round prints once its node shut down and its
// clients are offline.
type offline struct {
	Phase string `json:"phase"`
	Used  int64  `json:"used"`
}

func runRedis(addr, prefix string, n, n2, limit, others, journalLen int) error {
	rdb := goredis.NewClient(&goredis.Options{Addr: addr, PoolSize: 32})
	defer rdb.Close()
	f := &redisFlood{rdb: rdb, others: others, in: bufio.NewScanner(os.Stdin),
		cfg: redisstore.Config{Prefix: prefix, MaxClients: limit, MaxSessions: limit, JournalLen: journalLen}}
	ctx := context.Background()
	if err := f.round(ctx, "a", n, nil); err != nil {
		return err
	}
	aIDs := make([]string, n)
	for i := range aIDs {
		aIDs[i] = "flood-a-" + strconv.Itoa(i)
	}
	if err := f.round(ctx, "b", n2, aIDs); err != nil {
		return err
	}
	for f.in.Scan() {
	}
	return nil
}

func emit(v any) error { return json.NewEncoder(os.Stdout).Encode(v) }

// round floods n IDs of phase through a node of its own, then shuts the
// node down and waits until only the other clients are online. before
// are the IDs of the round before, to count how many are remembered.
func (f *redisFlood) round(ctx context.Context, phase string, n int, before []string) error {
	res := round{Phase: phase, Requests: n, Status: map[int]int{}}
	st, err := redisstore.New(f.rdb, f.cfg)
	if err != nil {
		return err
	}
	tr, err := presence.New(ctx, st, presence.Config{Node: "flood-" + phase, TTL: time.Hour, Grace: 200 * time.Millisecond})
	if err != nil {
		return err
	}
	srv, err := middleware.New(tr, middleware.Config{Identify: middleware.IdentifyQuery("id")})
	if err != nil {
		return err
	}
	h := srv.HeartbeatEndpoint()
	const steps, workers = 20, 8
	start := time.Now()
	var mu sync.Mutex
	for step := range steps {
		from, to := step*n/steps, (step+1)*n/steps
		var wg sync.WaitGroup
		for w := range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				status := map[int]int{}
				missing := 0
				for i := from + w; i < to; i += workers {
					r := httptest.NewRequest(http.MethodPost, "/heartbeat?id=flood-"+phase+"-"+strconv.Itoa(i), nil)
					rec := httptest.NewRecorder()
					h.ServeHTTP(rec, r)
					status[rec.Code]++
					if rec.Code == http.StatusServiceUnavailable && rec.Header().Get("Retry-After") == "" {
						missing++
					}
				}
				mu.Lock()
				for k, v := range status {
					res.Status[k] += v
				}
				res.RetryAfter += missing
				mu.Unlock()
			}()
		}
		wg.Wait()
		s := sample{Requests: to}
		if s.Online, err = tr.Count(ctx); err != nil {
			return err
		}
		if s.Used, err = redistest.UsedMemory(ctx, f.rdb); err != nil {
			return err
		}
		res.Samples = append(res.Samples, s)
	}
	res.Seconds = time.Since(start).Seconds()
	if before != nil {
		for i := 0; i < len(before); i += 1000 {
			ps, err := tr.Lookup(ctx, before[i:min(i+1000, len(before))])
			if err != nil {
				return err
			}
			for _, p := range ps {
				if !p.LastSeen.IsZero() {
					res.Remembered++
				}
			}
		}
	}
	if err := emit(res); err != nil {
		return err
	}
	f.in.Scan()
	if err := srv.Shutdown(ctx); err != nil {
		return err
	}
	if err := tr.Close(ctx); err != nil {
		return err
	}
	deadline := time.Now().Add(time.Minute)
	for {
		online, err := st.Count(ctx)
		if err != nil {
			return err
		}
		if online == f.others {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("round %s: %d online a minute after its node shut down, want %d", phase, online, f.others)
		}
		time.Sleep(100 * time.Millisecond)
	}
	used, err := redistest.UsedMemory(ctx, f.rdb)
	if err != nil {
		return err
	}
	return emit(offline{Phase: phase + "-offline", Used: used})
}

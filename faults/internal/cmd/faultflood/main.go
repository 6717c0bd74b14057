// Command faultflood floods one node's HTTP-heartbeat endpoint with
// distinct client IDs, in process (handler.ServeHTTP, no network), against
// the memory store with a cap, and prints one JSON line: how many requests
// were answered with each status, and the heap in use (after a GC) when
// the cap was reached and at the end. With -redis, it floods the Redis
// store at that address instead, in two rounds (see redisFlood), and
// reports Redis's memory. The disconnect suite runs it as a separate
// process so that the race detector neither slows the flood nor inflates
// the heap it measures.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"strconv"
	"time"

	"github.com/vigilhq/vigil/middleware"
	"github.com/vigilhq/vigil/presence"
	"github.com/vigilhq/vigil/store/memory"
	redisstore "github.com/vigilhq/vigil/store/redis"
)

type result struct {
	Requests     int         `json:"requests"`
	Status       map[int]int `json:"status"`
	RetryAfter   int         `json:"retry_after_missing"`
	HeapAtCapMiB float64     `json:"heap_at_cap_mib"`
	HeapEndMiB   float64     `json:"heap_end_mib"`
	HeapMaxMiB   float64     `json:"heap_max_mib"`
	Online       int         `json:"online"`
	Seconds      float64     `json:"seconds"`
}

func heapMiB() float64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return float64(m.HeapInuse) / (1 << 20)
}

func main() {
	n := flag.Int("n", 1_000_000, "distinct client IDs")
	limit := flag.Int("cap", 100_000, "the store's MaxClients and MaxSessions")
	addr := flag.String("redis", "", "flood the Redis store at this address, not the memory store")
	prefix := flag.String("prefix", redisstore.DefaultPrefix, "with -redis: the store's namespace")
	n2 := flag.Int("n2", 0, "with -redis: distinct client IDs of the second round")
	others := flag.Int("others", 0, "with -redis: clients online elsewhere in the namespace, counted in the cap")
	journalLen := flag.Int("journal-len", 0, "with -redis: the store's JournalLen (0: its default)")
	flag.Parse()
	var err error
	if *addr != "" {
		err = runRedis(*addr, *prefix, *n, *n2, *limit, *others, *journalLen)
	} else {
		err = run(*n, *limit)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

func run(n, limit int) error {
	st, err := memory.New(memory.Config{MaxClients: limit, MaxSessions: limit})
	if err != nil {
		return err
	}
	ctx := context.Background()
	tr, err := presence.New(ctx, st, presence.Config{Node: "flood", TTL: time.Hour})
	if err != nil {
		return err
	}
	defer tr.Close(ctx)
	srv, err := middleware.New(tr, middleware.Config{Identify: middleware.IdentifyQuery("id")})
	if err != nil {
		return err
	}
	defer srv.Shutdown(ctx)
	h := srv.HeartbeatEndpoint()
	res := result{Requests: n, Status: map[int]int{}}
	start := time.Now()
	for i := range n {
		r := httptest.NewRequest(http.MethodPost, "/heartbeat?id=flood-"+strconv.Itoa(i), nil)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		res.Status[w.Code]++
		if w.Code == http.StatusServiceUnavailable && w.Header().Get("Retry-After") == "" {
			res.RetryAfter++
		}
		if i == limit {
			res.HeapAtCapMiB = heapMiB()
		}
		if i > limit && i%(n/10+1) == 0 {
			res.HeapMaxMiB = max(res.HeapMaxMiB, heapMiB())
		}
	}
	res.Seconds = time.Since(start).Seconds()
	res.HeapEndMiB = heapMiB()
	res.HeapMaxMiB = max(res.HeapMaxMiB, res.HeapEndMiB)
	if res.Online, err = tr.Count(ctx); err != nil {
		return err
	}
	return json.NewEncoder(os.Stdout).Encode(res)
}

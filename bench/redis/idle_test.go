//go:build integration && unix

package redis_test

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/vigilhq/vigil/internal/redistest"
	"github.com/vigilhq/vigil/presence"
	redisstore "github.com/vigilhq/vigil/store/redis"
)

// TestFigureIdleCost (issue 17 §5): what idle nodes cost Redis. 1, 4 and
// 16 nodes, each with its own client, Store and Tracker at the defaults
// and a Watch hook (as the demo's feed registers), and no session at all,
// share one redis-server of the test's own; after a settling second, the
// figure is Redis's CPU (INFO cpu, user + sys) and the commands it ran
// (INFO stats total_commands_processed, which counts the commands scripts
// run too), per node and per second, over IDLE_SECONDS (10 by default).
// Redis's CPU per node leaves out what the server costs with no node at
// all (its timers), measured for half as long before the nodes start.
//
// The count of commands is asserted (idleCommands: per node and second,
// by the number of nodes). CPU is only reported (it depends on the machine
// and its load).
func TestFigureIdleCost(t *testing.T) {
	window := 10 * time.Second
	if v, err := strconv.Atoi(os.Getenv("IDLE_SECONDS")); err == nil && v > 0 {
		window = time.Duration(v) * time.Second
	}
	for _, nodes := range []int{1, 4, 16} {
		t.Run(fmt.Sprintf("%d-nodes", nodes), func(t *testing.T) {
			srv := redistest.StartServer(t)
			probe := goredis.NewClient(&goredis.Options{Addr: srv.Addr()})
			t.Cleanup(func() { _ = probe.Close() })
			// Redis's own idle cost (its timers), with no node at all.
			base0, _ := serverLoad(t, probe)
			baseStart := time.Now()
			time.Sleep(window / 2)
			base1, _ := serverLoad(t, probe)
			base := (base1 - base0) / time.Since(baseStart).Seconds() * 1000
			for i := range nodes {
				rdb := goredis.NewClient(&goredis.Options{Addr: srv.Addr()})
				t.Cleanup(func() { _ = rdb.Close() })
				st, err := redisstore.New(rdb, redisstore.Config{})
				if err != nil {
					t.Fatal(err)
				}
				tr, err := presence.New(context.Background(), st, presence.Config{Node: "idle-" + strconv.Itoa(i)})
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { _ = tr.Close(context.Background()) })
				tr.Watch(func(context.Context, presence.Event) {})
			}
			time.Sleep(time.Second) // every node has started its loop
			stats0 := commandStats(t, probe)
			cpu0, cmds0 := serverLoad(t, probe)
			start := time.Now()
			time.Sleep(window)
			cpu1, cmds1 := serverLoad(t, probe)
			stats1 := commandStats(t, probe)
			secs := time.Since(start).Seconds()
			// The probe's own INFO calls: two, counted in cmds1.
			all := (cpu1 - cpu0) / secs * 1000
			cpuPerNode := (all - base) / float64(nodes)
			cmdsPerNode := float64(cmds1-cmds0-1) / float64(nodes) / secs
			t.Logf("%2d idle nodes: Redis CPU %.3f ms/s per node over Redis's own %.2f ms/s (%.2f ms/s in all), %.1f commands/s per node (%.0f in all)",
				nodes, cpuPerNode, base, all, cmdsPerNode, cmdsPerNode*float64(nodes))
			logCommandStats(t, stats0, stats1, float64(nodes)*secs)
			if limit := idleCommands[nodes]; cmdsPerNode > limit {
				t.Errorf("%d idle nodes: %.1f commands/s per node, want at most %v", nodes, cmdsPerNode, limit)
			}
			// The calls that cost Redis the most per call: a script, and
			// the journal's blocked XREAD (it registers on every bucket's
			// stream).
			for _, c := range []struct {
				what  string
				cmds  []string
				limit float64
			}{
				{"script calls", []string{"eval", "evalsha"}, idleScripts},
				{"XREADs", []string{"xread"}, idleXReads},
			} {
				var n int64
				for _, cmd := range c.cmds {
					n += stats1[cmd].calls - stats0[cmd].calls
				}
				if per := float64(n) / float64(nodes) / secs; per > c.limit {
					t.Errorf("%d idle nodes: %.2f %s/s per node, want at most %v", nodes, per, c.what, c.limit)
				}
			}
		})
	}
}

// idleCommands bounds the commands an idle node costs Redis per second, by
// the number of nodes sharing the background work. Measured: about 130, 40
// and 16 (170, 55 and 24 with a script for the registry every Sweep and a
// sweep script over every bucket every 10s; every node swept, reclaimed
// and polled every bucket before that: 520 per node, however many). The
// first 10s of a namespace count a few more (EXISTS per bucket as its
// first re-assertion window ends).
var idleCommands = map[int]float64{1: 180, 4: 60, 16: 25}

// idleScripts and idleXReads bound an idle node's script calls and XREADs
// per second. Measured: at most 0.1 script calls (2.4 with the registry's
// script every Sweep) and 0.1 XREADs (0.5 with a 2s block).
const (
	idleScripts = 0.25
	idleXReads  = 0.25
)

// serverLoad reads Redis's CPU seconds (user + sys) and the commands it
// processed so far.
func serverLoad(t *testing.T, c *goredis.Client) (cpu float64, cmds int64) {
	t.Helper()
	f, err := redistest.Info(context.Background(), c, "cpu", "stats")
	if err != nil {
		t.Fatal(err)
	}
	user, _ := strconv.ParseFloat(f["used_cpu_user"], 64)
	sys, _ := strconv.ParseFloat(f["used_cpu_sys"], 64)
	cmds, _ = strconv.ParseInt(f["total_commands_processed"], 10, 64)
	return user + sys, cmds
}

// cmdStat is one line of INFO commandstats (and the few counters of INFO
// stats that tell where an idle server's time goes).
type cmdStat struct{ calls, usec int64 }

// commandStats reads INFO commandstats, and INFO stats's connections
// received and keys expired, as pseudo-commands of no time.
func commandStats(t *testing.T, c *goredis.Client) map[string]cmdStat {
	t.Helper()
	info, err := c.Info(context.Background(), "commandstats", "stats").Result()
	if err != nil {
		t.Fatal(err)
	}
	stats := make(map[string]cmdStat)
	for _, line := range strings.Split(info, "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(line), ":")
		if !ok {
			continue
		}
		switch {
		case strings.HasPrefix(k, "cmdstat_"):
			var st cmdStat
			for _, f := range strings.Split(v, ",") {
				fk, fv, _ := strings.Cut(f, "=")
				n, _ := strconv.ParseInt(fv, 10, 64)
				switch fk {
				case "calls":
					st.calls = n
				case "usec":
					st.usec = n
				}
			}
			stats[strings.TrimPrefix(k, "cmdstat_")] = st
		case k == "total_connections_received", k == "expired_keys":
			n, _ := strconv.ParseInt(v, 10, 64)
			stats["("+k+")"] = cmdStat{calls: n}
		}
	}
	return stats
}

// logCommandStats logs, per command Redis ran between a and b, its calls
// per node and second (per is nodes × seconds) and its time per call, as
// Redis measured them (INFO commandstats: a script's commands count both
// as themselves and in the script's EVALSHA).
func logCommandStats(t *testing.T, a, b map[string]cmdStat, per float64) {
	t.Helper()
	names := make([]string, 0, len(b))
	for k := range b {
		names = append(names, k)
	}
	slices.Sort(names)
	for _, k := range names {
		calls, usec := b[k].calls-a[k].calls, b[k].usec-a[k].usec
		if calls == 0 || k == "info" {
			continue
		}
		t.Logf("  %-34s %7.2f calls/s per node, %6.1f µs per call, %7.1f µs/s per node",
			k, float64(calls)/per, float64(usec)/float64(calls), float64(usec)/per)
	}
}

//go:build soak

package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// churnFor is how long the churn lasts (issue 14 §4: three minutes).
const churnFor = 3 * time.Minute

// health is what the churn must give back: the demo process's resident
// memory, goroutines and open files.
type health struct {
	rssKB, goroutines, files int
	heapKB                   int // in use, after a GC: to tell the heap from the rest of RSS
}

func (h health) String() string {
	return fmt.Sprintf("RSS %d KiB (heap in use %d KiB), %d goroutines, %d open files", h.rssKB, h.heapKB, h.goroutines, h.files)
}

// TestSoakChurn (issue 14 §4): the demo, at its default flags, takes three
// minutes of churn (WebSocket clients that connect, chat and close, or
// crash without a close frame; HTTP-heartbeat tabs that beat and leave),
// about 20 at a time; afterwards its RSS, goroutines and open files return
// to within 5% of their baseline, measured after a one-minute warm-up of
// the same churn. It runs beside the other tests (it costs little CPU): the figures
// are logged.
func TestSoakChurn(t *testing.T) {
	t.Parallel()
	dbg := freeAddr(t)
	d := startDemo(t, "", "-debug-addr", dbg)
	hc := &http.Client{Timeout: 10 * time.Second}
	t.Cleanup(hc.CloseIdleConnections)

	// Warm-up: the same churn for a minute, so that the runtime's pools,
	// the store's maps (the same 300 client IDs) and the heap's spans reach
	// their working size; what the 3 minutes add after that is what the
	// churn leaves behind.
	churn(t, d, hc, time.Minute, 1)
	base := settle(t, d, hc, dbg)
	t.Logf("baseline after warm-up: %v", base)

	start := time.Now()
	ops := churn(t, d, hc, churnFor, 2)
	t.Logf("churn: %d clients over %v", ops, time.Since(start).Round(time.Second))
	after := settle(t, d, hc, dbg)
	t.Logf("FIGURE churn-health: baseline %v; after %d clients of churn %v", base, ops, after)
	within := func(what string, got, want int) {
		if float64(got) > float64(want)*1.05+1 {
			t.Errorf("%s %d after the churn, baseline %d: more than 5%% above", what, got, want)
		}
	}
	within("RSS KiB", after.rssKB, base.rssKB)
	within("goroutines", after.goroutines, base.goroutines)
	within("open files", after.files, base.files)
}

// churn runs clients against d for dur, about 20 at a time, and returns how
// many ran.
func churn(t *testing.T, d *demo, hc *http.Client, dur time.Duration, seed uint64) int {
	t.Helper()
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		ops  int
		errs []string
	)
	fail := func(format string, a ...any) {
		mu.Lock()
		if len(errs) < 10 {
			errs = append(errs, fmt.Sprintf(format, a...))
		}
		mu.Unlock()
	}
	end := time.Now().Add(dur)
	for w := range 20 {
		wg.Go(func() {
			rnd := rand.New(rand.NewPCG(seed, uint64(w)))
			for i := 0; time.Now().Before(end); i++ {
				// A bounded population, the same in warm-up and churn: the
				// store remembers each offline client's last-seen time for
				// Retention (24h), which new IDs would grow for real.
				id := fmt.Sprintf("churn-%d", rnd.IntN(300))
				life := time.Duration(200+rnd.IntN(2800)) * time.Millisecond
				switch k := rnd.IntN(4); k {
				case 0, 1, 2: // WebSocket: chat, then close or crash
					ws, _, err := websocket.DefaultDialer.Dial(strings.Replace(d.url("/ws?id="+id), "http", "ws", 1), nil)
					if err != nil {
						fail("dial %s: %v", id, err)
						continue
					}
					go func() { // read the broadcasts until the end
						for {
							if _, _, err := ws.ReadMessage(); err != nil {
								return
							}
						}
					}()
					_ = ws.WriteMessage(websocket.TextMessage, []byte("hello from "+id))
					time.Sleep(life) // not synchronisation: the client's lifetime
					if k == 2 {      // crash: no close frame, TCP reset
						_ = ws.NetConn().(*net.TCPConn).SetLinger(0)
					} else {
						_ = ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(1000, ""), time.Now().Add(time.Second))
					}
					ws.Close()
				case 3: // an HTTP-heartbeat tab: beat, then leave
					u := d.url("/presence/heartbeat?id=" + id)
					for range 2 {
						res, err := hc.Post(u, "application/json", bytes.NewReader(nil))
						if err != nil {
							fail("heartbeat %s: %v", id, err)
							break
						}
						io.Copy(io.Discard, res.Body)
						res.Body.Close()
						time.Sleep(life / 2) // not synchronisation: between beats
					}
					res, err := hc.Post(d.url("/presence/leave?id="+id), "text/plain", nil)
					if err == nil {
						io.Copy(io.Discard, res.Body)
						res.Body.Close()
					}
				}
				mu.Lock()
				ops++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	for _, e := range errs {
		t.Error(e)
	}
	return ops
}

// settle waits until nobody is online (Grace ends every session), then
// forces a GC in the demo and measures it.
func settle(t *testing.T, d *demo, hc *http.Client, dbg string) health {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		var body struct {
			Clients []any `json:"clients"`
		}
		if getJSON(t, hc, d.url("/presence"), &body); len(body.Clients) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d clients still online a minute after the churn", len(body.Clients))
		}
		time.Sleep(200 * time.Millisecond)
	}
	hc.CloseIdleConnections() // our own keep-alive connections are not the demo's
	// The runtime gives freed memory back to the system in the background,
	// over seconds: measure until RSS stops falling (no new low for 10s, at
	// most a minute), each time after a forced GC.
	var h health
	low, lowAt := 0, time.Now()
	for start := time.Now(); time.Since(start) < time.Minute && time.Since(lowAt) < 10*time.Second; {
		time.Sleep(time.Second) // not synchronisation: the scavenger's pace
		n := health{heapKB: heapInUseKB(t, hc, dbg), rssKB: rssKB(t, d), goroutines: goroutines(t, hc, dbg), files: openFiles(t, d)}
		hc.CloseIdleConnections()
		if low == 0 || n.rssKB < low {
			low, lowAt = n.rssKB, time.Now()
		}
		h = n
		h.rssKB = low
	}
	return h
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func getText(t *testing.T, hc *http.Client, u string) string {
	t.Helper()
	res, err := hc.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func getJSON(t *testing.T, hc *http.Client, u string, v any) {
	t.Helper()
	if err := json.Unmarshal([]byte(getText(t, hc, u)), v); err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
}

// goroutines reads the count from the demo's goroutine profile.
func goroutines(t *testing.T, hc *http.Client, dbg string) int {
	t.Helper()
	first, _, _ := strings.Cut(getText(t, hc, "http://"+dbg+"/debug/pprof/goroutine?debug=1"), "\n")
	n, err := strconv.Atoi(strings.TrimPrefix(first, "goroutine profile: total "))
	if err != nil {
		t.Fatalf("goroutine profile %q: %v", first, err)
	}
	return n
}

func rssKB(t *testing.T, d *demo) int {
	t.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", d.cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			n, err := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatal("no VmRSS")
	return 0
}

func openFiles(t *testing.T, d *demo) int {
	t.Helper()
	ents, err := os.ReadDir(filepath.Join("/proc", strconv.Itoa(d.cmd.Process.Pid), "fd"))
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// heapInUseKB forces a GC in the demo and reads HeapInuse from its heap
// profile.
func heapInUseKB(t *testing.T, hc *http.Client, dbg string) int {
	t.Helper()
	for _, line := range strings.Split(getText(t, hc, "http://"+dbg+"/debug/pprof/heap?gc=1&debug=1"), "\n") {
		if v, ok := strings.CutPrefix(line, "# HeapInuse = "); ok {
			n, err := strconv.Atoi(v)
			if err != nil {
				t.Fatal(err)
			}
			return n / 1024
		}
	}
	t.Fatal("no HeapInuse in the heap profile")
	return 0
}

package client

import (
	"context"
	"fmt"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/vigilhq/vigil/middleware"
)

// A node with N clients crashes and restarts at once. With the default
// backoff (full jitter over [0, 500ms) for the first attempt) the clients'
// reconnects spread over the backoff window instead of arriving together.
// The spread is measured where the backoff acts, at each client's first
// dial after the crash: arrival times at the server also hold the server's
// own queueing, which on a loaded 2-core machine bunched 200 spread dials
// into one 50ms window.
//
// timing: the server's heartbeat (1s + 2s) is far longer than the backoff
// window being measured (500ms), so no client is dropped as dead meanwhile.
func TestReconnectStormIsSpread(t *testing.T) {
	if testing.Short() {
		t.Skip("200 clients")
	}
	const N = 200
	// The server's heartbeat is far from the measurement: with fastServer's
	// 300ms, 200 clients on a loaded 2-core machine miss pongs, are dropped
	// as dead and reconnect, which muddles the count and the arrivals.
	tcfg := fastTracker()
	tcfg.TTL = 3 * time.Second
	n := newNode(t, tcfg, middleware.Config{PingInterval: time.Second, PongTimeout: 2 * time.Second}, nil)
	var wg sync.WaitGroup
	opened := make(chan struct{}, 2*N)
	clients := make([]*Client, N)
	var dialMu sync.Mutex
	var crashed time.Time
	firstDial := make([]time.Time, N) // each client's first dial after the crash
	for i := range N {
		dialer := &websocket.Dialer{NetDialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			dialMu.Lock()
			if !crashed.IsZero() && firstDial[i].IsZero() {
				firstDial[i] = time.Now()
			}
			dialMu.Unlock()
			return (&net.Dialer{}).DialContext(ctx, network, addr)
		}}
		wg.Go(func() {
			clients[i] = dialT(t, n.url(), Config{ClientID: fmt.Sprint("s", i), Dialer: dialer, OnState: func(sc StateChange) {
				if sc.To == Open {
					opened <- struct{}{}
				}
			}})
		})
	}
	wg.Wait()
	for range N {
		<-opened
	}

	dialMu.Lock()
	crashed = time.Now()
	dialMu.Unlock()
	n.crash()
	n.restart()
	timeout := time.After(20 * time.Second)
	for range N {
		select {
		case <-opened:
		case <-timeout:
			t.Fatalf("only some of %d clients reconnected", N)
		}
	}
	// A client sees its connection open a moment before the server's
	// handler records the upgrade.
	arr := n.upgrades()
	for deadline := time.Now().Add(5 * time.Second); len(arr) < N && time.Now().Before(deadline); arr = n.upgrades() {
		time.Sleep(10 * time.Millisecond)
	}
	if len(arr) < N {
		t.Fatalf("%d upgrades, want %d", len(arr), N)
	}
	dialMu.Lock()
	offs := make([]time.Duration, N)
	for i, d := range firstDial {
		if d.IsZero() {
			t.Fatalf("client %d reconnected without dialing", i)
		}
		offs[i] = d.Sub(crashed)
	}
	dialMu.Unlock()
	slices.Sort(offs)
	pct := func(p int) time.Duration { return offs[(len(offs)-1)*p/100] }
	// The most arrivals in any 50ms window.
	busiest := 0
	for i, j := 0, 0; i < len(offs); i++ {
		for offs[i]-offs[j] >= 50*time.Millisecond {
			j++
		}
		busiest = max(busiest, i-j+1)
	}
	t.Logf("%d clients, %d upgrades after the restart; first dials: first %v, p10 %v, p50 %v, p90 %v, last %v; busiest 50ms window %d",
		N, len(offs), offs[0].Round(time.Millisecond), pct(10).Round(time.Millisecond), pct(50).Round(time.Millisecond),
		pct(90).Round(time.Millisecond), offs[len(offs)-1].Round(time.Millisecond), busiest)
	// Uniform over 500ms would put N/10 in each 50ms window.
	if busiest > N/4 {
		t.Errorf("%d of %d reconnect dials within 50ms: a storm", busiest, N)
	}
	if spread := pct(90) - pct(10); spread < 250*time.Millisecond {
		t.Errorf("p10–p90 spread %v, want most of the 500ms window", spread)
	}
	// The handler records an upgrade before the Tracker records its session.
	ctx := context.Background()
	var online int
	for deadline := time.Now().Add(5 * time.Second); online != N && time.Now().Before(deadline); {
		online, _ = n.tr.Count(ctx)
		if online != N {
			time.Sleep(10 * time.Millisecond)
		}
	}
	if online != N {
		t.Errorf("%d online after the restart, want %d", online, N)
	}
	for i := range N {
		wg.Go(func() { clients[i].Close() })
	}
	wg.Wait()
}

//go:build faults && linux

package faults

import (
	"context"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/vigilhq/vigil/middleware"
	"github.com/vigilhq/vigil/presence"
	"github.com/vigilhq/vigil/store/memory"
)

// cutLog keeps the proxy_cut warnings a Server logs.
type cutLog struct {
	mu   sync.Mutex
	ages []float64
}

func (l *cutLog) Enabled(context.Context, slog.Level) bool { return true }
func (l *cutLog) WithAttrs([]slog.Attr) slog.Handler       { return l }
func (l *cutLog) WithGroup(string) slog.Handler            { return l }
func (l *cutLog) Handle(_ context.Context, r slog.Record) error {
	var event string
	var age float64
	r.Attrs(func(a slog.Attr) bool {
		switch a.Key {
		case "event":
			event = a.Value.String()
		case "age_s":
			age = a.Value.Float64()
		}
		return true
	})
	if event == "proxy_cut" {
		l.mu.Lock()
		l.ages = append(l.ages, age)
		l.mu.Unlock()
	}
	return nil
}

func (l *cutLog) warnings() []float64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]float64(nil), l.ages...)
}

// The server diagnoses the proxy in front cutting its connections (issue
// 15 §3): behind the real nginx (proxy_read_timeout 3s) with a ping
// interval of 5s, quiet connections are cut at about 3s, and the Server
// logs one proxy_cut warning naming 3s; with a 1s ping interval none is
// cut and nothing is logged; clients that vanish at scattered ages (direct,
// no proxy) are not mistaken for a proxy.
//
// timing: PingInterval against nginx's proxy_read_timeout (3s): 5s, longer,
// lets nginx cut; 1s, shorter, keeps the connections open. TTL ≥
// PingInterval + PongTimeout in both.
func TestNginxProxyCutDiagnosed(t *testing.T) {
	t.Parallel()
	const clients = 6
	node := func(t *testing.T, ping time.Duration) (*node, *cutLog) {
		log := &cutLog{}
		n := memNode(t, memory.Config{},
			presence.Config{TTL: ping + 5*time.Second, Grace: 200 * time.Millisecond, SweepInterval: 100 * time.Millisecond},
			middleware.Config{PingInterval: ping, PongTimeout: 5 * time.Second, Logger: slog.New(log)}, nil)
		return n, log
	}
	t.Run("proxy cuts", func(t *testing.T) {
		t.Parallel()
		n, log := node(t, 5*time.Second)
		for i := range clients {
			dialClient(t, viaNginx(t, n, "quiet"+string(rune('a'+i))), quietClient())
		}
		deadline := time.Now().Add(nginxReadTimeout + 10*time.Second)
		for len(log.warnings()) == 0 && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
		}
		w := log.warnings()
		if len(w) != 1 {
			t.Fatalf("proxy_cut warnings %v, want one", w)
		}
		if w[0] < 2.5 || w[0] > 4 {
			t.Errorf("proxy_cut names %vs, want about %v", w[0], nginxReadTimeout)
		}
		t.Logf("FIGURE proxy-cut: %d quiet connections behind proxy_read_timeout %v, ping 5s: one warning naming %vs", clients, nginxReadTimeout, w[0])
	})
	t.Run("pings keep them open", func(t *testing.T) {
		t.Parallel()
		n, log := node(t, time.Second)
		var ws []*watched
		for i := range clients {
			ws = append(ws, dialClient(t, viaNginx(t, n, "kept"+string(rune('a'+i))), quietClient()))
		}
		time.Sleep(3 * nginxReadTimeout) // not synchronisation: nginx would have cut them twice over
		if w := log.warnings(); len(w) != 0 {
			t.Errorf("proxy_cut warnings %v with pings every second, want none", w)
		}
		for _, c := range ws {
			select {
			case st := <-c.states:
				t.Errorf("a connection changed state: %v -> %v (%v)", st.From, st.To, st.Err)
			default:
			}
		}
	})
	t.Run("churn is not a proxy", func(t *testing.T) {
		t.Parallel()
		n, log := node(t, 5*time.Second)
		var wg sync.WaitGroup
		for i := range 8 {
			wg.Go(func() {
				c, _, err := websocket.DefaultDialer.Dial("ws://"+n.addr()+"/ws?id=churn"+string(rune('a'+i)), nil)
				if err != nil {
					t.Error(err)
					return
				}
				time.Sleep(time.Duration(500+1300*i) * time.Millisecond) // not synchronisation: scattered ages
				_ = c.NetConn().(*net.TCPConn).SetLinger(0)
				_ = c.NetConn().Close() // vanish: no close frame
			})
		}
		wg.Wait()
		deadline := time.Now().Add(5 * time.Second)
		for n.srv.Stats().Open != 0 && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
		}
		if w := log.warnings(); len(w) != 0 {
			t.Errorf("proxy_cut warnings %v from clients vanishing at scattered ages, want none", w)
		}
		if got := n.srv.Stats().Closes[1006]; got != 8 {
			t.Errorf("%d connections ended with 1006, want 8", got)
		}
	})
}

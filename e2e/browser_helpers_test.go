//go:build browser

package e2e

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// Helpers that only the browser tests use: the demo's restart and presence,
// and a cable to unplug.

// stop sends SIGTERM and waits for the process to exit.
func (d *demo) stop() {
	d.cmd.Process.Signal(syscall.SIGTERM)
	<-d.done
	d.cmd.Wait()
}

// restart starts the demo again on the same address.
func (d *demo) restart() *demo {
	d.t.Helper()
	var nd *demo
	for i := 0; ; i++ { // the port may take a moment to be free again
		ln, err := net.Listen("tcp", d.addr)
		if err == nil {
			ln.Close()
			break
		}
		if i == 100 {
			d.t.Fatalf("port of %s not free: %v", d.addr, err)
		}
		<-time.After(10 * time.Millisecond)
	}
	nd = startDemo(d.t, d.addr, d.args...)
	return nd
}

// presence returns GET /presence/{id} of the demo.
func (d *demo) presence(t *testing.T, id string) (online bool, sessions int) {
	t.Helper()
	res, err := http.Get(d.url("/presence/" + id))
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	if res.StatusCode == 404 {
		return false, 0
	}
	var p struct {
		Online   bool `json:"online"`
		Sessions int  `json:"sessions"`
	}
	if err := json.Unmarshal(body, &p); err != nil {
		t.Fatalf("presence %s: %s", id, body)
	}
	return p.Online, p.Sessions
}

// waitServer polls the demo's presence of id until it is want.
func (d *demo) waitPresence(t *testing.T, id string, want bool, within time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		if on, _ := d.presence(t, id); on == want {
			return time.Since(start)
		}
		if time.Since(start) > within {
			t.Fatalf("%s online=%v not reached within %v", id, want, within)
		}
		<-time.After(20 * time.Millisecond)
	}
}

// cable is a TCP proxy in front of the demo that the test can unplug:
// while cut, bytes on every connection, old and new, are dropped in both
// directions without closing anything, as a pulled cable or a dead Wi-Fi
// does. (DevTools' offline emulation alone leaves open WebSockets working.)
type cable struct {
	ln  net.Listener
	cut atomic.Bool
	wg  sync.WaitGroup

	mu    sync.Mutex
	conns []net.Conn
}

func newCable(t *testing.T, to string) *cable {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c := &cable{ln: ln}
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		for {
			in, err := ln.Accept()
			if err != nil {
				return
			}
			out, err := net.Dial("tcp", to)
			if err != nil {
				in.Close()
				continue
			}
			c.mu.Lock()
			c.conns = append(c.conns, in, out)
			c.mu.Unlock()
			c.wg.Add(2)
			go c.pipe(in, out)
			go c.pipe(out, in)
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		c.mu.Lock()
		for _, x := range c.conns {
			x.Close()
		}
		c.mu.Unlock()
		c.wg.Wait()
	})
	return c
}

func (c *cable) pipe(dst, src net.Conn) {
	defer c.wg.Done()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 && !c.cut.Load() {
			if _, err := dst.Write(buf[:n]); err != nil {
				return
			}
		}
		if err != nil {
			if tc, ok := dst.(*net.TCPConn); ok && !c.cut.Load() {
				tc.CloseWrite()
			}
			return
		}
	}
}

func (c *cable) url(path string) string { return "http://" + c.ln.Addr().String() + path }

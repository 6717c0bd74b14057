// Command faultclient runs one wsclient (a reconnecting WebSocket client
// with a silence watchdog) and prints each state change as a JSON line on
// stdout. The disconnect suite runs it inside a network namespace with
// `ip netns exec`. It exits when its stdin closes, so it never outlives the
// test that started it.
package main

import (
	"encoding/json"
	"flag"
	"io"
	"os"
	"time"

	"github.com/vigilhq/vigil/faults/internal/wsclient"
)

// line is one state change, as printed.
type line struct {
	Kind     wsclient.Kind `json:"kind"`
	SilentMS int64         `json:"silent_ms,omitempty"`
	Code     int           `json:"code,omitempty"`
	Status   int           `json:"status,omitempty"`
	Err      string        `json:"err,omitempty"`
}

func main() {
	url := flag.String("url", "", "WebSocket URL")
	timeout := flag.Duration("timeout", 2*time.Second, "silence after which the connection is dead")
	dialTimeout := flag.Duration("dial-timeout", time.Second, "dial and handshake timeout")
	minBackoff := flag.Duration("min-backoff", 100*time.Millisecond, "shortest reconnect delay")
	maxBackoff := flag.Duration("max-backoff", time.Second, "longest reconnect delay")
	flag.Parse()
	c := wsclient.Start(wsclient.Config{
		URL: *url, Timeout: *timeout, DialTimeout: *dialTimeout,
		MinBackoff: *minBackoff, MaxBackoff: *maxBackoff,
	})
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		c.Close()
	}()
	enc := json.NewEncoder(os.Stdout)
	for st := range c.States() {
		l := line{Kind: st.Kind, SilentMS: st.Silent.Milliseconds(), Code: st.Code, Status: st.Status}
		if st.Err != nil {
			l.Err = st.Err.Error()
		}
		_ = enc.Encode(l)
	}
}

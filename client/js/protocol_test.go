package js_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"testing"

	"github.com/vigilhq/vigil/client"
)

var update = flag.Bool("update", false, "rewrite testdata/protocol.json from the Go client's constants")

// protocol is what vigil.js shares with the Go client (itself pinned to the
// server by client's TestProtocolMatchesServer): the defaults, in
// milliseconds, and the reconnect decision per close code.
type protocol struct {
	Defaults  map[string]any  `json:"defaults"`
	Retryable map[string]bool `json:"retryable"`
}

// TestProtocolFile keeps testdata/protocol.json equal to the Go client's
// constants; vigil.test.js checks vigil.js against the same file. A change
// on either side fails one of the two until both agree (go test -update
// rewrites the file after a deliberate change on the Go side).
func TestProtocolFile(t *testing.T) {
	ms := func(d interface{ Milliseconds() int64 }) int64 { return d.Milliseconds() }
	want := protocol{
		Defaults: map[string]any{
			"pingInterval": ms(client.DefaultPingInterval),
			"pongTimeout":  ms(client.DefaultPongTimeout),
			"backoffBase":  ms(client.DefaultBackoffBase),
			"backoffMax":   ms(client.DefaultBackoffMax),
			"stableAfter":  ms(client.DefaultStableAfter),
			"drainWindow":  ms(client.DefaultDrainWindow),
			"ping":         client.DefaultAppPing,
			"pong":         client.DefaultAppPong,
			"queue":        client.DefaultSendQueueSize,
		},
		Retryable: map[string]bool{},
	}
	for _, code := range []int{1000, 1001, 1002, 1003, 1005, 1006, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 1015,
		3000, 4000, 4001, 4002, 4499, 4500, 4501, 4502, 4999, 5000} {
		want.Retryable[itoa(code)] = client.Retryable(code)
	}
	b, err := json.MarshalIndent(want, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	b = append(b, '\n')
	const path = "testdata/protocol.json"
	if *update {
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, b) {
		t.Errorf("%s differs from the Go client's constants; if the change is deliberate, run go test -update ./client/js and make vigil.js agree (node --test client/js/vigil.test.js):\ngot:\n%s\nwant:\n%s", path, got, b)
	}
}

func itoa(n int) string {
	b, _ := json.Marshal(n)
	return string(b)
}

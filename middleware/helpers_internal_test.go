package middleware

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gorilla/websocket"

	"github.com/vigilhq/vigil/presence"
	"github.com/vigilhq/vigil/store/memory"
)

// newTestServer starts a Server with the default Config (clients identified
// by the query's id) on a memory store, serving h over HTTP; the test's
// cleanup closes them.
func newTestServer(t *testing.T, h Handler) (*Server, *httptest.Server) {
	t.Helper()
	st, _ := memory.New(memory.Config{})
	tr, err := presence.New(context.Background(), st, presence.Config{Node: "n"})
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(tr, Config{Identify: IdentifyQuery("id")})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(s.WebSocket(h))
	t.Cleanup(func() {
		ts.Close()
		_ = s.Shutdown(context.Background())
		_ = tr.Close(context.Background())
	})
	return s, ts
}

// dialTestServer opens a WebSocket to ts as client id; the test's cleanup
// closes it.
func dialTestServer(t *testing.T, ts *httptest.Server, id string) *websocket.Conn {
	t.Helper()
	ws, _, err := websocket.DefaultDialer.Dial(fmt.Sprintf("ws%s?id=%s", strings.TrimPrefix(ts.URL, "http"), id), http.Header{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ws.Close() })
	return ws
}

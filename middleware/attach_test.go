package middleware_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/vigilhq/vigil/middleware"
	"github.com/vigilhq/vigil/presence"
)

// An app's own gorilla handler gets presence, app pings and dead-peer
// detection through Attach.
func TestAttach(t *testing.T) {
	e := newEnv(t, fastTracker(), fastServer())
	up := websocket.Upgrader{}
	ts := startHTTP(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		c, err := e.srv.Attach(r, r.URL.Query().Get("id"), ws)
		if err != nil {
			ws.Close()
			return
		}
		for {
			typ, data, err := ws.ReadMessage()
			if err != nil {
				c.Finish(err)
				return
			}
			if c.Received(typ, data) {
				c.Send(middleware.MessageType(typ), data)
			}
		}
	}))
	c := mustDial(t, wsURL(ts, "/?id=legacy"))
	if ev := e.waitEvent(t, "legacy", 2*time.Second); ev.Transition != presence.Online {
		t.Fatalf("event %+v", ev)
	}
	for _, m := range []string{"ping", "hi"} {
		c.WriteMessage(websocket.TextMessage, []byte(m))
	}
	for _, want := range []string{"pong", "hi"} {
		c.SetReadDeadline(time.Now().Add(2 * time.Second))
		if _, got, err := c.ReadMessage(); err != nil || string(got) != want {
			t.Fatalf("got %q %v, want %q", got, err, want)
		}
	}
	// Stop reading: the scheduler drops the silent client, the app's read
	// fails, Finish ends the session as timed out.
	ev := e.waitEvent(t, "legacy", 2*time.Second)
	if ev.Transition != presence.Offline || ev.Reason != presence.ReasonExpired {
		t.Fatalf("event %+v, want offline timeout", ev)
	}
	// The session ends (and its event fires) just before the connection is
	// counted closed.
	st := e.srv.Stats()
	for deadline := time.Now().Add(time.Second); st.Open != 0 && time.Now().Before(deadline); st = e.srv.Stats() {
		time.Sleep(5 * time.Millisecond)
	}
	if st.Open != 0 || st.HeartbeatTimeouts != 1 {
		t.Errorf("stats %+v", st)
	}
}

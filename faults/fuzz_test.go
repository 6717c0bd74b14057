//go:build faults && linux

package faults

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/vigilhq/vigil/middleware"
	"github.com/vigilhq/vigil/presence"
	"github.com/vigilhq/vigil/store/memory"
)

// framesOf turns fuzz data into client frames: each frame is a header byte
// (FIN, RSV and opcode bits, as on the wire), a length byte and that many
// payload bytes (fewer at the end of the data); every frame is masked, so
// the server parses past the masking check and reaches the message path.
func framesOf(data []byte) []byte {
	var out []byte
	for len(data) >= 2 {
		b0, n := data[0], int(data[1])
		data = data[2:]
		n = min(n, len(data))
		f := frame(b0&0x80 != 0, b0&0x0f, data[:n])
		f[0] |= b0 & 0x70 // RSV bits
		out = append(out, f...)
		data = data[n:]
	}
	return out
}

// FuzzFrames feeds arbitrary client frames (framed=true: well-masked frames
// built from the data; false: the raw bytes) to a real server over
// loopback, after a real handshake, followed by a normal close frame. The
// server must end every such connection within its heartbeat deadline,
// never panic, and keep no connection open.
//
// timing: compressed for speed: TTL ≥ PingInterval + PongTimeout, Sweep ≪
// TTL; the frames are the subject.
func FuzzFrames(f *testing.F) {
	n := memNode(f, memory.Config{},
		presence.Config{Node: "fuzz", TTL: time.Second, Grace: -1, SweepInterval: 50 * time.Millisecond},
		middleware.Config{PingInterval: 100 * time.Millisecond, PongTimeout: 200 * time.Millisecond, ReadLimit: 512}, nil)
	f.Add(true, []byte("\x81\x05hello"))
	f.Add(true, []byte("\x81\x04ping"))
	f.Add(true, []byte("\x01\x02he\x80\x03llo"))
	f.Add(true, []byte("\x89\x00\x8a\x00\x82\x03\x00\x01\x02"))
	f.Add(true, []byte("\x81\x04\xff\xfe\xfd\xfc"))
	f.Add(true, []byte("\x88\x02\x03\xe8"))
	f.Add(true, []byte("\xc1\x01x"))
	f.Add(false, []byte("\x81\x85\x00\x00\x00\x00hello"))
	f.Add(false, []byte("\x81\xff\x7f\xff\xff\xff\xff\xff\xff\xff"))
	f.Fuzz(func(t *testing.T, framed bool, data []byte) {
		ws, st, err := dialRaw(n.addr(), "/echo?id=fuzz")
		if err != nil || ws == nil {
			t.Fatalf("dial: %d %v", st, err)
		}
		defer ws.Close()
		b := data
		if framed {
			b = framesOf(data)
		}
		_ = ws.write(append(b, frame(true, 8, []byte{0x03, 0xe8})...))
		if _, _, err := ws.closeCode(3 * time.Second); err != nil {
			t.Fatalf("connection not ended: %v", err)
		}
		ws.Close()
		eventually(t, 3*time.Second, "server forgets the connection", func() bool { return n.srv.Stats().Open == 0 })
		if p := n.srv.Stats().HandlerPanics; p != 0 {
			t.Fatalf("%d handler panics", p)
		}
	})
}

// FuzzHeartbeatRequest sends arbitrary heartbeat requests (method, query,
// content type, body) through the HTTP-heartbeat endpoint. Every answer is
// one of the documented statuses; a 200 carries the documented JSON and the
// client is then online; any other answer opens no session.
//
// timing: TTL only, long enough that no session expires during a fuzz input.
func FuzzHeartbeatRequest(f *testing.F) {
	st, err := memory.New(memory.Config{})
	if err != nil {
		f.Fatal(err)
	}
	tr, err := presence.New(context.Background(), st, presence.Config{Node: "fuzz", TTL: time.Hour})
	if err != nil {
		f.Fatal(err)
	}
	srv, err := middleware.New(tr, middleware.Config{Identify: middleware.IdentifyQuery("id"), MaxConnsPerClient: 4})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		_ = tr.Close(ctx)
	})
	h := srv.HeartbeatEndpoint()
	f.Add("POST", "id=a", "application/json", []byte(`{"session":"tab-1","ts":1700000000000}`))
	f.Add("POST", "id=a&session=t2", "text/plain", []byte(``))
	f.Add("POST", "id=b", "", []byte(`{"session":"x"} `))
	f.Add("POST", "id=%FF", "", []byte(`{}`))
	f.Add("PUT", "id=c", "", []byte(`{"session":1}`))
	f.Add("POST", "id=d", "application/json", []byte(strings.Repeat("[", 2000)))
	allowed := map[int]bool{200: true, 400: true, 401: true, 403: true, 405: true, 413: true, 429: true, 503: true}
	f.Fuzz(func(t *testing.T, method, query, ctype string, body []byte) {
		req, err := http.NewRequest(method, "/heartbeat", strings.NewReader(string(body)))
		if err != nil {
			return // not a request a client could send
		}
		req.URL.RawQuery = query
		if ctype != "" && !strings.ContainsAny(ctype, "\r\n\x00") {
			req.Header.Set("Content-Type", ctype)
		}
		before := tr.Stats().Sessions
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if !allowed[w.Code] {
			t.Fatalf("status %d: %s", w.Code, w.Body.String())
		}
		if w.Code != http.StatusOK {
			if after := tr.Stats().Sessions; after > before {
				t.Fatalf("status %d but sessions went from %d to %d", w.Code, before, after)
			}
			return
		}
		var reply struct {
			Online     bool  `json:"online"`
			IntervalMS int64 `json:"interval_ms"`
			TTLMS      int64 `json:"ttl_ms"`
		}
		if err := json.Unmarshal(w.Body.Bytes(), &reply); err != nil || !reply.Online || reply.IntervalMS <= 0 || reply.TTLMS <= 0 {
			t.Fatalf("200 with %q (%v)", w.Body.String(), err)
		}
	})
}

package middleware

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"github.com/vigilhq/vigil/presence"
	"github.com/vigilhq/vigil/store/memory"
)

func FuzzParseSession(f *testing.F) {
	for _, seed := range [][2]string{
		{``, ``}, {`{}`, ``}, {`{"session":"tab-1","ts":1700000000000}`, ``},
		{`{"session":"a"}`, `a`}, {`{"session":"a"}`, `b`}, {`null`, ``}, {`[]`, ``},
		{`{"session":"\u0000"}`, ``}, {`{"ts":"x"}`, ``}, {`{} {}`, ``}, {"  \n", "q"},
	} {
		f.Add([]byte(seed[0]), seed[1])
	}
	f.Fuzz(func(t *testing.T, body []byte, query string) {
		s, _, err := parseSession(body, query)
		if err != nil {
			return
		}
		if s != DefaultHTTPSession && presence.ValidateID(s) != nil {
			t.Fatalf("accepted invalid session %q", s)
		}
	})
}

func FuzzQueryValue(f *testing.F) {
	for _, seed := range []string{"id=alice", "a=1&id=b%20c", "id=%zz", "id", "i%64=x", "id=a+b&id=c", "&&id=", "x=1;id=2"} {
		f.Add(seed, "id")
	}
	f.Fuzz(func(t *testing.T, raw, key string) {
		got := queryValue(raw, key)
		if key == "" {
			return
		}
		vals, err := url.ParseQuery(raw)
		if err != nil {
			return
		}
		if want := vals.Get(key); got != want {
			t.Fatalf("queryValue(%q, %q) = %q, url.ParseQuery says %q", raw, key, got, want)
		}
	})
}

func FuzzIdentify(f *testing.F) {
	for _, seed := range []string{"alice", "", "a\x00b", "\xff", strings.Repeat("x", 300), "%41", "ü"} {
		f.Add(seed)
	}
	s := &Server{cfg: Config{Identify: IdentifyQuery("id")}}
	f.Fuzz(func(t *testing.T, v string) {
		r := &http.Request{URL: &url.URL{RawQuery: "id=" + url.QueryEscape(v)}, Header: http.Header{}}
		id, status, err := s.identify(r)
		switch {
		case err == nil:
			if id != v || presence.ValidateID(id) != nil {
				t.Fatalf("identified %q from %q", id, v)
			}
		case v == "":
			if status != http.StatusUnauthorized || !errors.Is(err, ErrNoIdentity) {
				t.Fatalf("empty id: %d %v", status, err)
			}
		default:
			if status != http.StatusBadRequest || presence.ValidateID(v) == nil {
				t.Fatalf("refused %q with %d %v", v, status, err)
			}
		}
	})
}

func FuzzOrigin(f *testing.F) {
	for _, seed := range [][2]string{
		{"https://app.example", "app.example"}, {"http://app.example:80", "app.example"},
		{"null", "x"}, {"https://evil.example", "app.example"}, {"http://[::1]:8080", "[::1]:8080"},
		{"http://user@app.example", "app.example"}, {"javascript:alert(1)", "x"}, {"HTTP://APP.EXAMPLE", "app.example:80"},
	} {
		f.Add(seed[0], seed[1])
	}
	oc := originChecker{}
	f.Fuzz(func(t *testing.T, o, host string) {
		r := &http.Request{Host: host, Header: http.Header{"Origin": {o}}}
		if !oc.check(r) {
			return
		}
		// Accepted: it must name the request's own host, over http.
		po, ok := parseOrigin(o)
		self, ok2 := requestOrigin(r)
		if !ok || !ok2 || po != self || po.scheme != "http" {
			t.Fatalf("accepted Origin %q for Host %q", o, host)
		}
	})
}

func FuzzPageParams(f *testing.F) {
	for _, seed := range []string{"", "limit=10", "limit=0", "limit=-1", "limit=99999999999999999999", "cursor=abc&limit=5", "limit=1e3"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		_, limit, err := pageParams(raw)
		if err == nil && (limit <= 0 || limit > MaxPageSize) {
			t.Fatalf("limit %d from %q", limit, raw)
		}
	})
}

func FuzzRoomParams(f *testing.F) {
	for _, seed := range [][2]string{
		{"general", ""}, {"", "room=general"}, {"", "room=%23random&cursor=abc&limit=10"},
		{"a/b", "limit=0"}, {"x", "limit=-1"}, {"x", "limit=1e3"}, {"", ""}, {"", "room=%00"},
		{"\xff", ""}, {"r", "cursor=" + strings.Repeat("c", 5000)}, {"r", "limit=99999"},
	} {
		f.Add(seed[0], seed[1])
	}
	f.Fuzz(func(t *testing.T, pathRoom, raw string) {
		room, cursor, limit, code, err := roomParams(pathRoom, raw)
		if err != nil {
			if code != CodeInvalidRoom && code != CodeInvalidQuery {
				t.Fatalf("error %v with code %q", err, code)
			}
			return
		}
		if presence.ValidateRoom(room) != nil {
			t.Fatalf("accepted invalid room %q", room)
		}
		if pathRoom != "" && room != pathRoom {
			t.Fatalf("room %q, want the path's %q", room, pathRoom)
		}
		if limit <= 0 || limit > MaxPageSize || len(cursor) > 4096 {
			t.Fatalf("limit %d, cursor of %d bytes", limit, len(cursor))
		}
	})
}

// lastPathValue gives the same room whether the router unescaped the
// wildcard (ServeMux) or left it as the request spelt it (chi).
func FuzzLastPathValue(f *testing.F) {
	for _, seed := range []string{"general", "a%2Fb", "%23general", "caf%C3%A9", "a%20b", "%zz", "a%252Fb", "%00", "x/y"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, seg string) {
		if seg == "" || strings.Contains(seg, "/") {
			return
		}
		u, err := url.Parse("http://h/presence/rooms/" + seg)
		if err != nil || u.EscapedPath() != "/presence/rooms/"+seg {
			return // not a segment a client would send as is
		}
		want, err := url.PathUnescape(seg)
		if err != nil {
			return
		}
		for _, routed := range []string{want, seg} { // ServeMux's, chi's
			r := &http.Request{URL: u}
			r.SetPathValue("room", routed)
			if got := lastPathValue(r, "room"); got != want {
				t.Fatalf("segment %q routed as %q: %q, want %q", seg, routed, got, want)
			}
		}
	})
}

func FuzzParseActivity(f *testing.F) {
	for _, seed := range []string{"vigil:active", "vigil:away", "vigil:away 0", "vigil:away 300000", "vigil:away 01",
		"vigil:away -1", "vigil:away 999999999999", "vigil:away 1000000000000", "vigil:busy", "vigil:", "ping", "vigil:away  5"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, msg string) {
		a, idle, err := parseActivity(msg)
		if err != nil {
			if !errors.Is(err, errActivity) {
				t.Fatalf("error %v does not match errActivity", err)
			}
			return
		}
		sa := presence.SessionActivity{ClientID: "c", SessionID: "s", Activity: a, IdleFor: idle}
		if err := sa.Validate(); err != nil {
			t.Fatalf("accepted %q as %+v, which presence refuses: %v", msg, sa, err)
		}
		// What it accepts, it writes back the same way.
		want := ActivityPrefix + string(a)
		if a == presence.ActivityAway && msg != want {
			want += " " + strconv.FormatInt(idle.Milliseconds(), 10)
		}
		if msg != want {
			t.Fatalf("accepted %q, which reads back as %q", msg, want)
		}
	})
}

func FuzzParseState(f *testing.F) {
	for _, seed := range [][2]string{
		{``, ``}, {`{"state":"away","idle_ms":5000}`, ``}, {`{"state":"active"}`, ``}, {``, `state=away&idle_ms=1`},
		{`{"state":"away"}`, `state=active`}, {`{"idle_ms":1e300}`, `state=away`}, {`{"state":null}`, ``}, {`{"idle_ms":-0}`, ``},
	} {
		f.Add([]byte(seed[0]), seed[1])
	}
	f.Fuzz(func(t *testing.T, body []byte, query string) {
		_, b, err := parseSession(body, "")
		if err != nil {
			return // the endpoint answers 400 before parseState
		}
		st, err := parseState(b, query)
		if err != nil || st == nil {
			return
		}
		sa := presence.SessionActivity{ClientID: "c", SessionID: "s", Activity: st.a, IdleFor: st.idle}
		if err := sa.Validate(); err != nil {
			t.Fatalf("accepted %+v, which presence refuses: %v", st, err)
		}
	})
}

func FuzzFeedQuery(f *testing.F) {
	for _, seed := range []string{"", "room=general", "room=a&room=b", "ids=a,b,c", "id=a%2Cb&ids=c", "ids=", "ids=a,,b",
		"room=x&ids=y", "window=250", "window=10", "window=-1", "window=1e3", "v=2", "v=1&window=99999999999999999999",
		"room=%ff", "ids=%00", "room=" + strings.Repeat("r", 300)} {
		f.Add(seed)
	}
	st, err := memory.New(memory.Config{})
	if err != nil {
		f.Fatal(err)
	}
	tr, err := presence.New(context.Background(), st, presence.Config{Node: "fuzz"})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { tr.Close(context.Background()) })
	fd, err := NewFeed(tr, FeedConfig{MaxIDs: 3})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { fd.Close() })
	f.Fuzz(func(t *testing.T, raw string) {
		q, err := url.ParseQuery(raw)
		if err != nil {
			return
		}
		fq, err := fd.parseFeedQuery(q)
		if err != nil {
			var qe *feedQueryError
			if !errors.As(err, &qe) || qe.msg == "" || codeStatus[qe.code] != qe.status {
				t.Fatalf("%q: refused with %v (%+v)", raw, err, qe)
			}
			return
		}
		if fq.window < fd.cfg.Window || fq.window > MaxFeedWindow {
			t.Fatalf("%q: window %v", raw, fq.window)
		}
		switch fq.kind {
		case scopeRoom:
			if presence.ValidateRoom(fq.room) != nil || !fq.v2 {
				t.Fatalf("%q: accepted room %q", raw, fq.room)
			}
		case scopeIDs:
			seen := map[string]bool{}
			for _, id := range fq.ids {
				if presence.ValidateID(id) != nil || seen[id] {
					t.Fatalf("%q: accepted ids %q", raw, fq.ids)
				}
				seen[id] = true
			}
			if len(fq.ids) == 0 || len(fq.ids) > fd.cfg.MaxIDs || !fq.v2 {
				t.Fatalf("%q: accepted ids %q", raw, fq.ids)
			}
		}
	})
}

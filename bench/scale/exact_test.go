//go:build bench && linux

package main

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// fakeNode serves what an exactness check reads from a demo node: the
// Count gauge on /metrics, room general's count and GET /presence, two
// clients a page.
func fakeNode(t *testing.T, count, roomCount int, listed []string) *node {
	t.Helper()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "# TYPE vigil_presence_online_clients gauge\nvigil_presence_online_clients %d\n", count)
	})
	mux.HandleFunc("GET /rooms/general", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, `{"room":"general","count":%d,"members":[]}`, roomCount)
	})
	mux.HandleFunc("GET /presence", func(w http.ResponseWriter, r *http.Request) {
		from := 0
		fmt.Sscan(r.URL.Query().Get("cursor"), &from)
		to := min(from+2, len(listed))
		var cs []string
		for _, id := range listed[from:to] {
			cs = append(cs, fmt.Sprintf(`{"id":%q,"online":true,"sessions":1}`, id))
		}
		next := ""
		if to < len(listed) {
			next = fmt.Sprint(to)
		}
		fmt.Fprintf(w, `{"clients":[%s],"next":%q}`, strings.Join(cs, ","), next)
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return &node{id: "n0", addr: strings.TrimPrefix(srv.URL, "http://")}
}

// TestNodeExact checks that the exactness check finds each kind of
// difference: a wrong Count or room count, a ghost, a missing client, a
// client listed twice.
func TestNodeExact(t *testing.T) {
	want := map[string]bool{"a": true, "b": true, "c": true}
	tests := []struct {
		name             string
		count, roomCount int
		listed           []string
		diff             string // a part of the difference reported; "" for exact
	}{
		{"exact", 3, 3, []string{"a", "b", "c"}, ""},
		{"count", 4, 3, []string{"a", "b", "c"}, "Count 4, want 3"},
		{"room count", 3, 2, []string{"a", "b", "c"}, "room general counts 2, want 3"},
		{"ghost", 3, 3, []string{"a", "b", "c", "x"}, "1 ghosts [x], 0 missing"},
		{"missing", 3, 3, []string{"a", "c"}, "0 ghosts [], 1 missing [b]"},
		{"ghost for missing", 3, 3, []string{"a", "c", "x"}, "1 ghosts [x], 1 missing [b]"},
		{"twice", 3, 3, []string{"a", "b", "b", "c"}, "gives b twice"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := &env{}
			diff, _, _ := e.nodeExact(fakeNode(t, tt.count, tt.roomCount, tt.listed), want)
			if tt.diff == "" && diff != "" {
				t.Fatalf("reported %q for an exact node", diff)
			}
			if !strings.Contains(diff, tt.diff) || (tt.diff != "" && diff == "") {
				t.Fatalf("reported %q, want it to say %q", diff, tt.diff)
			}
		})
	}
}

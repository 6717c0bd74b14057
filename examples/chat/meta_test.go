package main

import (
	"encoding/json"
	"testing"
)

// The metadata of every connection is valid JSON that carries the name
// encoding/json would: quotes, backslashes and control characters escaped,
// bytes that are not UTF-8 as U+FFFD.
func FuzzNameMeta(f *testing.F) {
	for _, s := range []string{"", "alice", `a"b\c`, "tab\there\nnl", "\x00\x1f\x7f", "héllo ✓ 😀", "bad\xff\xfeutf8", "\u2028\u2029", "</script>"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		got := nameMeta(name)
		var m struct {
			Name *string `json:"name"`
		}
		if err := json.Unmarshal(got, &m); err != nil || m.Name == nil {
			t.Fatalf("nameMeta(%q) = %s: not {\"name\": …}: %v", name, got, err)
		}
		ref, _ := json.Marshal(struct {
			Name string `json:"name"`
		}{name})
		var r struct{ Name string }
		_ = json.Unmarshal(ref, &r)
		if r.Name != *m.Name {
			t.Fatalf("nameMeta(%q) carries %q, encoding/json %q", name, *m.Name, r.Name)
		}
	})
}

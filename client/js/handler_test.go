package js

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestHandler(t *testing.T) {
	h := http.StripPrefix("/vigil", Handler())
	tests := []struct {
		path, ifNoneMatch string
		status            int
		ctype, cache      string
		body              []byte
	}{
		{"/vigil/vigil.js", "", 200, "text/javascript; charset=utf-8", "no-cache", script},
		{"/vigil/vigil.js?v=" + Version, "", 200, "text/javascript; charset=utf-8", "public, max-age=31536000, immutable", script},
		{"/vigil/vigil.js", `"` + Version + `"`, 304, "", "no-cache", nil},
		{"/vigil/vigil.d.ts", "", 200, "application/typescript; charset=utf-8", "no-cache", types},
		{"/vigil/other.js", "", 404, "", "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			r := httptest.NewRequest("GET", tt.path, nil)
			if tt.ifNoneMatch != "" {
				r.Header.Set("If-None-Match", tt.ifNoneMatch)
			}
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			res := w.Result()
			body, _ := io.ReadAll(res.Body)
			if res.StatusCode != tt.status {
				t.Fatalf("status %d, want %d", res.StatusCode, tt.status)
			}
			if tt.ctype != "" && res.Header.Get("Content-Type") != tt.ctype {
				t.Errorf("Content-Type %q, want %q", res.Header.Get("Content-Type"), tt.ctype)
			}
			if got := res.Header.Get("Cache-Control"); tt.status != 404 && got != tt.cache {
				t.Errorf("Cache-Control %q, want %q", got, tt.cache)
			}
			if tt.body != nil && !bytes.Equal(body, tt.body) {
				t.Errorf("body differs from the embedded file")
			}
		})
	}
	if len(Version) != 16 || !bytes.Contains(Script(), []byte("export class VigilSocket")) {
		t.Errorf("Version %q or Script() wrong", Version)
	}
}

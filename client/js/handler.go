package js

import (
	"bytes"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"net/http"
	"path"
	"time"
)

var (
	//go:embed vigil.js
	script []byte
	//go:embed vigil.d.ts
	types []byte
)

// Version identifies the embedded script: the first 16 hex digits of its
// SHA-256. Put it in the script's URL ("/vigil/vigil.js?v="+js.Version) and
// Handler lets browsers cache it for a year.
var Version = func() string {
	h := sha256.Sum256(script)
	return hex.EncodeToString(h[:8])
}()

// Script returns a copy of vigil.js.
func Script() []byte { return bytes.Clone(script) }

// Handler serves vigil.js (text/javascript) and vigil.d.ts at any path that
// ends in those names, and answers 404 to anything else. Responses carry an
// ETag, so browsers revalidate cheaply; a request whose "v" query parameter
// equals Version is cacheable for a year (immutable), any other must be
// revalidated. It is safe for concurrent use.
func Handler() http.Handler {
	tag := `"` + Version + `"`
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body []byte
		var ctype string
		switch path.Base(r.URL.Path) {
		case "vigil.js":
			body, ctype = script, "text/javascript; charset=utf-8"
		case "vigil.d.ts":
			body, ctype = types, "application/typescript; charset=utf-8"
		default:
			http.NotFound(w, r)
			return
		}
		h := w.Header()
		h.Set("Content-Type", ctype)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("ETag", tag)
		if r.URL.Query().Get("v") == Version {
			h.Set("Cache-Control", "public, max-age=31536000, immutable")
		} else {
			h.Set("Cache-Control", "no-cache")
		}
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(body))
	})
}

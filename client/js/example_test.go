package js_test

import (
	"net/http"

	"github.com/vigilhq/vigil/client/js"
)

func ExampleHandler() {
	mux := http.NewServeMux()
	// Serves /vigil/vigil.js and /vigil/vigil.d.ts.
	mux.Handle("GET /vigil/", js.Handler())
	// Pages that import "/vigil/vigil.js?v="+js.Version may cache it for good.
	_ = http.ListenAndServe
}

module github.com/vigilhq/vigil/e2e

go 1.26.0

// For development in this repository: the tests run against this checkout.
replace github.com/vigilhq/vigil => ../

require (
	github.com/chromedp/cdproto v0.159.0
	github.com/chromedp/chromedp v0.23.0
	github.com/gorilla/websocket v1.5.3
	github.com/vigilhq/vigil v0.0.0
	go.uber.org/goleak v1.3.0
)

require github.com/go-json-experiment/json v0.0.0-20260213210345-44df1a37e875 // indirect

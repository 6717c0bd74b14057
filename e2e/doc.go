// Package e2e holds vigil's end-to-end tests, in a Go module of its own so
// that the root module does not require their dependencies (chromedp and
// the DevTools protocol). It has no API; its tests need build tags:
//
//   - browser: the browser client (client/js's vigil.js, served by the demo
//     or by js.Handler) and the clients it must stay compatible with, in
//     headless Chromium, at shortened timings;
//   - soak: the demo (examples/chat) and a server built with the library's
//     zero-value Config, at the real default timings, for minutes of real
//     time (issue 10).
//
// Both need Debian's chromium (scripts/lib/chromium.sh installs it and
// exports CHROMIUM). scripts/test runs them.
package e2e

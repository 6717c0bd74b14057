//go:build browser || soak

package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/target"
	"github.com/chromedp/chromedp"
)

// The browser tests and the soak drive Debian's chromium headless through
// the DevTools protocol. With the browser or soak tag set they fail, never
// skip, when chromium is missing: scripts/lib/chromium.sh installs it and
// exports CHROMIUM.

func chromiumPath(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatal("chromium not found: install it (scripts/lib/chromium.sh) or set CHROMIUM")
	return ""
}

// newBrowser starts one headless chromium for the test and returns its
// context; each tab is a child context (newTab).
func newBrowser(t *testing.T) context.Context {
	t.Helper()
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromiumPath(t)),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("no-default-browser-check", true),
		chromedp.UserDataDir(t.TempDir()),
	}
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	bctx, cancelB := chromedp.NewContext(actx)
	if _, err := chromedp.Call(bctx, target.GetTargets, target.GetTargetsParams{}); err != nil { // starts the browser
		cancelB()
		cancelA()
		t.Fatalf("start chromium: %v", err)
	}
	t.Cleanup(func() {
		cancelB()
		cancelA()
	})
	return bctx
}

// newTab opens url in a new tab, after running the scripts in every new
// document; the returned function closes the tab.
func newTab(t *testing.T, browser context.Context, url string, scripts ...string) (context.Context, func()) {
	t.Helper()
	ctx, cancel := chromedp.NewContext(browser)
	for _, src := range scripts {
		if _, err := chromedp.Call(ctx, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{Source: src}); err != nil {
			cancel()
			t.Fatalf("add script: %v", err)
		}
	}
	if err := chromedp.Do(ctx, chromedp.Navigate(url)); err != nil {
		cancel()
		t.Fatalf("navigate %s: %v", url, err)
	}
	t.Cleanup(cancel)
	return ctx, cancel
}

// eval evaluates a JavaScript expression in the tab.
func eval[T any](t *testing.T, tab context.Context, expr string) T {
	t.Helper()
	ctx, cancel := context.WithTimeout(tab, 5*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

// poll evaluates a boolean expression every 20ms until it is true, and
// returns how long that took; it fails after d.
func poll(t *testing.T, tab context.Context, expr string, d time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		if eval[bool](t, tab, expr) {
			return time.Since(start)
		}
		if time.Since(start) > d {
			t.Fatalf("after %v: still not %s", d, expr)
		}
		<-time.After(20 * time.Millisecond)
	}
}

// stateIs is true when the demo page shows the vigil.js state s.
func stateIs(s string) string {
	return fmt.Sprintf(`document.getElementById("state").dataset.state === %q`, s)
}

// demo is the chat demo (examples/chat) running as a process.
type demo struct {
	t    *testing.T
	bin  string
	args []string
	addr string
	cmd  *exec.Cmd
	done chan struct{}

	mu    sync.Mutex
	lines []map[string]any
}

var buildOnce struct {
	sync.Once
	bin string
	err error
}

// startDemo builds the demo once per test binary and starts it on a free
// port (or on addr, for a restart).
func startDemo(t *testing.T, addr string, args ...string) *demo {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "vigil-chat-")
		if err != nil {
			buildOnce.err = err
			return
		}
		demoDir = dir
		buildOnce.bin = filepath.Join(dir, "chat")
		build := exec.Command("go", "build", "-o", buildOnce.bin, "./examples/chat")
		build.Dir = ".." // the root module, which holds the demo
		out, err := build.CombinedOutput()
		if err != nil {
			buildOnce.err = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildOnce.err != nil {
		t.Fatal(buildOnce.err)
	}
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	d := &demo{t: t, bin: buildOnce.bin, args: args, done: make(chan struct{})}
	d.cmd = exec.Command(d.bin, append([]string{"-addr", addr, "-log-format", "json"}, args...)...)
	stderr, err := d.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	listening := make(chan string, 1)
	go func() {
		defer close(d.done)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			var m map[string]any
			if json.Unmarshal(sc.Bytes(), &m) != nil {
				continue
			}
			d.mu.Lock()
			d.lines = append(d.lines, m)
			d.mu.Unlock()
			if m["event"] == "listening" {
				listening <- m["addr"].(string)
			}
		}
	}()
	t.Cleanup(func() { d.kill() })
	select {
	case d.addr = <-listening:
	case <-d.done:
		t.Fatal("demo exited before listening")
	case <-time.After(20 * time.Second):
		t.Fatal("demo not listening after 20s")
	}
	return d
}

func (d *demo) url(path string) string { return "http://" + d.addr + path }

func (d *demo) kill() {
	d.cmd.Process.Kill()
	<-d.done
	d.cmd.Wait()
}

// events returns the demo's log lines with event ev for client.
// eventsSoon is events, waiting up to a second for the first such line:
// the demo logs a transition from its hook, which runs after the Store
// decided it, so /presence may show it a moment before the log does.
func (d *demo) eventsSoon(ev, client string) []map[string]any {
	deadline := time.Now().Add(time.Second)
	for {
		if out := d.events(ev, client); len(out) > 0 || time.Now().After(deadline) {
			return out
		}
		time.Sleep(10 * time.Millisecond) // polling the demo's log
	}
}

func (d *demo) events(ev, client string) []map[string]any {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []map[string]any
	for _, m := range d.lines {
		if m["event"] == ev && (client == "" || m["client"] == client) {
			out = append(out, m)
		}
	}
	return out
}

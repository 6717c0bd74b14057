// Package readme checks the documentation's code: every ```go block of
// README.md and docs/*.md is a whole program (package main, its imports,
// func main) that gofmt leaves alone and that builds and vets in a module
// of its own outside the repository, requiring github.com/vigilhq/vigil
// through a replace directive to this checkout. A block that cannot be a
// program does not belong in a ```go fence: use a Go doc example
// (example_test.go) instead, where the compiler checks it.
//
// A block that imports a package of one of the repository's other modules
// (adapters/vigilgin, which requires gin, say) cannot build in a module
// that requires only the root one, with GOPROXY=off: it must be, byte for
// byte, that module's example/main.go, which the module's own vet, build
// and staticcheck (scripts/test) check.
//
// The browser snippet (```html) is checked against the routes
// middleware.Server.Mount serves.
package readme_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"go/format"
	"go/parser"
	"go/token"
	"net/http"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/vigilhq/vigil/middleware"
	"github.com/vigilhq/vigil/presence"
	"github.com/vigilhq/vigil/store/memory"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// root is the repository's root, two levels above this package.
var root = func() string {
	dir, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		panic(err)
	}
	return dir
}()

// block is one fenced code block of a Markdown file.
type block struct {
	file string // relative to root
	line int    // of the opening fence
	lang string
	text string
}

func (b block) String() string { return fmt.Sprintf("%s:%d", b.file, b.line) }

// docs returns the Markdown files checked.
func docs(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(root, "docs", "*.md"))
	if err != nil {
		t.Fatal(err)
	}
	return append([]string{filepath.Join(root, "README.md")}, files...)
}

// blocks returns the fenced blocks of the Markdown files.
func blocks(t *testing.T, lang string) []block {
	t.Helper()
	var out []block
	for _, path := range docs(t) {
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		rel, _ := filepath.Rel(root, path)
		var cur *block
		var text strings.Builder
		sc := bufio.NewScanner(bytes.NewReader(data))
		for n := 1; sc.Scan(); n++ {
			line := sc.Text()
			switch {
			case cur == nil && strings.HasPrefix(line, "```"):
				cur = &block{file: rel, line: n, lang: strings.TrimSpace(strings.TrimPrefix(line, "```"))}
				text.Reset()
			case cur != nil && strings.TrimSpace(line) == "```":
				cur.text = text.String()
				if cur.lang == lang {
					out = append(out, *cur)
				}
				cur = nil
			case cur != nil:
				text.WriteString(line + "\n")
			}
		}
		if cur != nil {
			t.Fatalf("%s: unclosed fence", cur)
		}
	}
	return out
}

// TestGoSnippetsBuild builds and vets every ```go block as a program of a
// module outside the repository.
func TestGoSnippetsBuild(t *testing.T) {
	snippets := blocks(t, "go")
	if len(snippets) < 3 {
		t.Fatalf("found %d go blocks; is the extraction broken?", len(snippets))
	}
	gomod, err := os.ReadFile(filepath.Join(root, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	goVersion := regexp.MustCompile(`(?m)^go (\S+)$`).FindSubmatch(gomod)
	if goVersion == nil {
		t.Fatal("no go directive in go.mod")
	}
	mod := t.TempDir() // outside the repository: no go.work or go.mod of ours applies
	writeFile(t, filepath.Join(mod, "go.mod"), fmt.Sprintf(`module example.com/snippets

go %s

require github.com/vigilhq/vigil v0.0.0-00010101000000-000000000000

replace github.com/vigilhq/vigil => %s
`, goVersion[1], root))
	sum, err := os.ReadFile(filepath.Join(root, "go.sum"))
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(mod, "go.sum"), string(sum))

	for i, b := range snippets {
		if nestedModule(t, b) != "" {
			continue // TestOtherModuleSnippets
		}
		if !strings.HasPrefix(b.text, "package main\n") {
			t.Errorf("%s: a go block must be a whole program starting with \"package main\" (see internal/readme)", b)
			continue
		}
		if formatted, err := format.Source([]byte(b.text)); err != nil {
			t.Errorf("%s: %v", b, err)
		} else if string(formatted) != b.text {
			t.Errorf("%s: not gofmt-ed; gofmt makes it:\n%s", b, formatted)
		}
		dir := filepath.Join(mod, fmt.Sprintf("s%02d", i))
		writeFile(t, filepath.Join(dir, "main.go"), fmt.Sprintf("//line %s:%d\n%s", filepath.Join(root, b.file), b.line+1, b.text))
	}
	if t.Failed() {
		return
	}
	for _, args := range [][]string{{"build", "-o", os.DevNull, "./..."}, {"vet", "./..."}} {
		cmd := exec.CommandContext(t.Context(), "go", args...)
		cmd.Dir = mod
		// -mod=mod lets go add the snippets' direct requirements (chi,
		// go-redis) from the build list; GOPROXY=off keeps it off the
		// network: everything comes from the module cache the root's tests
		// already filled.
		cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod", "GOPROXY=off", "GOWORK=off")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("go %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}

// modulePath is the root module's path.
const modulePath = "github.com/vigilhq/vigil"

// nestedModule returns the directory (relative to root) of the
// repository's other module whose package b imports, or "" when b imports
// only the root module's packages.
func nestedModule(t *testing.T, b block) string {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), b.String(), b.text, parser.ImportsOnly)
	if err != nil {
		t.Fatalf("%s: %v", b, err)
	}
	for _, imp := range f.Imports {
		rel, ok := strings.CutPrefix(strings.Trim(imp.Path.Value, `"`), modulePath+"/")
		for ; ok && rel != "."; rel = path.Dir(rel) {
			if _, err := os.Stat(filepath.Join(root, filepath.FromSlash(rel), "go.mod")); err == nil {
				return rel
			}
		}
	}
	return ""
}

// TestOtherModuleSnippets checks that every go block importing a package
// of another module of the repository is that module's example/main.go.
func TestOtherModuleSnippets(t *testing.T) {
	seen := map[string]bool{}
	for _, b := range blocks(t, "go") {
		dir := nestedModule(t, b)
		if dir == "" {
			continue
		}
		seen[dir] = true
		file := filepath.Join(root, filepath.FromSlash(dir), "example", "main.go")
		want, err := os.ReadFile(file)
		if err != nil {
			t.Errorf("%s imports module %s, whose example/main.go it must show: %v", b, dir, err)
			continue
		}
		if b.text != string(want) {
			t.Errorf("%s differs from %s/example/main.go (the README shows that file as it is)", b, dir)
		}
	}
	// The router adapters' sections: a README without them fails here.
	for _, dir := range []string{"adapters/vigilgin", "adapters/vigilecho"} {
		if !seen[dir] {
			t.Errorf("no go block shows %s/example/main.go", dir)
		}
	}
}

func writeFile(t *testing.T, path, data string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

// presencePath matches the vigil routes a browser snippet uses; a room's
// is /presence/rooms/${…}, a template literal's placeholder.
var presencePath = regexp.MustCompile(`/presence(/rooms/\$\{[^}]*\}|/[A-Za-z0-9._-]+)?`)

// TestBrowserSnippetRoutes checks that every /presence path of the ```html
// blocks is a route Mount serves, not one that falls to /presence/{id}.
func TestBrowserSnippetRoutes(t *testing.T) {
	ctx := context.Background()
	st, _ := memory.New(memory.Config{})
	tr, err := presence.New(ctx, st, presence.Config{Node: "n1"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Close(ctx) })
	vs, err := middleware.New(tr, middleware.Config{Identify: middleware.IdentifyCookie("session")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { vs.Shutdown(ctx) })
	mux := http.NewServeMux()
	m, err := vs.Mount(mux, "/presence", middleware.MountConfig{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })

	html := blocks(t, "html")
	if len(html) == 0 {
		t.Fatal("no html block in README.md")
	}
	seen := 0
	for _, b := range html {
		for _, path := range presencePath.FindAllString(b.text, -1) {
			seen++
			want := path
			if strings.HasPrefix(path, "/presence/rooms/${") {
				path, want = "/presence/rooms/general", "/presence/rooms/{room}"
			}
			req, _ := http.NewRequest("GET", path, nil)
			if _, pattern := mux.Handler(req); pattern != want {
				t.Errorf("%s: %s is served by %q, not a route of its own", b, path, pattern)
			}
		}
	}
	if seen == 0 {
		t.Error("the html blocks use no /presence route")
	}
}

package timing_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// timingFields are the Config fields of vigil's packages that set a time.
var timingFields = map[string]bool{
	"PingInterval": true, "PongTimeout": true, "WriteTimeout": true, "IdleTimeout": true,
	"TTL": true, "Grace": true, "SweepInterval": true, "DrainWindow": true, "HookTimeout": true,
	"KeepAlive": true, "Window": true, "BackoffBase": true, "BackoffMax": true, "StableAfter": true,
}

// configPkgs are the packages whose Config has those fields.
var configPkgs = map[string]bool{"middleware": true, "presence": true, "client": true}

var marker = regexp.MustCompile(`\btiming:`)

// TestTimingRule enforces STYLE.md §5 ("Timings keep the defaults'
// relations") on every test of the repository: a Config literal of
// middleware, presence or client that sets a timing to a value written in
// the test (not one of Scale's) sits in a function or declaration whose
// comments say, after "timing:", which relation between timings it keeps or
// tests. A suite whose timings were each compressed on their own once hid a
// defect that only the defaults' relations showed (issue 10).
func TestTimingRule(t *testing.T) {
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	var bad []string
	checked := 0
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			switch d.Name() {
			case ".git", "testdata", "node_modules":
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, "_test.go") || strings.HasPrefix(path, filepath.Join(root, "internal", "timing")) {
			return nil
		}
		src, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		fset := token.NewFileSet()
		f, err := parser.ParseFile(fset, path, src, parser.ParseComments)
		if err != nil {
			return err
		}
		checked++
		rel, _ := filepath.Rel(root, path)
		for _, l := range unexplained(fset, f) {
			bad = append(bad, rel+":"+l)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if checked < 20 {
		t.Fatalf("checked %d test files: the walk missed the repository", checked)
	}
	for _, b := range bad {
		t.Errorf("%s by hand, with no \"timing:\" comment naming the relation it keeps or tests: use internal/timing.Scale, or say which relation", b)
	}
}

// unexplained returns the lines of f's Config literals that set timings by
// hand outside any declaration whose comments carry the marker.
func unexplained(fset *token.FileSet, f *ast.File) []string {
	// The comment groups inside each top-level declaration, and its doc.
	explained := func(decl ast.Decl) bool {
		for _, cg := range f.Comments {
			if cg.Pos() >= decl.Pos() && cg.End() <= decl.End() && marker.MatchString(cg.Text()) {
				return true
			}
		}
		var doc *ast.CommentGroup
		switch d := decl.(type) {
		case *ast.FuncDecl:
			doc = d.Doc
		case *ast.GenDecl:
			doc = d.Doc
		}
		return doc != nil && marker.MatchString(doc.Text())
	}
	var out []string
	for _, decl := range f.Decls {
		if explained(decl) {
			continue
		}
		var fields []string
		ast.Inspect(decl, func(n ast.Node) bool {
			cl, ok := n.(*ast.CompositeLit)
			if !ok || !isConfig(cl.Type, f.Name.Name) {
				return true
			}
			for _, e := range cl.Elts {
				kv, ok := e.(*ast.KeyValueExpr)
				if !ok {
					continue
				}
				if k, ok := kv.Key.(*ast.Ident); ok && timingFields[k.Name] && byHand(kv.Value) {
					fields = append(fields, strconv.Itoa(fset.Position(kv.Pos()).Line)+" "+k.Name)
				}
			}
			return true
		})
		if len(fields) > 0 {
			out = append(out, strconv.Itoa(fset.Position(decl.Pos()).Line)+": "+declName(decl)+" sets "+strings.Join(fields, ", "))
		}
	}
	return out
}

// isConfig reports whether typ names middleware.Config, presence.Config or
// client.Config (or Config inside one of those packages' own tests).
func isConfig(typ ast.Expr, pkg string) bool {
	switch t := typ.(type) {
	case *ast.SelectorExpr:
		x, ok := t.X.(*ast.Ident)
		return ok && t.Sel.Name == "Config" && configPkgs[x.Name]
	case *ast.Ident:
		return t.Name == "Config" && configPkgs[strings.TrimSuffix(pkg, "_test")]
	}
	return false
}

// byHand reports whether v is a duration written in the test: a literal,
// a time unit or a name (a constant or variable of the test), rather than a
// field of a timing.Scaled value or a package default.
func byHand(v ast.Expr) bool {
	hand := false
	ast.Inspect(v, func(n ast.Node) bool {
		switch n := n.(type) {
		case *ast.BasicLit:
			hand = hand || n.Value != "0"
		case *ast.SelectorExpr:
			if x, ok := n.X.(*ast.Ident); ok {
				if x.Name == "time" {
					hand = true
				}
				return false // sc.PingInterval, middleware.DefaultPingInterval
			}
		case *ast.Ident:
			hand = true // a constant or variable of the test
		case *ast.UnaryExpr:
			if n.Op == token.SUB { // -1: "off"
				return false
			}
		}
		return true
	})
	return hand
}

func declName(d ast.Decl) string {
	if fd, ok := d.(*ast.FuncDecl); ok {
		return fd.Name.Name
	}
	return "a declaration"
}

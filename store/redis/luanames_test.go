package redis

import (
	"go/ast"
	"go/importer"
	"go/parser"
	"go/token"
	"go/types"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"unicode"

	"github.com/vigilhq/vigil/presence"
)

// luaTables pairs each Lua table naming positions with the constants of
// luanames.go that name the same positions: the constants whose names
// start with prefix (but not with another block's longer prefix), their
// rest in snake case, each at its value plus offset.
type luaTable struct {
	file, table, prefix string
	offset              int64
}

var luaTables = []luaTable{
	{"add.lua", "A", "addArg", 0},
	{"add.lua", "NO", "addRefused", 0},
	{"end.lua", "A", "endArg", 0},
	{"sweep.lua", "A", "sweepArg", 0},
	{"sweep.lua", "SB", "sweepBucket", 0},
	{"list.lua", "A", "listArg", 0},
	{"sessions.lua", "A", "sessionsArg", 0},
	{"touch.lua", "A", "touchArg", 0},
	{"touch.lua", "BH", "touchBucket", 0},
	{"touch.lua", "R", "touchRefresh", 0},
	{"touch.lua", "RI", "touchRefreshItem", 0},
	{"touch.lua", "FH", "touchFulls", 0},
	{"touch.lua", "FI", "touchFull", 0},
	{"common.lua", "EV", "event", 1},
	{"rooms.lua", "A", "roomsArg", 0},
	{"rooms.lua", "ST", "roomsStatus", 0},
	{"members.lua", "A", "membersArg", 0},
	{"among.lua", "A", "amongArg", 0},
	{"among.lua", "AI", "amongItem", 0},
	{"nodes.lua", "A", "nodesArg", 0},
	{"lease.lua", "A", "leaseArg", 0},
}

// goNames evaluates the constants of luanames.go.
func goNames(t *testing.T) map[string]int64 {
	t.Helper()
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, "luanames.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	pkg, err := (&types.Config{Importer: importer.Default()}).Check("redis", fset, []*ast.File{f}, nil)
	if err != nil {
		t.Fatal(err)
	}
	out := make(map[string]int64)
	for _, name := range pkg.Scope().Names() {
		c, ok := pkg.Scope().Lookup(name).(*types.Const)
		if !ok {
			continue
		}
		v, _ := strconv.ParseInt(c.Val().ExactString(), 10, 64)
		out[name] = v
	}
	return out
}

// snake turns a Go name's rest into the Lua name: "KnownGen" -> "known_gen",
// "TTL" -> "ttl".
func snake(s string) string {
	var b strings.Builder
	rs := []rune(s)
	for i, r := range rs {
		if unicode.IsUpper(r) && i > 0 && (unicode.IsLower(rs[i-1]) || i+1 < len(rs) && unicode.IsLower(rs[i+1])) {
			b.WriteByte('_')
		}
		b.WriteRune(unicode.ToLower(r))
	}
	return b.String()
}

var (
	luaTableRE = regexp.MustCompile(`(?s)\blocal (\w+) = \{([^}]*)\}`)
	luaEntryRE = regexp.MustCompile(`(\w+) = (\d+|'[^']*')`)
	luaArgvRE  = regexp.MustCompile(`ARGV\[([^\]]*)\]`)
	luaIndexRE = regexp.MustCompile(`^(?:\w+ \+ )?([A-Z]+)\.(\w+)$`)
)

// luaNames returns the tables of one Lua file: name -> entry -> value (a
// number, or a quoted string as written).
func luaNames(t *testing.T, src string) map[string]map[string]string {
	t.Helper()
	out := make(map[string]map[string]string)
	for _, m := range luaTableRE.FindAllStringSubmatch(src, -1) {
		entries := make(map[string]string)
		for _, e := range luaEntryRE.FindAllStringSubmatch(m[2], -1) {
			entries[e[1]] = e[2]
		}
		out[m[1]] = entries
	}
	return out
}

func luaSource(t *testing.T, name string) string {
	t.Helper()
	b, err := luaFS.ReadFile("lua/" + name)
	if err != nil {
		t.Fatal(err)
	}
	// Leave out comments: they may mention ARGV[n].
	var lines []string
	for line := range strings.Lines(string(b)) {
		if i := strings.Index(line, "--"); i >= 0 {
			line = line[:i]
		}
		lines = append(lines, line)
	}
	return strings.Join(lines, "\n")
}

// TestLuaNames checks that the Lua scripts and luanames.go name the same
// positions alike: each table of a script (ARGV positions, reply fields)
// has exactly the names of its block of constants, at the same positions;
// common.lua's K names the keys of a bucket by their suffixes in
// keySuffixes, in order; and the scripts read ARGV only at a position a
// table names (ARGV[A.name], or ARGV[base + T.name] in a repeated block).
func TestLuaNames(t *testing.T) {
	consts := goNames(t)
	for _, tc := range luaTables {
		t.Run(tc.file+"/"+tc.table, func(t *testing.T) {
			want := make(map[string]string)
			for name, v := range consts {
				rest, ok := strings.CutPrefix(name, tc.prefix)
				if !ok || rest == "" || !unicode.IsUpper(rune(rest[0])) {
					continue
				}
				if slices.ContainsFunc(luaTables, func(o luaTable) bool {
					return len(o.prefix) > len(tc.prefix) && strings.HasPrefix(name, o.prefix)
				}) {
					continue // another block's
				}
				want[snake(rest)] = strconv.FormatInt(v+tc.offset, 10)
			}
			got := luaNames(t, luaSource(t, tc.file))[tc.table]
			if len(want) == 0 || !maps.Equal(got, want) {
				t.Errorf("lua/%s table %s = %v; luanames.go's %s... = %v", tc.file, tc.table, got, tc.prefix, want)
			}
		})
	}
	t.Run("common.lua/K", func(t *testing.T) {
		want := make(map[string]string)
		for i, suf := range keySuffixes {
			want[strings.TrimPrefix(suf, ":")] = strconv.Itoa(i + 1)
		}
		if got := luaNames(t, luaSource(t, "common.lua"))["K"]; !maps.Equal(got, want) {
			t.Errorf("lua/common.lua table K = %v; keySuffixes by position = %v", got, want)
		}
	})
	entries, err := luaFS.ReadDir("lua")
	if err != nil {
		t.Fatal(err)
	}
	common := luaNames(t, luaSource(t, "common.lua"))
	for _, e := range entries {
		src := luaSource(t, e.Name())
		tables := luaNames(t, src)
		maps.Copy(tables, common)
		for _, m := range luaArgvRE.FindAllStringSubmatch(src, -1) {
			idx := luaIndexRE.FindStringSubmatch(strings.TrimSpace(m[1]))
			if idx == nil {
				t.Errorf("lua/%s: ARGV[%s] is at no named position", e.Name(), m[1])
				continue
			}
			if _, ok := tables[idx[1]][idx[2]]; !ok {
				t.Errorf("lua/%s: ARGV[%s]: table %s has no %q", e.Name(), m[1], idx[1], idx[2])
			}
		}
	}
}

// TestLuaMaxRooms checks that the scripts that refuse a session more rooms
// than presence.MaxRoomsPerSession use its value.
func TestLuaMaxRooms(t *testing.T) {
	re := regexp.MustCompile(`(?m)^local MAX_ROOMS = (\d+)$`)
	for _, name := range []string{"add.lua", "rooms.lua"} {
		m := re.FindStringSubmatch(luaSource(t, name))
		if m == nil || m[1] != strconv.Itoa(presence.MaxRoomsPerSession) {
			t.Errorf("lua/%s: MAX_ROOMS %v, want presence.MaxRoomsPerSession (%d)", name, m, presence.MaxRoomsPerSession)
		}
	}
}

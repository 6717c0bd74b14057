package redis

import (
	"cmp"
	"context"
	"embed"
	"errors"
	"sync"

	goredis "github.com/redis/go-redis/v9"
)

//go:embed lua/*.lua
var luaFS embed.FS

// The store's scripts, each lua/common.lua followed by its own file. They
// run by SHA (EVALSHA); a server that does not know one (first use, or a
// restart flushed its script cache) gets it again through EVAL.
var (
	scriptAdd      = newScript("add.lua")
	scriptTouch    = newScript("touch.lua")
	scriptEnd      = newScript("end.lua")
	scriptSweep    = newScript("sweep.lua")
	scriptSessions = newScript("sessions.lua")
	scriptList     = newScript("list.lua")
	scriptRooms    = newScript("rooms.lua")
	scriptMembers  = newScript("members.lua")
	scriptAmong    = newScript("among.lua")
	scriptNodes    = newBareScript("nodes.lua")
	scriptLease    = newBareScript("lease.lua")
)

// newBareScript is a script without lua/common.lua: for the small calls of
// the background work (schedule.go), which read no bucket's data.
func newBareScript(name string) *goredis.Script {
	return goredis.NewScript(luaFile(name))
}

// newScript is a script with lua/common.lua before it.
func newScript(name string) *goredis.Script {
	return goredis.NewScript(luaFile("common.lua") + "\n" + luaFile(name))
}

// luaFile returns the embedded lua/name; it panics if there is none.
func luaFile(name string) string {
	body, err := luaFS.ReadFile("lua/" + name)
	if err != nil {
		panic(err)
	}
	return string(body)
}

// argv is the ARGV of one script call, set by the positions luanames.go
// names (which count from 1, as in Lua).
type argv []any

func newArgv(n int) argv { return make(argv, n) }

// set puts v at position pos (from 1) and returns a.
func (a argv) set(pos int, v any) argv {
	a[pos-1] = v
	return a
}

// call is one script invocation of a batch.
type call struct {
	keys []string
	args []any
}

// runAll runs script once per call, in one pipeline when there are several
// (go-redis splits a Cluster pipeline by shard and sends the parts in
// parallel). Calls that found the script missing are run again one by one
// through EVAL. It returns the replies in order (nil for a call that
// failed) and the first error: a batch that fails half way still reports
// what the calls that ran decided.
func (s *Store) runAll(ctx context.Context, script *goredis.Script, calls []call) ([]any, error) {
	out := make([]any, len(calls))
	if len(calls) == 0 {
		return out, nil
	}
	if len(calls) == 1 {
		v, err := script.Run(ctx, s.rdb, calls[0].keys, calls[0].args...).Result()
		s.out.observe(ctx, err)
		out[0] = v
		return out, err
	}
	pipe := s.rdb.Pipeline()
	cmds := make([]*goredis.Cmd, len(calls))
	for i, c := range calls {
		cmds[i] = script.EvalSha(ctx, pipe, c.keys, c.args...)
	}
	_, _ = pipe.Exec(ctx) // errors are read per command below
	var first error
	for i, cmd := range cmds {
		v, err := cmd.Result()
		if err != nil && goredis.HasErrorPrefix(err, "NOSCRIPT") {
			v, err = script.Run(ctx, s.rdb, calls[i].keys, calls[i].args...).Result()
		}
		if err != nil {
			first = cmp.Or(first, err)
			continue
		}
		out[i] = v
	}
	s.out.observe(ctx, first)
	return out, first
}

// runConcurrent runs script n times, at most parallel calls at a time, each
// on a connection of its own from the client's pool; build(i) makes call i
// just before it is sent, so building the next calls overlaps with Redis
// running the earlier ones. It returns what runAll returns.
func (s *Store) runConcurrent(ctx context.Context, script *goredis.Script, n, parallel int, build func(i int) call) ([]any, error) {
	out := make([]any, n)
	if n == 0 {
		return out, nil
	}
	errs := make([]error, n)
	sem := make(chan struct{}, parallel)
	var wg sync.WaitGroup
	for i := range n {
		c := build(i)
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			out[i], errs[i] = script.Run(ctx, s.rdb, c.keys, c.args...).Result()
		}()
	}
	wg.Wait()
	var first error
	for i, err := range errs {
		if err != nil {
			out[i] = nil
			first = cmp.Or(first, err)
		}
	}
	s.out.observe(ctx, first)
	return out, first
}

// exec runs pipe and notes whether Redis answered.
func (s *Store) exec(ctx context.Context, pipe goredis.Pipeliner) error {
	if pipe.Len() == 0 {
		return nil // no I/O: tells nothing
	}
	_, err := pipe.Exec(ctx)
	s.out.observe(ctx, err)
	return err
}

// errReply reports a script reply of an unexpected shape: a bug, or keys of
// the namespace written by something else.
var errReply = errors.New("redis: unexpected reply")

package redis

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/vigilhq/vigil/presence"
)

// maxReclaimed bounds the reclaimed transitions a Store holds for Reclaim.
// Past it they stay pending in Redis, under this Store's consumer name, and
// are reclaimed again after Config.ReclaimAfter.
const maxReclaimed = 10_000

// readCount bounds the entries Read takes from one bucket's journal.
const readCount = 1000

// events decodes the transitions of a script reply and remembers their
// journal entries for Ack.
func (s *Store) events(b int, v []any) ([]presence.Event, error) {
	var evs []presence.Event
	for len(v) >= nEventFields {
		ev, eid, err := decodeEvent(v[:nEventFields])
		if err != nil {
			return evs, err
		}
		evs = append(evs, ev)
		s.addPending(b, ev, eid)
		s.decided(b, ev)
		v = v[nEventFields:]
	}
	return evs, nil
}

func (s *Store) addPending(b int, ev presence.Event, eid string) {
	if s.cfg.ReclaimAfter < 0 || eid == "" {
		return
	}
	s.journalMu.Lock()
	s.pending[ev.ID()] = pendingEntry{bucket: b, id: eid, at: time.Now()}
	s.journalMu.Unlock()
}

// prunePending forgets entries never acknowledged (their caller does not
// Ack, or is gone): Redis has made them reclaimable long since.
func (s *Store) prunePending() {
	if s.cfg.ReclaimAfter < 0 {
		return
	}
	limit := 2*s.cfg.ReclaimAfter + time.Minute
	s.journalMu.Lock()
	for id, p := range s.pending {
		if time.Since(p.at) > limit {
			delete(s.pending, id)
		}
	}
	s.journalMu.Unlock()
}

func (s *Store) stashReclaimed(ctx context.Context, evs []presence.Event) {
	s.log.LogAttrs(ctx, slog.LevelWarn, "redis: reclaimed unacknowledged transitions", slog.Int("events", len(evs)))
	s.journalMu.Lock()
	room := maxReclaimed - len(s.reclaimed)
	s.reclaimed = append(s.reclaimed, evs[:min(room, len(evs))]...)
	s.journalMu.Unlock()
}

// Ack implements presence.Journal: it acknowledges the journal entries of
// events this Store returned, one XACK per bucket, pipelined. Events it
// does not know (already acknowledged, or from another Store) are skipped.
func (s *Store) Ack(ctx context.Context, evs []presence.Event) error {
	if s.cfg.ReclaimAfter < 0 || len(evs) == 0 {
		return nil
	}
	byBucket := make(map[int][]string)
	s.journalMu.Lock()
	for _, ev := range evs {
		if p, ok := s.pending[ev.ID()]; ok {
			byBucket[p.bucket] = append(byBucket[p.bucket], p.id)
		}
	}
	s.journalMu.Unlock()
	if len(byBucket) == 0 {
		return nil
	}
	pipe := s.rdb.Pipeline()
	for b, ids := range byBucket {
		pipe.XAck(ctx, s.buckets[b][keyJournal], "hooks", ids...)
	}
	if err := s.exec(ctx, pipe); err != nil {
		return fmt.Errorf("redis: ack %d events: %w", len(evs), err)
	}
	s.journalMu.Lock()
	for _, ev := range evs {
		delete(s.pending, ev.ID())
	}
	s.journalMu.Unlock()
	return nil
}

// Reclaim implements presence.Journal: it hands out the transitions that
// earlier Sweeps claimed because their first claimer never acknowledged
// them within Config.ReclaimAfter. It does no I/O.
func (s *Store) Reclaim(ctx context.Context) ([]presence.Event, error) {
	s.journalMu.Lock()
	evs := s.reclaimed
	s.reclaimed = nil
	s.journalMu.Unlock()
	return evs, nil
}

// Read implements presence.Journal: it returns the transitions recorded
// in every bucket's journal after cursor. Each event's Node is the node
// that decided it when the deciding call named one (Add, End of a node),
// else empty.
//
// On a Cluster each Read is one XREAD per bucket, pipelined. On a single
// server, a Read reads once (one XREAD of every bucket) and leaves a
// goroutine blocked in XREAD on one connection it keeps from the client's
// pool, which gathers what comes next; the next Read from where this one
// ended returns it without a round trip. The XREAD times out every 10s (2s
// where the ACL denies the client CLIENT UNBLOCK, by which Close ends it
// at once, or where the client's pool has fewer than 4 connections: then
// it blocks on one of the pool's at a time, as before). The goroutine
// ends when Read was not called for a few seconds (at its XREAD's next
// turn), when the client is closed, or at Close. So a node that watches
// the journal costs Redis one XREAD every 10s while no transition
// happens, where polling cost a round trip per Read.
func (s *Store) Read(ctx context.Context, cursor string) ([]presence.Event, string, error) {
	if cursor == "" {
		return s.readStart(ctx)
	}
	if s.single {
		if evs, next, ok, err := s.tail.take(cursor); ok {
			if err == nil {
				s.startTail(ctx, next, false)
			}
			return evs, next, err
		}
	}
	evs, next, err := s.poll(ctx, cursor)
	if err == nil && s.single {
		s.startTail(ctx, next, true)
	}
	return evs, next, err
}

// poll is Read without the tail: one XREAD on a single server, one per
// bucket, pipelined, on a Cluster.
func (s *Store) poll(ctx context.Context, cursor string) ([]presence.Event, string, error) {
	ids, err := decodeJournalCursor(cursor, len(s.buckets))
	if err != nil {
		return nil, "", err
	}
	var cmds []*goredis.XStreamSliceCmd
	pipe := s.rdb.Pipeline()
	if s.single {
		streams := make([]string, 0, 2*len(ids))
		for b := range ids {
			streams = append(streams, s.buckets[b][keyJournal])
		}
		for _, id := range ids {
			streams = append(streams, id.String())
		}
		cmds = append(cmds, pipe.XRead(ctx, &goredis.XReadArgs{Streams: streams, Count: readCount, Block: -1}))
	} else {
		for b, id := range ids {
			cmds = append(cmds, pipe.XRead(ctx, &goredis.XReadArgs{
				Streams: []string{s.buckets[b][keyJournal], id.String()}, Count: readCount, Block: -1,
			}))
		}
	}
	_ = s.exec(ctx, pipe) // errors are read per command below
	var evs []presence.Event
	for _, cmd := range cmds {
		streams, err := cmd.Result()
		if err == goredis.Nil {
			continue
		}
		if err != nil {
			return nil, "", fmt.Errorf("redis: read journal: %w", err)
		}
		evs = append(evs, s.journalEvents(streams, ids)...)
	}
	return evs, encodeJournalCursor(ids), nil
}

// journalEvents decodes the entries of an XREAD reply into events,
// advancing ids (per bucket) past them.
func (s *Store) journalEvents(streams []goredis.XStream, ids []entryID) []presence.Event {
	var evs []presence.Event
	for _, st := range streams {
		b, ok := s.journalBucket[st.Stream]
		if !ok {
			continue
		}
		for _, m := range st.Messages {
			if id, ok := parseEntryID(m.ID); ok {
				ids[b] = id
			}
			fields := make([]string, 0, 2*len(m.Values))
			for k, v := range m.Values {
				fields = append(fields, k, str(v))
			}
			ev, err := decodeEntry(fields)
			if err != nil {
				continue
			}
			evs = append(evs, ev)
		}
	}
	return evs
}

// readStart returns the cursor at the end of every bucket's journal.
func (s *Store) readStart(ctx context.Context) ([]presence.Event, string, error) {
	pipe := s.rdb.Pipeline()
	cmds := make([]*goredis.XMessageSliceCmd, len(s.buckets))
	for b, keys := range s.buckets {
		cmds[b] = pipe.XRevRangeN(ctx, keys[keyJournal], "+", "-", 1)
	}
	if err := s.exec(ctx, pipe); err != nil && err != goredis.Nil {
		return nil, "", fmt.Errorf("redis: read journal: %w", err)
	}
	ids := make([]entryID, len(s.buckets))
	for b, cmd := range cmds {
		if msgs := cmd.Val(); len(msgs) > 0 {
			ids[b], _ = parseEntryID(msgs[0].ID)
		}
	}
	return nil, encodeJournalCursor(ids), nil
}

// The tail (single server only): see Read.
const (
	// tailBlock is how long one blocked XREAD of the tail waits: what an
	// idle node costs Redis is one XREAD that times out per tailBlock (a
	// round trip, and the XREAD's registering on every bucket's stream).
	// Close does not wait for it: it unblocks the XREAD (CLIENT UNBLOCK),
	// and so does a Read that resets the tail.
	tailBlock = 10 * time.Second
	// tailBlockDenied is tailBlock where the tail cannot be unblocked
	// (see tailConn).
	tailBlockDenied = 2 * time.Second
	// tailMinPool is the smallest pool the tail takes a connection of
	// its own from.
	tailMinPool = 4
	// unblockTries bounds the CLIENT UNBLOCKs that Close sends (one every
	// 20ms until the tail ends: the XREAD may not be blocked yet).
	unblockTries = 50
	// tailIdle: the tail ends when Read was not called for this long.
	tailIdle = 3 * time.Second
	// tailMax bounds the events the tail holds for the next Read; past it
	// the tail ends, and the next Read reads by itself.
	tailMax = 10 * readCount
)

// tail is the goroutine that reads the journal ahead of Read on a single
// server.
type tail struct {
	// mu guards the fields below.
	mu sync.Mutex
	// valid: buf holds the events recorded after cursor from, up to
	// cursor to.
	valid    bool
	from, to string
	buf      []presence.Event
	err      error // why the goroutine ended, for the next Read
	epoch    int   // bumped when from and to are set anew
	running  bool
	id       int64 // CLIENT ID of the tail's connection, 0 if none yet
	lastRead time.Time
	closed   bool
	cancel   context.CancelFunc
	done     chan struct{} // closed when the goroutine ends
}

// take returns what the tail gathered after cursor, and ok if it has it.
func (t *tail) take(cursor string) (evs []presence.Event, next string, ok bool, err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.valid || cursor != t.from {
		return nil, "", false, nil
	}
	if t.err != nil {
		err, t.err, t.valid = t.err, nil, false
		return nil, "", true, fmt.Errorf("redis: read journal: %w", err)
	}
	if !t.running {
		// Stopped (idle, full or closed): what it gathered is the last
		// it has; after it, Read reads by itself.
		t.valid = false
		if len(t.buf) == 0 {
			return nil, "", false, nil
		}
	}
	evs, next = t.buf, t.to
	t.buf, t.from = nil, t.to
	t.lastRead = time.Now()
	return evs, next, true, nil
}

// startTail makes sure the tail runs, reading after cursor when reset (or
// when it was not running), else from where it is. A reset of a running
// tail unblocks its XREAD, which waits on the entries after the former
// cursor.
func (s *Store) startTail(ctx context.Context, cursor string, reset bool) {
	t := &s.tail
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return
	}
	t.lastRead = time.Now()
	if reset || !t.running {
		t.valid, t.from, t.to, t.buf, t.err = true, cursor, cursor, nil, nil
		t.epoch++
	}
	if t.running {
		id := t.id
		t.mu.Unlock()
		if reset && id != 0 {
			// Best effort: an XREAD not yet blocked reads the new cursor
			// at its next turn, at most tailBlock later.
			_ = s.rdb.ClientUnblock(ctx, id).Err()
		}
		return
	}
	var tctx context.Context
	tctx, t.cancel = context.WithCancel(context.Background())
	t.running, t.done = true, make(chan struct{})
	go s.tailLoop(tctx, t.done)
	t.mu.Unlock()
}

// tailLoop is the tail's goroutine. It blocks on a connection it keeps
// from the client's pool for as long as it runs, so that Close and a reset
// can unblock it by that connection's CLIENT ID (see tailConn).
func (s *Store) tailLoop(ctx context.Context, done chan struct{}) {
	defer close(done)
	t := &s.tail
	t.mu.Lock()
	epoch := t.epoch
	t.mu.Unlock()
	rd, block, err := s.tailConn(ctx)
	if err != nil {
		t.stop(epoch, err)
		return
	}
	if conn, ok := rd.(*goredis.Conn); ok {
		defer func() {
			t.mu.Lock()
			t.id = 0
			t.mu.Unlock()
			_ = conn.Close()
		}()
	}
	streams := make([]string, 2*len(s.buckets))
	for {
		t.mu.Lock()
		if t.closed || time.Since(t.lastRead) > tailIdle || len(t.buf) >= tailMax {
			t.running = false
			t.mu.Unlock()
			return
		}
		epoch = t.epoch
		ids, err := decodeJournalCursor(t.to, len(s.buckets))
		t.mu.Unlock()
		if err != nil {
			t.stop(epoch, err)
			return
		}
		for b := range s.buckets {
			streams[b] = s.buckets[b][keyJournal]
			streams[len(s.buckets)+b] = ids[b].String()
		}
		res, err := rd.XRead(ctx, &goredis.XReadArgs{Streams: streams, Count: readCount, Block: block}).Result()
		if err == goredis.Nil {
			continue
		}
		if err != nil {
			t.stop(epoch, err)
			return
		}
		evs := s.journalEvents(res, ids)
		t.mu.Lock()
		if t.epoch == epoch {
			t.buf = append(t.buf, evs...)
			t.to = encodeJournalCursor(ids)
		}
		t.mu.Unlock()
	}
}

// xreader is what the tail reads the journal through: a connection it
// keeps, or the client's pool.
type xreader interface {
	XRead(ctx context.Context, a *goredis.XReadArgs) *goredis.XStreamSliceCmd
}

// tailConn returns what the tail reads through and how long its XREAD
// blocks: a connection of its own, whose CLIENT ID it records for Close to
// unblock it, and tailBlock; or, where that cannot be, the client's pool
// and tailBlockDenied, as Close then waits for the XREAD to time out: when
// the pool is too small to spare a connection for as long as the tail
// runs (a blocked XREAD held one most of the time before, but gave it
// back between two), or when the ACL denies CLIENT UNBLOCK (it needs the
// @admin category).
func (s *Store) tailConn(ctx context.Context) (xreader, time.Duration, error) {
	c, _ := s.rdb.(*goredis.Client) // s.single
	if c.Options().PoolSize < tailMinPool {
		return s.rdb, tailBlockDenied, nil
	}
	conn := c.Conn()
	pipe := conn.Pipeline()
	idCmd := pipe.ClientID(ctx)
	probe := pipe.ClientUnblock(ctx, 0) // no client has the ID 0
	_, _ = pipe.Exec(ctx)
	id, err := idCmd.Result()
	if err != nil {
		_ = conn.Close()
		return nil, 0, err
	}
	if probe.Err() != nil {
		_ = conn.Close()
		return s.rdb, tailBlockDenied, nil
	}
	t := &s.tail
	t.mu.Lock()
	t.id = id
	t.mu.Unlock()
	return conn, tailBlock, nil
}

// stop ends the tail after an error, which the next Read reports unless
// the tail was reset meanwhile.
func (t *tail) stop(epoch int, err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.running = false
	if t.epoch == epoch && !t.closed {
		t.err = err
	}
}

// Close withdraws the Store from the namespace's registry of sweepers, so
// that the buckets it swept are taken over at the other nodes' next Sweep
// rather than when its entry runs out (see "Background work" in the
// package documentation), then stops the goroutine that Read starts on a
// single server (see Read) and waits for it: it unblocks the goroutine's
// XREAD (CLIENT UNBLOCK), or where it cannot (see Read), waits for the
// XREAD to time out, at most about two seconds; later Reads read by
// themselves. Call it once the Store's Tracker is closed. It leaves the
// client open: closing it is the caller's business, and closing it also
// ends the goroutine, at once. Close reports only a failure to reach
// Redis for the registry; a second call does nothing more.
func (s *Store) Close() error {
	var err error
	s.sched.mu.Lock()
	registered := s.sched.ok
	s.sched.ok = time.Time{}
	s.sched.mu.Unlock()
	if !registered.IsZero() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err = s.rdb.ZRem(ctx, registryKey(s.cfg.Prefix), s.consumer).Err()
		s.out.observe(ctx, err)
		cancel()
		if err != nil {
			err = fmt.Errorf("redis: close: %w", err)
		}
	}
	t := &s.tail
	t.mu.Lock()
	t.closed = true
	done, cancel := t.done, t.cancel
	t.mu.Unlock()
	if cancel != nil {
		cancel()
	}
	if done == nil {
		return err
	}
	// The tail may be about to block rather than blocked: unblock it until
	// it ends, a few times, then wait for its XREAD to time out.
	for range unblockTries {
		t.mu.Lock()
		id := t.id
		t.mu.Unlock()
		if id != 0 {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			_ = s.rdb.ClientUnblock(ctx, id).Err()
			cancel()
		}
		select {
		case <-done:
			return err
		case <-time.After(20 * time.Millisecond):
		}
	}
	<-done
	return err
}

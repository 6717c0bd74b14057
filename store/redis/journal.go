package redis

import (
	"context"
	"fmt"
	"log/slog"
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
// in every bucket's journal after cursor. On a single server that is one
// XREAD; on a Cluster one per bucket, pipelined. Each event's Node is the
// node that decided it when the deciding call named one (Add, End of a
// node), else empty.
func (s *Store) Read(ctx context.Context, cursor string) ([]presence.Event, string, error) {
	if cursor == "" {
		return s.readStart(ctx)
	}
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
	byKey := make(map[string]int, len(s.buckets))
	for b, keys := range s.buckets {
		byKey[keys[keyJournal]] = b
	}
	var evs []presence.Event
	for _, cmd := range cmds {
		streams, err := cmd.Result()
		if err == goredis.Nil {
			continue
		}
		if err != nil {
			return nil, "", fmt.Errorf("redis: read journal: %w", err)
		}
		for _, st := range streams {
			b, ok := byKey[st.Stream]
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
	}
	return evs, encodeJournalCursor(ids), nil
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

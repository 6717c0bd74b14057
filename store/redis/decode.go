package redis

import (
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/vigilhq/vigil/presence"
)

func str(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case int64:
		return strconv.FormatInt(x, 10)
	}
	return ""
}

// decodeEvent reads one transition of a script reply.
func decodeEvent(v []any) (presence.Event, string, error) {
	if len(v) < nEventFields {
		return presence.Event{}, "", errReply
	}
	f := make([]string, nEventFields)
	for i := range f {
		f[i] = str(v[i])
	}
	ev, err := makeEvent(f[eventKind], f[eventClient], f[eventSession], f[eventReason],
		f[eventSeq], f[eventTime], f[eventSeen], f[eventOnlineFor], f[eventRoom], f[eventMeta])
	return ev, f[eventEntry], err
}

// decodeEntry reads a journal stream entry (lua/common.lua, transition),
// given as field, value, field, value... Unknown fields are ignored.
func decodeEntry(fields []string) (presence.Event, error) {
	if len(fields)%2 != 0 {
		return presence.Event{}, fmt.Errorf("%w: odd field list", errReply)
	}
	m := make(map[string]string, len(fields)/2)
	for i := 0; i < len(fields); i += 2 {
		m[fields[i]] = fields[i+1]
	}
	bad := fmt.Errorf("%w: journal entry", errReply)
	kind, err := strconv.ParseUint(m["t"], 10, 8)
	if err != nil || kind < uint64(presence.Online) || kind > uint64(presence.Back) {
		return presence.Event{}, bad
	}
	reason := m["r"]
	if r, ok := strings.CutPrefix(reason, "~"); ok {
		reason = r
	} else if reason != "" {
		code, err := strconv.Atoi(reason)
		if err != nil || code <= 0 || code >= len(journalReasons) {
			return presence.Event{}, bad
		}
		reason = string(journalReasons[code])
	}
	tm, err1 := strconv.ParseInt(m["tm"], 10, 64)
	ago, err2 := strconv.ParseInt(m["ls"], 10, 64)
	if err1 != nil || err2 != nil {
		return presence.Event{}, bad
	}
	ev, err := makeEvent(presence.Transition(kind).String(), m["c"], m["s"], reason, m["q"], m["tm"],
		strconv.FormatInt(tm-ago, 10), m["of"], m["rm"], m["m"])
	ev.Node = m["n"]
	return ev, err
}

// journalReasons are the reasons a journal entry gives by their code
// (lua/common.lua, REASON), from 1.
var journalReasons = [...]presence.Reason{1: presence.ReasonConnect, 2: presence.ReasonClosed, 3: presence.ReasonLeft,
	4: presence.ReasonExpired, 5: presence.ReasonIdle, 6: presence.ReasonShutdown, 7: presence.ReasonRestart,
	8: presence.ReasonNodeLost, 9: presence.ReasonKicked}

// makeEvent builds an event from the fields of a reply or journal entry.
// A room transition (join, leave, update) names a valid room, and may carry
// metadata (valid, see presence.ValidateMeta); Online, Offline, Away and
// Back carry neither.
func makeEvent(kind, client, session, reason, seq, tm, seen, onlineFor, room, meta string) (presence.Event, error) {
	ev := presence.Event{ClientID: client, SessionID: session, Reason: presence.Reason(reason)}
	// The scripts write a transition as its String().
	for t := presence.Online; t <= presence.Back; t++ {
		if t.String() == kind {
			ev.Transition = t
		}
	}
	if ev.Transition == 0 {
		return presence.Event{}, fmt.Errorf("%w: transition %q", errReply, kind)
	}
	switch ev.Transition {
	case presence.Online, presence.Offline, presence.Away, presence.Back:
		if room != "" || meta != "" {
			return presence.Event{}, fmt.Errorf("%w: %s event with a room", errReply, kind)
		}
	default:
		if presence.ValidateRoom(room) != nil || presence.ValidateMeta(json.RawMessage(meta)) != nil {
			return presence.Event{}, fmt.Errorf("%w: %s event room or metadata", errReply, kind)
		}
		ev.Room = room
		if meta != "" {
			ev.Meta = json.RawMessage(meta)
		}
	}
	if presence.ValidateID(client) != nil || presence.ValidateID(session) != nil {
		return presence.Event{}, fmt.Errorf("%w: event ids", errReply)
	}
	q, err1 := strconv.ParseUint(seq, 10, 64)
	t, err2 := strconv.ParseInt(tm, 10, 64)
	ls, err3 := strconv.ParseInt(seen, 10, 64)
	of, err4 := strconv.ParseInt(onlineFor, 10, 64)
	if err1 != nil || err2 != nil || err3 != nil || err4 != nil || q == 0 || of < 0 || of > 1<<40 {
		return presence.Event{}, fmt.Errorf("%w: event numbers", errReply)
	}
	ev.Seq = q
	ev.Time = time.UnixMilli(t)
	ev.LastSeen = time.UnixMilli(ls)
	ev.OnlineFor = time.Duration(of) * time.Millisecond
	return ev, nil
}

// sessionRec is what a client record holds of one of its sessions: its
// ID, the floor of its last beat and its span (ms; see "Last seen" in
// lua/common.lua) and its node.
type sessionRec struct {
	id         string
	seen, span int64
	node       string
}

// decodeClient reads a client record (lua/common.lua, getc):
// "seq|seen|since", then per session "\x01" ID "\x02" seen "\x02" span
// "\x02" node, numbers in base 36, since as since - seen and a session's
// seen as its seen - the client's. It returns the client's sessions as the
// record has them.
func decodeClient(id, rec string) (p presence.Presence, sessions []sessionRec, err error) {
	bad := fmt.Errorf("%w: client record of %q", errReply, id)
	head, rest, _ := strings.Cut(rec, "\x01")
	parts := strings.Split(head, "|")
	if len(parts) != 3 {
		return presence.Presence{}, nil, bad
	}
	var n [3]int64
	for i, part := range parts {
		v, err := strconv.ParseInt(part, 36, 64)
		if err != nil {
			return presence.Presence{}, nil, bad
		}
		n[i] = v
	}
	if rest != "" {
		for e := range strings.SplitSeq(rest, "\x01") {
			f := strings.SplitN(e, "\x02", 4)
			if len(f) != 4 || presence.ValidateID(f[0]) != nil {
				return presence.Presence{}, nil, bad
			}
			seen, err1 := strconv.ParseInt(f[1], 36, 64)
			span, err2 := strconv.ParseInt(f[2], 36, 64)
			if err1 != nil || err2 != nil {
				return presence.Presence{}, nil, bad
			}
			sessions = append(sessions, sessionRec{id: f[0], seen: n[1] + seen, span: span, node: f[3]})
		}
	}
	p = presence.Presence{ClientID: id, Online: len(sessions) > 0, Sessions: len(sessions), LastSeen: time.UnixMilli(n[1])}
	if p.Online {
		p.Since = time.UnixMilli(n[1] + n[2])
	}
	return p, sessions, nil
}

// splitActivity reads a client's activity record, "away|active": how many
// of its sessions are away, and its remembered last active time (ms), if
// any (ok).
func splitActivity(rec string) (away, active int64, ok bool) {
	a, b, found := strings.Cut(rec, "|")
	away, err := strconv.ParseInt(a, 10, 64)
	if !found || err != nil || away < 0 {
		return 0, 0, false
	}
	active, err = strconv.ParseInt(b, 10, 64)
	if err != nil || active < 0 {
		return away, 0, false
	}
	return away, active, true
}

// fillState sets p's State and LastActive from a script's state and last
// active time (ms, 0 if unknown).
func fillState(state string, lastActive int64, st *presence.State, la *time.Time) {
	*st = presence.State(state)
	if lastActive > 0 {
		*la = time.UnixMilli(lastActive)
	}
}

// splitSession reads a session record, "seen|span|node".
func splitSession(rec string) (seen, span int64, node string, ok bool) {
	a, rest, ok1 := strings.Cut(rec, "|")
	b, node, ok2 := strings.Cut(rest, "|")
	seen, err1 := strconv.ParseInt(a, 10, 64)
	span, err2 := strconv.ParseInt(b, 10, 64)
	return seen, span, node, ok1 && ok2 && err1 == nil && err2 == nil
}

// List cursors: base64url of a version byte 'L', the bucket (uvarint) and
// the last client ID returned.

func encodeListCursor(bucket int, after string) string { return encodeCursor('L', bucket, after) }

func decodeListCursor(cursor string, buckets int) (int, string, error) {
	return decodeCursor('L', cursor, buckets)
}

// Members cursors: the same, with version byte 'M'.

func encodeMembersCursor(bucket int, after string) string { return encodeCursor('M', bucket, after) }

func decodeMembersCursor(cursor string, buckets int) (int, string, error) {
	return decodeCursor('M', cursor, buckets)
}

func encodeCursor(version byte, bucket int, after string) string {
	b := binary.AppendUvarint([]byte{version}, uint64(bucket))
	return base64.RawURLEncoding.EncodeToString(append(b, after...))
}

func decodeCursor(version byte, cursor string, buckets int) (int, string, error) {
	if cursor == "" {
		return 0, "", nil
	}
	bad := fmt.Errorf("%w: redis: unreadable cursor", presence.ErrInvalidArgument)
	b, err := base64.RawURLEncoding.DecodeString(cursor)
	if err != nil || len(b) < 2 || b[0] != version {
		return 0, "", bad
	}
	bucket, n := binary.Uvarint(b[1:])
	if n <= 0 || bucket >= uint64(buckets) {
		return 0, "", bad
	}
	after := string(b[1+n:])
	if after != "" && presence.ValidateID(after) != nil {
		return 0, "", bad
	}
	return int(bucket), after, nil
}

// Journal cursors: base64url of a version byte 'J', the number of buckets
// and, per bucket, the last stream entry ID read, as two uvarints.

type entryID struct{ ms, seq uint64 }

func (e entryID) String() string {
	return strconv.FormatUint(e.ms, 10) + "-" + strconv.FormatUint(e.seq, 10)
}

func parseEntryID(s string) (entryID, bool) {
	a, b, ok := strings.Cut(s, "-")
	if !ok {
		return entryID{}, false
	}
	ms, err1 := strconv.ParseUint(a, 10, 64)
	seq, err2 := strconv.ParseUint(b, 10, 64)
	return entryID{ms, seq}, err1 == nil && err2 == nil
}

func encodeJournalCursor(ids []entryID) string {
	b := binary.AppendUvarint([]byte{'J'}, uint64(len(ids)))
	for _, id := range ids {
		b = binary.AppendUvarint(b, id.ms)
		b = binary.AppendUvarint(b, id.seq)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

func decodeJournalCursor(cursor string, buckets int) ([]entryID, error) {
	bad := fmt.Errorf("%w: redis: unreadable journal cursor", presence.ErrInvalidArgument)
	b, err := base64.RawURLEncoding.DecodeString(cursor)
	if err != nil || len(b) < 2 || b[0] != 'J' {
		return nil, bad
	}
	b = b[1:]
	n, k := binary.Uvarint(b)
	if k <= 0 || n != uint64(buckets) {
		return nil, bad
	}
	b = b[k:]
	ids := make([]entryID, buckets)
	for i := range ids {
		ms, k1 := binary.Uvarint(b)
		if k1 <= 0 {
			return nil, bad
		}
		seq, k2 := binary.Uvarint(b[k1:])
		if k2 <= 0 {
			return nil, bad
		}
		ids[i] = entryID{ms, seq}
		b = b[k1+k2:]
	}
	if len(b) != 0 {
		return nil, bad
	}
	return ids, nil
}

package redis

import (
	"errors"
	"strings"
	"testing"

	"github.com/vigilhq/vigil/presence"
)

func FuzzJournalCursor(f *testing.F) {
	f.Add(encodeJournalCursor([]entryID{{1, 0}, {1795640278516, 7}, {0, 0}}), 3)
	f.Add(encodeJournalCursor(make([]entryID, 32)), 32)
	f.Add("", 1)
	f.Add("!!!", 2)
	f.Fuzz(func(t *testing.T, cursor string, buckets int) {
		if buckets <= 0 || buckets > MaxBuckets {
			return
		}
		ids, err := decodeJournalCursor(cursor, buckets)
		if err != nil {
			if !errors.Is(err, presence.ErrInvalidArgument) {
				t.Fatalf("error %v does not wrap ErrInvalidArgument", err)
			}
			return
		}
		if len(ids) != buckets {
			t.Fatalf("%d ids for %d buckets", len(ids), buckets)
		}
		again, err := decodeJournalCursor(encodeJournalCursor(ids), buckets)
		if err != nil || len(again) != len(ids) {
			t.Fatalf("round trip: %v", err)
		}
		for i := range ids {
			if again[i] != ids[i] {
				t.Fatalf("round trip changed id %d: %v -> %v", i, ids[i], again[i])
			}
		}
	})
}

func FuzzListCursor(f *testing.F) {
	f.Add(encodeListCursor(0, ""), 32)
	f.Add(encodeListCursor(31, "user-{1}:*"), 32)
	f.Add("bm90IGEgY3Vyc29y", 32)
	f.Fuzz(func(t *testing.T, cursor string, buckets int) {
		if buckets <= 0 || buckets > MaxBuckets {
			return
		}
		b, after, err := decodeListCursor(cursor, buckets)
		if err != nil {
			if !errors.Is(err, presence.ErrInvalidArgument) {
				t.Fatalf("error %v does not wrap ErrInvalidArgument", err)
			}
			return
		}
		if b < 0 || b >= buckets || (after != "" && presence.ValidateID(after) != nil) {
			t.Fatalf("accepted bucket %d after %q", b, after)
		}
		b2, after2, err := decodeListCursor(encodeListCursor(b, after), buckets)
		if err != nil || b2 != b || after2 != after {
			t.Fatalf("round trip: %d %q %v", b2, after2, err)
		}
	})
}

func FuzzMembersCursor(f *testing.F) {
	f.Add(encodeMembersCursor(0, ""), 32)
	f.Add(encodeMembersCursor(31, "user-{1}:*"), 32)
	f.Add(encodeListCursor(3, "u1"), 32) // a List cursor is not a Members cursor
	f.Fuzz(func(t *testing.T, cursor string, buckets int) {
		if buckets <= 0 || buckets > MaxBuckets {
			return
		}
		b, after, err := decodeMembersCursor(cursor, buckets)
		if err != nil {
			if !errors.Is(err, presence.ErrInvalidArgument) {
				t.Fatalf("error %v does not wrap ErrInvalidArgument", err)
			}
			return
		}
		if b < 0 || b >= buckets || (after != "" && presence.ValidateID(after) != nil) {
			t.Fatalf("accepted bucket %d after %q", b, after)
		}
		if _, _, err := decodeListCursor(cursor, buckets); err == nil && cursor != "" {
			t.Fatalf("%q reads as a List cursor too", cursor)
		}
		b2, after2, err := decodeMembersCursor(encodeMembersCursor(b, after), buckets)
		if err != nil || b2 != b || after2 != after {
			t.Fatalf("round trip: %d %q %v", b2, after2, err)
		}
	})
}

// FuzzDecodeEntry feeds journal stream entries, as "field=value" lines.
func FuzzDecodeEntry(f *testing.F) {
	// Layout 2 (lua/common.lua, transition): kinds and usual reasons coded,
	// ls a difference from tm.
	f.Add("c=alice\nt=1\ns=s1\nr=1\nq=201326593\ntm=1795640278516\nls=0\nof=0\nn=a")
	f.Add("c={x}\nt=2\ns=*\nr=~timeout\nq=2\ntm=1\nls=0\nof=5\nn=")
	f.Add("c=alice\nt=3\ns=s1\nr=1\nq=201326594\ntm=1795640278516\nls=0\nof=0\nn=a\nrm=general\nm={\"name\":\"Alice\"}")
	f.Add("c=alice\nt=5\ns=s1\nr=\nq=201326595\ntm=1795640278517\nls=0\nof=0\nn=a\nrm=general\nm=[1,2]")
	f.Add("c=alice\nt=4\ns=s1\nr=4\nq=201326596\ntm=1795640278518\nls=8\nof=0\nn=\nrm=game:42")
	f.Add("c=alice\nt=6\ns=s1\nr=\nq=201326597\ntm=1795640278519\nls=9\nof=0\nn=a")
	f.Add("c=alice\nt=7\ns=s1\nr=1\nq=201326598\ntm=1795640278520\nls=-3\nof=0\nn=b")
	f.Add("c=alice\nt=9\ns=s1\nr=12\nq=4\ntm=1\nls=1\nof=0")
	// Layout 1 entries: refused.
	f.Add("c=alice\nt=online\ns=s1\nr=connect\nq=201326593\ntm=1795640278516\nls=1795640278516\nof=0\nn=a")
	f.Add("c={x}\nt=offline\ns=*\nr=timeout\nq=2\ntm=1\nls=1\nof=5\nn=")
	f.Add("t=sideways")
	f.Add("c=alice\nt=join\ns=s1\nr=connect\nq=201326594\ntm=1795640278516\nls=1795640278516\nof=0\nn=a\nrm=general\nm={\"name\":\"Alice\"}")
	f.Add("c=alice\nt=update\ns=s1\nr=\nq=201326595\ntm=1795640278517\nls=1795640278517\nof=0\nn=a\nrm=general\nm=[1,2]")
	f.Add("c=alice\nt=leave\ns=s1\nr=expired\nq=201326596\ntm=1795640278518\nls=1795640278510\nof=0\nn=\nrm=game:42")
	f.Add("c=alice\nt=online\ns=s1\nr=connect\nq=3\ntm=1\nls=1\nof=0\nrm=general")
	f.Add("c=alice\nt=away\ns=s1\nr=\nq=201326597\ntm=1795640278519\nls=1795640278510\nof=0\nn=a")
	f.Add("c=alice\nt=back\ns=s1\nr=connect\nq=201326598\ntm=1795640278520\nls=1795640278520\nof=0\nn=b")
	f.Add("c=alice\nt=away\ns=s1\nr=closed\nq=4\ntm=1\nls=1\nof=0\nrm=general")
	f.Fuzz(func(t *testing.T, in string) {
		var fields []string
		for _, line := range strings.Split(in, "\n") {
			k, v, _ := strings.Cut(line, "=")
			fields = append(fields, k, v)
		}
		ev, err := decodeEntry(fields)
		if err != nil {
			return
		}
		switch ev.Transition {
		case presence.Online, presence.Offline, presence.Away, presence.Back:
			if ev.Room != "" || ev.Meta != nil {
				t.Fatalf("%v with room %q meta %q", ev.Transition, ev.Room, ev.Meta)
			}
		case presence.Join, presence.Leave, presence.Update:
			if presence.ValidateRoom(ev.Room) != nil || presence.ValidateMeta(ev.Meta) != nil {
				t.Fatalf("%v with room %q meta %q", ev.Transition, ev.Room, ev.Meta)
			}
		default:
			t.Fatalf("transition %v", ev.Transition)
		}
		if presence.ValidateID(ev.ClientID) != nil || ev.Seq == 0 || ev.OnlineFor < 0 {
			t.Fatalf("accepted %+v", ev)
		}
	})
}

func FuzzDecodeActivity(f *testing.F) {
	f.Add("2|1795640278516")
	f.Add("1|")
	f.Add("0|1795640278516")
	f.Add("|")
	f.Add("x|1")
	f.Fuzz(func(t *testing.T, rec string) {
		a := decodeActivity(rec)
		if a.away < 0 || a.active < 0 || (!a.hasActive && a.active != 0) {
			t.Fatalf("%+v from %q", a, rec)
		}
	})
}

// TestDecodeActivity: the records of :ca (away count | last active ms)
// read back as written.
func TestDecodeActivity(t *testing.T) {
	for rec, want := range map[string]activity{
		"2|1795640278516": {away: 2, active: 1795640278516, hasActive: true},
		"1|":              {away: 1},
		"0|1795640278516": {active: 1795640278516, hasActive: true},
	} {
		if got := decodeActivity(rec); got != want {
			t.Errorf("decodeActivity(%q) = %+v, want %+v", rec, got, want)
		}
	}
}

func FuzzDecodeClient(f *testing.F) {
	f.Add("3|lwq8a5xw|-lwq8a5xw")
	f.Add("5|lwq8a5xw|2s\x01tab|1\x020\x02r0w\x02node-1")
	f.Add("5|lwq8a5xw|0\x01a\x0212\x02r0w\x02n\x01b\x02-1\x020\x02")
	f.Add("2|lwq8a5xw|0")
	f.Add("3|1795640278516|1795640278516|1|tab") // layout 1: refused
	f.Add("||")
	f.Fuzz(func(t *testing.T, rec string) {
		p, sessions, err := decodeClient("id", rec)
		if err != nil {
			return
		}
		if p.Online != (p.Sessions > 0) || (!p.Online && !p.Since.IsZero()) || p.Sessions != len(sessions) {
			t.Fatalf("inconsistent %+v from %q", p, rec)
		}
		for _, s := range sessions {
			if presence.ValidateID(s.id) != nil {
				t.Fatalf("session %q of %+v from %q", s.id, p, rec)
			}
		}
	})
}

// TestDecodeEntryCodes: a journal entry's coded kind and reason, and its
// last seen as a difference from its time, read back as the transition
// lua/common.lua's transition wrote.
func TestDecodeEntryCodes(t *testing.T) {
	for _, tc := range []struct {
		fields []string
		kind   presence.Transition
		reason presence.Reason
		seen   int64
	}{
		{[]string{"c", "a", "t", "1", "s", "s1", "r", "1", "q", "9", "tm", "1000", "ls", "0", "of", "0", "n", "x"}, presence.Online, presence.ReasonConnect, 1000},
		{[]string{"c", "a", "t", "2", "s", "s1", "r", "8", "q", "9", "tm", "1000", "ls", "250", "of", "7", "n", "x"}, presence.Offline, presence.ReasonNodeLost, 750},
		{[]string{"c", "a", "t", "2", "s", "s1", "r", "~gone fishing", "q", "9", "tm", "1000", "ls", "0", "of", "7"}, presence.Offline, "gone fishing", 1000},
		{[]string{"c", "a", "t", "6", "s", "s1", "r", "", "q", "9", "tm", "1000", "ls", "-5", "of", "0"}, presence.Away, "", 1005},
		{[]string{"c", "a", "t", "4", "s", "s1", "r", "9", "q", "9", "tm", "1000", "ls", "0", "of", "0", "rm", "lobby"}, presence.Leave, presence.ReasonKicked, 1000},
	} {
		ev, err := decodeEntry(tc.fields)
		if err != nil || ev.Transition != tc.kind || ev.Reason != tc.reason || ev.LastSeen.UnixMilli() != tc.seen {
			t.Errorf("decodeEntry(%q) = %v %q seen %d, %v; want %v %q seen %d", tc.fields, ev.Transition, ev.Reason,
				ev.LastSeen.UnixMilli(), err, tc.kind, tc.reason, tc.seen)
		}
	}
	for _, bad := range [][]string{
		{"c", "a", "t", "online", "s", "s1", "r", "connect", "q", "9", "tm", "1000", "ls", "1000", "of", "0"}, // layout 1
		{"c", "a", "t", "8", "s", "s1", "r", "1", "q", "9", "tm", "1000", "ls", "0", "of", "0"},
		{"c", "a", "t", "1", "s", "s1", "r", "10", "q", "9", "tm", "1000", "ls", "0", "of", "0"},
	} {
		if ev, err := decodeEntry(bad); err == nil {
			t.Errorf("decodeEntry(%q) = %+v, want an error", bad, ev)
		}
	}
}

package middleware_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"reflect"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/vigilhq/vigil/middleware"
	"github.com/vigilhq/vigil/presence"
	"github.com/vigilhq/vigil/store/memory"
)

// feedMember is a feed feedMember as a subscriber keeps it.
type feedMember struct {
	ID         string          `json:"id"`
	State      string          `json:"state"`
	Sessions   int             `json:"sessions"`
	Meta       json.RawMessage `json:"meta"`
	LastActive string          `json:"last_active"`
}

// view is what one subscriber of a coalesced feed knows: it applies the
// snapshot and each diff, as the browser's PresenceFeed does.
type view struct {
	mu        sync.Mutex
	members   map[string]feedMember
	count     int
	countOnly bool
	snapshots int
	diffs     int
	bytes     int
}

func (v *view) apply(typ string, data []byte) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	switch typ {
	case "snapshot":
		var s struct {
			Count     int          `json:"count"`
			CountOnly bool         `json:"count_only"`
			Members   []feedMember `json:"members"`
		}
		if err := json.Unmarshal(data, &s); err != nil {
			return err
		}
		v.snapshots++
		v.members = make(map[string]feedMember)
		for _, m := range s.Members {
			v.members[m.ID] = m
		}
		v.count, v.countOnly = s.Count, s.CountOnly
	case "diff":
		var d struct {
			Count *int         `json:"count"`
			Set   []feedMember `json:"set"`
			Gone  []string     `json:"gone"`
		}
		if err := json.Unmarshal(data, &d); err != nil {
			return err
		}
		v.diffs++
		v.bytes += len(data)
		for _, m := range d.Set {
			v.members[m.ID] = m
		}
		for _, id := range d.Gone {
			delete(v.members, id)
		}
		if d.Count != nil {
			v.count = *d.Count
		}
	}
	return nil
}

func (v *view) messages() int {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.snapshots + v.diffs
}

// follow reads the Server-Sent Events of res into v until the body ends.
func follow(res *http.Response, v *view, errs chan<- error) {
	defer res.Body.Close()
	sc := bufio.NewScanner(res.Body)
	sc.Buffer(nil, 64<<20)
	typ := ""
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "event: "):
			typ = line[7:]
		case strings.HasPrefix(line, "data: "):
			if err := v.apply(typ, []byte(line[6:])); err != nil {
				errs <- err
			}
		}
	}
}

// roomTruth reads the room's members as the Tracker has them.
func roomTruth(t *testing.T, tr *presence.Tracker, room string) map[string]feedMember {
	t.Helper()
	truth := make(map[string]feedMember)
	for cursor := ""; ; {
		p, err := tr.Members(context.Background(), room, cursor, 1000)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range p.Members {
			la := ""
			if !m.LastActive.IsZero() {
				la = m.LastActive.UTC().Format(time.RFC3339Nano)
			}
			truth[m.ClientID] = feedMember{ID: m.ClientID, State: string(m.State), Sessions: m.Sessions, Meta: m.Meta(), LastActive: la}
		}
		if cursor = p.Next; cursor == "" {
			return truth
		}
	}
}

// churn is a room's membership changing: sessions[i] is client i's one
// session, in the room or not.
type churn struct {
	tr       *presence.Tracker
	room     string
	sessions []*presence.Session
	in       []bool
	away     []bool
	rnd      *rand.Rand
}

func newChurn(t *testing.T, tr *presence.Tracker, room string, members, outside int) *churn {
	t.Helper()
	c := &churn{tr: tr, room: room, rnd: rand.New(rand.NewPCG(1, 2))}
	for i := range members + outside {
		opts := presence.SessionOptions{ID: "s", Meta: json.RawMessage(fmt.Sprintf(`{"n":%d}`, i))}
		if i < members {
			opts.Rooms = []string{room}
		}
		s, err := tr.Connect(context.Background(), fmt.Sprintf("m%05d", i), opts)
		if err != nil {
			t.Fatal(err)
		}
		c.sessions = append(c.sessions, s)
		c.in = append(c.in, i < members)
		c.away = append(c.away, false)
	}
	return c
}

// step makes one change: a feedMember leaves, someone joins, a feedMember sets new
// metadata, or goes away or comes back.
func (c *churn) step(ctx context.Context, k int) error {
	i := c.rnd.IntN(len(c.sessions))
	s := c.sessions[i]
	switch r := c.rnd.IntN(4); {
	case r == 0 && c.in[i], r == 1 && c.in[i]:
		c.in[i] = false
		return s.Leave(ctx, c.room)
	case r <= 1:
		c.in[i] = true
		return s.Join(ctx, c.room)
	case r == 2:
		return s.SetMeta(ctx, json.RawMessage(fmt.Sprintf(`{"n":%d,"k":%d}`, i, k)))
	default:
		if !c.tr.HasStates() {
			return s.SetMeta(ctx, json.RawMessage(fmt.Sprintf(`{"n":%d,"k":%d}`, i, k)))
		}
		c.away[i] = !c.away[i]
		if c.away[i] {
			return s.SetActivity(ctx, presence.ActivityAway, time.Minute)
		}
		return s.SetActivity(ctx, presence.ActivityActive, 0)
	}
}

// TestFeedBigRoomBound: one room of 10,000 members churning at 200 changes
// per second, followed by 100 subscribers: each gets at most one message
// per window (4 per second at the default 250ms), counted over a known
// number of windows on fake time, and ends with the room's true members
// and states.
//
// timing: the feed's Window (its default, 250ms) against the churn's
// 5ms between changes; the Tracker and Feed keep their default timings.
func TestFeedBigRoomBound(t *testing.T) {
	members, subs, seconds := 10000, 100, 10
	if testing.Short() || raceEnabled {
		members, subs, seconds = 2000, 20, 5 // the same rates on a smaller room
	}
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		st, _ := memory.New(memory.Config{})
		tr, err := presence.New(ctx, st, presence.Config{Node: "n1"})
		if err != nil {
			t.Fatal(err)
		}
		f, err := middleware.NewFeed(tr, middleware.FeedConfig{})
		if err != nil {
			t.Fatal(err)
		}
		l := newPipeListener()
		hs := &http.Server{Handler: f}
		go hs.Serve(l)
		hc := &http.Client{Transport: &http.Transport{DialContext: l.dial}}
		reqCtx, cancel := context.WithCancel(ctx)
		var wg sync.WaitGroup
		t.Cleanup(func() {
			cancel()
			wg.Wait()
			hc.CloseIdleConnections()
			f.Close()
			hs.Close()
			if err := tr.Close(ctx); err != nil {
				t.Error(err)
			}
		})
		c := newChurn(t, tr, "big", members, members/20)
		synctest.Wait()

		views := make([]*view, subs)
		errs := make(chan error, subs)
		for i := range views {
			views[i] = &view{}
			req, _ := http.NewRequestWithContext(reqCtx, "GET", "http://pipe/feed?room=big", nil)
			res, err := hc.Do(req)
			if err != nil || res.StatusCode != 200 {
				t.Fatalf("subscribe: %v %v", res, err)
			}
			wg.Go(func() { follow(res, views[i], errs) })
		}
		synctest.Wait()
		for i, v := range views {
			if v.messages() != 1 || v.snapshots != 1 || len(v.members) != members {
				t.Fatalf("subscriber %d: %d messages, %d members after subscribing, want the snapshot of %d", i, v.messages(), len(v.members), members)
			}
		}

		const perSecond = 200
		start := time.Now()
		for k := range seconds * perSecond {
			time.Sleep(time.Second / perSecond)
			if err := c.step(ctx, k); err != nil {
				t.Fatal(err)
			}
		}
		// Let the last changes through: two windows and the Tracker's
		// hooks (they run at once on fake time).
		time.Sleep(2 * middleware.DefaultFeedWindow)
		synctest.Wait()
		elapsed := time.Since(start)
		windows := int(elapsed / middleware.DefaultFeedWindow)

		truth := roomTruth(t, tr, "big")
		for i, v := range views {
			v.mu.Lock()
			msgs, diffs, bytes := v.snapshots+v.diffs-1, v.diffs, v.bytes
			got := v.members
			v.mu.Unlock()
			// The bound, as a count: after the snapshot, at most one
			// message per window elapsed (and one for a window begun).
			if msgs > windows+1 {
				t.Errorf("subscriber %d: %d messages in %d windows (%v), more than one per window", i, msgs, windows, elapsed)
			}
			if rate := float64(msgs) / elapsed.Seconds(); rate > 4.0*float64(windows+1)/float64(windows) {
				t.Errorf("subscriber %d: %.2f messages/s", i, rate)
			}
			if diffs < windows/2 {
				t.Errorf("subscriber %d: %d diffs in %d windows of steady churn", i, diffs, windows)
			}
			if !reflect.DeepEqual(got, truth) {
				t.Errorf("subscriber %d: view differs from the room (%d members, want %d)", i, len(got), len(truth))
			}
			if i == 0 {
				t.Logf("%d members, %d changes in %v: %d messages (%.2f/s), %d bytes of diffs",
					members, seconds*perSecond, elapsed, msgs, float64(msgs)/elapsed.Seconds(), bytes)
			}
		}
		select {
		case err := <-errs:
			t.Fatal(err)
		default:
		}
	})
}

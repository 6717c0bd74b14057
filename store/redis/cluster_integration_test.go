//go:build integration

package redis_test

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/vigilhq/vigil/internal/redistest"
	"github.com/vigilhq/vigil/presence"
	redisstore "github.com/vigilhq/vigil/store/redis"
)

// TestClusterSpread shows that one namespace spreads over every master of
// a Cluster.
func TestClusterSpread(t *testing.T) {
	rdb := redistest.Cluster(t)
	st := redistest.Store(t, rdb, redisstore.Config{})
	tr := startTracker(t, st, "n1", fast, nil)
	for i := range 300 {
		connect(t, tr, fmt.Sprintf("user-%d", i))
	}
	ctx := context.Background()
	if n, err := tr.Count(ctx); err != nil || n != 300 {
		t.Fatalf("Count = %d, %v; want 300", n, err)
	}
	p := prefixOf(t, st)
	var mu sync.Mutex
	perMaster := map[string]int{}
	err := rdb.ForEachMaster(ctx, func(ctx context.Context, c *goredis.Client) error {
		keys, err := redistest.Keys(ctx, c, p)
		mu.Lock()
		perMaster[c.Options().Addr] = len(keys)
		mu.Unlock()
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(perMaster) != 3 {
		t.Fatalf("masters = %v; want 3", perMaster)
	}
	for addr, n := range perMaster {
		if n == 0 {
			t.Errorf("master %s holds no key of the namespace (%v)", addr, perMaster)
		}
	}
	t.Logf("keys per master: %v", perMaster)
}

// prefixOf digs the namespace out of a store made by newStore.
func prefixOf(t *testing.T, st *redisstore.Store) string {
	t.Helper()
	return st.Config().Prefix
}

// hostile client IDs: they must neither steer keys nor break queries.
var hostileIDs = []string{
	"{b0}", "}{", "{", "}", "a:b:c", "*", "?", "[a-z]", "\\", "%s%d", "-", "+", "(", "[",
	"{vigil:b1}:s", "user{1}", "名前🙂", "a b", "ünïcödé", strings.Repeat("x", presence.MaxIDLen),
	strings.Repeat("{", presence.MaxIDLen),
}

func TestHostileIDs(t *testing.T) {
	for _, tc := range redistest.Servers {
		t.Run(tc.Name, func(t *testing.T) {
			rdb := tc.Client(t)
			st := redistest.Store(t, rdb, redisstore.Config{Buckets: 8})
			rec := &events{}
			tr := startTracker(t, st, "n{1}:*", fast, rec)
			ctx := context.Background()
			var sessions []*presence.Session
			for _, id := range hostileIDs {
				s, err := tr.Connect(ctx, id, presence.SessionOptions{ID: id})
				if err != nil {
					t.Fatalf("Connect(%q): %v", id, err)
				}
				sessions = append(sessions, s)
			}
			ps, err := tr.Lookup(ctx, hostileIDs)
			if err != nil {
				t.Fatal(err)
			}
			for i, p := range ps {
				if p.ClientID != hostileIDs[i] || !p.Online || p.Sessions != 1 {
					t.Errorf("Lookup(%q) = %+v; want online with one session", hostileIDs[i], p)
				}
				infos, err := tr.Sessions(ctx, hostileIDs[i])
				if err != nil || len(infos) != 1 || infos[0].ID != hostileIDs[i] || infos[0].Node != "n{1}:*" {
					t.Errorf("Sessions(%q) = %+v, %v", hostileIDs[i], infos, err)
				}
			}
			var listed []string
			for cursor := ""; ; {
				page, err := tr.List(ctx, cursor, 3)
				if err != nil {
					t.Fatal(err)
				}
				for _, p := range page.Clients {
					listed = append(listed, p.ClientID)
				}
				if cursor = page.Next; cursor == "" {
					break
				}
			}
			slices.Sort(listed)
			want := slices.Sorted(slices.Values(hostileIDs))
			if !slices.Equal(listed, want) {
				t.Errorf("List = %q\nwant %q", listed, want)
			}
			// Only the bucket keys exist, and the registry of sweepers
			// (in bucket 0's slot), whatever the IDs.
			p := prefixOf(t, st)
			shape := regexp.MustCompile(`^\{` + regexp.QuoteMeta(p) + `:b[0-7]\}:(g2|x|r|c|o|on:[0-9a-z]+|oc|j|l)$|^\{` + regexp.QuoteMeta(p) + `:b0\}:sw$`)
			check := func(ctx context.Context, c *goredis.Client) error {
				iter := c.Scan(ctx, 0, "*", 1000).Iterator()
				for iter.Next(ctx) {
					k := iter.Val()
					if strings.Contains(k, p) && !shape.MatchString(k) {
						t.Errorf("unexpected key %q", k)
					}
				}
				return iter.Err()
			}
			switch c := rdb.(type) {
			case *goredis.ClusterClient:
				err = c.ForEachMaster(ctx, check)
			case *goredis.Client:
				err = check(ctx, c)
			}
			if err != nil {
				t.Fatal(err)
			}
			for _, s := range sessions {
				if err := s.End(ctx, presence.ReasonExpired); err != nil {
					t.Fatal(err)
				}
			}
			waitUntil(t, 2*time.Second, "all offline", func() bool {
				for _, id := range hostileIDs {
					if len(rec.of(id)) != 2 {
						return false
					}
				}
				return true
			})
			if n, err := tr.Count(ctx); err != nil || n != 0 {
				t.Errorf("Count = %d, %v; want 0", n, err)
			}
		})
	}
}

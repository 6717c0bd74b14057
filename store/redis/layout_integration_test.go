//go:build integration

package redis_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/vigilhq/vigil/internal/redistest"
	"github.com/vigilhq/vigil/presence"
	redisstore "github.com/vigilhq/vigil/store/redis"
)

// TestOldLayoutRefused: a bucket written by key layout 1 (before issue 17
// §4: generation marker ":g", client records "seq|since|seen|n|sid") is
// refused, never misread: a write fails naming the layout, and so do the
// reads that would otherwise report it empty or count its old keys.
func TestOldLayoutRefused(t *testing.T) {
	for _, srv := range redistest.Servers {
		t.Run(srv.Name, func(t *testing.T) {
			ctx := context.Background()
			rdb := srv.Client(t)
			st := redistest.Store(t, rdb, redisstore.Config{Buckets: 1})
			tag := "{" + st.Config().Prefix + ":b0}"
			if err := rdb.Set(ctx, tag+":g", "1795640278.516000", 0).Err(); err != nil {
				t.Fatal(err)
			}
			if err := rdb.HSet(ctx, tag+":c", "old", "3|1795640278516|1795640278516|1|tab").Err(); err != nil {
				t.Fatal(err)
			}
			_, err := st.Add(ctx, presence.Lease{ClientID: "new", SessionID: "s", Node: "n", TTL: time.Minute})
			if err == nil || !strings.Contains(err.Error(), "older key layout") {
				t.Errorf("Add in a bucket of layout 1: %v, want an error naming the layout", err)
			}
			if ps, err := st.Lookup(ctx, []string{"old"}); err == nil {
				t.Errorf("Lookup of a client record of layout 1 = %+v, want an error", ps)
			}
			if _, err := st.Sweep(ctx); err == nil {
				t.Error("Sweep of a bucket of layout 1: no error")
			}
			if n, err := st.Count(ctx); err == nil {
				t.Errorf("Count over a bucket of layout 1 = %d, want an error", n)
			}
			if page, err := st.List(ctx, "", 10); err == nil {
				t.Errorf("List over a bucket of layout 1 = %+v, want an error", page)
			}
			if n, err := st.RoomCount(ctx, "lobby"); err == nil {
				t.Errorf("RoomCount over a bucket of layout 1 = %d, want an error", n)
			}
		})
	}
}

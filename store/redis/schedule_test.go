package redis

import (
	"fmt"
	"testing"
)

// TestOwnersSpread checks that rendezvous hashing gives every live Store a
// fair share of the buckets, exactly one owner per bucket, and that a Store
// leaving moves only its own buckets.
func TestOwnersSpread(t *testing.T) {
	const buckets = 32
	for _, n := range []int{1, 2, 4, 16} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			view := make([]string, n)
			for i := range view {
				view[i] = fmt.Sprintf("c-%026d", i*7919)
			}
			count := make([]int, buckets)
			owner := make([]string, buckets)
			most := 0
			for _, m := range view {
				mine := owners(view, m, buckets)
				k := 0
				for b, ok := range mine {
					if ok {
						count[b]++
						owner[b] = m
						k++
					}
				}
				most = max(most, k)
			}
			for b, c := range count {
				if c != 1 {
					t.Errorf("bucket %d has %d owners", b, c)
				}
			}
			// A fair share is buckets/n; allow three times it (and 6) for chance.
			if limit := max(6, 3*buckets/n); most > limit {
				t.Errorf("one Store of %d owns %d buckets, want at most %d", n, most, limit)
			}
			if n < 2 {
				return
			}
			gone := view[0]
			rest := view[1:]
			for _, m := range rest {
				mine := owners(rest, m, buckets)
				for b, ok := range mine {
					if owner[b] != gone && ok != (owner[b] == m) {
						t.Errorf("bucket %d moved from %s though %s left", b, owner[b], gone)
					}
				}
			}
		})
	}
}

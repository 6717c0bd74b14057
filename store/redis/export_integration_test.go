//go:build integration

package redis_test

import "strconv"

func itoa(i int) string { return strconv.Itoa(i) }

// bucketOfTest mirrors the store's FNV-1a bucket choice.
func bucketOfTest(id string, buckets int) int {
	h := uint32(2166136261)
	for i := 0; i < len(id); i++ {
		h ^= uint32(id[i])
		h *= 16777619
	}
	return int(h % uint32(buckets))
}

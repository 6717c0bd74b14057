package redis

import "strconv"

// keysPerBucket is the number of keys of one bucket, in the order the Lua
// scripts expect (see lua/common.lua).
const keysPerBucket = 10

var keySuffixes = [keysPerBucket]string{":g", ":s", ":x", ":k", ":n", ":r", ":c", ":o", ":on", ":j"}

// Positions in a bucket's keys.
const (
	keySessions = 1
	keyExpiry   = 2
	keyIndex    = 3
	keyReasons  = 5
	keyClients  = 6
	keyOnline   = 8
	keyJournal  = 9
)

// bucketKeys returns the keys of bucket b. All carry the same hash tag,
// "{prefix:bN}", so a bucket is one Cluster slot. Client IDs never appear in
// key names: they are hash fields and set members only.
func bucketKeys(prefix string, b int) []string {
	tag := "{" + prefix + ":b" + strconv.Itoa(b) + "}"
	keys := make([]string, keysPerBucket)
	for i, suf := range keySuffixes {
		keys[i] = tag + suf
	}
	return keys
}

// bucketOf hashes a client ID to its bucket with 32-bit FNV-1a, the same
// on every node.
func bucketOf(clientID string, buckets int) int {
	h := uint32(2166136261)
	for i := 0; i < len(clientID); i++ {
		h ^= uint32(clientID[i])
		h *= 16777619
	}
	return int(h % uint32(buckets))
}

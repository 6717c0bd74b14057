package redis

import (
	"errors"
	"strconv"
	"strings"
)

// keySuffixes ends the name of each key of a bucket, by its position
// (luanames.go); the Lua scripts name each key by its suffix (table K of
// lua/common.lua).
var keySuffixes = [keysPerBucket]string{
	keyGen: ":g2", keyExpiry: ":x",
	keyReasons: ":r", keyClients: ":c", keyOffline: ":o", keyOnline: ":on", keyOnlineCount: ":oc", keyJournal: ":j",
	keyLeases: ":l", keyWindow: ":w", keyHeld: ":h", keySessionRooms: ":sr", keySessionMeta: ":sm",
	keyMembers: ":rm", keyRoomIndex: ":rz", keyRoomCounts: ":rc", keyLeft: ":rl", keyHeldRooms: ":hr",
	keySessionAway: ":a", keyClientActivity: ":ca",
}

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

// layoutKeys are the keys that tell a bucket's key layout (see "Upgrading"
// in the package documentation): its generation marker, and layout 1's
// (the same name without the trailing '2').
func layoutKeys(keys []string) []string {
	return []string{keys[keyGen], strings.TrimSuffix(keys[keyGen], "2")}
}

// isLayout1 reports whether the values of a bucket's layoutKeys (MGET)
// are those of a bucket written by layout 1: its marker, and none of this
// layout's.
func isLayout1(v []any) bool { return len(v) == 2 && v[0] == nil && v[1] != nil }

// errLayout1 refuses a bucket written by layout 1: its data is never read
// as this layout's (the scripts refuse it with the same words, see LAYOUT
// in lua/common.lua).
var errLayout1 = errors.New("redis: bucket written by an older key layout (layout 1); see \"Upgrading\" in the package documentation")

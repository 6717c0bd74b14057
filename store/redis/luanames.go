package redis

// The positions the Lua scripts share with the Go code that calls them and
// reads their replies, named once here. Each script declares the same
// names, in snake case, in a table at its top (A for its ARGV, and so on),
// and reads ARGV only through those tables; TestLuaNames checks that every
// table agrees with these constants name by name and position by position.

// ARGV of add.lua.
const (
	addArgClient = iota + 1
	addArgSession
	addArgNode
	addArgTTL        // ms
	addArgAge        // ms
	addArgSiblingGen // generation a sibling session was last written in; '' if none
	addArgConsumer
	addArgJournalLen
	addArgMaxSessions    // 0: no cap
	addArgBucketGen      // generation the caller last saw of the bucket; '' if none
	addArgReassert       // ms: the re-assertion window
	addArgBucketSessions // the bucket's share of Config.MaxSessions; 0: no cap
	addArgBucketClients  // the bucket's share of Config.MaxClients; 0: no cap
	nAddArgs             = iota
)

// The reply of add.lua when a cap refuses a new session, having written
// nothing: one of these, naming the cap.
const (
	addRefusedClientSessions = iota + 1 // presence.Lease.MaxSessions
	addRefusedSessions                  // the bucket's share of Config.MaxSessions
	addRefusedClients                   // the bucket's share of Config.MaxClients, every client online
)

// ARGV of end.lua.
const (
	endArgMode    = iota + 1 // 'c' client, 'n' node
	endArgWho                // client ID or node
	endArgSession            // session ID or ''
	endArgReason
	endArgGrace     // ms
	endArgKnownGen  // generation the session was last written in; '' if unknown
	endArgRetention // ms; negative: none
	endArgConsumer
	endArgJournalLen
	endArgNode      // node of the session or caller; '' if unknown
	endArgLinger    // ms a session re-created after Redis lost it lingers at least
	endArgUnseen    // '1' if the reason is presence.Reason.Unseen, else '0'
	endArgBucketGen // generation the caller last saw of the bucket; '' if none
	endArgReassert  // ms: the re-assertion window
	endArgAt        // Redis ms: 'r' the session's grace deadline, 'o' when the Offline was decided
	nEndArgs        = iota
)

// ARGV of sweep.lua.
const (
	sweepArgRetention = iota + 1 // ms; negative: none
	sweepArgLimit                // per bucket
	sweepArgConsumer
	sweepArgJournalLen
	sweepArgReclaim       // ms; negative: never
	sweepArgNode          // the sweeping node, whose lease the call renews; '' for none
	sweepArgLease         // ms: how long the node's lease runs from now
	sweepArgReassert      // ms: the re-assertion window
	sweepArgBucketClients // a bucket's share of Config.MaxClients; 0: no cap
	nSweepArgs            = iota
)

// Per bucket of a sweep, after its ARGV: the generation the caller last
// saw of the bucket (empty if none).
const (
	sweepBucketGen = iota
	nSweepBucket
)

// ARGV of list.lua.
const (
	listArgAfter = iota + 1 // the client ID to list after; '' from the start
	listArgLimit
	nListArgs = iota
)

// ARGV of sessions.lua.
const (
	sessionsArgClient = iota + 1
	nSessionsArgs     = iota
)

// ARGV of touch.lua: a head, then per bucket a block of refreshes (a
// header, then items) and a block of full leases (a header, then items).
// The block positions count from the block's first argument.
const (
	touchArgConsumer = iota + 1
	touchArgJournalLen
	touchArgReassert // ms: the re-assertion window
	nTouchArgs       = iota
)

// Header of a bucket, before its refreshes: the generation the caller
// last saw of the bucket (empty if none).
const (
	touchBucketGen = iota
	nTouchBucket
)

// Header of a bucket's refreshes: their number, then the node, span (ms)
// and known generation they share.
const (
	touchRefreshCount = iota
	touchRefreshNode
	touchRefreshSpan
	touchRefreshGen
	nTouchRefresh
)

// One refresh: its session key and TTL (ms).
const (
	touchRefreshItemKey = iota
	touchRefreshItemTTL
	nTouchRefreshItem
)

// Header of a bucket's full leases: their number.
const (
	touchFullsCount = iota
	nTouchFulls
)

// One full lease.
const (
	touchFullClient = iota
	touchFullSession
	touchFullNode
	touchFullTTL // ms
	touchFullAge // ms
	touchFullGen // known generation; '' if none
	nTouchFull
)

// Fields of one transition in a script reply, from index 0 (1 in the Lua
// table EV of lua/common.lua).
const (
	eventKind = iota // "online" or "offline"
	eventClient
	eventSession
	eventReason
	eventSeq
	eventTime      // ms
	eventSeen      // ms
	eventOnlineFor // ms
	eventEntry     // journal entry ID
	nEventFields
)

// Keys of a bucket, from index 0 (1 in the Lua table K of lua/common.lua,
// which names each by its suffix in keySuffixes).
const (
	keyGen      = iota // string: generation marker
	keySessions        // hash: session key -> "seen|span|node"
	keyExpiry          // zset: session key -> deadline
	keyIndex           // zset: a client's sessions
	keyNodes           // zset: a node's sessions
	keyReasons         // hash: session key -> reason, while ending
	keyClients         // hash: client ID -> record
	keyOffline         // zset: offline client -> when
	keyOnline          // zset: online clients
	keyJournal         // stream
	keyLeases          // zset: node -> when its lease ends
	keyWindow          // string: set while the re-assertion window is open
	keyHeld            // hash: client ID -> held record, in and after the window
	keysPerBucket
)

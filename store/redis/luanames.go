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
	addArgRooms          // rooms the session joins, '\n' between them; '' for none
	addArgMeta           // the session's metadata; '' leaves it as it is
	addArgActivity       // "away", or '' for active
	addArgIdleFor        // ms: for away, how long ago the user was last active
	nAddArgs             = iota
)

// The reply of add.lua when a cap refuses a new session, having written
// nothing: one of these, naming the cap.
const (
	addRefusedClientSessions = iota + 1 // presence.Lease.MaxSessions
	addRefusedSessions                  // the bucket's share of Config.MaxSessions
	addRefusedClients                   // the bucket's share of Config.MaxClients, every client online
	addRefusedRooms                     // the session would be in more than presence.MaxRoomsPerSession rooms
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
	endArgNode          // node of the session or caller; '' if unknown
	endArgLinger        // ms a session re-created after Redis lost it lingers at least
	endArgUnseen        // '1' if the reason is presence.Reason.Unseen, else '0'
	endArgBucketGen     // generation the caller last saw of the bucket; '' if none
	endArgReassert      // ms: the re-assertion window
	endArgAt            // Redis ms: 'r' the session's grace deadline, 'o' ('l') when the Offline (Leave) was decided
	endArgRooms         // one session's rooms as its node holds them, '\n' between them; 'l' the room
	endArgMeta          // its metadata as its node holds it; '' if none
	endArgStamp         // Redis µs: when that metadata was set
	endArgRoomsGen      // generation its rooms were last written in; '' if unknown
	endArgKnownActivity // its activity as its node holds it: "away", or ''
	endArgKnownIdleFor  // ms: for away, how long ago its user was last active
	nEndArgs            = iota
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

// ARGV of nodes.lua.
const (
	nodesArgMember = iota + 1 // the Store's name in the registry
	nodesArgLease             // ms: how long its entry runs from now
	nNodesArgs     = iota
)

// ARGV of lease.lua.
const (
	leaseArgNode  = iota + 1 // the node whose lease is renewed
	leaseArgLease            // ms: how long it runs from now
	nLeaseArgs    = iota
)

// ARGV of list.lua.
const (
	listArgAfter = iota + 1 // the client ID to list after; '' from the start
	listArgLimit
	nListArgs = iota
)

// ARGV of rooms.lua.
const (
	roomsArgOp = iota + 1 // one of roomsOp...
	roomsArgClient
	roomsArgSession
	roomsArgRoom
	roomsArgReason    // Leave's; '' for presence.ReasonLeft
	roomsArgMeta      // SetMeta's new metadata
	roomsArgNode      // the session's node, as its Store knows it
	roomsArgTTL       // ms: its lease's TTL
	roomsArgSpan      // ms: its lease's span
	roomsArgKnownGen  // generation the session was last written in; '' if unknown
	roomsArgRoomsGen  // generation its rooms were last written in; '' if unknown
	roomsArgRooms     // its rooms as its Store knows them, '\n' between them
	roomsArgKnownMeta // its metadata as its Store knows it
	roomsArgStamp     // Redis µs: when that metadata was set
	roomsArgBucketGen // generation the caller last saw of the bucket; '' if none
	roomsArgReassert  // ms: the re-assertion window
	roomsArgConsumer
	roomsArgJournalLen
	roomsArgActivity      // SetActivity's: "away", or '' for active
	roomsArgIdleFor       // ms: for away, how long ago the user was last active
	roomsArgKnownActivity // the session's activity as its Store knows it: "away", or ''
	roomsArgKnownIdleFor  // ms: for away, how long ago its user was last active
	nRoomsArgs            = iota
)

// The operations of rooms.lua (its table OP).
const (
	roomsOpJoin     = "j"
	roomsOpLeave    = "l"
	roomsOpMeta     = "m"
	roomsOpReassert = "a" // write back the rooms and metadata Redis lost
	roomsOpActivity = "s" // SetActivity
)

// The status in a reply of rooms.lua.
const (
	roomsStatusOk        = iota // done
	roomsStatusNoSession        // no such session (Join, SetMeta: or it is ending)
	roomsStatusNotIn            // Leave: the session is not in the room
	roomsStatusLimit            // Join: the session is in presence.MaxRoomsPerSession rooms
)

// ARGV of members.lua.
const (
	membersArgRoom  = iota + 1
	membersArgAfter // the client ID to list after; '' from the start
	membersArgLimit
	nMembersArgs = iota
)

// ARGV of among.lua: the room, then per client its ID.
const (
	amongArgRoom = iota + 1
	nAmongArgs   = iota
)

const (
	amongItemClient = iota
	nAmongItem
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
	eventKind = iota // "online", "offline", "join", "leave", "update", "away" or "back"
	eventClient
	eventSession
	eventReason
	eventSeq
	eventTime      // ms
	eventSeen      // ms
	eventOnlineFor // ms
	eventEntry     // journal entry ID
	eventRoom      // a room transition's room; '' otherwise
	eventMeta      // Join's and Update's metadata; '' if none
	nEventFields
)

// Keys of a bucket, from index 0 (1 in the Lua table K of lua/common.lua,
// which names each by its suffix in keySuffixes).
const (
	keyGen            = iota // string: generation marker, named for the key layout (":g2")
	keyExpiry                // zset: session key -> deadline
	keyReasons               // hash: session key -> reason, while ending
	keyClients               // hash: client ID -> record, with its sessions
	keyOffline               // zset: offline client -> when
	keyOnline                // prefix of the zsets of online clients (":on:" sub)
	keyOnlineCount           // string: number of online clients
	keyJournal               // stream
	keyLeases                // zset: node -> when its lease ends
	keyWindow                // string: set while the re-assertion window is open
	keyHeld                  // hash: client ID -> held record, in and after the window
	keySessionRooms          // hash: session key -> its rooms
	keySessionMeta           // hash: session key -> "stamp|meta"
	keyMembers               // hash: room "\x00" client ID -> "n|since"
	keyRoomIndex             // zset: room "\x00" client ID, a room's members by lex range
	keyRoomCounts            // hash: room -> its members in the bucket
	keyLeft                  // zset: client ID "\x00" room -> when it left
	keyHeldRooms             // hash: client ID -> its held room transitions
	keySessionAway           // hash: session key -> last active time, away sessions only
	keyClientActivity        // hash: client ID -> "away|active"
	keysPerBucket
)

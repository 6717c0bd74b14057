-- add.lua: Store.Add for one session. KEYS: one bucket.
-- ARGV: A below (luanames.go: addArg...): client, session, node, ttl ms,
-- age ms, known generation of a sibling session ('' if none), consumer,
-- journal length, max sessions (0: no cap), the generation the caller
-- last saw of the bucket ('' if none), re-assertion window ms (see gen),
-- the bucket's share of the Store's sessions and of its clients (0: no
-- cap), the rooms the session joins ('\n' between them, '' for none) and
-- its metadata ('' to leave it as it is), its activity ('away', or '' for
-- active) and, for away, how long ago its user was last active (ms).
-- Returns: generation, Redis's time (µs, the stamp of metadata it
-- sets), then the transitions; when a cap refuses a new
-- session, having written nothing, one of NO: which cap (rooms: the
-- session would be in more than MAX_ROOMS rooms).
local A = { client = 1, session = 2, node = 3, ttl = 4, age = 5, sibling_gen = 6, consumer = 7, journal_len = 8, max_sessions = 9,
  bucket_gen = 10, reassert = 11, bucket_sessions = 12, bucket_clients = 13, rooms = 14, meta = 15, activity = 16,
  idle_for = 17 }
local NO = { client_sessions = 1, sessions = 2, clients = 3, rooms = 4 }
local MAX_ROOMS = 64
bucket(0)
local g = gen(ARGV[A.bucket_gen], tonumber(ARGV[A.reassert]))
local id, sid, node = ARGV[A.client], ARGV[A.session], ARGV[A.node]
local ttl, age = tonumber(ARGV[A.ttl]), tonumber(ARGV[A.age])
local lost = ARGV[A.sibling_gen] ~= '' and ARGV[A.sibling_gen] ~= g
J.consumer, J.maxlen, J.node = ARGV[A.consumer], tonumber(ARGV[A.journal_len]), node
local sk = id .. '\0' .. sid
local seen = NOW - age
local rooms, meta = splitrooms(ARGV[A.rooms]), ARGV[A.meta]
table.sort(rooms) -- Joins in room order
-- joinall joins the session to its rooms, the Online (if any) decided:
-- the Joins come after it.
local function joinall(m)
  for _, room in ipairs(rooms) do joinroom(id, sid, sk, room, m) end
end
-- awayat: the session's last active time if it is away, else nil.
local awayat = nil
if ARGV[A.activity] == 'away' then awayat = NOW - tonumber(ARGV[A.idle_for]) end
local x = gets(sk)
if x then
  -- The same session again: revive it if ending; the lease, not an
  -- earlier grace, decides its deadline. New metadata, which the Joins
  -- of its new rooms carry, then Updates in the rooms it was in.
  if #rooms > 0 then
    local have = getrooms(sk)
    local n = #have
    for _, room in ipairs(rooms) do
      if not hasroom(have, room) then n = n + 1 end
    end
    if n > MAX_ROOMS then return { NO.rooms } end
  end
  seen = math.max(seen, sseen(sk, x))
  redis.call('HDEL', B.r, sk)
  redis.call('ZADD', B.x, NOW + ttl, sk)
  own(sk, x, node)
  x.seen, x.span = seen, ttl + age
  puts(sk, x)
  local was = getrooms(sk)
  local changed = meta ~= '' and getmeta(sk) ~= meta
  if changed then putmeta(sk, meta, STAMP) end
  -- Its activity as SetActivity would set it: Away or Back before the
  -- room events.
  settle(id)
  local wasactive = active(id)
  setaway(id, sk, awayat)
  statechange(id, sid, wasactive, 'connect')
  joinall((getmeta(sk)))
  if changed then updates(id, sid, was, meta) end
  local r = { g, STAMP }
  for i = 1, #out do r[#r + 1] = out[i] end
  return r
end
-- The cap counts the client's live sessions: not ending (no reason), lease
-- not run out. A refusal leaves no session, client or journal entry (at
-- most the bucket's generation marker, which gen() above may have set).
local cap = tonumber(ARGV[A.max_sessions])
if cap > 0 then
  local live = 0
  for _, k in ipairs(sessionkeys(id)) do
    if redis.call('HEXISTS', B.r, k) == 0 then
      local d = redis.call('ZSCORE', B.x, k)
      if d and tonumber(d) > NOW then live = live + 1 end
    end
  end
  if live >= cap then return { NO.client_sessions } end
end
-- The Store's caps, as this bucket's share of them, counted by the bucket's
-- own hashes, so no count can drift from what is stored. A new client
-- takes the place of the bucket's client offline the longest; a bucket
-- over its share (a lower cap, sessions re-created after data loss) takes
-- none until it is back within it (trimclients, in Sweep).
local smax, cmax = tonumber(ARGV[A.bucket_sessions]), tonumber(ARGV[A.bucket_clients])
if smax > 0 and redis.call('ZCARD', B.x) >= smax then return { NO.sessions } end
if cmax > 0 then
  local n = redis.call('HLEN', B.c)
  if n >= cmax and redis.call('HEXISTS', B.c, id) == 0 and (n > cmax or forgetoffline(1) == 0) then
    return { NO.clients }
  end
end
-- A node new to the bucket gets a lease (doc.go, "Nodes") as long as its
-- session's, until its sweeps renew it: so a node that dies before its
-- first sweep still has its sessions reported node_lost.
if redis.call('ZADD', B.l, 'NX', NOW + ttl, node) == 1 then forgetleases() end
-- A client this node knew online before Redis lost the bucket comes back
-- without an event.
local wasactive = active(id)
addsession(id, sid, sk, node, NOW + ttl, seen, lost)
-- Away (a first session away) or Back (an active session of an away
-- client): after the Online, before the Joins.
setaway(id, sk, awayat)
statechange(id, sid, wasactive, 'connect')
-- A new session's metadata is set before it joins: its Joins carry it,
-- and no Update follows.
if meta ~= '' then putmeta(sk, meta, STAMP) end
joinall(meta)
local r = { g, STAMP }
for i = 1, #out do r[#r + 1] = out[i] end
return r

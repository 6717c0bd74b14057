-- common.lua: prepended to every script of the store.
--
-- Every position shared with Go is named in a table (K, EV here; A and
-- others in each script) that luanames.go names too; TestLuaNames checks
-- that the two agree, and that the scripts read ARGV only through them.
--
-- Each bucket has KN keys, passed in this order (see keys.go):
--   g2  string  generation marker: set when the bucket is first written, so a
--               node can tell that Redis lost the bucket's data since. Its
--               suffix (:g2) names the key layout: a bucket with the marker
--               of layout 1 (:g) is refused (see gen)
--   x   zset    session key -> deadline (ms, Redis clock): the expiry index
--   r   hash    session key -> reason, for ending sessions only
--   c   hash    client ID -> its record, with its sessions' (see getc)
--   o   zset    offline client ID -> when it went offline (ms): Retention,
--               and MaxClients (forgetoffline)
--   on  zsets   online client ID, score 0: List. Not a key itself: the
--               prefix of ONSUBS sorted sets (see onkey), each small
--               enough for Redis's compact encoding
--   oc  string  the number of online clients (Count)
--   j   stream  the journal of transitions, with consumer group "hooks"
--   l   zset    node -> when its lease ends (ms): renewed by the node's
--               sweeps, read by Sweep to tell node_lost from expired
--   w   string  set while the bucket's re-assertion window is open (PX)
--   h   hash    client ID -> its held record (see held): a client whose
--               transitions the window holds (see gen)
--   sr  hash    session key -> the session's rooms, sorted, '\n' between
--   sm  hash    session key -> "stamp|meta": its metadata, set at stamp (µs)
--   rm  hash    room .. "\0" .. client ID -> "n|since": a member of a room,
--               n its sessions in the room, since when it joined (ms)
--   rz  zset    room .. "\0" .. client ID, score 0: a room's members by lex
--               range (Members)
--   rc  hash    room -> its members in the bucket (RoomCount sums them)
--   rl  zset    client ID .. "\0" .. room -> when it last left the room (ms):
--               MembersAmong; forgotten with the client, at most LEFT_MAX
--               per client
--   hr  hash    client ID -> its held room transitions (see roomholds)
--   a   hash    session key -> its last active time (ms), for away
--               sessions only: an active session's is its last beat
--   ca  hash    client ID -> "away|active": how many of its sessions
--               (ending ones included) are away, and the latest last
--               active time of the sessions it no longer has ('' if
--               none); no entry for a client with no away session whose
--               last active time its record already says (see States)
-- A session key is client ID .. "\0" .. session ID: IDs have no control
-- characters, so the pair is unambiguous, and IDs are only ever fields and
-- members, never parts of key names.
--
-- Last seen. A live session's deadline is its last beat plus its span (the
-- lease's TTL + Age, the same on every refresh of a Tracker), so a refresh
-- only moves the deadline: the session's last beat is read back as
-- deadline - span, and the "seen" of its record is only a floor, written
-- when the span changes or the session ends. A client's last seen is the
-- "seen" of its record while offline, and the latest of its sessions' while
-- online: see sseen, and Store.lastSeen in store.go.

-- K: position of each key in a bucket's KEYS, by its name above
-- (luanames.go: key..., keySuffixes).
local K = { g2 = 1, x = 2, r = 3, c = 4, o = 5, on = 6, oc = 7, j = 8, l = 9, w = 10, h = 11, sr = 12, sm = 13, rm = 14,
  rz = 15, rc = 16, rl = 17, hr = 18, a = 19, ca = 20 }
-- size returns the number of entries of table t.
local function size(t)
  local n = 0
  for _ in pairs(t) do n = n + 1 end
  return n
end
local KN = size(K)
-- EV: position of each field of a transition in a reply (luanames.go:
-- event...).
local EV = { kind = 1, client = 2, session = 3, reason = 4, seq = 5, time = 6, seen = 7, online_for = 8, entry = 9, room = 10,
  meta = 11 }
local T = redis.call('TIME')
local NOW = tonumber(T[1]) * 1000 + math.floor(tonumber(T[2]) / 1000)
-- STAMP is when metadata set now was set (µs): Member.Metas are ordered by
-- it, and two scripts never run in the same microsecond.
local STAMP = tonumber(T[1]) * 1000000 + tonumber(T[2])
-- A client record created from nothing starts its seq at a multiple of
-- SEQ_UNIT taken from the Redis clock, so it is above any seq an earlier
-- record of the same client (forgotten, or lost in a restart) reached.
local SEQ_UNIT = 2097152
local SEQ_EPOCH = 1700000000

-- LAYOUT names this key layout in errors: a bucket written by an earlier
-- one (its generation marker is g without the trailing '2') is refused,
-- never misread (doc.go, "Upgrading").
local LAYOUT = 'VIGILLAYOUT store/redis: bucket written by an older key layout (layout 1); see "Upgrading" in the package documentation'

local B = {}
-- CR caches the client records this call read or wrote in the current
-- bucket, by client ID (false: none), so that every function sees the
-- same, current record: a record holds its client's sessions (see getc),
-- which many functions change.
local CR = {}

local function fmt(n) return string.format('%.0f', n) end

local function bucket(i)
  local o = i * KN
  for name, p in pairs(K) do B[name] = KEYS[o + p] end
  CR = {}
end

-- QUIET is set by a script that returns no transitions (touch.lua): it
-- must decide none.
local QUIET = false

-- WIN caches whether the current bucket's re-assertion window is open:
-- nil until win() reads it (gen resets it for each bucket).
local WIN = nil

-- win reports whether the current bucket's re-assertion window is open.
local function win()
  if WIN == nil then WIN = redis.call('EXISTS', B.w) == 1 end
  return WIN
end

-- gen returns the bucket's generation, creating it (and the journal's
-- consumer group) when the bucket is new or its data was lost, and opens
-- the bucket's re-assertion window when Redis lost the bucket's data:
-- known is the generation the caller last saw of this bucket ('' if none),
-- so a generation the caller did not know, made less than window ms ago,
-- means the data the caller knew is gone. While the window is open, the
-- nodes re-assert what they hold (silently) and every transition the
-- bucket would decide is held in h, then decided once, by the first Sweep
-- after the window, against the re-asserted state (see hold, decideheld).
-- A bucket new to every caller opens no window.
local function gen(known, window)
  local g = redis.call('GET', B.g2)
  if not g then
    -- The marker of layout 1 is this one's name without its '2'.
    if redis.call('EXISTS', string.sub(B.g2, 1, -2)) == 1 then error({ err = LAYOUT }) end
    g = T[1] .. '.' .. T[2]
    redis.call('SET', B.g2, g)
    redis.pcall('XGROUP', 'CREATE', B.j, 'hooks', '$', 'MKSTREAM')
  end
  WIN = nil
  if known ~= '' and known ~= g and window > 0 and not win() then
    local sec, usec = string.match(g, '^(%d+)%.(%d+)$')
    local left = tonumber(sec) * 1000 + math.floor(tonumber(usec) / 1000) + window - NOW
    if left > 0 then
      redis.call('SET', B.w, '1', 'PX', left)
      WIN = true
    end
  end
  return g
end

local function newseq()
  return (tonumber(T[1]) - SEQ_EPOCH) * SEQ_UNIT
end

-- Numbers in records are written in base 36 (see b36): a time in ms takes
-- 8 characters instead of 13.
local DIGITS = '0123456789abcdefghijklmnopqrstuvwxyz'

-- b36 writes integer n in base 36, with a leading '-' if negative.
local function b36(n)
  n = math.floor(n)
  if n < 0 then return '-' .. b36(-n) end
  if n < 36 then return string.sub(DIGITS, n + 1, n + 1) end
  local t = {}
  while n > 0 do
    local d = n % 36
    t[#t + 1] = string.sub(DIGITS, d + 1, d + 1)
    n = (n - d) / 36
  end
  return string.reverse(table.concat(t))
end

-- n36 reads a number b36 wrote.
local function n36(s)
  if string.sub(s, 1, 1) == '-' then return -tonumber(string.sub(s, 2), 36) end
  return tonumber(s, 36)
end

-- getc returns client id's record, or nil: its seq, since, seen, its
-- sessions S, sorted by session ID, each { sid, seen, span, node } (see
-- "Last seen"), and, derived from S, n (their number) and sid (the ID of
-- its one session, '' unless it has exactly one). The record is
-- "seq|seen|since", then per session '\1' sid '\2' seen '\2' span '\2'
-- node, numbers in base 36 (b36), since as since - seen and a session's
-- seen as its seen - the client's (both mostly 0 or small): IDs have no
-- control characters.
local function getc(id)
  local c = CR[id]
  if c ~= nil then return c or nil end
  local v = redis.call('HGET', B.c, id)
  if not v then
    CR[id] = false
    return nil
  end
  local i = string.find(v, '\1', 1, true)
  local seq, seen, since = string.match(i and string.sub(v, 1, i - 1) or v, '^(%w+)|(%-?%w+)|(%-?%w+)$')
  if not seq then error({ err = LAYOUT }) end
  c = { seq = n36(seq), seen = n36(seen), S = {} }
  c.since = c.seen + n36(since)
  if i then
    for e in string.gmatch(string.sub(v, i + 1), '[^\1]+') do
      local sid, sseen, span, node = string.match(e, '^([^\2]*)\2([^\2]*)\2([^\2]*)\2(.*)$')
      if not sid then error({ err = LAYOUT }) end
      c.S[#c.S + 1] = { sid = sid, seen = c.seen + n36(sseen), span = n36(span), node = node }
    end
  end
  c.n = #c.S
  c.sid = c.n == 1 and c.S[1].sid or ''
  CR[id] = c
  return c
end

local function putc(id, c)
  CR[id] = c
  local t = { b36(c.seq) .. '|' .. b36(c.seen) .. '|' .. b36(c.since - c.seen) }
  for _, x in ipairs(c.S) do
    t[#t + 1] = x.sid .. '\2' .. b36(x.seen - c.seen) .. '\2' .. b36(x.span) .. '\2' .. x.node
  end
  redis.call('HSET', B.c, id, table.concat(t, '\1'))
end

-- The online clients of a bucket, for List, are spread over ONSUBS sorted
-- sets by a hash of the ID (onsub), so that up to about 64 × ONSUBS
-- (32,768) online clients per bucket, each set stays within Redis's
-- zset-max-listpack-entries (128) and is kept compact (listpack, about
-- 10 bytes per member of 6 bytes, instead of about 100 in a skiplist).
-- Their number is kept in oc, for Count. List walks a bucket's sets in
-- order, each by ID.
local ONSUBS = 512

-- onsub returns the set (0 to ONSUBS - 1) that holds client id while
-- it is online.
local function onsub(id)
  local h = 0
  for i = 1, #id do h = (h * 31 + string.byte(id, i)) % 2147483647 end
  return h % ONSUBS
end

local function onkey(sub) return B.on .. ':' .. b36(sub) end

-- setonline adds client id to the online clients, or takes it out (on
-- false).
local function setonline(id, on)
  if on then
    if redis.call('ZADD', onkey(onsub(id)), 0, id) == 1 then redis.call('INCR', B.oc) end
  elseif redis.call('ZREM', onkey(onsub(id)), id) == 1 then
    redis.call('DECR', B.oc)
  end
end

-- delc forgets client id's record.
local function delc(id)
  redis.call('HDEL', B.c, id)
  CR[id] = false
end

-- setsessions sets c's sessions to S (sorted by session ID), and n and
-- sid with them.
local function setsessions(c, S)
  table.sort(S, function(a, b) return a.sid < b.sid end)
  c.S, c.n = S, #S
  c.sid = c.n == 1 and S[1].sid or ''
end

-- othersess returns the sessions of record c but sid.
local function othersess(c, sid)
  local S = {}
  for _, o in ipairs(c.S) do
    if o.sid ~= sid then S[#S + 1] = o end
  end
  return S
end

-- addsess adds session x to record c (replacing one of the same ID).
local function addsess(c, x)
  local S = othersess(c, x.sid)
  S[#S + 1] = x
  setsessions(c, S)
end

-- delsess drops session sid from record c.
local function delsess(c, sid) setsessions(c, othersess(c, sid)) end

-- CHUNK bounds the fields or members of one command a script sends.
local CHUNK = 1000

-- many runs cmd (HMGET, ZMSCORE: a key, then fields or members) over list
-- in commands of at most CHUNK, and returns the replies in one list.
local function many(cmd, key, list)
  local out = {}
  for i = 1, #list, CHUNK do
    local part = redis.call(cmd, key, unpack(list, i, math.min(i + CHUNK - 1, #list)))
    for j = 1, #part do out[i + j - 1] = part[j] end
  end
  return out
end

-- gets returns session sk's record in its client's (see getc), or nil:
-- the table in c.S, which puts writes back.
local function gets(sk)
  local i = string.find(sk, '\0', 1, true)
  local c = getc(string.sub(sk, 1, i - 1))
  if not c then return nil end
  local sid = string.sub(sk, i + 1)
  for _, x in ipairs(c.S) do
    if x.sid == sid then return x end
  end
  return nil
end

-- puts writes session sk's record x (from gets) back with its client's.
local function puts(sk, x)
  local i = string.find(sk, '\0', 1, true)
  local id = string.sub(sk, 1, i - 1)
  local c = getc(id)
  x.sid = string.sub(sk, i + 1)
  addsess(c, x)
  putc(id, c)
end

-- own moves session sk, whose record is x, to node (the caller writes x
-- back).
local function own(sk, x, node)
  x.node = node
end

-- sseen returns the last beat of session sk, whose record is x: the floor
-- in its record, or for a live (not ending) session its deadline - span if
-- later.
local function sseen(sk, x)
  if redis.call('HEXISTS', B.r, sk) == 1 then return x.seen end
  local d = redis.call('ZSCORE', B.x, sk)
  if not d then return x.seen end
  return math.max(x.seen, tonumber(d) - x.span)
end

-- under returns the members of the zset key (scores 0, in byte order)
-- that start with p .. '\0': a client's left rooms in rl. At most limit of
-- them if given.
local function under(key, p, limit)
  if limit then
    return redis.call('ZRANGEBYLEX', key, '[' .. p .. '\0', '(' .. p .. '\1', 'LIMIT', 0, limit)
  end
  return redis.call('ZRANGEBYLEX', key, '[' .. p .. '\0', '(' .. p .. '\1')
end

local function clientof(sk)
  local i = string.find(sk, '\0', 1, true)
  return string.sub(sk, 1, i - 1), string.sub(sk, i + 1)
end

-- sessionkeys returns the session keys of client id, in session ID
-- order; at most limit of them if given.
local function sessionkeys(id, limit)
  local c = getc(id)
  local t = {}
  if not c then return t end
  for _, x in ipairs(c.S) do
    if limit and #t >= limit then break end
    t[#t + 1] = id .. '\0' .. x.sid
  end
  return t
end

-- Journal settings, set by each script from its arguments.
local J = { consumer = '', maxlen = 10000, node = '' }

-- out collects transitions: the fields of EV each.
local out = {}

-- KIND and REASON code a transition's kind and the usual reasons in the
-- journal, in a byte or two each (decode.go: journalReasons; a kind is
-- its presence.Transition). A reason without a code is written with a
-- leading '~'.
local KIND = { online = 1, offline = 2, join = 3, leave = 4, update = 5, away = 6, back = 7 }
local REASON = { connect = 1, closed = 2, left = 3, expired = 4, idle = 5, shutdown = 6, restart = 7, node_lost = 8,
  kicked = 9 }

-- transition records a transition in the journal, claims it for this
-- caller (so it is pending until the caller acknowledges it) and appends it
-- to out. room and meta are those of a room transition (nil otherwise).
-- An entry is c client, t kind (KIND), s session, r reason (REASON, '~'
-- and the reason, or ''), q seq, tm time (ms), ls how long before tm the
-- client was last seen (ms), of online for (ms), n node, and rm room and m
-- metadata for a room transition: numbers in decimal, which Redis keeps
-- as integers.
local function transition(kind, id, sid, reason, c, onlinefor, room, meta)
  local r = REASON[reason]
  if r then r = fmt(r) elseif reason ~= '' then r = '~' .. reason else r = '' end
  local f = { 'c', id, 't', fmt(KIND[kind]), 's', sid, 'r', r, 'q', fmt(c.seq), 'tm', fmt(NOW),
    'ls', fmt(NOW - c.seen), 'of', fmt(onlinefor), 'n', J.node }
  if room then f[#f + 1] = 'rm'; f[#f + 1] = room end
  if meta and meta ~= '' then f[#f + 1] = 'm'; f[#f + 1] = meta end
  local eid = redis.call('XADD', B.j, 'MAXLEN', '~', J.maxlen, '*', unpack(f))
  if J.consumer ~= '' then
    redis.call('XCLAIM', B.j, 'hooks', J.consumer, 0, eid, 'FORCE', 'JUSTID')
  end
  local e = {}
  e[EV.kind], e[EV.client], e[EV.session], e[EV.reason] = kind, id, sid, reason
  e[EV.seq], e[EV.time], e[EV.seen], e[EV.online_for] = fmt(c.seq), fmt(NOW), fmt(c.seen), fmt(onlinefor)
  e[EV.entry], e[EV.room], e[EV.meta] = eid, room or '', meta or ''
  local base = #out
  for i = 1, #e do out[base + i] = e[i] end
end

-- held returns the held record of client id (see gen), or nil: whether it
-- was online before the window ("before"), the activity ('a' active, 'w'
-- away) a node held for each of its live sessions it re-asserted ("acts",
-- by session ID: see holdstate), the session and reason of the last
-- Away or Back it held ("ssid", "sreason"), the latest grace deadline of
-- its re-asserted ending sessions ("maxd") and the latest Offline a node
-- remembers deciding for it ("maxt") before Redis lost the data (Redis
-- ms), and what its Offline would carry if it went offline in the window.
local function held(id)
  local v = redis.call('HGET', B.h, id)
  if not v then return nil end
  local before, seq, seen, of, maxd, maxt, rest = string.match(v, '^(%d)|(%d+)|(%d+)|(%d+)|(%d+)|(%d+)|(.*)$')
  local reason, sid, acts, st = string.match(rest, '^([^%z]*)%z([^%z]*)%z?([^%z]*)%z?(.*)$')
  local ssid, sreason = string.match(st, '^([^\1]*)\1(.*)$')
  local t = {}
  for e in string.gmatch(acts, '[^\2]+') do
    local k, a = string.match(e, '^(.*)\1([aw])$')
    t[k] = a
  end
  return { before = before == '1', seq = tonumber(seq), seen = tonumber(seen), onlinefor = tonumber(of),
    maxd = tonumber(maxd), maxt = tonumber(maxt), reason = reason, sid = sid, acts = t, ssid = ssid or '',
    sreason = sreason or '' }
end

local function puth(id, h)
  local acts = {}
  for k, a in pairs(h.acts) do acts[#acts + 1] = k .. '\1' .. a end
  table.sort(acts)
  redis.call('HSET', B.h, id, (h.before and '1' or '0') .. '|' .. fmt(h.seq) .. '|' .. fmt(h.seen) .. '|' ..
    fmt(h.onlinefor) .. '|' .. fmt(h.maxd) .. '|' .. fmt(h.maxt) .. '|' .. h.reason .. '\0' .. h.sid .. '\0' ..
    table.concat(acts, '\2') .. '\0' .. h.ssid .. '\1' .. h.sreason)
end

-- hold starts holding client id's transitions, if not yet held: before is
-- whether it counted as online (its record is online, or known says a node
-- held one of its sessions live before Redis lost the data). known also
-- marks a client held already. d and t, if given, raise the hold's maxd
-- (a re-asserted ending session's grace deadline) and maxt (an Offline a
-- node remembers deciding).
local function hold(id, online, known, d, t)
  local h = held(id)
  if h and (h.before or not known) and not d and not t then return h end
  h = h or { before = online, seq = 0, seen = 0, onlinefor = 0, maxd = 0, maxt = 0, reason = '', sid = '', acts = {},
    ssid = '', sreason = '' }
  h.before = h.before or known
  if d then h.maxd = math.max(h.maxd, d) end
  if t then h.maxt = math.max(h.maxt, t) end
  puth(id, h)
  return h
end

-- Rooms. A session's rooms are a list in sr; a client is a member of a
-- room (rm, rz, rc) while at least one of its sessions has the room in its
-- list, ending sessions included. A beat never reads or writes any of it.

-- LEFT_MAX bounds the rooms a client's left times (rl) are kept for: the
-- ones it left last.
local LEFT_MAX = 128

-- getrooms returns session sk's rooms, sorted.
local function getrooms(sk)
  local t = {}
  local v = redis.call('HGET', B.sr, sk)
  if v then
    for r in string.gmatch(v, '[^\n]+') do t[#t + 1] = r end
  end
  return t
end

local function putrooms(sk, t)
  if #t == 0 then
    redis.call('HDEL', B.sr, sk)
    return
  end
  table.sort(t)
  redis.call('HSET', B.sr, sk, table.concat(t, '\n'))
end

-- splitrooms reads a room list as Go sends it ('\n' between rooms).
local function splitrooms(v)
  local t = {}
  for r in string.gmatch(v, '[^\n]+') do t[#t + 1] = r end
  return t
end

-- hasroom returns the position of room in t, or nil.
local function hasroom(t, room)
  for i = 1, #t do
    if t[i] == room then return i end
  end
  return nil
end

-- getmeta returns session sk's metadata ('' if none) and when it was set
-- (Redis µs, see STAMP; 0 if none).
local function getmeta(sk)
  local v = redis.call('HGET', B.sm, sk)
  if not v then return '', 0 end
  local i = string.find(v, '|', 1, true)
  return string.sub(v, i + 1), tonumber(string.sub(v, 1, i - 1))
end

local function putmeta(sk, meta, stamp)
  if meta == '' then
    redis.call('HDEL', B.sm, sk)
  else
    redis.call('HSET', B.sm, sk, fmt(stamp) .. '|' .. meta)
  end
end

-- enter counts one more session of client id in room, and reports whether
-- the client was in none before (it joins).
local function enter(id, room)
  local mk = room .. '\0' .. id
  local v = redis.call('HGET', B.rm, mk)
  if v then
    local n, since = string.match(v, '^(%d+)|(%d+)$')
    redis.call('HSET', B.rm, mk, fmt(tonumber(n) + 1) .. '|' .. since)
    return false
  end
  redis.call('HSET', B.rm, mk, '1|' .. fmt(NOW))
  redis.call('ZADD', B.rz, 0, mk)
  redis.call('HINCRBY', B.rc, room, 1)
  return true
end

-- forgetleft drops client id's left times and activity record, when its
-- record is forgotten.
local function forgetleft(id)
  redis.call('HDEL', B.ca, id)
  local m = under(B.rl, id)
  for i = 1, #m, CHUNK do
    redis.call('ZREM', B.rl, unpack(m, i, math.min(i + CHUNK - 1, #m)))
  end
end

-- quit counts one session fewer of client id in room, and reports whether
-- it was the last (the client leaves); then it remembers when: seen, the
-- client's last beat in the room or when it left (rl), for the LEFT_MAX
-- rooms it left last.
local function quit(id, room, seen)
  local mk = room .. '\0' .. id
  local v = redis.call('HGET', B.rm, mk)
  if not v then return false end
  local n, since = string.match(v, '^(%d+)|(%d+)$')
  if tonumber(n) > 1 then
    redis.call('HSET', B.rm, mk, fmt(tonumber(n) - 1) .. '|' .. since)
    return false
  end
  redis.call('HDEL', B.rm, mk)
  redis.call('ZREM', B.rz, mk)
  if redis.call('HINCRBY', B.rc, room, -1) <= 0 then redis.call('HDEL', B.rc, room) end
  if redis.call('ZADD', B.rl, seen, id .. '\0' .. room) == 1 and
      redis.call('ZLEXCOUNT', B.rl, '[' .. id .. '\0', '(' .. id .. '\1') > LEFT_MAX then
    local m = under(B.rl, id)
    local sc = many('ZMSCORE', B.rl, m)
    local oldest, at = nil, nil
    for i = 1, #m do
      if not at or tonumber(sc[i]) < at then oldest, at = m[i], tonumber(sc[i]) end
    end
    redis.call('ZREM', B.rl, oldest)
  end
  return true
end

-- roomholds returns the held room transitions of client id (see gen), by
-- room: whether it was in the room before the window ("before": '1', '0',
-- or 'e' if only an ending session a node re-asserted had it there, which
-- counts as the client's Offline does, see decide), the session of an
-- Update owed ("upd", '' if none), what its Leave would carry, the latest
-- grace deadline of the re-asserted ending sessions that had it in the
-- room ("d") and the latest Leave of the room a node remembers deciding
-- for it ("t") before Redis lost the data (Redis ms).
local function roomholds(id)
  local t = {}
  local v = redis.call('HGET', B.hr, id)
  if not v then return t end
  for e in string.gmatch(v, '[^\2]+') do
    local room, before, upd, sid, reason, seen, d, lt = string.match(e,
      '^([^\1]*)\1([^\1]*)\1([^\1]*)\1([^\1]*)\1([^\1]*)\1(%d+)\1(%d+)\1(%d+)$')
    t[room] = { before = before, upd = upd, sid = sid, reason = reason, seen = tonumber(seen), d = tonumber(d),
      t = tonumber(lt) }
  end
  return t
end

local function putroomholds(id, t)
  local parts = {}
  for room, h in pairs(t) do
    parts[#parts + 1] = table.concat({ room, h.before, h.upd, h.sid, h.reason, fmt(h.seen), fmt(h.d), fmt(h.t) }, '\1')
  end
  redis.call('HSET', B.hr, id, table.concat(parts, '\2'))
end

-- holdroom holds client id's transitions in room while the window is open
-- (as hold does its Online and Offline, which it starts holding too, so
-- that the Sweep that decides the client decides its rooms): member is
-- whether it was in the room before this call (kept from the first hold);
-- known, if given, that a node held it there before Redis lost the data
-- ('1' through a live session, 'e' an ending one). upd names a session
-- whose new metadata is owed an Update; left, {sid, reason, seen}, what a
-- Leave would carry. d and lt, if given, raise the hold's d (the grace
-- deadline of a re-asserted ending session in the room, with known 'e')
-- and t (a Leave of the room a node remembers deciding).
local function holdroom(id, room, member, known, upd, left, d, lt)
  local t = roomholds(id)
  local h = t[room]
  if not h then
    h = { before = member and '1' or '0', upd = '', sid = '', reason = '', seen = 0, d = 0, t = 0 }
    t[room] = h
  end
  if known == '1' or (known == 'e' and h.before == '0') then h.before = known end
  if upd then h.upd = upd end
  if left then h.sid, h.reason, h.seen = left[1], left[2], left[3] end
  if d then h.d = math.max(h.d, d) end
  if lt then h.t = math.max(h.t, lt) end
  putroomholds(id, t)
  local c = getc(id)
  hold(id, c ~= nil and c.n > 0, false)
end

-- roomsession returns the session of client id in room whose metadata was
-- set last, and that metadata.
local function roomsession(id, room)
  local sid, meta, at = '', '', -1
  for _, sk in ipairs(sessionkeys(id)) do
    if hasroom(getrooms(sk), room) then
      local m, st = getmeta(sk)
      if st > at then
        local _, s = clientof(sk)
        sid, meta, at = s, m, st
      end
    end
  end
  return sid, meta
end

-- States (see doc.go, "States"). A session is active unless a holds its
-- last active time; a client is away while all its sessions are (ca's count
-- of away sessions reaches its record's count). A beat never reads or
-- writes any of it, so an away session costs no more per beat.

-- getca returns client id's activity record: its away sessions and the
-- remembered last active time (nil if none).
local function getca(id)
  local v = redis.call('HGET', B.ca, id)
  if not v then return { away = 0, la = nil } end
  local n, la = string.match(v, '^(%d+)|(%d*)$')
  return { away = tonumber(n), la = tonumber(la) }
end

local function putca(id, ca)
  if ca.away == 0 and not ca.la then
    redis.call('HDEL', B.ca, id)
    return
  end
  redis.call('HSET', B.ca, id, fmt(ca.away) .. '|' .. (ca.la and fmt(ca.la) or ''))
end

-- active reports whether client id counts as active: it has an active
-- session, or none at all (so its first session, if away, makes it Away).
local function active(id)
  local c = getc(id)
  if not c or c.n == 0 then return true end
  return getca(id).away < c.n
end

-- setaway records session sk of client id away, last active at, or active
-- (at nil).
local function setaway(id, sk, at)
  local was = redis.call('HEXISTS', B.a, sk) == 1
  if at then
    redis.call('HSET', B.a, sk, fmt(at))
  elseif was then
    redis.call('HDEL', B.a, sk)
  end
  if was == (at ~= nil) then return end
  local ca = getca(id)
  ca.away = math.max(0, ca.away + (at and 1 or -1))
  putca(id, ca)
end

-- statechange decides client id's Away or Back (session sid, reason) if
-- whether it has an active session is no longer wasactive. While the
-- window is open the change is held: decide compares the state before the
-- window with the state after it.
local function statechange(id, sid, wasactive, reason)
  local c = getc(id)
  if not c or c.n == 0 then return end
  local act = getca(id).away < c.n
  if act == wasactive then return end
  if win() then
    -- What the Away or Back decided after the window carries: the last
    -- change's session and reason.
    local new = held(id) == nil
    local h = hold(id, true, false)
    -- A client the window did not hold yet was as it is now but for
    -- this change (under the key '', which no session ID is).
    if new then h.acts[''] = wasactive and 'a' or 'w' end
    h.ssid, h.sreason = sid, reason
    puth(id, h)
    return
  end
  c.seq = c.seq + 1
  putc(id, c)
  transition(act and 'back' or 'away', id, sid, reason, c, 0)
end

-- AWAY holds, by client, the Away a removal of this call owes (the session
-- and reason): given by flushaway once the call's removals are done, so
-- that a call that removes every session of a client gives its Offline
-- alone.
local AWAY = {}

local function flushaway()
  local ids = {}
  for id in pairs(AWAY) do ids[#ids + 1] = id end
  table.sort(ids)
  for _, id in ipairs(ids) do statechange(id, AWAY[id][1], true, AWAY[id][2]) end
  AWAY = {}
end

-- holdstate records, while the window is open, the activity a node held
-- for live session sid of client id before Redis lost the data (away, or
-- active), unless weak and one is recorded: a session Touch re-creates
-- counts as active until its node's Sweep writes back its activity.
local function holdstate(id, sid, away, weak)
  if not win() then return end
  local h = hold(id, true, true)
  if weak and h.acts[sid] then return end
  h.acts[sid] = away and 'w' or 'a'
  puth(id, h)
end

-- wasaway reports whether a held client (h) was away before the window:
-- online, and every live session a node re-asserted away.
local function wasaway(h)
  local any = false
  for _, a in pairs(h.acts) do
    if a == 'a' then return false end
    any = true
  end
  return any
end

-- clientstate returns client id's state and last active time (ms, 0 if
-- unknown); c is its record (nil if none).
local function clientstate(id, c)
  if not c then return 'offline', 0 end
  local ca = getca(id)
  if c.n == 0 then return 'offline', ca.la or c.seen end
  local t = ca.la or 0
  for _, sk in ipairs(sessionkeys(id)) do
    local x = gets(sk)
    if x then
      local a = redis.call('HGET', B.a, sk)
      t = math.max(t, a and tonumber(a) or sseen(sk, x))
    end
  end
  if ca.away >= c.n then return 'away', t end
  return 'online', t
end

-- decide ends the hold of client id once the window is closed: the one
-- transition between what it was before and what its record says now, if
-- they differ, then its Away or Back if it was online before and now and
-- its activity differs (see wasaway). It was online before if a node held one of its sessions
-- live, or an ending one whose grace ended after the last Offline any
-- node remembers deciding for it (that Offline was still owed). Held
-- changes in between cancel out: a late Online (or Offline) rather than a
-- doubled one. Its rooms alike, each decided between its Online and its
-- Offline: a Join or a Leave if it is in the room now and was not, or the
-- other way round; an Update if its metadata there changed and it stayed.
-- An ending session's room counts only if its grace ended after the last
-- Offline and the last Leave of that room any node remembers deciding for
-- the client: otherwise that Leave was decided already.
local function decide(id)
  local h = held(id)
  if not h then return end
  redis.call('HDEL', B.h, id)
  local rh = roomholds(id)
  redis.call('HDEL', B.hr, id)
  local c = getc(id)
  local online = c ~= nil and c.n > 0
  local before = h.before or h.maxd > h.maxt
  if online and not before then
    -- The event names a session of the client: its record names one only
    -- when it has exactly one.
    local sid = c.sid
    if sid == '' then
      local _, other = clientof(sessionkeys(id, 1)[1])
      sid = other
    end
    transition('online', id, sid, 'connect', c, 0)
  end
  local q = (c and c.seq) or h.seq
  if q == 0 then q = newseq() end
  local q0 = q
  -- Away or Back, between its Online and its rooms: a client that was
  -- offline before counts as active, as for an Add.
  if online then
    local isaway = getca(id).away >= c.n
    if isaway ~= (before and wasaway(h)) then
      local reason = h.sreason
      if not before then reason = 'connect' end
      local sid = h.ssid
      if sid == '' then sid = c.sid end
      if sid == '' then
        local _, other = clientof(sessionkeys(id, 1)[1])
        sid = other
      end
      q = q + 1
      transition(isaway and 'away' or 'back', id, sid, reason, { seq = q, seen = c.seen }, 0)
    end
  end
  local rooms, leaves = {}, {}
  for room in pairs(rh) do rooms[#rooms + 1] = room end
  table.sort(rooms)
  for _, room in ipairs(rooms) do
    local r = rh[room]
    local was = r.before == '1' or (r.before == 'e' and r.d > math.max(h.maxt, r.t))
    local isin = redis.call('HEXISTS', B.rm, room .. '\0' .. id) == 1
    if isin and not was then
      local sid, meta = roomsession(id, room)
      q = q + 1
      transition('join', id, sid, 'connect', { seq = q, seen = NOW }, 0, room, meta)
    elseif isin and r.upd ~= '' then
      local sk = id .. '\0' .. r.upd
      if hasroom(getrooms(sk), room) then
        q = q + 1
        transition('update', id, r.upd, '', { seq = q, seen = NOW }, 0, room, (getmeta(sk)))
      end
    elseif was and not isin then
      leaves[#leaves + 1] = room
    end
  end
  for _, room in ipairs(leaves) do
    local r = rh[room]
    local sid = r.sid
    if sid == '' then sid = h.sid end
    if sid == '' then sid = id end
    local reason = r.reason
    if reason == '' then reason = 'left' end
    q = q + 1
    transition('leave', id, sid, reason, { seq = q, seen = r.seen }, 0, room)
  end
  if before and not online then
    local seq = h.seq
    if q ~= q0 then
      q = q + 1
      seq = q
    end
    transition('offline', id, h.sid, h.reason, { seq = seq, seen = h.seen }, h.onlinefor)
  end
  if c and q ~= q0 then
    c.seq = math.max(c.seq, q)
    putc(id, c)
  end
end

-- settle decides client id's hold, if the window is closed and it has one:
-- before any transition of the client is decided, so the held one comes
-- first.
-- Not in a script whose reply carries no transitions (Touch: see
-- QUIET): there the hold waits for the next Sweep, which decides against
-- the state then.
local function settle(id)
  if not QUIET and not win() and redis.call('EXISTS', B.h) == 1 then decide(id) end
end

-- addsession writes a new session, live until deadline, whose last beat
-- was seen, and brings its client online unless it was. known: a node held
-- the session live before Redis lost the bucket's data, so the client
-- counted as online; owed: instead, a node held it ending, its grace over
-- at that Redis time. A client re-created so, from nothing, comes back
-- without an Online event.
local function addsession(id, sid, sk, node, deadline, seen, known, owed)
  redis.call('ZADD', B.x, deadline, sk)
  settle(id)
  local c = getc(id)
  local online = c ~= nil and c.n > 0
  if win() and (known or owed or not online) then hold(id, online, known, owed) end
  if known then holdstate(id, sid, false, true) end
  local x = { sid = sid, seen = seen, span = deadline - seen, node = node }
  if online then
    addsess(c, x)
    c.seen = math.max(c.seen, seen)
    putc(id, c)
    return
  end
  local silent = (known or owed) and not c
  if not c then
    c = { seq = newseq(), since = 0, seen = 0, n = 0, sid = '', S = {} }
  else
    redis.call('ZREM', B.o, id)
    -- Its last active time, which its record will no longer say.
    local ca = getca(id)
    if not ca.la then
      ca.la = c.seen
      putca(id, ca)
    end
  end
  addsess(c, x)
  c.since, c.seen = NOW, math.max(c.seen, seen)
  c.seq = c.seq + 1
  setonline(id, true)
  putc(id, c)
  if not silent and not win() then
    transition('online', id, sid, 'connect', c, 0)
  end
end

-- remove deletes a session; the last session of a client takes it offline.
local function remove(sk, reason, retention)
  local x = gets(sk)
  if not x then return end
  local id, sid = clientof(sk)
  -- The client's hold first, the session still whole: it counts, in the
  -- client's record and in its rooms (a Join decided then names a session
  -- that has the room, this one if no other).
  settle(id)
  local seen = sseen(sk, x)
  local awayat = redis.call('HGET', B.a, sk)
  redis.call('HDEL', B.a, sk)
  redis.call('ZREM', B.x, sk)
  redis.call('HDEL', B.r, sk)
  local c = getc(id)
  -- Its rooms first: each one no other session of the client is in gets
  -- its Leave, before the client's Offline.
  local rooms = getrooms(sk)
  redis.call('HDEL', B.sr, sk)
  redis.call('HDEL', B.sm, sk)
  for _, room in ipairs(rooms) do
    if quit(id, room, seen) then
      if win() then
        holdroom(id, room, true, nil, nil, { sid, reason, seen })
      elseif c then
        c.seq = c.seq + 1
        transition('leave', id, sid, reason, { seq = c.seq, seen = seen }, 0, room)
      end
    end
  end
  if not c then return end
  delsess(c, sid)
  c.seen = math.max(c.seen, seen)
  -- Its last active time stays with the client; an active session's
  -- removal that leaves only away ones owes an Away.
  local ca = getca(id)
  if awayat then ca.away = math.max(0, ca.away - 1) end
  ca.la = math.max(ca.la or 0, awayat and tonumber(awayat) or seen)
  if c.n == 0 and ca.la == c.seen then ca.la = nil end
  putca(id, ca)
  if not awayat and c.n > 0 and ca.away >= c.n then AWAY[id] = { sid, reason } end
  if c.n > 0 then
    putc(id, c)
    return
  end
  c.seq = c.seq + 1
  -- Online until the last beat or session end (c.seen): not through the
  -- Grace or TTL that passed since.
  local onlinefor = math.max(0, c.seen - c.since)
  c.since = 0
  setonline(id, false)
  if retention < 0 then
    delc(id)
    forgetleft(id)
  else
    putc(id, c)
    redis.call('ZADD', B.o, NOW, id)
  end
  if win() then
    local h = hold(id, true, false)
    h.seq, h.seen, h.onlinefor, h.reason, h.sid = c.seq, c.seen, onlinefor, reason, sid
    puth(id, h)
    return
  end
  transition('offline', id, sid, reason, c, onlinefor)
end

-- joinroom puts session sk (sid) of client id in room, unless it is in it
-- already: a Join, carrying meta, if no session of the client was.
local function joinroom(id, sid, sk, room, meta)
  local rooms = getrooms(sk)
  if hasroom(rooms, room) then return end
  rooms[#rooms + 1] = room
  putrooms(sk, rooms)
  settle(id)
  local joined = enter(id, room)
  if win() then
    holdroom(id, room, not joined)
    return
  end
  local c = getc(id)
  if joined and c then
    c.seq = c.seq + 1
    putc(id, c)
    transition('join', id, sid, 'connect', { seq = c.seq, seen = NOW }, 0, room, meta)
  end
end

-- leaveroom takes session sk (sid) of client id out of room, and reports
-- whether it was in it: a Leave with reason if no other session of the
-- client is.
local function leaveroom(id, sid, sk, room, reason)
  local rooms = getrooms(sk)
  local i = hasroom(rooms, room)
  if not i then return false end
  table.remove(rooms, i)
  putrooms(sk, rooms)
  settle(id)
  if not quit(id, room, NOW) then return true end
  if win() then
    holdroom(id, room, true, nil, nil, { sid, reason, NOW })
    return true
  end
  local c = getc(id)
  if c then
    c.seq = c.seq + 1
    putc(id, c)
    transition('leave', id, sid, reason, { seq = c.seq, seen = NOW }, 0, room)
  end
  return true
end

-- updates decides the Updates of session sid of client id, whose
-- metadata became meta, in rooms.
local function updates(id, sid, rooms, meta)
  if #rooms == 0 then return end
  settle(id)
  if win() then
    for _, room in ipairs(rooms) do holdroom(id, room, true, nil, sid) end
    return
  end
  local c = getc(id)
  if not c then return end
  for _, room in ipairs(rooms) do
    c.seq = c.seq + 1
    transition('update', id, sid, '', { seq = c.seq, seen = NOW }, 0, room, meta)
  end
  putc(id, c)
end

-- setmeta sets session sk's (sid) metadata and reports whether it
-- changed: then each of the session's rooms gets an Update.
local function setmeta(id, sid, sk, meta)
  if getmeta(sk) == meta then return false end
  putmeta(sk, meta, STAMP)
  updates(id, sid, getrooms(sk), meta)
  return true
end

-- reassertrooms writes back, silently, the rooms (as Go sends them) and
-- metadata (set at stamp) a node held for session sk of client id before
-- Redis lost the bucket's data: rooms the session is not in, and the
-- metadata unless the session has some. While the window is open, the
-- client counts as having been in those rooms: kind '1' (a live session),
-- 'e' (an ending one, its grace over at Redis time d: see holdroom).
local function reassertrooms(id, sk, list, meta, stamp, kind, d)
  local rooms = getrooms(sk)
  local added = false
  for _, room in ipairs(splitrooms(list)) do
    if not hasroom(rooms, room) then
      rooms[#rooms + 1] = room
      added = true
      local joined = enter(id, room)
      if win() then holdroom(id, room, not joined, kind, nil, nil, d) end
    end
  end
  if added then putrooms(sk, rooms) end
  if meta ~= '' and redis.call('HEXISTS', B.sm, sk) == 0 then putmeta(sk, meta, stamp) end
end

-- mayrecreate reports whether a session that a node held before Redis lost
-- the bucket's data may be re-created: always while the bucket's window is
-- open, afterwards not if its client is now known to be offline (another
-- node ended the client's last session since).
local function mayrecreate(id)
  if win() then return true end
  local c = getc(id)
  return c == nil or c.n > 0
end

-- forgetleases drops the node leases of the bucket (l) that ran out more
-- than a day ago, far longer than the sessions their nodes left take to
-- expire. Called when a node new to the bucket gets a lease, so the set
-- holds the nodes seen lately.
local function forgetleases()
  redis.call('ZREMRANGEBYSCORE', B.l, '-inf', NOW - 86400000)
end

-- forgetoffline forgets up to k of the bucket's offline clients, offline
-- the longest first, to keep the bucket within its share of MaxClients
-- (add.lua, sweep.lua), and returns how many it forgot. It stops at a
-- client whose record was created this second: forgotten and seen again
-- within the second, the client would start its seq where the record did
-- (see newseq) and repeat its Event IDs.
local function forgetoffline(k)
  local n = 0
  for _, id in ipairs(redis.call('ZRANGE', B.o, 0, k - 1)) do
    local c = getc(id)
    if c and c.n == 0 then
      if c.seq >= newseq() then break end
      delc(id)
      forgetleft(id)
      n = n + 1
    end
    redis.call('ZREM', B.o, id)
  end
  return n
end

-- trimclients forgets the bucket's offline clients over its share of
-- MaxClients, cmax (0: no cap), longest offline first, at most limit of
-- them (sweep.lua), and reports whether more are due.
local function trimclients(cmax, limit)
  if cmax <= 0 then return false end
  local over = redis.call('HLEN', B.c) - cmax
  if over <= 0 then return false end
  local k = math.min(over, limit)
  return forgetoffline(k) == k and over > k
end

-- memberinfo returns what Members and MembersAmong report of client id,
-- in room: since when (ms), its latest beat there (ms), its sessions
-- there, the client's state and last active time (ms), then the metadata of those that have any, set longest ago first
-- (ties by session ID), preceded by their number.
local function memberinfo(id, room, since)
  local seen, n, metas = 0, 0, {}
  for _, sk in ipairs(sessionkeys(id)) do
    if hasroom(getrooms(sk), room) then
      n = n + 1
      local x = gets(sk)
      if x then seen = math.max(seen, sseen(sk, x)) end
      local m, st = getmeta(sk)
      if m ~= '' then metas[#metas + 1] = { st = st, sk = sk, m = m } end
    end
  end
  table.sort(metas, function(a, b)
    if a.st ~= b.st then return a.st < b.st end
    return a.sk < b.sk
  end)
  local state, la = clientstate(id, getc(id))
  local r = { fmt(since), fmt(seen), n, state, fmt(la), #metas }
  for _, m in ipairs(metas) do r[#r + 1] = m.m end
  return r
end

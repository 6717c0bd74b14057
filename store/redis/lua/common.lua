-- common.lua: prepended to every script of the store.
--
-- Every position shared with Go is named in a table (K, EV here; A and
-- others in each script) that luanames.go names too; TestLuaNames checks
-- that the two agree, and that the scripts read ARGV only through them.
--
-- Each bucket has KN keys, passed in this order (see keys.go):
--   g   string  generation marker: set when the bucket is first written, so a
--               node can tell that Redis lost the bucket's data since
--   s   hash    session key -> "seen|span|node"
--   x   zset    session key -> deadline (ms, Redis clock): the expiry index
--   k   zset    session key, score 0: a client's sessions by lex range
--   n   zset    node .. "\0" .. session key, score 0: a node's sessions
--   r   hash    session key -> reason, for ending sessions only
--   c   hash    client ID -> "seq|since|seen|sessions|sid", sid the ID of
--               the client's one session, '' unless it has exactly one
--   o   zset    offline client ID -> when it went offline (ms): Retention,
--               and MaxClients (forgetoffline)
--   on  zset    online client ID, score 0: List and Count
--   j   stream  the journal of transitions, with consumer group "hooks"
--   l   zset    node -> when its lease ends (ms): renewed by the node's
--               sweeps, read by Sweep to tell node_lost from expired
--   w   string  set while the bucket's re-assertion window is open (PX)
--   h   hash    client ID -> its held record (see held): a client whose
--               transitions the window holds (see gen)
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
local K = { g = 1, s = 2, x = 3, k = 4, n = 5, r = 6, c = 7, o = 8, on = 9, j = 10, l = 11, w = 12, h = 13 }
-- size returns the number of entries of table t.
local function size(t)
  local n = 0
  for _ in pairs(t) do n = n + 1 end
  return n
end
local KN = size(K)
-- EV: position of each field of a transition in a reply (luanames.go:
-- event...).
local EV = { kind = 1, client = 2, session = 3, reason = 4, seq = 5, time = 6, seen = 7, online_for = 8, entry = 9 }
local T = redis.call('TIME')
local NOW = tonumber(T[1]) * 1000 + math.floor(tonumber(T[2]) / 1000)
-- A client record created from nothing starts its seq at a multiple of
-- SEQ_UNIT taken from the Redis clock, so it is above any seq an earlier
-- record of the same client (forgotten, or lost in a restart) reached.
local SEQ_UNIT = 2097152
local SEQ_EPOCH = 1700000000

local B = {}

local function fmt(n) return string.format('%.0f', n) end

local function bucket(i)
  local o = i * KN
  for name, p in pairs(K) do B[name] = KEYS[o + p] end
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
  local g = redis.call('GET', B.g)
  if not g then
    g = T[1] .. '.' .. T[2]
    redis.call('SET', B.g, g)
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

local function getc(id)
  local v = redis.call('HGET', B.c, id)
  if not v then return nil end
  local seq, since, seen, n, sid = string.match(v, '^(%d+)|(%d+)|(%d+)|(%d+)|(.*)$')
  return { seq = tonumber(seq), since = tonumber(since), seen = tonumber(seen), n = tonumber(n), sid = sid }
end

local function putc(id, c)
  local sid = ''
  if c.n == 1 then sid = c.sid end
  redis.call('HSET', B.c, id, fmt(c.seq) .. '|' .. fmt(c.since) .. '|' .. fmt(c.seen) .. '|' .. fmt(c.n) .. '|' .. sid)
end

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

local function gets(sk)
  local v = redis.call('HGET', B.s, sk)
  if not v then return nil end
  local seen, span, node = string.match(v, '^(%d+)|(%d+)|(.*)$')
  return { seen = tonumber(seen), span = tonumber(span), node = node }
end

local function puts(sk, x)
  redis.call('HSET', B.s, sk, fmt(x.seen) .. '|' .. fmt(x.span) .. '|' .. x.node)
end

-- own moves session sk, whose record is x, to node in the node index and
-- in x (the caller writes x back).
local function own(sk, x, node)
  if x.node == node then return end
  redis.call('ZREM', B.n, x.node .. '\0' .. sk)
  redis.call('ZADD', B.n, 0, node .. '\0' .. sk)
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
-- that start with p .. '\0': a client's session keys in k, a node's
-- entries in n. At most limit of them if given.
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

-- Journal settings, set by each script from its arguments.
local J = { consumer = '', maxlen = 10000, node = '' }

-- out collects transitions: the fields of EV each.
local out = {}

-- transition records a transition in the journal, claims it for this
-- caller (so it is pending until the caller acknowledges it) and appends it
-- to out.
local function transition(kind, id, sid, reason, c, onlinefor)
  local f = { 'c', id, 't', kind, 's', sid, 'r', reason, 'q', fmt(c.seq), 'tm', fmt(NOW),
    'ls', fmt(c.seen), 'of', fmt(onlinefor), 'n', J.node }
  local eid = redis.call('XADD', B.j, 'MAXLEN', '~', J.maxlen, '*', unpack(f))
  if J.consumer ~= '' then
    redis.call('XCLAIM', B.j, 'hooks', J.consumer, 0, eid, 'FORCE', 'JUSTID')
  end
  local e = {}
  e[EV.kind], e[EV.client], e[EV.session], e[EV.reason] = kind, id, sid, reason
  e[EV.seq], e[EV.time], e[EV.seen], e[EV.online_for] = fmt(c.seq), fmt(NOW), fmt(c.seen), fmt(onlinefor)
  e[EV.entry] = eid
  local base = #out
  for i = 1, #e do out[base + i] = e[i] end
end

-- held returns the held record of client id (see gen), or nil: whether it
-- was online before the window ("before"), the latest grace deadline of
-- its re-asserted ending sessions ("maxd") and the latest Offline a node
-- remembers deciding for it ("maxt") before Redis lost the data (Redis
-- ms), and what its Offline would carry if it went offline in the window.
local function held(id)
  local v = redis.call('HGET', B.h, id)
  if not v then return nil end
  local before, seq, seen, of, maxd, maxt, rest = string.match(v, '^(%d)|(%d+)|(%d+)|(%d+)|(%d+)|(%d+)|(.*)$')
  local i = string.find(rest, '\0', 1, true)
  return { before = before == '1', seq = tonumber(seq), seen = tonumber(seen), onlinefor = tonumber(of),
    maxd = tonumber(maxd), maxt = tonumber(maxt), reason = string.sub(rest, 1, i - 1), sid = string.sub(rest, i + 1) }
end

local function puth(id, h)
  redis.call('HSET', B.h, id, (h.before and '1' or '0') .. '|' .. fmt(h.seq) .. '|' .. fmt(h.seen) .. '|' ..
    fmt(h.onlinefor) .. '|' .. fmt(h.maxd) .. '|' .. fmt(h.maxt) .. '|' .. h.reason .. '\0' .. h.sid)
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
  h = h or { before = online, seq = 0, seen = 0, onlinefor = 0, maxd = 0, maxt = 0, reason = '', sid = '' }
  h.before = h.before or known
  if d then h.maxd = math.max(h.maxd, d) end
  if t then h.maxt = math.max(h.maxt, t) end
  puth(id, h)
  return h
end

-- decide ends the hold of client id once the window is closed: the one
-- transition between what it was before and what its record says now, if
-- they differ. It was online before if a node held one of its sessions
-- live, or an ending one whose grace ended after the last Offline any
-- node remembers deciding for it (that Offline was still owed). Held
-- changes in between cancel out: a late Online (or Offline) rather than a
-- doubled one.
local function decide(id)
  local h = held(id)
  if not h then return end
  redis.call('HDEL', B.h, id)
  local c = getc(id)
  local online = c ~= nil and c.n > 0
  local before = h.before or h.maxd > h.maxt
  if online and not before then
    -- The event names a session of the client: its record names one only
    -- when it has exactly one.
    local sid = c.sid
    if sid == '' then
      local _, other = clientof(under(B.k, id, 1)[1])
      sid = other
    end
    transition('online', id, sid, 'connect', c, 0)
  elseif before and not online then
    transition('offline', id, h.sid, h.reason, { seq = h.seq, seen = h.seen }, h.onlinefor)
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
  puts(sk, { seen = seen, span = deadline - seen, node = node })
  redis.call('ZADD', B.x, deadline, sk)
  redis.call('ZADD', B.k, 0, sk)
  redis.call('ZADD', B.n, 0, node .. '\0' .. sk)
  settle(id)
  local c = getc(id)
  local online = c ~= nil and c.n > 0
  if win() and (known or owed or not online) then hold(id, online, known, owed) end
  if online then
    c.n = c.n + 1
    c.seen = math.max(c.seen, seen)
    putc(id, c)
    return
  end
  local silent = (known or owed) and not c
  if not c then
    c = { seq = newseq(), since = 0, seen = 0, n = 0, sid = '' }
  else
    redis.call('ZREM', B.o, id)
  end
  c.n, c.since, c.seen, c.sid = 1, NOW, math.max(c.seen, seen), sid
  c.seq = c.seq + 1
  redis.call('ZADD', B.on, 0, id)
  putc(id, c)
  if not silent and not win() then
    transition('online', id, sid, 'connect', c, 0)
  end
end

-- remove deletes a session; the last session of a client takes it offline.
local function remove(sk, reason, retention)
  local x = gets(sk)
  if not x then return end
  local seen = sseen(sk, x)
  redis.call('HDEL', B.s, sk)
  redis.call('ZREM', B.x, sk)
  redis.call('ZREM', B.k, sk)
  redis.call('ZREM', B.n, x.node .. '\0' .. sk)
  redis.call('HDEL', B.r, sk)
  local id, sid = clientof(sk)
  settle(id)
  local c = getc(id)
  if not c then return end
  c.n = c.n - 1
  c.seen = math.max(c.seen, seen)
  if c.n == 1 then
    local rest = under(B.k, id, 1)
    if rest[1] then
      local _, other = clientof(rest[1])
      c.sid = other
    end
  end
  if c.n > 0 then
    putc(id, c)
    return
  end
  c.seq = c.seq + 1
  -- Online until the last beat or session end (c.seen): not through the
  -- Grace or TTL that passed since.
  local onlinefor = math.max(0, c.seen - c.since)
  c.since = 0
  redis.call('ZREM', B.on, id)
  if retention < 0 then
    redis.call('HDEL', B.c, id)
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
      redis.call('HDEL', B.c, id)
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

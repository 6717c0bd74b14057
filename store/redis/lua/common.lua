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
local K = { g = 1, s = 2, x = 3, k = 4, n = 5, r = 6, c = 7, o = 8, on = 9, j = 10 }
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

-- gen returns the bucket's generation, creating it (and the journal's
-- consumer group) when the bucket is new or its data was lost.
local function gen()
  local g = redis.call('GET', B.g)
  if not g then
    g = T[1] .. '.' .. T[2]
    redis.call('SET', B.g, g)
    redis.pcall('XGROUP', 'CREATE', B.j, 'hooks', '$', 'MKSTREAM')
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

-- addsession writes a new session, live until deadline, whose last beat
-- was seen, and brings its client online unless it was. The Online event
-- is left out when silent, which re-creates a client lost with Redis's data.
local function addsession(id, sid, sk, node, deadline, seen, silent)
  puts(sk, { seen = seen, span = deadline - seen, node = node })
  redis.call('ZADD', B.x, deadline, sk)
  redis.call('ZADD', B.k, 0, sk)
  redis.call('ZADD', B.n, 0, node .. '\0' .. sk)
  local c = getc(id)
  if c and c.n > 0 then
    c.n = c.n + 1
    c.seen = math.max(c.seen, seen)
    putc(id, c)
    return
  end
  if not c then
    c = { seq = newseq(), since = 0, seen = 0, n = 0, sid = '' }
  else
    redis.call('ZREM', B.o, id)
  end
  c.n, c.since, c.seen, c.sid = 1, NOW, math.max(c.seen, seen), sid
  c.seq = c.seq + 1
  redis.call('ZADD', B.on, 0, id)
  putc(id, c)
  if not silent then
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
  transition('offline', id, sid, reason, c, onlinefor)
end

-- mayrecreate reports whether a session that a node held before Redis lost
-- the bucket's data may be re-created: not if its client is now known to
-- be offline (another node ended the client's last session since).
local function mayrecreate(id)
  local c = getc(id)
  return c == nil or c.n > 0
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

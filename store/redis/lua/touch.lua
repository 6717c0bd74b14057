-- touch.lua: Store.Touch for the leases of one or more buckets.
-- KEYS: the buckets. ARGV: consumer, journal length, then per bucket:
--   refreshes: their number f, then node, span, known generation, shared
--     by all of them, then f times: session key, ttl ms;
--   full leases: their number m, then m times: client, session, node,
--     ttl ms, age ms, known generation.
-- Returns per bucket: generation, number of gone sessions, then per gone
-- session: its position among the bucket's leases (refreshes first,
-- counting from 1) and reason. Two marks are not reasons and the session is
-- not gone: '!' for a session re-created after Redis lost it, '~' for a
-- full lease whose deadline was earlier than the session's (the session
-- keeps its deadline and span: a refresh would misread its last beat).
--
-- A refresh is a lease of a session the caller wrote before, with the same
-- node and span (TTL + Age): it only moves the session's deadline (one
-- multi-member ZADD per bucket), since its last beat is read back as
-- deadline - span. Full leases rewrite the session's record.
J.consumer, J.maxlen = ARGV[1], tonumber(ARGV[2])
local CHUNK = 1000

local gone
local function isgone(pos, reason)
  gone[#gone + 1] = pos; gone[#gone + 1] = reason
end

-- missing handles a lease of a session Redis does not hold: re-created
-- silently if the caller wrote it before Redis lost the bucket's data,
-- otherwise gone.
local function missing(pos, g, id, sid, sk, node, deadline, seen, kg)
  if kg ~= '' and kg ~= g and mayrecreate(id) then
    addsession(id, sid, sk, node, deadline, seen, true)
    isgone(pos, '!')
  else
    isgone(pos, 'expired')
  end
end

-- ending returns a lookup of the reasons of the ending sessions among sks.
local function ending(sks)
  local n = redis.call('HLEN', B.r)
  local reasons = {}
  if n == 0 then return reasons end
  if n <= 2 * #sks then
    local all = redis.call('HGETALL', B.r)
    for i = 1, #all, 2 do reasons[all[i]] = all[i + 1] end
    return reasons
  end
  for i = 1, #sks, CHUNK do
    local j = math.min(i + CHUNK - 1, #sks)
    local part = redis.call('HMGET', B.r, unpack(sks, i, j))
    for k = 1, #part do
      if part[k] then reasons[sks[i + k - 1]] = part[k] end
    end
  end
  return reasons
end

local function refresh(g, a)
  local f = tonumber(ARGV[a])
  local node, span, kg = ARGV[a + 1], tonumber(ARGV[a + 2]), ARGV[a + 3]
  a = a + 4
  local sks = {}
  for i = 1, f do sks[i] = ARGV[a + 2 * (i - 1)] end
  local reasons = ending(sks)
  local z, live = {}, {}
  for i = 1, f do
    local sk = sks[i]
    local reason = reasons[sk]
    if reason then
      isgone(i, reason)
    else
      z[#z + 1] = NOW + tonumber(ARGV[a + 2 * i - 1]); z[#z + 1] = sk
      live[#live + 1] = i
    end
  end
  -- XX: never re-creates a removed session; GT: never moves a deadline
  -- back. CH counts the members moved: fewer than sent means some may be
  -- missing, and only then are scores read.
  local moved = 0
  for i = 1, #z, 2 * CHUNK do
    moved = moved + redis.call('ZADD', B.x, 'XX', 'GT', 'CH', unpack(z, i, math.min(i + 2 * CHUNK - 1, #z)))
  end
  if moved < #live then
    for i = 1, #live, CHUNK do
      local part = {}
      for k = i, math.min(i + CHUNK - 1, #live) do part[#part + 1] = sks[live[k]] end
      local scores = redis.call('ZMSCORE', B.x, unpack(part))
      for k = 1, #part do
        if not scores[k] then
          local pos = live[i + k - 1]
          local sk = part[k]
          local id, sid = clientof(sk)
          local deadline = z[2 * (i + k - 1) - 1]
          missing(pos, g, id, sid, sk, node, deadline, deadline - span, kg)
        end
      end
    end
  end
  return a + 2 * f, f
end

local function full(g, a, base)
  local m = tonumber(ARGV[a]); a = a + 1
  for i = 1, m do
    local id, sid, node = ARGV[a], ARGV[a + 1], ARGV[a + 2]
    local ttl, age, kg = tonumber(ARGV[a + 3]), tonumber(ARGV[a + 4]), ARGV[a + 5]
    a = a + 6
    local sk = id .. '\0' .. sid
    local pos = base + i
    local x = gets(sk)
    local reason = x and redis.call('HGET', B.r, sk)
    if not x then
      missing(pos, g, id, sid, sk, node, NOW + ttl, NOW - age, kg)
    elseif reason then
      isgone(pos, reason)
    else
      local seen = sseen(sk, x)
      local deadline = NOW + ttl
      local d = redis.call('ZSCORE', B.x, sk)
      if not d or deadline >= tonumber(d) then
        redis.call('ZADD', B.x, deadline, sk)
        x.span = ttl + age
      else
        isgone(pos, '~')
      end
      x.seen = math.max(seen, NOW - age)
      if x.node ~= node then
        redis.call('ZREM', B.n, x.node .. '\0' .. sk)
        redis.call('ZADD', B.n, 0, node .. '\0' .. sk)
        x.node = node
      end
      puts(sk, x)
    end
  end
  return a
end

local a = 3
local res = {}
for b = 0, #KEYS / KN - 1 do
  bucket(b)
  local g = gen()
  gone = {}
  local f
  a, f = refresh(g, a)
  a = full(g, a, f)
  res[#res + 1] = g
  res[#res + 1] = #gone / 2
  for i = 1, #gone do res[#res + 1] = gone[i] end
end
return res

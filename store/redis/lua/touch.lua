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

-- ending returns the reasons of the ending sessions among the session
-- keys ARGV[from], ARGV[from + 2], ... ARGV[to], by key.
local function ending(from, to)
  local reasons = {}
  local n = redis.call('HLEN', B.r)
  if n == 0 then return reasons end
  if n <= to - from then
    local all = redis.call('HGETALL', B.r)
    for i = 1, #all, 2 do reasons[all[i]] = all[i + 1] end
    return reasons
  end
  local sks = {}
  for p = from, to, 2 do sks[#sks + 1] = ARGV[p] end
  local part = many('HMGET', B.r, sks)
  for i = 1, #sks do
    if part[i] then reasons[sks[i]] = part[i] end
  end
  return reasons
end

local function refresh(g, a)
  local f = tonumber(ARGV[a])
  local node, span, kg = ARGV[a + 1], tonumber(ARGV[a + 2]), ARGV[a + 3]
  local from, to = a + 4, a + 3 + 2 * f
  local reasons = ending(from, to)
  -- XX: never re-creates a removed session; GT: never moves a deadline
  -- back. CH counts the members moved: fewer than sent means some may be
  -- missing, and only then are scores read.
  local z, nz, sent, moved = {}, 0, 0, 0
  local pos = 0
  for p = from, to, 2 do
    pos = pos + 1
    local sk = ARGV[p]
    local reason = reasons[sk]
    if reason then
      isgone(pos, reason)
    else
      z[nz + 1] = NOW + ARGV[p + 1]; z[nz + 2] = sk
      nz = nz + 2
      if nz == 2 * CHUNK then
        moved = moved + redis.call('ZADD', B.x, 'XX', 'GT', 'CH', unpack(z, 1, nz))
        sent, nz = sent + nz / 2, 0
      end
    end
  end
  if nz > 0 then
    moved = moved + redis.call('ZADD', B.x, 'XX', 'GT', 'CH', unpack(z, 1, nz))
    sent = sent + nz / 2
  end
  if moved == sent then return to + 1, f end
  -- Some were not moved: find the missing ones.
  local sks, at = {}, {}
  for p = from, to, 2 do
    if not reasons[ARGV[p]] then
      sks[#sks + 1] = ARGV[p]; at[#at + 1] = p
    end
  end
  local deadlines = many('ZMSCORE', B.x, sks)
  for k = 1, #sks do
    if not deadlines[k] then
      local p = at[k]
      local sk = sks[k]
      local id, sid = clientof(sk)
      local deadline = NOW + ARGV[p + 1]
      missing((p - from) / 2 + 1, g, id, sid, sk, node, deadline, deadline - span, kg)
    end
  end
  return to + 1, f
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
      own(sk, x, node)
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

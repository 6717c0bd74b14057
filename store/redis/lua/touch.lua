-- touch.lua: Store.Touch for the leases of one or more buckets.
-- KEYS: the buckets. ARGV, named by the tables below (luanames.go:
-- touchArg..., touchRefresh..., touchRefreshItem..., touchFulls...,
-- touchFull..., touchBucket...): A, consumer, journal length and
-- re-assertion window ms (see gen), then per bucket: BH, the generation
-- the caller last saw of it ('' if none), then
--   refreshes: R, their number f, then node, span, known generation,
--     shared by all of them, then f times RI: session key, ttl ms;
--   full leases: FH, their number m, then m times FI: client, session,
--     node, ttl ms, age ms, known generation.
-- The positions of R, RI, FH and FI count from the start of each.
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
local A = { consumer = 1, journal_len = 2, reassert = 3 }
local BH = { gen = 0 }
local R = { count = 0, node = 1, span = 2, gen = 3 }
local RI = { key = 0, ttl = 1 }
local FH = { count = 0 }
local FI = { client = 0, session = 1, node = 2, ttl = 3, age = 4, gen = 5 }
local BHN, RN, RIN, FHN, FIN = size(BH), size(R), size(RI), size(FH), size(FI)
J.consumer, J.maxlen = ARGV[A.consumer], tonumber(ARGV[A.journal_len])
QUIET = true

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
-- keys of the refreshes from the one at ARGV[from] to the one ending at
-- ARGV[to], by key.
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
  for p = from, to, RIN do sks[#sks + 1] = ARGV[p + RI.key] end
  local part = many('HMGET', B.r, sks)
  for i = 1, #sks do
    if part[i] then reasons[sks[i]] = part[i] end
  end
  return reasons
end

local function refresh(g, a)
  local f = tonumber(ARGV[a + R.count])
  local node, span, kg = ARGV[a + R.node], tonumber(ARGV[a + R.span]), ARGV[a + R.gen]
  local from, to = a + RN, a + RN - 1 + RIN * f
  local reasons = ending(from, to)
  -- XX: never re-creates a removed session; GT: never moves a deadline
  -- back. CH counts the members moved: fewer than sent means some may be
  -- missing, and only then are scores read.
  local z, nz, sent, moved = {}, 0, 0, 0
  local pos = 0
  for p = from, to, RIN do
    pos = pos + 1
    local sk = ARGV[p + RI.key]
    local reason = reasons[sk]
    if reason then
      isgone(pos, reason)
    else
      z[nz + 1] = NOW + ARGV[p + RI.ttl]; z[nz + 2] = sk
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
  for p = from, to, RIN do
    if not reasons[ARGV[p + RI.key]] then
      sks[#sks + 1] = ARGV[p + RI.key]; at[#at + 1] = p
    end
  end
  local deadlines = many('ZMSCORE', B.x, sks)
  for k = 1, #sks do
    if not deadlines[k] then
      local p = at[k]
      local sk = sks[k]
      local id, sid = clientof(sk)
      local deadline = NOW + ARGV[p + RI.ttl]
      missing((p - from) / RIN + 1, g, id, sid, sk, node, deadline, deadline - span, kg)
    end
  end
  return to + 1, f
end

local function full(g, a, base)
  local m = tonumber(ARGV[a + FH.count]); a = a + FHN
  for i = 1, m do
    local id, sid, node = ARGV[a + FI.client], ARGV[a + FI.session], ARGV[a + FI.node]
    local ttl, age, kg = tonumber(ARGV[a + FI.ttl]), tonumber(ARGV[a + FI.age]), ARGV[a + FI.gen]
    a = a + FIN
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

local a = size(A) + 1
local res = {}
for b = 0, #KEYS / KN - 1 do
  bucket(b)
  local g = gen(ARGV[a + BH.gen], tonumber(ARGV[A.reassert]))
  a = a + BHN
  gone = {}
  local f
  a, f = refresh(g, a)
  a = full(g, a, f)
  res[#res + 1] = g
  res[#res + 1] = #gone / 2
  for i = 1, #gone do res[#res + 1] = gone[i] end
end
return res

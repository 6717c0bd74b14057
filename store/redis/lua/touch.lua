-- touch.lua: Store.Touch for the leases of one or more buckets.
-- KEYS: the buckets. ARGV: consumer, journal length, then per bucket: the
-- number of leases m, then m times: index, client, session, node, ttl ms,
-- age ms, known generation.
-- Returns per bucket: generation, number of gone sessions m, then m times:
-- index, reason ('!' for re-created sessions, which are not gone).
--
-- Reads and writes are batched per bucket (HMGET, multi-member ZADD GT and
-- HSET), so a lease costs a fraction of a Redis call.
J.consumer, J.maxlen = ARGV[1], tonumber(ARGV[2])
-- Last-seen times are written at most once a second per session.
local SEEN_STEP = 1000
local CHUNK = 1000

local function hmget(key, fields)
  local out = {}
  for i = 1, #fields, CHUNK do
    local part = redis.call('HMGET', key, unpack(fields, i, math.min(i + CHUNK - 1, #fields)))
    for j = 1, #part do out[#out + 1] = part[j] end
  end
  return out
end

local a = 3
local res = {}
local nb = #KEYS / KN
for b = 0, nb - 1 do
  bucket(b)
  local g = gen()
  local m = tonumber(ARGV[a]); a = a + 1
  local first = a
  local sks = {}
  for i = 1, m do
    sks[i] = ARGV[a + 1] .. '\0' .. ARGV[a + 2]
    a = a + 7
  end
  local recs = hmget(B.s, sks)
  local reasons = hmget(B.r, sks)
  local gone = {}
  local z = {}
  local hs, cids, cseen = {}, {}, {}
  for i = 1, m do
    local p = first + (i - 1) * 7
    local idx, id, sid, node = ARGV[p], ARGV[p + 1], ARGV[p + 2], ARGV[p + 3]
    local ttl, age, kg = tonumber(ARGV[p + 4]), tonumber(ARGV[p + 5]), ARGV[p + 6]
    local sk = sks[i]
    local seen = NOW - age
    local rec = recs[i]
    if not rec then
      if kg ~= '' and kg ~= g and redis.call('HEXISTS', B.s, sk) == 0 and mayrecreate(id) then
        -- Held before Redis lost the bucket: re-assert it silently.
        addsession(id, sid, sk, node, NOW + ttl, seen, true)
        gone[#gone + 1] = idx; gone[#gone + 1] = '!'
      else
        gone[#gone + 1] = idx; gone[#gone + 1] = 'expired'
      end
    elseif reasons[i] then
      gone[#gone + 1] = idx; gone[#gone + 1] = reasons[i]
    else
      z[#z + 1] = NOW + ttl; z[#z + 1] = sk
      local xseen, xnode = string.match(rec, '^(%d+)|(.*)$')
      xseen = tonumber(xseen)
      if seen >= xseen + SEEN_STEP or xnode ~= node then
        if xnode ~= node then
          redis.call('ZREM', B.n, xnode .. '\0' .. sk)
          redis.call('ZADD', B.n, 0, node .. '\0' .. sk)
        end
        seen = math.max(seen, xseen)
        hs[#hs + 1] = sk; hs[#hs + 1] = fmt(seen) .. '|' .. node
        local cs = cseen[id]
        if not cs then
          cids[#cids + 1] = id
          cseen[id] = seen
        elseif seen > cs then
          cseen[id] = seen
        end
      end
    end
  end
  for i = 1, #z, 2 * CHUNK do
    redis.call('ZADD', B.x, 'GT', unpack(z, i, math.min(i + 2 * CHUNK - 1, #z)))
  end
  -- Last-seen writes, batched: the sessions', then their clients'.
  for i = 1, #hs, 2 * CHUNK do
    redis.call('HSET', B.s, unpack(hs, i, math.min(i + 2 * CHUNK - 1, #hs)))
  end
  if #cids > 0 then
    local crecs = hmget(B.c, cids)
    local hc = {}
    for i, id in ipairs(cids) do
      local v = crecs[i]
      if v then
        local seq, since, cs, n = string.match(v, '^(%d+)|(%d+)|(%d+)|(%d+)$')
        if seq and cseen[id] > tonumber(cs) then
          hc[#hc + 1] = id
          hc[#hc + 1] = seq .. '|' .. since .. '|' .. fmt(cseen[id]) .. '|' .. n
        end
      end
    end
    for i = 1, #hc, 2 * CHUNK do
      redis.call('HSET', B.c, unpack(hc, i, math.min(i + 2 * CHUNK - 1, #hc)))
    end
  end
  res[#res + 1] = g
  res[#res + 1] = #gone / 2
  for i = 1, #gone do res[#res + 1] = gone[i] end
end
return res

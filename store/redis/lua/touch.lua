-- touch.lua: Store.Touch for the leases of one or more buckets.
-- KEYS: the buckets. ARGV: consumer, journal length, then per bucket: the
-- number of leases m, then m times: index, client, session, node, ttl ms,
-- age ms, known generation.
-- Returns per bucket: generation, number of gone sessions m, then m times:
-- index, reason ('!' for re-created sessions, which are not gone).
J.consumer, J.maxlen = ARGV[1], tonumber(ARGV[2])
local a = 3
local res = {}
local nb = #KEYS / KN
for b = 0, nb - 1 do
  bucket(b)
  local g = gen()
  local m = tonumber(ARGV[a]); a = a + 1
  local gone = {}
  for _ = 1, m do
    local idx, id, sid, node = ARGV[a], ARGV[a + 1], ARGV[a + 2], ARGV[a + 3]
    local ttl, age, kg = tonumber(ARGV[a + 4]), tonumber(ARGV[a + 5]), ARGV[a + 6]
    a = a + 7
    local sk = id .. '\0' .. sid
    local seen = NOW - age
    local x = gets(sk)
    if not x then
      if kg ~= '' and kg ~= g and mayrecreate(id) then
        -- Held before Redis lost the bucket: re-assert it silently.
        addsession(id, sid, sk, node, NOW + ttl, seen, true)
        gone[#gone + 1] = idx; gone[#gone + 1] = '!'
      else
        gone[#gone + 1] = idx; gone[#gone + 1] = 'timeout'
      end
    else
      local reason = redis.call('HGET', B.r, sk)
      if reason then
        gone[#gone + 1] = idx; gone[#gone + 1] = reason
      else
        redis.call('ZADD', B.x, 'GT', NOW + ttl, sk)
        if x.node ~= node then
          redis.call('ZREM', B.n, x.node .. '\0' .. sk)
          redis.call('ZADD', B.n, 0, node .. '\0' .. sk)
        end
        if seen > x.seen or x.node ~= node then
          seen = math.max(seen, x.seen)
          redis.call('HSET', B.s, sk, fmt(seen) .. '|' .. node)
          local c = getc(id)
          if c and seen > c.seen then
            c.seen = seen
            putc(id, c)
          end
        end
      end
    end
  end
  res[#res + 1] = g
  res[#res + 1] = #gone / 2
  for i = 1, #gone do res[#res + 1] = gone[i] end
end
return res

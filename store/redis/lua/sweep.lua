-- sweep.lua: Store.Sweep for one or more buckets: removes the sessions
-- whose deadline passed on Redis's clock, forgets clients offline for
-- longer than the retention, and claims journal entries left unacknowledged
-- for longer than the reclaim delay (their claimer died).
-- KEYS: the buckets. ARGV: A below (luanames.go: sweepArg...): retention
-- ms (negative: none), batch limit per bucket, consumer, journal length,
-- reclaim delay ms (negative: never), a bucket's share of the clients (0:
-- no cap).
-- Returns: number of buckets with more due ("more"), then the
-- transitions, then the reclaimed entries: count, then per entry its ID and
-- field count and fields.
local A = { retention = 1, limit = 2, consumer = 3, journal_len = 4, reclaim = 5, bucket_clients = 6 }
local retention, limit = tonumber(ARGV[A.retention]), tonumber(ARGV[A.limit])
J.consumer, J.maxlen = ARGV[A.consumer], tonumber(ARGV[A.journal_len])
local reclaim = tonumber(ARGV[A.reclaim])
local more = 0
local claimed = {}
local nb = #KEYS / KN
for b = 0, nb - 1 do
  bucket(b)
  gen()
  local due = redis.call('ZRANGEBYSCORE', B.x, '-inf', NOW, 'LIMIT', 0, limit)
  for _, sk in ipairs(due) do
    local reason = redis.call('HGET', B.r, sk) or 'expired'
    remove(sk, reason, retention)
  end
  local full = #due == limit
  if retention >= 0 then
    local old = redis.call('ZRANGEBYSCORE', B.o, '-inf', NOW - retention, 'LIMIT', 0, limit)
    for _, id in ipairs(old) do
      local c = getc(id)
      if c and c.n == 0 then redis.call('HDEL', B.c, id) end
      redis.call('ZREM', B.o, id)
    end
    full = full or #old == limit
  end
  full = trimclients(tonumber(ARGV[A.bucket_clients]), limit) or full
  if full then more = more + 1 end
  -- XAUTOCLAIM scans up to ten times COUNT pending entries even when none
  -- is old enough; an entry's ID is its creation time, never later than its
  -- delivery, so when the oldest pending entry is younger than the reclaim
  -- delay nothing can be claimed, and the scan is skipped (XPENDING's summary
  -- is O(1) here). With 100,000 fresh entries pending the scan held Redis
  -- for about 90ms per sweep.
  local oldest = nil
  if reclaim >= 0 and J.consumer ~= '' then
    local p = redis.call('XPENDING', B.j, 'hooks')
    if p[2] then oldest = tonumber(string.match(p[2], '^(%d+)')) end
  end
  if oldest and oldest <= NOW - reclaim then
    local ac = redis.call('XAUTOCLAIM', B.j, 'hooks', J.consumer, reclaim, '0-0', 'COUNT', 100)
    for _, e in ipairs(ac[2]) do
      if e[2] then claimed[#claimed + 1] = e end
    end
  end
end
local r = { more }
for i = 1, #out do r[#r + 1] = out[i] end
r[#r + 1] = '|'
for _, e in ipairs(claimed) do
  r[#r + 1] = e[1]
  r[#r + 1] = #e[2]
  for i = 1, #e[2] do r[#r + 1] = e[2][i] end
end
return r

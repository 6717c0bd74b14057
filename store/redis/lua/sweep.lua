-- sweep.lua: Store.Sweep for one or more buckets: removes the sessions
-- whose deadline passed on Redis's clock, forgets clients offline for
-- longer than the retention, and claims journal entries left unacknowledged
-- for longer than the reclaim delay (their claimer died).
-- KEYS: the buckets. ARGV: A below (luanames.go: sweepArg...): retention
-- ms (negative: none), batch limit per bucket, consumer, journal length,
-- reclaim delay ms (negative: never), the sweeping node ('' for none) and
-- its lease ms, re-assertion window ms (see gen), a bucket's share of the
-- clients (0: no cap); then per bucket SB: the generation the caller last
-- saw of it ('' if none).
-- Returns: number of buckets with more due ("more"), then each bucket's
-- generation, then the transitions (among them those a closed window
-- held), then the reclaimed entries: count, then per entry its ID and
-- field count and fields.
local A = { retention = 1, limit = 2, consumer = 3, journal_len = 4, reclaim = 5, node = 6, lease = 7, reassert = 8,
  bucket_clients = 9 }
local SB = { gen = 0 }
local retention, limit = tonumber(ARGV[A.retention]), tonumber(ARGV[A.limit])
J.consumer, J.maxlen = ARGV[A.consumer], tonumber(ARGV[A.journal_len])
local reclaim, reassert = tonumber(ARGV[A.reclaim]), tonumber(ARGV[A.reassert])

-- Node leases (doc.go, "Nodes"): the sweeping node renews its lease in
-- each bucket it sweeps. A session that expired is node_lost when its
-- node's lease in the bucket ran out (its end is not after NOW, as for a
-- session) while the sweeper's had not; a node with no lease (forgotten)
-- proves nothing.
local me, lease = ARGV[A.node], tonumber(ARGV[A.lease])
local mylive -- per bucket: the sweeper's own lease had not run out; nil: not read yet
local lost   -- per bucket: node -> its lease ran out

local function iamlive()
  if mylive == nil then
    local d = redis.call('ZSCORE', B.l, me)
    mylive = d ~= false and tonumber(d) > NOW
  end
  return mylive
end

-- expiry returns why session sk, whose lease ran out, is gone.
local function expiry(sk)
  if me == '' or not iamlive() then return 'expired' end
  local x = gets(sk)
  if not x then return 'expired' end
  if lost[x.node] == nil then
    local d = redis.call('ZSCORE', B.l, x.node)
    lost[x.node] = d ~= false and tonumber(d) <= NOW
  end
  if lost[x.node] then return 'node_lost' end
  return 'expired'
end

-- renew renews the sweeper's lease in the bucket, after its sessions are
-- judged. A lease that had run out (the sweeper was cut off, or Redis
-- stalled) is renewed only once the bucket has nothing more due, so that
-- the later rounds of this Sweep do not vouch for what it missed.
local function renew(full)
  if me == '' or (full and not iamlive()) then return end
  if redis.call('ZADD', B.l, NOW + lease, me) == 1 then forgetleases() end
end

local more = 0
local claimed = {}
local nb = #KEYS / KN
local gens = {}
for b = 0, nb - 1 do
  bucket(b)
  local a = size(A) + 1 + b * size(SB)
  gens[b + 1] = gen(ARGV[a + SB.gen], reassert)
  mylive, lost = nil, {}
  local due = redis.call('ZRANGEBYSCORE', B.x, '-inf', NOW, 'LIMIT', 0, limit)
  for _, sk in ipairs(due) do
    local reason = redis.call('HGET', B.r, sk) or expiry(sk)
    remove(sk, reason, retention)
  end
  flushaway()
  local full = #due == limit
  -- Decide the transitions the bucket's closed window held.
  if not win() and redis.call('EXISTS', B.h) == 1 then
    local h = redis.call('HSCAN', B.h, 0, 'COUNT', limit)
    for i = 1, #h[2], 2 do decide(h[2][i]) end
    full = full or redis.call('EXISTS', B.h) == 1
  end
  if retention >= 0 then
    local old = redis.call('ZRANGEBYSCORE', B.o, '-inf', NOW - retention, 'LIMIT', 0, limit)
    for _, id in ipairs(old) do
      local c = getc(id)
      if c and c.n == 0 then
        delc(id)
        forgetleft(id)
      end
      redis.call('ZREM', B.o, id)
    end
    full = full or #old == limit
  end
  full = trimclients(tonumber(ARGV[A.bucket_clients]), limit) or full
  if full then more = more + 1 end
  renew(full)
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
for i = 1, #gens do r[#r + 1] = gens[i] end
for i = 1, #out do r[#r + 1] = out[i] end
r[#r + 1] = '|'
for _, e in ipairs(claimed) do
  r[#r + 1] = e[1]
  r[#r + 1] = #e[2]
  for i = 1, #e[2] do r[#r + 1] = e[2][i] end
end
return r

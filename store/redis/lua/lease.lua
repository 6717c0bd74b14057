-- lease.lua: renews a node's lease (see "Nodes" in doc.go) in buckets it
-- does not sweep but holds sessions in, and in buckets it sweeps with
-- nothing due (schedule.go). Bare: common.lua is not prepended. On a
-- single server a Store renews a lease it renewed lately with plain ZADD GT
-- commands instead (schedule.go, registryQueue).
-- KEYS: the lease zset (l) of each bucket. ARGV: A below (luanames.go:
-- leaseArg...): the node, and how long its lease runs from now (ms).
-- A lease is never shortened (GT). A node new to a bucket drops the leases
-- there that ran out more than a day ago, as sweep.lua's renewal does.
local A = { node = 1, lease = 2 }
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local till = now + tonumber(ARGV[A.lease])
for _, l in ipairs(KEYS) do
  if redis.call('ZADD', l, 'GT', till, ARGV[A.node]) == 1 then
    redis.call('ZREMRANGEBYSCORE', l, '-inf', now - 86400000)
  end
end
return now

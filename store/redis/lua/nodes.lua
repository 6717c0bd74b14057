-- nodes.lua: the registry of the Stores that share the background work
-- of a namespace (schedule.go). Bare: common.lua is not prepended, so the
-- call stays cheap. On a single server a Store runs it only until it has
-- read Redis's clock, then runs its commands as plain ones
-- (schedule.go, registryQueue).
-- KEYS[1]: the registry, a zset: Store -> when its entry ends (ms, Redis
-- clock). ARGV: A below (luanames.go: nodesArg...): the caller's name and
-- how long its entry runs from now (ms).
-- Returns: Redis's time (ms), then the Stores whose entry has not run
-- out, the caller's included.
local A = { member = 1, lease = 2 }
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[A.lease]), ARGV[A.member])
-- Entries that ran out a minute ago: Stores gone for good.
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - 60000)
return { now, redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. now, '+inf') }

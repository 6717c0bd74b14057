-- add.lua: Store.Add for one session. KEYS: one bucket.
-- ARGV: client, session, node, ttl ms, age ms, known generation of a
-- sibling session ('' if none), consumer, journal length.
-- Returns: generation, then the transitions.
bucket(0)
local g = gen()
local id, sid, node = ARGV[1], ARGV[2], ARGV[3]
local ttl, age = tonumber(ARGV[4]), tonumber(ARGV[5])
local lost = ARGV[6] ~= '' and ARGV[6] ~= g
J.consumer, J.maxlen, J.node = ARGV[7], tonumber(ARGV[8]), node
local sk = id .. '\0' .. sid
local seen = NOW - age
local x = gets(sk)
if x then
  -- The same session again: revive it if ending; the lease, not an
  -- earlier grace, decides its deadline.
  seen = math.max(seen, sseen(sk, x))
  redis.call('HDEL', B.r, sk)
  redis.call('ZADD', B.x, NOW + ttl, sk)
  own(sk, x, node)
  x.seen, x.span = seen, ttl + age
  puts(sk, x)
  return { g }
end
-- A client this node knew online before Redis lost the bucket comes back
-- without an event.
addsession(id, sid, sk, node, NOW + ttl, seen, lost and getc(id) == nil)
local r = { g }
for i = 1, #out do r[#r + 1] = out[i] end
return r

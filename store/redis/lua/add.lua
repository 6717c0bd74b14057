-- add.lua: Store.Add for one session. KEYS: one bucket.
-- ARGV: A below (luanames.go: addArg...): client, session, node, ttl ms,
-- age ms, known generation of a sibling session ('' if none), consumer,
-- journal length.
-- Returns: generation, then the transitions.
local A = { client = 1, session = 2, node = 3, ttl = 4, age = 5, sibling_gen = 6, consumer = 7, journal_len = 8 }
bucket(0)
local g = gen()
local id, sid, node = ARGV[A.client], ARGV[A.session], ARGV[A.node]
local ttl, age = tonumber(ARGV[A.ttl]), tonumber(ARGV[A.age])
local lost = ARGV[A.sibling_gen] ~= '' and ARGV[A.sibling_gen] ~= g
J.consumer, J.maxlen, J.node = ARGV[A.consumer], tonumber(ARGV[A.journal_len]), node
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

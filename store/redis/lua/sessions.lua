-- sessions.lua: Store.Sessions. KEYS: one bucket. ARGV: A below
-- (luanames.go: sessionsArg...): client ID.
-- Returns: nil if the client is unknown; otherwise per session its ID,
-- "seen|span|node" (seen: its last beat, see sseen) and reason ('' if
-- live), rooms ('\n' between them), metadata ('' if none) and, if it is
-- away, its last active time (ms; '' if active).
local A = { client = 1 }
bucket(0)
local id = ARGV[A.client]
if redis.call('HEXISTS', B.c, id) == 0 then return false end
local r = {}
local sks = sessionkeys(id)
for _, sk in ipairs(sks) do
  local x = gets(sk)
  if x then
    local _, sid = clientof(sk)
    r[#r + 1] = sid
    r[#r + 1] = fmt(sseen(sk, x)) .. '|' .. fmt(x.span) .. '|' .. x.node
    r[#r + 1] = redis.call('HGET', B.r, sk) or ''
    r[#r + 1] = redis.call('HGET', B.sr, sk) or ''
    r[#r + 1] = (getmeta(sk))
    r[#r + 1] = redis.call('HGET', B.a, sk) or ''
  end
end
return r

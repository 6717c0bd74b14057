-- among.lua: one bucket's part of Store.MembersAmong. KEYS: one bucket.
-- ARGV: A below (luanames.go: amongArg...): the room, then per client AI
-- (amongItem...): its ID.
-- Returns per client: '1' and memberinfo's fields if it is in the room,
-- else '0', 0, when it last left the room (0 if unknown), 0, '', 0, 0.
local A = { room = 1 }
local AI = { client = 0 }
bucket(0)
local room = ARGV[A.room]
local r = {}
for a = size(A) + 1, #ARGV do
  local id = ARGV[a + AI.client]
  local v = redis.call('HGET', B.rm, room .. '\0' .. id)
  if v then
    r[#r + 1] = '1'
    for _, f in ipairs(memberinfo(id, room, tonumber(string.match(v, '|(%d+)$')))) do r[#r + 1] = f end
  else
    local left = redis.call('ZSCORE', B.rl, id .. '\0' .. room)
    r[#r + 1] = '0'; r[#r + 1] = '0'; r[#r + 1] = left or '0'; r[#r + 1] = 0
    r[#r + 1] = ''; r[#r + 1] = 0; r[#r + 1] = 0
  end
end
return r

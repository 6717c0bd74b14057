-- members.lua: one bucket's part of Store.Members. KEYS: one bucket.
-- ARGV: A below (luanames.go: membersArg...): the room, the client ID to
-- list after ('' from the start), limit.
-- Returns per member: its ID, then memberinfo's fields.
local A = { room = 1, after = 2, limit = 3 }
bucket(0)
local room = ARGV[A.room]
local from = '[' .. room .. '\0'
if ARGV[A.after] ~= '' then from = '(' .. room .. '\0' .. ARGV[A.after] end
local mks = redis.call('ZRANGEBYLEX', B.rz, from, '(' .. room .. '\1', 'LIMIT', 0, tonumber(ARGV[A.limit]))
local r = {}
local p = #room + 2
for _, mk in ipairs(mks) do
  local id = string.sub(mk, p)
  local v = redis.call('HGET', B.rm, mk) or '0|0'
  r[#r + 1] = id
  for _, f in ipairs(memberinfo(id, room, tonumber(string.match(v, '|(%d+)$')))) do r[#r + 1] = f end
end
return r

-- list.lua: one bucket's part of Store.List. KEYS: one bucket.
-- ARGV: A below (luanames.go: listArg...): the client ID to list after
-- ('' from the start), limit.
-- Returns per online client: its ID, record, state and last active time
-- (ms).
local A = { after = 1, limit = 2 }
bucket(0)
local from = '-'
if ARGV[A.after] ~= '' then from = '(' .. ARGV[A.after] end
local ids = redis.call('ZRANGEBYLEX', B.on, from, '+', 'LIMIT', 0, tonumber(ARGV[A.limit]))
local r = {}
for _, id in ipairs(ids) do
  r[#r + 1] = id
  r[#r + 1] = redis.call('HGET', B.c, id) or ''
  local state, la = clientstate(id, getc(id))
  r[#r + 1] = state
  r[#r + 1] = fmt(la)
end
return r

-- list.lua: one bucket's part of Store.List. KEYS: one bucket.
-- ARGV: the client ID to list after ('' from the start), limit.
-- Returns per online client: its ID and record.
bucket(0)
local from = '-'
if ARGV[1] ~= '' then from = '(' .. ARGV[1] end
local ids = redis.call('ZRANGEBYLEX', B.on, from, '+', 'LIMIT', 0, tonumber(ARGV[2]))
local r = {}
for _, id in ipairs(ids) do
  r[#r + 1] = id
  r[#r + 1] = redis.call('HGET', B.c, id) or ''
end
return r

-- list.lua: one bucket's part of Store.List. KEYS: one bucket.
-- ARGV: A below (luanames.go: listArg...): the client ID to list after
-- ('' from the start), limit. Clients come in the order of the bucket's
-- online sets (see onsub), then by ID.
-- Returns per online client: its ID, record, state and last active time
-- (ms).
local A = { after = 1, limit = 2 }
bucket(0)
local from = '-'
if ARGV[A.after] ~= '' then from = '(' .. ARGV[A.after] end
-- The bucket's online clients by set (see onsub), then by ID; none
-- without reading the sets if its count says so.
if (tonumber(redis.call('GET', B.oc)) or 0) <= 0 then
  -- A bucket of layout 1 has no count: refused, not read as empty.
  if redis.call('EXISTS', B.g2) == 0 and redis.call('EXISTS', string.sub(B.g2, 1, -2)) == 1 then error({ err = LAYOUT }) end
  return {}
end
local sub = 0
if ARGV[A.after] ~= '' then sub = onsub(ARGV[A.after]) end
local limit = tonumber(ARGV[A.limit])
local r = {}
local n = 0
while sub < ONSUBS and n < limit do
  local ids = redis.call('ZRANGEBYLEX', onkey(sub), from, '+', 'LIMIT', 0, limit - n)
  for _, id in ipairs(ids) do
    r[#r + 1] = id
    r[#r + 1] = redis.call('HGET', B.c, id) or ''
    local state, la = clientstate(id, getc(id))
    r[#r + 1] = state
    r[#r + 1] = fmt(la)
  end
  n = n + #ids
  sub, from = sub + 1, '-'
end
return r

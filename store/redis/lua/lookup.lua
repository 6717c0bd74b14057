-- lookup.lua: Store.Lookup in one or more buckets.
-- KEYS: the buckets. ARGV: per bucket the number of clients m, then m
-- client IDs.
-- Returns per client, in order: its record, "seq|since|seen|sessions", or
-- '' if unknown.
local a = 1
local r = {}
for b = 0, #KEYS / KN - 1 do
  bucket(b)
  local m = tonumber(ARGV[a]); a = a + 1
  for i = a, a + m - 1 do
    local c = getc(ARGV[i])
    r[#r + 1] = c and crec(ARGV[i], c) or ''
  end
  a = a + m
end
return r

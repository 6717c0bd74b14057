-- rooms.lua: Join, Leave and SetMeta of one session, and the re-assertion
-- of its rooms. KEYS: one bucket. ARGV: A below (luanames.go:
-- roomsArg...): the operation (OP), client, session, room, Leave's reason,
-- the new metadata (SetMeta), then what the caller's Store knows of the
-- session, to write it back if Redis lost it: its node, lease ttl and span
-- (ms), the generation it was last written in and the one its rooms were
-- ('' if unknown), its rooms ('\n' between them) and metadata, when that
-- was set (µs); then the generation the caller last saw of the bucket ('' if
-- none), re-assertion window ms (see gen), consumer and journal length;
-- then SetActivity's activity ('away', or '' for active) and, for away,
-- how long ago its user was last active (ms); then the session's activity
-- as the caller's Store knows it, and for away how long ago its user was
-- last active (ms), written back with its rooms.
-- Returns: generation, a status (ST), the session's metadata stamp (µs),
-- then the transitions.
local A = { op = 1, client = 2, session = 3, room = 4, reason = 5, meta = 6, node = 7, ttl = 8, span = 9, known_gen = 10,
  rooms_gen = 11, rooms = 12, known_meta = 13, stamp = 14, bucket_gen = 15, reassert = 16, consumer = 17, journal_len = 18,
  activity = 19, idle_for = 20, known_activity = 21, known_idle_for = 22 }
local OP = { join = 'j', leave = 'l', meta = 'm', reassert = 'a', activity = 's' }
local ST = { ok = 0, no_session = 1, not_in = 2, limit = 3 }
local MAX_ROOMS = 64
bucket(0)
local g = gen(ARGV[A.bucket_gen], tonumber(ARGV[A.reassert]))
local op, id, sid = ARGV[A.op], ARGV[A.client], ARGV[A.session]
J.consumer, J.maxlen, J.node = ARGV[A.consumer], tonumber(ARGV[A.journal_len]), ARGV[A.node]
local sk = id .. '\0' .. sid
local kg, rg = ARGV[A.known_gen], ARGV[A.rooms_gen]
local function reply(st, stamp)
  local r = { g, st, stamp or 0 }
  for i = 1, #out do r[#r + 1] = out[i] end
  return r
end
local x = gets(sk)
if not x and kg ~= '' and kg ~= g and mayrecreate(id) then
  -- Held live before Redis lost the bucket: re-created silently, as Touch
  -- would, with its rooms below.
  local ttl, span = tonumber(ARGV[A.ttl]), tonumber(ARGV[A.span])
  addsession(id, sid, sk, ARGV[A.node], NOW + ttl, NOW + ttl - span, true)
  x = gets(sk)
  rg = ''
end
if not x then return reply(ST.no_session) end
if rg ~= g and (ARGV[A.rooms] ~= '' or ARGV[A.known_meta] ~= '') then
  reassertrooms(id, sk, ARGV[A.rooms], ARGV[A.known_meta], tonumber(ARGV[A.stamp]), '1')
end
if kg ~= '' and rg ~= g then
  -- Its activity, written back silently with its rooms; in the window,
  -- what its Away or Back is decided against.
  local away = ARGV[A.known_activity] == 'away'
  if away and redis.call('HEXISTS', B.a, sk) == 0 then setaway(id, sk, NOW - tonumber(ARGV[A.known_idle_for])) end
  holdstate(id, sid, away)
end
if op == OP.reassert then return reply(ST.ok, select(2, getmeta(sk))) end
if op == OP.leave then
  local reason = ARGV[A.reason]
  if reason == '' then reason = 'left' end
  if not leaveroom(id, sid, sk, ARGV[A.room], reason) then return reply(ST.not_in) end
  return reply(ST.ok)
end
-- Join, SetMeta and SetActivity need a live session: not ending.
if redis.call('HEXISTS', B.r, sk) == 1 then return reply(ST.no_session) end
if op == OP.activity then
  settle(id)
  local wasactive = active(id)
  local at = nil
  if ARGV[A.activity] == 'away' then at = NOW - tonumber(ARGV[A.idle_for]) end
  setaway(id, sk, at)
  statechange(id, sid, wasactive, '')
  return reply(ST.ok)
end
if op == OP.join then
  local rooms = getrooms(sk)
  if not hasroom(rooms, ARGV[A.room]) and #rooms >= MAX_ROOMS then return reply(ST.limit) end
  joinroom(id, sid, sk, ARGV[A.room], (getmeta(sk)))
  return reply(ST.ok)
end
setmeta(id, sid, sk, ARGV[A.meta])
return reply(ST.ok, select(2, getmeta(sk)))

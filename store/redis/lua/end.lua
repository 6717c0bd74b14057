-- end.lua: Store.End in one bucket.
-- KEYS: one bucket. ARGV: A below (luanames.go: endArg...): mode ('c'
-- client, 'n' node, 'r' re-assert a client's ending session that Redis
-- lost, only if it holds none of that name, 'o' re-assert the Offline a
-- node remembers deciding for a client, while the window is open, 'l' the
-- same for a Leave of a room), client ID or node, session ID or '', reason, grace
-- ms, known generation of the session ('' if unknown), retention ms
-- (negative: none), consumer, journal length, node of the session or
-- caller ('' if unknown), how long a session re-created after Redis lost
-- it lingers at least (ms), and '1' if the reason is
-- presence.Reason.Unseen (else '0'), the generation the caller last saw
-- of the bucket ('' if none), re-assertion window ms (see gen), and for
-- 'r' the session's grace deadline, for 'o' and 'l' when the Offline or
-- Leave was decided (Redis ms, before Redis lost the data); then for 'l'
-- the room, or for one session the rooms
-- and metadata its node holds for it ('\n' between rooms), when the
-- metadata was set (µs), and the generation they were last written in
-- ('' if unknown), and its activity ('away', or '' for active) and for
-- away how long ago its user was last active (ms): a session re-created,
-- or whose rooms Redis lost, gets them back before it ends (see
-- reassertrooms), and its activity, so that its removal's Away is decided
-- against it.
-- Returns: generation, number of sessions ended, Redis's time (ms), then
-- the transitions.
local A = { mode = 1, who = 2, session = 3, reason = 4, grace = 5, known_gen = 6, retention = 7,
  consumer = 8, journal_len = 9, node = 10, linger = 11, unseen = 12, bucket_gen = 13, reassert = 14, at = 15,
  rooms = 16, meta = 17, stamp = 18, rooms_gen = 19, known_activity = 20, known_idle_for = 21 }
bucket(0)
local g = gen(ARGV[A.bucket_gen], tonumber(ARGV[A.reassert]))
local mode, who, sid, reason = ARGV[A.mode], ARGV[A.who], ARGV[A.session], ARGV[A.reason]
local grace, kg, retention = tonumber(ARGV[A.grace]), ARGV[A.known_gen], tonumber(ARGV[A.retention])
J.consumer, J.maxlen, J.node = ARGV[A.consumer], tonumber(ARGV[A.journal_len]), ARGV[A.node]
local sel = {}
-- reassertstate writes back, silently, the activity the caller's Store
-- holds for session sk (sid) of client who, and records it as what the
-- window decides its client's Away or Back against: an ending session
-- (not live) keeps its activity while it lingers, but whether its client
-- was online before is the hold's to say (see decide).
local function reassertstate(sk, live)
  local away = ARGV[A.known_activity] == 'away'
  if away and redis.call('HEXISTS', B.a, sk) == 0 then setaway(who, sk, NOW - tonumber(ARGV[A.known_idle_for])) end
  if live then
    holdstate(who, sid, away)
  elseif win() then
    local h = held(who)
    if h then
      h.acts[sid] = away and 'w' or 'a'
      puth(who, h)
    end
  end
end
if mode == 'o' then
  if win() then
    local c = getc(who)
    hold(who, c ~= nil and c.n > 0, false, nil, tonumber(ARGV[A.at]))
  end
elseif mode == 'l' then
  if win() then
    local room = ARGV[A.rooms]
    holdroom(who, room, redis.call('HEXISTS', B.rm, room .. '\0' .. who) == 1, nil, nil, nil, nil, tonumber(ARGV[A.at]))
  end
elseif mode == 'c' or mode == 'r' then
  if sid ~= '' then
    local sk = who .. '\0' .. sid
    local list, meta, rg = ARGV[A.rooms], ARGV[A.meta], ARGV[A.rooms_gen]
    if gets(sk) then
      if mode == 'c' then
        sel[1] = sk
        if rg ~= g and (list ~= '' or meta ~= '') then
          reassertrooms(who, sk, list, meta, tonumber(ARGV[A.stamp]), '1')
        end
        if kg ~= '' and rg ~= g then reassertstate(sk, true) end
      end
    elseif kg ~= '' and kg ~= g and mayrecreate(who) then
      -- Held before Redis lost the bucket: re-create it silently, then
      -- end it like any other, so its client gets its one Offline.
      -- It lingers at least a lease, so that the client's sessions on other
      -- nodes are re-asserted before it is gone.
      local node = ARGV[A.node]
      if mode == 'r' then
        addsession(who, sid, sk, node, NOW, NOW, false, tonumber(ARGV[A.at]))
        reassertrooms(who, sk, list, meta, tonumber(ARGV[A.stamp]), 'e', tonumber(ARGV[A.at]))
        reassertstate(sk, false)
      else
        addsession(who, sid, sk, node, NOW, NOW, true)
        reassertrooms(who, sk, list, meta, tonumber(ARGV[A.stamp]), '1')
        reassertstate(sk, true)
      end
      sel[1] = sk
      grace = math.max(grace, tonumber(ARGV[A.linger]))
    end
  else
    sel = sessionkeys(who)
  end
else
  -- A node's sessions: those of the bucket whose record names it (a
  -- node ends them all once, when it stops).
  local all = redis.call('ZRANGE', B.x, 0, -1)
  for i = 1, #all do
    local x = gets(all[i])
    if x and x.node == who then sel[#sel + 1] = all[i] end
  end
  table.sort(sel)
end
local keep = ARGV[A.unseen] == '1'
for _, sk in ipairs(sel) do
  -- The record's seen becomes the session's last: its last beat for the
  -- reasons that mean it went quiet, otherwise now (the client was there
  -- until the session ended).
  local x = gets(sk)
  x.seen = keep and sseen(sk, x) or NOW
  puts(sk, x)
  if grace <= 0 then
    remove(sk, reason, retention)
  else
    local deadline = NOW + grace
    if redis.call('HEXISTS', B.r, sk) == 1 then
      deadline = math.min(deadline, tonumber(redis.call('ZSCORE', B.x, sk)))
    end
    redis.call('HSET', B.r, sk, reason)
    redis.call('ZADD', B.x, deadline, sk)
  end
end
-- The Aways the removals owe, after every removal of the call: none for
-- a client that lost all its sessions.
flushaway()
local r = { g, #sel, NOW }
for i = 1, #out do r[#r + 1] = out[i] end
return r

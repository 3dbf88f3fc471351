/**
 * `onRoom` with RedisStore: the sync script's part that decides rooms'
 * transitions (../../core/room-watch.ts decides the same in one process, with
 * the lock order of ../../core/room-index.ts). Lua functions, placed in the sync
 * script after `emit`; they use its locals: `scopes` (the 4th: rooms' tabs),
 * `roomTabs`, `roomDue`, `roomsTold`, `roomActive`, `roomThreshold`, `emit`, `fmt`.
 *
 * Keys:
 *   rooms:tabs  sorted set, every score 0: each tab key "room␟user␟tab" in Redis, so a range by text
 *               finds a room's tabs, or one user's tabs in a room
 *   rooms:told  hash  room → what was told of it, JSON: { t: µs of its last check, m: { user key:
 *               [tab record, last seen µs] }, h: the lock holder's user key } (µs as text: cjson keeps 14 digits)
 *   rooms:due   sorted set  room → when the first window of its live tabs ends, µs
 *
 * A tab is live until its last heartbeat + the active window (`roomActive`), or the
 * away window (`roomThreshold`) for a page in the background. A room is checked after
 * each write to it that may change it (not a heartbeat of a live tab that claims as before), and at each moment a window ends (caught up before a write, so a
 * user's going is told before their return); a check compares the room then with what
 * was told and emits the lock lost, those who left, those who came, the lock taken.
 */
export const ROOM_LUA = `
local ROOM_SEP = '\\31'
-- A tab key's room, user key and tab (a user key may hold the separator; a room and a tab cannot).
local function roomOfTab(key)
  local first = string.find(key, ROOM_SEP, 1, true)
  if not first then return nil end
  local last = first
  while true do
    local later = string.find(key, ROOM_SEP, last + 1, true)
    if not later then break end
    last = later
  end
  return string.sub(key, 1, first - 1), string.sub(key, first + 1, last - 1)
end
-- A tab as Redis holds it: its record (decoded, and as text), last heartbeat and window's end, µs.
local function roomTab(key)
  local stored = redis.call('HGET', scopes[4][2], key)
  local seen = redis.call('ZSCORE', scopes[4][1], key)
  if not stored or not seen then return nil end
  local text = string.sub(stored, (string.find(stored, '|', 1, true) or 0) + 1)
  local ok, tab = pcall(cjson.decode, text)
  if not ok or type(tab) ~= 'table' then return nil end
  tab.text, tab.seen = text, tonumber(seen)
  tab.ends = tab.seen + ((tab.a == 1) and roomThreshold or roomActive)
  return tab
end
local function roomRange(prefix)
  return redis.call('ZRANGEBYLEX', roomTabs, '[' .. prefix .. ROOM_SEP, '(' .. prefix .. '\\32')
end
-- The room at \`at\`: its members (user key → { record, last seen µs }, the latest tab's), the lock holder's
-- user key, and when the first live window ends. The lock: the claim of the highest generation, the earliest
-- within it (ties: the greater key); none below a live release's generation.
local function roomAt(room, at)
  local members, seen, live, floor, nextAt = {}, {}, {}, 0, nil
  for _, key in ipairs(roomRange(room)) do
    local tab = roomTab(key)
    if tab and tab.ends > at then
      local _, userKey = roomOfTab(key)
      tab.key, tab.userKey = key, userKey
      live[#live + 1] = tab
      if not nextAt or tab.ends < nextAt then nextAt = tab.ends end
      if tab.n == 'released' and (tab.g or 0) > floor then floor = tab.g end
      if tab.n == nil and (not seen[userKey] or tab.seen >= seen[userKey]) then
        members[userKey], seen[userKey] = { tab.text, fmt(tab.seen) }, tab.seen
      end
    end
  end
  local holder
  for _, tab in ipairs(live) do
    local claim, gen = tab.c or 0, tab.g or 0
    if claim ~= 0 and tab.m == 1 and tab.n == nil and gen >= floor then
      if not holder or gen > holder.g or (gen == holder.g and (claim < holder.c or (claim == holder.c and tab.key > holder.key))) then
        holder = { c = claim, g = gen, key = tab.key, userKey = tab.userKey }
      end
    end
  end
  return members, holder and holder.userKey, nextAt
end
-- The user has a live tab in the room at \`at\` (before a touch: is it bringing them in?).
local function roomHas(room, userKey, at)
  for _, key in ipairs(roomRange(room .. ROOM_SEP .. userKey)) do
    local _, owner = roomOfTab(key)
    local tab = owner == userKey and roomTab(key)
    if tab and tab.n == nil and tab.ends > at then return true end
  end
  return false
end
-- Compares the room at \`at\` with what was told, and tells the difference. arrived: the user key a touch
-- brought in now, if any; gone: user key → kind, for those who leave by a leave or an eviction. A room met
-- for the first time takes whoever is there as they are, but the user arrived.
local function roomCheck(room, at, arrived, gone)
  local raw = redis.call('HGET', roomsTold, room)
  local ok, told = pcall(cjson.decode, raw or '')
  local fresh = not (raw and ok and type(told) == 'table')
  if fresh then told = { m = {} } end
  if told.t and tonumber(told.t) > at then at = tonumber(told.t) end
  local members, holder, nextAt = roomAt(room, at)
  local held = told.h
  if fresh and holder and holder ~= arrived then held = holder end
  -- Keyed by the room (told in order per room): the person goes with the record, "record␟user key".
  local function tell(kind, userKey, member)
    if member then emit(kind, ROOM_SEP .. room, at, tonumber(member[2]), member[1] .. ROOM_SEP .. userKey) end
  end
  if held and held ~= holder then tell('roomunlock', held, members[held] or told.m[held]) end
  for userKey, member in pairs(told.m) do
    if not members[userKey] then tell(gone and gone[userKey] or 'roomexpired', userKey, member) end
  end
  for userKey, member in pairs(members) do
    if not told.m[userKey] and not (fresh and userKey ~= arrived) then tell('roomjoin', userKey, member) end
  end
  if holder and holder ~= held then tell('roomlock', holder, members[holder]) end
  -- A room found empty is remembered (its last check's time) for the away window, past which a write is ignored
  -- anyway: a write that reaches Redis late is judged from then, and cannot bring back, as someone untold to be
  -- taken as they are, a person already told leaving.
  if not nextAt and (fresh or at - tonumber(told.t or '0') >= roomThreshold) then
    redis.call('HDEL', roomsTold, room)
    redis.call('ZREM', roomDue, room)
  else
    redis.call('HSET', roomsTold, room, cjson.encode({ t = fmt(at), m = members, h = holder }))
    redis.call('ZADD', roomDue, fmt(nextAt or at + roomThreshold), room)
  end
end
-- A heartbeat that changes nothing told (its tab was live, and claims and edits as before, in a room already
-- checked) needs no check: the common heartbeat costs two reads of its own tab, not the room's.
local function roomSame(room, key, before, at)
  if not before or before.ends <= at or redis.call('HEXISTS', roomsTold, room) == 0 then return false end
  local after = roomTab(key)
  return after ~= nil and after.c == before.c and after.g == before.g and after.m == before.m and after.n == before.n
end
-- What time did to the room until \`upto\`: each window's end checked at its moment.
local function roomCatchUp(room, upto)
  for _ = 1, 100 do
    local due = redis.call('ZSCORE', roomDue, room)
    if not due or tonumber(due) > upto then return end
    roomCheck(room, tonumber(due), nil, nil)
  end
end
`;

/**
 * The RedisStore protocol: one Lua script, atomic in Redis, that each process
 * runs every `syncInterval`. It applies the process's queued writes and returns
 * what changed since the process's cursor.
 *
 * Keys, all under one hash tag so the script runs on Redis Cluster too (KEYS order; `KEY` below):
 *   meta       hash: epoch, version (change counter), epochAt (when a restart began, µs),
 *              threshold (last writer's, µs), present (bitmask of the shared keys that held data),
 *              at (time of the last call, µs), record, recordAt, recordGen (the most users + guests
 *              online at once, when, and the reset generation), raise ("token|count|µs": a raise not yet
 *              acknowledged by the process it went to)
 *   per scope (users, guests, bots; then rooms' tabs, after `reported`):
 *   seen     sorted set  key → last seen, µs of Redis time (the time of the request, not of the write)
 *   profiles hash        key → "µs|profile JSON" (users and tabs): the time of the touch that wrote it; a user's
 *                        stays past a logout while the logout does
 *   gone     sorted set  key → time of its last logout, µs; kept one threshold
 *   changes  sorted set  key → version of its last change: the feed that processes read
 *   reported sorted set  user key → time of their last `onSeen` report, µs; only users online
 *   marks    sorted set  user key → when they were last seen hidden, µs (at most maxTracked, markTtl)
 *   deferred sorted set  user key → touch time, µs: reports held while processes write back
 *   owners   sorted set  process token → its last call, µs, while it has something unacknowledged
 *   assigned hash        (the caller's own, `{prefix}:users:assigned:<token>`) user key → µs of a
 *                        report assigned to it and not yet acknowledged
 *   announced sorted set user key → when they were told online (transitions on); only users online
 *   last-transition hash user key → "token|sequence" of their last transition not yet acknowledged
 *   transitions sorted set (the caller's own, `{prefix}:users:transitions:<token>`) sequence →
 *                        "sequence|kind|µs|last seen µs|key length|key profile": transitions queued for it
 *   deferred-online sorted set user key → first touch time, µs: comings online held while processes write back
 *   left     sorted set  user key → when they were last told gone, µs; kept one threshold
 *   statuses hash        user key → "µs|µs|status": their status as last told (onStatus; announced
 *                        users only), since when, and the activity time it counts from
 *   status-due sorted set user key → when time alone next changes their status, µs
 *   Rooms' tabs are keys "room␟user␟tab" with the tab's record as profile (../../rooms.ts) and a
 *   threshold of their own: a tab's heartbeat, leave and lock claim travel like a touch and a logout.
 *   rooms:tabs, rooms:told, rooms:due: rooms' transitions (onRoom), see ./room-script.ts
 *
 * Rules (latest event wins; so writes commute, and a late or repeated write is harmless):
 *   touch(key, t):  ignored if t is older than the threshold, or not newer than the key's logout or last seen
 *   forget(key, t): records the logout; removes the key if it was last seen at or before t; a user's
 *                   logout carries the profile they last had on its process when Redis may not have it
 *   A time from the future (a process's clock estimate off) is taken as Redis's now.
 *   profile:         written by the newest touch that carries one, even one older than the last seen;
 *                    a bare-id touch of a user with a mark brings them back hidden
 *   onSeen:          an accepted user touch is due when the user's last report is a seenInterval older or
 *                    more (or there is none: a user who left and came back); the report is assigned to the
 *                    process that sent the touch and resent to it in every reply until it acknowledges it.
 *                    A process silent for `lease` is gone: its reports pass to the next caller.
 *   record:          after the writes, users + guests online is compared with the record: a max taken
 *                    inside the script, so processes racing cannot lower it or both raise it; a raise is
 *                    assigned (and resent) like a report.
 *   transitions:     (when the caller asks) an accepted user touch of a user not `announced` is an online;
 *                    a logout, an expiry or the cap removing one who is, an offline (with why; an expiry
 *                    found by a touch is told before that touch's online). Each is queued for the caller,
 *                    or for the process that still holds the user's previous one, so one process tells a
 *                    user's transitions in order; resent until acknowledged, passed on after a lease.
 *                    A call's writes are applied in time order, so a sign-in after a logout in one call is
 *                    told, and a visit a pause held whole; a logout that lands after the user's return tells both. Decided while a process that
 *                    tells them (meta `hooked`) has called within a lease; only such a process is given one.
 *   statuses:        (transitions, and a process with onStatus within a lease: meta `statusIdle`, `statusAway`)
 *                    an announced user's status is read from their profile as ../../core/status.ts reads it;
 *                    a change is a transition like the others, queued the same way: one made by a touch at
 *                    its time, one made by time alone (idle, away) at its moment, found by the call after it
 *                    or first by a touch or going of that user, so a user's statuses come in order before
 *                    their offline.
 *   rooms:           (transitions, and a process with onRoom within a lease: meta `roomsAt`) each room is
 *                    checked after a write to it and when a tab's window ends: who came, who left, who took or
 *                    lost the lock, queued as the others are (./room-script.ts).
 *
 * Shared data keys expire two thresholds after the last call; meta, a small hash,
 * never does, so it keeps the epoch, the version counter and the record.
 *
 * Losing data: if the epoch is missing (a restart without persistence, FLUSHALL),
 * a key that held data at the last call is gone though it cannot have expired
 * (an evicting maxmemory-policy), or Redis is behind what the caller has already
 * seen (a restart from a snapshot, a failover to a lagging replica: a reply later
 * than the last call Redis holds, or this epoch further along),
 * the script drops the data and starts a new epoch. Processes seeing a new epoch
 * write back their whole read model, their recent logouts and the reports they
 * made, so presence survives and nobody who signed out comes back. For `recovery`
 * after a restart that processes saw, counts may be partial or hold a logout not
 * yet written back: no record is raised from them, and reports and comings online wait (deferred).
 * Write-backs say who had been told online, so through a data loss a transition is told at most once.
 */
import { createHash } from 'node:crypto';
import { ROOM_LUA } from './room-script';

const SCRIPT = `
-- The caller's arguments, named once (syncArgs below sends them in this order).
local threshold = tonumber(ARGV[1])
local cursor = tonumber(ARGV[2])
local readLimit = tonumber(ARGV[3])
local candidateEpoch = ARGV[4]
local ttl = tonumber(ARGV[5])
local cap = tonumber(ARGV[6])
local batch = tonumber(ARGV[7])
local touchCount = tonumber(ARGV[8])
local knownEpoch = ARGV[9]
local knownAt = tonumber(ARGV[10])
local seenInterval = tonumber(ARGV[11])
local recordFloor, recordFloorAt = tonumber(ARGV[12]), tonumber(ARGV[13])
local resetRecord = ARGV[14] == '1'
local maxBots = tonumber(ARGV[15])
local recordFloorGen = tonumber(ARGV[16])
local roomThreshold = tonumber(ARGV[17])
local maxRoomTabs = tonumber(ARGV[18])
local token = ARGV[19]
local assignedPrefix = ARGV[20]
local recovery = tonumber(ARGV[21])
local lease = tonumber(ARGV[22])
local markTtl = tonumber(ARGV[23])
local recordAck = ARGV[24]
local forgetCount = tonumber(ARGV[25])
local ackCount = tonumber(ARGV[26])
local markCount = tonumber(ARGV[27])
local hooked = ARGV[28] == '1'
local transitionsPrefix = ARGV[29]
local transitionAckCount = tonumber(ARGV[30])
-- The caller's last call (its store is closing): it is given nothing more, and what it has not
-- acknowledged passes on at once.
local leaving = ARGV[31] == '1'
-- The caller's idleAfter and awayAfter (µs) when it has onStatus, else 0.
local idleArg, awayArg = tonumber(ARGV[32]), tonumber(ARGV[33])
-- Rooms' active window (µs; a background tab's is roomThreshold), and whether the caller has onRoom.
local roomActive = tonumber(ARGV[34])
local roomsArg = ARGV[35] == '1'
local FIRST_WRITE = 36
-- Each touch takes 6 arguments, each forget 6, each acknowledged report 2, each mark 2, each acknowledged transition 1.
local TOUCH_ARGS, FORGET_ARGS = 6, 6

local meta = KEYS[1]
local scopes = { { KEYS[2], KEYS[3], KEYS[4], KEYS[5] }, { KEYS[6], KEYS[7], KEYS[8], KEYS[9] }, { KEYS[10], KEYS[11], KEYS[12], KEYS[13] }, { KEYS[15], KEYS[16], KEYS[17], KEYS[18] } }
local reported, marks, deferred, owners, assigned = KEYS[14], KEYS[19], KEYS[20], KEYS[21], KEYS[22]
local announced, lastTransition, transitionQueue, deferredOnline, left = KEYS[23], KEYS[24], KEYS[25], KEYS[26], KEYS[27]
local statuses, statusDue = KEYS[28], KEYS[29]
local roomTabs, roomDue, roomsTold = KEYS[30], KEYS[31], KEYS[32]
-- Keys shared by every caller: all but the caller's own (assigned, transitionQueue).
local SHARED = { 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 23, 24, 26, 27, 28, 29, 30, 31, 32 }
local caps = { cap, cap, maxBots, maxRoomTabs }
local function fmt(x) return string.format('%.0f', x) end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local cutoff = now - threshold
-- Rooms' tabs have a short threshold of their own.
local cutoffs = { cutoff, cutoff, cutoff, now - roomThreshold }

local evicted = 0
local epoch = redis.call('HGET', meta, 'epoch')
if epoch then
  -- A key that held data at the last call, and cannot have expired since, was evicted.
  if now - tonumber(redis.call('HGET', meta, 'at') or '0') < ttl * 1000 then
    local present = tonumber(redis.call('HGET', meta, 'present') or '0')
    for _, i in ipairs(SHARED) do
      if math.floor(present / 2 ^ (i - 2)) % 2 == 1 and redis.call('EXISTS', KEYS[i]) == 0 then evicted = 1 end
    end
  end
else
  -- meta never expires: data without it means meta was evicted.
  for _, i in ipairs(SHARED) do
    if redis.call('EXISTS', KEYS[i]) == 1 then evicted = 1 end
  end
end
local restart = not epoch or evicted == 1
if not restart then
  -- The caller has seen this epoch further along, or had a reply later than the last call Redis
  -- holds: Redis went back in time (restarted from a snapshot, or failed over to a replica that
  -- lagged), perhaps to an epoch before the caller's (a snapshot saved just ahead of a restart).
  -- What it holds is old: users who signed out since are in it. It is dropped, never read: every
  -- process writes back its replica and its recent logouts, which are the truth. A caller that knew
  -- the epoch this one replaced is only behind (and, with Redis's clock stepped back, must not end it again).
  local late = tonumber(redis.call('HGET', meta, 'at') or '0') < knownAt
  if epoch == knownEpoch then
    restart = late or cursor > tonumber(redis.call('HGET', meta, 'version') or '0')
  elseif knownEpoch ~= redis.call('HGET', meta, 'prev') then
    restart = late
    -- Not late: another process started this epoch (one that knew none, just started, cannot have
    -- opened a recovery window). This caller will write back: counts are partial until it has.
    if not late and knownEpoch ~= '' then redis.call('HSET', meta, 'epochAt', fmt(now)) end
  end
end
if restart then
  redis.call('HSET', meta, 'prev', epoch or '')
  -- Every process's unacknowledged reports go with the old data (an old copy of one would be delivered
  -- again); marks, deferred reports and comings online, and who was last told gone are kept: true, if old
  -- (they fail closed, and tell once). What was told of rooms goes: each room is met anew (at most once).
  -- Transitions not yet delivered go too: through a data loss they are told at most once, never twice.
  for _, owner in ipairs(redis.call('ZRANGE', owners, 0, -1)) do redis.call('DEL', assignedPrefix .. owner, transitionsPrefix .. owner) end
  for j = 2, #KEYS do
    if j ~= 19 and j ~= 20 and j ~= 26 and j ~= 27 then redis.call('DEL', KEYS[j]) end
  end
  epoch = candidateEpoch
  -- The record (a maximum, and the reset generation) is kept: processes' floors restore the rest.
  redis.call('HSET', meta, 'epoch', epoch, 'version', '0')
  redis.call('HDEL', meta, 'raise')
  -- A caller that knew an epoch before: processes are about to write presence back.
  if knownEpoch ~= '' then redis.call('HSET', meta, 'epochAt', fmt(now)) end
  cursor = 0
end
-- While the processes write their replicas back, counts are not yet what is true: no record is
-- raised, and users due an onSeen wait (deferred) until the reports processes remember are back.
local recovering = now - tonumber(redis.call('HGET', meta, 'epochAt') or '0') < recovery
-- Transitions are decided while a process with onOnline/onOffline has called within a lease: a process
-- without them (a job that only calls forget()) takes part, but is never given one to tell.
if hooked and not leaving then redis.call('HSET', meta, 'hooked', token, 'hookedAt', fmt(now)) end
local hookedBy = redis.call('HGET', meta, 'hooked')
-- A closing process's last call still decides (an expiry it sweeps is told): what it is given passes on at once.
local transitions = hooked or (hookedBy ~= false and now - tonumber(redis.call('HGET', meta, 'hookedAt') or '0') < lease)
if leaving and hookedBy == token then redis.call('HDEL', meta, 'hooked') end
hooked = hooked and not leaving
-- Statuses are decided with transitions while a process with onStatus has called within a lease (its windows in meta).
if idleArg > 0 and not leaving then redis.call('HSET', meta, 'statusIdle', fmt(idleArg), 'statusAway', fmt(awayArg), 'statusAt', fmt(now)) end
local statusWindows = redis.call('HMGET', meta, 'statusIdle', 'statusAway', 'statusAt')
local statusOn = transitions and statusWindows[1] ~= false and now - tonumber(statusWindows[3]) < lease
local idleUs, awayUs = tonumber(statusWindows[1] or '0'), tonumber(statusWindows[2] or '0')
-- Rooms' transitions are decided while a process with onRoom (meta \`roomsBy\`) had called within a lease of the
-- last call Redis saw (a silence of Redis itself turns nothing off), and given to such a process; not while
-- processes write back. Turned on afresh, every room is met anew (those in it are taken as they are).
local roomsMeta = redis.call('HMGET', meta, 'roomsBy', 'roomsAt', 'at')
local roomsCaller = roomsArg and not leaving
local roomsWasOn = roomsMeta[1] ~= false and tonumber(roomsMeta[3] or '0') - tonumber(roomsMeta[2] or '0') < lease
if roomsCaller then redis.call('HSET', meta, 'roomsBy', token, 'roomsAt', fmt(now)) end
if leaving and roomsMeta[1] == token then redis.call('HDEL', meta, 'roomsBy') end
local roomsBy = roomsCaller and token or roomsMeta[1]
local roomsOn = roomsCaller or (roomsWasOn and roomsBy ~= token)
if roomsOn and not roomsWasOn then redis.call('DEL', roomDue, roomsTold) end
roomsOn = roomsOn and not recovering
local version = tonumber(redis.call('HGET', meta, 'version') or '0')
local function changed(s, key)
  version = version + 1
  redis.call('ZADD', s[4], version, key)
end

-- onSeen: each report is assigned to one process, kept in its own hash until it acknowledges it
-- (by key and time) in a later call; its next call gets every report it has not acknowledged.
local i = FIRST_WRITE + touchCount * TOUCH_ARGS + forgetCount * FORGET_ARGS
for _ = 1, ackCount do
  if redis.call('HGET', assigned, ARGV[i]) == ARGV[i + 1] then redis.call('HDEL', assigned, ARGV[i]) end
  i = i + 2
end
-- Marks written back (Redis lost them): a newer one wins.
i = FIRST_WRITE + touchCount * TOUCH_ARGS + forgetCount * FORGET_ARGS + ackCount * 2
for _ = 1, markCount do
  local mark = redis.call('ZSCORE', marks, ARGV[i])
  if not mark or tonumber(mark) < tonumber(ARGV[i + 1]) then redis.call('ZADD', marks, ARGV[i + 1], ARGV[i]) end
  i = i + 2
end
-- Transitions (onOnline, onOffline): each decided here once, queued for one process (its transitionQueue,
-- scored by a sequence number) and sent to it in every reply until it acknowledges it. While a user has one
-- undelivered, their next goes to the same process, so a user's transitions are told in order.
local sequence
local function parseTransition(m)
  local _, e, seq, kind, at, seen, len = string.find(m, '^(%d+)|(%a+)|(%d+)|(%d+)|(%d+)|')
  len = tonumber(len)
  return seq, kind, at, string.sub(m, e + 1, e + len), string.sub(m, e + len + 1), seen
end
-- kind: online, logout, expired or evicted; or a status: active, idle, away, or manual (the app's, in the profile);
-- or a room's (room-script.ts: key "␟room", told in order per room, to a process with onRoom).
-- at: when; seen: the user's last request then.
local function emit(kind, key, at, seen, profile)
  sequence = (sequence or tonumber(redis.call('HGET', meta, 'transitionSeq') or '0')) + 1
  local room = string.byte(key, 1) == 31
  local owner = room and roomsBy or (hooked and token or hookedBy)
  local last = redis.call('HGET', lastTransition, key)
  if last then
    local bar = string.find(last, '|', 1, true)
    local other, seq = string.sub(last, 1, bar - 1), string.sub(last, bar + 1)
    if other ~= owner and redis.call('ZCOUNT', transitionsPrefix .. other, seq, seq) > 0 then owner = other end
  end
  redis.call('ZADD', transitionsPrefix .. owner, sequence, fmt(sequence) .. '|' .. kind .. '|' .. fmt(at) .. '|' .. fmt(seen) .. '|' .. #key .. '|' .. key .. profile)
  redis.call('HSET', lastTransition, key, owner .. '|' .. fmt(sequence))
  -- Queued for another process (this caller tells none): it is an owner, found gone after a lease like any.
  if owner ~= token then redis.call('ZADD', owners, 'NX', redis.call('HGET', meta, room and 'roomsAt' or 'hookedAt') or fmt(now), owner) end
  if kind == 'logout' or kind == 'expired' or kind == 'evicted' then
    local went = redis.call('ZSCORE', left, key)
    if not went or tonumber(went) < at then redis.call('ZADD', left, fmt(at), key) end
  end
end
-- A user's stored profile, without its time.
local function profileOf(s, key)
  local stored = redis.call('HGET', s[2], key) or ''
  return string.sub(stored, (string.find(stored, '|', 1, true) or 0) + 1)
end
-- The app's state in a profile, read as JSON (it may hold escapes); kept only beside an activity time, as JS keeps it.
local function manualOf(profile)
  if not string.find(profile, '"status"', 1, true) or not string.find(profile, '[{,]"lastActive":%d') then return nil end
  local ok, parsed = pcall(cjson.decode, (string.gsub(profile, '^#', '', 1)))
  local manual = ok and type(parsed) == 'table' and parsed.status
  if type(manual) == 'string' and manual ~= '' and manual ~= 'offline' then return manual end
  return nil
end
-- A profile's activity time, µs, as ../../core/status.ts reads it: its lastActive, or when the user was last seen.
local function activityOf(profile, seen)
  local active = tonumber(string.match(profile, '[{,]"lastActive":(%d+)[,}]'))
  active = active and active * 1000 or seen
  if active > seen then return seen end
  return active
end
-- The status at \`at\` (the app's state, or by the activity time), and when time alone next changes it (nil: only activity can).
local function statusFrom(manual, active, at)
  if manual then return manual, nil end
  if at - active < idleUs then return 'active', active + idleUs end
  if at - active < awayUs then return 'idle', active + awayUs end
  return 'away', nil
end
local function statusKind(status)
  if status == 'active' or status == 'idle' or status == 'away' then return status end
  return 'manual'
end
-- A user's status as last told (or noted), since when, and the activity time it counts from: "µs|µs|status".
local function toldStatus(key)
  local v = redis.call('HGET', statuses, key)
  if not v then return nil end
  local one = string.find(v, '|', 1, true)
  local two = string.find(v, '|', one + 1, true)
  return string.sub(v, two + 1), tonumber(string.sub(v, 1, one - 1)), tonumber(string.sub(v, one + 1, two - 1))
end
local function noteStatus(key, status, since, active, nextAt)
  redis.call('HSET', statuses, key, fmt(since) .. '|' .. fmt(active) .. '|' .. status)
  if nextAt then redis.call('ZADD', statusDue, fmt(nextAt), key) else redis.call('ZREM', statusDue, key) end
end
-- The changes time made to an announced user's status before \`upto\` (none at or past their expiry), each told at
-- its moment: run before anything else that user does in a call, so their transitions stay in order.
local function catchUp(s, key, upto)
  if not statusOn then return end
  local due = redis.call('ZSCORE', statusDue, key)
  if not due then return end
  local seen = redis.call('ZSCORE', s[1], key)
  local told, since, active = toldStatus(key)
  if not seen or not told then
    -- Gone while nobody decided transitions (no process with the hooks synced): nothing to tell of them.
    redis.call('ZREM', statusDue, key)
    redis.call('HDEL', statuses, key)
    return
  end
  due, seen = tonumber(due), tonumber(seen)
  local ends = seen + threshold
  if due > upto or due >= ends then return end
  local profile = profileOf(s, key)
  local manual = manualOf(profile)
  while due and due <= upto and due < ends do
    local status, after = statusFrom(manual, active, due)
    if status ~= told then
      emit(statusKind(status), key, due, seen, profile)
      told, since = status, due
    end
    due = after
  end
  noteStatus(key, told, since, active, due)
end
-- Told online: their status then is known (not a change).
local function announce(key, toldAt, seen, profile, at)
  redis.call('ZADD', announced, toldAt, key)
  if statusOn then
    local active = activityOf(profile, seen)
    local status, nextAt = statusFrom(manualOf(profile), active, at)
    noteStatus(key, status, at, active, nextAt)
  end
end
-- Told gone: their statuses end with them.
local function unannounce(keys)
  redis.call('ZREM', announced, unpack(keys))
  redis.call('HDEL', statuses, unpack(keys))
  redis.call('ZREM', statusDue, unpack(keys))
end
${ROOM_LUA}-- Acknowledgements of another epoch's transitions mean nothing here (their numbers may be reused).
i = FIRST_WRITE + touchCount * TOUCH_ARGS + forgetCount * FORGET_ARGS + ackCount * 2 + markCount * 2
for _ = 1, (epoch == knownEpoch and transitionAckCount or 0) do
  local seq = ARGV[i]
  for _, m in ipairs(redis.call('ZRANGEBYSCORE', transitionQueue, seq, seq)) do
    local _, _, _, key = parseTransition(m)
    if redis.call('HGET', lastTransition, key) == token .. '|' .. seq then redis.call('HDEL', lastTransition, key) end
  end
  redis.call('ZREMRANGEBYSCORE', transitionQueue, seq, seq)
  i = i + 1
end

local function assign(key, at)
  redis.call('ZADD', reported, fmt(at), key)
  redis.call('HSET', assigned, key, fmt(at))
end
local function due(key, at)
  local last = redis.call('ZSCORE', reported, key)
  return not last or at - tonumber(last) >= seenInterval
end
-- A process that has not called for a lease is gone: its unacknowledged reports (still the user's
-- latest), its undelivered record raise and (to a caller that tells them) its transitions pass to this
-- caller. The caller itself is not gone, however long since its last call (Redis was paused, say).
-- After a silence of Redis itself (paused, unreachable for everyone), no process is gone for it: each is
-- given a lease from now, as an acknowledgement it sent may still be waiting in Redis's input.
if now - tonumber(redis.call('HGET', meta, 'at') or fmt(now)) > lease / 2 then
  for _, owner in ipairs(redis.call('ZRANGE', owners, 0, -1)) do redis.call('ZADD', owners, 'XX', fmt(now), owner) end
elseif redis.call('ZSCORE', owners, token) then
  redis.call('ZADD', owners, fmt(now), token)
end
for _, gone in ipairs(redis.call('ZRANGEBYSCORE', owners, '-inf', '(' .. fmt(now - lease), 'LIMIT', 0, 1)) do
  local theirs = assignedPrefix .. gone
  local rows = redis.call('HGETALL', theirs)
  for j = 1, #rows, 2 do
    local last = redis.call('ZSCORE', reported, rows[j])
    if last and tonumber(last) == tonumber(rows[j + 1]) then redis.call('HSET', assigned, rows[j], rows[j + 1]) end
  end
  redis.call('DEL', theirs)
  -- Its transitions go to a process that tells them: this caller, or the last one that did (an owner then).
  local queue = transitionsPrefix .. gone
  local heir = (hooked or roomsCaller) and token or (transitions and hookedBy ~= gone and hookedBy) or (roomsOn and roomsBy ~= gone and roomsBy) or nil
  local moved = heir and redis.call('ZRANGE', queue, 0, -1, 'WITHSCORES') or {}
  for j = 1, #moved, 2 do
    redis.call('ZADD', transitionsPrefix .. heir, moved[j + 1], moved[j])
    local seq, _, _, key = parseTransition(moved[j])
    if redis.call('HGET', lastTransition, key) == gone .. '|' .. seq then redis.call('HSET', lastTransition, key, heir .. '|' .. seq) end
  end
  if heir and heir ~= token and #moved > 0 then redis.call('ZADD', owners, 'NX', fmt(now), heir) end
  redis.call('DEL', queue)
  redis.call('ZREM', owners, gone)
  local raise = redis.call('HGET', meta, 'raise')
  if raise and string.sub(raise, 1, #gone + 1) == gone .. '|' then
    redis.call('HSET', meta, 'raise', token .. string.sub(raise, #gone + 1))
  end
end

-- Invisible mode is remembered past a user's presence (marks), so a bare-id touch cannot unhide them.
-- Every profile a touch carries counts, in time order, even one that comes after a logout (a hide
-- held on a cut-off process): only a newer profile (stored, or a newer mark) overrides it.
local function noteProfile(s, key, at, profile)
  local stored = redis.call('HGET', s[2], key)
  if stored and tonumber(string.match(stored, '^(%d+)|')) > at then return end
  local mark = redis.call('ZSCORE', marks, key)
  if string.find(profile, '[{,]"hidden":true[,}]') then
    if not mark or tonumber(mark) < at then redis.call('ZADD', marks, fmt(at), key) end
  elseif mark and tonumber(mark) <= at then
    redis.call('ZREM', marks, key)
  end
end

-- A touch of scope n's key at \`at\`: profile ('' or '#' for none), the report (known) and the online (toldAt) a write-back carries.
local function touchKey(n, key, at, profile, known, toldAt)
  local s = scopes[n]
  -- No profile: '' keeps the stored one; '#' too, for a user whose id is a number.
  local bare = profile == '' or profile == '#'
  if at > now then at = now end
  if at > cutoffs[n] then
    -- A tab's heartbeat: what time did to its room first; a room met for the first time takes those in it as
    -- they are, but the user this touch brings in (no live tab there before it).
    local room, roomUser, arrived, before
    if n == 4 and roomsOn then room, roomUser = roomOfTab(key) end
    if room then
      roomCatchUp(room, at)
      before = roomTab(key)
      if redis.call('HEXISTS', roomsTold, room) == 0 and not roomHas(room, roomUser, at) then arrived = roomUser end
    end
    local gone = redis.call('ZSCORE', s[3], key)
    local seen = redis.call('ZSCORE', s[1], key)
    local live = not gone or tonumber(gone) < at
    if n == 1 and not bare then noteProfile(s, key, at, profile) end
    -- A visit whose page reached Redis after its logout (a pause held it, or it was served elsewhere), the
    -- user offline since and no going told after it: told whole, its coming and its logout. Not while
    -- processes write back (a replica's old touch of a user whose going was told before the loss).
    if not live and n == 1 and transitions and not recovering and not redis.call('ZSCORE', announced, key) then
      local went = redis.call('ZSCORE', left, key)
      if not went or tonumber(went) < at then
        local stored = profileOf(s, key)
        if stored == '' then stored = profile end
        emit('online', key, at, at, stored)
        emit('logout', key, tonumber(gone), at, stored)
      end
    end
    -- A report the writer made before Redis lost it (a write-back) holds the next one back.
    if n == 1 and known ~= '' then
      local last = redis.call('ZSCORE', reported, key)
      if not last or tonumber(last) < tonumber(known) then redis.call('ZADD', reported, known, key) end
    end
    -- The profile is a register of its own, "µs|json": a touch that lost on time (a bare-id touch from
    -- another process landed first, or a logout and a sign-in since) still brings its profile if that is
    -- the newest, so a hide is not lost.
    if not bare and seen and tonumber(seen) > at then
      local stored = redis.call('HGET', s[2], key)
      if at > (stored and tonumber(string.match(stored, '^(%d+)|')) or -1) then
        redis.call('HSET', s[2], key, fmt(at) .. '|' .. profile)
        changed(s, key)
      end
    end
    local latest = live and (not seen or tonumber(seen) <= at)
    local told = latest and n == 1 and transitions and redis.call('ZSCORE', announced, key)
    -- Told online, and expired since (not yet swept): their going is told before their coming back.
    if told and not (seen and tonumber(seen) > cutoff) then
      local last = tonumber(seen or told)
      catchUp(s, key, math.min(last + threshold, at))
      emit('expired', key, math.min(last + threshold, at), last, profileOf(s, key))
      unannounce({ key })
      told = false
    end
    -- Before the touch: what time did to their status until it.
    if told then catchUp(s, key, at) end
    if latest then
      redis.call('ZADD', s[1], fmt(at), key)
      if n == 4 then redis.call('ZADD', roomTabs, 0, key) end
      if not bare then
        redis.call('HSET', s[2], key, fmt(at) .. '|' .. profile)
      elseif n == 1 and not seen and redis.call('HEXISTS', s[2], key) == 0 then
        -- A bare id of a user who hid: they come back hidden, as of when they were last seen hidden
        -- (so a request that unhid them since, landing after this, still wins).
        local mark = redis.call('ZSCORE', marks, key)
        if mark then redis.call('HSET', s[2], key, mark .. '|' .. profile .. '{"hidden":true}') end
      end
      changed(s, key)
      if n == 1 and seenInterval > 0 then
        if recovering then
          redis.call('ZADD', deferred, fmt(at), key)
        elseif due(key, at) then
          assign(key, at)
        end
      end
      -- Online: a user not told online yet. During a recovery it waits, as a report does, for the
      -- write-backs that say who was told online before Redis lost its data.
      if n == 1 and transitions and not told and toldAt == '' then
        if recovering then
          -- Dated by their first request: a later one in the window does not move it.
          redis.call('ZADD', deferredOnline, 'NX', fmt(at), key)
        else
          local stored = profileOf(s, key)
          announce(key, fmt(at), at, stored, at)
          emit('online', key, at, at, stored ~= '' and stored or profile)
        end
      end
      -- The touch's own change of status (activity, or the app's state), judged when the last change told
      -- began if that is later (a page that reached Redis late is news of activity then): so dates only move
      -- forward, and a heartbeat that saw no input changes nothing. A write-back restores what was: its
      -- status now is noted, not told (at most once).
      if told and statusOn then
        local stored = profileOf(s, key)
        local restoring = toldAt ~= '' or known ~= ''
        local was, since, counted = toldStatus(key)
        local active, when = activityOf(stored, at), at
        if restoring then
          when = now
        elseif was then
          -- News of activity counts from no earlier than the last change told; a touch with none counts nothing.
          active = active > counted and math.max(active, since) or counted
          when = math.max(at, since)
        end
        local status, nextAt = statusFrom(manualOf(stored), active, when)
        if was and was ~= status and not restoring then emit(statusKind(status), key, when, at, stored) end
        noteStatus(key, status, (was == status and since) or when, active, nextAt)
      end
    end
    -- A write-back of a user told online before Redis lost its data, online in Redis now: not told again.
    if n == 1 and transitions and toldAt ~= '' and not redis.call('ZSCORE', announced, key) then
      local current = redis.call('ZSCORE', s[1], key)
      if current and tonumber(current) > cutoff then announce(key, toldAt, tonumber(current), profileOf(s, key), now) end
    end
    if room and not roomSame(room, key, before, at) then roomCheck(room, at, arrived, nil) end
  end
end
-- A touch sent by the caller. i: its first argument.
local function applyTouch(i)
  touchKey(tonumber(ARGV[i]), ARGV[i + 1], tonumber(ARGV[i + 2]), ARGV[i + 3], ARGV[i + 4], ARGV[i + 5])
end
-- A logout: recorded; the key removed if last seen at or before it. i: its first argument.
local function applyForget(i)
  local n = tonumber(ARGV[i])
  local s, key, at, profile, profileAt = scopes[n], ARGV[i + 1], tonumber(ARGV[i + 2]), ARGV[i + 3], tonumber(ARGV[i + 4])
  -- A logout written back (it reached Redis before Redis lost its data) was told then, if it was to be: never again.
  -- '2': a tab a replica dropped (maxRoomMembers, maxRooms): its user, if it was their last, is evicted.
  local tells = transitions and ARGV[i + 5] ~= '1'
  local dropped = ARGV[i + 5] == '2'
  if at > now then at = now end
  -- A tab's leave carries its last heartbeat when that had not reached Redis (both came within one sync, on
  -- one process): the heartbeat lands first, so the visit is told whole.
  if n == 4 and roomsOn and ARGV[i + 5] == '' and profile ~= '' and profileAt > cutoffs[n] and profileAt <= at then touchKey(4, key, profileAt, profile, '', '') end
  -- The profile the user last had on the logging-out process, if it had not reached Redis (a hide a moment
  -- before the logout, or during an outage): counted as a touch's would be, into the register kept past the logout.
  if n == 1 and profile ~= '' and profileAt > cutoffs[n] then
    noteProfile(s, key, profileAt, profile)
    local stored = redis.call('HGET', s[2], key)
    if not stored or tonumber(string.match(stored, '^(%d+)|')) < profileAt then redis.call('HSET', s[2], key, fmt(profileAt) .. '|' .. profile) end
  end
  if at > cutoffs[n] then
    -- A tab's leave: what time did to its room first, then the room checked (its user left, if it was their last).
    local room, roomUser
    if n == 4 and roomsOn then room, roomUser = roomOfTab(key) end
    if room then roomCatchUp(room, at) end
    local gone = redis.call('ZSCORE', s[3], key)
    if not gone or tonumber(gone) < at then redis.call('ZADD', s[3], fmt(at), key) end
    local seen = redis.call('ZSCORE', s[1], key)
    if seen and tonumber(seen) <= at then
      if n == 4 then redis.call('ZREM', roomTabs, key) end
      if n == 1 and transitions and redis.call('ZSCORE', announced, key) and tells then
        local expired = tonumber(seen) <= cutoff
        local offAt = expired and tonumber(seen) + threshold or at
        catchUp(s, key, offAt)
        emit(expired and 'expired' or 'logout', key, offAt, tonumber(seen), profileOf(s, key))
      end
      if n == 1 and transitions then unannounce({ key }) end
      redis.call('ZREM', s[1], key)
      -- A user's profile stays, with its time, as long as the logout does (one threshold): a touch held
      -- back since (a hide from a cut-off process) is judged against it, and a bare id comes back as they were.
      if n ~= 1 then redis.call('HDEL', s[2], key) end
      -- Whoever signs in next is reported at once.
      if n == 1 then
        redis.call('ZREM', reported, key)
        redis.call('ZREM', deferred, key)
        redis.call('ZREM', deferredOnline, key)
      end
    elseif seen and n == 1 and tells then
      -- A logout that reached Redis after the user's return (from another process, or held by a pause):
      -- if they were told online before it, its going is told now, then their coming back.
      local told = redis.call('ZSCORE', announced, key)
      if told and tonumber(told) <= at then
        catchUp(s, key, at)
        emit('logout', key, at, at, profileOf(s, key))
        emit('online', key, tonumber(seen), tonumber(seen), profileOf(s, key))
        announce(key, seen, tonumber(seen), profileOf(s, key), tonumber(seen))
      end
    elseif not seen and n == 1 and tells and not recovering and profile ~= '' and profileAt > cutoff and profileAt <= at then
      -- The logout of a visit whose pages never reached Redis (queued on this process, then dropped for the
      -- logout, which carries the last of them): told whole, unless a going was told after that page.
      local went = redis.call('ZSCORE', left, key)
      if not redis.call('ZSCORE', announced, key) and (not went or tonumber(went) < profileAt) then
        emit('online', key, profileAt, profileAt, profile)
        emit('logout', key, at, profileAt, profile)
      end
    end
    changed(s, key)
    if room then roomCheck(room, at, nil, { [roomUser] = dropped and 'roomevicted' or 'roomleft' }) end
  end
end
-- Writes are applied in time order, a call's logouts among its touches: a sign-in after a logout is told
-- as a coming back, a page before a logout as a visit (both can be in one call: a pause held them).
if forgetCount == 0 or touchCount == 0 then
  for k = 0, forgetCount - 1 do applyForget(FIRST_WRITE + touchCount * TOUCH_ARGS + k * FORGET_ARGS) end
  for k = 0, touchCount - 1 do applyTouch(FIRST_WRITE + k * TOUCH_ARGS) end
else
  local writes = {}
  for k = 0, touchCount - 1 do
    local j = FIRST_WRITE + k * TOUCH_ARGS
    writes[#writes + 1] = { tonumber(ARGV[j + 2]), 0, j }
  end
  for k = 0, forgetCount - 1 do
    local j = FIRST_WRITE + touchCount * TOUCH_ARGS + k * FORGET_ARGS
    writes[#writes + 1] = { tonumber(ARGV[j + 2]), 1, j }
  end
  -- At one time, the touch first (a logout request marks its user, then logs them out).
  table.sort(writes, function(a, b)
    if a[1] ~= b[1] then return a[1] < b[1] end
    if a[2] ~= b[2] then return a[2] < b[2] end
    return a[3] < b[3]
  end)
  for _, w in ipairs(writes) do
    if w[2] == 0 then applyTouch(w[3]) else applyForget(w[3]) end
  end
end
-- Out of the recovery: the deferred reports are judged against the reports written back meanwhile,
-- and the deferred comings online against who was written back as told online.
if not recovering and seenInterval > 0 then
  for _, key in ipairs(redis.call('ZRANGE', deferred, 0, batch - 1)) do
    local at = tonumber(redis.call('ZSCORE', deferred, key))
    local seen = redis.call('ZSCORE', scopes[1][1], key)
    if seen and tonumber(seen) > cutoff and due(key, at) then assign(key, at) end
    redis.call('ZREM', deferred, key)
  end
end
if not recovering and transitions then
  for _, key in ipairs(redis.call('ZRANGE', deferredOnline, 0, batch - 1)) do
    local at = tonumber(redis.call('ZSCORE', deferredOnline, key))
    local seen = redis.call('ZSCORE', scopes[1][1], key)
    if seen and tonumber(seen) > cutoff and not redis.call('ZSCORE', announced, key) then
      announce(key, fmt(at), tonumber(seen), profileOf(scopes[1], key), now)
      emit('online', key, at, tonumber(seen), profileOf(scopes[1], key))
      -- Every process learns who was told (to write it back if Redis loses its data again).
      changed(scopes[1], key)
    end
    redis.call('ZREM', deferredOnline, key)
  end
end

-- Users who leave (over the cap, expired) take their report with them: one who comes back is
-- reported at once, as in a MemoryStore, and \`reported\` never holds more than the users online.
local function drop(n, s, keys, why)
  if n == 1 and transitions then
    for _, key in ipairs(keys) do
      if redis.call('ZSCORE', announced, key) then
        local seen = tonumber(redis.call('ZSCORE', s[1], key))
        local offAt = why == 'expired' and seen + threshold or now
        catchUp(s, key, offAt)
        emit(why, key, offAt, seen, profileOf(s, key))
      end
    end
    unannounce(keys)
  end
  redis.call('ZREM', s[1], unpack(keys))
  redis.call('HDEL', s[2], unpack(keys))
  redis.call('ZREM', s[4], unpack(keys))
  if n == 4 then
    redis.call('ZREM', roomTabs, unpack(keys))
    -- An expired tab's room was checked when its window ended; an evicted one's now (its user left, if it was their last).
    if why == 'evicted' and roomsOn then
      for _, key in ipairs(keys) do
        local room, roomUser = roomOfTab(key)
        if room then roomCheck(room, now, nil, { [roomUser] = 'roomevicted' }) end
      end
    end
  end
  if n == 1 then
    redis.call('ZREM', reported, unpack(keys))
    redis.call('ZREM', deferred, unpack(keys))
    redis.call('ZREM', deferredOnline, unpack(keys))
  end
end
-- Rooms time changed by now (a tab's window ended), each checked at its moment, before expired tabs leave Redis.
if roomsOn then
  for _, room in ipairs(redis.call('ZRANGEBYSCORE', roomDue, '-inf', fmt(now), 'LIMIT', 0, batch)) do roomCatchUp(room, now) end
end
for n, s in ipairs(scopes) do
  -- Over the cap: the least recently seen leave Redis. Each replica caps itself the same
  -- way, so past the cap every count reads the cap (saturated), as in a memory store.
  local excess = redis.call('ZCARD', s[1]) - caps[n]
  if excess > 0 then drop(n, s, redis.call('ZRANGE', s[1], 0, math.min(excess, batch) - 1), 'evicted') end
  -- Expired: every process drops them by time on its own, so they leave the feed too.
  local old = redis.call('ZRANGEBYSCORE', s[1], '-inf', fmt(cutoffs[n]), 'LIMIT', 0, batch)
  if #old > 0 then drop(n, s, old, 'expired') end
  -- A logout older than the threshold can remove nothing any more.
  for _, key in ipairs(redis.call('ZRANGEBYSCORE', s[3], '-inf', fmt(cutoffs[n]), 'LIMIT', 0, batch)) do
    redis.call('ZREM', s[3], key)
    if not redis.call('ZSCORE', s[1], key) then
      redis.call('ZREM', s[4], key)
      redis.call('HDEL', s[2], key)
    end
  end
end
-- Statuses time changed by now (idle, away), each told at its moment.
if statusOn then
  for _, key in ipairs(redis.call('ZRANGEBYSCORE', statusDue, '-inf', fmt(now), 'LIMIT', 0, batch)) do
    if redis.call('ZSCORE', announced, key) then
      catchUp(scopes[1], key, now)
    else
      redis.call('ZREM', statusDue, key)
      redis.call('HDEL', statuses, key)
    end
  end
end
-- Who was last told gone: only a touch within the threshold asks.
redis.call('ZREMRANGEBYSCORE', left, '-inf', fmt(cutoff))
-- Marks: the most recent \`cap\`, none older than markTtl.
redis.call('ZREMRANGEBYSCORE', marks, '-inf', '(' .. fmt(now - markTtl))
redis.call('ZREMRANGEBYRANK', marks, 0, -cap - 1)
redis.call('HSET', meta, 'version', fmt(version))

-- The record: users + guests online now against the most ever (bots never count).
local online = redis.call('ZCOUNT', scopes[1][1], '(' .. fmt(cutoff), '+inf') + redis.call('ZCOUNT', scopes[2][1], '(' .. fmt(cutoff), '+inf')
-- Each reset starts a generation. A caller's record (its floor) counts when it is of the latest
-- generation the caller or Redis knows: so processes write back a record Redis lost, without
-- raising it anew, but cannot undo a reset.
local record = tonumber(redis.call('HGET', meta, 'record') or '-1')
local recordAt = tonumber(redis.call('HGET', meta, 'recordAt') or '0')
local generation = tonumber(redis.call('HGET', meta, 'recordGen') or '-1')
if resetRecord then
  record, recordAt, generation = online, now, math.max(generation, recordFloorGen) + 1
elseif recordFloorGen >= generation then
  local lost = record < 0
  generation = recordFloorGen
  if recordFloor > record then record, recordAt = recordFloor, recordFloorAt end
  -- A record Redis had lost is set, not raised: nobody's onRecord hears of a count it may have had.
  if lost and online > record and not recovering then record, recordAt = online, now end
end
-- A raise waits for the caller's acknowledgement (count|µs), and goes to it again until then.
local raise = redis.call('HGET', meta, 'raise')
if raise == token .. '|' .. recordAck then
  redis.call('HDEL', meta, 'raise')
end
if online > record and not recovering then
  record, recordAt = online, now
  redis.call('HSET', meta, 'raise', token .. '|' .. fmt(record) .. '|' .. fmt(recordAt))
end
raise = redis.call('HGET', meta, 'raise')
local mine = ''
if raise and string.sub(raise, 1, #token + 1) == token .. '|' then mine = string.sub(raise, #token + 2) end
redis.call('HSET', meta, 'record', fmt(record), 'recordAt', fmt(recordAt), 'recordGen', fmt(generation))

local upto = version
local more = 0
local ranges = {}
for n, s in ipairs(scopes) do
  ranges[n] = redis.call('ZRANGEBYSCORE', s[4], '(' .. fmt(cursor), '+inf', 'WITHSCORES', 'LIMIT', 0, readLimit)
  if #ranges[n] == 2 * readLimit then
    more = 1
    local last = tonumber(ranges[n][#ranges[n]])
    if last < upto then upto = last end
  end
end
local out = { epoch, fmt(upto), fmt(now), more }
for n, s in ipairs(scopes) do
  local rows = {}
  for j = 1, #ranges[n], 2 do
    if tonumber(ranges[n][j + 1]) <= upto then
      local key = ranges[n][j]
      rows[#rows + 1] = key
      rows[#rows + 1] = redis.call('ZSCORE', s[1], key) or ''
      rows[#rows + 1] = redis.call('ZSCORE', s[3], key) or ''
      rows[#rows + 1] = (n == 1 or n == 4) and profileOf(s, key) or ''
      -- When the user was told online (transitions): a process writes it back if Redis loses its data.
      rows[#rows + 1] = (n == 1 and transitions and redis.call('ZSCORE', announced, key)) or ''
    end
  end
  out[#out + 1] = rows
end

local other = redis.call('HGET', meta, 'threshold')
redis.call('HSET', meta, 'threshold', ARGV[1])
if other == ARGV[1] then other = '' end
out[#out + 1] = other or ''
out[#out + 1] = evicted
out[#out + 1] = redis.call('HGETALL', assigned)
out[#out + 1] = fmt(record)
out[#out + 1] = fmt(recordAt)
out[#out + 1] = mine
out[#out + 1] = fmt(generation)
out[#out + 1] = restart and 1 or 0
-- The transitions queued for the caller, oldest first, each as sequence, kind, µs, key, profile, last seen µs.
local queued = {}
for _, m in ipairs(redis.call('ZRANGE', transitionQueue, 0, readLimit - 1)) do
  local seq, kind, at, key, profile, seen = parseTransition(m)
  for _, field in ipairs({ seq, kind, at, key, profile, seen }) do queued[#queued + 1] = field end
end
out[#out + 1] = queued
if sequence then redis.call('HSET', meta, 'transitionSeq', fmt(sequence)) end

-- A process with something unacknowledged is known as an owner, with the time of its last call.
if mine ~= '' or redis.call('EXISTS', assigned) == 1 or redis.call('EXISTS', transitionQueue) == 1 then
  redis.call('ZADD', owners, leaving and '0' or fmt(now), token)
else
  redis.call('ZREM', owners, token)
end

local present = 0
for _, j in ipairs(SHARED) do
  if redis.call('EXISTS', KEYS[j]) == 1 then present = present + 2 ^ (j - 2) end
end
for j = 2, #KEYS do redis.call('PEXPIRE', KEYS[j], ttl) end
-- Another process's unacknowledged reports and transitions live until it is found gone (a lease may be longer than the ttl).
for _, owner in ipairs(redis.call('ZRANGE', owners, 0, -1)) do
  redis.call('PEXPIRE', assignedPrefix .. owner, ttl)
  redis.call('PEXPIRE', transitionsPrefix .. owner, ttl)
end
redis.call('HSET', meta, 'present', fmt(present), 'at', fmt(now))
return out
`;

export const SYNC_SCRIPT = SCRIPT;
export const SYNC_SHA = createHash('sha1').update(SCRIPT).digest('hex');

/** Users, guests, bots, and rooms' tabs (see ../../rooms.ts): a scope's place in the protocol. */
export type ScopeNo = 0 | 1 | 2 | 3;

/** Where each of a prefix's keys stands in KEYS (0-based; see the header). */
export const KEY = {
  meta: 0,
  /** A scope's first key (seen); profiles, gone and changes follow it. Rooms came after `reported`, so the other keys kept their places. */
  scope: [1, 5, 9, 14] as const,
  reported: 13,
  marks: 18,
  deferred: 19,
  owners: 20,
  /** The caller's own: its reports not yet acknowledged. */
  assigned: 21,
  /** Users told online (transitions) → when; and each user's last transition not yet acknowledged → "token|sequence". */
  announced: 22,
  lastTransition: 23,
  /** The caller's own: its transitions not yet acknowledged. */
  transitions: 24,
  deferredOnline: 25,
  /** Users told gone (transitions) → when: a touch older than their logout that lands late is a visit not told yet, or not. */
  left: 26,
  /** Announced users' statuses as last told (onStatus), and when time next changes each. */
  statuses: 27,
  statusDue: 28,
  /** Rooms' tabs by text, what was told of each room, and when each is next due (onRoom). */
  roomTabs: 29,
  roomDue: 30,
  roomsTold: 31,
} as const;

/** The hash of reports assigned to the process whose token is `token`. */
export function assignedKey(prefix: string, token: string): string {
  return `{${prefix}}:users:assigned:${token}`;
}

/** The sorted set of transitions queued for the process whose token is `token`. */
export function transitionsKey(prefix: string, token: string): string {
  return `{${prefix}}:users:transitions:${token}`;
}

/** The keys of one prefix, in KEYS order, for the process whose token is `token`. */
export function syncKeys(prefix: string, token: string): string[] {
  const tag = `{${prefix}}`;
  const scopeKeys = (scope: string): string[] => ['seen', 'profiles', 'gone', 'changes'].map((k) => `${tag}:${scope}:${k}`);
  return [
    `${tag}:meta`,
    ...scopeKeys('users'),
    ...scopeKeys('guests'),
    ...scopeKeys('bots'),
    `${tag}:users:reported`,
    ...scopeKeys('rooms'),
    `${tag}:users:marks`,
    `${tag}:users:deferred`,
    `${tag}:owners`,
    assignedKey(prefix, token),
    `${tag}:users:announced`,
    `${tag}:users:last-transition`,
    transitionsKey(prefix, token),
    `${tag}:users:deferred-online`,
    `${tag}:users:left`,
    `${tag}:users:statuses`,
    `${tag}:users:status-due`,
    `${tag}:rooms:tabs`,
    `${tag}:rooms:due`,
    `${tag}:rooms:told`,
  ];
}

export interface TouchWrite {
  readonly scope: ScopeNo;
  readonly key: string;
  /** Redis time of the request, µs. */
  readonly atUs: number;
  /** Profile as stored; '' to keep the one in Redis, or '#' for a user whose id is a number (guests send ''). */
  readonly profile: string;
  /** When this process last reported the user (µs), sent with a write-back so Redis does not report them again; else undefined. */
  readonly reportedUs?: number | undefined;
  /** When the user was told online (µs), sent with a write-back so Redis does not tell it again; else undefined. */
  readonly toldUs?: number | undefined;
}

export interface ForgetWrite {
  readonly scope: ScopeNo;
  readonly key: string;
  readonly atUs: number;
  /** A user's profile as stored, and the time of the touch that gave it (µs), when Redis may not have it yet. */
  readonly last?: { readonly profile: string; readonly atUs: number } | undefined;
  /** Written back after Redis lost its data: it landed before, and its going was told then (if it was to be). */
  readonly writtenBack?: boolean;
  /** A tab this process dropped to keep its room bounds (maxRoomMembers, maxRooms): its user leaves as evicted. */
  readonly evicted?: boolean;
}

/** A user key and a time, µs: a report (assigned, or acknowledged), or a mark. */
export interface KeyTime {
  readonly key: string;
  readonly atUs: number;
}

/** Everything one call needs besides the writes. */
export interface SyncCall {
  readonly keys: readonly string[];
  readonly thresholdUs: number;
  /** Version of the last change read; 0 reads everything. */
  readonly cursor: number;
  /** Most changes returned per scope; a longer backlog takes several calls. */
  readonly readLimit: number;
  /** Used only when Redis has no epoch, or went back in time: a fresh one tells every process that Redis started over. */
  readonly candidateEpoch: string;
  /** The epoch, and Redis's time (µs), of this process's last reply: Redis behind them has gone back in time. */
  readonly knownEpoch: string | undefined;
  readonly knownAtUs: number;
  /** How long the keys live after the last call, ms. */
  readonly keyTtlMs: number;
  /** Most keys kept per scope, for bots, and rooms' tabs. */
  readonly maxTracked: number;
  readonly maxBots: number;
  readonly maxRoomTabs: number;
  /** Rooms' threshold, µs. */
  readonly roomThresholdUs: number;
  /** µs between two `onSeen` reports for one user; 0: nobody listens, nothing is reported. */
  readonly seenIntervalUs: number;
  /** The record this process knows: Redis takes it when it has none (it lost its data). */
  readonly recordFloor: number;
  readonly recordFloorAtUs: number;
  /** Start the record over from the number online now. */
  readonly resetRecord: boolean;
  /** The reset generation `recordFloor` belongs to (-1: none known). */
  readonly recordGeneration: number;
  /** Most expired or excess keys removed per scope per call. */
  readonly cleanupLimit: number;
  /** This process's name in the protocol: reports and record raises assigned to it wait for its acknowledgement. */
  readonly token: string;
  /** The prefix of every process's `assigned` hash (a gone process's is taken over by name). */
  readonly assignedPrefix: string;
  /** After Redis starts a new epoch under processes that knew the old one, how long (µs) no record is raised and reports wait. */
  readonly recoveryUs: number;
  /** A process that has not called for this long (µs) is gone: its unacknowledged reports pass to another. */
  readonly leaseUs: number;
  /** How long (µs) Redis remembers that a user hid, past their presence. */
  readonly markTtlUs: number;
  /** The record raise this process delivered ("count|µs"), or ''. */
  readonly recordAck: string;
  readonly touches: readonly TouchWrite[];
  readonly forgets: readonly ForgetWrite[];
  readonly acks: readonly KeyTime[];
  /** Users this process remembers as hidden (key, when last seen hidden, µs): written back when Redis lost its data. */
  readonly marks: readonly KeyTime[];
  /** Some tracker of this process has `onOnline` or `onOffline`: it may be given transitions to tell. */
  readonly transitions: boolean;
  /** The prefix of every process's transitions queue (a gone process's is taken over by name). */
  readonly transitionsPrefix: string;
  /** Sequence numbers of the transitions this process delivered. */
  readonly transitionAcks: readonly number[];
  /** The store is closing: this is its last call. */
  readonly leaving?: boolean;
  /** With `onStatus`: idleAfter and awayAfter, µs (statuses are decided while a process sends them); else 0. */
  readonly statusIdleUs?: number;
  readonly statusAwayUs?: number;
  /** Rooms' active window, µs (a background tab's is `roomThresholdUs`). */
  readonly roomActiveUs: number;
  /** Some tracker of this process has `onRoom`: rooms' transitions are decided while one does. */
  readonly rooms?: boolean;
}

/** The EVALSHA/EVAL arguments after the script or its SHA, in the order the script names them. */
export function syncArgs(call: SyncCall): string[] {
  const args = [
    String(call.keys.length),
    ...call.keys,
    String(call.thresholdUs),
    String(call.cursor),
    String(call.readLimit),
    call.candidateEpoch,
    String(Math.ceil(call.keyTtlMs)),
    String(call.maxTracked),
    String(call.cleanupLimit),
    String(call.touches.length),
    call.knownEpoch ?? '',
    String(call.knownAtUs),
    String(call.seenIntervalUs),
    String(call.recordFloor),
    String(Math.round(call.recordFloorAtUs)),
    call.resetRecord ? '1' : '0',
    String(call.maxBots),
    String(call.recordGeneration),
    String(call.roomThresholdUs),
    String(call.maxRoomTabs),
    call.token,
    call.assignedPrefix,
    String(Math.round(call.recoveryUs)),
    String(Math.round(call.leaseUs)),
    String(Math.round(call.markTtlUs)),
    call.recordAck,
    String(call.forgets.length),
    String(call.acks.length),
    String(call.marks.length),
    call.transitions ? '1' : '0',
    call.transitionsPrefix,
    String(call.transitionAcks.length),
    call.leaving === true ? '1' : '0',
    String(call.statusIdleUs ?? 0),
    String(call.statusAwayUs ?? 0),
    String(call.roomActiveUs),
    call.rooms === true ? '1' : '0',
    // then each touch as scope (1 users, 2 guests, 3 bots, 4 rooms), key, µs, profile ('' or '#' for none), reported µs or '', told µs or '';
    // each forget as scope, key, µs, last profile ('' for none), its µs, '1' when written back ('2': a tab dropped); each acknowledged report as key, µs; each mark as key, µs;
    // each acknowledged transition as its sequence number
  ];
  const optional = (us: number | undefined): string => (us === undefined ? '' : String(Math.round(us)));
  for (const w of call.touches) args.push(String(w.scope + 1), w.key, String(w.atUs), w.profile, optional(w.reportedUs), optional(w.toldUs));
  for (const w of call.forgets) {
    args.push(String(w.scope + 1), w.key, String(w.atUs), w.last?.profile ?? '', String(w.last?.atUs ?? 0), w.writtenBack === true ? '1' : w.evicted === true ? '2' : '');
  }
  for (const a of call.acks) args.push(a.key, String(a.atUs));
  for (const m of call.marks) args.push(m.key, String(m.atUs));
  for (const seq of call.transitionAcks) args.push(String(seq));
  return args;
}

/** A key's state after the call, as read back from Redis. */
export interface ChangeRow {
  readonly key: string;
  /** Last seen, µs; null when not online in Redis. */
  readonly seenUs: number | null;
  /** Last logout, µs; null when none within the threshold. */
  readonly goneUs: number | null;
  /** Stored profile, or null. */
  readonly profile: string | null;
  /** When the user was told online (µs; transitions on), or null. */
  readonly toldUs: number | null;
}

/** The kinds of rooms' transitions (`onRoom`); their key is "␟room", their profile "tab record␟user key" (the user's latest tab there). */
export const ROOM_KINDS = {
  roomjoin: ['join', undefined],
  roomleft: ['leave', 'left'],
  roomexpired: ['leave', 'expired'],
  roomevicted: ['leave', 'evicted'],
  roomlock: ['lock', undefined],
  roomunlock: ['unlock', undefined],
} as const;
export type RoomKind = keyof typeof ROOM_KINDS;

/**
 * A transition Redis decided and queued for this process: `onOnline`, `onOffline` with why, `onStatus`
 * (`manual`: the app's state, in the profile), or a room's (`ROOM_KINDS`).
 */
export interface TransitionRow {
  /** Its place in the order Redis decided them: what this process acknowledges. */
  readonly seq: number;
  readonly kind: 'online' | 'logout' | 'expired' | 'evicted' | 'active' | 'idle' | 'away' | 'manual' | RoomKind;
  readonly key: string;
  readonly atUs: number;
  /** The user's stored profile then ('' when none); a room's: the tab record. */
  readonly profile: string;
  /** The user's last request (a room's: their tab's last heartbeat) then, µs. */
  readonly seenUs: number;
}

export interface SyncReply {
  readonly epoch: string;
  /** The new cursor. */
  readonly cursor: number;
  /** Redis time when the script ran, µs. */
  readonly nowUs: number;
  /** True when Redis has more changes than one call returns. */
  readonly more: boolean;
  readonly changes: readonly [readonly ChangeRow[], readonly ChangeRow[], readonly ChangeRow[], readonly ChangeRow[]];
  /** Another tracker's threshold (µs) seen on this prefix since our last call, or null. */
  readonly otherThresholdUs: number | null;
  /** Redis had evicted some of our keys: presence started over. */
  readonly evicted: boolean;
  /** The `onSeen` reports assigned to this process and not yet acknowledged, with the touch's time (µs). */
  readonly reports: readonly KeyTime[];
  readonly recordCount: number;
  readonly recordAtUs: number;
  /** A record raise assigned to this process and not yet acknowledged ("count|µs"), or ''. */
  readonly raise: string;
  readonly recordGeneration: number;
  /** This call started a new epoch. */
  readonly restarted: boolean;
  /** Transitions queued for this process and not yet acknowledged, oldest first. */
  readonly transitions: readonly TransitionRow[];
}

const optionalNumber = (value: unknown): number | null => (value === '' || value === null || value === undefined ? null : Number(value));

function decodeRows(raw: unknown): ChangeRow[] {
  const flat = Array.isArray(raw) ? (raw as unknown[]) : [];
  const rows: ChangeRow[] = [];
  for (let j = 0; j + 4 < flat.length; j += 5) {
    rows.push({
      key: String(flat[j]),
      seenUs: optionalNumber(flat[j + 1]),
      goneUs: optionalNumber(flat[j + 2]),
      profile: flat[j + 3] === '' ? null : String(flat[j + 3]),
      toldUs: optionalNumber(flat[j + 4]),
    });
  }
  return rows;
}

/** An HGETALL of `assigned` as the script returns it: [key, µs, key, µs, …]. */
function reports(raw: unknown): KeyTime[] {
  const flat = Array.isArray(raw) ? (raw as unknown[]) : [];
  const out: KeyTime[] = [];
  for (let j = 0; j + 1 < flat.length; j += 2) out.push({ key: String(flat[j]), atUs: Number(flat[j + 1]) });
  return out;
}

const KINDS = new Set(['online', 'logout', 'expired', 'evicted', 'active', 'idle', 'away', 'manual', ...Object.keys(ROOM_KINDS)]);

function transitionRows(raw: unknown): TransitionRow[] {
  const flat = Array.isArray(raw) ? (raw as unknown[]) : [];
  const out: TransitionRow[] = [];
  for (let j = 0; j + 5 < flat.length; j += 6) {
    const kind = String(flat[j + 1]);
    if (!KINDS.has(kind)) continue;
    out.push({
      seq: Number(flat[j]),
      kind: kind as TransitionRow['kind'],
      atUs: Number(flat[j + 2]),
      key: String(flat[j + 3]),
      profile: String(flat[j + 4]),
      seenUs: Number(flat[j + 5]),
    });
  }
  return out;
}

/** Decodes the script's reply; throws on a reply of another shape (an older script under the same SHA cannot be). */
export function decodeSyncReply(raw: unknown): SyncReply {
  if (!Array.isArray(raw) || raw.length !== 17) throw new Error('unexpected reply from the sync script');
  const [epoch, cursor, nowUs, more, users, guests, bots, rooms, other, evicted, reported, recordCount, recordAtUs, raise, generation, restarted, transitions] = raw as unknown[];
  return {
    epoch: String(epoch),
    cursor: Number(cursor),
    nowUs: Number(nowUs),
    more: Number(more) === 1,
    changes: [decodeRows(users), decodeRows(guests), decodeRows(bots), decodeRows(rooms)],
    otherThresholdUs: optionalNumber(other),
    evicted: Number(evicted) === 1,
    reports: reports(reported),
    recordCount: Number(recordCount),
    recordAtUs: Number(recordAtUs),
    raise: String(raise),
    recordGeneration: Number(generation),
    restarted: Number(restarted) === 1,
    transitions: transitionRows(transitions),
  };
}

/**
 * The RedisStore protocol: one Lua script, atomic in Redis, that each process
 * runs every `syncInterval`. It applies the process's queued writes and returns
 * what changed since the process's cursor.
 *
 * Keys, all under one hash tag so the script runs on Redis Cluster too:
 *   KEYS[1]  meta       hash: epoch, version (change counter), threshold (last writer's, µs),
 *                       present (bitmask of the data keys that held data), at (time of the last call, µs),
 *                       record, recordAt (most users + guests online at once, and when, µs)
 *   per scope (users at KEYS[2..5], guests at KEYS[6..9], bots at KEYS[10..13]):
 *   seen     sorted set  key → last seen, µs of Redis time (the time of the request, not of the write)
 *   profiles hash        key → "µs|profile JSON" (users only): the time of the touch that wrote it
 *   gone     sorted set  key → time of its last logout, µs; kept one threshold
 *   changes  sorted set  key → version of its last change: the feed that processes read
 *   KEYS[14] reported   sorted set  user key → time of its last `onSeen` call, µs; kept one threshold
 *   rooms' tabs at KEYS[15..18], as a fourth scope: key "room␟user␟tab", profile the tab's record
 *   (../../rooms.ts), their own threshold; the same rules, so a tab's heartbeat, leave and lock claim
 *   travel like a user's touch and logout
 *
 * Rules (latest event wins; so writes commute, and a late or repeated write is harmless):
 *   touch(key, t):  ignored if t is older than the threshold, or not newer than the key's logout or last seen
 *   forget(key, t): records the logout; removes the key if it was last seen at or before t
 *   A time from the future (a process's clock estimate off) is taken as Redis's now.
 *   profile:         written by the newest touch that carries one, even one older than the last seen
 *   onSeen:          an accepted user touch is reported (to the process that sent it) when the
 *                    user's last report is a seenInterval older or more; a logout clears it
 *   record:          after the writes, users + guests online is compared with the record: a max
 *                    taken inside the script, so processes racing cannot lower it or both raise it
 *
 * Data keys expire two thresholds after the last call; meta, a small hash,
 * never does, so it keeps the epoch and the version counter.
 *
 * Losing data: if the epoch is missing (a restart without persistence, FLUSHALL)
 * or a key that held data at the last call is gone though it cannot have
 * expired (an evicting maxmemory-policy), the script starts a new epoch, and
 * says so when keys were evicted. If Redis is behind what the caller has
 * already seen of this epoch (a restart from a snapshot, a failover to a
 * lagging replica), it keeps its data and starts a new epoch too. Processes seeing a new epoch write back their
 * whole read model, so presence survives.
 */
import { createHash } from 'node:crypto';

const SCRIPT = `
local meta = KEYS[1]
local scopes = { { KEYS[2], KEYS[3], KEYS[4], KEYS[5] }, { KEYS[6], KEYS[7], KEYS[8], KEYS[9] }, { KEYS[10], KEYS[11], KEYS[12], KEYS[13] }, { KEYS[15], KEYS[16], KEYS[17], KEYS[18] } }
local reported = KEYS[14]
local threshold = tonumber(ARGV[1])
local cursor = tonumber(ARGV[2])
local readLimit = tonumber(ARGV[3])
local ttl = tonumber(ARGV[5])
local cap = tonumber(ARGV[6])
local batch = tonumber(ARGV[7])
local seenInterval = tonumber(ARGV[11])
local caps = { cap, cap, tonumber(ARGV[15]), tonumber(ARGV[18]) }
local function fmt(x) return string.format('%.0f', x) end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local cutoff = now - threshold
-- Rooms' tabs have a short threshold of their own.
local cutoffs = { cutoff, cutoff, cutoff, now - tonumber(ARGV[17]) }

local evicted = 0
local epoch = redis.call('HGET', meta, 'epoch')
if epoch then
  -- A key that held data at the last call, and cannot have expired since, was evicted.
  if now - tonumber(redis.call('HGET', meta, 'at') or '0') < ttl * 1000 then
    local present = tonumber(redis.call('HGET', meta, 'present') or '0')
    for i = 2, #KEYS do
      if math.floor(present / 2 ^ (i - 2)) % 2 == 1 and redis.call('EXISTS', KEYS[i]) == 0 then evicted = 1 end
    end
  end
else
  -- meta never expires: data without it means meta was evicted.
  for i = 2, #KEYS do
    if redis.call('EXISTS', KEYS[i]) == 1 then evicted = 1 end
  end
end
if not epoch or evicted == 1 then
  redis.call('DEL', unpack(KEYS))
  epoch = ARGV[4]
  redis.call('HSET', meta, 'epoch', epoch, 'version', '0')
  cursor = 0
elseif epoch == ARGV[9] then
  -- The caller has seen this epoch further along than Redis is now: Redis went back in time
  -- (restarted from a snapshot, or failed over to a replica that lagged). What it holds is true
  -- but old: a new epoch makes every process read it all and write its replica back.
  local version = tonumber(redis.call('HGET', meta, 'version') or '0')
  local at = tonumber(redis.call('HGET', meta, 'at') or '0')
  if cursor > version or at < tonumber(ARGV[10]) then
    epoch = ARGV[4]
    redis.call('HSET', meta, 'epoch', epoch)
    cursor = 0
  end
end
local version = tonumber(redis.call('HGET', meta, 'version'))
local function changed(s, key)
  version = version + 1
  redis.call('ZADD', s[4], version, key)
end

local reports = {}
local i = 19
for _ = 1, tonumber(ARGV[8]) do
  local n = tonumber(ARGV[i])
  local s, key, at, profile = scopes[n], ARGV[i + 1], tonumber(ARGV[i + 2]), ARGV[i + 3]
  if at > now then at = now end
  if at > cutoffs[n] then
    local gone = redis.call('ZSCORE', s[3], key)
    local seen = redis.call('ZSCORE', s[1], key)
    local live = not gone or tonumber(gone) < at
    -- The profile is a register of its own, "µs|json": a touch that lost on time (a bare-id touch from
    -- another process landed first) still brings its profile if that is the newest, so a hide is not lost.
    if live and profile ~= '' and seen and tonumber(seen) > at then
      local stored = redis.call('HGET', s[2], key)
      if at > (stored and tonumber(string.match(stored, '^(%d+)|')) or -1) then
        redis.call('HSET', s[2], key, fmt(at) .. '|' .. profile)
        changed(s, key)
      end
    end
    if live and (not seen or tonumber(seen) <= at) then
      redis.call('ZADD', s[1], fmt(at), key)
      if profile ~= '' then redis.call('HSET', s[2], key, fmt(at) .. '|' .. profile) end
      changed(s, key)
      if n == 1 and seenInterval > 0 then
        local last = redis.call('ZSCORE', reported, key)
        if not last or at - tonumber(last) >= seenInterval then
          redis.call('ZADD', reported, fmt(at), key)
          reports[#reports + 1] = key
          reports[#reports + 1] = fmt(at)
        end
      end
    end
  end
  i = i + 4
end
while i < #ARGV do
  local n = tonumber(ARGV[i])
  local s, key, at = scopes[n], ARGV[i + 1], tonumber(ARGV[i + 2])
  if at > now then at = now end
  if at > cutoffs[n] then
    local gone = redis.call('ZSCORE', s[3], key)
    if not gone or tonumber(gone) < at then redis.call('ZADD', s[3], fmt(at), key) end
    local seen = redis.call('ZSCORE', s[1], key)
    if seen and tonumber(seen) <= at then
      redis.call('ZREM', s[1], key)
      redis.call('HDEL', s[2], key)
      -- Whoever signs in next is reported at once.
      if n == 1 then redis.call('ZREM', reported, key) end
    end
    changed(s, key)
  end
  i = i + 3
end

for n, s in ipairs(scopes) do
  -- Over the cap: the least recently seen leave Redis. Each replica caps itself the same
  -- way, so past the cap every count reads the cap (saturated), as in a memory store.
  local excess = redis.call('ZCARD', s[1]) - caps[n]
  if excess > 0 then
    local dropped = redis.call('ZRANGE', s[1], 0, math.min(excess, batch) - 1)
    redis.call('ZREM', s[1], unpack(dropped))
    redis.call('HDEL', s[2], unpack(dropped))
    redis.call('ZREM', s[4], unpack(dropped))
  end
  -- Expired: every process drops them by time on its own, so they leave the feed too.
  local old = redis.call('ZRANGEBYSCORE', s[1], '-inf', fmt(cutoffs[n]), 'LIMIT', 0, batch)
  if #old > 0 then
    redis.call('ZREM', s[1], unpack(old))
    redis.call('HDEL', s[2], unpack(old))
    redis.call('ZREM', s[4], unpack(old))
  end
  -- A logout older than the threshold can remove nothing any more.
  for _, key in ipairs(redis.call('ZRANGEBYSCORE', s[3], '-inf', fmt(cutoffs[n]), 'LIMIT', 0, batch)) do
    redis.call('ZREM', s[3], key)
    if not redis.call('ZSCORE', s[1], key) then redis.call('ZREM', s[4], key) end
  end
end
-- A report older than a threshold and an interval can hold back no touch that is still accepted.
redis.call('ZREMRANGEBYSCORE', reported, '-inf', fmt(cutoff - seenInterval))
redis.call('HSET', meta, 'version', fmt(version))

-- The record: users + guests online now against the most ever (bots never count).
local online = redis.call('ZCOUNT', scopes[1][1], '(' .. fmt(cutoff), '+inf') + redis.call('ZCOUNT', scopes[2][1], '(' .. fmt(cutoff), '+inf')
-- Each reset starts a generation. A caller's record (its floor) counts when it is of the latest
-- generation the caller or Redis knows: so processes write back a record Redis lost, without
-- raising it anew, but cannot undo a reset.
local record = tonumber(redis.call('HGET', meta, 'record') or '-1')
local recordAt = tonumber(redis.call('HGET', meta, 'recordAt') or '0')
local generation = tonumber(redis.call('HGET', meta, 'recordGen') or '-1')
local floor, floorAt, floorGen = tonumber(ARGV[12]), tonumber(ARGV[13]), tonumber(ARGV[16])
local raised = 0
if ARGV[14] == '1' then
  record, recordAt, generation = online, now, math.max(generation, floorGen) + 1
elseif floorGen >= generation then
  local lost = record < 0
  generation = floorGen
  if floor > record then record, recordAt = floor, floorAt end
  -- A record Redis had lost is set, not raised: nobody's onRecord hears of a count it may have had.
  if lost and online > record then record, recordAt = online, now end
end
if online > record then
  record, recordAt, raised = online, now, 1
end
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
      local profile = ((n == 1 or n == 4) and redis.call('HGET', s[2], key)) or ''
      rows[#rows + 1] = string.sub(profile, (string.find(profile, '|', 1, true) or 0) + 1)
    end
  end
  out[#out + 1] = rows
end

local other = redis.call('HGET', meta, 'threshold')
redis.call('HSET', meta, 'threshold', ARGV[1])
if other == ARGV[1] then other = '' end
out[#out + 1] = other or ''
out[#out + 1] = evicted
out[#out + 1] = reports
out[#out + 1] = fmt(record)
out[#out + 1] = fmt(recordAt)
out[#out + 1] = raised
out[#out + 1] = fmt(generation)

local present = 0
for j = 2, #KEYS do
  if redis.call('EXISTS', KEYS[j]) == 1 then present = present + 2 ^ (j - 2) end
  redis.call('PEXPIRE', KEYS[j], ttl)
end
redis.call('HSET', meta, 'present', fmt(present), 'at', fmt(now))
return out
`;

export const SYNC_SCRIPT = SCRIPT;
export const SYNC_SHA = createHash('sha1').update(SCRIPT).digest('hex');

/** Scopes by their slot number in the protocol. */
export const SCOPE_SLOTS = ['users', 'guests', 'bots', 'rooms'] as const;
/** Users, guests, bots, and rooms' tabs (see ../../rooms.ts). */
export type ScopeSlot = 0 | 1 | 2 | 3;

/** The keys of one prefix, in KEYS order. */
export function syncKeys(prefix: string): string[] {
  const tag = `{${prefix}}`;
  const scopeKeys = (scope: string): string[] => ['seen', 'profiles', 'gone', 'changes'].map((k) => `${tag}:${scope}:${k}`);
  // Rooms came last, after `reported`: the other keys keep their places.
  return [`${tag}:meta`, ...scopeKeys('users'), ...scopeKeys('guests'), ...scopeKeys('bots'), `${tag}:users:reported`, ...scopeKeys('rooms')];
}

export interface TouchWrite {
  readonly scope: ScopeSlot;
  readonly key: string;
  /** Redis time of the request, µs. */
  readonly atUs: number;
  /** Profile as stored, '' to keep the one in Redis (guests). */
  readonly profile: string;
}

export interface ForgetWrite {
  readonly scope: ScopeSlot;
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
  readonly touches: readonly TouchWrite[];
  readonly forgets: readonly ForgetWrite[];
}

/** The EVALSHA/EVAL arguments after the script or its SHA. */
export function syncArgs(call: SyncCall): string[] {
  const args = [
    String(call.keys.length),
    ...call.keys,
    /* ARGV[1] */ String(call.thresholdUs),
    /* ARGV[2] */ String(call.cursor),
    /* ARGV[3] */ String(call.readLimit),
    /* ARGV[4] */ call.candidateEpoch,
    /* ARGV[5] */ String(Math.ceil(call.keyTtlMs)),
    /* ARGV[6] */ String(call.maxTracked),
    /* ARGV[7] */ String(call.cleanupLimit),
    /* ARGV[8] */ String(call.touches.length),
    /* ARGV[9] */ call.knownEpoch ?? '',
    /* ARGV[10] */ String(call.knownAtUs),
    /* ARGV[11] */ String(call.seenIntervalUs),
    /* ARGV[12] */ String(call.recordFloor),
    /* ARGV[13] */ String(Math.round(call.recordFloorAtUs)),
    /* ARGV[14] */ call.resetRecord ? '1' : '0',
    /* ARGV[15] */ String(call.maxBots),
    /* ARGV[16] */ String(call.recordGeneration),
    /* ARGV[17] */ String(call.roomThresholdUs),
    /* ARGV[18] */ String(call.maxRoomTabs),
    // then ARGV[19…]: each touch as scope (1 users, 2 guests, 3 bots, 4 rooms), key, µs, profile; then each forget as scope, key, µs
  ];
  for (const w of call.touches) args.push(String(w.scope + 1), w.key, String(w.atUs), w.profile);
  for (const w of call.forgets) args.push(String(w.scope + 1), w.key, String(w.atUs));
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
  /** Users whose touch in this call is due an `onSeen`, with the touch's time (µs). */
  readonly reports: readonly { readonly key: string; readonly atUs: number }[];
  readonly recordCount: number;
  readonly recordAtUs: number;
  /** This call raised the record. */
  readonly recordRaised: boolean;
  readonly recordGeneration: number;
}

const optionalNumber = (value: unknown): number | null => (value === '' || value === null || value === undefined ? null : Number(value));

function decodeRows(raw: unknown): ChangeRow[] {
  const flat = Array.isArray(raw) ? (raw as unknown[]) : [];
  const rows: ChangeRow[] = [];
  for (let j = 0; j + 3 < flat.length; j += 4) {
    rows.push({
      key: String(flat[j]),
      seenUs: optionalNumber(flat[j + 1]),
      goneUs: optionalNumber(flat[j + 2]),
      profile: flat[j + 3] === '' ? null : String(flat[j + 3]),
    });
  }
  return rows;
}

/** Decodes the script's reply; throws on a reply of another shape (an older script under the same SHA cannot be). */
export function decodeSyncReply(raw: unknown): SyncReply {
  if (!Array.isArray(raw) || raw.length !== 15) throw new Error('unexpected reply from the sync script');
  const [epoch, cursor, nowUs, more, users, guests, bots, rooms, other, evicted, reported, recordCount, recordAtUs, raised, generation] = raw as unknown[];
  const flat = Array.isArray(reported) ? (reported as unknown[]) : [];
  const reports: { key: string; atUs: number }[] = [];
  for (let j = 0; j + 1 < flat.length; j += 2) reports.push({ key: String(flat[j]), atUs: Number(flat[j + 1]) });
  return {
    epoch: String(epoch),
    cursor: Number(cursor),
    nowUs: Number(nowUs),
    more: Number(more) === 1,
    changes: [decodeRows(users), decodeRows(guests), decodeRows(bots), decodeRows(rooms)],
    otherThresholdUs: optionalNumber(other),
    evicted: Number(evicted) === 1,
    reports,
    recordCount: Number(recordCount),
    recordAtUs: Number(recordAtUs),
    recordRaised: Number(raised) === 1,
    recordGeneration: Number(generation),
  };
}

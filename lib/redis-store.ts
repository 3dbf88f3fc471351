/**
 * RedisStore: one presence shared by every process that uses the same Redis.
 *
 * Requests never wait on Redis. Each process keeps a local read model (the
 * same PresenceIndex the memory store uses) that pages are rendered from, and
 * a queue of writes. Every `syncInterval` one Lua script, atomic in Redis,
 * applies the queued writes and returns only what changed since this
 * process's last sync. A process writes a given user at most once per
 * `touchInterval`, so at steady state a page costs no Redis command at all.
 *
 * Data, all under one hash tag so the script also runs on Redis Cluster:
 *   {prefix}:users:seen      sorted set  key → version (Redis time, µs, unique and increasing)
 *   {prefix}:users:profiles  hash        key → profile JSON, after a "#" when the id is a number
 *   {prefix}:users:gone      sorted set  key → version of its logout, kept one threshold long
 *   {prefix}:guests:…        the same for guests (no profiles)
 *   {prefix}:version, {prefix}:epoch   the version counter, and an id that changes when Redis loses its data
 *   {prefix}:threshold       the last writer's threshold: trackers that disagree on it are told so
 * Expired users are removed by the script in bounded batches, so Redis memory
 * follows the number of users online, capped at `maxTracked` users (and as
 * many guests), and every key expires once nobody syncs.
 */
import { createHash, randomBytes } from 'node:crypto';
import { boundedProfile, keyOf, sameProfile } from './identity';
import { DEFAULT_MAX_TRACKED } from './memory-store';
import { PresenceIndex, type Presence } from './presence-index';
import { withTimeout } from './timeout';
import { adaptClient, type RawRedis, type RedisClientLike } from './redis-client';
import type { Profile, Scope, ScopeView, Store, StoreConfig, StoreReporter, UserId } from './types';
import {
  OnlineNowConfigError,
  checkOptionsObject,
  integerAtLeast,
  positiveNumber,
  rejectUnknownKeys,
} from './validations';

export interface RedisStoreOptions {
  /** A connected node-redis (v4/v5) or ioredis client: the app's own, never closed by the store. */
  client: RedisClientLike;
  /** Namespace of the keys; trackers that should share presence use the same prefix. Default "online-now". */
  prefix?: string;
  /**
   * Milliseconds between syncs with Redis (default 1000): how soon other
   * processes' activity and logouts show in this process's pages, and how
   * often each process sends its one command.
   */
  syncInterval?: number;
  /**
   * Milliseconds during which a process does not write the same user again
   * (default: a tenth of the threshold, at most 60,000). Shorter means fresher
   * `lastSeen` and list order across processes; longer means fewer writes. A
   * user seen only by other processes can drop offline up to this much before
   * `threshold` after their last request.
   */
  touchInterval?: number;
  /**
   * Most users (and, apart, guests) kept in Redis and in each process's read
   * model (default 100,000: some 25 MB of Redis and 20 MB per process at the
   * most). Past it the least recently seen are dropped first and counts read
   * this number (saturated); raise it for sites with more users online at once.
   */
  maxTracked?: number;
}

const SCOPES = ['users', 'guests'] as const satisfies readonly Scope[];
type ScopeIndex = 0 | 1;
/** Most changes one script call returns, and most writes it takes; a larger backlog goes in several calls. */
const READ_LIMIT = 2000;
const WRITE_LIMIT = 2000;
/** A sync that takes longer is counted as failed (and the next waits for it to settle). */
const SYNC_TIMEOUT_MS = 1000;
/** How long the first pages of a new process wait for the first sync before rendering from what they have. */
const COLD_START_WAIT_MS = 80;
/** How long `forget()` waits for Redis before resolving (the logout is retried until it lands). */
const FORGET_WAIT_MS = 100;
const REPORT_KIND = 'redis';

const SYNC_SCRIPT = `
local function fmt(x) return string.format('%.0f', x) end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local cursor = tonumber(ARGV[2])
local limit = tonumber(ARGV[3])
local epoch = redis.call('GET', KEYS[2])
if not epoch then
  epoch = ARGV[4]
  redis.call('SET', KEYS[2], epoch)
end
local version = tonumber(redis.call('GET', KEYS[1]) or '0')
local function stamp()
  if now > version then version = now else version = version + 1 end
  return fmt(version)
end
local scopes = { { KEYS[3], KEYS[4], KEYS[5] }, { KEYS[6], KEYS[7], KEYS[8] } }
local i = 8
for _ = 1, tonumber(ARGV[7]) do
  local s = scopes[tonumber(ARGV[i])]
  redis.call('ZADD', s[1], stamp(), ARGV[i + 1])
  if ARGV[i + 2] ~= '' then redis.call('HSET', s[2], ARGV[i + 1], ARGV[i + 2]) end
  redis.call('ZREM', s[3], ARGV[i + 1])
  i = i + 3
end
while i < #ARGV do
  local s = scopes[tonumber(ARGV[i])]
  if redis.call('ZREM', s[1], ARGV[i + 1]) == 1 then
    redis.call('HDEL', s[2], ARGV[i + 1])
    redis.call('ZADD', s[3], stamp(), ARGV[i + 1])
  end
  i = i + 2
end
redis.call('SET', KEYS[1], fmt(version))
local other = redis.call('GET', KEYS[9])
redis.call('SET', KEYS[9], ARGV[1])
if other == ARGV[1] then other = false end
local cap = tonumber(ARGV[6])
for _, s in ipairs(scopes) do
  local excess = redis.call('ZCARD', s[1]) - cap
  if excess > 0 then
    local dropped = redis.call('ZRANGE', s[1], 0, math.min(excess, 5000) - 1)
    redis.call('ZREM', s[1], unpack(dropped))
    redis.call('HDEL', s[2], unpack(dropped))
  end
end
local cutoff = now - tonumber(ARGV[1])
for _, s in ipairs(scopes) do
  local old = redis.call('ZRANGEBYSCORE', s[1], '-inf', fmt(cutoff), 'LIMIT', 0, 5000)
  if #old > 0 then
    redis.call('ZREM', s[1], unpack(old))
    redis.call('HDEL', s[2], unpack(old))
  end
  redis.call('ZREMRANGEBYSCORE', s[3], '-inf', fmt(cutoff))
end
local from = cursor
if cutoff > from then from = cutoff end
local upto = version
local more = 0
local ranges = {}
for n, s in ipairs(scopes) do
  ranges[n] = redis.call('ZRANGEBYSCORE', s[1], '(' .. fmt(from), '+inf', 'WITHSCORES', 'LIMIT', 0, limit)
  if #ranges[n] == 2 * limit then
    more = 1
    local last = tonumber(ranges[n][#ranges[n]])
    if last < upto then upto = last end
  end
end
local out = { epoch, upto, now, more }
for n, s in ipairs(scopes) do
  local keys, scores, profiles = {}, {}, {}
  for j = 1, #ranges[n], 2 do
    local score = tonumber(ranges[n][j + 1])
    if score <= upto then
      keys[#keys + 1] = ranges[n][j]
      scores[#scores + 1] = score
    end
  end
  if n == 1 and #keys > 0 then profiles = redis.call('HMGET', s[2], unpack(keys)) end
  out[#out + 1] = { keys, scores, profiles, redis.call('ZRANGEBYSCORE', s[3], '(' .. fmt(cursor), fmt(upto)) }
end
out[#out + 1] = other
for _, k in ipairs(KEYS) do redis.call('PEXPIRE', k, ARGV[5]) end
return out
`;
const SYNC_SHA = createHash('sha1').update(SYNC_SCRIPT).digest('hex');

type ScopeReply = [keys: string[], scores: number[], profiles: (string | null)[], gone: string[]];
type SyncReply = [
  epoch: string,
  upto: number,
  nowMicros: number,
  more: number,
  users: ScopeReply,
  guests: ScopeReply,
  /** Another tracker's threshold (µs) seen on this prefix since our last sync, or null. */
  otherThreshold: string | null,
];

interface Write {
  readonly forget: boolean;
  readonly scope: ScopeIndex;
  readonly key: string;
  /** Profile JSON, with the id in its tracked type; '' for guests and forgets. */
  readonly profile: string;
}

/** What this process last wrote of a key, and when: it is not written again within touchInterval. */
interface Written {
  readonly at: number;
  readonly id: UserId;
  readonly profile: Profile;
}

/**
 * The profile as stored: its JSON, after a "#" when the id is a number (the key
 * holds its digits). Keeping the id out of the JSON saves Redis some bytes a user.
 */
function profileJson(presence: Presence): string {
  const json = JSON.stringify(presence.profile);
  return typeof presence.id === 'number' ? `#${json}` : json;
}

/** A profile read back from Redis is bounded again: whoever wrote it, it reaches our pages. */
function parseProfile(key: string, stored: string | null): { id: UserId; profile: Profile } {
  const numeric = stored?.startsWith('#') === true;
  let parsed: unknown;
  try {
    parsed = stored === null ? undefined : JSON.parse(numeric ? stored.slice(1) : stored);
  } catch {
    parsed = undefined;
  }
  const asNumber = Number(key);
  return { id: numeric && keyOf(asNumber) === key ? asNumber : key, profile: boundedProfile(parsed) };
}

export class RedisStore implements Store {
  readonly prefix: string;
  readonly syncInterval: number;
  readonly maxTracked: number;
  /** Resolved at init from the option or the threshold. */
  touchInterval = 0;
  private readonly redis: RawRedis;
  private readonly requestedTouchInterval: number | undefined;
  private readonly keys: string[];
  private thresholdMs = 0;
  private reporter: StoreReporter | undefined;
  private indexes: [PresenceIndex, PresenceIndex] | undefined;
  private readonly written: [Map<string, Written>, Map<string, Written>] = [new Map<string, Written>(), new Map<string, Written>()];
  /** Writes not yet in Redis, by scope and key; a newer write of a key replaces the older. */
  private readonly pending = new Map<string, Write>();
  private cursor = 0;
  private epoch: string | undefined;
  /** Redis time minus local time, ms: pages judge expiry by Redis's clock, as every process does. */
  private offsetMs = 0;
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  /** A command Redis has not answered yet: while it is out, nothing more is sent (no pile-up on a hung server). */
  private outstanding = false;
  private warm = false;
  private warmed: Promise<void> | undefined;

  constructor(options: RedisStoreOptions) {
    checkOptionsObject('new RedisStore()', options);
    if (options === undefined) {
      throw new OnlineNowConfigError('ERR_ONLINE_NOW_REDIS_CLIENT', 'new RedisStore({ client }) needs a connected Redis client.');
    }
    rejectUnknownKeys('new RedisStore()', options, ['client', 'prefix', 'syncInterval', 'touchInterval', 'maxTracked']);
    this.redis = adaptClient(options.client);
    const prefix = options.prefix ?? 'online-now';
    if (typeof prefix !== 'string' || prefix === '' || /[{}]/.test(prefix)) {
      throw new OnlineNowConfigError(
        'ERR_ONLINE_NOW_PREFIX',
        `option "prefix" must be a non-empty string without braces (the store adds its own hash tag), got ${JSON.stringify(prefix)}.`,
      );
    }
    this.prefix = prefix;
    this.syncInterval = positiveNumber('syncInterval', options.syncInterval ?? 1000, '1000 (ms)');
    if (options.touchInterval !== undefined) positiveNumber('touchInterval', options.touchInterval, '60000 (ms)');
    this.requestedTouchInterval = options.touchInterval;
    this.maxTracked = integerAtLeast('maxTracked', options.maxTracked ?? DEFAULT_MAX_TRACKED, 1, '100000');
    const tag = `{${prefix}}`;
    this.keys = [
      `${tag}:version`,
      `${tag}:epoch`,
      ...SCOPES.flatMap((scope) => [`${tag}:${scope}:seen`, `${tag}:${scope}:profiles`, `${tag}:${scope}:gone`]),
      `${tag}:threshold`,
    ];
  }

  init(config: StoreConfig): void {
    if (this.indexes !== undefined) {
      if (config.thresholdMs !== this.thresholdMs) {
        throw new OnlineNowConfigError(
          'ERR_ONLINE_NOW_STORE_SHARED',
          `one RedisStore is shared by trackers with different thresholds (${this.thresholdMs / 1000}s and ${config.thresholdMs / 1000}s). Give each its own store and prefix, or the same threshold.`,
        );
      }
      return;
    }
    const touchInterval = this.requestedTouchInterval ?? Math.min(60_000, config.thresholdMs / 10);
    if (touchInterval >= config.thresholdMs) {
      throw new OnlineNowConfigError(
        'ERR_ONLINE_NOW_TOUCH_INTERVAL',
        `option "touchInterval" (${touchInterval} ms) must be shorter than the tracker's threshold (${config.thresholdMs} ms), or users would drop offline while active. Leave it out for a tenth of the threshold.`,
      );
    }
    this.touchInterval = touchInterval;
    this.thresholdMs = config.thresholdMs;
    this.reporter = config.reporter;
    this.indexes = [new PresenceIndex(this.thresholdMs, this.maxTracked), new PresenceIndex(this.thresholdMs, this.maxTracked)];
    this.warmed = new Promise<void>((resolve) => {
      const cold = setTimeout(resolve, COLD_START_WAIT_MS);
      cold.unref();
      void this.sync().then(() => {
        clearTimeout(cold);
        resolve();
      });
    }).then(() => {
      this.warm = true;
    });
    this.timer = setInterval(() => void this.sync(), this.syncInterval);
    this.timer.unref();
  }

  touch(scope: Scope, key: string, id: UserId, profile: Profile | undefined): void {
    const s: ScopeIndex = scope === 'users' ? 0 : 1;
    const now = this.now();
    const presence = this.index(s).touch(key, id, profile, now);
    const last = this.written[s].get(key);
    if (last !== undefined && now - last.at < this.touchInterval && last.id === presence.id && sameProfile(last.profile, presence.profile)) {
      return;
    }
    this.written[s].set(key, { at: now, id: presence.id, profile: presence.profile });
    if (this.written[s].size > this.maxTracked) this.written[s].delete(this.written[s].keys().next().value as string);
    this.queue({ forget: false, scope: s, key, profile: s === 0 ? profileJson(presence) : '' });
  }

  async forget(scope: Scope, key: string): Promise<void> {
    const s: ScopeIndex = scope === 'users' ? 0 : 1;
    this.index(s).forget(key);
    this.written[s].delete(key);
    this.queue({ forget: true, scope: s, key, profile: '' });
    // Logouts go out at once rather than at the next tick, so other processes see them within one syncInterval.
    await withTimeout(this.syncSoon(), FORGET_WAIT_MS, 'Redis did not answer').catch(() => undefined);
  }

  view(scope: Scope, limit: number): ScopeView | Promise<ScopeView> {
    const s: ScopeIndex = scope === 'users' ? 0 : 1;
    if (this.warm || this.warmed === undefined) return this.index(s).view(limit, this.now());
    return this.warmed.then(() => this.index(s).view(limit, this.now()));
  }

  /** Stops the sync timer after a last flush of queued writes (bounded); the client stays open. */
  async close(): Promise<void> {
    if (this.timer === undefined) return;
    clearInterval(this.timer);
    this.timer = undefined;
    if (this.pending.size > 0) await withTimeout(this.syncSoon(), SYNC_TIMEOUT_MS, 'Redis did not answer').catch(() => undefined);
  }

  private now(): number {
    return Date.now() + this.offsetMs;
  }

  private index(s: ScopeIndex): PresenceIndex {
    return this.currentIndexes()[s];
  }

  private currentIndexes(): [PresenceIndex, PresenceIndex] {
    if (this.indexes === undefined) {
      throw new OnlineNowConfigError(
        'ERR_ONLINE_NOW_STORE_UNUSED',
        'this RedisStore is not attached to a tracker: pass it as createOnlineTracker({ store }).',
      );
    }
    return this.indexes;
  }

  private queue(write: Write): void {
    const slot = `${write.scope}:${write.key}`;
    this.pending.delete(slot); // re-inserted last: the Map stays in the order writes happened
    this.pending.set(slot, write);
    // While Redis is unreachable the queue keeps only the most recent writes, one per user.
    if (this.pending.size > this.maxTracked * 2) this.pending.delete(this.pending.keys().next().value as string);
  }

  /** A sync that starts after this call: the one running may have left before our write was queued. */
  private syncSoon(): Promise<void> {
    return (this.running ?? Promise.resolve()).then(() => this.sync());
  }

  private sync(): Promise<void> {
    this.running ??= this.runSync().finally(() => {
      this.running = undefined;
    });
    return this.running;
  }

  private async runSync(): Promise<void> {
    if (this.outstanding) return this.fail(new Error('Redis has not answered the previous sync yet'));
    const writes = [...this.pending.values()];
    this.pending.clear();
    // A full read (first sync, or Redis started over) empties the read model before applying:
    // Redis's times arrive oldest first, which keeps recency order = time order.
    let full = this.cursor === 0;
    let emptied = false;
    try {
      let sent = 0;
      let more = true;
      for (let rounds = 0; (more || sent < writes.length) && rounds < 1000; rounds++) {
        // A backlog (a burst, or an outage's queue) goes in bounded slices: each call stays short in Redis.
        const batch = writes.slice(sent, sent + WRITE_LIMIT);
        sent += batch.length;
        const started = Date.now();
        const reply = await withTimeout(
          this.send(this.scriptArgs(batch)),
          SYNC_TIMEOUT_MS,
          `Redis did not answer within ${SYNC_TIMEOUT_MS} ms`,
        );
        this.offsetMs = Number(reply[2]) / 1000 - (started + Date.now()) / 2;
        if (this.epoch !== undefined && reply[0] !== this.epoch) {
          // Redis lost its data (restart without persistence, FLUSHALL): read it all again,
          // and let every active user be written again at their next request.
          this.epoch = reply[0];
          this.cursor = 0;
          full = true;
          emptied = false;
          this.written[0].clear();
          this.written[1].clear();
          continue;
        }
        this.epoch = reply[0];
        if (full && !emptied) {
          for (const index of this.currentIndexes()) index.clear();
          emptied = true;
        }
        more = this.apply(reply);
      }
      if (full) this.replayPending();
      this.reporter?.recovered(REPORT_KIND);
    } catch (error) {
      if (full) this.cursor = 0;
      // Put back what did not land, unless a newer write of the same key is queued since.
      for (const write of writes) {
        const slot = `${write.scope}:${write.key}`;
        if (!this.pending.has(slot)) this.pending.set(slot, write);
      }
      this.fail(error);
    }
  }

  /** After a full read: what this process did while it was read is not in it yet. */
  private replayPending(): void {
    const indexes = this.currentIndexes();
    for (const write of this.pending.values()) {
      const written = this.written[write.scope].get(write.key);
      if (write.forget) indexes[write.scope].forget(write.key);
      else if (written !== undefined) {
        indexes[write.scope].touch(write.key, written.id, written.profile, written.at);
      }
    }
  }

  private fail(error: unknown): void {
    const message = error instanceof Error ? error.message : String(error);
    this.reporter?.report(
      REPORT_KIND,
      new Error(`RedisStore (prefix "${this.prefix}"): ${message}; pages show the last known presence until Redis answers again`),
    );
  }

  private scriptArgs(writes: readonly Write[]): string[] {
    const touches = writes.filter((w) => !w.forget);
    const forgets = writes.filter((w) => w.forget);
    const args = [
      String(this.keys.length),
      ...this.keys,
      String(this.thresholdMs * 1000),
      String(this.cursor),
      String(READ_LIMIT),
      // Used only when Redis has no epoch yet: a fresh one tells every process that Redis started over.
      randomBytes(8).toString('hex'),
      String(Math.ceil(this.thresholdMs * 2)),
      String(this.maxTracked),
      String(touches.length),
    ];
    for (const w of touches) args.push(String(w.scope + 1), w.key, w.profile);
    for (const w of forgets) args.push(String(w.scope + 1), w.key);
    return args;
  }

  /** EVALSHA, falling back to EVAL when Redis does not have the script (first use, or after a restart). */
  private async send(args: string[]): Promise<SyncReply> {
    this.outstanding = true;
    try {
      return (await this.redis.send(['EVALSHA', SYNC_SHA, ...args])) as SyncReply;
    } catch (error) {
      if (!String((error as Error)?.message).startsWith('NOSCRIPT')) throw error;
      return (await this.redis.send(['EVAL', SYNC_SCRIPT, ...args])) as SyncReply;
    } finally {
      this.outstanding = false;
    }
  }

  /** Trackers sharing a prefix must agree on the threshold, or each expires the others' users at its own time. */
  private checkThreshold(other: string | null): void {
    if (other === null || other === undefined) return;
    // Reported once for the life of the store: a mismatch flaps as the two trackers take turns.
    this.reporter?.report(
      'redis-threshold',
      new OnlineNowConfigError(
        'ERR_ONLINE_NOW_PREFIX_SHARED',
        `another tracker uses the Redis prefix "${this.prefix}" with a threshold of ${Number(other) / 1e6}s, this one ${this.thresholdMs / 1000}s: give them the same threshold, or different prefixes.`,
      ),
    );
  }

  /** Applies one reply's changes to the read model; true when Redis has more to read. */
  private apply(reply: SyncReply): boolean {
    const [, upto, , more, users, guests, otherThreshold] = reply;
    this.checkThreshold(otherThreshold);
    const indexes = this.currentIndexes();
    [users, guests].forEach(([keys, scores, profiles, gone], s) => {
      const index = indexes[s];
      keys.forEach((key, j) => {
        const { id, profile } = s === 0 ? parseProfile(key, profiles[j] ?? null) : { id: key, profile: undefined };
        index.touch(key, id, profile, Number(scores[j]) / 1000);
      });
      for (const key of gone) {
        index.forget(key);
        this.written[s].delete(key);
      }
    });
    this.cursor = Number(upto);
    return Number(more) === 1;
  }
}

/**
 * RedisStore: one presence shared by every process that uses the same Redis.
 *
 * Requests never wait on Redis. Each process keeps a local read model (the
 * same PresenceIndex the memory store uses) that pages are rendered from, and
 * a queue of writes. Every `syncInterval` one Lua script (./sync-script.ts)
 * applies the queued writes and returns what changed since this process's last
 * sync, so at steady state a page costs no Redis command at all.
 *
 * Every write carries the time of its request on one time base that all
 * processes share: Redis's clock, estimated here as this process's monotonic
 * clock plus an offset measured at each sync. Redis and every read model keep,
 * per user, the latest event: so writes delayed by an outage cannot revive
 * anyone, a logout cannot be undone by a page served just before it, and a
 * sign-in just after a logout is not lost. Each read model is a full replica:
 * when Redis loses its data, every process writes its replica back.
 */
import { randomBytes } from 'node:crypto';
import { monotonicNow, type Clock } from '../../core/clock';
import { OnlineNowConfigError } from '../../core/errors';
import { PLAIN_CLOCK, PresenceIndex, type IndexClock, type TimedTouch } from '../../core/presence-index';
import { RoomIndex, tabKey } from '../../core/room-index';
import { withTimeout } from '../../core/timeout';
import type { Profile, RoomLockState, RoomTouch, RoomView, Scope, ScopeView, StoreConfig, UserId, Viewer } from '../../core/types';
import { checkOptions, optionNames, positiveNumber, storeBasics } from '../../core/validations';
import { DEFAULT_MAX_TRACKED, MARK_TTL_MS, MAX_BOTS, BaseStore } from '../base-store';
import { adaptClient, type RawRedis, type RedisClientLike } from './client';
import { decodeProfile, encodeProfile, idOf, plainProfile, profileOf, storedProfile } from './profile-codec';
import {
  KEY,
  SYNC_SCRIPT,
  SYNC_SHA,
  assignedKey,
  decodeSyncReply,
  syncArgs,
  syncKeys,
  type ForgetWrite,
  type KeyTime,
  type ScopeSlot,
  type SyncReply,
  type TouchWrite,
} from './sync-script';

export interface RedisStoreOptions {
  /** A connected node-redis (v4–v6) or ioredis client or cluster: the app's own, never closed by the store. */
  client: RedisClientLike;
  /** Namespace of the keys; trackers that should share presence use the same prefix. Default "online-now". */
  prefix?: string;
  /**
   * Milliseconds between syncs with Redis (default 1000): how soon other
   * processes' activity and logouts show in this process's pages, and how
   * often each process sends its one command. At most a quarter of the threshold.
   */
  syncInterval?: number;
  /**
   * Most users (and, apart, guests) kept in Redis and in each process's read
   * model (default 100,000). Past it the least recently seen are dropped first
   * and counts read this number (saturated); raise it for sites with more users online at once.
   */
  maxTracked?: number;
  /** Milliseconds on a clock that never steps back (default `performance.timeOrigin + performance.now()`); for tests. */
  now?: () => number;
}

const redisStoreOptions = optionNames<RedisStoreOptions>({ client: true, prefix: true, syncInterval: true, maxTracked: true, now: true });

/** Most changes one script call returns per scope, most writes it takes, most expired keys it removes. */
const READ_LIMIT = 2000;
/** Users one read of a new replica's first load takes (a ZRANGEBYSCORE and an HMGET, a few ms of Redis each). */
const SNAPSHOT_CHUNK = 20_000;
/** Keys of a chunk applied between two looks at the network (about 1 ms). */
const APPLY_SLICE = 1000;
/** Profiles parsed per tick after the first read (about 1 ms). */
const DECODE_SLICE = 2000;
const WRITE_LIMIT = 2000;
const CLEANUP_LIMIT = 5000;
/** A sync that takes longer is counted as failed (and the next waits for it to settle). */
const SYNC_TIMEOUT_MS = 1000;
/**
 * A command still unanswered after this long never will be (a cluster client that lost a master
 * may keep it for ever): it is given up, reported, and syncs start again.
 */
const ABANDON_MS = 10_000;
/** Without a sync for this many intervals, a process withholds the users it knows only from others (privacy fails closed). */
const STALE_SYNCS = 3;
/** And never sooner than this (a GC pause or one slow reply is not a partition). */
const STALE_MIN_MS = 3000;

/** How long the first pages of a new process wait for the first sync before rendering from what they have. */
const COLD_START_WAIT_MS = 80;
/** How long `forget()` waits for Redis before resolving (the logout is retried until it lands). */
const FORGET_WAIT_MS = 100;
/** The threshold must span this many syncs, or other processes' users would flicker offline while active. */
const SYNCS_PER_THRESHOLD = 4;
const REPORT_KIND = 'redis';
/** After Redis starts over under processes that knew it, no record is raised and reports wait this many intervals (write-backs land meanwhile)… */
const RECOVERY_SYNCS = 3;
/** …and at least this long. */
const RECOVERY_MIN_MS = 2000;
/** A process silent for this many intervals (and at least LEASE_MIN_MS, and a seenInterval) is gone: its undelivered hooks pass to another. */
const LEASE_SYNCS = 10;
const LEASE_MIN_MS = 5000;

const SLOTS: Record<Scope, ScopeSlot> = { users: 0, guests: 1, bots: 2 };
/** Rooms' tabs travel as a fourth scope. */
const ROOMS: ScopeSlot = 3;
const SCOPES = [0, 1, 2, 3] as const;
type PerScope<T> = [T, T, T, T];
const perScope = <T>(make: () => T): PerScope<T> => [make(), make(), make(), make()];
/**
 * A key to send, whether its profile goes too (it does unless every touch since the last sync was a bare id),
 * and whether it is a write-back (which carries the time this process last reported the user).
 */
type PendingTouch = [ScopeSlot, string, boolean, boolean?];

/** Part of a new replica's first read (see `loadSnapshot`). */
interface SnapshotChunk {
  readonly keys: readonly string[];
  /** Scores as Redis sends them: µs, as text. */
  readonly scores: readonly string[];
  /** Users' stored profiles ("µs|json"), by position; none for guests and bots. */
  readonly profiles: readonly (string | null)[];
  /** Where the next chunk starts (score, keys already read at it, every key at that score at once), when there is one. */
  readonly next: [string, Set<string>, boolean] | undefined;
}

/** A WITHSCORES reply as [member, score, member, score, …]: RESP2 sends it flat, RESP3 as pairs. */
function flatPairs(reply: unknown): string[] {
  const rows = reply as (string | [string, string | number])[];
  if (rows.length === 0 || !Array.isArray(rows[0])) return rows as string[];
  const flat: string[] = [];
  for (const [member, score] of rows as [string, string | number][]) flat.push(member, String(score));
  return flat;
}

/** Adds to a Map kept in insertion order, dropping the oldest past `max`. */
function boundedSet<K, V>(map: Map<K, V>, key: K, value: V, max: number): void {
  map.delete(key);
  map.set(key, value);
  if (map.size > max) map.delete(map.keys().next().value as K);
}

export class RedisStore extends BaseStore {
  readonly sharedAcrossProcesses = true;
  readonly prefix: string;
  readonly syncInterval: number;
  readonly maxTracked: number;
  private readonly redis: RawRedis;
  /** This attachment's name in the protocol (reports and record raises are assigned to it), and its keys. */
  private token = '';
  private keys: readonly string[];
  private readonly clock: Clock;
  /** What the indexes are given: dates on Redis's clock (every process's one time base), marks kept MARK_TTL_MS. */
  private readonly indexClock: IndexClock = { ...PLAIN_CLOCK, markTtlMs: MARK_TTL_MS };
  /** Redis time minus this process's clock, ms. Until the first sync, a guess from the wall clock. */
  private offset: number;
  /** Round trip of the sync the offset was taken from: the offset is off by at most half of it. */
  private offsetRtt = Infinity;
  private measured = false;
  private indexes: PerScope<PresenceIndex> | undefined;
  private rooms: RoomIndex | undefined;
  /** Keys touched here since the last sync; their time and profile are read from the index when sent. */
  private readonly pendingTouches: PerScope<Map<string, boolean>> = perScope(() => new Map<string, boolean>());
  /** Logouts here not yet in Redis, key → time (ms, Redis time base). */
  private readonly pendingForgets: PerScope<Map<string, number>> = perScope(() => new Map<string, number>());
  /** Logouts Redis has, kept one threshold, to write back if Redis loses its data. */
  private readonly recentForgets: PerScope<Map<string, number>> = perScope(() => new Map<string, number>());
  /** `resetRecord()` asked, not yet done in Redis. */
  private resetPending = false;
  /** The reset generation of the record this process knows (-1 before its first reply). */
  private recordGeneration = -1;
  private cursor = 0;
  /** A replica that has not read Redis's whole state yet: it does so in large plain reads, not through the change feed. */
  private fresh = true;
  /** Bumped by each start(): a first read still running for the replica before it stops where it is. */
  private generation = 0;
  private epoch: string | undefined;
  /** Redis's time at this process's last reply, µs. */
  private lastReplyUs = 0;
  /** Logouts taken for the sync under way and not yet in Redis: they beat what Redis says meanwhile. */
  private readonly unsentForgets: PerScope<Map<string, number>> = perScope(() => new Map<string, number>());
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  /** A command Redis has not answered yet: while it is out, nothing more is sent (no pile-up on a hung server). */
  private outstanding = false;
  /** When (this process's clock) the command now outstanding was sent, and which it is: one given up on settles unheard. */
  private outstandingSince = 0;
  private commandSeq = 0;
  /** Reports this process delivered, to acknowledge until a reply confirms it did (and not to deliver twice). */
  private readonly acks = new Map<string, number>();
  /** The record raise this process delivered last ("count|µs"), and its acknowledgement until a reply confirms it. */
  private raiseDelivered = '';
  private recordAck = '';
  /** When (shared time base) the last sync reply arrived: long ago, and this replica withholds what others told it. */
  private syncedAt = -Infinity;
  private warm = false;
  /** Syncs failed so far: `confirm()` tells by it whether its own did. */
  private failures = 0;
  private warmed: Promise<void> | undefined;

  constructor(options: RedisStoreOptions) {
    super('RedisStore');
    if (options === undefined) {
      throw new OnlineNowConfigError('ERR_ONLINE_NOW_REDIS_CLIENT', 'new RedisStore({ client }) needs a connected Redis client.');
    }
    checkOptions('new RedisStore()', options, redisStoreOptions);
    const basics = storeBasics(options, DEFAULT_MAX_TRACKED);
    this.maxTracked = basics.maxTracked;
    this.clock = basics.now ?? monotonicNow;
    this.offset = Date.now() - this.clock();
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
    this.keys = syncKeys(prefix, this.token);
  }

  override init(config: StoreConfig): void {
    if (this.syncInterval * SYNCS_PER_THRESHOLD > config.thresholdMs) {
      throw new OnlineNowConfigError(
        'ERR_ONLINE_NOW_SYNCINTERVAL',
        `option "syncInterval" (${this.syncInterval} ms) must be at most a quarter of the tracker's threshold (${config.thresholdMs} ms), or users active on another process would flicker offline. Use { syncInterval: ${Math.floor(config.thresholdMs / SYNCS_PER_THRESHOLD)} } or less, or a longer threshold.`,
      );
    }
    super.init(config);
  }

  /**
   * Why rooms cannot work on this store, if they cannot: checked when an app
   * first uses them (here(), client()), so an app without rooms may sync slowly.
   */
  roomsProblem(): OnlineNowConfigError | undefined {
    const roomMs = this.roomLimits.activeMs;
    if (this.syncInterval * SYNCS_PER_THRESHOLD <= roomMs) return undefined;
    return new OnlineNowConfigError(
      'ERR_ONLINE_NOW_SYNCINTERVAL',
      `option "syncInterval" (${this.syncInterval} ms) must be at most a quarter of the tracker's roomThreshold (${roomMs} ms) for rooms, or viewers on another process would flicker out of them. Use { syncInterval: ${Math.floor(roomMs / SYNCS_PER_THRESHOLD)} } or less, or a longer roomThreshold.`,
    );
  }

  protected start(): void {
    // A store attached again starts with an empty replica: it reads Redis from the start, under a name of its own.
    this.token = randomBytes(8).toString('hex');
    this.keys = syncKeys(this.prefix, this.token);
    this.acks.clear();
    this.raiseDelivered = '';
    this.recordAck = '';
    this.cursor = 0;
    this.fresh = true;
    this.generation++;
    for (const m of this.pendingTouches) m.clear();
    // Arrival order is kept within one sync of time order: an expired user stays counted at most that long.
    this.rooms = new RoomIndex(this.roomLimits, this.syncInterval, (key, at) => this.queueRoomForget(key, at));
    this.indexes = [
      new PresenceIndex(this.thresholdMs, this.maxTracked, this.syncInterval, (stored) => profileOf(storedProfile(stored)), this.indexClock),
      new PresenceIndex(this.thresholdMs, this.maxTracked, this.syncInterval, undefined, this.indexClock),
      new PresenceIndex(this.thresholdMs, Math.min(this.maxTracked, MAX_BOTS), this.syncInterval, undefined, this.indexClock),
      this.rooms.tabs,
    ];
    this.warm = false;
    this.syncedAt = -Infinity;
    const generation = this.generation;
    this.warmed = new Promise<void>((resolve) => {
      const cold = setTimeout(resolve, COLD_START_WAIT_MS);
      cold.unref();
      // After any sync still running for the replica before (a store closed and attached again).
      void this.syncSoon().then(() => {
        clearTimeout(cold);
        resolve();
      });
    }).then(() => {
      if (generation === this.generation) this.warm = true;
    });
    this.timer = setInterval(() => void this.sync(), this.syncInterval);
    this.timer.unref();
  }

  /** Stops the sync timer after a last flush of queued writes (bounded); the client stays open. */
  protected async stop(): Promise<void> {
    clearInterval(this.timer);
    this.timer = undefined;
    // Acknowledgements too: reports this process delivered are not handed to another one.
    const queued = this.pendingTouches.some((m) => m.size > 0) || this.pendingForgets.some((m) => m.size > 0) || this.acks.size > 0 || this.recordAck !== '';
    const last = queued ? this.syncSoon() : this.running;
    if (last !== undefined) await withTimeout(last, SYNC_TIMEOUT_MS, 'Redis did not answer').catch(() => undefined);
  }

  touch(scope: Scope, key: string, id: UserId, profile: Profile | undefined): void {
    const s = SLOTS[scope];
    if (this.index(s).touch(key, id, profile, this.eventTime()) === -1) return;
    // A touch without a profile (a bare id) must not send the profile this replica holds: it may be
    // older than one another process has written (the user hid there a moment ago). One that brings
    // back a user this replica remembers as hidden shows them hidden here until Redis, which
    // remembers too, says otherwise (a request elsewhere may have unhidden them meanwhile).
    const pending = this.pendingTouches[s];
    const queued = pending.get(key);
    const withProfile = profile !== undefined || queued === true;
    // Already queued as it is: the common case of a busy user, left without touching the Map.
    if (queued === withProfile) return;
    boundedSet(pending, key, withProfile, this.maxTracked);
  }

  async forget(scope: Scope, key: string): Promise<void> {
    const s = SLOTS[scope];
    const at = this.eventTime();
    this.forgetIn(this.index(s), key, at, s === 0);
    this.pendingTouches[s].delete(key);
    boundedSet(this.pendingForgets[s], key, at, this.maxTracked);
    // Signed out: out of every room too, in every process.
    if (s === 0) for (const tab of this.attached(this.rooms).forgetUser(key, at)) this.queueRoomForget(tab, at);
    // Logouts go out at once rather than at the next tick, so other processes see them within one syncInterval.
    await withTimeout(this.syncSoon(), FORGET_WAIT_MS, 'Redis did not answer').catch(() => undefined);
  }

  view(scope: Scope, limit: number, viewer?: Viewer): ScopeView | Promise<ScopeView> {
    const s = SLOTS[scope];
    return this.whenWarm(() => this.index(s).view(limit, this.now(), s === 0 ? this.withholding(viewer) : viewer));
  }

  /**
   * A replica that has not heard from Redis for a while cannot know who hid on
   * another process meanwhile: users it knows only from others (last seen before
   * its last sync) are withheld from viewers who may not see hidden users.
   */
  private withholding(viewer: Viewer | undefined): Viewer | undefined {
    if (viewer?.seesHidden === true || this.syncedAt === -Infinity) return viewer;
    const silentMs = this.now() - this.syncedAt;
    const staleMs = Math.max(STALE_SYNCS * this.syncInterval, STALE_MIN_MS);
    if (silentMs <= staleMs) return viewer;
    this.reporter.report(
      'redis-stale',
      new OnlineNowConfigError(
        'ERR_ONLINE_NOW_REDIS_STALE',
        `RedisStore (prefix "${this.prefix}"): no sync with Redis for ${Math.round(silentMs)} ms; until Redis answers, pages withhold the users this process knows only from other processes (they may have hidden meanwhile), and show only users seen here since.`,
      ),
    );
    return { seesHidden: false, self: viewer?.self, withheldUpTo: this.syncedAt };
  }

  roomTouch(touch: RoomTouch, viewer: Viewer): RoomView | Promise<RoomView> {
    // The claim is settled against the room as this replica knows it: after the first sync, not before.
    if (!this.warm && this.warmed !== undefined) return this.whenWarm(() => this.roomTouch(touch, viewer));
    const rooms = this.attached(this.rooms);
    const self = rooms.touch(touch, this.eventTime());
    boundedSet(this.pendingTouches[ROOMS], tabKey(touch.room, touch.key, touch.tab), true, this.roomLimits.maxRooms * this.roomLimits.maxMembers);
    // A takeover is told to the holder's process at its next sync, not one interval later.
    if (touch.takeover) void this.syncSoon();
    return { ...rooms.view(touch.room, this.now(), viewer), self };
  }

  async roomLeave(room: string, key: string, tab: string): Promise<void> {
    const at = this.eventTime();
    this.queueRoomForget(this.attached(this.rooms).leave(room, key, tab, at), at);
    await withTimeout(this.syncSoon(), FORGET_WAIT_MS, 'Redis did not answer').catch(() => undefined);
  }

  private queueRoomForget(tabKey: string, at: number): void {
    this.pendingTouches[ROOMS].delete(tabKey);
    boundedSet(this.pendingForgets[ROOMS], tabKey, at, this.roomLimits.maxRooms * this.roomLimits.maxMembers);
  }

  roomView(room: string, viewer: Viewer): RoomView | Promise<RoomView> {
    return this.whenWarm(() => this.attached(this.rooms).view(room, this.now(), viewer));
  }

  roomLocks(viewer: Viewer, rooms?: readonly string[]): RoomLockState[] | Promise<RoomLockState[]> {
    return this.whenWarm(() => this.attached(this.rooms).locks(this.now(), viewer, rooms));
  }

  /** See Store.confirm: one sync begun after this call (callers meanwhile share it); rejects when it failed. */
  async confirm(): Promise<void> {
    await this.running;
    const failures = this.failures;
    await this.sync();
    if (this.failures !== failures) throw new Error(`RedisStore (prefix "${this.prefix}"): Redis did not answer a sync`);
  }

  /** Starts the record over, in Redis for every process, from the number online now. */
  async resetRecord(): Promise<void> {
    this.resetPending = true;
    await withTimeout(this.syncSoon(), SYNC_TIMEOUT_MS, 'Redis did not answer').catch(() => undefined);
  }

  /** `read` now, or once the first sync (bounded by COLD_START_WAIT_MS) has brought what other processes hold. */
  private whenWarm<T>(read: () => T | Promise<T>): T | Promise<T> {
    if (this.warm || this.warmed === undefined) return read();
    return this.warmed.then(read);
  }

  /**
   * Now on the shared time base: Redis's clock, as estimated here. Dates are on
   * it, and so is `timeAgo`'s now (`dateNow`): a server whose own clock is off
   * (or stepped) still says "now" for a user seen now.
   */
  private now(): number {
    return this.clock() + this.offset;
  }

  /** Now on Redis's clock, as estimated here: every date this store gives is on it. */
  dateNow(): number {
    return this.now();
  }

  /**
   * Now, in whole µs as Redis stores it: a touch read back from Redis must carry
   * exactly the time this replica gave it, or its profile would lose to the replica's own.
   */
  private eventTime(): number {
    return Math.round(this.now() * 1000) / 1000;
  }

  private index(s: ScopeSlot): PresenceIndex {
    return this.attached(this.indexes)[s];
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
    if (this.outstanding) {
      if (this.clock() - this.outstandingSince < ABANDON_MS) return this.fail(new Error('Redis has not answered the previous sync yet'));
      this.abandon();
    }
    let touches: PendingTouch[] = [];
    let forgets: ForgetWrite[] = [];
    let sentForgets = 0;
    try {
      // Nothing is stamped for Redis before this process knows Redis's clock.
      if (!this.measured) await this.round([], []);
      if (this.fresh) {
        const generation = this.generation;
        await this.loadSnapshot(generation);
        // Attached again meanwhile: the new replica reads everything at its own first sync.
        if (generation !== this.generation) return;
        this.fresh = false;
        this.decodeLoaded();
      }
      touches = this.takeTouches();
      forgets = this.takeForgets();
      const marks: KeyTime[] = [];
      let sentTouches = 0;
      let sentMarks = 0;
      let more = true;
      for (let rounds = 0; (more || sentTouches < touches.length || sentForgets < forgets.length || sentMarks < marks.length) && rounds < 1000; rounds++) {
        // A backlog (a burst, an outage's queue, a replica written back) goes in bounded slices, logouts first.
        const f = forgets.slice(sentForgets, sentForgets + WRITE_LIMIT);
        const m = marks.slice(sentMarks, sentMarks + WRITE_LIMIT - f.length);
        const t = touches.slice(sentTouches, sentTouches + WRITE_LIMIT - f.length - m.length);
        const { reply, lost } = await this.round(this.touchWrites(t), f, m);
        sentTouches += t.length;
        sentForgets += f.length;
        sentMarks += m.length;
        for (const w of f) {
          this.unsentForgets[w.scope].delete(w.key);
          boundedSet(this.recentForgets[w.scope], w.key, w.atUs / 1000, this.maxTracked);
        }
        if (lost) {
          // Redis lost presence: write back this whole replica, every recent logout and the reports made here, then read everything again.
          touches.push(...this.attached(this.indexes).flatMap((index, s) => [...index.keys()].map((key): PendingTouch => [s as ScopeSlot, key, true, true])));
          forgets.push(...this.recentForgets.flatMap((m, s) => [...m].map(([key, at]) => this.forgetWrite(s as ScopeSlot, key, at))));
          // And who it remembers as hidden, some of them in no replica (signed out, idle).
          for (const [key, at] of this.index(0).marked()) marks.push({ key, atUs: Math.round(at * 1000) });
        }
        more = reply.more || lost;
      }
      this.pruneRecentForgets();
      this.reporter.recovered(REPORT_KIND);
    } catch (error) {
      if (String((error as Error)?.message).includes('WRONGTYPE')) await this.repairTypes().catch(() => undefined);
      // Put back what is not known to have landed: writes are idempotent, so one that did is harmless to send again.
      for (const [s, key, withProfile] of touches) if (this.index(s).slotOf(key) !== -1) this.pendingTouches[s].set(key, withProfile);
      for (const f of forgets.slice(sentForgets)) {
        const queued = this.pendingForgets[f.scope].get(f.key);
        if (queued === undefined || queued < f.atUs / 1000) this.pendingForgets[f.scope].set(f.key, f.atUs / 1000);
      }
      this.fail(error);
    } finally {
      for (const m of this.unsentForgets) m.clear();
    }
  }

  /** One script call: writes in, changes out and applied. `lost` when Redis started a new epoch under us. */
  private async round(touches: TouchWrite[], forgets: ForgetWrite[], marks: KeyTime[] = []): Promise<{ reply: SyncReply; lost: boolean }> {
    const reset = this.resetPending;
    const acks = [...this.acks].map(([key, atUs]): KeyTime => ({ key, atUs }));
    const recordAck = this.recordAck;
    const args = syncArgs({
      keys: this.keys,
      thresholdUs: this.thresholdMs * 1000,
      cursor: this.cursor,
      readLimit: READ_LIMIT,
      candidateEpoch: randomBytes(8).toString('hex'),
      knownEpoch: this.epoch,
      knownAtUs: this.lastReplyUs,
      keyTtlMs: Math.max(this.thresholdMs, this.roomLimits.thresholdMs) * 2,
      maxTracked: this.maxTracked,
      maxBots: Math.min(this.maxTracked, MAX_BOTS),
      maxRoomTabs: this.roomLimits.maxRooms * this.roomLimits.maxMembers,
      roomThresholdUs: this.roomLimits.thresholdMs * 1000,
      seenIntervalUs: this.seenIntervalMs === Infinity ? 0 : this.seenIntervalMs * 1000,
      recordFloor: this.recordCount,
      recordFloorAtUs: this.recordAtMs * 1000,
      resetRecord: reset,
      recordGeneration: Math.max(this.recordGeneration, 0),
      cleanupLimit: CLEANUP_LIMIT,
      token: this.token,
      assignedPrefix: assignedKey(this.prefix, ''),
      recoveryUs: Math.max(RECOVERY_SYNCS * this.syncInterval, RECOVERY_MIN_MS) * 1000,
      leaseUs: Math.max(this.seenIntervalMs === Infinity ? 0 : this.seenIntervalMs, LEASE_SYNCS * this.syncInterval, LEASE_MIN_MS) * 1000,
      markTtlUs: MARK_TTL_MS * 1000,
      recordAck,
      touches,
      forgets,
      acks,
      marks,
    });
    const sent = this.clock();
    const raw = await withTimeout(this.send(args), SYNC_TIMEOUT_MS, `Redis did not answer within ${SYNC_TIMEOUT_MS} ms`);
    const reply = decodeSyncReply(raw);
    this.measure(reply.nowUs / 1000, sent, this.clock());
    this.syncedAt = reply.nowUs / 1000;
    this.reporter.recovered('redis-stale');
    // What this call acknowledged has landed: delivered reports are not sent again.
    for (const { key, atUs } of acks) if (this.acks.get(key) === atUs) this.acks.delete(key);
    if (this.recordAck === recordAck) this.recordAck = '';
    if (reply.evicted) this.reportEviction();
    if (reply.otherThresholdUs !== null) this.reportThresholdConflict(reply.otherThresholdUs);
    const lost = this.epoch !== undefined && reply.epoch !== this.epoch;
    this.epoch = reply.epoch;
    this.lastReplyUs = reply.nowUs;
    if (reset) this.resetPending = false;
    // A fresh replica's first call only measures the clock: what it holds is read whole next (loadSnapshot),
    // from a version read after this call, so changes listed here would be skipped unapplied, logouts too.
    if (!this.fresh) this.apply(reply);
    this.applyRecord(reply);
    if (lost) this.cursor = 0;
    return { reply, lost };
  }

  private takeTouches(): PendingTouch[] {
    const taken = this.pendingTouches.flatMap((m, s) => [...m].map(([key, withProfile]): PendingTouch => [s as ScopeSlot, key, withProfile]));
    for (const m of this.pendingTouches) m.clear();
    return taken;
  }

  private takeForgets(): ForgetWrite[] {
    const taken = this.pendingForgets.flatMap((m, s) => [...m].map(([key, at]) => this.forgetWrite(s as ScopeSlot, key, at)));
    this.pendingForgets.forEach((m, s) => {
      for (const [key, at] of m) this.unsentForgets[s].set(key, at);
      m.clear();
    });
    return taken;
  }

  private forgetWrite(scope: ScopeSlot, key: string, at: number): ForgetWrite {
    return { scope, key, atUs: Math.round(at * 1000) };
  }

  /**
   * A new replica's first read: every scope's online keys, oldest first, in
   * chunks of plain ZRANGEBYSCORE + HMGET (the change feed's script reads ~7 µs of
   * Redis a key, these well under one). Changes made meanwhile are in the feed
   * after the version read first, and are read again from there: applying one
   * twice is harmless, as the latest event wins.
   */
  private async loadSnapshot(generation: number): Promise<void> {
    const [epoch, version] = (await this.command(['HMGET', this.keys[0], 'epoch', 'version'])) as [string | null, string | null];
    if (epoch === null || epoch !== this.epoch) return; // Redis has no presence yet, or lost it just now: the feed reads it all
    for (const s of SCOPES) {
      const threshold = s === ROOMS ? this.roomLimits.thresholdMs : this.thresholdMs;
      let pending = this.snapshotChunk(s, `(${Math.round((this.now() - threshold) * 1000)}`, new Set(), false);
      for (;;) {
        const { keys, scores, profiles, next } = await pending;
        if (generation !== this.generation) return;
        // The next chunk is read while this one is applied. Settled, it is awaited below; failed, it must not
        // be an unhandled rejection meanwhile; and it is waited for before leaving early, or the next sync
        // would find our command still out.
        let settled: Promise<unknown> | undefined;
        if (next !== undefined) {
          pending = this.snapshotChunk(s, ...next);
          settled = pending.catch(() => undefined);
        }
        for (let from = 0; from < keys.length; from += APPLY_SLICE) {
          // Between slices the next chunk's replies come in and its HMGET goes out: Redis reads while this process applies.
          if (from > 0) await new Promise(setImmediate);
          if (generation !== this.generation) {
            await settled;
            return;
          }
          this.applyLoaded(s, keys, scores, profiles, from, Math.min(from + APPLY_SLICE, keys.length));
        }
        if (next === undefined) break;
      }
    }
    // Who hid, past their presence: a bare-id touch here must bring them back hidden, as Redis would.
    const marks = flatPairs(await this.command(['ZRANGEBYSCORE', this.keys[KEY.marks], `(${Math.round((this.now() - MARK_TTL_MS) * 1000)}`, '+inf', 'WITHSCORES']));
    for (let i = 0; i < marks.length; i += 2) this.index(0).mark(marks[i], Number(marks[i + 1]) / 1000);
    this.cursor = Math.max(this.cursor, Number(version ?? 0));
  }

  /** Keys `from` to `to` of a first read's chunk, into the index. */
  private applyLoaded(s: ScopeSlot, keys: readonly string[], scores: readonly string[], profiles: readonly (string | null)[], from: number, to: number): void {
    const index = this.index(s);
    const queued = this.pendingForgets[s];
    const touches: TimedTouch[] = [];
    for (let i = from; i < to; i++) {
      const key = keys[i];
      const at = Number(scores[i]) / 1000;
      if ((queued.get(key) ?? -Infinity) >= at) continue;
      const stored = profiles[i];
      if (s === ROOMS) {
        touches.push({ key, id: key, profile: { t: storedProfile(stored ?? '') }, at });
      } else if (typeof stored === 'string') {
        // The usual one-field profile is taken at once (the index keeps its value off the heap). Any other is
        // kept as stored ("µs|#json": a substring would keep the whole reply's text alive), parsed when first needed.
        const text = storedProfile(stored);
        const plain = plainProfile(text);
        touches.push({ key, id: idOf(key, text), profile: plain, raw: plain === undefined ? stored : undefined, at });
      } else {
        touches.push({ key, id: key, profile: undefined, at });
      }
    }
    // Oldest first, so applied one by one; as one batch when pages touched users meanwhile (then these are late).
    index.merge(touches);
    if (s === ROOMS) this.attached(this.rooms).noteKeys(keys.slice(from, to));
  }

  /**
   * Up to SNAPSHOT_CHUNK keys of scope `s` seen after `min` (a score, exclusive
   * when it starts with "("), oldest first, with their profiles (users only),
   * and where the next chunk starts: from the last score, inclusive, less the
   * keys already read at it, so keys that share a time across two chunks are
   * all read. A chunk that is all one time is followed by every key at that
   * time at once (`whole`): no offset, which writes meanwhile could shift.
   */
  private async snapshotChunk(s: ScopeSlot, min: string, atMin: Set<string>, whole: boolean): Promise<SnapshotChunk> {
    const seen = this.scopeKey(s, 0);
    const rows = flatPairs(
      await this.command(whole ? ['ZRANGEBYSCORE', seen, min, min, 'WITHSCORES'] : ['ZRANGEBYSCORE', seen, min, '+inf', 'WITHSCORES', 'LIMIT', '0', String(SNAPSHOT_CHUNK)]),
    );
    const keys: string[] = [];
    const scores: string[] = [];
    for (let i = 0; i < rows.length; i += 2) {
      if (atMin.has(rows[i])) continue;
      keys.push(rows[i]);
      scores.push(rows[i + 1]);
    }
    let next: [string, Set<string>, boolean] | undefined;
    if (whole) {
      next = [`(${min}`, new Set(), false];
    } else if (rows.length === 2 * SNAPSHOT_CHUNK) {
      const last = rows[rows.length - 1];
      const ties = new Set(last === min ? atMin : []);
      for (let i = rows.length - 2; i >= 0 && rows[i + 1] === last; i -= 2) ties.add(rows[i]);
      next = [last, ties, last === min];
    }
    const profiles = (s === 0 || s === ROOMS) && keys.length > 0 ? ((await this.command(['HMGET', this.scopeKey(s, 1), ...keys])) as (string | null)[]) : [];
    return { keys, scores, profiles, next };
  }

  /** A scope's key (see syncKeys): 0 seen, 1 profiles. */
  private scopeKey(s: ScopeSlot, part: 0 | 1): string {
    return this.keys[KEY.scope[s] + part];
  }

  /** The profiles the first read kept as text are parsed a slice at a time, between requests: a loaded replica shrinks to its usual size. */
  private decodeLoaded(): void {
    const index = this.index(0);
    const step = (): void => {
      if (index.decodeLoaded(DECODE_SLICE)) setImmediate(step);
    };
    setImmediate(step);
  }

  /** One plain command, bounded in time like a sync (and, like one, the only command of ours out until answered). */
  private command(args: string[]): Promise<unknown> {
    return withTimeout(
      this.out(() => this.redis.send(args, args[1])),
      SYNC_TIMEOUT_MS,
      `Redis did not answer within ${SYNC_TIMEOUT_MS} ms`,
    );
  }

  /** Runs `work` as the one command of ours that is out, until it settles or is given up (`abandon`). */
  private async out<T>(work: () => Promise<T>): Promise<T> {
    const seq = ++this.commandSeq;
    this.outstanding = true;
    this.outstandingSince = this.clock();
    try {
      return await work();
    } finally {
      if (seq === this.commandSeq) this.outstanding = false;
    }
  }

  /**
   * A command out for ABANDON_MS will not be answered: Redis answers or the
   * client fails it well before that, unless the client lost the node (node-redis
   * createCluster after a master failover keeps it queued for ever). Given up,
   * syncs go on; its late answer, if any, is dropped (writes are idempotent).
   */
  private abandon(): void {
    this.commandSeq++;
    this.outstanding = false;
    this.reporter.report(
      'redis-hung',
      new OnlineNowConfigError(
        'ERR_ONLINE_NOW_REDIS_HUNG',
        `RedisStore (prefix "${this.prefix}"): the ${this.redis.name} left a command unanswered for ${ABANDON_MS / 1000} s, so it is given up and syncs go on (each waits for the client again). ` +
          'A node-redis cluster client does this after a master failover until it is reconnected; ioredis Cluster recovers by itself. Use ioredis Cluster, or reconnect the node-redis cluster client when this is reported.',
      ),
    );
  }

  /** Each touched key as the index holds it when sent: its latest time and profile. One that left since is not sent. */
  private touchWrites(keys: readonly PendingTouch[]): TouchWrite[] {
    const writes: TouchWrite[] = [];
    for (const [s, key, withProfile, writeBack] of keys) {
      const index = this.index(s);
      const slot = index.slotOf(key);
      if (slot === -1) continue;
      let profile = '';
      if (s === 0) profile = encodeProfile(index.idOf(slot), withProfile ? index.profileOf(slot) : undefined);
      else if (s === ROOMS) profile = String(index.profileOf(slot).t);
      const reported = s === 0 && writeBack === true ? index.reportedAt(slot) : -Infinity;
      writes.push({ scope: s, key, atUs: Math.round(index.timeOf(slot) * 1000), profile, reportedUs: reported === -Infinity ? undefined : reported * 1000 });
    }
    return writes;
  }

  /**
   * Redis's clock as seen from here: its time at the call's midpoint, off by at
   * most half the round trip. The offset comes from the quickest recent round
   * trip (its bar rises slowly, so a slower network is followed).
   */
  private measure(redisMs: number, sent: number, received: number): void {
    const rtt = received - sent;
    const offset = redisMs - (sent + received) / 2;
    if (!this.measured) {
      // What this process recorded before it knew Redis's clock moves onto it.
      const delta = offset - this.offset;
      for (const index of this.attached(this.indexes)) index.shift(delta);
      for (const m of this.pendingForgets) for (const [key, at] of m) m.set(key, at + delta);
      this.measured = true;
    } else {
      this.offsetRtt *= 1.05;
      if (rtt > this.offsetRtt) return;
    }
    this.offset = offset;
    this.offsetRtt = rtt;
  }

  /** Applies one reply's changes to the read model, under the same latest-event rules as Redis. */
  private apply(reply: SyncReply): void {
    reply.changes.forEach((rows, s) => {
      const index = this.index(s as ScopeSlot);
      const cutoff = this.now() - this.thresholdOf(s as ScopeSlot);
      const queued = this.pendingForgets[s];
      const unsent = this.unsentForgets[s];
      const touches: TimedTouch[] = [];
      for (const row of rows) {
        if (row.goneUs !== null) index.forget(row.key, row.goneUs / 1000);
        if (row.seenUs === null) continue;
        const at = row.seenUs / 1000;
        // A logout here that Redis has not had yet beats what Redis saw before it.
        if (at <= cutoff || (queued.get(row.key) ?? -Infinity) >= at || (unsent.get(row.key) ?? -Infinity) >= at) continue;
        if (s === ROOMS) {
          // A tab's record is read (and checked) by the rooms index, which keeps it as text.
          touches.push({ key: row.key, id: row.key, profile: { t: row.profile ?? '' }, at });
          continue;
        }
        // No profile in Redis (a bare-id touch reached it first) says nothing of visibility: what is held stays.
        const { id, profile } = s === 0 && row.profile !== null ? decodeProfile(row.key, row.profile) : { id: row.key, profile: undefined };
        touches.push({ key: row.key, id, profile, at });
      }
      index.merge(touches);
      if (s === ROOMS) this.attached(this.rooms).noteKeys(touches.map((t) => t.key));
    });
    this.cursor = reply.cursor;
  }

  /**
   * The record as Redis has it; `onRecord` for a raise Redis assigned to this
   * process, `onSeen` for each report: each once (Redis sends them again until
   * this process acknowledges them, in its next call).
   */
  private applyRecord(reply: SyncReply): void {
    this.recordGeneration = reply.recordGeneration;
    this.setRecord(reply.recordCount, reply.recordAtUs / 1000);
    if (reply.raise !== '') {
      if (reply.raise !== this.raiseDelivered) {
        const [count, atUs] = reply.raise.split('|').map(Number);
        this.tellRecord(this.recordOf(count, atUs / 1000));
        this.raiseDelivered = reply.raise;
      }
      this.recordAck = reply.raise;
    }
    const users = this.index(0);
    for (const { key, atUs } of reply.reports) {
      if (this.acks.get(key) === atUs) continue;
      const slot = users.slotOf(key);
      if (slot !== -1) {
        // Remembered for a write-back: Redis, if it loses its data, is told this user was reported.
        users.markReported(slot, atUs / 1000);
        this.seen(users.entryOf(slot, atUs / 1000));
      }
      boundedSet(this.acks, key, atUs, this.maxTracked);
    }
  }

  private thresholdOf(s: ScopeSlot): number {
    return s === ROOMS ? this.roomLimits.thresholdMs : this.thresholdMs;
  }

  private pruneRecentForgets(): void {
    this.recentForgets.forEach((m, s) => {
      const cutoff = this.now() - this.thresholdOf(s as ScopeSlot);
      for (const [key, at] of m) {
        if (at > cutoff) break;
        m.delete(key);
      }
    });
  }

  private fail(error: unknown): void {
    this.failures++;
    // A last flush still running after close() (its client may be closing too) tells nobody.
    if (this.timer === undefined) return;
    const message = error instanceof Error ? error.message : String(error);
    this.reporter.report(
      REPORT_KIND,
      new Error(`RedisStore (prefix "${this.prefix}"): ${message}; pages show the last known presence until Redis answers again`),
    );
  }

  /** EVALSHA, falling back to EVAL when Redis does not have the script (first use, or after a restart). */
  private send(args: string[]): Promise<unknown> {
    return this.out(async () => {
      try {
        return await this.redis.send(['EVALSHA', SYNC_SHA, ...args], this.keys[0]);
      } catch (error) {
        if (!String((error as Error)?.message).startsWith('NOSCRIPT')) throw error;
        return await this.redis.send(['EVAL', SYNC_SCRIPT, ...args], this.keys[0]);
      }
    });
  }

  /**
   * Some key under the prefix holds another type (written by something else, or
   * by hand): every sync would fail on it. Each such key is renamed aside (kept,
   * for whoever wrote it) and reported once; the script then starts a new epoch
   * if it held data, and presence is written back.
   */
  private async repairTypes(): Promise<void> {
    const expected = (i: number): string => (i === KEY.meta || i === KEY.assigned || this.keys[i].endsWith(':profiles') ? 'hash' : 'zset');
    let renamed = false;
    for (let i = 0; i < this.keys.length; i++) {
      const type = String(await this.command(['TYPE', this.keys[i]]));
      if (type === 'none' || type === expected(i)) continue;
      const aside = `${this.keys[i]}:aside:${Date.now()}`;
      await this.command(['RENAME', this.keys[i], aside]);
      renamed = true;
      this.reporter.report(
        'redis-wrongtype',
        new OnlineNowConfigError(
          'ERR_ONLINE_NOW_REDIS_WRONGTYPE',
          `RedisStore (prefix "${this.prefix}"): the key "${this.keys[i]}" held a ${type}, not the ${expected(i)} presence keeps there; it was renamed to "${aside}" and presence goes on. Something else writes under this prefix: give presence a prefix of its own (new RedisStore({ prefix })).`,
        ),
      );
    }
    // A new epoch (not an eviction: no key counts as held before): every process reads Redis again and writes back what it holds.
    if (renamed) await this.command(['HSET', this.keys[KEY.meta], 'epoch', randomBytes(8).toString('hex'), 'present', '0']);
  }

  /** Reported once for the life of the store: presence survives, but Redis's policy will strike again. */
  private reportEviction(): void {
    this.reporter.report(
      'redis-evicted',
      new OnlineNowConfigError(
        'ERR_ONLINE_NOW_REDIS_EVICTED',
        `Redis evicted presence keys under the prefix "${this.prefix}" (maxmemory reached with an evicting maxmemory-policy); every process is writing its presence back. Presence needs maxmemory-policy noeviction (or more memory, or a Redis of its own).`,
      ),
    );
  }

  /** Trackers sharing a prefix must agree on the threshold, or each expires the others' users at its own time. */
  private reportThresholdConflict(otherUs: number): void {
    // Reported once for the life of the store: a mismatch flaps as the two trackers take turns.
    this.reporter.report(
      'redis-threshold',
      new OnlineNowConfigError(
        'ERR_ONLINE_NOW_PREFIX_SHARED',
        `another tracker uses the Redis prefix "${this.prefix}" with a threshold of ${otherUs / 1e6}s, this one ${this.thresholdMs / 1000}s: give them the same threshold, or different prefixes.`,
      ),
    );
  }
}

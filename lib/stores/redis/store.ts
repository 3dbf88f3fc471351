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
import { monotonicNow } from '../../core/clock';
import { OnlineNowConfigError } from '../../core/errors';
import { ListedEntry, PLAIN_CLOCK, type IndexClock } from '../../core/presence-index';
import { tabKey, tabPerson } from '../../core/room-index';
import { roomEvent } from '../../core/room-watch';
import { Histogram, SYNC_BUCKETS, type SyncStats } from '../../core/metrics';
import { withTimeout } from '../../core/timeout';
import type { Profile, RoomLockState, RoomTouch, RoomView, Scope, ScopeView, StoreConfig, UserId, Viewer } from '../../core/types';
import { checkOptions, optionNames, positiveNumber, storeBasics } from '../../core/validations';
import { DEFAULT_MAX_TRACKED, MARK_TTL_MS, MAX_BOTS, BaseStore } from '../base-store';
import { adaptClient, type RawRedis, type RedisClientLike } from './client';
import { Outbox } from './outbox';
import { RedisClock } from './redis-clock';
import { decodeProfile } from './profile-codec';
import { ROOMS, Replica, type PendingTouch } from './replica';
import {
  KEY,
  ROOM_KINDS,
  SYNC_SCRIPT,
  SYNC_SHA,
  assignedKey,
  decodeSyncReply,
  syncArgs,
  transitionsKey,
  type ForgetWrite,
  type KeyTime,
  type RoomKind,
  type ScopeNo,
  type SyncReply,
  type TouchWrite,
  type TransitionRow,
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

const SCOPE_NO: Record<Scope, ScopeNo> = { users: 0, guests: 1, bots: 2 };

export class RedisStore extends BaseStore {
  readonly sharedAcrossProcesses = true;
  /** Calls `onOnline` and `onOffline`, each transition once across processes (decided in Redis). */
  readonly transitions = true;
  readonly prefix: string;
  readonly syncInterval: number;
  readonly maxTracked: number;
  private readonly redis: RawRedis;
  /** Redis's clock, estimated here: the time base every date and write is on. */
  private readonly clock: RedisClock;
  /** What the indexes are given: dates on Redis's clock (every process's one time base), marks kept MARK_TTL_MS. */
  private readonly indexClock: IndexClock = { ...PLAIN_CLOCK, markTtlMs: MARK_TTL_MS, statuses: () => this.statuses };
  /** Logouts on their way to Redis: they outlive a replica. */
  private readonly outbox: Outbox;
  /** This attachment's state; a new one at each attach. */
  private replica: Replica | undefined;
  /** The replica has had its first sync (or waited COLD_START_WAIT_MS for it): pages read it without waiting. */
  private warmed: Promise<void> | undefined;
  /** `resetRecord()` asked, not yet done in Redis. */
  private resetPending = false;
  /** The reset generation of the record this process knows (-1 before its first reply). */
  private recordGeneration = -1;
  /** Redis's epoch as of this process's last reply: another one means Redis lost its data meanwhile. */
  private epoch: string | undefined;
  /** Redis's time at this process's last reply, µs. */
  private lastReplyUs = 0;
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  /** A command Redis has not answered yet: while it is out, nothing more is sent (no pile-up on a hung server). */
  private outstanding = false;
  /** When (local clock) the command now outstanding was sent, and which it is: one given up on settles unheard. */
  private outstandingSince = 0;
  /** The command last sent, settled or not: a closing store waits for it (bounded) before its last flush. */
  private lastSent: Promise<unknown> = Promise.resolve();
  private commandSeq = 0;
  private readonly syncDurations = new Histogram(SYNC_BUCKETS);
  /** Syncs failed so far: metrics, and `confirm()` tells by it whether its own did. */
  private syncFailures = 0;
  /** The last trackers closed: the last sync says so (Redis gives this process nothing more to tell). */
  private leaving = false;

  constructor(options: RedisStoreOptions) {
    super('RedisStore');
    if (options === undefined) {
      throw new OnlineNowConfigError('ERR_ONLINE_NOW_REDIS_CLIENT', 'new RedisStore({ client }) needs a connected Redis client.');
    }
    checkOptions('new RedisStore()', options, redisStoreOptions);
    const basics = storeBasics(options, DEFAULT_MAX_TRACKED);
    this.maxTracked = basics.maxTracked;
    this.clock = new RedisClock(basics.now ?? monotonicNow);
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
    this.outbox = new Outbox((s) => (s === ROOMS ? this.roomLimits.maxRooms * this.roomLimits.maxMembers : this.maxTracked));
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
    this.leaving = false;
    // A store attached again starts with an empty replica: it reads Redis from the start, under a name of its own.
    if (this.replica !== undefined) this.replica.retired = true;
    const replica = new Replica({
      prefix: this.prefix,
      thresholdMs: this.thresholdMs,
      maxTracked: this.maxTracked,
      maxBots: Math.min(this.maxTracked, MAX_BOTS),
      syncInterval: this.syncInterval,
      roomLimits: this.roomLimits,
      clock: this.indexClock,
      now: () => this.clock.now(),
      outbox: this.outbox,
    });
    this.replica = replica;
    this.warmed = new Promise<void>((resolve) => {
      const cold = setTimeout(resolve, COLD_START_WAIT_MS);
      cold.unref();
      // After any sync still running for the replica before (a store closed and attached again).
      void this.syncSoon().then(() => {
        clearTimeout(cold);
        resolve();
      });
    }).then(() => {
      replica.warm = true;
    });
    this.timer = setInterval(() => void this.sync(), this.syncInterval);
    this.timer.unref();
  }

  /** Stops the sync timer after a last flush of queued writes (bounded); the client stays open. */
  protected async stop(): Promise<void> {
    clearInterval(this.timer);
    this.timer = undefined;
    this.leaving = true;
    // A sync that timed out may still be out (Redis paused, its answer not back): nothing more is sent while one
    // is, so the last flush waits for it (bounded), or this process's last writes would never be sent.
    if (this.outstanding) await withTimeout(this.lastSent, SYNC_TIMEOUT_MS, 'Redis did not answer').catch(() => undefined);
    const replica = this.live();
    // Acknowledgements too: reports this process delivered are not handed to another one.
    const queued = replica.touchesQueued || !this.outbox.empty || replica.acks.size > 0 || replica.transitionAcks.size > 0 || replica.recordAck !== '';
    const last = queued ? this.syncSoon() : this.running;
    if (last !== undefined) await withTimeout(last, SYNC_TIMEOUT_MS, 'Redis did not answer').catch(() => undefined);
  }

  touch(scope: Scope, key: string, id: UserId, profile: Profile | undefined): void {
    const s = SCOPE_NO[scope];
    const replica = this.live();
    // One that brings back a user this replica remembers as hidden shows them hidden here until Redis,
    // which remembers too, says otherwise (a request elsewhere may have unhidden them meanwhile).
    if (replica.indexes[s].touch(key, id, profile, this.clock.eventTime()) === -1) return;
    replica.queueTouch(s, key, profile !== undefined);
  }

  async forget(scope: Scope, key: string): Promise<void> {
    const s = SCOPE_NO[scope];
    const at = this.clock.eventTime();
    const replica = this.live();
    replica.queueForget(s, key, at);
    this.forgetIn(replica.indexes[s], key, at, s === 0);
    // Signed out: out of every room too, in every process (each leave queued before the index forgets its tab).
    if (s === 0) {
      for (const tab of replica.rooms.tabsOf(key)) replica.queueForget(ROOMS, tab, at);
      replica.rooms.forgetUser(key, at);
    }
    // Logouts go out at once rather than at the next tick, so other processes see them within one syncInterval.
    await withTimeout(this.syncSoon(), FORGET_WAIT_MS, 'Redis did not answer').catch(() => undefined);
  }

  view(scope: Scope, limit: number, viewer?: Viewer): ScopeView | Promise<ScopeView> {
    const s = SCOPE_NO[scope];
    return this.whenWarm((replica) => replica.indexes[s].view(limit, this.clock.now(), s === 0 ? this.withholding(replica, viewer) : viewer));
  }

  /**
   * A replica that has not heard from Redis for a while cannot know who hid on
   * another process meanwhile: users it knows only from others (last seen before
   * its last sync) are withheld from viewers who may not see hidden users.
   */
  private withholding(replica: Replica, viewer: Viewer | undefined): Viewer | undefined {
    if (viewer?.seesHidden === true || replica.syncedAt === -Infinity) return viewer;
    const silentMs = this.clock.now() - replica.syncedAt;
    const staleMs = Math.max(STALE_SYNCS * this.syncInterval, STALE_MIN_MS);
    if (silentMs <= staleMs) return viewer;
    this.reporter.report(
      'redis-stale',
      new OnlineNowConfigError(
        'ERR_ONLINE_NOW_REDIS_STALE',
        `RedisStore (prefix "${this.prefix}"): no sync with Redis for ${Math.round(silentMs)} ms; until Redis answers, pages withhold the users this process knows only from other processes (they may have hidden meanwhile), and show only users seen here since.`,
      ),
    );
    return { seesHidden: false, self: viewer?.self, withheldUpTo: replica.syncedAt };
  }

  roomTouch(touch: RoomTouch, viewer: Viewer): RoomView | Promise<RoomView> {
    // The claim is settled against the room as this replica knows it: after the first sync, not before.
    return this.whenWarm((replica) => {
      const self = replica.rooms.touch(touch, this.clock.eventTime());
      replica.queueTouch(ROOMS, tabKey(touch.room, touch.key, touch.tab), true);
      // A takeover is told to the holder's process at its next sync, not one interval later.
      if (touch.takeover) void this.syncSoon();
      return { ...replica.rooms.view(touch.room, this.clock.now(), viewer), self };
    });
  }

  async roomLeave(room: string, key: string, tab: string): Promise<void> {
    const at = this.clock.eventTime();
    const replica = this.live();
    // Queued before the index forgets the tab: a heartbeat of it not yet sent goes with the leave.
    replica.queueForget(ROOMS, tabKey(room, key, tab), at);
    replica.rooms.leave(room, key, tab, at);
    await withTimeout(this.syncSoon(), FORGET_WAIT_MS, 'Redis did not answer').catch(() => undefined);
  }

  roomView(room: string, viewer: Viewer): RoomView | Promise<RoomView> {
    return this.whenWarm((replica) => replica.rooms.view(room, this.clock.now(), viewer));
  }

  roomLocks(viewer: Viewer, rooms?: readonly string[]): RoomLockState[] | Promise<RoomLockState[]> {
    return this.whenWarm((replica) => replica.rooms.locks(this.clock.now(), viewer, rooms));
  }

  /** See Store.confirm: one sync begun after this call (callers meanwhile share it); rejects when it failed. */
  async confirm(): Promise<void> {
    await this.running;
    const failures = this.syncFailures;
    await this.sync();
    if (this.syncFailures !== failures) throw new Error(`RedisStore (prefix "${this.prefix}"): Redis did not answer a sync`);
  }

  /** Starts the record over, in Redis for every process, from the number online now. */
  async resetRecord(): Promise<void> {
    this.resetPending = true;
    await withTimeout(this.syncSoon(), SYNC_TIMEOUT_MS, 'Redis did not answer').catch(() => undefined);
  }

  /** `read` now, or once the first sync (bounded by COLD_START_WAIT_MS) has brought what other processes hold. */
  private whenWarm<T>(read: (replica: Replica) => T | Promise<T>): T | Promise<T> {
    const replica = this.live();
    if (replica.warm || this.warmed === undefined) return read(replica);
    return this.warmed.then(() => read(this.live()));
  }

  /**
   * Now on Redis's clock, as estimated here: every date this store gives is on
   * it, and so is `timeAgo`'s now, so a server whose own clock is off (or
   * stepped) still says "now" for a user seen now.
   */
  dateNow(): number {
    return this.clock.now();
  }

  syncStats(): SyncStats {
    const syncedAt = this.replica?.syncedAt ?? -Infinity;
    return { durations: this.syncDurations, failures: this.syncFailures, ageSeconds: (this.clock.now() - syncedAt) / 1000, clockErrorMs: this.clock.worstErrorMs };
  }

  private live(): Replica {
    return this.attached(this.replica);
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
    const started = this.clock.local();
    if (this.outstanding) {
      if (this.clock.local() - this.outstandingSince < ABANDON_MS) return this.fail(new Error('Redis has not answered the previous sync yet'));
      this.abandon();
    }
    const replica = this.live();
    let touches: PendingTouch[] = [];
    let forgets: ForgetWrite[] = [];
    let sentForgets = 0;
    try {
      // Nothing is stamped for Redis before this process knows Redis's clock.
      if (!this.clock.measured) await this.round(replica, [], []);
      if (replica.fresh) {
        await replica.load((args) => this.command(args), this.epoch, this.tellsUserTransitions);
        // Attached again meanwhile: the new replica reads everything at its own first sync.
        if (replica.retired) return;
        replica.fresh = false;
        replica.decodeLoaded();
      }
      touches = replica.takeTouches();
      forgets = this.outbox.take();
      const marks: KeyTime[] = [];
      let sentTouches = 0;
      let sentMarks = 0;
      let more = true;
      for (let rounds = 0; (more || sentTouches < touches.length || sentForgets < forgets.length || sentMarks < marks.length) && rounds < 1000; rounds++) {
        // A backlog (a burst, an outage's queue, a replica written back) goes in bounded slices, logouts first.
        const f = forgets.slice(sentForgets, sentForgets + WRITE_LIMIT);
        const m = marks.slice(sentMarks, sentMarks + WRITE_LIMIT - f.length);
        const t = touches.slice(sentTouches, sentTouches + WRITE_LIMIT - f.length - m.length);
        const { reply, lost } = await this.round(replica, replica.touchWrites(t), f, m);
        sentTouches += t.length;
        sentForgets += f.length;
        sentMarks += m.length;
        for (const w of f) this.outbox.landedIn(w);
        if (lost) {
          // Redis lost presence: write back this whole replica, every recent logout and the reports made here, then read everything again.
          const back = replica.writeBack();
          touches.push(...back.touches);
          marks.push(...back.marks);
          forgets.push(...this.outbox.writeBack());
        }
        more = reply.more || lost;
      }
      this.outbox.prune((s) => this.clock.now() - replica.thresholdOf(s));
      this.syncDurations.observe((this.clock.local() - started) / 1000);
      this.reporter.recovered(REPORT_KIND);
    } catch (error) {
      if (String((error as Error)?.message).includes('WRONGTYPE')) await this.repairTypes(replica).catch(() => undefined);
      // Put back what is not known to have landed: writes are idempotent, so one that did is harmless to send again.
      replica.putBack(touches);
      this.outbox.putBack(forgets.slice(sentForgets));
      this.fail(error);
    } finally {
      this.outbox.settle();
    }
  }

  /** One script call: writes in, changes out and applied. `lost` when Redis started a new epoch under us. */
  private async round(replica: Replica, touches: TouchWrite[], forgets: ForgetWrite[], marks: KeyTime[] = []): Promise<{ reply: SyncReply; lost: boolean }> {
    const reset = this.resetPending;
    const acks = [...replica.acks].map(([key, atUs]): KeyTime => ({ key, atUs }));
    const recordAck = replica.recordAck;
    const transitionAcks = [...replica.transitionAcks];
    const seenIntervalMs = this.seenIntervalMs === Infinity ? 0 : this.seenIntervalMs;
    const args = syncArgs({
      keys: replica.keys,
      thresholdUs: this.thresholdMs * 1000,
      cursor: replica.cursor,
      readLimit: READ_LIMIT,
      candidateEpoch: randomBytes(8).toString('hex'),
      knownEpoch: this.epoch,
      knownAtUs: this.lastReplyUs,
      keyTtlMs: Math.max(this.thresholdMs, this.roomLimits.thresholdMs) * 2,
      maxTracked: this.maxTracked,
      maxBots: Math.min(this.maxTracked, MAX_BOTS),
      maxRoomTabs: this.roomLimits.maxRooms * this.roomLimits.maxMembers,
      roomThresholdUs: this.roomLimits.thresholdMs * 1000,
      roomActiveUs: this.roomLimits.activeMs * 1000,
      rooms: this.roomsWanted,
      seenIntervalUs: seenIntervalMs * 1000,
      recordFloor: this.recordCount,
      recordFloorAtUs: this.recordAtMs * 1000,
      resetRecord: reset,
      recordGeneration: Math.max(this.recordGeneration, 0),
      cleanupLimit: CLEANUP_LIMIT,
      token: replica.token,
      assignedPrefix: assignedKey(this.prefix, ''),
      recoveryUs: Math.max(RECOVERY_SYNCS * this.syncInterval, RECOVERY_MIN_MS) * 1000,
      leaseUs: Math.max(seenIntervalMs, LEASE_SYNCS * this.syncInterval, LEASE_MIN_MS) * 1000,
      markTtlUs: MARK_TTL_MS * 1000,
      recordAck,
      touches,
      forgets,
      acks,
      marks,
      transitions: this.tellsUserTransitions,
      transitionsPrefix: transitionsKey(this.prefix, ''),
      transitionAcks,
      leaving: this.leaving,
      ...(this.statusWanted && this.statuses !== undefined && { statusIdleUs: this.statuses.idleMs * 1000, statusAwayUs: this.statuses.awayMs * 1000 }),
    });
    const sent = this.clock.local();
    const raw = await withTimeout(this.send(replica, args), SYNC_TIMEOUT_MS, `Redis did not answer within ${SYNC_TIMEOUT_MS} ms`);
    const reply = decodeSyncReply(raw);
    const moved = this.clock.measure(reply.nowUs / 1000, sent, this.clock.local());
    if (moved !== 0) {
      // What this process recorded before it knew Redis's clock moves onto it.
      for (const index of replica.indexes) index.shift(moved);
      this.outbox.shift(moved);
    }
    replica.syncedAt = reply.nowUs / 1000;
    this.reporter.recovered('redis-stale');
    replica.acknowledged(acks, recordAck, transitionAcks);
    if (reply.evicted) this.reportEviction();
    if (reply.otherThresholdUs !== null) this.reportThresholdConflict(reply.otherThresholdUs);
    const lost = this.epoch !== undefined && reply.epoch !== this.epoch;
    if (lost) replica.transitionsRestarted();
    this.epoch = reply.epoch;
    this.lastReplyUs = reply.nowUs;
    if (reset) this.resetPending = false;
    // A fresh replica's first call only measures the clock: what it holds is read whole next (Replica.load),
    // from a version read after this call, so changes listed here would be skipped unapplied, logouts too.
    if (!replica.fresh) replica.apply(reply);
    this.applyRecord(replica, reply);
    if (lost) replica.cursor = 0;
    return { reply, lost };
  }

  /**
   * The record as Redis has it; `onRecord` for a raise Redis assigned to this
   * process, `onSeen` for each report: each once (Redis sends them again until
   * this process acknowledges them, in its next call). A retired replica
   * delivers nothing: its reports pass to another after the lease.
   */
  private applyRecord(replica: Replica, reply: SyncReply): void {
    this.recordGeneration = reply.recordGeneration;
    this.setRecord(reply.recordCount, reply.recordAtUs / 1000);
    if (replica.retired) return;
    const raise = replica.raiseToDeliver(reply);
    if (raise !== undefined) this.tellRecord(this.recordOf(...raise));
    for (const entry of replica.reportsToDeliver(reply)) this.seen(entry);
    // None taken (so none acknowledged) without a tracker to tell them: they pass to another process.
    if (!this.tellsTransitions) return;
    for (const row of replica.transitionsToDeliver(reply)) {
      if (row.kind in ROOM_KINDS) {
        this.tellRoom(row as TransitionRow & { kind: RoomKind });
        continue;
      }
      const { id, profile } = decodeProfile(row.key, row.profile === '' ? null : row.profile);
      const seenMs = row.seenUs / 1000;
      const entry = new ListedEntry(id, profile, () => seenMs, this.statuses);
      const atMs = row.atUs / 1000;
      const hook = row.kind === 'online' ? 'onOnline' : row.kind === 'logout' || row.kind === 'expired' || row.kind === 'evicted' ? 'onOffline' : 'onStatus';
      // Redis gives a user's transitions, of every kind, to one process: one without this kind's hook loses it.
      if (!this.hears(hook)) this.reportHooksDiffer(hook);
      else if (row.kind === 'online') this.wentOnline(entry, atMs);
      else if (row.kind === 'logout' || row.kind === 'expired' || row.kind === 'evicted') this.wentOffline(entry, atMs, row.kind);
      else if (this.statuses !== undefined) this.statusChanged(entry, atMs, row.kind === 'manual' ? this.statuses.of(profile, seenMs, atMs) : row.kind);
    }
  }

  /** A room's transition Redis decided: `onRoom` (a process without it reports the hooks differ). */
  private tellRoom(row: TransitionRow & { kind: RoomKind }): void {
    if (!this.hears('onRoom')) return this.reportHooksDiffer('onRoom');
    // Key "␟room", profile "tab record␟user key" (a record, JSON, holds no raw control character).
    const room = row.key.slice(1);
    const split = row.profile.indexOf('\u001f');
    const userKey = row.profile.slice(split + 1);
    const person = split === -1 ? undefined : tabPerson(row.profile.slice(0, split));
    if (person === undefined) return;
    const [type, why] = ROOM_KINDS[row.kind];
    const member = { key: userKey, id: person.id, profile: person.profile, lastSeen: row.seenUs / 1000 };
    this.roomChanged(roomEvent({ type, room, member, at: row.atUs / 1000, why }, 0));
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
    this.outstandingSince = this.clock.local();
    const sent = work();
    this.lastSent = sent;
    try {
      return await sent;
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

  private fail(error: unknown): void {
    this.syncFailures++;
    // A last flush still running after close() (its client may be closing too) tells nobody.
    if (this.timer === undefined) return;
    const message = error instanceof Error ? error.message : String(error);
    this.reporter.report(REPORT_KIND, new Error(`RedisStore (prefix "${this.prefix}"): ${message}; pages show the last known presence until Redis answers again`));
  }

  /** EVALSHA, falling back to EVAL when Redis does not have the script (first use, or after a restart). */
  private send(replica: Replica, args: string[]): Promise<unknown> {
    return this.out(async () => {
      try {
        return await this.redis.send(['EVALSHA', SYNC_SHA, ...args], replica.keys[KEY.meta]);
      } catch (error) {
        if (!String((error as Error)?.message).startsWith('NOSCRIPT')) throw error;
        return await this.redis.send(['EVAL', SYNC_SCRIPT, ...args], replica.keys[KEY.meta]);
      }
    });
  }

  /**
   * Some key under the prefix holds another type (written by something else, or
   * by hand): every sync would fail on it. Each such key is renamed aside (kept,
   * for whoever wrote it) and reported once; the script then starts a new epoch
   * if it held data, and presence is written back.
   */
  private async repairTypes(replica: Replica): Promise<void> {
    const keys = replica.keys;
    const expected = (i: number): string =>
      i === KEY.meta || i === KEY.assigned || i === KEY.lastTransition || i === KEY.statuses || i === KEY.roomsTold || keys[i].endsWith(':profiles') ? 'hash' : 'zset';
    let renamed = false;
    for (let i = 0; i < keys.length; i++) {
      const type = String(await this.command(['TYPE', keys[i]]));
      if (type === 'none' || type === expected(i)) continue;
      const aside = `${keys[i]}:aside:${Date.now()}`;
      await this.command(['RENAME', keys[i], aside]);
      renamed = true;
      this.reporter.report(
        'redis-wrongtype',
        new OnlineNowConfigError(
          'ERR_ONLINE_NOW_REDIS_WRONGTYPE',
          `RedisStore (prefix "${this.prefix}"): the key "${keys[i]}" held a ${type}, not the ${expected(i)} presence keeps there; it was renamed to "${aside}" and presence goes on. Something else writes under this prefix: give presence a prefix of its own (new RedisStore({ prefix })).`,
        ),
      );
    }
    // A new epoch (not an eviction: no key counts as held before): every process reads Redis again and writes back what it holds.
    if (renamed) await this.command(['HSET', keys[KEY.meta], 'epoch', randomBytes(8).toString('hex'), 'present', '0']);
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

  /** Processes sharing a prefix must have the same transition hooks: Redis gives each transition to one of them. */
  private reportHooksDiffer(hook: string): void {
    this.reporter.report(
      'redis-hooks',
      new OnlineNowConfigError(
        'ERR_ONLINE_NOW_PREFIX_SHARED',
        `this process was given a transition for ${hook}, which none of its trackers has, by another process on the Redis prefix "${this.prefix}" that has it: it is lost. Give every process that has onOnline, onOffline, onStatus or onRoom the same four (or a different prefix).`,
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

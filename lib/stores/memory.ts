/**
 * The default store: presence in this process only, bounded in memory.
 * Right for a single Node process; an app run as several processes needs RedisStore.
 */
import { monotonicNow, wallOffset, type Clock } from '../core/clock';
import { PresenceIndex, type IndexClock, type Slot } from '../core/presence-index';
import { RoomIndex } from '../core/room-index';
import { StatusWatch, type StatusChange, type Watched } from '../core/status-watch';
import type { Profile, RoomLockState, StoredEntry, RoomTouch, RoomView, Scope, ScopeView, UserId, Viewer } from '../core/types';
import { checkOptions, optionNames, storeBasics } from '../core/validations';
import { DEFAULT_MAX_TRACKED, MARK_TTL_MS, MAX_BOTS, BaseStore } from './base-store';

export interface MemoryStoreOptions {
  /**
   * How many users (and, separately, guests) are kept at most. Past it the
   * least recently seen are dropped first, so `onlineCount` then reads
   * `maxTracked` (saturated) rather than growing memory without bound.
   * Default 100,000: some 20 MB at the most with short profiles.
   */
  maxTracked?: number;
  /**
   * Milliseconds on a clock that never steps back. Default:
   * `performance.timeOrigin + performance.now()`. Tests pass their own to move time.
   */
  now?: () => number;
}

const memoryStoreOptions = optionNames<MemoryStoreOptions>({ maxTracked: true, now: true });

export class MemoryStore extends BaseStore {
  /** Calls `onOnline` and `onOffline`. */
  readonly transitions = true;
  readonly maxTracked: number;
  private readonly now: Clock;
  /** Dates on the wall clock (times on a clock a test gave are taken as they are). */
  private readonly clock: IndexClock;
  private indexes: Record<Scope, PresenceIndex> | undefined;
  private rooms: RoomIndex | undefined;
  private sweeper: NodeJS.Timeout | undefined;
  /** With `onStatus`: each online user's status as told, and when time changes it. */
  private watch: StatusWatch | undefined;

  constructor(options: MemoryStoreOptions = {}) {
    super('MemoryStore');
    checkOptions('new MemoryStore()', options, memoryStoreOptions);
    const basics = storeBasics(options, DEFAULT_MAX_TRACKED);
    this.maxTracked = basics.maxTracked;
    this.now = basics.now ?? monotonicNow;
    this.clock = { wallOffset: wallOffset(this.now, basics.now !== undefined), markTtlMs: MARK_TTL_MS, statuses: () => this.statuses };
  }

  protected start(): void {
    this.indexes = {
      users: new PresenceIndex(this.thresholdMs, this.maxTracked, 0, undefined, this.clock),
      guests: new PresenceIndex(this.thresholdMs, this.maxTracked, 0, undefined, this.clock),
      bots: new PresenceIndex(this.thresholdMs, Math.min(this.maxTracked, MAX_BOTS), 0, undefined, this.clock),
    };
    this.rooms = new RoomIndex(this.roomLimits);
  }

  protected stop(): void {
    // Expiry happens on reads; only transitions have a timer, so that nobody's going offline waits for a read.
    clearInterval(this.sweeper);
    this.watch = undefined;
  }

  /**
   * Users' comings and goings: a new key, or one held past its threshold that comes back, came online; a
   * key that expires or is evicted went offline. A sweep every tenth of the threshold (1–5 s) finds the
   * expired when no read does.
   */
  protected override transitionsStart(): void {
    const users = this.index('users');
    users.leaving = (slot, key) => {
      const at = users.timeOf(slot) + this.thresholdMs;
      const now = this.now();
      const offAt = (at <= now ? at : now) + this.clock.wallOffset();
      if (this.watch !== undefined) this.tellStatuses(users, this.watch.offline(key, offAt), users.entryOf(slot));
      this.wentOffline(users.entryOf(slot), offAt, at <= now ? 'expired' : 'evicted');
    };
    this.sweepEvery(Math.min(5000, Math.max(1000, this.thresholdMs / 10)));
  }

  /** The first tracker with `onStatus`: statuses are watched from now on, and the sweep runs at least once a status step. */
  protected override statusStart(): void {
    const statuses = this.statuses as NonNullable<typeof this.statuses>;
    this.watch = new StatusWatch(statuses);
    this.sweepEvery(Math.min(5000, Math.max(1000, this.thresholdMs / 10), statuses.stepMs));
  }

  private sweepEvery(ms: number): void {
    clearInterval(this.sweeper);
    this.sweeper = setInterval(() => this.sweep(), ms);
    this.sweeper.unref();
  }

  /** The statuses time changed are told, each at its moment, then the expired go offline (a read does the same). */
  private sweep(): void {
    const users = this.index('users');
    const now = this.now();
    this.statusesDue(users, now);
    users.size(now);
  }

  private statusesDue(users: PresenceIndex, now: number): void {
    if (this.watch !== undefined) this.tellStatuses(users, this.watch.due(now + this.clock.wallOffset()));
  }

  /** Tells `changes`, each with `entry` (the user's entry, when all are one user's) or the user's entry now. */
  private tellStatuses(users: PresenceIndex, changes: readonly StatusChange[], entry?: StoredEntry): void {
    for (const { key, status, at } of changes) this.statusChanged(entry ?? users.entryOf(users.slotOf(key)), at, status);
  }

  /** What the status watch keeps of a user just touched. */
  private watched(users: PresenceIndex, slot: Slot): Watched {
    const lastSeen = users.timeOf(slot) + this.clock.wallOffset();
    return { profile: users.profileOf(slot), lastSeen, until: lastSeen + this.thresholdMs };
  }

  touch(scope: Scope, key: string, id: UserId, profile: Profile | undefined): void {
    const index = this.index(scope);
    const now = this.now();
    const added = index.added;
    // Held but past its threshold (no read has swept it yet): this touch is a return, after a going offline.
    const before = this.transitionsWanted && scope === 'users' ? index.slotOf(key) : (-1 as Slot);
    const gone = before !== -1 && index.timeOf(before) <= now - this.thresholdMs ? index.entryOf(before) : undefined;
    const slot = index.touch(key, id, profile, now);
    if (slot === -1 || scope === 'bots') return;
    if (index.added !== added) this.checkRecord(now);
    if (this.transitionsWanted && scope === 'users' && (index.added !== added || gone !== undefined)) {
      if (gone !== undefined) {
        const offAt = gone.lastSeen.getTime() + this.thresholdMs;
        if (this.watch !== undefined) this.tellStatuses(index, this.watch.offline(key, offAt), gone);
        this.wentOffline(gone, offAt, 'expired');
      }
      this.wentOnline(index.entryOf(slot), now + this.clock.wallOffset());
      this.watch?.online(key, this.watched(index, slot), now + this.clock.wallOffset());
    } else if (this.watch !== undefined && scope === 'users') {
      const changes = this.watch.touched(key, this.watched(index, slot), now + this.clock.wallOffset());
      if (changes.length > 0) this.tellStatuses(index, changes, index.entryOf(slot));
    }
    if (scope === 'users' && now - index.reportedAt(slot) >= this.seenIntervalMs) {
      index.markReported(slot, now);
      this.seen(index.entryOf(slot));
    }
  }

  forget(scope: Scope, key: string): void {
    const now = this.now();
    const index = this.index(scope);
    const slot = this.transitionsWanted && scope === 'users' ? index.slotOf(key) : (-1 as Slot);
    if (slot !== -1) {
      // Signed out while online, or held past the threshold (not yet swept): gone then.
      const entry = index.entryOf(slot);
      const expired = index.timeOf(slot) <= now - this.thresholdMs;
      const offAt = expired ? entry.lastSeen.getTime() + this.thresholdMs : now + this.clock.wallOffset();
      if (this.watch !== undefined) this.tellStatuses(index, this.watch.offline(key, offAt), entry);
      this.forgetIn(index, key, now, true);
      this.wentOffline(entry, offAt, expired ? 'expired' : 'logout');
    } else {
      this.forgetIn(index, key, now, scope === 'users');
    }
    // Signed out: out of every room too, so their pages' streams stop getting rooms.
    if (scope === 'users') this.attached(this.rooms).forgetUser(key, now);
  }

  view(scope: Scope, limit: number, viewer?: Viewer): ScopeView {
    const now = this.now();
    // As a read finds the expired, it finds the statuses time changed (before any going offline it finds).
    if (scope === 'users') this.statusesDue(this.index(scope), now);
    return this.index(scope).view(limit, now, viewer);
  }

  roomTouch(touch: RoomTouch, viewer: Viewer): RoomView {
    const rooms = this.attached(this.rooms);
    const now = this.now();
    const self = rooms.touch(touch, now);
    return { ...rooms.view(touch.room, now, viewer), self };
  }

  roomLeave(room: string, key: string, tab: string): void {
    this.attached(this.rooms).leave(room, key, tab, this.now());
  }

  roomView(room: string, viewer: Viewer): RoomView {
    return this.attached(this.rooms).view(room, this.now(), viewer);
  }

  roomLocks(viewer: Viewer, rooms?: readonly string[]): RoomLockState[] {
    return this.attached(this.rooms).locks(this.now(), viewer, rooms);
  }

  /** Now on the clock this store's dates are on: the wall clock (or the clock a test gave). */
  dateNow(): number {
    return this.now() + this.clock.wallOffset();
  }

  resetRecord(): void {
    const now = this.now();
    this.setRecord(this.online(now), now + this.clock.wallOffset());
  }

  /** A new key came online: the record rises when users and guests together pass it. */
  private checkRecord(now: number): void {
    const online = this.online(now);
    if (online > this.recordCount) this.recordRaised(online, now + this.clock.wallOffset());
  }

  private online(now: number): number {
    const { users, guests } = this.attached(this.indexes);
    return users.size(now) + guests.size(now);
  }

  private index(scope: Scope): PresenceIndex {
    return this.attached(this.indexes)[scope];
  }
}

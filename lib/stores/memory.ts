/**
 * The default store: presence in this process only, bounded in memory.
 * Right for a single Node process; an app run as several processes needs RedisStore.
 */
import { monotonicNow, wallOffset, type Clock } from '../core/clock';
import { PresenceIndex, type IndexClock } from '../core/presence-index';
import { RoomIndex } from '../core/room-index';
import type { Profile, RoomLockState, RoomTouch, RoomView, Scope, ScopeView, UserId, Viewer } from '../core/types';
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
  readonly maxTracked: number;
  private readonly now: Clock;
  /** Dates on the wall clock (times on a clock a test gave are taken as they are). */
  private readonly clock: IndexClock;
  private indexes: Record<Scope, PresenceIndex> | undefined;
  private rooms: RoomIndex | undefined;

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
    // Nothing to stop: expiry happens on reads, with no timers.
  }

  touch(scope: Scope, key: string, id: UserId, profile: Profile | undefined): void {
    const index = this.index(scope);
    const now = this.now();
    const added = index.added;
    const slot = index.touch(key, id, profile, now);
    if (slot === -1 || scope === 'bots') return;
    if (index.added !== added) this.checkRecord(now);
    if (scope === 'users' && now - index.reportedAt(slot) >= this.seenIntervalMs) {
      index.markReported(slot, now);
      this.seen(index.entryOf(slot));
    }
  }

  forget(scope: Scope, key: string): void {
    const now = this.now();
    this.forgetIn(this.index(scope), key, now, scope === 'users');
    // Signed out: out of every room too, so their pages' streams stop getting rooms.
    if (scope === 'users') this.attached(this.rooms).forgetUser(key, now);
  }

  view(scope: Scope, limit: number, viewer?: Viewer): ScopeView {
    return this.index(scope).view(limit, this.now(), viewer);
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

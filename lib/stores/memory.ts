/**
 * The default store: presence in this process only, bounded in memory.
 * Right for a single Node process; an app run as several processes needs RedisStore.
 */
import { monotonicNow, wallOffset, type Clock } from '../core/clock';
import { PresenceIndex, type IndexClock, type Slot } from '../core/presence-index';
import { RoomIndex, roomAndUserOf } from '../core/room-index';
import { RoomWatch, roomEvent, type RoomChange } from '../core/room-watch';
import { StatusWatch, type StatusChange, type Watched } from '../core/status-watch';
import type { Profile, RoomLeaveReason, RoomLockState, StoredEntry, RoomTouch, RoomView, Scope, ScopeView, UserId, Viewer } from '../core/types';
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
  /** With `onRoom`: each room as told, and when time changes it. */
  private roomWatch: RoomWatch | undefined;
  /** Tabs the rooms index dropped to make room, during the write being handled: their users may leave (evicted). */
  private droppedTabs: string[] = [];

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
    this.rooms = new RoomIndex(this.roomLimits, 0, (key) => {
      if (this.roomWatch !== undefined) this.droppedTabs.push(key);
    });
  }

  protected stop(): void {
    // Expiry happens on reads; only transitions have a timer, so that nobody's going offline waits for a read.
    clearInterval(this.sweeper);
    this.watch = undefined;
    this.roomWatch = undefined;
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
    this.sweepEvery();
  }

  /** The first tracker with `onStatus`: statuses are watched from now on, and the sweep runs at least once a status step. */
  protected override statusStart(): void {
    this.watch = new StatusWatch(this.statuses as NonNullable<typeof this.statuses>);
    this.sweepEvery();
  }

  /** The first tracker with `onRoom`: rooms are watched from now on (those occupied now are taken as they are at their next check). */
  protected override roomsStart(): void {
    this.roomWatch = new RoomWatch();
    this.sweepEvery();
  }

  /** A tenth of each window watched (the threshold, a status step, a room's active window), 1–5 s. */
  private sweepEvery(): void {
    const tenth = (ms: number): number => Math.max(1000, ms / 10);
    let ms = Math.min(5000, tenth(this.thresholdMs));
    if (this.watch !== undefined) ms = Math.min(ms, (this.statuses as NonNullable<typeof this.statuses>).stepMs);
    if (this.roomWatch !== undefined) ms = Math.min(ms, tenth(this.roomLimits.activeMs));
    clearInterval(this.sweeper);
    this.sweeper = setInterval(() => this.sweep(), ms);
    this.sweeper.unref();
  }

  /** The statuses time changed are told, each at its moment, then the expired go offline (a read does the same); rooms too. */
  private sweep(): void {
    const users = this.index('users');
    const now = this.now();
    this.statusesDue(users, now);
    users.size(now);
    this.roomsDue(now);
  }

  /** Rooms time changed by `now` (a tab's window ended), each checked at its moment: before any write or read of rooms. */
  private roomsDue(now: number): void {
    const watch = this.roomWatch;
    if (watch === undefined) return;
    const rooms = this.attached(this.rooms);
    for (let due = watch.next(now); due !== undefined; due = watch.next(now)) {
      const [room, at] = due;
      this.tellRooms(watch.check(room, at, rooms.presence(room, at)));
    }
  }

  /**
   * After a write to rooms at `now`: `room` checked, and every room a tab was
   * dropped from (its user evicted, unless they have another tab there).
   */
  private roomsWritten(room: string, now: number, arrived: ReadonlySet<string> | undefined, why: ReadonlyMap<string, RoomLeaveReason> | undefined): void {
    const watch = this.roomWatch;
    if (watch === undefined) return;
    const rooms = this.attached(this.rooms);
    const dropped = this.droppedTabs;
    this.droppedTabs = [];
    const evicted = new Map<string, Map<string, RoomLeaveReason>>();
    for (const key of dropped) {
      const [droppedRoom, userKey] = roomAndUserOf(key);
      const reasons = evicted.get(droppedRoom) ?? new Map(why !== undefined && droppedRoom === room ? why : []);
      reasons.set(userKey, 'evicted');
      evicted.set(droppedRoom, reasons);
    }
    this.tellRooms(watch.check(room, now, rooms.presence(room, now), arrived, evicted.get(room) ?? why));
    evicted.delete(room);
    for (const [other, reasons] of evicted) this.tellRooms(watch.check(other, now, rooms.presence(other, now), undefined, reasons));
  }

  private tellRooms(changes: readonly RoomChange[]): void {
    const offset = this.clock.wallOffset();
    for (const change of changes) this.roomChanged(roomEvent(change, offset));
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
    if (scope !== 'users') return;
    this.roomsDue(now);
    const tabs = this.attached(this.rooms).forgetUser(key, now);
    const left = new Map([[key, 'left' as const]]);
    for (const room of new Set(tabs.map((tab) => roomAndUserOf(tab)[0]))) this.roomsWritten(room, now, undefined, left);
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
    this.roomsDue(now);
    // A room the watch has not met takes who is there as they are: all but this user, if this touch brings them in.
    const fresh = this.roomWatch !== undefined && !this.roomWatch.knows(touch.room);
    const arrived = fresh && !rooms.presence(touch.room, now).members.has(touch.key) ? new Set([touch.key]) : undefined;
    const self = rooms.touch(touch, now);
    this.roomsWritten(touch.room, now, arrived, undefined);
    return { ...rooms.view(touch.room, now, viewer), self };
  }

  roomLeave(room: string, key: string, tab: string): void {
    const now = this.now();
    this.roomsDue(now);
    this.attached(this.rooms).leave(room, key, tab, now);
    this.roomsWritten(room, now, undefined, new Map([[key, 'left']]));
  }

  roomView(room: string, viewer: Viewer): RoomView {
    const now = this.now();
    this.roomsDue(now);
    return this.attached(this.rooms).view(room, now, viewer);
  }

  roomLocks(viewer: Viewer, rooms?: readonly string[]): RoomLockState[] {
    const now = this.now();
    this.roomsDue(now);
    return this.attached(this.rooms).locks(now, viewer, rooms);
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

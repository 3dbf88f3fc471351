/**
 * What every built-in store does as trackers attach to it: one threshold for
 * all of them, every tracker told of the store's failures, the record and the
 * `onSeen` calls handed to the trackers that asked for them (outside any
 * request), and the store stopped only when the last of its trackers closes.
 */
import { dateProperty } from '../core/date-property';
import { OnlineNowConfigError } from '../core/errors';
import type { PresenceIndex } from '../core/presence-index';
import { DEFAULT_ROOM_LIMITS } from '../core/room-index';
import type { OnlineStatus, Statuses } from '../core/status';
import type {
  Awaitable,
  OfflineReason,
  OnlineRecord,
  Profile,
  RoomEvent,
  RoomLimits,
  RoomLockState,
  RoomTouch,
  RoomView,
  Scope,
  ScopeView,
  Store,
  StoreConfig,
  StoreHooks,
  StoreReporter,
  StoredEntry,
  UserId,
  Viewer,
} from '../core/types';

/** Most users (and, apart, guests) a built-in store keeps unless told otherwise. */
export const DEFAULT_MAX_TRACKED = 100_000;
/** Most kinds of bots kept: a flood of invented user agents cannot grow memory past this. */
export const MAX_BOTS = 1000;
/** How long a store remembers that a user hid, past their presence: a bare-id `touch` within it keeps them hidden. */
export const MARK_TTL_MS = 7 * 24 * 3600 * 1000;

/** The record as locals show it: frozen, its `at` a fresh Date at each read. */
class RecordView implements OnlineRecord {
  declare readonly at: Date;

  constructor(
    readonly count: number,
    atMs: number,
  ) {
    defineAt(this, () => atMs);
    Object.freeze(this);
  }
}

const defineAt = dateProperty('at');

const NO_RECORD = new RecordView(0, 0);

interface Attached {
  readonly reporter: StoreReporter;
  readonly hooks: StoreHooks | undefined;
}

type Call = [Attached, 'onSeen' | 'onRecord' | 'onOnline' | 'onOffline' | 'onStatus' | 'onRoom', unknown, unknown?, unknown?];

/** The hooks a store decides transitions for. */
const wantsTransitions = (hooks: StoreHooks | undefined): boolean =>
  hooks?.onOnline !== undefined || hooks?.onOffline !== undefined || hooks?.onStatus !== undefined || hooks?.onRoom !== undefined;

export abstract class BaseStore implements Store {
  /** The trackers' threshold, once one has attached. */
  protected thresholdMs = 0;
  /** The trackers' room settings, once one has attached. */
  protected roomLimits: RoomLimits = DEFAULT_ROOM_LIMITS;
  /** The status rule of the trackers with `status` on (entries then carry `status`). */
  protected statuses: Statuses | undefined;
  /** Some tracker has `onOnline`, `onOffline` or `onStatus`: the store tells users' comings and goings (and statuses). */
  protected transitionsWanted = false;
  /** Some tracker has `onStatus`: the store also tells each online user's changes of status. */
  protected statusWanted = false;
  /** Some tracker has `onRoom`: the store also tells rooms' comings, goings and lock changes. */
  protected roomsWanted = false;
  /** Milliseconds between two `onSeen` calls for one user; Infinity when no tracker has `onSeen`. */
  protected seenIntervalMs = Infinity;
  /** Most users and guests online at once: count, and when (ms since the epoch). */
  protected recordCount = 0;
  protected recordAtMs = 0;
  private recordView = NO_RECORD;
  private readonly attachedTrackers: Attached[] = [];
  /** Trackers attached and not yet closed. */
  private open = 0;
  /** Hook calls waiting for the event loop to leave the request that caused them. */
  private queue: Call[] = [];
  /** Tells every attached tracker. */
  protected readonly reporter: StoreReporter = {
    report: (kind, error) => {
      for (const t of this.attachedTrackers) t.reporter.report(kind, error);
    },
    recovered: (kind) => {
      for (const t of this.attachedTrackers) t.reporter.recovered(kind);
    },
  };

  constructor(private readonly what: string) {}

  init(config: StoreConfig): void {
    const first = this.open === 0;
    if (!first && config.thresholdMs !== this.thresholdMs) {
      throw new OnlineNowConfigError(
        'ERR_ONLINE_NOW_STORE_SHARED',
        `one ${this.what} is shared by trackers with different thresholds (${this.thresholdMs / 1000}s and ${config.thresholdMs / 1000}s). Give each tracker its own store, or the same threshold.`,
      );
    }
    const rooms = config.rooms ?? DEFAULT_ROOM_LIMITS;
    const roomsDiffer = !first && (['thresholdMs', 'maxRooms', 'maxMembers'] as const).some((k) => rooms[k] !== this.roomLimits[k]);
    if (roomsDiffer) {
      throw new OnlineNowConfigError(
        'ERR_ONLINE_NOW_STORE_SHARED',
        `one ${this.what} is shared by trackers with different room settings (roomThreshold, maxRooms, maxRoomMembers). Give each tracker its own store, or the same settings.`,
      );
    }
    const statuses = config.statuses;
    if (statuses !== undefined && this.statuses !== undefined && (statuses.idleMs !== this.statuses.idleMs || statuses.awayMs !== this.statuses.awayMs)) {
      throw new OnlineNowConfigError(
        'ERR_ONLINE_NOW_STORE_SHARED',
        `one ${this.what} is shared by trackers with different idleAfter or awayAfter values. Give each tracker its own store, or the same values.`,
      );
    }
    this.statuses ??= statuses;
    const hooks = config.hooks;
    if (hooks?.onSeen !== undefined) {
      if (this.seenIntervalMs !== Infinity && this.seenIntervalMs !== hooks.seenIntervalMs) {
        throw new OnlineNowConfigError(
          'ERR_ONLINE_NOW_STORE_SHARED',
          `one ${this.what} is shared by trackers with different seenInterval values (${this.seenIntervalMs / 1000}s and ${hooks.seenIntervalMs / 1000}s). Give each tracker its own store, or the same seenInterval.`,
        );
      }
      this.seenIntervalMs = hooks.seenIntervalMs;
    }
    const initial = hooks?.initialRecord;
    if (initial !== undefined && initial.count > this.recordCount) this.setRecord(initial.count, initial.at.getTime());
    this.attachedTrackers.push({ reporter: config.reporter, hooks });
    this.open++;
    if (first) {
      this.thresholdMs = config.thresholdMs;
      this.roomLimits = rooms;
      this.start();
    }
    if (!this.transitionsWanted && wantsTransitions(hooks)) {
      this.transitionsWanted = true;
      this.transitionsStart();
    }
    if (!this.statusWanted && hooks?.onStatus !== undefined) {
      this.statusWanted = true;
      this.statusStart();
    }
    if (!this.roomsWanted && hooks?.onRoom !== undefined) {
      this.roomsWanted = true;
      this.roomsStart();
    }
  }

  /** The first tracker with `onRoom` attached (after `transitionsStart`). */
  protected roomsStart(): void {
    // As transitionsStart: only a store that decides transitions gets here.
  }

  /** The first tracker with `onStatus` attached (after `transitionsStart`; status is on, so `statuses` is set). */
  protected statusStart(): void {
    // As transitionsStart: only a store that decides transitions gets here.
  }

  /** The first tracker with `onOnline`, `onOffline`, `onStatus` or `onRoom` attached (after `start`): a store that decides transitions begins. */
  protected transitionsStart(): void {
    // A store without transitions never gets here: the tracker refuses the hooks.
  }

  /** Some tracker attached now has `onOnline`, `onOffline`, `onStatus` or `onRoom`: a transition given to this store would be told. */
  protected get tellsTransitions(): boolean {
    return this.attachedTrackers.some((t) => wantsTransitions(t.hooks));
  }

  /** Some tracker attached now has `onOnline`, `onOffline` or `onStatus`: users' comings and goings are this store's to tell. */
  protected get tellsUserTransitions(): boolean {
    return this.hears('onOnline') || this.hears('onOffline') || this.hears('onStatus');
  }

  /** Some tracker attached now has `hook`. */
  protected hears(hook: 'onOnline' | 'onOffline' | 'onStatus' | 'onRoom'): boolean {
    return this.attachedTrackers.some((t) => t.hooks?.[hook] !== undefined);
  }

  /** A user came online at `atMs` (ms since the epoch): `onOnline`, for every tracker that has it. */
  protected wentOnline(entry: StoredEntry, atMs: number): void {
    for (const t of this.attachedTrackers) if (t.hooks?.onOnline !== undefined) this.defer([t, 'onOnline', entry, new Date(atMs)]);
  }

  /** A user went offline at `atMs`: `onOffline`, for every tracker that has it. */
  protected wentOffline(entry: StoredEntry, atMs: number, why: OfflineReason): void {
    for (const t of this.attachedTrackers) if (t.hooks?.onOffline !== undefined) this.defer([t, 'onOffline', entry, new Date(atMs), why]);
  }

  /** An online user's status changed at `atMs` (time made them idle or away, activity active, or the app's state): `onStatus`. */
  protected statusChanged(entry: StoredEntry, atMs: number, status: OnlineStatus): void {
    for (const t of this.attachedTrackers) if (t.hooks?.onStatus !== undefined) this.defer([t, 'onStatus', entry, status, new Date(atMs)]);
  }

  /** A room's transition: `onRoom`, for every tracker that has it. */
  protected roomChanged(event: RoomEvent): void {
    for (const t of this.attachedTrackers) if (t.hooks?.onRoom !== undefined) this.defer([t, 'onRoom', event]);
  }

  /** Called once by each tracker as it closes: it hears nothing more, and the store stops with the last. */
  close(config?: StoreConfig): Awaitable<void> {
    if (this.open === 0) return undefined;
    const leaving = this.attachedTrackers.findIndex((t) => t.reporter === config?.reporter);
    if (leaving !== -1) {
      // Its hooks still waiting run now: what a store decided before the close is told (a RedisStore's last sync acknowledges them).
      const gone = this.attachedTrackers[leaving];
      const now = this.queue.filter(([t]) => t === gone);
      this.queue = this.queue.filter(([t]) => t !== gone);
      this.run(now);
      this.attachedTrackers.splice(leaving, 1);
    }
    this.open -= 1;
    if (this.open !== 0) return undefined;
    // Stopped: a tracker attaching later starts afresh, transitions too.
    this.transitionsWanted = false;
    this.statusWanted = false;
    this.roomsWanted = false;
    return this.stop();
  }

  record(): OnlineRecord {
    return this.recordView;
  }

  /** The record as the store now knows it (raised here, or read from a shared store). */
  protected setRecord(count: number, atMs: number): void {
    if (count === this.recordCount && atMs === this.recordAtMs) return;
    this.recordCount = count;
    this.recordAtMs = atMs;
    this.recordView = new RecordView(count, atMs);
  }

  /** This store raised the record: the trackers with `onRecord` hear of it. */
  protected recordRaised(count: number, atMs: number): void {
    this.setRecord(count, atMs);
    this.tellRecord(this.recordView);
  }

  /** The trackers with `onRecord` hear of a raise (one the store may have passed since). */
  protected tellRecord(record: OnlineRecord): void {
    for (const t of this.attachedTrackers) if (t.hooks?.onRecord !== undefined) this.defer([t, 'onRecord', record, undefined]);
  }

  /** The record as locals would show it. */
  protected recordOf(count: number, atMs: number): OnlineRecord {
    return new RecordView(count, atMs);
  }

  /** A logout at `at` in `index`; a user who was online gets one last `onSeen`, with their last activity. */
  protected forgetIn(index: PresenceIndex, key: string, at: number, users: boolean): boolean {
    const slot = index.slotOf(key);
    const last = slot === -1 ? -Infinity : index.timeOf(slot);
    const entry = users && last > at - this.thresholdMs && this.seenIntervalMs !== Infinity ? index.entryOf(slot) : undefined;
    const removed = index.forget(key, at);
    if (removed && entry !== undefined) this.seen(entry);
    return removed;
  }

  /** `onSeen` for an entry (see `PresenceIndex.entryOf`: its lastSeen is the activity's wall-clock time), for every tracker that has it. */
  protected seen(entry: StoredEntry): void {
    for (const t of this.attachedTrackers) {
      if (t.hooks?.onSeen !== undefined) this.defer([t, 'onSeen', entry, entry.lastSeen]);
    }
  }

  /**
   * Hooks run after the request that caused them has been handled (setImmediate),
   * so a slow hook never holds a page; a throw or a rejection is reported under
   * the hook's name, once until it next succeeds.
   */
  private defer(call: Call): void {
    if (this.queue.push(call) === 1) setImmediate(() => this.drain());
  }

  private drain(): void {
    const calls = this.queue;
    this.queue = [];
    this.run(calls);
  }

  private run(calls: readonly Call[]): void {
    for (const [t, name, a, b, c] of calls) {
      const fail = (error: unknown): void => t.reporter.report(name, error);
      try {
        const hook = t.hooks?.[name] as (a: unknown, b: unknown, c: unknown) => unknown;
        const result = hook(a, b, c);
        if (typeof (result as Promise<unknown> | undefined)?.then === 'function') {
          (result as Promise<unknown>).then(() => t.reporter.recovered(name), fail);
        } else {
          t.reporter.recovered(name);
        }
      } catch (error) {
        fail(error);
      }
    }
  }

  /** The store's state, or a message that says how to attach it. */
  protected attached<T>(state: T | undefined): T {
    if (state === undefined) {
      throw new OnlineNowConfigError('ERR_ONLINE_NOW_STORE_UNUSED', `this ${this.what} is not attached to a tracker: pass it as createOnlineTracker({ store }).`);
    }
    return state;
  }

  /** The first tracker attached: `thresholdMs` is set. */
  protected abstract start(): void;
  /** The last tracker closed. */
  protected abstract stop(): Awaitable<void>;
  abstract touch(scope: Scope, key: string, id: UserId, profile: Profile | undefined): Awaitable<void>;
  abstract forget(scope: Scope, key: string): Awaitable<void>;
  abstract view(scope: Scope, limit: number, viewer?: Viewer): Awaitable<ScopeView>;
  abstract resetRecord(): Awaitable<void>;
  abstract roomTouch(touch: RoomTouch, viewer: Viewer): Awaitable<RoomView>;
  abstract roomLeave(room: string, key: string, tab: string): Awaitable<void>;
  abstract roomView(room: string, viewer: Viewer): Awaitable<RoomView>;
  abstract roomLocks(viewer: Viewer, rooms?: readonly string[]): Awaitable<RoomLockState[]>;
}

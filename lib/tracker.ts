/**
 * createOnlineTracker: options in, a tracker out. The tracker owns the store,
 * turns users into store keys (through a UserResolver), and makes the middleware.
 */
import { checkPath, createClientRoutes, type ClientOptions } from './live/client-routes';
import { checkOrigins } from './express/same-origin';
import { EventHub, type EventsOptions } from './live/events';
import { Rooms, TabIds, type AskSettings, type HereOptions, type HereView } from './live/here';
import { Locks, type RequireLockOptions } from './live/locks';
import { boundedProfile, keyOf } from './core/identity';
import { Statuses, statusIn, type OnlineStatus } from './core/status';
import { STAFF } from './core/presence-index';
import { createMiddleware } from './express/middleware';
import { ErrorReporter, defaultErrorSink } from './core/report';
import { MemoryStore } from './stores/memory';
import { observeMetrics, prometheusText, type MeterLike, type MetricsSnapshot } from './core/metrics';
import { OnlineNowConfigError } from './core/errors';
import { randomBytes } from 'node:crypto';
import type { NextFunction, Request, Response } from 'express';
import { DEFAULT_ROOM_LIMITS, roomLimits } from './core/room-index';
import type {
  ClientConfig,
  DefaultProfile,
  NoAsyncGetUser,
  OfflineReason,
  OnlineEntry,
  OnlineMiddleware,
  OnlineRecord,
  OnlineTrackerOptions,
  Profile,
  RoomEvent,
  RoomLock,
  RoomLockState,
  ScopeView,
  Store,
  StoreConfig,
  StoredEntry,
  UserId,
  Viewer,
} from './core/types';
import { UserResolver } from './express/user-resolver';
import {
  checkOptions,
  checkStore,
  duration,
  integerAtLeast,
  optionalBoolean,
  optionalFunction,
  optionalLocale,
  optionalRecord,
  optionalSecret,
  optionNames,
} from './core/validations';

/** `status`, `idleAfter` and `awayAfter` checked together: the two windows in ms, or undefined with status off. */
function statusRule(options: { status?: unknown; idleAfter?: unknown; awayAfter?: unknown }): { idleMs: number; awayMs: number } | undefined {
  const { status, idleAfter, awayAfter } = options;
  if (status !== undefined && typeof status !== 'boolean' && typeof status !== 'function') {
    throw new OnlineNowConfigError('ERR_ONLINE_NOW_STATUS', `option "status" must be true, false or a function of the user, got ${typeof status}. For example: { status: true }.`);
  }
  if (status === undefined || status === false) {
    if (idleAfter !== undefined || awayAfter !== undefined) {
      throw new OnlineNowConfigError('ERR_ONLINE_NOW_STATUS', 'options "idleAfter" and "awayAfter" need status on: add { status: true }.');
    }
    return undefined;
  }
  const idleMs = duration('idleAfter', idleAfter ?? 300, 's', 300);
  // Default: 10 minutes, or twice idleAfter when that is longer (a day at most, as every duration).
  const awayMs = duration('awayAfter', awayAfter ?? Math.min(86_400, Math.max(600, (2 * idleMs) / 1000)), 's', 600);
  if (awayMs <= idleMs) {
    throw new OnlineNowConfigError(
      'ERR_ONLINE_NOW_AWAYAFTER',
      `option "awayAfter" (${awayMs / 1000}s) must be longer than idleAfter (${idleMs / 1000}s). For example: { idleAfter: '5m', awayAfter: '10m' }.`,
    );
  }
  return { idleMs, awayMs };
}

/** For `list`, `isOnline` and `lastSeen`: `{ hidden: true }` answers for hidden users too, as staff see them. */
export interface LookupOptions {
  hidden?: boolean;
}

/** Everything counted, as of now. */
export interface OnlineCounts {
  /** Signed-in users online, hidden ones left out (`onlineCount`). */
  readonly users: number;
  /** Signed-in users online in invisible mode (`onlineHidden`). */
  readonly hidden: number;
  /** Guests (`onlineGuests`; 0 unless `trackGuests`). */
  readonly guests: number;
  /** Kinds of crawlers (`onlineBots`; 0 unless `trackGuests`). */
  readonly bots: number;
}

const clientOptions = optionNames<ClientOptions>({ path: true, origins: true });

const viewerFor = (options: LookupOptions | undefined): Viewer | undefined => (options?.hidden === true ? STAFF : undefined);

const trackerOptions = optionNames<OnlineTrackerOptions>({
  threshold: true,
  max: true,
  store: true,
  getUser: true,
  getId: true,
  profile: true,
  trackGuests: true,
  skip: true,
  locale: true,
  onError: true,
  hidden: true,
  canSeeHidden: true,
  isBot: true,
  onSeen: true,
  seenInterval: true,
  onOnline: true,
  onOffline: true,
  onStatus: true,
  onRoom: true,
  onRecord: true,
  initialRecord: true,
  roomThreshold: true,
  maxRooms: true,
  maxRoomMembers: true,
  secret: true,
  publicHiddenCount: true,
  askWait: true,
  askGrace: true,
  askHandOver: true,
  canReleaseLocks: true,
  status: true,
  idleAfter: true,
  awayAfter: true,
});

export class OnlineTracker<U = unknown, P extends object = DefaultProfile> {
  /** Seconds a user stays online after their last request. */
  readonly threshold: number;
  /** How many entries `onlineNow` and `list()` give by default. */
  readonly max: number;
  readonly store: Store;
  readonly trackGuests: boolean;
  /** Seconds a room tab stays after its last heartbeat. */
  readonly roomThreshold: number;
  readonly #resolver: UserResolver;
  readonly #rooms: Rooms;
  readonly #locks: Locks;
  readonly #hubs: EventHub[] = [];
  #client: ClientConfig | undefined;
  #secretGiven: boolean;
  readonly #publicHiddenCount: boolean;
  /** With `status` on: the rule entries and lookups read statuses by. */
  readonly #statuses: Statuses | undefined;
  #closed = false;
  /** What this tracker gave the store's `init`: it says which tracker leaves at `close`. */
  readonly #storeConfig: StoreConfig;

  constructor(given?: OnlineTrackerOptions<U, P> & NoAsyncGetUser<U>) {
    const options: OnlineTrackerOptions<U, P> = given ?? {};
    checkOptions('createOnlineTracker()', options, trackerOptions);
    this.threshold = duration('threshold', options.threshold ?? 900, 's', 900) / 1000;
    this.max = integerAtLeast('max', options.max ?? 50, 0, '50');
    optionalFunction('getUser', options.getUser, '(req) => user');
    optionalFunction('getId', options.getId, '(user) => id');
    optionalFunction('profile', options.profile, '(user) => ({ name: user.name })');
    optionalFunction('skip', options.skip, '(req) => boolean');
    optionalFunction('onError', options.onError, '(error) => void');
    optionalFunction('hidden', options.hidden, '(user) => boolean');
    optionalFunction('canSeeHidden', options.canSeeHidden, '(req) => boolean');
    optionalFunction('isBot', options.isBot, '(req) => boolean or a bot name');
    optionalFunction('onSeen', options.onSeen, '(user, date) => void (or a Promise)');
    optionalFunction('onRecord', options.onRecord, '(record) => void (or a Promise)');
    optionalFunction('onOnline', options.onOnline, '(user, date) => void (or a Promise)');
    optionalFunction('onOffline', options.onOffline, "(user, date, why: 'logout' | 'expired' | 'evicted') => void (or a Promise)");
    optionalFunction('onStatus', options.onStatus, '(user, status, date) => void (or a Promise)');
    optionalFunction('onRoom', options.onRoom, "({ type: 'join' | 'leave' | 'lock' | 'unlock', room, user, at, why }) => void (or a Promise)");
    optionalFunction('askHandOver', options.askHandOver, '(lock) => boolean');
    optionalFunction('canReleaseLocks', options.canReleaseLocks, '(req) => boolean');
    const askHandOver = options.askHandOver ?? ((lock: RoomLock) => lock.away === true || lock.status === 'idle' || lock.status === 'away');
    const asks: AskSettings = {
      waitMs: duration('askWait', options.askWait ?? 60, 's', 60),
      graceMs: duration('askGrace', options.askGrace ?? 10, 's', 10),
      handOver: (lock) => askHandOver(this.#withHolderStatus(lock)),
    };
    const seenIntervalMs = duration('seenInterval', options.seenInterval ?? 60, 's', 60);
    this.roomThreshold = duration('roomThreshold', options.roomThreshold ?? DEFAULT_ROOM_LIMITS.activeMs / 1000, 's', 30) / 1000;
    const maxRooms = integerAtLeast('maxRooms', options.maxRooms ?? DEFAULT_ROOM_LIMITS.maxRooms, 1, '1000');
    const maxRoomMembers = integerAtLeast('maxRoomMembers', options.maxRoomMembers ?? DEFAULT_ROOM_LIMITS.maxMembers, 1, '50');
    const initialRecord = optionalRecord(options.initialRecord);
    optionalBoolean('trackGuests', options.trackGuests);
    optionalBoolean('publicHiddenCount', options.publicHiddenCount);
    this.#publicHiddenCount = options.publicHiddenCount === true;
    optionalLocale(options.locale);
    if (options.store !== undefined) checkStore(options.store);
    const status = statusRule(options);

    const reporter = new ErrorReporter(options.onError ?? defaultErrorSink);
    this.#resolver = new UserResolver(options, reporter);
    this.store = options.store ?? new MemoryStore();
    const store = this.store;
    const transitionHooks = [options.onOnline, options.onOffline, options.onStatus, options.onRoom];
    if (transitionHooks.some((hook) => hook !== undefined) && store.transitions !== true) {
      throw new OnlineNowConfigError(
        'ERR_ONLINE_NOW_TRANSITIONS',
        'onOnline, onOffline, onStatus and onRoom need a store that decides when a user comes and goes: MemoryStore (one process) or RedisStore (several); a custom store declares it with `transitions: true`.',
      );
    }
    if (options.onStatus !== undefined && status === undefined) {
      throw new OnlineNowConfigError('ERR_ONLINE_NOW_STATUS', 'option "onStatus" needs status on: add { status: true }.');
    }
    this.#statuses = status && new Statuses(status.idleMs, status.awayMs, () => store.dateNow?.() ?? Date.now());
    this.#resolver.statuses = this.#statuses;
    this.#storeConfig = {
      thresholdMs: this.threshold * 1000,
      reporter,
      hooks: {
        onSeen: options.onSeen as ((entry: StoredEntry, at: Date) => unknown) | undefined,
        seenIntervalMs,
        onOnline: options.onOnline as ((entry: StoredEntry, at: Date) => unknown) | undefined,
        onOffline: options.onOffline as ((entry: StoredEntry, at: Date, why: OfflineReason) => unknown) | undefined,
        onStatus: options.onStatus as ((entry: StoredEntry, status: OnlineStatus, at: Date) => unknown) | undefined,
        onRoom: options.onRoom as ((event: RoomEvent) => unknown) | undefined,
        onRecord: options.onRecord,
        initialRecord,
      },
      rooms: roomLimits(this.roomThreshold * 1000, maxRooms, maxRoomMembers),
      statuses: this.#statuses,
    };
    this.store.init(this.#storeConfig);
    this.#secretGiven = options.secret !== undefined;
    this.#rooms = new Rooms(this.store, this.#resolver, new TabIds(optionalSecret(options.secret) ?? randomBytes(32)), asks);
    this.#locks = new Locks(this.#rooms, this.#resolver, options.canReleaseLocks);
    this.trackGuests = options.trackGuests ?? false;
  }

  /** Express middleware: marks the request's user online and sets the `res.locals` of the contract. */
  middleware(): OnlineMiddleware {
    return createMiddleware({
      store: this.store,
      max: this.max,
      trackGuests: this.trackGuests,
      resolver: this.#resolver,
      client: () => this.#client,
      publicHiddenCount: this.#publicHiddenCount,
      statuses: this.#statuses,
    });
  }

  /**
   * Puts the request's user in `room` (such as `order:123`) as one tab, this
   * page view, and sets `res.locals.onlineHere` (who is here, in the order they
   * came), `onlineHereCount`, `onlineHereLock` (who holds the editing lock, or
   * null) and what the client script needs. `{ mode: 'editing' }` asks for the
   * lock: the first editor holds it until their tab stops beating or someone takes over.
   * A signed-out reader sees the room without joining it.
   */
  here(req: Request, room: string, options?: HereOptions): Promise<HereView> {
    return this.#rooms.here(req, room, options);
  }

  /**
   * Middleware for a write route: only the holder of `room`'s editing lock gets
   * through (decided on the server's clock; with RedisStore, confirmed with
   * Redis at the moment of the write). Others get 423 with who holds it, as JSON
   * or HTML; a write while Redis cannot be reached gets 503 ("cannot confirm
   * the lock"). `room` is a name or `(req) => name`.
   */
  requireLock(room: string | ((req: Request) => string), options?: RequireLockOptions<Request, Response>): (req: Request, res: Response, next: NextFunction) => void {
    return this.#locks.requireLock(room, options);
  }

  /** After a save: every other page open on `room` shows who saved it and when ("changed while you were looking"). */
  changed(req: Request, room: string): Promise<boolean> {
    return this.#locks.changed(req, room);
  }

  /** Staff end `room`'s editing lock; false unless `canReleaseLocks(req)` allows it. */
  release(req: Request, room: string): Promise<boolean> {
    return this.#locks.release(req, room);
  }

  /** Who holds which lock, since when, whether their page is away, and any ask: every locked room, or the `rooms` named. */
  locks(rooms?: readonly string[]): Promise<RoomLockState[]> {
    return this.#locks.locks(rooms);
  }

  /** A list view's lock badges in one call, as the request's user may see them; also `res.locals.onlineLocks`. */
  lockBadges(req: Request, rooms: readonly string[]): Promise<Record<string, RoomLock | null>> {
    return this.#locks.lockBadges(req, rooms);
  }

  /**
   * The browser side: serves \`{path}/client.js\` and takes its heartbeats
   * (\`{path}/beat\`) and leaves (\`{path}/leave\`). Mount it after the session
   * middleware: \`app.use(online.client())\`. Templates render its tag with the
   * \`onlineScript\` helper.
   */
  client(options: ClientOptions = {}): (req: Request, res: Response, next: NextFunction) => void {
    checkOptions('client()', options, clientOptions);
    this.#rooms.roomStore(); // a store without rooms fails here, at startup, not at the first heartbeat
    if (this.store.sharedAcrossProcesses === true && !this.#secretGiven) {
      throw new OnlineNowConfigError(
        'ERR_ONLINE_NOW_SECRET',
        'client() with a store shared across processes (RedisStore) needs the same `secret` in every process, so a tab minted by one is recognised by the others: createOnlineTracker({ store, secret: process.env.SESSION_SECRET }).',
      );
    }
    const path = checkPath(options.path ?? '/online-now');
    const interval = Math.max(1000, Math.round((this.roomThreshold * 1000) / 3));
    this.#client = Object.freeze({
      src: `${path}/client.js`,
      beat: `${path}/beat`,
      leave: `${path}/leave`,
      events: `${path}/events`,
      interval,
      ...(this.#statuses && { activeEvery: this.#statuses.signalMs }),
    });
    return createClientRoutes(path, checkOrigins('client()', options.origins), this.store, this.#resolver, this.#rooms);
  }

  /**
   * Server-Sent Events for live pages: counts, the online list, badges and
   * rooms, as JSON and as ready HTML. Mount it at \`{client path}/events\`:
   * \`app.get('/online-now/events', online.events())\`. Its \`connections\`
   * says how many streams it holds now.
   */
  events(options?: EventsOptions): ((req: Request, res: Response, next: NextFunction) => void) & { readonly connections: number } {
    const hub = new EventHub(
      {
        store: this.store,
        resolver: this.#resolver,
        rooms: this.#rooms,
        max: this.max,
        trackGuests: this.trackGuests,
        publicHiddenCount: this.#publicHiddenCount,
        statuses: this.#statuses,
      },
      options,
    );
    this.#hubs.push(hub);
    const handler = hub.handler() as unknown as (req: Request, res: Response, next: NextFunction) => void;
    return Object.defineProperty(handler, 'connections', { get: () => hub.size, enumerable: true }) as typeof handler & { readonly connections: number };
  }

  /**
   * Marks a user online now, for activity outside the middleware (a websocket
   * message, an API call). Resolves to whether the user was tracked: `false`
   * for something that is not a valid user or id.
   */
  async touch(userOrId: U | UserId, profile?: P): Promise<boolean> {
    const who = this.#resolver.identify(userOrId);
    if (who === undefined) return false;
    let stored: Profile | undefined;
    if (profile !== undefined) stored = boundedProfile(profile);
    else if (typeof userOrId === 'object' && userOrId !== null) {
      stored = this.#resolver.profileOf(userOrId);
      if (stored === undefined) return false; // the app's `profile` threw (reported)
    }
    // A bare id without a profile keeps what is stored, visibility and status included (presence, not activity).
    if (stored !== undefined) stored = this.#resolver.activity(userOrId, this.#resolver.visibility(userOrId, stored));
    await this.store.touch('users', who.key, who.id, stored);
    return true;
  }

  /** Takes a user offline at once: call it on logout. Nothing (a session without a user) is ignored. */
  async forget(userOrId: U | UserId | null | undefined): Promise<void> {
    const who = this.#resolver.identify(userOrId);
    if (who === undefined) return;
    // Their live pages' streams end too: the browser reconnects as whoever it is now (signed out).
    for (const hub of this.#hubs) hub.endFor(who.key);
    await this.store.forget('users', who.key);
  }

  /** Exact number of distinct users online, hidden ones left out. */
  async count(): Promise<number> {
    return (await this.store.view('users', 0)).count;
  }

  /** Users (visible and hidden), guests and kinds of bots online. */
  async counts(): Promise<OnlineCounts> {
    const [users, guests, bots] = await this.#scopeViews();
    return { users: users.count, hidden: users.hidden, guests: guests.count, bots: bots.count };
  }

  /** Users, guests and bots, each as a count-only view: what counts() and metrics() read. */
  #scopeViews(): Promise<[ScopeView, ScopeView, ScopeView]> {
    return Promise.all([this.store.view('users', 0), this.store.view('guests', 0), this.store.view('bots', 0)]);
  }

  /** Online users, most recently active first; hidden ones only with `{ hidden: true }` (marked `hidden`). */
  async list(limit: number = this.max, options?: LookupOptions): Promise<OnlineEntry<P>[]> {
    const size = Number.isSafeInteger(limit) && limit > 0 ? limit : 0;
    return [...(await this.store.view('users', size, viewerFor(options))).entries] as unknown as OnlineEntry<P>[];
  }

  /** For a user, an id, or an entry of `list()` / `onlineNow`. A hidden user is offline unless `{ hidden: true }`. */
  async isOnline(userOrId: U | UserId | OnlineEntry<P>, options?: LookupOptions): Promise<boolean> {
    return (await this.lastSeen(userOrId, options)) !== null;
  }

  async lastSeen(userOrId: U | UserId | OnlineEntry<P>, options?: LookupOptions): Promise<Date | null> {
    const key = this.#resolver.keyFor(userOrId);
    if (key === undefined) return null;
    const seen = (await this.store.view('users', 0, viewerFor(options))).lastSeen(key);
    return seen === null ? null : new Date(seen);
  }

  /**
   * The lock with its holder's status, for `askHandOver` (status on). Read from
   * the store's view when it answers at once (always in memory; RedisStore once warm).
   */
  #withHolderStatus(lock: RoomLock): RoomLock {
    const key = keyOf(lock.id);
    if (this.#statuses === undefined || key === undefined) return lock;
    const view = this.store.view('users', 0, STAFF);
    if (typeof (view as Promise<unknown>).then === 'function') return lock;
    return { ...lock, status: statusIn(view as ScopeView, key, this.#statuses) };
  }

  /** `active`, `idle`, `away` (or the app's own state) or `offline`; a hidden user is offline unless `{ hidden: true }`. Without `status` on, online users are active. */
  async onlineStatus(userOrId: U | UserId | OnlineEntry<P>, options?: LookupOptions): Promise<OnlineStatus> {
    const key = this.#resolver.keyFor(userOrId);
    if (key === undefined) return 'offline';
    return statusIn(await this.store.view('users', 0, viewerFor(options)), key, this.#statuses);
  }

  /**
   * Presence in Prometheus's text format: online by kind, the record, live
   * streams, and a shared store's syncs. Serve it on the app's metrics route.
   */
  async metrics(): Promise<string> {
    return prometheusText(await this.#metricsSnapshot());
  }

  /**
   * The same figures as OpenTelemetry observable gauges on the app's `meter`
   * (from @opentelemetry/api's `metrics.getMeter(...)`), read at each
   * collection. Returns a function that stops observing.
   */
  observe(meter: MeterLike): () => void {
    const m = meter as Partial<MeterLike> | null;
    if (typeof m?.createObservableGauge !== 'function' || typeof m.addBatchObservableCallback !== 'function') {
      throw new OnlineNowConfigError(
        'ERR_ONLINE_NOW_METER',
        "observe(meter) takes an OpenTelemetry Meter with batch callbacks (addBatchObservableCallback), such as metrics.getMeter('my-app') from @opentelemetry/api.",
      );
    }
    return observeMetrics(meter, () => this.#metricsSnapshot());
  }

  async #metricsSnapshot(): Promise<MetricsSnapshot> {
    const [users, guests, bots] = await this.#scopeViews();
    const record = this.record();
    return {
      members: users.count,
      hidden: users.hidden,
      guests: guests.count,
      bots: bots.count,
      statuses: this.#statuses === undefined ? undefined : users.statusCounts?.(),
      record: record.count,
      recordAtSeconds: record.at.getTime() / 1000,
      streams: this.#hubs.reduce((n, hub) => n + hub.size, 0),
      locks: await this.#lockCounts(),
      sync: this.store.syncStats?.(),
    };
  }

  /** Every locked room, as staff see it (a hidden holder counts): one store call. Undefined without rooms. */
  async #lockCounts(): Promise<{ held: number; asks: number } | undefined> {
    if (this.store.roomLocks === undefined || this.store.roomsProblem?.() !== undefined) return undefined;
    const locked = await this.store.roomLocks({ seesHidden: true });
    return { held: locked.length, asks: locked.filter((l) => l.request !== null && !l.request.declined).length };
  }

  /** The most users and guests ever online at once (bots excluded), and when. */
  record(): OnlineRecord {
    return this.store.record?.() ?? { count: 0, at: new Date(0) };
  }

  /** Starts the record over from the number online now (in Redis, for every process). */
  async resetRecord(): Promise<void> {
    await this.store.resetRecord?.();
  }

  /** Detaches from the store, which stops when its last tracker closes. A client passed to a store is left open. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const hub of this.#hubs) hub.close();
    await this.store.close(this.#storeConfig);
  }
}

/** Creates a tracker; see OnlineTrackerOptions for every option and its default. */
export function createOnlineTracker<U = unknown, P extends object = DefaultProfile>(options?: OnlineTrackerOptions<U, P> & NoAsyncGetUser<U>): OnlineTracker<U, P> {
  return new OnlineTracker<U, P>(options);
}

import type { Request } from 'express';
import type { StatusCounts, SyncStats } from './metrics';
import type { OnlineStatus, Statuses } from './status';

/** A user's id as the app knows it. `42` and `"42"` name the same user. */
export type UserId = string | number;

/** A value that survives JSON: what a profile may carry. */
export type ProfileValue = string | number | boolean | null;

/** What each `onlineNow` entry carries besides `id` and `lastSeen`. */
export type Profile = Readonly<Record<string, ProfileValue>>;

/** The profile kept by default: whichever of these the user object has. */
export interface DefaultProfile {
  readonly username?: string;
  readonly name?: string;
  readonly displayName?: string;
}

/** One online user, as templates see it. */
export type OnlineEntry<P extends object = DefaultProfile> = Readonly<P> & {
  readonly id: UserId;
  readonly lastSeen: Date;
  /** True for a user in invisible mode, listed only to themselves and to staff. */
  readonly hidden?: true;
  /** With `status` on: active, idle or away (or the app's own state), as of each read. */
  readonly status?: OnlineStatus;
  /** With `status` on: the user's last activity (a request, or input on a visible page), to a step of a minute at most. */
  readonly lastActive?: Date;
};

/** A value or a promise of it: memory stores answer at once, networked ones may not. */
export type Awaitable<T> = T | Promise<T>;

/**
 * Presence is kept per scope: signed-in users, guests, and crawlers (one key per
 * kind of bot); the same interface leaves room for narrower scopes (one room) later.
 */
export type Scope = 'users' | 'guests' | 'bots';

/** Who a view is for: invisible users are left out unless the viewer may see them, or is them. */
export interface Viewer {
  /** Staff: hidden users are listed and answered for, marked `hidden: true`. */
  readonly seesHidden: boolean;
  /** The viewer's own key: a hidden user sees themselves online. */
  readonly self?: string | undefined;
  /**
   * Set by a store that has lost touch with other processes: users last seen at
   * or before this time (store time) are left out for a viewer who does not see
   * hidden users, as they may have hidden meanwhile (privacy fails closed).
   */
  readonly withheldUpTo?: number | undefined;
}

/** The most users and guests ever online at once (bots excluded), and when. */
export interface OnlineRecord {
  readonly count: number;
  readonly at: Date;
}

/** An entry as a store holds it: the bounded profile's fields, plus `id` and `lastSeen`. */
export interface StoredEntry {
  readonly id: UserId;
  readonly lastSeen: Date;
  readonly [field: string]: ProfileValue | Date;
}

/** One scope's presence at one instant: what a single page is rendered from. */
export interface ScopeView {
  /** Exact number of distinct keys online, hidden ones left out. */
  readonly count: number;
  /** How many of the keys online are hidden (invisible mode). */
  readonly hidden: number;
  /** Most recently active first, at most the limit asked for. */
  readonly entries: readonly StoredEntry[];
  /** The entries' ids, in the same order, when the store keeps them ready (else the middleware maps `entries`). */
  readonly ids?: readonly UserId[];
  /** Last-seen time (ms since the epoch) of any key in this scope, or `null` when it is not online (or hidden from this viewer). */
  lastSeen(key: string): number | null;
  /** The profile of any key online (as `lastSeen` sees it), or `null`: what `onlineStatus` reads. A store without it shows every user online as active. */
  profile?(key: string): Profile | null;
  /** With `status` on, users online and not hidden by status (what `metrics()` reports); undefined when off. */
  statusCounts?(): StatusCounts | undefined;
}

/** Where a store reports failures it meets outside any request (a background sync). */
export interface StoreReporter {
  report(kind: string, error: unknown): void;
  recovered(kind: string): void;
}

/** What a tracker asks its store to tell it, always outside any request. */
export interface StoreHooks {
  /** A user's activity, at most once per `seenIntervalMs` per user across every process, and on `forget`. */
  readonly onSeen?: ((entry: StoredEntry, at: Date) => unknown) | undefined;
  readonly seenIntervalMs: number;
  /** A user came online (was not, by the threshold, or had signed out): once per transition. */
  readonly onOnline?: ((entry: StoredEntry, at: Date) => unknown) | undefined;
  /** A user went offline, and why: once per transition, after the one that brought them online. */
  readonly onOffline?: ((entry: StoredEntry, at: Date, why: OfflineReason) => unknown) | undefined;
  /** An online user's status changed (status on): once per change, between their `onOnline` and `onOffline`. */
  readonly onStatus?: ((entry: StoredEntry, status: OnlineStatus, at: Date) => unknown) | undefined;
  /** Someone came into or left a room, or took or lost its editing lock: once per transition. */
  readonly onRoom?: ((event: RoomEvent<StoredEntry>) => unknown) | undefined;
  /** The record was raised (by this process, when presence is shared). */
  readonly onRecord?: ((record: OnlineRecord) => unknown) | undefined;
  /** Where the record starts when the store has none (the app persisted it). */
  readonly initialRecord?: OnlineRecord | undefined;
}

/** Why a user went offline: signed out (`forget`), not seen for the threshold, or dropped to keep `maxTracked`. */
export type OfflineReason = 'logout' | 'expired' | 'evicted';

/** Why someone left a room: their last tab there left (its page closed, or they signed out), stopped beating for its window, or was dropped to keep `maxRoomMembers`/`maxRooms`. */
export type RoomLeaveReason = 'left' | 'expired' | 'evicted';

/**
 * A room's transition (`onRoom`). `user` is the person as their latest tab in
 * the room had them (its `lastSeen` is that tab's last heartbeat). `join` and
 * `leave` alternate for one user in one room; `lock` and `unlock` for its
 * editing lock, by user (a takeover is the old holder's `unlock`, then the new
 * holder's `lock`, at one moment).
 */
export type RoomEvent<E = StoredEntry> =
  | { readonly type: 'join'; readonly room: string; readonly user: E; readonly at: Date }
  | { readonly type: 'leave'; readonly room: string; readonly user: E; readonly at: Date; readonly why: RoomLeaveReason }
  | { readonly type: 'lock' | 'unlock'; readonly room: string; readonly user: E; readonly at: Date };

/** Settings the tracker hands its store before first use. */
export interface StoreConfig {
  /** Milliseconds a key stays online after its last touch. */
  readonly thresholdMs: number;
  readonly reporter: StoreReporter;
  readonly hooks?: StoreHooks | undefined;
  /** Rooms' threshold and bounds (default: 30 s, 1,000 rooms of 50 tabs). */
  readonly rooms?: RoomLimits | undefined;
  /** With `status` on: how entries read a status from their profile's activity time. */
  readonly statuses?: Statuses | undefined;
}

/**
 * Where presence lives. The middleware needs only these calls; each may answer
 * synchronously (the memory store always does, so a request costs no promise)
 * or with a promise (a networked store on a cold start).
 */
export interface Store {
  /**
   * Presence is shared between processes (each holds a replica): tab ids must
   * then be signed with one `secret` everywhere. Default false (one process).
   */
  readonly sharedAcrossProcesses?: boolean;
  /** The store calls `onOnline`, `onOffline` and `onStatus` (StoreHooks): a tracker with them needs such a store. */
  readonly transitions?: boolean;
  /** How often, in ms, a process learns what other processes did (a shared store); absent: at once. */
  readonly syncInterval?: number;
  /** A shared store's syncs so far, for `tracker.metrics()`. */
  syncStats?(): SyncStats;
  /** Called once by each tracker that uses the store; throws if the config conflicts. */
  init(config: StoreConfig): void;
  /** Marks `key` online now. `profile` undefined keeps the profile already stored. */
  touch(scope: Scope, key: string, id: UserId, profile: Profile | undefined): Awaitable<void>;
  /** Takes `key` offline at once. */
  forget(scope: Scope, key: string): Awaitable<void>;
  /** A consistent view of `scope` for `viewer` (default: sees no hidden user), listing at most `limit` entries. */
  view(scope: Scope, limit: number, viewer?: Viewer): Awaitable<ScopeView>;
  /** The most users and guests online at once so far (a store without one: the middleware shows none). */
  record?(): OnlineRecord;
  /** Now (ms since 1970) on the clock the store's dates are on: `timeAgo` measures from it (default `Date.now()`). */
  dateNow?(): number;
  /** Starts the record over from the number online now. */
  resetRecord?(): Awaitable<void>;
  /**
   * Called once by each tracker as it closes, with the config it gave `init`:
   * that tracker hears nothing more. The store stops its timers with the last
   * tracker; it never closes a client it was given.
   */
  close(config?: StoreConfig): Awaitable<void>;
  /** Rooms (`tracker.here()`): a tab's heartbeat, and the room as `viewer` then sees it. A store without rooms cannot serve `here()`. */
  roomTouch?(touch: RoomTouch, viewer: Viewer): Awaitable<RoomView>;
  /** A tab left its room (its page closed). */
  roomLeave?(room: string, key: string, tab: string): Awaitable<void>;
  roomView?(room: string, viewer: Viewer): Awaitable<RoomView>;
  /** Rooms' locks as `viewer` may see them: the named rooms' (locked or not), or every locked room's. */
  roomLocks?(viewer: Viewer, rooms?: readonly string[]): Awaitable<RoomLockState[]>;
  /**
   * A store shared across processes: resolves once one exchange with the shared
   * state, begun after this call, has sent this process's writes and brought
   * every other process's (so a decision taken next from the replica is right
   * as of now); rejects when the shared state cannot be reached. Concurrent
   * callers share one exchange. Absent: the store is the state itself (one process).
   */
  confirm?(): Promise<void>;
  /**
   * Why rooms cannot work with this store as configured, if they cannot (say,
   * a sync too slow for the room threshold). Asked when an app first uses
   * rooms, so an app without them is not held to it.
   */
  roomsProblem?(): Error | undefined;
}

/** The parts of a request the tracker reads. Structural, so Express 4 and 5 both fit. */
export interface OnlineRequest {
  headers: { cookie?: string | undefined; 'user-agent'?: string | undefined };
  session?: unknown;
  user?: unknown;
  /** Express's: the request came over HTTPS, so the guest cookie is marked Secure. */
  secure?: boolean;
  method?: string;
  /** Express's: the path asked for, whichever router the middleware is mounted on. */
  originalUrl?: string;
  url?: string;
}

/** The parts of a response the tracker writes. */
export interface OnlineResponse {
  locals: Record<string, unknown>;
  /** Express's response is an EventEmitter: a guest who signs in is switched over on 'finish'. */
  once?(event: 'finish', listener: () => void): unknown;
  /** To give a new guest their cookie (with `trackGuests`). */
  headersSent?: boolean;
  getHeader?(name: string): unknown;
  setHeader?(name: string, value: string[]): unknown;
}

export type NextFunction = (err?: unknown) => void;

export type OnlineMiddleware = (req: OnlineRequest, res: OnlineResponse, next: NextFunction) => void;

/** A duration option: a number in the option's documented unit, or a string with its own unit (`'15m'`, `'250ms'`, `'1.5s'`). */
type Duration = number | `${number}${'ms' | 's' | 'm' | 'h' | 'd'}`;

/**
 * `getUser` must return the user itself: a Promise-returning (async) one fails
 * the type check with this message, as it would be refused on every request.
 */
export type NoAsyncGetUser<U> = [U] extends [PromiseLike<unknown>]
  ? { getUser: 'getUser must return the user (or id) itself, not a Promise: read it from the session, synchronously' }
  : unknown;

export interface OnlineTrackerOptions<U = unknown, P extends object = DefaultProfile> {
  /**
   * How long a user counts as online after their last request: a number of
   * seconds, or a string with its unit (`'15m'`, `'90s'`). Default 900 (15
   * minutes). Over a day is refused (`900000` was likely meant as milliseconds).
   */
  threshold?: Duration;
  /** How many of the most recently active users `onlineNow` lists. Counting is never capped. Default 50. */
  max?: number;
  /** Where presence lives. Default: a new `MemoryStore()`. */
  store?: Store;
  /** The signed-in user of a request (object or bare id); `undefined`/`null` means signed out. Its type is the app's user type. */
  getUser?: (req: Request) => U | null | undefined;
  /** The user's id: a finite number or a non-empty string. */
  getId?: (user: U) => unknown;
  /** What each `onlineNow` entry carries; reduced to flat JSON values. */
  profile?: (user: U) => P;
  /**
   * Also count signed-out visitors, from their first request: each browser gets
   * a cookie of the package's own (`online_now_guest`, a random id; the store
   * keeps only a hash of it). No session is needed. Default false.
   */
  trackGuests?: boolean;
  /** Requests that neither mark anyone online nor get locals. */
  skip?: (req: Request) => boolean;
  /**
   * The language `timeAgo` speaks: a BCP 47 tag, or a function of the request
   * (for `Accept-Language`: `(req) => req.acceptsLanguages('en', 'de')`).
   * Default: `res.locals.locale` when the app sets it, else "en".
   */
  locale?: string | ((req: Request) => string | false | null | undefined);
  /** Where errors from the store or your callbacks go, once per kind until it recovers. Default: `console.warn`. */
  onError?: (error: Error) => void;
  /**
   * Invisible mode: read on every request, so hiding takes effect at once. A
   * hidden user is left out of every other viewer's locals, exactly as if
   * offline; they still see themselves, and staff see them (`entry.hidden`).
   * A `hidden` that throws hides (and is reported).
   */
  hidden?: (user: U) => boolean;
  /** Staff who see hidden users, marked `hidden: true` in their entries. Default: nobody. */
  canSeeHidden?: (req: Request) => boolean;
  /**
   * Crawlers: never a guest, never in the record, counted apart in `onlineBots`
   * (one per kind of bot). Return a name to count bots by it. Default: the `isbot` list.
   */
  isBot?: (req: Request) => boolean | string;
  /**
   * A durable "last seen": called outside any request at most once per user per
   * `seenInterval` across every process, and once more on `forget()`. Write it to
   * your database; a slow or failing hook delays and fails nothing.
   */
  onSeen?: (user: OnlineEntry<P>, date: Date) => unknown;
  /** Time between two `onSeen` calls for one user: seconds, or a string with its unit (`'5m'`). Default 60. */
  seenInterval?: Duration;
  /**
   * A user came online: signed in, or back after the threshold or a logout.
   * Called outside any request, once per transition, and before the
   * `onOffline` that ends it. An invisible user's entry says `hidden: true`.
   * Told of users who come online once a tracker with it has attached to the
   * store.
   */
  onOnline?: (user: OnlineEntry<P>, at: Date) => unknown;
  /**
   * A user went offline, `at` when they did: `'logout'` (`forget()`),
   * `'expired'` (not seen for the threshold: `at` is their last request plus
   * the threshold, told within a few seconds of it), or `'evicted'` (dropped to
   * keep `maxTracked`). Once per transition, after its `onOnline`.
   */
  onOffline?: (user: OnlineEntry<P>, at: Date, why: OfflineReason) => unknown;
  /**
   * An online user's status changed (needs `status`): `'idle'` and `'away'`
   * as time passes without their activity (`at` is the moment it did, told
   * within a step of it: a tenth of `idleAfter`, a minute at most),
   * `'active'` at their next activity, or the app's own state. Once per
   * change, between the `onOnline` that began their visit and the
   * `onOffline` that ends it, in order with both. (An entry's `status` is
   * read at each read, so it is the user's status when read, not then.)
   */
  onStatus?: (user: OnlineEntry<P>, status: OnlineStatus, at: Date) => unknown;
  /**
   * A room's transition: someone came into a room (`here()`: their first tab
   * there), left it (`why`: `'left'` when their last tab left or they signed
   * out, `'expired'` when it stopped beating for its window, `at` its end;
   * `'evicted'`), or took or lost its editing lock (`lock`, `unlock`). Once per
   * transition, outside any request; with RedisStore decided in Redis across
   * processes, as `onOnline` is. People in a room before a tracker with it
   * attached (or back after Redis lost its data) are taken as they are, untold.
   */
  onRoom?: (event: RoomEvent<OnlineEntry<P>>) => unknown;
  /** Called when the record of users and guests online at once is raised (by one process when shared). */
  onRecord?: (record: OnlineRecord) => unknown;
  /** The record to start from, as `onRecord` last gave it (persisted by your app). */
  initialRecord?: { count: number; at: Date | number | string };
  /** How long a tab stays in a room (`here()`) after its last heartbeat: seconds, or a string with its unit. Default 30 (the client beats every third of it while visible); a background tab stays 5 × as long. */
  roomThreshold?: Duration;
  /** Rooms kept at once; past it the least recently active room that nobody is in is forgotten (a room with a live tab stays). Default 1000. */
  maxRooms?: number;
  /** Tabs kept per room; past it the least recently active tab is dropped first. Default 50. */
  maxRoomMembers?: number;
  /**
   * Signs the tab ids `here()` mints, so a heartbeat acts only for a tab the app
   * served this user in this room. Default: random per process; with a RedisStore
   * and `client()`, required, the same in every process (your session secret will do).
   */
  secret?: string;
  /**
   * Show every viewer how many users are hidden (`onlineHidden`, and the `count`
   * event's `hidden`), as phpBB's "1 hidden" line does. Default false: only viewers
   * who may see hidden users (`canSeeHidden`) get the number; others get 0, since
   * the number ticking up as someone goes offline tells that they went invisible.
   */
  publicHiddenCount?: boolean;
  /**
   * Asking for the lock: how long an ask waits for the holder's answer before
   * the holder's page is warned (a cancelable `online-now:handover` event), and
   * `askGrace` later, the lock passes to the asker. Seconds, or a string with
   * its unit. Default 60 and 10.
   */
  askWait?: Duration;
  askGrace?: Duration;
  /**
   * Whether an unanswered ask may take the lock from this holder: `(lock) => boolean`.
   * Default: their page is in the background (`lock.away`), or, with `status` on,
   * they are idle or away (`lock.status`).
   */
  askHandOver?: (lock: RoomLock) => boolean;
  /** Staff who may end anyone's lock (`tracker.release(req, room)`): `(req) => boolean`. Default: nobody. */
  canReleaseLocks?: (req: Request) => boolean;
  /**
   * Status: each online user is `active`, `idle` (no request, and no input on
   * an open page, for `idleAfter`) or `away` (for `awayAfter`), read from the
   * time of their last activity: entries carry `status` and `lastActive`, and
   * `onlineStatus(user)` answers for anyone. `true`, or a function giving the
   * app's own state of a user (`(user) => user.dnd ? 'busy' : undefined`),
   * shown instead while they are online. Default false: everyone online is active.
   */
  status?: boolean | ((user: U) => string | null | undefined);
  /** With `status`: seconds (or a string with its unit) without activity before a user is idle. Default 300 (5 minutes). */
  idleAfter?: Duration;
  /** With `status`: seconds (or a string with its unit) without activity before a user is away; more than `idleAfter`. Default 600 (10 minutes). */
  awayAfter?: Duration;
}

/**
 * The fields of `onlineNow` entries, as `res.locals` is typed. With a custom
 * `profile`, merge its fields in:
 * `declare module 'express-online-now' { interface OnlineNowProfile { avatar?: string } }`.
 */
// eslint-disable-next-line @typescript-eslint/no-empty-object-type
export interface OnlineNowProfile extends DefaultProfile {}

/** `timeAgo`'s second argument. */
export interface TimeAgoOptions {
  /** `<time datetime="…" title="…">3 minutes ago</time>` instead of the text. */
  html?: boolean;
}

/** What the middleware puts in `res.locals` on every request. */
export interface OnlineNowLocals {
  /** Most recently active first, at most `max`. */
  onlineNow: readonly OnlineEntry<OnlineNowProfile>[];
  /** Their ids, in the same order, each with the type it was tracked with. */
  onlineNowIds: readonly UserId[];
  /** Exact number of distinct signed-in users online; never capped by `max`. */
  onlineCount: number;
  /** Distinct signed-out browsers online, each from its first request (0 unless `trackGuests`). */
  onlineGuests: number;
  /** Signed-in users online in invisible mode (never who they are, unless the viewer may see them). */
  onlineHidden: number;
  /** Kinds of crawlers online (Googlebot, bingbot, …; 0 unless `trackGuests`). */
  onlineBots: number;
  /** Most users and guests ever online at once (bots excluded), and when. */
  onlineRecord: OnlineRecord;
  /** Whether a user (object, id, or `onlineNow` entry) is online, as of this request. */
  isOnline: (userOrId: unknown) => boolean;
  /** When a user (object, id, or `onlineNow` entry) was last seen, or `null` when offline. */
  lastSeen: (userOrId: unknown) => Date | null;
  /** A user's status as of this request: `active`, `idle`, `away` (or the app's own state), or `offline` (hidden users too, unless the viewer may see them). */
  onlineStatus: (userOrId: unknown) => OnlineStatus;
  /** "3 minutes ago" for a Date, or for a user's last request ('' when offline), in the request's locale. */
  timeAgo: (dateOrUser: unknown, options?: TimeAgoOptions) => string;
  /** Where the client script is served, once `tracker.client()` is mounted (for the `onlineScript` helper). */
  onlineClient: ClientConfig | undefined;
  /** Set by `tracker.here()`: who is in the room, in the order they came (each with `tabs` and `mode`). */
  onlineHere?: readonly RoomEntry[];
  /** Set by `tracker.here()`: how many users are in the room (as this viewer may see). */
  onlineHereCount?: number;
  /** Set by `tracker.here()`: who holds the editing lock, or null. */
  onlineHereLock?: RoomLock | null;
  onlineHereRoom?: string;
  /** This page view's tab (the client script beats with it). */
  onlineHereTab?: string;
  onlineHereMode?: RoomMode;
  /** The page's own tab record (its lock claim), signed, which the script echoes back: see RoomTouch.known. */
  onlineHereSelf?: TabClaim & { readonly sig: string };
  /** Set by `tracker.here()`: the room's latest save (`changed()`), or null; the script shows only saves after it. */
  onlineHereSaved?: RoomSaved | null;
  /** Set by `tracker.here()`: the earliest ask for the room's lock, or null. */
  onlineHereRequest?: RoomRequest | null;
  /** Set by `tracker.lockBadges()`: each listed room's lock (null when nobody edits it), by room name. */
  onlineLocks?: Readonly<Record<string, RoomLock | null>>;
}

declare global {
  // eslint-disable-next-line @typescript-eslint/no-namespace
  namespace Express {
    // Merged into `res.locals` for TypeScript users of @types/express.
    // eslint-disable-next-line @typescript-eslint/no-empty-object-type
    interface Locals extends OnlineNowLocals {}
  }
}

export type RoomMode = 'viewing' | 'editing';

/** What a room write says: this user's tab is here now, in this mode. */
export interface RoomTouch {
  readonly room: string;
  readonly tab: string;
  /** The user's store key, and id and profile (visibility applied). */
  readonly key: string;
  readonly id: UserId;
  readonly profile: Profile;
  readonly mode: RoomMode;
  /** Claim the editing lock even from its holder. */
  readonly takeover: boolean;
  /** The page is hidden (a background tab): it stays for the longer away window. */
  readonly away?: boolean | undefined;
  /**
   * The tab's own record as its page last heard it (a heartbeat's reply): a
   * replica that has not yet synced the tab's claim keeps it instead of
   * overwriting it. Trusting it gives nothing a takeover would not.
   */
  readonly known?: TabClaim | undefined;
  /** The tab asks the lock's holder to hand it over: `'new'` when its page asks (again), true with each heartbeat while it waits. */
  readonly ask?: boolean | 'new' | undefined;
  /** The holder declines the asks made so far. */
  readonly decline?: boolean | undefined;
  /** The holder hands the lock to this tab (an asking tab's id): that tab's next touch takes it. */
  readonly grant?: string | undefined;
}

/** A tab's lock claim and join time, as a page echoes them back. */
export interface TabClaim {
  readonly claim: number;
  readonly gen: number;
  readonly since: number;
  /** When the tab's window ends unless it beats again: past it, the record (and its claim) has lapsed. */
  readonly until: number;
  /**
   * What the tab asked and answered (RoomTouch's ask, decline and grant, as
   * times and a tab id), so that a heartbeat a lagging replica answers keeps
   * them too. Absent when unset.
   */
  readonly ask?: number | undefined;
  readonly declined?: number | undefined;
  readonly grant?: string | undefined;
}

/** One user in a room, as templates see it: the profile, plus how many tabs and in which mode. Frozen. */
export type RoomEntry = Readonly<Record<string, unknown>> & {
  readonly id: UserId;
  readonly lastSeen: Date;
  /** When the user's first tab still here joined. */
  readonly since: Date;
  /** Tabs of this user open on the page. */
  readonly tabs: number;
  /** 'editing' when any of them edits. */
  readonly mode: RoomMode;
  /** Every tab of theirs here is in the background (the page is hidden). */
  readonly away?: true;
  readonly hidden?: true;
  /** With `status` on: their site-wide status (`onlineStatus`), as this viewer may see it. */
  readonly status?: OnlineStatus;
};

/** Who holds a room's editing lock, as a viewer may see it. Frozen. */
export type RoomLock = Readonly<Record<string, unknown>> & {
  /** The holder's id; absent when the holder is hidden from this viewer ("someone is editing"). */
  readonly id?: UserId;
  /** When the holder claimed it. */
  readonly since: Date;
  /** The viewer's own user holds it. */
  readonly mine: boolean;
  /** The holding tab (absent when the holder is hidden from this viewer): a page tells by it whether it holds the lock. */
  readonly tab?: string;
  /** Raised by each takeover and hand-over (absent with `tab`): of two views of the lock, the higher is the newer. */
  readonly generation?: number;
  /** The holder is in invisible mode (staff see who; others only that someone is editing). */
  readonly hidden?: true;
  /** The holder's page is in the background (hidden): an ask may hand the lock over after a wait. */
  readonly away?: true;
  /** With `status` on, as `askHandOver` is given the lock: the holder's status (idle, away: an ask may hand the lock over after a wait). */
  readonly status?: OnlineStatus;
};

/** The room's latest save (`tracker.changed()`): who and when, as a viewer may see them. Frozen. */
export type RoomSaved = Readonly<Record<string, unknown>> & {
  /** Who saved; absent when they are hidden from this viewer. */
  readonly id?: UserId;
  readonly at: Date;
  /** The viewer saved it. */
  readonly mine: boolean;
  readonly hidden?: true;
};

/** The earliest ask for a room's lock: who asks (as a viewer may see them), since when, and what the holder said. Frozen. */
export type RoomRequest = Readonly<Record<string, unknown>> & {
  readonly id?: UserId;
  readonly since: Date;
  /** The asking tab. */
  readonly tab: string;
  /** The viewer asks. */
  readonly mine: boolean;
  /** The holder declined it. */
  readonly declined: boolean;
  /** The holder handed the lock over: the asking tab takes it at its next heartbeat. */
  readonly granted: boolean;
  readonly hidden?: true;
};

/** One room's lock, for a list of rooms (`tracker.locks()`). */
export interface RoomLockState {
  readonly room: string;
  readonly lock: RoomLock | null;
  readonly request: RoomRequest | null;
}

/** A room at one instant, for one viewer. */
export interface RoomView {
  readonly room: string;
  /** Distinct users here that the viewer may see (themself included). */
  readonly count: number;
  /** In the order they joined. */
  readonly entries: readonly RoomEntry[];
  /** Who holds the editing lock; null when nobody does. */
  readonly lock: RoomLock | null;
  /** The user keys of everyone in the room, hidden ones too: for access checks (room events), never for display. */
  readonly members: ReadonlySet<string>;
  /** After a heartbeat (roomTouch): the tab's own record, for its page to echo back (RoomTouch.known). */
  readonly self?: TabClaim;
  /** The room's latest save (`changed()`), kept the away window; null when none. */
  readonly saved?: RoomSaved | null;
  /** Its saver's user key: who is not told of it (never for display). */
  readonly savedBy?: string | undefined;
  /** The earliest ask for the lock while someone holds it; null when none. */
  readonly request?: RoomRequest | null;
}

/** Settings of a store's rooms. */
export interface RoomLimits {
  /** Milliseconds a store keeps a tab after its last heartbeat: the away window, the longest a tab stays. */
  readonly thresholdMs: number;
  /** Milliseconds an active (visible) tab stays after its last heartbeat: `roomThreshold`. */
  readonly activeMs: number;
  /** Rooms kept; past it the least recently active room that nobody is in any more is forgotten. */
  readonly maxRooms: number;
  /** Tabs kept per room; past it the least recently active tab is dropped. */
  readonly maxMembers: number;
}

/** What pages need to render the script tag (set on every request as `res.locals.onlineClient`). */
export interface ClientConfig {
  readonly src: string;
  /** The heartbeat and leave routes. */
  readonly beat: string;
  readonly leave: string;
  readonly events: string;
  /** ms between a visible tab's heartbeats. */
  readonly interval: number;
  /** With `status` on: ms between two activity signals from one browser at most (its input, sent with a heartbeat). */
  readonly activeEvery?: number;
}

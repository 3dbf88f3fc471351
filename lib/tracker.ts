/**
 * createOnlineTracker: options in, a tracker out. The tracker owns the store,
 * turns users into store keys, and makes the middleware.
 */
import {
  boundedProfile,
  defaultGetId,
  defaultGetUser,
  defaultProfile,
  EMPTY_PROFILE,
  keyOf,
} from './identity';
import { MemoryStore } from './memory-store';
import { createMiddleware } from './middleware';
import { ErrorReporter, defaultErrorSink } from './report';
import type {
  DefaultProfile,
  OnlineEntry,
  OnlineMiddleware,
  OnlineRequest,
  OnlineTrackerOptions,
  Profile,
  Store,
  UserId,
} from './types';
import {
  checkOptionsObject,
  checkStore,
  integerAtLeast,
  optionalBoolean,
  optionalFunction,
  positiveNumber,
  rejectUnknownKeys,
} from './validations';

const optionNames = [
  'threshold',
  'max',
  'store',
  'getUser',
  'getId',
  'profile',
  'trackGuests',
  'skip',
  'onError',
] as const;

/** A user resolved to what the store needs. */
export interface Identity {
  readonly key: string;
  readonly id: UserId;
}

export class OnlineTracker<U = unknown, P extends object = DefaultProfile> {
  /** Seconds a user stays online after their last request. */
  readonly threshold: number;
  /** How many entries `onlineNow` and `list()` give by default. */
  readonly max: number;
  readonly store: Store;
  readonly trackGuests: boolean;
  /** @internal */
  readonly reporter: ErrorReporter;
  /** @internal */
  readonly getUser: (req: OnlineRequest) => unknown;
  /** @internal */
  readonly usesDefaultGetUser: boolean;
  /** @internal */
  readonly skip: ((req: OnlineRequest) => boolean) | undefined;
  private readonly getId: (user: unknown) => unknown;
  private readonly makeProfile: ((user: unknown) => unknown) | undefined;

  constructor(options: OnlineTrackerOptions<U, P> = {}) {
    checkOptionsObject('createOnlineTracker()', options);
    rejectUnknownKeys('createOnlineTracker()', options, optionNames);
    this.threshold = positiveNumber('threshold', options.threshold ?? 900, '900 (seconds: 15 minutes)');
    this.max = integerAtLeast('max', options.max ?? 50, 0, '50');
    optionalFunction('getUser', options.getUser, '(req) => user');
    optionalFunction('getId', options.getId, '(user) => id');
    optionalFunction('profile', options.profile, '(user) => ({ name: user.name })');
    optionalFunction('skip', options.skip, '(req) => boolean');
    optionalFunction('onError', options.onError, '(error) => void');
    optionalBoolean('trackGuests', options.trackGuests);
    if (options.store !== undefined) checkStore(options.store);

    this.reporter = new ErrorReporter(options.onError ?? defaultErrorSink);
    this.store = options.store ?? new MemoryStore();
    this.store.init({ thresholdMs: this.threshold * 1000, reporter: this.reporter });
    this.trackGuests = options.trackGuests ?? false;
    this.usesDefaultGetUser = options.getUser === undefined;
    this.getUser = (options.getUser as (req: OnlineRequest) => unknown) ?? defaultGetUser;
    this.getId = (options.getId as (user: unknown) => unknown) ?? defaultGetId;
    this.makeProfile = options.profile as ((user: unknown) => unknown) | undefined;
    this.skip = options.skip;
  }

  /** Express middleware: marks the request's user online and sets the `res.locals` of the contract. */
  middleware(): OnlineMiddleware {
    return createMiddleware(this);
  }

  /**
   * Marks a user online now, for activity outside the middleware (a websocket
   * message, an API call). Resolves to whether the user was tracked: `false`
   * for something that is not a valid user or id.
   */
  async touch(userOrId: U | UserId, profile?: P): Promise<boolean> {
    const who = this.identify(userOrId);
    if (who === undefined) return false;
    const stored =
      profile !== undefined
        ? boundedProfile(profile)
        : typeof userOrId === 'object' && userOrId !== null
          ? this.profileOf(userOrId)
          : undefined;
    await this.store.touch('users', who.key, who.id, stored);
    return true;
  }

  /** Takes a user offline at once: call it on logout. */
  async forget(userOrId: U | UserId): Promise<void> {
    const who = this.identify(userOrId);
    if (who !== undefined) await this.store.forget('users', who.key);
  }

  /** Exact number of distinct users online. */
  async count(): Promise<number> {
    return (await this.store.view('users', 0)).count;
  }

  /** Online users, most recently active first. */
  async list(limit: number = this.max): Promise<OnlineEntry<P>[]> {
    const size = Number.isSafeInteger(limit) && limit > 0 ? limit : 0;
    return [...(await this.store.view('users', size)).entries] as unknown as OnlineEntry<P>[];
  }

  async isOnline(userOrId: U | UserId): Promise<boolean> {
    return (await this.lastSeen(userOrId)) !== null;
  }

  async lastSeen(userOrId: U | UserId): Promise<Date | null> {
    const who = this.identify(userOrId);
    if (who === undefined) return null;
    const seen = (await this.store.view('users', 0)).lastSeen(who.key);
    return seen === null ? null : new Date(seen);
  }

  /** Stops the store's timers. A client passed to a store is left open. */
  async close(): Promise<void> {
    await this.store.close();
  }

  /**
   * A user object goes through `getId`; a bare number or string is the id
   * itself. `undefined` when there is no valid id (that user is not tracked).
   * @internal
   */
  identify(userOrId: unknown): Identity | undefined {
    const id = this.idOf(userOrId);
    const key = keyOf(id);
    // keyOf accepted it, so it is a finite number or a bounded non-empty string.
    return key === undefined ? undefined : { key, id: id as UserId };
  }

  /** The store key of a user or id, without allocating: templates ask this for every badge. @internal */
  keyFor(userOrId: unknown): string | undefined {
    return keyOf(this.idOf(userOrId));
  }

  private idOf(userOrId: unknown): unknown {
    if (typeof userOrId !== 'object' || userOrId === null) return userOrId;
    try {
      return this.getId(userOrId);
    } catch (error) {
      // A template asking `isOnline(user)` must not break the page over a bad getId.
      this.reporter.report('callback', error);
      return undefined;
    }
  }

  /** @internal */
  profileOf(user: unknown): Profile {
    if (typeof user !== 'object' || user === null) return EMPTY_PROFILE;
    return this.makeProfile === undefined ? defaultProfile(user) : boundedProfile(this.makeProfile(user));
  }
}

/** Creates a tracker; see OnlineTrackerOptions for every option and its default. */
export function createOnlineTracker<U = unknown, P extends object = DefaultProfile>(
  options?: OnlineTrackerOptions<U, P>,
): OnlineTracker<U, P> {
  return new OnlineTracker<U, P>(options);
}

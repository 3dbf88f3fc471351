/**
 * createOnlineTracker: options in, a tracker out. The tracker owns the store,
 * turns users into store keys (through a UserResolver), and makes the middleware.
 */
import { boundedProfile } from './identity';
import { createMiddleware } from './middleware';
import { ErrorReporter, defaultErrorSink } from './report';
import { MemoryStore } from './stores/memory';
import type { DefaultProfile, OnlineEntry, OnlineMiddleware, OnlineTrackerOptions, Profile, Store, UserId } from './types';
import { UserResolver } from './user-resolver';
import {
  checkOptions,
  checkStore,
  integerAtLeast,
  optionalBoolean,
  optionalFunction,
  optionalLocale,
  optionNames,
  positiveNumber,
} from './validations';

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
});

export class OnlineTracker<U = unknown, P extends object = DefaultProfile> {
  /** Seconds a user stays online after their last request. */
  readonly threshold: number;
  /** How many entries `onlineNow` and `list()` give by default. */
  readonly max: number;
  readonly store: Store;
  readonly trackGuests: boolean;
  readonly #users: UserResolver;
  #closed = false;

  constructor(options: OnlineTrackerOptions<U, P> = {}) {
    checkOptions('createOnlineTracker()', options, trackerOptions);
    this.threshold = positiveNumber('threshold', options.threshold ?? 900, '900 (seconds: 15 minutes)');
    this.max = integerAtLeast('max', options.max ?? 50, 0, '50');
    optionalFunction('getUser', options.getUser, '(req) => user');
    optionalFunction('getId', options.getId, '(user) => id');
    optionalFunction('profile', options.profile, '(user) => ({ name: user.name })');
    optionalFunction('skip', options.skip, '(req) => boolean');
    optionalFunction('onError', options.onError, '(error) => void');
    optionalBoolean('trackGuests', options.trackGuests);
    optionalLocale(options.locale);
    if (options.store !== undefined) checkStore(options.store);

    const reporter = new ErrorReporter(options.onError ?? defaultErrorSink);
    this.#users = new UserResolver(options, reporter);
    this.store = options.store ?? new MemoryStore();
    this.store.init({ thresholdMs: this.threshold * 1000, reporter });
    this.trackGuests = options.trackGuests ?? false;
  }

  /** Express middleware: marks the request's user online and sets the `res.locals` of the contract. */
  middleware(): OnlineMiddleware {
    return createMiddleware({ store: this.store, max: this.max, trackGuests: this.trackGuests, users: this.#users });
  }

  /**
   * Marks a user online now, for activity outside the middleware (a websocket
   * message, an API call). Resolves to whether the user was tracked: `false`
   * for something that is not a valid user or id.
   */
  async touch(userOrId: U | UserId, profile?: P): Promise<boolean> {
    const who = this.#users.identify(userOrId);
    if (who === undefined) return false;
    let stored: Profile | undefined;
    if (profile !== undefined) stored = boundedProfile(profile);
    else if (typeof userOrId === 'object' && userOrId !== null) {
      stored = this.#users.profileOf(userOrId);
      if (stored === undefined) return false; // the app's `profile` threw (reported)
    }
    await this.store.touch('users', who.key, who.id, stored);
    return true;
  }

  /** Takes a user offline at once: call it on logout. Nothing (a session without a user) is ignored. */
  async forget(userOrId: U | UserId | null | undefined): Promise<void> {
    const who = this.#users.identify(userOrId);
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

  /** For a user, an id, or an entry of `list()` / `onlineNow`. */
  async isOnline(userOrId: U | UserId | OnlineEntry<P>): Promise<boolean> {
    return (await this.lastSeen(userOrId)) !== null;
  }

  async lastSeen(userOrId: U | UserId | OnlineEntry<P>): Promise<Date | null> {
    const key = this.#users.keyFor(userOrId);
    if (key === undefined) return null;
    const seen = (await this.store.view('users', 0)).lastSeen(key);
    return seen === null ? null : new Date(seen);
  }

  /** Detaches from the store, which stops when its last tracker closes. A client passed to a store is left open. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.store.close();
  }
}

/** Creates a tracker; see OnlineTrackerOptions for every option and its default. */
export function createOnlineTracker<U = unknown, P extends object = DefaultProfile>(
  options?: OnlineTrackerOptions<U, P>,
): OnlineTracker<U, P> {
  return new OnlineTracker<U, P>(options);
}

/**
 * The app's callbacks (`getUser`, `getId`, `profile`, `skip`) behind one small
 * object: what the middleware and the tracker ask about a request or a user.
 * A throwing callback never fails a request: it is reported once under its own
 * name, until it next succeeds.
 */
import { boundedProfile, defaultGetId, defaultGetUser, defaultProfile, EMPTY_PROFILE, keyOf } from './identity';
import { ListedEntry } from './presence-index';
import type { ErrorReporter } from './report';
import type { OnlineRequest, Profile, UserId } from './types';

/** A user resolved to what the store needs. */
export interface SignedIn {
  readonly key: string;
  readonly id: UserId;
  readonly profile: Profile;
}

export interface Callbacks {
  readonly locale?: string | ((req: never) => unknown) | undefined;
  readonly getUser?: ((req: never) => unknown) | undefined;
  readonly getId?: ((user: never) => unknown) | undefined;
  readonly profile?: ((user: never) => unknown) | undefined;
  readonly skip?: ((req: never) => boolean) | undefined;
}

const isThenable = (value: unknown): boolean => typeof (value as Promise<unknown> | undefined)?.then === 'function';

export class UserResolver {
  private readonly getUser: (req: OnlineRequest) => unknown;
  private readonly getId: (user: unknown) => unknown;
  private readonly makeProfile: ((user: unknown) => unknown) | undefined;
  private readonly skipFn: ((req: OnlineRequest) => boolean) | undefined;
  private readonly locale: string | ((req: OnlineRequest) => unknown) | undefined;
  /** With the default getUser, a request without `req.session` may still carry `req.user` (Passport without sessions). */
  readonly usesDefaultGetUser: boolean;

  constructor(
    callbacks: Callbacks,
    readonly reporter: ErrorReporter,
  ) {
    const getUser = (callbacks.getUser as ((req: OnlineRequest) => unknown) | undefined) ?? defaultGetUser;
    this.getUser = (req) => {
      const user = getUser(req);
      if (isThenable(user)) throw new Error('getUser(req) returned a Promise: it must return the user (or id) itself.');
      return user;
    };
    this.getId = (callbacks.getId as ((user: unknown) => unknown) | undefined) ?? defaultGetId;
    this.makeProfile = callbacks.profile as ((user: unknown) => unknown) | undefined;
    this.skipFn = callbacks.skip as ((req: OnlineRequest) => boolean) | undefined;
    this.usesDefaultGetUser = callbacks.getUser === undefined;
    this.locale = callbacks.locale as string | ((req: OnlineRequest) => unknown) | undefined;
  }

  /** The language of `timeAgo` for this request: the app's function, else `res.locals.locale`, else the app's tag, else English. */
  localeOf(req: OnlineRequest, locals: Record<string, unknown>): string {
    if (typeof this.locale === 'function') {
      const chosen = this.call('locale', this.locale, req, undefined);
      if (typeof chosen === 'string' && chosen !== '') return chosen;
    }
    if (typeof locals.locale === 'string' && locals.locale !== '') return locals.locale;
    return typeof this.locale === 'string' ? this.locale : 'en';
  }

  /** Whether the request is left alone. A `skip` that throws skips (and is reported). */
  skips(req: OnlineRequest): boolean {
    return this.skipFn !== undefined && this.call('skip', this.skipFn, req, true) === true;
  }

  /** The request's signed-in user, or undefined when signed out or not identifiable. */
  userOf(req: OnlineRequest): SignedIn | undefined {
    const user = this.call('getUser', this.getUser, req, undefined);
    if (user === undefined || user === null) return undefined;
    const who = this.identify(user);
    const profile = who && this.profileOf(user);
    // A profile that failed leaves the user unmarked, rather than wiping the profile they have.
    return profile && { key: who.key, id: who.id, profile };
  }

  /** A user object goes through `getId`, a listed entry gives its `id`, a bare number or string is the id itself. */
  identify(userOrId: unknown): { key: string; id: UserId } | undefined {
    const id = this.idOf(userOrId);
    const key = keyOf(id);
    // keyOf accepted it, so it is a finite number or a bounded non-empty string.
    return key === undefined ? undefined : { key, id: id as UserId };
  }

  /** The store key of a user or id, without allocating: templates ask this for every badge. */
  keyFor(userOrId: unknown): string | undefined {
    return keyOf(this.idOf(userOrId));
  }

  /** The bounded profile of a user; undefined when the app's `profile` threw. */
  profileOf(user: unknown): Profile | undefined {
    if (typeof user !== 'object' || user === null) return EMPTY_PROFILE;
    if (this.makeProfile === undefined) return defaultProfile(user);
    const failed = {};
    const raw = this.call('profile', this.makeProfile, user, failed);
    return raw === failed ? undefined : boundedProfile(raw);
  }

  private idOf(userOrId: unknown): unknown {
    if (typeof userOrId !== 'object' || userOrId === null) return userOrId;
    if (userOrId instanceof ListedEntry) return userOrId.id;
    // A template asking `isOnline(user)` must not break the page over a bad getId.
    return this.call('getId', this.getId, userOrId, undefined);
  }

  /**
   * Runs an app callback: a throw is reported under `kind` and answered with
   * `fallback`; a success marks `kind` recovered. (No closure: this runs on every request.)
   */
  private call<A, R>(kind: string, fn: (arg: A) => R, arg: A, fallback: R): R {
    try {
      const result = fn(arg);
      this.reporter.recovered(kind);
      return result;
    } catch (error) {
      this.reporter.report(kind, error);
      return fallback;
    }
  }
}

/**
 * The app's callbacks (`getUser`, `getId`, `profile`, `skip`, `hidden`,
 * `canSeeHidden`, `isBot`, `locale`) behind one small
 * object: what the middleware and the tracker ask about a request or a user.
 * A throwing callback never fails a request: it is reported once under its own
 * name, until it next succeeds.
 */
import { isbotMatch } from 'isbot';
import { boundedProfile, defaultGetId, defaultGetUser, defaultProfile, EMPTY_PROFILE, keyOf, withHidden } from '../core/identity';
import { EVERYONE, ListedEntry } from '../core/presence-index';
import type { ErrorReporter } from '../core/report';
import { ACTIVE_FIELD, manualStatus, withActivity, type Statuses } from '../core/status';
import type { OnlineRequest, Profile, UserId, Viewer } from '../core/types';

/** A bot's name is its key: short, so a flood of invented names stays small. */
const MAX_BOT_NAME = 64;
/** User agents already classified (a Map cleared when full: bounded whatever the traffic). */
const UA_CACHE_SIZE = 1000;

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
  readonly hidden?: ((user: never) => boolean) | undefined;
  readonly canSeeHidden?: ((req: never) => boolean) | undefined;
  readonly isBot?: ((req: never) => boolean | string) | undefined;
  /** `status`: true, or the app's own state of a user ("busy"), or none. */
  readonly status?: boolean | ((user: never) => unknown) | undefined;
}

/** "curl/8.4" and "curl/7.1" are one kind of bot: the name stops at a version. */
function botName(name: string): string {
  const slash = name.indexOf('/');
  return (slash > 0 ? name.slice(0, slash) : name).slice(0, MAX_BOT_NAME).trim().toLowerCase() || 'bot';
}

const SEPARATOR = /[\s;(),+]/;

/**
 * The kind of crawler a user agent names, or null for a person. `isbotMatch`
 * gives the pattern's text ("bot" for bingbot and AhrefsBot alike), so the
 * kind is the user agent's word around it: "bingbot", "ahrefsbot", "googlebot".
 */
function botKind(agent: string): string | null {
  const match = isbotMatch(agent);
  if (match === null) return null;
  const at = agent.indexOf(match);
  if (at === -1 || match === '') return botName(match);
  let start = at;
  while (start > 0 && !SEPARATOR.test(agent[start - 1])) start--;
  let end = at + match.length;
  while (end < agent.length && !SEPARATOR.test(agent[end]) && agent[end] !== '/' && agent[end] !== ':') end++;
  return botName(agent.slice(start, end));
}

const isThenable = (value: unknown): boolean => typeof (value as Promise<unknown> | undefined)?.then === 'function';

export class UserResolver {
  private readonly getUser: (req: OnlineRequest) => unknown;
  private readonly getId: (user: unknown) => unknown;
  private readonly makeProfile: ((user: unknown) => unknown) | undefined;
  private readonly skipFn: ((req: OnlineRequest) => boolean) | undefined;
  private readonly locale: string | ((req: OnlineRequest) => unknown) | undefined;
  private readonly hiddenFn: ((user: unknown) => boolean) | undefined;
  private readonly canSeeHidden: ((req: OnlineRequest) => boolean) | undefined;
  private readonly isBot: ((req: OnlineRequest) => boolean | string) | undefined;
  private readonly botsByAgent = new Map<string, string | null>();
  private readonly manualStatus: ((user: unknown) => unknown) | undefined;
  /** With `status` on: every touch this resolver describes carries the user's activity time. */
  statuses: Statuses | undefined;
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
    this.hiddenFn = callbacks.hidden as ((user: unknown) => boolean) | undefined;
    this.canSeeHidden = callbacks.canSeeHidden as ((req: OnlineRequest) => boolean) | undefined;
    this.isBot = callbacks.isBot as ((req: OnlineRequest) => boolean | string) | undefined;
    this.manualStatus = typeof callbacks.status === 'function' ? (callbacks.status as (user: unknown) => unknown) : undefined;
  }

  /** Who the request's view is for, `self` included (a room's lock tells its holder it is theirs). */
  viewerOf(req: OnlineRequest, self: SignedIn | undefined): Viewer {
    // A `canSeeHidden` that throws sees nothing more.
    const seesHidden = this.canSeeHidden !== undefined && this.call('canSeeHidden', this.canSeeHidden, req, false) === true;
    return { seesHidden, self: self?.key };
  }

  /**
   * Who a list is for: `self` matters to a list only when the user may be
   * hidden, so without invisible mode configured, one shared viewer (no allocation).
   */
  listViewerOf(req: OnlineRequest, self: SignedIn | undefined): Viewer {
    if (this.hiddenFn === undefined && this.canSeeHidden === undefined) return EVERYONE;
    return this.viewerOf(req, self);
  }

  /**
   * The kind of crawler a request comes from (its key in the bots scope), or
   * undefined for a person. `isBot` may name it; `true` names it from the `isbot` list.
   */
  botOf(req: OnlineRequest): string | undefined {
    const agent = req.headers['user-agent'];
    if (this.isBot !== undefined) {
      const verdict = this.call('isBot', this.isBot, req, false);
      if (typeof verdict === 'string' && verdict !== '') return botName(verdict);
      if (verdict !== true) return undefined;
      return (typeof agent === 'string' && botKind(agent)) || 'bot';
    }
    if (typeof agent !== 'string' || agent === '') return undefined;
    let name = this.botsByAgent.get(agent);
    if (name === undefined) {
      name = botKind(agent);
      if (this.botsByAgent.size >= UA_CACHE_SIZE) this.botsByAgent.clear();
      this.botsByAgent.set(agent, name);
    }
    return name ?? undefined;
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
    return profile && { key: who.key, id: who.id, profile: this.activity(user, this.visibility(user, profile)) };
  }

  /** With `status` on, the profile stamped active now (and with the app's state of the user, if any). */
  activity(user: unknown, profile: Profile): Profile {
    if (this.statuses === undefined) return profile;
    return withActivity(profile, this.statuses.stamp(), this.manualStatus === undefined ? undefined : this.appStatus(user, this.manualStatus));
  }

  private appStatus(user: unknown, fn: (user: unknown) => unknown): string | undefined {
    const state = this.call('status', fn, user, undefined);
    if (isThenable(state)) this.reporter.report('status', new Error('status(user) returned a Promise: it must return the state (or undefined) itself.'));
    return manualStatus(state);
  }

  /**
   * The profile a touch that is presence, not activity, carries (a heartbeat
   * from a page nobody touched): none, so the store keeps the one it holds,
   * activity time and all, whatever process wrote it last; the user's own when
   * `known` (the profile this process holds) has no activity time: a user the
   * store does not hold comes back active.
   */
  presenceProfile(user: SignedIn, known: Profile | null): Profile | undefined {
    return this.statuses !== undefined && typeof known?.[ACTIVE_FIELD] === 'number' ? undefined : user.profile;
  }

  /** The profile marked hidden when `hidden(user)` says so (or throws: hiding is the safe mistake). */
  visibility(user: unknown, profile: Profile): Profile {
    if (this.hiddenFn === undefined) return profile;
    const hidden = this.call('hidden', this.hiddenFn, user, true);
    if (isThenable(hidden)) {
      this.reporter.report('hidden', new Error('hidden(user) returned a Promise: it must return true or false itself. The user is hidden meanwhile.'));
    }
    return hidden ? withHidden(profile) : profile;
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

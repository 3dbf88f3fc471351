/**
 * The Express middleware: marks the request's user (or guest) online,
 * then takes one view of the store and turns it into `res.locals`. Count, list
 * and badges all come from that one view, so a page agrees with itself.
 */

import { guestIdOf, guestKey } from '../core/identity';
import type { ErrorReporter } from '../core/report';
import { formatTimeAgo, timeAgoHtml } from '../templates/time-ago';
import { withTimeout } from '../core/timeout';
import { statusIn, type OnlineStatus, type Statuses } from '../core/status';
import type {
  Awaitable,
  ClientConfig,
  OnlineEntry,
  OnlineMiddleware,
  OnlineNowLocals,
  OnlineRecord,
  OnlineRequest,
  OnlineResponse,
  ScopeView,
  Store,
  UserId,
  Viewer,
} from '../core/types';
import type { UserResolver } from './user-resolver';

/** Longest a request waits on an asynchronous store before rendering without presence. */
const STORE_WAIT_MS = 100;

/** All the middleware gets from its tracker. */
export interface MiddlewareSettings {
  readonly store: Store;
  readonly max: number;
  readonly trackGuests: boolean;
  readonly resolver: UserResolver;
  /** The client script's settings, once `client()` was called: for the `onlineScript` helper. */
  readonly client: () => ClientConfig | undefined;
  /** `onlineHidden` for every viewer, not only those who may see hidden users. */
  readonly publicHiddenCount?: boolean;
  /** With `status` on: how `onlineStatus` reads a status. */
  readonly statuses?: Statuses | undefined;
}

interface Views {
  readonly users: ScopeView | undefined;
  readonly guests: number;
  readonly bots: number;
  /** The viewer may learn the hidden count. */
  readonly hidden: boolean;
}

const NO_VIEWS: Views = { users: undefined, guests: 0, bots: 0, hidden: false };
const NO_ENTRIES: readonly OnlineEntry[] = Object.freeze([]);
const NO_IDS: readonly UserId[] = Object.freeze([]);
const NO_RECORD: OnlineRecord = Object.freeze({ count: 0, at: new Date(0) });

function isThenable<T>(value: Awaitable<T>): value is Promise<T> {
  return typeof (value as Promise<T> | undefined)?.then === 'function';
}

/**
 * A view's lookups, as locals. A store may hand out one view object to many
 * requests while nothing it shows changes: these are made once per view, not per request.
 */
class Lookups {
  readonly ids: readonly UserId[];
  constructor(
    readonly view: ScopeView | undefined,
    private readonly resolver: UserResolver,
    private readonly statuses: Statuses | undefined,
  ) {
    this.ids = view === undefined ? NO_IDS : (view.ids ?? view.entries.map((entry) => entry.id));
  }

  readonly seen = (userOrId: unknown): number | null => {
    const key = this.view === undefined ? undefined : this.resolver.keyFor(userOrId);
    return key === undefined ? null : (this.view as ScopeView).lastSeen(key);
  };

  readonly isOnline = (userOrId: unknown): boolean => this.seen(userOrId) !== null;

  readonly lastSeen = (userOrId: unknown): Date | null => {
    const time = this.seen(userOrId);
    return time === null ? null : new Date(time);
  };

  readonly onlineStatus = (userOrId: unknown): OnlineStatus => {
    const key = this.view === undefined ? undefined : this.resolver.keyFor(userOrId);
    return key === undefined ? 'offline' : statusIn(this.view as ScopeView, key, this.statuses);
  };
}

export function createMiddleware({ store, max, trackGuests, resolver, client, publicHiddenCount, statuses }: MiddlewareSettings): OnlineMiddleware {
  const reporter: ErrorReporter = resolver.reporter;
  const storeFailed = (error: unknown): void => reporter.report('store', error);

  function checkSession(req: OnlineRequest): void {
    // Guests need no session (they carry a cookie of their own): only the default getUser reads one.
    if (req.session === undefined && resolver.usesDefaultGetUser && req.user === undefined) {
      reporter.report(
        'no-session',
        new Error(
          'req.session is undefined: mount express-session before the presence middleware ' +
            '(app.use(session({ … })) first, then app.use(online.middleware())), or pass getUser.',
        ),
      );
    }
  }

  /** Passport sets `req.user` in passport.session(): mounted before it, nobody would be counted. */
  function checkPassport(req: OnlineRequest): void {
    const passport = (req.session as { passport?: { user?: unknown } } | undefined)?.passport;
    if (resolver.usesDefaultGetUser && passport?.user !== undefined && req.user === undefined) {
      reporter.report(
        'passport',
        new Error(
          'the session has a Passport user, but req.user is not set yet: mount the presence middleware after ' +
            'Passport (app.use(passport.session()) first, then app.use(online.middleware())).',
        ),
      );
    }
  }

  /**
   * A guest who signs in during this request (with or without
   * `req.session.regenerate()`) stops being a guest as the response goes out,
   * and is counted as the user they became.
   */
  function watchSignIn(req: OnlineRequest, res: OnlineResponse, guest: string): void {
    res.once?.('finish', () => {
      const user = resolver.userOf(req);
      if (user === undefined) return;
      try {
        void Promise.resolve(store.forget('guests', guest)).catch(storeFailed);
        void Promise.resolve(store.touch('users', user.key, user.id, user.profile)).catch(storeFailed);
      } catch (error) {
        storeFailed(error);
      }
    });
  }

  function views(viewer: Viewer): Awaitable<Views> {
    const usersView = store.view('users', max, viewer);
    // Only a viewer who may see hidden users learns how many there are (see OnlineTrackerOptions.publicHiddenCount).
    const hidden = viewer.seesHidden || publicHiddenCount === true;
    const guestsView = trackGuests ? store.view('guests', 0) : undefined;
    const botsView = trackGuests ? store.view('bots', 0) : undefined;
    if (isThenable(usersView) || isThenable(guestsView) || isThenable(botsView)) {
      return Promise.all([usersView, guestsView, botsView]).then(([u, g, b]) => ({ users: u, guests: g?.count ?? 0, bots: b?.count ?? 0, hidden }));
    }
    return { users: usersView, guests: guestsView?.count ?? 0, bots: botsView?.count ?? 0, hidden };
  }

  function track(req: OnlineRequest, res: OnlineResponse): Awaitable<Views> {
    checkSession(req);
    const user = resolver.userOf(req);
    if (user === undefined) checkPassport(req);
    let touched: Awaitable<void> = undefined;
    if (user !== undefined) {
      if (!isClientRoute(req)) touched = store.touch('users', user.key, user.id, user.profile);
    } else if (trackGuests) {
      // A crawler is counted by its kind, never as a guest, cookie or not.
      const bot = resolver.botOf(req);
      if (bot !== undefined) {
        touched = store.touch('bots', bot, bot, undefined);
      } else {
        const guest = guestKey(guestIdOf(req, res));
        touched = store.touch('guests', guest, guest, undefined);
        watchSignIn(req, res, guest);
      }
    }
    const viewer = resolver.listViewerOf(req, user);
    return isThenable(touched) ? touched.then(() => views(viewer)) : views(viewer);
  }

  let lookups = new Lookups(undefined, resolver, statuses);

  function setLocals(req: OnlineRequest, res: OnlineResponse, { users: view, guests, bots, hidden }: Views): void {
    // Profiles are typed by the app (DefaultProfile unless `profile` says otherwise).
    const entries = view === undefined ? NO_ENTRIES : (view.entries as readonly OnlineEntry[]);
    if (lookups.view !== view) lookups = new Lookups(view, resolver, statuses);
    const { seen } = lookups;
    // Assigned one by one: this runs on every request, and an intermediate object would only add garbage.
    const locals = res.locals as Partial<OnlineNowLocals>;
    locals.onlineNow = entries;
    locals.onlineNowIds = lookups.ids;
    locals.onlineCount = view === undefined ? 0 : view.count;
    locals.onlineGuests = guests;
    locals.onlineHidden = hidden ? (view?.hidden ?? 0) : 0;
    locals.onlineBots = bots;
    locals.onlineRecord = view === undefined ? NO_RECORD : (store.record?.() ?? NO_RECORD);
    locals.isOnline = lookups.isOnline;
    locals.lastSeen = lookups.lastSeen;
    locals.onlineStatus = lookups.onlineStatus;
    locals.onlineClient = client();
    locals.timeAgo = (dateOrUser, options) => {
      const time = dateOrUser instanceof Date ? dateOrUser.getTime() : seen(dateOrUser);
      if (time === null) return '';
      const locale = resolver.localeOf(req, res.locals);
      const now = store.dateNow?.() ?? Date.now();
      return options?.html === true ? timeAgoHtml(time, locale, now) : formatTimeAgo(time, locale, now);
    };
  }

  /**
   * A request the client script makes by itself (a heartbeat, a leave, its
   * stream, the script): no activity of its user's. The heartbeat route marks
   * them itself (presence, and activity only when its page saw input).
   */
  function isClientRoute(req: OnlineRequest): boolean {
    const config = client();
    if (config === undefined) return false;
    const url = req.originalUrl ?? req.url ?? '';
    const query = url.indexOf('?');
    const path = query === -1 ? url : url.slice(0, query);
    return path === config.beat || path === config.leave || path === config.events || path === config.src;
  }

  return function onlineNow(req, res, next) {
    if (resolver.skips(req)) {
      next();
      return;
    }
    let work: Awaitable<Views>;
    let failed = false;
    try {
      work = track(req, res);
    } catch (error) {
      storeFailed(error);
      work = NO_VIEWS;
      failed = true;
    }
    if (!isThenable(work)) {
      if (!failed) reporter.recovered('store');
      setLocals(req, res, work);
      next();
      return;
    }
    withTimeout(work, STORE_WAIT_MS, `the presence store did not answer within ${STORE_WAIT_MS} ms; pages render without presence meanwhile`)
      .then(
        (ready) => {
          reporter.recovered('store');
          setLocals(req, res, ready);
        },
        (error: unknown) => {
          storeFailed(error);
          setLocals(req, res, NO_VIEWS);
        },
      )
      .then(() => next(), next);
  };
}

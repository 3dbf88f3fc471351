/**
 * The Express middleware: marks the request's user (or guest session) online,
 * then takes one view of the store and turns it into `res.locals`. Count, list
 * and badges all come from that one view, so a page agrees with itself.
 */
import { guestKey, sessionCameWithRequest } from './identity';
import { withTimeout } from './timeout';
import type { OnlineTracker } from './tracker';
import type {
  Awaitable,
  OnlineEntry,
  OnlineMiddleware,
  OnlineNowLocals,
  OnlineRequest,
  OnlineResponse,
  Profile,
  ScopeView,
  UserId,
} from './types';

/** Longest a request waits on an asynchronous store before rendering without presence. */
const STORE_WAIT_MS = 100;

interface Views {
  readonly users: ScopeView | undefined;
  readonly guests: number;
}

const NO_VIEWS: Views = { users: undefined, guests: 0 };
const NO_ENTRIES: readonly OnlineEntry[] = Object.freeze([]);

function isThenable<T>(value: Awaitable<T>): value is Promise<T> {
  return typeof (value as Promise<T> | undefined)?.then === 'function';
}

export function createMiddleware(tracker: OnlineTracker): OnlineMiddleware {
  const { store, max, trackGuests, reporter, skip } = tracker;

  function signedInUser(req: OnlineRequest): { key: string; id: UserId; profile: Profile } | undefined {
    if (req.session === undefined && (tracker.usesDefaultGetUser ? req.user === undefined : trackGuests)) {
      reporter.report(
        'no-session',
        new Error(
          'req.session is undefined: mount express-session before the presence middleware ' +
            '(app.use(session({ … })) first, then app.use(online.middleware())), or pass getUser.',
        ),
      );
    }
    try {
      const user = tracker.getUser(req);
      if (user === undefined || user === null) return undefined;
      if (isThenable(user)) {
        reporter.report('callback', new Error('getUser(req) returned a Promise: it must return the user (or id) itself.'));
        return undefined;
      }
      const who = tracker.identify(user);
      return who && { key: who.key, id: who.id, profile: tracker.profileOf(user) };
    } catch (error) {
      reporter.report('callback', error);
      return undefined;
    }
  }

  function views(sessionGuestKey: string | undefined): Awaitable<Views> {
    const users = store.view('users', max);
    const guests = trackGuests ? store.view('guests', 0) : undefined;
    if (isThenable(users) || isThenable(guests)) {
      return Promise.all([users, guests]).then(([u, g]) => combine(u, g, sessionGuestKey));
    }
    return combine(users, guests, sessionGuestKey);
  }

  /** A signed-in session that was counted as a guest before signing in is a guest no longer. */
  function combine(users: ScopeView, guests: ScopeView | undefined, sessionGuestKey: string | undefined): Views {
    if (guests === undefined) return { users, guests: 0 };
    if (sessionGuestKey !== undefined && guests.lastSeen(sessionGuestKey) !== null) {
      void Promise.resolve(store.forget('guests', sessionGuestKey)).catch((error: unknown) => reporter.report('store', error));
      return { users, guests: guests.count - 1 };
    }
    return { users, guests: guests.count };
  }

  function track(req: OnlineRequest): Awaitable<Views> {
    const user = signedInUser(req);
    const guest = trackGuests && sessionCameWithRequest(req) ? guestKey(req.sessionID as string) : undefined;
    let touched: Awaitable<void> = undefined;
    if (user !== undefined) touched = store.touch('users', user.key, user.id, user.profile);
    else if (guest !== undefined) touched = store.touch('guests', guest, guest, undefined);
    const signedInGuest = user !== undefined ? guest : undefined;
    return isThenable(touched) ? touched.then(() => views(signedInGuest)) : views(signedInGuest);
  }

  function setLocals(res: OnlineResponse, { users, guests }: Views): void {
    // Profiles are typed by the app (DefaultProfile unless `profile` says otherwise).
    const entries = users === undefined ? NO_ENTRIES : (users.entries as readonly OnlineEntry[]);
    const seen = (userOrId: unknown): number | null => {
      const key = users === undefined ? undefined : tracker.keyFor(userOrId);
      return key === undefined ? null : (users as ScopeView).lastSeen(key);
    };
    // Assigned one by one: this runs on every request, and an intermediate object would only add garbage.
    const locals = res.locals as Partial<OnlineNowLocals>;
    locals.onlineNow = entries;
    locals.onlineNowIds = entries.map((entry) => entry.id);
    locals.onlineCount = users === undefined ? 0 : users.count;
    locals.onlineGuests = guests;
    locals.isOnline = (userOrId) => seen(userOrId) !== null;
    locals.lastSeen = (userOrId) => {
      const time = seen(userOrId);
      return time === null ? null : new Date(time);
    };
  }

  return function onlineNow(req, res, next) {
    try {
      if (skip !== undefined && skip(req)) {
        next();
        return;
      }
    } catch (error) {
      reporter.report('callback', error);
    }
    let work: Awaitable<Views>;
    let failed = false;
    try {
      work = track(req);
    } catch (error) {
      reporter.report('store', error);
      work = NO_VIEWS;
      failed = true;
    }
    if (!isThenable(work)) {
      if (!failed) reporter.recovered('store');
      setLocals(res, work);
      next();
      return;
    }
    withTimeout(work, STORE_WAIT_MS, `the presence store did not answer within ${STORE_WAIT_MS} ms; pages render without presence meanwhile`)
      .then(
        (ready) => {
          reporter.recovered('store');
          setLocals(res, ready);
        },
        (error: unknown) => {
          reporter.report('store', error);
          setLocals(res, NO_VIEWS);
        },
      )
      .then(() => next(), next);
  };
}

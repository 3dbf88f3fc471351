import session from 'express-session';
import { createOnlineTracker, type OnlineTracker, type OnlineTrackerOptions } from 'express-online-now';
import type { expressVersions } from './server';

type ExpressModule = (typeof expressVersions)[number]['express'];

/**
 * A minimal app around the middleware: sign in as any id (as a number or a
 * string), log out through tracker.forget, become a guest, and read the locals back as JSON.
 */
export function presenceApp(express: ExpressModule, options: OnlineTrackerOptions = {}): { app: ReturnType<ExpressModule>; online: OnlineTracker } {
  const app = express();
  const online = createOnlineTracker(options);
  app.use(express.urlencoded({ extended: false }));
  app.use(session({ secret: 'test secret', resave: false, saveUninitialized: false }));
  app.use(online.middleware());

  // regenerate=1 signs in the way session-fixation advice says: a new session id first.
  app.post('/login', (req, res, next) => {
    const raw = String(req.body.id);
    const id = req.body.type === 'string' ? raw : Number(raw);
    const signIn = () => {
      (req.session as unknown as Record<string, unknown>).user = { id, name: req.body.name ?? `User ${raw}`, password: 'hunter2' };
      res.sendStatus(204);
    };
    if (req.body.regenerate === '1') req.session.regenerate((err) => (err ? next(err) : signIn()));
    else signIn();
  });
  // A template or route that writes to the entries it was given must not change anyone else's page.
  app.get('/scribble', (_req, res) => {
    let unchanged = 0;
    for (const entry of res.locals.onlineNow) {
      try {
        (entry as unknown as Record<string, unknown>).isYou = true;
      } catch {
        // strict-mode code gets a TypeError; sloppy code is ignored silently
      }
      if (!('isYou' in entry)) unchanged++;
    }
    res.json({ unchanged });
  });
  app.post('/guest', (req, res) => {
    (req.session as unknown as Record<string, unknown>).visited = true;
    res.sendStatus(204);
  });
  app.post('/logout', async (req, res, next) => {
    try {
      await online.forget((req.session as unknown as { user?: unknown }).user as never);
      req.session.destroy(() => res.sendStatus(204));
    } catch (err) {
      next(err);
    }
  });
  // Everything the middleware put in res.locals, with isOnline/lastSeen asked about ?ask=JSON-array.
  app.get(['/locals', '/static/locals'], (req, res) => {
    const ask = JSON.parse(String(req.query.ask ?? '[]')) as unknown[];
    const locals = res.locals;
    res.json({
      present: 'onlineCount' in locals,
      onlineCount: locals.onlineCount,
      onlineGuests: locals.onlineGuests,
      onlineHidden: locals.onlineHidden,
      onlineBots: locals.onlineBots,
      onlineRecord: locals.onlineRecord,
      onlineNowIds: locals.onlineNowIds,
      onlineNow: locals.onlineNow,
      isOnline: typeof locals.isOnline === 'function' ? ask.map((a) => locals.isOnline(a)) : null,
      lastSeen: typeof locals.lastSeen === 'function' ? ask.map((a) => locals.lastSeen(a)) : null,
      timeAgo: typeof locals.timeAgo === 'function' ? ask.map((a) => locals.timeAgo(a)) : null,
      // Asked about the listed entries themselves, as `{% if entry | isOnline %}` does.
      listedOnline: typeof locals.isOnline === 'function' ? locals.onlineNow.map((e) => locals.isOnline(e)) : null,
    });
  });
  return { app, online };
}

export interface LocalsJson {
  present: boolean;
  onlineCount: number;
  onlineGuests: number;
  onlineHidden: number;
  onlineBots: number;
  onlineRecord: { count: number; at: string };
  onlineNowIds: (string | number)[];
  onlineNow: Record<string, unknown>[];
  isOnline: boolean[] | null;
  lastSeen: (string | null)[] | null;
  timeAgo: string[] | null;
  listedOnline: boolean[] | null;
}

/**
 * `tracker.client()`: the browser side's three routes, under one path
 * (default `/online-now`):
 *   GET  {path}/client.js  the script (see lib/live/browser/online-now.js)
 *   POST {path}/beat       a tab's heartbeat: keeps its user online (active, for status, when the page saw input:
 *                          `active`), its room tab alive, its mode and lock claim,
 *                          and its asks for the lock (ask), or as the holder its answer (handover, decline);
 *                          503 when such a change of the lock could not be confirmed with Redis (the next beat retries)
 *                          (409: the tab is not one this server signed, e.g. minted before a restart with a
 *                          random secret: the page reloads its room state and beats with the new tab)
 *   POST {path}/leave      a tab closed (navigator.sendBeacon)
 * Who beats is always the session's user: a body names a room and a tab, never a user.
 */
import { readFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { OnlineNowConfigError } from '../core/errors';
import { isMode, type Rooms } from './here';
import { isRoomName, isTabId } from '../core/room-index';
import { refuseCrossSite } from '../express/same-origin';
import type { OnlineRequest, Store } from '../core/types';
import { STAFF } from '../core/presence-index';
import type { UserResolver } from '../express/user-resolver';

/** A beat's body is a few dozen bytes; anything past this is not ours. */
const MAX_BODY = 2048;

export interface ClientOptions {
  /** Where the routes live. Default "/online-now"; `events()` is expected at `{path}/events` unless the tag says otherwise. */
  path?: string;
  /**
   * Origins whose pages may beat besides the request's own host (as Express
   * reads it, `trust proxy` included), such as `['https://example.com']`: for a
   * proxy that rewrites Host and cannot say so. See docs/live-in-production.md.
   */
  origins?: readonly string[];
}

type Req = IncomingMessage & OnlineRequest & { body?: unknown };
type Res = ServerResponse;
type Next = (err?: unknown) => void;

class TooLarge extends Error {}

let script: { body: Buffer; etag: string } | undefined;

/** The built, minified script (dist/live/browser), or the readable source when run from lib/ (tests under tsx). */
function clientScript(): { body: Buffer; etag: string } {
  if (script === undefined) {
    let body: Buffer;
    try {
      body = readFileSync(join(__dirname, 'browser', 'online-now.min.js'));
    } catch {
      body = readFileSync(join(__dirname, 'browser', 'online-now.js'));
    }
    script = { body, etag: `"${createHash('sha1').update(body).digest('base64url').slice(0, 16)}"` };
  }
  return script;
}

export function checkPath(path: unknown): string {
  if (typeof path !== 'string' || !path.startsWith('/') || /[\s?#]/.test(path)) {
    throw new OnlineNowConfigError('ERR_ONLINE_NOW_PATH', `client({ path }) takes a path such as "/online-now", got ${JSON.stringify(path)}.`);
  }
  return path.replace(/\/+$/, '');
}

/**
 * The request's JSON body: parsed already by the app's body parser (express.json,
 * express.text: the stream is then spent), or read here, at most MAX_BODY bytes.
 */
async function readBody(req: Req): Promise<unknown> {
  const body = req.body;
  // Express 4's parsers leave `{}` for a type they skip, with the stream unread.
  const parsed = typeof body === 'string' || Buffer.isBuffer(body) || (typeof body === 'object' && body !== null && Object.keys(body).length > 0);
  if (req.readableEnded || parsed) {
    if (typeof body === 'string') return JSON.parse(body);
    if (Buffer.isBuffer(body)) return JSON.parse(body.toString('utf8'));
    return typeof body === 'object' && body !== null ? body : {};
  }
  const text = await new Promise<string>((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_BODY) {
        // Not read on: the answer (413) closes the connection.
        req.pause();
        reject(new TooLarge());
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
  return JSON.parse(text);
}

/** A body that is not a JSON object (null, a number, an array) is treated as empty, and so refused. */
function objectOf(body: unknown): Record<string, unknown> {
  return typeof body === 'object' && body !== null && !Array.isArray(body) ? (body as Record<string, unknown>) : {};
}

function send(res: Res, status: number, body?: unknown): void {
  res.statusCode = status;
  res.setHeader('Cache-Control', 'no-store');
  if (body === undefined) {
    res.end();
    return;
  }
  res.setHeader('Content-Type', 'application/json; charset=utf-8');
  res.end(JSON.stringify(body));
}

export function createClientRoutes(path: string, origins: ReadonlySet<string>, store: Store, resolver: UserResolver, rooms: Rooms): (req: Req, res: Res, next: Next) => void {
  const routes: Record<string, (req: Req, res: Res) => Promise<void>> = {
    [`GET ${path}/client.js`]: (req, res) => {
      const { body, etag } = clientScript();
      res.setHeader('ETag', etag);
      res.setHeader('Cache-Control', 'public, max-age=3600');
      if (req.headers['if-none-match'] === etag) res.statusCode = 304;
      else res.setHeader('Content-Type', 'text/javascript; charset=utf-8');
      res.end(res.statusCode === 304 ? undefined : body);
      return Promise.resolve();
    },
    [`POST ${path}/beat`]: async (req, res) => {
      const user = resolver.userOf(req);
      // Nobody to keep online: 204 stops the page's heartbeats, without an error in its console.
      if (user === undefined) return send(res, 204);
      const body = objectOf(await readBody(req)) as {
        tab?: unknown;
        room?: unknown;
        mode?: unknown;
        takeover?: unknown;
        claim?: unknown;
        away?: unknown;
        ask?: unknown;
        decline?: unknown;
        handover?: unknown;
        recheck?: unknown;
        active?: unknown;
      };
      const mode = body.mode ?? 'viewing';
      if (!isTabId(body.tab) || !isMode(mode) || (body.room !== undefined && !isRoomName(body.room))) return send(res, 400);
      // Only a tab here() minted for this user and room (a page the app served them) beats in a room. Not
      // 403: a page whose tab this server cannot read asks the app for the page again (here() mints a new one).
      if (body.room !== undefined && !rooms.tabIds.verify(body.tab, body.room, user.key)) return send(res, 409);
      // A reader who stays on a page stays online; active (status) only when the page says someone used it.
      const active = body.active === true && body.away !== true;
      const profile = active || resolver.statuses === undefined ? user.profile : resolver.presenceProfile(user, (await store.view('users', 0, STAFF)).profile?.(user.key) ?? null);
      await store.touch('users', user.key, user.id, profile);
      if (body.room === undefined) return send(res, 200, {});
      const { room, tab } = body;
      const known = rooms.tabIds.claimOf(body.claim, room, user.key, tab);
      const { view, confirmed } = await rooms.touch(
        {
          room,
          tab,
          key: user.key,
          id: user.id,
          profile: user.profile,
          mode,
          takeover: body.takeover === true,
          away: body.away === true,
          known,
          ask: body.ask === 'new' ? 'new' : body.ask === true,
          decline: body.decline === true,
          handover: body.handover === true,
          recheck: body.recheck === true,
        },
        resolver.viewerOf(req, user),
      );
      // A change of the lock's holder that Redis did not confirm: made here, it goes with the next sync, and the
      // page's next beat (its echo still the old claim) confirms it again. Until then the page is not told it holds.
      if (!confirmed) {
        res.setHeader('Retry-After', '1');
        return send(res, 503);
      }
      const self = view.self === undefined ? undefined : rooms.tabIds.signClaim(room, user.key, tab, view.self);
      send(res, 200, { self, ...rooms.payload(view) });
    },
    [`POST ${path}/leave`]: async (req, res) => {
      const user = resolver.userOf(req);
      if (user === undefined) return send(res, 401);
      const body = objectOf(await readBody(req)) as { tab?: unknown; room?: unknown };
      if (!isTabId(body.tab) || !isRoomName(body.room)) return send(res, 400);
      if (!rooms.tabIds.verify(body.tab, body.room, user.key)) return send(res, 403);
      await rooms.roomStore().roomLeave(body.room, user.key, body.tab);
      send(res, 204);
    },
  };
  return function onlineNowClient(req, res, next) {
    const url = req.originalUrl ?? req.url ?? '';
    const pathname = url.split('?', 1)[0];
    const route = routes[`${req.method} ${pathname}`];
    if (route === undefined) {
      next();
      return;
    }
    if (req.method === 'POST' && refuseCrossSite(req, origins, resolver.reporter)) {
      send(res, 403);
      return;
    }
    route(req, res).catch((error: unknown) => {
      // A malformed body is the client's mistake; anything else is ours, and reported.
      if (error instanceof TooLarge) {
        res.setHeader('Connection', 'close');
        send(res, 413);
      } else if (error instanceof SyntaxError) send(res, 400);
      else {
        resolver.reporter.report('client', error);
        if (!res.headersSent) send(res, 503);
      }
    });
  };
}

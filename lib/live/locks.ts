/**
 * Editing safely together, on top of a room's editing lock:
 *   requireLock(room)  middleware for write routes: only the lock's holder writes (423 otherwise, with who holds it)
 *   changed(req, room) after a save: every other open page of the room is told who saved, and when
 *   release(req, room) staff end a lock
 *   locks(), lockBadges(req, rooms)  who holds what, for an admin page or a list view
 * Asking for the lock is a heartbeat's (see Rooms.touch and the client script).
 *
 * The guard decides on the store's clock, never the browser's. On a store shared
 * across processes it first confirms (Store.confirm: one sync, shared by the
 * writes waiting for it), so a takeover answered by another process a moment
 * ago counts; when the shared store cannot be reached, the write is refused
 * (503, "cannot confirm the lock"): allowing it could let two people save over
 * each other, refusing it loses nothing the user cannot send again.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { OnlineNowConfigError } from '../core/errors';
import { isRoomName, noteTab } from '../core/room-index';
import { withTimeout } from '../core/timeout';
import { checkOptions, optionalFunction, optionNames } from '../core/validations';
import type { OnlineRequest, RoomLock, RoomLockState, Viewer } from '../core/types';
import type { UserResolver } from '../express/user-resolver';
import { refusedHtml, refusedText } from '../templates/fragments';
import type { Rooms } from './here';

/** A guarded write waits at most this long for the shared store before it is refused as unconfirmed. */
const CONFIRM_WAIT_MS = 2000;

type Req = IncomingMessage & OnlineRequest & { res?: ServerResponse & { locals?: Record<string, unknown> } };

/** Why a write was refused, as `requireLock`'s answer and `onRefused` give it. */
export interface LockRefusal {
  /** 423: someone else holds the lock, or nobody does; 503: the lock could not be confirmed (the shared store did not answer). */
  readonly status: 423 | 503;
  /** `lock-held`, `lock-free` (open the page for editing first) or `lock-unconfirmed`. */
  readonly error: 'lock-held' | 'lock-free' | 'lock-unconfirmed';
  readonly room: string;
  /** Who holds it, as the writer may see them (null: nobody, or not known). */
  readonly lock: RoomLock | null;
  /** A sentence for people ("Ada Lovelace is editing this order since 2 minutes ago."), and the same as HTML. */
  readonly message: string;
  readonly html: string;
}

export interface RequireLockOptions<Q = never, S = never> {
  /**
   * Answers a refused write yourself (render the form again with `refusal.html`,
   * say): `(req, res, refusal) => void`. Default: `refusal.status` with JSON
   * `{ error, message, room, lock }` for a request that asks for JSON (fetch,
   * htmx with `Accept: application/json`), else the HTML sentence.
   */
  onRefused?: (req: Q, res: S, refusal: LockRefusal) => void;
}

const requireLockOptions = optionNames<RequireLockOptions>({ onRefused: true });

type Room = string | ((req: never) => string);

function accepted(req: Req, type: 'json' | 'html'): boolean {
  const accepts = (req as { accepts?: (types: string[]) => string | false }).accepts;
  if (typeof accepts === 'function') return accepts.call(req, ['html', 'json']) === type;
  return type === 'html';
}

export class Locks {
  constructor(
    private readonly rooms: Rooms,
    private readonly resolver: UserResolver,
    /** Staff who may release others' locks: `canReleaseLocks`. */
    private readonly canRelease: ((req: never) => boolean) | undefined,
  ) {}

  requireLock(room: Room, options: RequireLockOptions = {}): (req: Req, res: ServerResponse, next: (err?: unknown) => void) => void {
    if (typeof room !== 'function' && !isRoomName(room)) {
      throw new OnlineNowConfigError(
        'ERR_ONLINE_NOW_ROOM',
        `requireLock(room) takes a room name (such as "order:123") or a function of the request that gives one, such as (req) => \`order:\${req.params.id}\`; got ${JSON.stringify(room)}.`,
      );
    }
    checkOptions('requireLock()', options, requireLockOptions);
    optionalFunction('onRefused', options.onRefused, '(req, res, refusal) => void');
    this.rooms.roomStore(); // a store without rooms fails here, at startup
    return (req, res, next) => {
      const name = typeof room === 'function' ? room(req as never) : room;
      if (!isRoomName(name)) {
        next(
          new OnlineNowConfigError(
            'ERR_ONLINE_NOW_ROOM',
            `requireLock(room): the function gave ${JSON.stringify(name)}, not a room name (1–200 characters without control characters).`,
          ),
        );
        return;
      }
      this.check(req, name).then((refusal) => {
        if (refusal === undefined) return next();
        if (options.onRefused !== undefined) return options.onRefused(req as never, res as never, refusal);
        res.statusCode = refusal.status;
        res.setHeader('Cache-Control', 'no-store');
        if (refusal.status === 503) res.setHeader('Retry-After', '2');
        if (accepted(req, 'json')) {
          res.setHeader('Content-Type', 'application/json; charset=utf-8');
          res.end(JSON.stringify({ error: refusal.error, message: refusal.message, room: refusal.room, lock: refusal.lock }));
        } else {
          res.setHeader('Content-Type', 'text/html; charset=utf-8');
          res.end(refusal.html);
        }
      }, next);
    };
  }

  /** Undefined when the request's user holds `room`'s lock now (on the store's clock, confirmed with the shared store); else why not. */
  async check(req: Req, room: string): Promise<LockRefusal | undefined> {
    const store = this.rooms.roomStore();
    const user = this.resolver.userOf(req);
    const viewer = this.resolver.viewerOf(req, user);
    try {
      await withTimeout(this.rooms.confirm(), CONFIRM_WAIT_MS, 'the shared store did not answer');
    } catch {
      // The store reports its own failure (RedisStore: once, until Redis answers again).
      return this.refusal(503, room, null, false);
    }
    const view = await store.roomView(room, viewer);
    if (user !== undefined && view.lock?.mine === true) return undefined;
    return this.refusal(423, room, view.lock, true);
  }

  private refusal(status: 423 | 503, room: string, lock: RoomLock | null, confirmed: boolean): LockRefusal {
    const message = refusedText(lock, room, confirmed, this.rooms.now());
    const error = !confirmed ? 'lock-unconfirmed' : lock === null ? 'lock-free' : 'lock-held';
    return { status, error, room, lock, message, html: refusedHtml(message) };
  }

  /**
   * The request's user saved `room`: every other page open on it is told (the
   * `changed` event and its fragment). In the shared store before it resolves,
   * when it can be reached. False for a signed-out request (nobody to name).
   */
  async changed(req: Req, room: string): Promise<boolean> {
    if (!isRoomName(room)) throw new OnlineNowConfigError('ERR_ONLINE_NOW_ROOM', `changed(req, room) takes a room name such as "order:123", got ${JSON.stringify(room)}.`);
    return this.note(req, room, 'saved');
  }

  /**
   * Staff end `room`'s lock (its holder's page is told, and cannot claim it
   * back by heartbeat). False when `canReleaseLocks` does not allow this request.
   */
  async release(req: Req, room: string): Promise<boolean> {
    if (!isRoomName(room)) throw new OnlineNowConfigError('ERR_ONLINE_NOW_ROOM', `release(req, room) takes a room name such as "order:123", got ${JSON.stringify(room)}.`);
    if (this.canRelease?.(req as never) !== true) return false;
    return this.note(req, room, 'released');
  }

  private async note(req: Req, room: string, kind: 'saved' | 'released'): Promise<boolean> {
    const user = this.resolver.userOf(req);
    if (user === undefined) return false;
    await this.rooms
      .roomStore()
      .roomTouch({ room, tab: noteTab(kind), key: user.key, id: user.id, profile: user.profile, mode: 'viewing', takeover: false }, this.resolver.viewerOf(req, user));
    await this.rooms.pushed();
    return true;
  }

  /** Every locked room (or the named ones, locked or not): who holds it, since when, whether their page is away, and any ask. Staff's view. */
  locks(rooms?: readonly string[]): Promise<RoomLockState[]> {
    return this.rooms.locks({ seesHidden: true }, rooms?.filter(isRoomName));
  }

  /**
   * A list view's badges: each room's lock as the request's user may see it, in
   * one store call; also as `res.locals.onlineLocks` (room → lock or null) for
   * the `onlineLockBadge(room)` helper. The script keeps them live for viewers
   * that `events({ canListLocks })` allows.
   */
  async lockBadges(req: Req, rooms: readonly string[]): Promise<Record<string, RoomLock | null>> {
    const user = this.resolver.userOf(req);
    const viewer: Viewer = this.resolver.viewerOf(req, user);
    const byRoom: Record<string, RoomLock | null> = Object.create(null) as Record<string, RoomLock | null>;
    for (const { room, lock } of await this.rooms.locks(viewer, rooms.filter(isRoomName))) byRoom[room] = lock;
    const locals = req.res?.locals;
    if (locals !== undefined) locals.onlineLocks = byRoom;
    return byRoom;
  }
}

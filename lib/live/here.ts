/**
 * `tracker.here(req, room)`: the request's user joins a room (one tab: this
 * page view) and the page gets the room's viewers and lock as locals. Also what
 * the client's heartbeats and leaves do, and the JSON a room is sent as.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import { OnlineNowConfigError } from '../core/errors';
import { hereHtml, lockHtml } from '../templates/fragments';
import { isRoomName, isTabClaim, newTabId } from '../core/room-index';
import type { OnlineRequest, RoomMode, RoomView, Store, TabClaim } from '../core/types';
import type { UserResolver } from '../express/user-resolver';

export interface HereOptions {
  /** 'editing' asks for the room's editing lock; the first editor holds it. Default 'viewing'. */
  mode?: RoomMode;
  /** Take the lock from whoever holds it (their page is told). */
  takeover?: boolean;
}

/** What `here()` gives, and sets as locals. */
export interface HereView extends RoomView {
  /** This page view's tab: the client script beats and leaves with it. */
  readonly tab: string;
  readonly mode: RoomMode;
}

type RoomStore = Required<Pick<Store, 'roomTouch' | 'roomLeave' | 'roomView'>>;

/**
 * Tabs in a room are minted by `here()`, that is by a page the app chose to
 * serve: the id carries an HMAC of its room and user. So a heartbeat can keep
 * alive, or take the lock for, only a tab the app gave this user for this
 * room, and nobody joins (or reads the events of) a room by naming it.
 */
export class TabIds {
  constructor(private readonly secret: string | Buffer) {}

  mint(room: string, userKey: string): string {
    const nonce = newTabId();
    return nonce + this.mac(nonce, room, userKey);
  }

  verify(tab: string, room: string, userKey: string): boolean {
    return tab.length === 44 && sameMac(this.mac(tab.slice(0, 22), room, userKey), tab.slice(22));
  }

  /**
   * A tab's record as its page gets it, signed: the page echoes it in its
   * heartbeats (RoomTouch.known), and only what this server said is taken back.
   */
  signClaim(room: string, userKey: string, tab: string, claim: TabClaim): SignedClaim {
    const signed = `${tab}\n${claim.claim}\n${claim.gen}\n${claim.since}\n${claim.until}`;
    return { claim: claim.claim, gen: claim.gen, since: claim.since, until: claim.until, sig: this.mac(signed, room, userKey) };
  }

  /** The echoed record, when it is one this server signed for this tab; else undefined. */
  claimOf(echo: unknown, room: string, userKey: string, tab: string): TabClaim | undefined {
    if (!isTabClaim(echo) || typeof (echo as SignedClaim).sig !== 'string') return undefined;
    return sameMac(this.signClaim(room, userKey, tab, echo).sig, (echo as SignedClaim).sig) ? { claim: echo.claim, gen: echo.gen, since: echo.since, until: echo.until } : undefined;
  }

  private mac(nonce: string, room: string, userKey: string): string {
    return createHmac('sha256', this.secret).update(`${nonce}\n${room}\n${userKey}`).digest('base64url').slice(0, 22);
  }
}

/** Compared in constant time: a timing difference would tell a forger how much of a MAC is right. */
function sameMac(expected: string, given: string): boolean {
  const a = Buffer.from(expected);
  const b = Buffer.from(given);
  return a.length === b.length && timingSafeEqual(a, b);
}

/** A tab's record with the server's signature, as pages echo it. */
export interface SignedClaim extends TabClaim {
  readonly sig: string;
}

export function isMode(mode: unknown): mode is RoomMode {
  return mode === 'viewing' || mode === 'editing';
}

/** A room as a heartbeat's reply and an SSE `here` event send it. */
export interface RoomPayload {
  /** A heartbeat's own tab record, signed, for its page to echo back. */
  readonly self?: SignedClaim;
  readonly room: string;
  readonly count: number;
  readonly here: RoomView['entries'];
  readonly lock: RoomView['lock'];
  /** Ready HTML: the viewers, the lock as others see it, and as its holding tab does. */
  readonly html: { readonly here: string; readonly lock: string; readonly lockMine: string };
}

export function roomPayload(view: RoomView, now: number = Date.now()): RoomPayload {
  return {
    room: view.room,
    count: view.count,
    here: view.entries,
    lock: view.lock,
    html: { here: hereHtml(view.entries), lock: lockHtml(view.lock, false, now), lockMine: lockHtml(view.lock, true, now) },
  };
}

export class Rooms {
  constructor(
    private readonly store: Store,
    private readonly resolver: UserResolver,
    readonly tabIds: TabIds,
  ) {}

  /** The store's rooms, or an error that says why there are none. */
  roomStore(): RoomStore {
    const s = this.store;
    const problem = s.roomsProblem?.();
    if (problem !== undefined) throw problem;
    if (typeof s.roomTouch !== 'function' || typeof s.roomLeave !== 'function' || typeof s.roomView !== 'function') {
      throw new OnlineNowConfigError(
        'ERR_ONLINE_NOW_NO_ROOMS',
        'this store has no rooms (roomTouch, roomLeave, roomView): here() and room events need MemoryStore, RedisStore, or a store that implements them.',
      );
    }
    return s as RoomStore;
  }

  async here(req: OnlineRequest, room: string, options: HereOptions = {}): Promise<HereView> {
    if (!isRoomName(room)) {
      throw new OnlineNowConfigError('ERR_ONLINE_NOW_ROOM', `here(req, room) takes a room name of 1–200 characters without control characters, such as \`order:\${order.id}\`; got ${typeof room === 'string' ? JSON.stringify((room as string).slice(0, 40)) : typeof room}.`);
    }
    const mode = options.mode ?? 'viewing';
    if (!isMode(mode)) {
      throw new OnlineNowConfigError('ERR_ONLINE_NOW_ROOM', `here(req, room, { mode }) takes mode 'viewing' or 'editing', got ${JSON.stringify(mode)}.`);
    }
    const store = this.roomStore();
    const user = this.resolver.userOf(req);
    const viewer = this.resolver.viewerOf(req, user);
    const tab = user === undefined ? newTabId() : this.tabIds.mint(room, user.key);
    // A signed-out reader sees the room but is not in it: a room lists people.
    const view =
      user === undefined
        ? await store.roomView(room, viewer)
        : await store.roomTouch({ room, tab, key: user.key, id: user.id, profile: user.profile, mode, takeover: options.takeover === true }, viewer);
    const here: HereView = Object.freeze({ room: view.room, count: view.count, entries: view.entries, lock: view.lock, members: view.members, self: view.self, tab, mode });
    const locals = (req as { res?: { locals?: Record<string, unknown> } }).res?.locals;
    if (locals !== undefined) {
      locals.onlineHere = view.entries;
      locals.onlineHereCount = view.count;
      locals.onlineHereLock = view.lock;
      locals.onlineHereRoom = room;
      locals.onlineHereTab = tab;
      locals.onlineHereMode = mode;
      // For the script tag (data-claim): the page echoes its tab's claim back on its first heartbeat.
      locals.onlineHereSelf = user === undefined || view.self === undefined ? undefined : this.tabIds.signClaim(room, user.key, tab, view.self);
    }
    return here;
  }
}

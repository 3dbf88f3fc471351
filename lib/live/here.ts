/**
 * `tracker.here(req, room)`: the request's user joins a room (one tab: this
 * page view) and the page gets the room's viewers and lock as locals. Also what
 * the client's heartbeats and leaves do, and the JSON a room is sent as.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import { OnlineNowConfigError } from '../core/errors';
import { changedHtml, hereHtml, lockHtml, requestHtml } from '../templates/fragments';
import { isRoomName, isTabClaim, newTabId, tabClaim } from '../core/room-index';
import { statusIn } from '../core/status';
import type { OnlineRequest, RoomEntry, RoomLock, RoomLockState, RoomMode, RoomTouch, RoomView, Store, TabClaim, Viewer } from '../core/types';
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
    const record = tabClaim(claim);
    const signed = `${tab}\n${record.claim}\n${record.gen}\n${record.since}\n${record.until}\n${record.ask ?? 0}\n${record.declined ?? 0}\n${record.grant ?? ''}`;
    return { ...record, sig: this.mac(signed, room, userKey) };
  }

  /** The echoed record, when it is one this server signed for this tab; else undefined. */
  claimOf(echo: unknown, room: string, userKey: string, tab: string): TabClaim | undefined {
    if (!isTabClaim(echo) || typeof (echo as SignedClaim).sig !== 'string') return undefined;
    return sameMac(this.signClaim(room, userKey, tab, echo).sig, (echo as SignedClaim).sig) ? tabClaim(echo) : undefined;
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
  /** The latest save (`changed()`), or null. */
  readonly saved: RoomView['saved'];
  /** The earliest ask for the lock, or null. */
  readonly request: RoomView['request'];
  /** When (ms, the store's clock, as `now`) the lock passes to the asker unless its holder declines; null: not without the holder. */
  readonly handOverAt: number | null;
  /** The holder's page is warned this many ms before `handOverAt` (a cancelable `online-now:handover` event). */
  readonly grace: number;
  /** Now on the store's clock, for a page to time the above by. */
  readonly now: number;
  /**
   * Ready HTML: the viewers, the lock as others see it and as its holding tab
   * does, the latest save, and the ask as its holder and as its asker see it.
   */
  readonly html: { readonly here: string; readonly lock: string; readonly lockMine: string; readonly changed: string; readonly request: string; readonly requestMine: string };
}

/** How an ask for the lock is answered when its holder does not answer. */
export interface AskSettings {
  /** ms after an ask before the holder's page is warned (and `grace` later, the lock passes). */
  readonly waitMs: number;
  readonly graceMs: number;
  /** Whether the lock may pass without its holder's word (default: their page is in the background). */
  readonly handOver: (lock: RoomLock) => boolean;
}

export function roomPayload(view: RoomView, asks: AskSettings, now: number): RoomPayload {
  const request = view.request ?? null;
  const handOverAt = request !== null && !request.declined && view.lock !== null && asks.handOver(view.lock) ? request.since.getTime() + asks.waitMs + asks.graceMs : null;
  return {
    room: view.room,
    count: view.count,
    here: view.entries,
    lock: view.lock,
    saved: view.saved ?? null,
    request,
    handOverAt,
    grace: asks.graceMs,
    now,
    html: {
      here: hereHtml(view.entries),
      lock: lockHtml(view.lock, false, now),
      lockMine: lockHtml(view.lock, true, now),
      changed: changedHtml(view.saved, view.room, now),
      request: requestHtml(request, view.lock, false, now),
      requestMine: requestHtml(request, view.lock, true, now),
    },
  };
}

/** A tab's heartbeat as the live layer takes it: a RoomTouch, and whether its holder hands the lock to the asker. */
/** A heartbeat's touch. `recheck`: the page saw its lock go on its stream, so its reply must not be a replica a sync behind. */
export type LiveTouch = RoomTouch & { readonly handover?: boolean | undefined; readonly recheck?: boolean | undefined };

export class Rooms {
  constructor(
    private readonly store: Store,
    private readonly resolver: UserResolver,
    readonly tabIds: TabIds,
    readonly asks: AskSettings,
  ) {}

  /** Now on the store's clock: the times rooms are kept in. */
  now(): number {
    return this.store.dateNow?.() ?? Date.now();
  }

  /**
   * With status on, each member with their site-wide status as this viewer may
   * see it (`onlineStatus`): one view of the users for the whole room.
   */
  async withStatuses(view: RoomView, viewer: Viewer): Promise<RoomView> {
    const statuses = this.resolver.statuses;
    if (statuses === undefined || view.entries.length === 0) return view;
    const users = await this.store.view('users', 0, viewer);
    const entries = view.entries.map((e) => Object.freeze(Object.assign({}, e, { status: statusIn(users, this.resolver.keyFor(e.id) ?? '', statuses) })) as RoomEntry);
    return { ...view, entries };
  }

  /** A room as pages get it (a heartbeat's reply, an SSE `here`). */
  payload(view: RoomView): RoomPayload {
    return roomPayload(view, this.asks, this.now());
  }

  /**
   * Brings a shared store up to now (see Store.confirm), or rejects. Nothing to
   * do on a store that is the state itself.
   */
  confirm(): Promise<void> {
    return this.store.confirm?.() ?? Promise.resolve();
  }

  /**
   * As confirm(), for a change that stands anyway: when the shared store cannot
   * be reached now, it goes with the next sync (the store reports its failure). False then.
   */
  pushed(): Promise<boolean> {
    return this.confirm().then(
      () => true,
      () => false,
    );
  }

  /**
   * A tab's touch. With a shared store, whatever changes who holds a lock (a
   * claim, a takeover, a hand-over, an ask that waited long enough), and a
   * holder's page asking again after its stream showed the lock gone, is decided
   * on the room as Redis has it now and is in Redis before the page is
   * answered: so a guarded write on any process, begun after that answer, sees
   * it (two round trips, for lock changes only; a plain heartbeat, and the
   * holder's, cost none). `confirmed` is false when Redis could not be reached
   * for such a change: it was made here and goes with the next sync.
   */
  async touch(t: LiveTouch, viewer: Viewer): Promise<{ view: RoomView; confirmed: boolean }> {
    const store = this.roomStore();
    let touch: RoomTouch = t;
    let confirmed = true;
    // A lock this replica sees free is claimed on the room as Redis has it: another process's claim may be on its way.
    const claiming = this.store.confirm !== undefined && t.mode === 'editing' && (await store.roomView(t.room, viewer)).lock === null;
    if (claiming || t.takeover || t.handover === true || t.ask === true || t.ask === 'new' || t.recheck === true) {
      confirmed = await this.pushed();
      const current = await store.roomView(t.room, { seesHidden: true, self: t.key });
      const request = current.request;
      const pending = request !== null && request !== undefined && !request.declined;
      // Only the holding tab hands over, and only to an ask it has seen.
      if (t.handover === true && pending && current.lock?.tab === t.tab) touch = { ...t, grant: request.tab };
      // An ask its holder left unanswered past the wait and the grace: taken, if the holder's page allows it (away).
      const ripe =
        pending &&
        request.tab === t.tab &&
        current.lock !== null &&
        this.asks.handOver(current.lock) &&
        this.now() >= request.since.getTime() + this.asks.waitMs + this.asks.graceMs;
      if (ripe) touch = { ...t, takeover: true };
    }
    const view = await store.roomTouch(touch, viewer);
    const self = view.self;
    const claimed = self !== undefined && self.claim !== 0 && (t.known?.claim !== self.claim || t.known.gen !== self.gen);
    if (!claimed && touch.grant === undefined && t.decline !== true) return { view: await this.withStatuses(view, viewer), confirmed };
    confirmed = (await this.pushed()) && confirmed;
    return { view: await this.withStatuses({ ...(await store.roomView(t.room, viewer)), self }, viewer), confirmed };
  }

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

  /** Rooms' locks in one store call: the named rooms' (locked or not), or every locked room's. */
  async locks(viewer: Viewer, rooms?: readonly string[]): Promise<RoomLockState[]> {
    const store = this.roomStore();
    if (this.store.roomLocks !== undefined) return this.store.roomLocks(viewer, rooms);
    if (rooms === undefined)
      throw new OnlineNowConfigError(
        'ERR_ONLINE_NOW_NO_ROOMS',
        'this store cannot list its rooms (roomLocks): locks() needs MemoryStore, RedisStore, or rooms named: locks({ rooms }).',
      );
    // A custom store: one view per room.
    return Promise.all(
      rooms.map(async (room) => {
        const view = await store.roomView(room, viewer);
        return { room, lock: view.lock, request: view.request ?? null };
      }),
    );
  }

  async here(req: OnlineRequest, room: string, options: HereOptions = {}): Promise<HereView> {
    if (!isRoomName(room)) {
      throw new OnlineNowConfigError(
        'ERR_ONLINE_NOW_ROOM',
        `here(req, room) takes a room name of 1–200 characters without control characters, such as \`order:\${order.id}\`; got ${typeof room === 'string' ? JSON.stringify((room as string).slice(0, 40)) : typeof room}.`,
      );
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
        ? await this.withStatuses(await store.roomView(room, viewer), viewer)
        : // A page renders whether or not Redis confirmed its claim (it goes with the next sync).
          (await this.touch({ room, tab, key: user.key, id: user.id, profile: user.profile, mode, takeover: options.takeover === true }, viewer)).view;
    const here: HereView = Object.freeze({
      room: view.room,
      count: view.count,
      entries: view.entries,
      lock: view.lock,
      members: view.members,
      self: view.self,
      saved: view.saved,
      request: view.request,
      tab,
      mode,
    });
    const locals = (req as { res?: { locals?: Record<string, unknown> } }).res?.locals;
    if (locals !== undefined) {
      locals.onlineHere = view.entries;
      locals.onlineHereCount = view.count;
      locals.onlineHereLock = view.lock;
      locals.onlineHereRoom = room;
      locals.onlineHereTab = tab;
      locals.onlineHereMode = mode;
      locals.onlineHereSaved = view.saved ?? null;
      locals.onlineHereRequest = view.request ?? null;
      // For the script tag (data-claim): the page echoes its tab's claim back on its first heartbeat.
      locals.onlineHereSelf = user === undefined || view.self === undefined ? undefined : this.tabIds.signClaim(room, user.key, tab, view.self);
    }
    return here;
  }
}

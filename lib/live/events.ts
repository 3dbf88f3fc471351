/**
 * `tracker.events()`: Server-Sent Events for live pages. Each process looks at
 * its own store's state a few times a second (the memory store, or a
 * RedisStore's replica, which the sync feed keeps current across processes),
 * finds what changed since the last look, and writes it to its own clients.
 * So events cross processes through the same versioned change feed presence
 * does: nothing is lost in a Redis blip (a process reads on from its cursor),
 * and no second Redis connection is opened.
 *
 * A connection subscribes to: the counts (always), the online list (`list=1`),
 * the badges of up to 200 users (`ids`), and up to 50 rooms the user is in
 * (`rooms`). Work per look is O(watched ids + subscribed rooms' tabs), not
 * O(users online); each change is serialized once per audience and written
 * to each client that may see it (never a hidden user to whoever may not).
 */
import { randomBytes } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { keyOf } from '../core/identity';
import { statusIn, type OnlineStatus, type Statuses } from '../core/status';
import { displayName, listHtml, lockBadgeHtml } from '../templates/fragments';
import type { RoomPayload, Rooms } from './here';
import { isRoomName } from '../core/room-index';
import { checkOrigins, refuseCrossSite } from '../express/same-origin';
import type { OnlineRequest, RoomView, ScopeView, Store, Viewer } from '../core/types';
import type { UserResolver } from '../express/user-resolver';
import { checkOptions, integerAtLeast, optionalFunction, optionNames, positiveNumber } from '../core/validations';
import type { SignedIn } from '../express/user-resolver';

export interface EventsOptions {
  /** Milliseconds between two looks for changes. Default 250. */
  interval?: number;
  /** Most clients connected to this process; more get 503 (and the browser retries). Default 10,000. */
  maxConnections?: number;
  /** Most of them signed out (guests): a flood of guests never takes signed-in users' streams. Default half of maxConnections. */
  maxGuestConnections?: number;
  /** Streams per signed-in user (one per browser: tabs share one); more get 429. Default 10. */
  maxPerUser?: number;
  /** Guests' streams per address (`req.ip`, so `trust proxy` applies); more get 429. Default 20. */
  maxPerAddress?: number;
  /**
   * Who may open a stream: `(req) => boolean` (or a Promise of one), called
   * after the session. False gives 403. Default: anyone who may load pages.
   */
  authorize?: (req: IncomingMessage) => boolean | Promise<boolean>;
  /**
   * Milliseconds a stream lives before it ends and the browser reconnects with
   * the cookies it has then, so who it is for (signed out, no longer staff) is
   * read afresh. Default 300,000 (5 minutes).
   */
  maxAge?: number;
  /** Origins whose pages may open a stream besides the request's own host: as `client({ origins })`. */
  origins?: readonly string[];
  /**
   * Who may follow rooms' lock badges (`locks=`: a list page's), whether or not
   * they are in those rooms: `(req) => boolean`, called after the session. Default: nobody.
   */
  canListLocks?: (req: IncomingMessage) => boolean;
}

const eventsOptions = optionNames<EventsOptions>({
  interval: true,
  maxConnections: true,
  maxGuestConnections: true,
  maxPerUser: true,
  maxPerAddress: true,
  authorize: true,
  canListLocks: true,
  maxAge: true,
  origins: true,
});

/** A browser's stream carries every room its tabs are in. */
const MAX_ROOMS_PER_CONNECTION = 50;
const MAX_IDS_PER_CONNECTION = 200;
/** A client this far behind (unsent bytes) is dropped: its browser reconnects and gets the state afresh. */
const MAX_BUFFERED = 64 * 1024;
/** A comment line this often keeps proxies from closing an idle stream. */
const PING_MS = 20_000;
/** The browser waits this long before reconnecting. */
const RETRY_MS = 2000;

type Req = IncomingMessage & OnlineRequest & { query?: unknown };

interface Connection {
  readonly res: ServerResponse;
  /** Whose budget it counts against: `u:` a user, `a:` a guest's address. */
  readonly budget: string;
  readonly audience: Audience;
  readonly userKey: string | undefined;
  readonly rooms: readonly string[];
  readonly ids: readonly string[];
  /** Rooms whose lock badges it follows. */
  readonly locks: readonly string[];
  readonly list: boolean;
  readonly html: boolean;
  /** Nothing sent yet: the next look sends it the whole state. */
  fresh: boolean;
  /** Unsent bytes past MAX_BUFFERED when this look began (a look's own writes are not yet flushed). */
  behind: boolean;
  readonly openedAt: number;
  /** Per room, the state last sent (a room's events go to members only, so each connection keeps its own). */
  readonly sentRooms: Map<string, string>;
}

interface RoomState {
  readonly signature: string;
  readonly view: RoomView;
  /** The `here` event's data, and the HTML events' (made once per change, whatever the number of clients). */
  readonly data: string;
  readonly html: RoomPayload['html'];
}

/** Clients that see the same thing: everyone, staff, or one hidden user (who alone sees themself). */
interface Audience {
  readonly key: string;
  readonly viewer: Viewer;
  readonly connections: Set<Connection>;
  count: string | undefined;
  list: string | undefined;
  readonly online: Map<string, OnlineStatus>;
  readonly rooms: Map<string, RoomState>;
  /** Its connections by the rooms they subscribe to: a look visits each room's own. */
  readonly byRoom: Map<string, Set<Connection>>;
  /** And by the ids they watch: an idle look costs one lookup per distinct id, not per id per connection. */
  readonly byId: Map<string, Set<Connection>>;
  /** And by the rooms whose lock badges they follow, with each badge as last sent. */
  readonly byLock: Map<string, Set<Connection>>;
  readonly badges: Map<string, string>;
}

export interface EventSettings {
  readonly store: Store;
  readonly resolver: UserResolver;
  readonly rooms: Rooms;
  readonly max: number;
  readonly trackGuests: boolean;
  /** The hidden count for every audience, not only staff's. */
  readonly publicHiddenCount?: boolean;
  /** With `status` on: badges carry each user's status, and a change of it is sent. */
  readonly statuses?: Statuses | undefined;
}

/** Splits a query value: several values, or one separated by newlines (what the client script sends). */
function values(query: URLSearchParams, name: string): string[] {
  return query
    .getAll(name)
    .flatMap((v) => v.split('\n'))
    .filter((v) => v !== '');
}

function subscribe(index: Map<string, Set<Connection>>, name: string, connection: Connection): void {
  let subscribers = index.get(name);
  if (subscribers === undefined) index.set(name, (subscribers = new Set()));
  subscribers.add(connection);
}

function unsubscribe(index: Map<string, Set<Connection>>, name: string, connection: Connection): void {
  const subscribers = index.get(name);
  subscribers?.delete(connection);
  if (subscribers?.size === 0) index.delete(name);
}

/** A stream refused: 403 (not allowed), 429 (this viewer has enough), 503 (full: the browser retries later). */
function refuse(res: ServerResponse, status: 403 | 429 | 503): void {
  res.statusCode = status;
  if (status !== 403) res.setHeader('Retry-After', '5');
  // A flood's refused sockets are not kept open for its next request.
  res.setHeader('Connection', 'close');
  res.end();
}

/** One SSE message; every line of the data gets its own `data:` (a name may hold a newline). */
function message(id: string, event: string, data: string): string {
  return `id: ${id}\nevent: ${event}\ndata: ${data.split(/\r\n|\r|\n/).join('\ndata: ')}\n\n`;
}

export class EventHub {
  private readonly connections = new Set<Connection>();
  private readonly audiences = new Map<string, Audience>();
  private readonly boot = randomBytes(4).toString('hex');
  private seq = 0;
  private timer: NodeJS.Timeout | undefined;
  private looking = false;
  private closed = false;
  private lookSoon = false;
  private lastPing = Date.now();
  readonly interval: number;
  readonly maxConnections: number;
  readonly maxAge: number;
  readonly maxGuestConnections: number;
  readonly maxPerUser: number;
  readonly maxPerAddress: number;
  private readonly authorize: EventsOptions['authorize'];
  private readonly canListLocks: EventsOptions['canListLocks'];
  private readonly origins: ReadonlySet<string>;
  /** Open streams per budget (Connection.budget), and guests' in all. */
  private readonly budgets = new Map<string, number>();
  private guests = 0;

  constructor(
    private readonly settings: EventSettings,
    options: EventsOptions = {},
  ) {
    checkOptions('events()', options, eventsOptions);
    this.interval = positiveNumber('interval', options.interval ?? 250, '250 (ms)');
    this.maxConnections = integerAtLeast('maxConnections', options.maxConnections ?? 10_000, 1, '10000');
    this.maxAge = positiveNumber('maxAge', options.maxAge ?? 300_000, '300000 (ms)');
    this.origins = checkOrigins('events()', options.origins);
    this.maxGuestConnections = integerAtLeast('maxGuestConnections', options.maxGuestConnections ?? Math.ceil(this.maxConnections / 2), 0, 'half of maxConnections');
    this.maxPerUser = integerAtLeast('maxPerUser', options.maxPerUser ?? 10, 1, '10');
    this.maxPerAddress = integerAtLeast('maxPerAddress', options.maxPerAddress ?? 20, 1, '20');
    optionalFunction('authorize', options.authorize, '(req) => boolean (or a Promise of one)');
    optionalFunction('canListLocks', options.canListLocks, '(req) => boolean');
    this.canListLocks = options.canListLocks;
    this.authorize = options.authorize;
  }

  /** Clients connected to this process now. */
  get size(): number {
    return this.connections.size;
  }

  /** The SSE endpoint. */
  handler(): (req: Req, res: ServerResponse, next: (err?: unknown) => void) => void {
    return (req, res, next) => {
      if (req.method !== 'GET') {
        next();
        return;
      }
      if (refuseCrossSite(req, this.origins, this.settings.resolver.reporter)) return refuse(res, 403);
      if (this.authorize === undefined) return this.admit(req, res, next);
      let allowed: boolean | Promise<boolean>;
      try {
        allowed = this.authorize(req);
      } catch (error) {
        next(error);
        return;
      }
      if (allowed === true) return this.admit(req, res, next);
      if (typeof (allowed as Promise<boolean> | undefined)?.then !== 'function') return refuse(res, 403);
      (allowed as Promise<boolean>).then((yes) => (yes === true ? this.admit(req, res, next) : refuse(res, 403)), next);
    };
  }

  /** Opens the stream when the process, the viewer's budget, and guests' share have room. */
  private admit(req: Req, res: ServerResponse, next: (err?: unknown) => void): void {
    if (res.writableEnded || res.destroyed) return; // the client left while authorize() ran
    const user = this.settings.resolver.userOf(req);
    const address = (req as { ip?: string }).ip ?? req.socket?.remoteAddress ?? '';
    const budget = user === undefined ? `a:${address}` : `u:${user.key}`;
    if (this.closed || this.connections.size >= this.maxConnections || (user === undefined && this.guests >= this.maxGuestConnections)) {
      return refuse(res, 503);
    }
    if ((this.budgets.get(budget) ?? 0) >= (user === undefined ? this.maxPerAddress : this.maxPerUser)) return refuse(res, 429);
    try {
      this.open(req, res, user, budget);
    } catch (error) {
      next(error);
    }
  }

  /** A user signed out: their streams end (the browser reconnects as whoever it is now). */
  endFor(userKey: string): void {
    for (const c of [...this.connections]) if (c.userKey === userKey) c.res.end();
  }

  /** Ends every stream and stops looking (the tracker closed). */
  close(): void {
    this.closed = true;
    for (const c of this.connections) c.res.end();
    this.connections.clear();
    this.audiences.clear();
    clearInterval(this.timer);
    this.timer = undefined;
  }

  private open(req: Req, res: ServerResponse, user: SignedIn | undefined, budget: string): void {
    const query = new URL(req.url ?? '/', 'http://x').searchParams;
    const viewer = this.settings.resolver.viewerOf(req, user);
    // A hidden user sees themself: an audience of their own. Everyone else shares one of two.
    const own = user !== undefined && user.profile.hidden === true;
    const key = own ? `u:${user.key}` : viewer.seesHidden ? 's' : 'e';
    let audience = this.audiences.get(key);
    if (audience === undefined) {
      audience = {
        key,
        viewer: own ? viewer : { seesHidden: viewer.seesHidden },
        connections: new Set(),
        count: undefined,
        list: undefined,
        online: new Map(),
        rooms: new Map(),
        byRoom: new Map(),
        byId: new Map(),
        byLock: new Map(),
        badges: new Map(),
      };
      this.audiences.set(key, audience);
    }
    // `ids=1,2` and `ids=1&ids=2` alike (so an id containing a comma cannot be watched here).
    // Lock badges name rooms the viewer need not be in: only for whom the app allows.
    const locks = user !== undefined && this.canListLocks?.(req) === true ? [...new Set(values(query, 'locks').filter(isRoomName))].slice(0, MAX_IDS_PER_CONNECTION) : [];
    const ids = [
      ...new Set(
        values(query, 'ids')
          .flatMap((v) => v.split(','))
          .map(keyOf)
          .filter((k): k is string => k !== undefined),
      ),
    ].slice(0, MAX_IDS_PER_CONNECTION);
    // A signed-out reader is in no room: rooms they name cost nothing.
    const roomNames = user === undefined ? [] : [...new Set(values(query, 'rooms').filter(isRoomName))].slice(0, MAX_ROOMS_PER_CONNECTION);
    const connection: Connection = {
      res,
      budget,
      audience,
      userKey: user?.key,
      rooms: roomNames,
      ids,
      locks,
      list: query.get('list') === '1',
      html: query.get('html') === '1',
      fresh: true,
      behind: false,
      openedAt: Date.now(),
      sentRooms: new Map(),
    };
    res.statusCode = 200;
    res.setHeader('Content-Type', 'text/event-stream; charset=utf-8');
    res.setHeader('Cache-Control', 'no-store, no-transform');
    res.setHeader('X-Accel-Buffering', 'no');
    res.flushHeaders();
    // Last-Event-ID (or ?last=) needs no replay: every event is a state, and a new connection is sent the whole state first.
    res.write(`retry: ${RETRY_MS}\n\n`);
    this.connections.add(connection);
    this.budgets.set(budget, (this.budgets.get(budget) ?? 0) + 1);
    if (user === undefined) this.guests++;
    audience.connections.add(connection);
    for (const room of roomNames) subscribe(audience.byRoom, room, connection);
    for (const id of ids) subscribe(audience.byId, id, connection);
    for (const room of locks) subscribe(audience.byLock, room, connection);
    const drop = (): void => this.drop(connection);
    req.on('close', drop);
    res.on('error', drop);
    this.timer ??= setInterval(() => void this.look(), this.interval);
    this.timer.unref();
    // A new client gets the state at once; clients connecting together share one look. One that connects during a
    // look gets the next, right after it (not a whole interval later: a room's join meanwhile would never reach it).
    if (!this.lookSoon) {
      this.lookSoon = true;
      setImmediate(() => void this.look());
    }
  }

  private drop(connection: Connection): void {
    if (!this.connections.delete(connection)) return;
    const left = (this.budgets.get(connection.budget) ?? 1) - 1;
    if (left === 0) this.budgets.delete(connection.budget);
    else this.budgets.set(connection.budget, left);
    if (connection.userKey === undefined) this.guests--;
    connection.audience.connections.delete(connection);
    for (const room of connection.rooms) unsubscribe(connection.audience.byRoom, room, connection);
    for (const id of connection.ids) unsubscribe(connection.audience.byId, id, connection);
    for (const room of connection.locks) unsubscribe(connection.audience.byLock, room, connection);
    if (connection.audience.connections.size === 0) this.audiences.delete(connection.audience.key);
    if (!connection.res.destroyed) connection.res.destroy();
    if (this.connections.size === 0) {
      clearInterval(this.timer);
      this.timer = undefined;
    }
  }

  /**
   * A client still behind by more than MAX_BUFFERED when a look begins is
   * dropped: what one look writes (a new client's whole state, several rooms at
   * once) is bounded by the client's subscriptions, and is not flushed before the look ends.
   */
  private write(connection: Connection, text: string): void {
    const { res } = connection;
    if (res.destroyed || res.writableEnded || connection.behind) return this.drop(connection);
    res.write(text);
  }

  private send(connection: Connection, event: string, data: string): void {
    this.write(connection, message(`${this.boot}-${++this.seq}`, event, data));
  }

  /** One look at the store: what changed for each audience goes to its clients. */
  private async look(): Promise<void> {
    if (this.looking) return;
    this.looking = true;
    this.lookSoon = false;
    try {
      const now = Date.now();
      for (const c of [...this.connections]) {
        c.behind = c.res.writableLength > MAX_BUFFERED;
        if (now - c.openedAt > this.maxAge) c.res.end();
      }
      for (const audience of [...this.audiences.values()]) {
        try {
          await this.lookFor(audience);
        } catch (error) {
          // One audience's failure (a store that threw) leaves the others their updates.
          this.settings.resolver.reporter.report('events', error);
        }
      }
      if (now - this.lastPing >= PING_MS) {
        this.lastPing = now;
        for (const c of [...this.connections]) this.write(c, ': ping\n\n');
      }
    } catch (error) {
      this.settings.resolver.reporter.report('events', error);
    } finally {
      this.looking = false;
      if (this.lookSoon && !this.closed) setImmediate(() => void this.look());
    }
  }

  private async lookFor(audience: Audience): Promise<void> {
    const connections = [...audience.connections];
    const fresh = connections.filter((c) => c.fresh);
    try {
      await this.lookAtAll(audience, connections, fresh);
    } finally {
      // Sent once: a failure later in the look does not send a new client everything again.
      for (const c of fresh) c.fresh = false;
    }
  }

  private async lookAtAll(audience: Audience, connections: Connection[], fresh: Connection[]): Promise<void> {
    const { store, max, trackGuests } = this.settings;
    const view = await store.view('users', max, audience.viewer);
    const guests = trackGuests ? (await store.view('guests', 0)).count : 0;

    // The hidden count only to staff (unless public): others would see it tick as someone goes invisible.
    const hidden = audience.viewer.seesHidden || this.settings.publicHiddenCount === true ? view.hidden : 0;
    const count = JSON.stringify({ users: view.count, guests, hidden });
    const countChanged = count !== audience.count;
    audience.count = count;
    for (const c of countChanged ? connections : fresh) {
      this.send(c, 'count', count);
      if (c.html) this.send(c, 'html:count', String(view.count));
    }

    if (connections.some((c) => c.list)) this.lookAtList(audience, view, connections);
    this.lookAtIds(audience, view, fresh);
    await this.lookAtRooms(audience);
    if (audience.byLock.size > 0) await this.lookAtLocks(audience, fresh);
  }

  /** Lock badges: one store call for every room followed; a change goes to its followers, a new connection gets all of its own. */
  private async lookAtLocks(audience: Audience, fresh: Connection[]): Promise<void> {
    for (const room of audience.badges.keys()) if (!audience.byLock.has(room)) audience.badges.delete(room);
    const states = await this.settings.rooms.locks(audience.viewer, [...audience.byLock.keys()]);
    const isNew = new Set(fresh);
    for (const { room, lock } of states) {
      const data = JSON.stringify({ room, lock, html: lockBadgeHtml(lock) });
      const changed = audience.badges.get(room) !== data;
      audience.badges.set(room, data);
      for (const c of audience.byLock.get(room) ?? []) if (changed || isNew.has(c)) this.send(c, 'badge', data);
    }
  }

  private lookAtList(audience: Audience, view: ScopeView, connections: Connection[]): void {
    // A status (status on) changes with time alone: the list's badges are sent again when one does.
    const signature = view.entries.map((e) => `${String(e.id)}\u0000${displayName(e)}\u0000${String(e.status)}`).join('\n');
    const changed = signature !== audience.list;
    audience.list = signature;
    let data: string | undefined;
    let html: string | undefined;
    for (const c of connections) {
      if (!c.list || !(changed || c.fresh)) continue;
      data ??= JSON.stringify({ entries: view.entries, html: (html ??= listHtml(view.entries)) });
      this.send(c, 'list', data);
      if (c.html) this.send(c, 'html:list', html ?? listHtml(view.entries));
    }
  }

  /** O(distinct watched ids + what changed): a change goes to the connections watching that id; a new connection gets all of its own. */
  private lookAtIds(audience: Audience, view: ScopeView, fresh: Connection[]): void {
    const { statuses } = this.settings;
    // `online` again when a status changes (with status on): its data carries the status.
    const badge = (key: string, status: OnlineStatus): [string, string] => {
      const seen = view.lastSeen(key);
      if (seen === null) return ['offline', JSON.stringify({ id: key })];
      return ['online', JSON.stringify(statuses === undefined ? { id: key, lastSeen: new Date(seen) } : { id: key, lastSeen: new Date(seen), status })];
    };
    for (const [key, watchers] of audience.byId) {
      const status = statusIn(view, key, statuses);
      const before = audience.online.get(key);
      audience.online.set(key, status);
      if (before === undefined || before === status) continue;
      const [event, data] = badge(key, status);
      for (const c of watchers) if (!c.fresh) this.send(c, event, data);
    }
    for (const key of audience.online.keys()) if (!audience.byId.has(key)) audience.online.delete(key);
    for (const c of fresh) for (const key of c.ids) this.send(c, ...badge(key, statusIn(view, key, statuses)));
  }

  /** O(subscribed rooms × their tabs + their subscribers). */
  private async lookAtRooms(audience: Audience): Promise<void> {
    for (const room of audience.rooms.keys()) if (!audience.byRoom.has(room)) audience.rooms.delete(room);
    if (audience.byRoom.size === 0) return;
    let store: ReturnType<Rooms['roomStore']>;
    try {
      store = this.settings.rooms.roomStore();
    } catch (error) {
      // A store without rooms: the rooms asked for are left out, everything else still flows.
      this.settings.resolver.reporter.report('events', error);
      return;
    }
    for (const [room, subscribers] of audience.byRoom) {
      try {
        await this.lookAtRoom(audience, store, room, subscribers);
      } catch (error) {
        // One room's failure leaves the others their updates.
        this.settings.resolver.reporter.report('events', error);
      }
    }
  }

  private async lookAtRoom(audience: Audience, store: ReturnType<Rooms['roomStore']>, room: string, subscribers: Set<Connection>): Promise<void> {
    const view = await this.settings.rooms.withStatuses(await store.roomView(room, audience.viewer), audience.viewer);
    // What a room's events say, without heartbeat times (they change every beat, and would wake every page).
    const signature = JSON.stringify([
      view.entries.map((e) => [e.id, displayName(e), e.tabs, e.mode, e.away === true, e.since.getTime(), e.status ?? null]),
      view.lock === null ? null : [view.lock.id, view.lock.since.getTime(), view.lock.tab ?? null, view.lock.away === true],
      view.saved?.at.getTime() ?? null,
      view.request === null || view.request === undefined ? null : [view.request.tab, view.request.since.getTime(), view.request.declined, view.request.granted],
    ]);
    const before = audience.rooms.get(room);
    let state = before;
    if (state?.signature !== signature) {
      const payload = this.settings.rooms.payload(view);
      state = { signature, view, data: JSON.stringify(payload), html: payload.html };
    }
    audience.rooms.set(room, state);
    const changes = before !== undefined && before !== state ? roomChanges(before.view, view) : [];
    for (const c of [...subscribers]) {
      // Only a member sees a room: someone who opened its page (here()) and is still on it.
      if (c.userKey === undefined || !view.members.has(c.userKey)) continue;
      const sent = c.sentRooms.get(room);
      if (sent === signature) continue;
      if (sent === before?.signature) for (const [event, data] of changes) this.send(c, event, data);
      // A save reaches every page but its saver's; a new stream is told the latest too (the script shows it only if it is newer than its page).
      const saved =
        view.saved !== null && view.saved !== undefined && (sent === undefined || before?.view.saved?.at.getTime() !== view.saved.at.getTime()) && c.userKey !== view.savedBy;
      if (saved) this.send(c, 'changed', JSON.stringify({ room, saved: view.saved, html: state.html.changed }));
      this.send(c, 'here', state.data);
      if (c.html) {
        this.send(c, `html:here:${room}`, state.html.here);
        // Without a tab to tell by (htmx), the holder's own user reads "You are editing".
        const mine = view.lock?.id !== undefined && keyOf(view.lock.id) === c.userKey;
        this.send(c, `html:lock:${room}`, mine ? state.html.lockMine : state.html.lock);
        // htmx cannot tell a save its page has from a later one: only a save made while the stream is open.
        if (saved && sent !== undefined) this.send(c, `html:changed:${room}`, state.html.changed);
      }
      c.sentRooms.set(room, signature);
    }
  }
}

/** Who joined, who left, and whether the lock changed hands, between two views of a room. */
function roomChanges(before: RoomView, after: RoomView): [string, string][] {
  const ids = (view: RoomView): Map<string, RoomView['entries'][number]> => new Map(view.entries.map((e) => [String(e.id), e]));
  const was = ids(before);
  const now = ids(after);
  const changes: [string, string][] = [];
  // `room` last: a profile field of that name must not replace it.
  for (const [id, entry] of now) if (!was.has(id)) changes.push(['join', JSON.stringify({ ...entry, room: after.room })]);
  for (const [id, entry] of was) if (!now.has(id)) changes.push(['leave', JSON.stringify({ ...entry, room: after.room })]);
  const holder = (view: RoomView): string => (view.lock === null ? '' : `${String(view.lock.id)}\u0000${view.lock.since.getTime()}\u0000${view.lock.tab ?? ''}`);
  if (holder(before) !== holder(after)) changes.push(['lock', JSON.stringify({ room: after.room, holder: after.lock, previous: before.lock })]);
  return changes;
}

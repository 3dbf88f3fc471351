/**
 * Rooms: who else is on one page ("order:123"), tab by tab, and who holds its
 * editing lock. Every store keeps rooms the same way: each open tab is one key
 * of a PresenceIndex of its own (short threshold, latest event wins, bounded),
 * so a RedisStore replicates rooms with the very protocol it uses for users.
 * This file adds what a room needs on top: which tabs are in which room, what a
 * tab carries (user, mode, lock claim), and a room's view for one viewer.
 *
 * The lock is derived, never stored apart. A tab claims it when it edits and
 * nobody holds it (generation 0), or when its user takes over (the holder's
 * generation + 1). Among a room's live claims, the highest generation holds,
 * and within one generation the earliest claim: so of two editors racing on two
 * processes the first keeps it, a takeover beats the holder it saw, every
 * process converges on the same holder, and a lock whose tab stops beating
 * expires with the tab.
 *
 * A tab is active (visible), away (its page is in the background: it beats
 * rarely, browsers throttle hidden timers to about one a minute) or gone. An
 * away tab stays, lock and all, for AWAY_FACTOR × the active window (150 s by
 * default, as WordPress keeps a post lock); a gone tab leaves when its window
 * ends. A record a page echoes carries when its window ends (`until`), so a
 * claim that lapsed never comes back to outrank one made after it.
 *
 * Two notes live among a room's tabs, so they replicate as tabs do, under keys
 * no page can beat for (`~saved`, `~released`): a save (`changed()`: who, when)
 * and a staff release. A release is a claim of its own generation that nobody
 * holds: claims below it no longer count, and a fresh claim is made at its
 * generation, after it. A tab asking for the lock carries when it asked; the
 * holder's tab carries when it last declined, and which tab it hands over to
 * (that tab's next touch is a takeover).
 */
import { randomBytes } from 'node:crypto';
import { isHidden, keyOf, mayShow, readProfile } from './identity';
import { withoutStatus } from './status';
import { PresenceIndex } from './presence-index';
import type { RoomMember, RoomPresence } from './room-watch';
import type { Profile, RoomEntry, RoomLimits, RoomLock, RoomLockState, RoomMode, RoomRequest, RoomSaved, RoomTouch, RoomView, TabClaim, UserId, Viewer } from './types';

/** Longest room name; a name is any text without control characters. */
const MAX_ROOM_LENGTH = 200;
/** A tab id: what the server mints (22 characters) or a client's own of the same alphabet. */
const TAB_ID = /^[A-Za-z0-9_-]{16,64}$/;
/** Tabs of one user kept in one room: a user cannot push everyone else out of a room's list. */
export const MAX_TABS_PER_USER = 20;
const SEPARATOR = '\u001f';

export function isRoomName(room: unknown): room is string {
  // eslint-disable-next-line no-control-regex
  return typeof room === 'string' && room.length > 0 && room.length <= MAX_ROOM_LENGTH && !/[\u0000-\u001f\u007f]/.test(room);
}

/** A page view's tab id: 128 random bits, URL-safe. */
export function newTabId(): string {
  return randomBytes(16).toString('base64url');
}

export function isTabId(tab: unknown): tab is string {
  return typeof tab === 'string' && TAB_ID.test(tab);
}

/** A tab's key in the rooms index: room, user key and tab (neither room nor tab can hold the separator). */
export function tabKey(room: string, userKey: string, tab: string): string {
  return `${room}${SEPARATOR}${userKey}${SEPARATOR}${tab}`;
}

function roomOfKey(key: string): string {
  return key.slice(0, key.indexOf(SEPARATOR));
}

/** A tab key's room and user key. */
export function roomAndUserOf(key: string): [string, string] {
  const first = key.indexOf(SEPARATOR);
  return [key.slice(0, first), key.slice(first + 1, key.lastIndexOf(SEPARATOR))];
}

/** Times within what a Date holds, generations well short of where +1 stops counting. */
const MAX_TIME = 8.64e15;
const MAX_GEN = 1e9;

export function isTabClaim(value: unknown): value is TabClaim {
  const v = value as Partial<Record<keyof TabClaim, unknown>> | null;
  const time = (x: unknown): boolean => typeof x === 'number' && x >= 0 && x <= MAX_TIME;
  const optional = (x: unknown): boolean => x === undefined || time(x);
  return (
    typeof v === 'object' &&
    v !== null &&
    time(v.claim) &&
    time(v.since) &&
    time(v.until) &&
    Number.isSafeInteger(v.gen) &&
    (v.gen as number) >= 0 &&
    (v.gen as number) <= MAX_GEN &&
    optional(v.ask) &&
    optional(v.declined) &&
    (v.grant === undefined || isTabId(v.grant))
  );
}

/** A tab's record as pages echo it: its own fields only (whatever else an echo carried), the optional ones when set, so a plain tab's echo stays short. */
export function tabClaim(c: TabClaim): TabClaim {
  const record: { -readonly [K in keyof TabClaim]: TabClaim[K] } = { claim: c.claim, gen: c.gen, since: c.since, until: c.until };
  if (c.ask !== undefined && c.ask !== 0) record.ask = c.ask;
  if (c.declined !== undefined && c.declined !== 0) record.declined = c.declined;
  if (c.grant !== undefined && c.grant !== '') record.grant = c.grant;
  return record;
}

/** The tab ids of a room's notes: outside the TAB_ID alphabet, so no heartbeat can name them. */
const NOTE_TABS = { saved: '~saved', released: '~released' } as const;
type NoteKind = keyof typeof NOTE_TABS;

/** One tab as a room holds it. Times are ms on the store's time base. */
interface Tab {
  readonly userKey: string;
  readonly tab: string;
  readonly id: UserId;
  readonly profile: Profile;
  readonly mode: RoomMode;
  /** When this tab claimed the lock; 0 when it does not claim it. */
  readonly claim: number;
  /** Takeovers before this claim (see the top of this file). */
  readonly gen: number;
  /** When this tab joined the room. */
  readonly since: number;
  /** Its page was hidden at its last heartbeat. */
  readonly away: boolean;
  /** A note rather than a tab (see the top of this file). */
  readonly note: NoteKind | undefined;
  /** When this tab asked the holder for the lock; 0 when it does not ask. */
  readonly ask: number;
  /** The holder's: when it last declined asks (asks made up to then are declined). */
  readonly declined: number;
  /** The holder's: the tab it hands the lock over to ('' for none). */
  readonly grant: string;
  /** As the index holds it (`encodeTab`): a replica's newer record shows as other text. */
  readonly text: string;
}

/** A tab's record as text: what a RedisStore sends and reads back ({ i: id, m, c, g, s, a: away, p: profile, n: note, k: asked, d: declined, o: grant }). */
function encodeTab(tab: Omit<Tab, 'text' | 'userKey' | 'tab'>): string {
  const record: Record<string, unknown> = { i: tab.id, m: tab.mode === 'editing' ? 1 : 0, c: tab.claim, g: tab.gen, s: tab.since, a: tab.away ? 1 : 0, p: tab.profile };
  // Only when set: a plain tab's record stays as short as before.
  if (tab.note !== undefined) record.n = tab.note;
  if (tab.ask !== 0) record.k = tab.ask;
  if (tab.declined !== 0) record.d = tab.declined;
  if (tab.grant !== '') record.o = tab.grant;
  return JSON.stringify(record);
}

/** Back from text, bounded and checked again: whoever wrote it, it reaches pages. Undefined when it is not a tab. */
function decodeTab(key: string, text: unknown): Tab | undefined {
  if (typeof text !== 'string') return undefined;
  let raw: { i?: unknown; m?: unknown; c?: unknown; g?: unknown; s?: unknown; a?: unknown; p?: unknown; n?: unknown; k?: unknown; d?: unknown; o?: unknown };
  try {
    raw = JSON.parse(text) as typeof raw;
  } catch {
    return undefined;
  }
  const first = key.indexOf(SEPARATOR);
  const last = key.lastIndexOf(SEPARATOR);
  if (typeof raw !== 'object' || raw === null || first === last || keyOf(raw.i) === undefined) return undefined;
  if (!isTabClaim({ claim: raw.c ?? 0, gen: raw.g ?? 0, since: raw.s ?? 0, until: 0 })) return undefined;
  // The same bounds as a claim's times (0 when absent).
  if (!isTabClaim({ claim: raw.k ?? 0, gen: 0, since: raw.d ?? 0, until: 0 })) return undefined;
  const claim = (raw.c ?? 0) as number;
  const gen = (raw.g ?? 0) as number;
  const since = (raw.s ?? 0) as number;
  return {
    userKey: key.slice(first + 1, last),
    tab: key.slice(last + 1),
    id: raw.i as UserId,
    profile: withoutStatus(readProfile(raw.p)),
    mode: raw.m === 1 ? 'editing' : 'viewing',
    claim,
    gen,
    since,
    away: raw.a === 1,
    note: raw.n === 'saved' || raw.n === 'released' ? raw.n : undefined,
    ask: (raw.k ?? 0) as number,
    declined: (raw.d ?? 0) as number,
    grant: isTabId(raw.o) ? raw.o : '',
    text,
  };
}

/** Whose tab a record is (a RedisStore's room transition carries the record): undefined when it is not a tab's. */
export function tabPerson(text: string): { id: UserId; profile: Profile } | undefined {
  const tab = decodeTab(`${SEPARATOR}${SEPARATOR}`, text);
  return tab && { id: tab.id, profile: tab.profile };
}

/**
 * Built per view (never shared between pages), so plain Dates are safe to hand
 * out. Assigned field by field: a spread with extra fields in one literal took
 * V8's slow path, 4–7× the time.
 */
function roomEntry(user: UserGroup): RoomEntry {
  const entry = Object.assign({}, user.profile) as Record<string, unknown>;
  entry.id = user.id;
  entry.lastSeen = new Date(user.lastSeen);
  entry.since = new Date(user.since);
  entry.tabs = user.tabs;
  entry.mode = user.mode;
  if (user.away) entry.away = true;
  return Object.freeze(entry) as RoomEntry;
}

function roomLock(holder: Tab, profile: Profile, mine: boolean, anonymous: boolean): RoomLock {
  const since = new Date(holder.claim);
  if (anonymous) return Object.freeze(holder.away ? { since, mine: false, hidden: true as const, away: true as const } : { since, mine: false, hidden: true as const });
  // The tab is no secret (a tab id only ever acts for its own user): a page tells by it whether it holds the lock.
  const lock = Object.assign({}, profile) as Record<string, unknown>;
  lock.id = holder.id;
  lock.since = since;
  lock.mine = mine;
  lock.tab = holder.tab;
  // Raised by each takeover: a page that holds the lock tells a real takeover from a stale view by it.
  lock.generation = holder.gen;
  // Its page is in the background: an ask may hand the lock over (see lib/live/here.ts).
  if (holder.away) lock.away = true;
  return Object.freeze(lock) as RoomLock;
}

interface UserGroup {
  readonly key: string;
  id: UserId;
  profile: Profile;
  tabs: number;
  mode: RoomMode;
  away: boolean;
  lastSeen: number;
  since: number;
}

/** An away (background) tab's window, in active windows. */
const AWAY_FACTOR = 5;

/** A tracker's room options as a store's limits. */
export function roomLimits(activeMs: number, maxRooms: number, maxMembers: number): RoomLimits {
  return { thresholdMs: activeMs * AWAY_FACTOR, activeMs, maxRooms, maxMembers };
}

/** 30 s without a heartbeat (a tab beats every 10 s), 150 s for a background tab; 1,000 rooms of 50 tabs. */
export const DEFAULT_ROOM_LIMITS: RoomLimits = Object.freeze(roomLimits(30_000, 1000, 50));

export class RoomIndex {
  /** Every tab of every room: key `room␟user␟tab`, profile `{ t: encoded tab }`. */
  readonly tabs: PresenceIndex;
  /** Room → its tabs' keys, least recently active first (Maps keep insertion order; a touch re-inserts). */
  private readonly rooms = new Map<string, Map<string, Tab>>();

  private readonly capacity: number;

  constructor(
    readonly limits: RoomLimits,
    /** A replica merges another process's writes late: the index's arrival-order tolerance. */
    tolerance = 0,
    /** A tab this index dropped to make room (a store that shares rooms tells the others). */
    private readonly dropped: (key: string, at: number) => void = () => undefined,
  ) {
    this.capacity = limits.maxRooms * limits.maxMembers;
    this.tabs = new PresenceIndex(limits.thresholdMs, this.capacity, tolerance);
  }

  /**
   * Records a tab's heartbeat at `now` and settles its lock claim against the
   * room as this process sees it. Returns the tab's record (for its page to echo back).
   */
  touch(t: RoomTouch, now: number): TabClaim {
    const profile = withoutStatus(t.profile);
    const key = tabKey(t.room, t.key, t.tab);
    // The index would drop its least recent tab, lock holder or not: this index picks one that claims nothing first.
    if (this.tabs.slotOf(key) === -1 && this.tabs.size(now) >= this.capacity && !this.makeRoom(now)) {
      // Every tab kept holds or claims a live lock: the newcomer is not kept rather than one of them.
      return { claim: 0, gen: 0, since: now, until: now };
    }
    const live = this.liveTabs(t.room, now);
    let before = live.get(key);
    // A record whose window has ended lapsed with its tab: its claim never outranks one made since.
    const known = t.known !== undefined && t.known.until >= now ? t.known : undefined;
    if (known !== undefined && (before === undefined || claimsBetter(known, before))) {
      // The page knows more of its tab than this replica does yet (its claim was made on another process).
      before = {
        userKey: t.key,
        tab: t.tab,
        id: t.id,
        profile,
        mode: t.mode,
        claim: known.claim,
        gen: known.gen,
        since: known.since,
        away: false,
        note: undefined,
        ask: known.ask ?? 0,
        declined: known.declined ?? 0,
        grant: known.grant ?? '',
        text: '',
      };
      live.set(key, before);
    }
    // What the page last heard of its own asks and answers, where this replica has not synced them yet: a decline
    // only moves forward, an ask is the latest the tab made, and a hand-over stands while the same claim holds.
    const asked = Math.max(before?.ask ?? 0, known?.ask ?? 0);
    const declined = Math.max(before?.declined ?? 0, known?.declined ?? 0);
    const granted = before?.grant || (known !== undefined && known.claim === before?.claim && known.gen === before.gen ? (known.grant ?? '') : '');
    const note = noteOf(t.tab);
    const floor = releasedGeneration(live);
    const holder = lockHolder(live, floor);
    let claim = 0;
    let gen = 0;
    if (note === 'released') [claim, gen] = [now, Math.min(topGeneration(live) + 1, MAX_GEN)];
    else if (t.mode === 'editing' && note === undefined) {
      if (before !== undefined && holder === before) [claim, gen] = [before.claim, before.gen];
      // Above every claim this process knows of: a replica that has not yet seen the holder still takes over.
      // So does the tab the holder hands the lock to.
      else if (t.takeover || (holder !== undefined && holder.grant === t.tab)) [claim, gen] = [now, Math.min(topGeneration(live) + 1, MAX_GEN)];
      // A claim a release ended is not made again by its tab's next heartbeat: that page is told it lost the lock.
      else if (holder === undefined && !(before !== undefined && before.claim !== 0 && before.gen < floor)) [claim, gen] = [now, floor];
    }
    // A note stays the away window, whatever its writer's page does.
    const away = t.away === true || note !== undefined;
    const holds = claim !== 0 && claim === before?.claim && note === undefined;
    const record = {
      id: t.id,
      profile,
      mode: note === undefined ? t.mode : ('viewing' as const),
      claim,
      gen,
      since: note === undefined ? (before?.since ?? now) : now,
      away,
      note,
      // An ask keeps its time while its page asks (declined, it stays so); a page's new ask ('new') starts anew.
      ask: (t.ask === true || t.ask === 'new') && claim === 0 && note === undefined ? (t.ask === 'new' ? now : asked || now) : 0,
      declined: t.decline === true ? now : declined,
      grant: holds ? (t.grant ?? granted) : '',
    };
    const tab: Tab = { ...record, userKey: t.key, tab: t.tab, text: encodeTab(record) };
    this.tabs.touch(key, t.id, { t: tab.text }, now);
    this.note(t.room, key, tab, now);
    return tabClaim({ claim, gen, since: record.since, until: now + this.windowOf(away), ask: record.ask, declined: record.declined, grant: record.grant });
  }

  /** A tab left its room (its page closed). */
  leave(room: string, userKey: string, tab: string, at: number): void {
    this.tabs.forget(tabKey(room, userKey, tab), at);
  }

  /** A user's tabs, in every room, by key. O(tabs held). */
  tabsOf(userKey: string): string[] {
    const keys: string[] = [];
    for (const known of this.rooms.values()) for (const [key, tab] of known) if (tab.userKey === userKey) keys.push(key);
    return keys;
  }

  /** A user signed out: every tab of theirs leaves its room. Returns their keys. O(tabs held). */
  forgetUser(userKey: string, at: number): string[] {
    const gone = this.tabsOf(userKey);
    for (const key of gone) this.tabs.forget(key, at);
    return gone;
  }

  /** Tabs a replica took from elsewhere (a sync, a first load), by key: registered in their rooms. */
  noteKeys(keys: Iterable<string>): void {
    for (const key of keys) {
      const slot = this.tabs.slotOf(key);
      const tab = slot === -1 ? undefined : decodeTab(key, this.tabs.profileOf(slot).t);
      if (tab !== undefined) this.note(roomOfKey(key), key, tab);
    }
  }

  /**
   * The room as `viewer` may see it at `now`. O(tabs in the room). A user's
   * latest heartbeat speaks for all their tabs (name, invisible mode), as
   * the latest event does in site presence.
   */
  view(room: string, now: number, viewer: Viewer): RoomView {
    const live = this.liveTabs(room, now);
    const users = new Map<string, UserGroup>();
    let saved: Tab | undefined;
    for (const [key, tab] of live) {
      if (tab.note !== undefined) {
        if (tab.note === 'saved' && (saved === undefined || tab.since >= saved.since)) saved = tab;
        continue;
      }
      const at = this.tabs.timeOf(this.tabs.slotOf(key));
      const user = users.get(tab.userKey);
      if (user === undefined) {
        users.set(tab.userKey, { key: tab.userKey, id: tab.id, profile: tab.profile, tabs: 1, mode: tab.mode, away: tab.away, lastSeen: at, since: tab.since });
        continue;
      }
      user.tabs++;
      if (tab.mode === 'editing') user.mode = 'editing';
      if (!tab.away) user.away = false;
      // Tabs come in the order they beat: at the same instant, the later heartbeat speaks.
      if (at >= user.lastSeen) {
        user.lastSeen = at;
        user.profile = tab.profile;
        user.id = tab.id;
      }
      if (tab.since < user.since) user.since = tab.since;
    }
    // Rooms withhold nobody by time: a tab is only ever what a heartbeat said, seconds ago.
    const hiddenFrom = (user: UserGroup | undefined): boolean => user !== undefined && !mayShow(viewer, user.key === viewer.self, isHidden(user.profile), Infinity);
    const groups = [...users.values()].filter((u) => !hiddenFrom(u)).sort((a, b) => a.since - b.since || (a.key < b.key ? -1 : 1));
    const holder = lockHolder(live, releasedGeneration(live));
    // A person as this viewer may see them: their latest profile in the room, or only that someone is there.
    const person = (tab: Tab): Record<string, unknown> | undefined => {
      const user = users.get(tab.userKey);
      return hiddenFrom(user) || (user === undefined && isHidden(tab.profile) && !viewer.seesHidden && tab.userKey !== viewer.self)
        ? undefined
        : Object.assign({}, user?.profile ?? tab.profile, { id: tab.id });
    };
    let lock: RoomLock | null = null;
    if (holder !== undefined) lock = roomLock(holder, users.get(holder.userKey)?.profile ?? holder.profile, holder.userKey === viewer.self, hiddenFrom(users.get(holder.userKey)));
    const ask = holder === undefined ? undefined : firstAsk(live, holder);
    const request: RoomRequest | null =
      ask === undefined || holder === undefined
        ? null
        : Object.freeze(
            Object.assign(person(ask) ?? { hidden: true as const }, {
              since: new Date(ask.ask),
              tab: ask.tab,
              mine: ask.userKey === viewer.self,
              declined: ask.ask <= holder.declined,
              granted: holder.grant === ask.tab,
            }) as RoomRequest,
          );
    const change: RoomSaved | null =
      saved === undefined
        ? null
        : Object.freeze(Object.assign(person(saved) ?? { hidden: true as const }, { at: new Date(saved.since), mine: saved.userKey === viewer.self }) as RoomSaved);
    return Object.freeze({
      room,
      count: groups.length,
      entries: Object.freeze(groups.map(roomEntry)),
      lock,
      members: new Set(users.keys()),
      saved: change,
      savedBy: saved?.userKey,
      request,
    });
  }

  /**
   * Who is in `room` at `at` and who holds its lock, as `onRoom` tells them
   * (../core/room-watch.ts), and when the first of their windows ends. O(tabs in the room).
   */
  presence(room: string, at: number): RoomPresence {
    const live = this.liveTabs(room, at);
    const members = new Map<string, RoomMember>();
    let next = Infinity;
    for (const [key, tab] of live) {
      const seen = this.tabs.timeOf(this.tabs.slotOf(key));
      next = Math.min(next, seen + this.windowOf(tab.away));
      if (tab.note !== undefined) continue;
      // As in view(): the latest heartbeat speaks for the user.
      const member = members.get(tab.userKey);
      if (member === undefined || seen >= member.lastSeen) members.set(tab.userKey, { key: tab.userKey, id: tab.id, profile: tab.profile, lastSeen: seen });
    }
    const holder = lockHolder(live, releasedGeneration(live));
    return { members, holder: holder && members.get(holder.userKey), next };
  }

  /** Every room's lock (or the named rooms', locked or not) as `viewer` may see it. O(tabs in those rooms). */
  locks(now: number, viewer: Viewer, rooms?: readonly string[]): RoomLockState[] {
    const states: RoomLockState[] = [];
    for (const room of rooms ?? [...this.rooms.keys()]) {
      const view = this.view(room, now, viewer);
      if (rooms !== undefined || view.lock !== null) states.push({ room, lock: view.lock, request: view.request ?? null });
    }
    return states;
  }

  /** The room's live tabs, each checked against the index (a tab may have left, expired or been evicted since). */
  private liveTabs(room: string, now: number): Map<string, Tab> {
    const known = this.rooms.get(room);
    if (known === undefined) return new Map();
    this.tabs.size(now); // expires from the least recent end (the away window)
    const live = new Map<string, Tab>();
    for (const [key, tab] of known) {
      const slot = this.tabs.slotOf(key);
      if (slot === -1) {
        known.delete(key);
        continue;
      }
      // The index has the newest record (a replica may have merged one since): decoded again when it changed.
      const text = this.tabs.profileOf(slot).t;
      const current = text === tab.text ? tab : decodeTab(key, text);
      if (current === undefined || this.tabs.timeOf(slot) <= now - this.windowOf(current.away)) continue;
      if (current !== tab) known.set(key, current);
      live.set(key, current);
    }
    if (known.size === 0) this.rooms.delete(room);
    return live;
  }

  /** Drops the least recently active tab that has lapsed or claims nothing. False when every tab holds or claims a live lock. O(tabs) at worst. */
  private makeRoom(now: number): boolean {
    for (const [room, known] of this.rooms) {
      for (const [key, tab] of known) {
        const slot = this.tabs.slotOf(key);
        if (slot !== -1 && tab.claim !== 0 && this.tabs.timeOf(slot) > now - this.windowOf(tab.away)) continue;
        this.drop(room, known, key, now);
        if (slot !== -1) return true;
      }
    }
    return false;
  }

  /** How long a tab stays after a heartbeat: the away window when its page was hidden. */
  private windowOf(away: boolean): number {
    return away ? this.limits.thresholdMs : this.limits.activeMs;
  }

  /**
   * Takes a tab out of its room's list; on a write here (`now`), out of the
   * index too, so that it holds no place there (a replica's sync only lists).
   */
  private drop(room: string, known: Map<string, Tab>, key: string, now: number | undefined): void {
    known.delete(key);
    if (known.size === 0) this.rooms.delete(room);
    if (now === undefined || this.tabs.slotOf(key) === -1) return;
    // Told while the index still holds the tab: a heartbeat of it not yet sent goes with the drop.
    this.dropped(key, now);
    this.tabs.forget(key, now);
  }

  private note(room: string, key: string, tab: Tab, now?: number): void {
    let known = this.rooms.get(room);
    if (known === undefined) {
      known = new Map();
      if (this.rooms.size >= this.limits.maxRooms) this.dropIdleRoom();
    } else {
      this.rooms.delete(room);
      known.delete(key);
    }
    this.rooms.set(room, known);
    known.set(key, tab);
    if (known.size > this.limits.maxMembers) {
      const drop = leastRecentToDrop(known);
      if (drop !== undefined) this.drop(room, known, drop, now);
    }
    const surplus = surplusTab(known, tab.userKey);
    if (surplus !== undefined) this.drop(room, known, surplus, now);
  }

  /**
   * Past maxRooms, the least recently active room that nobody is in any more
   * leaves the map. A room with a live tab stays (a flood of page views cannot
   * empty a room someone edits): the tabs index, maxRooms × maxRoomMembers
   * tabs, bounds them all.
   */
  private dropIdleRoom(): void {
    // The index drops expired tabs as rooms are read and written: a tab it still holds is taken as live.
    for (const [room, known] of this.rooms) {
      let live = false;
      for (const key of known.keys()) {
        if (this.tabs.slotOf(key) !== -1) {
          live = true;
          break;
        }
      }
      if (!live) {
        this.rooms.delete(room);
        return;
      }
    }
  }
}

/** A user past MAX_TABS_PER_USER tabs in a room: their least recent one that claims nothing, to leave. */
function surplusTab(known: Map<string, Tab>, userKey: string): string | undefined {
  if (known.size <= MAX_TABS_PER_USER) return undefined;
  let count = 0;
  let oldest: string | undefined;
  for (const [key, tab] of known) {
    if (tab.userKey !== userKey) continue;
    if (tab.claim === 0) oldest ??= key;
    count++;
  }
  return count > MAX_TABS_PER_USER ? oldest : undefined;
}

/** A full room's least recently active tab that claims nothing (a crowd cannot drop its holder, nor a claimant); undefined when every tab claims. */
function leastRecentToDrop(known: Map<string, Tab>): string | undefined {
  for (const [key, tab] of known) if (tab.claim === 0) return key;
  return undefined;
}

/** The lock order: claim `a` outranks `b` by a higher generation, or an earlier claim within one; no claim (0) never does. */
function claimsBetter(a: Pick<TabClaim, 'claim' | 'gen'>, b: Pick<TabClaim, 'claim' | 'gen'>): boolean {
  if (a.claim === 0) return false;
  return b.claim === 0 || a.gen > b.gen || (a.gen === b.gen && a.claim < b.claim);
}

function topGeneration(live: Map<string, Tab>): number {
  let top = 0;
  for (const tab of live.values()) if (tab.claim !== 0 && tab.gen > top) top = tab.gen;
  return top;
}

/** The claim of the highest generation, earliest within it (ties: the greater key, so every process picks the same); none below a release's generation. */
function lockHolder(live: Map<string, Tab>, floor: number): Tab | undefined {
  let holder: Tab | undefined;
  let holderKey = '';
  for (const [key, tab] of live) {
    if (tab.claim === 0 || tab.mode !== 'editing' || tab.gen < floor) continue;
    const tie = holder !== undefined && tab.gen === holder.gen && tab.claim === holder.claim;
    if (holder === undefined || claimsBetter(tab, holder) || (tie && key > holderKey)) {
      holder = tab;
      holderKey = key;
    }
  }
  return holder;
}

/** The generation of the latest release still in the room: claims below it ended with it. */
function releasedGeneration(live: Map<string, Tab>): number {
  let floor = 0;
  for (const tab of live.values()) if (tab.note === 'released' && tab.gen > floor) floor = tab.gen;
  return floor;
}

/** The earliest ask of a tab other than the holder's that the holder has not declined; else the earliest declined one (its asker is told). */
function firstAsk(live: Map<string, Tab>, holder: Tab): Tab | undefined {
  let first: Tab | undefined;
  const rank = (tab: Tab): number => (tab.ask > holder.declined ? 0 : 1);
  for (const tab of live.values()) {
    if (tab.ask === 0 || tab === holder) continue;
    if (first === undefined || rank(tab) < rank(first) || (rank(tab) === rank(first) && tab.ask < first.ask)) first = tab;
  }
  return first;
}

function noteOf(tab: string): NoteKind | undefined {
  return tab === NOTE_TABS.saved ? 'saved' : tab === NOTE_TABS.released ? 'released' : undefined;
}

/** The tab id a room's note is written under (RoomTouch.tab): `changed()` writes `saved`, a staff release `released`. */
export function noteTab(kind: NoteKind): string {
  return NOTE_TABS[kind];
}

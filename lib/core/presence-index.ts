/**
 * The in-process presence index: the memory store's whole state, and the Redis
 * store's local read model.
 *
 * Rules, the same in both stores (latest event wins):
 * - a touch older than the key's current time is ignored;
 * - a forget at time T removes the key only if it was last seen at or before T,
 *   so a logout cannot undo a later sign-in;
 * - a key is online while its time is within the threshold of now.
 *
 * Every key shares one time-to-live, so recency order is expiry order: the
 * expired keys are the least recently seen, at one end of lru-cache's list.
 * Dropping them from that end before each read keeps `size` exact at O(1)
 * amortized per expiry. Reads use `peek`, never `get`, so looking a user up does
 * not reorder them.
 *
 * Touches arrive in time order in a memory store. In a Redis read model other
 * processes' touches arrive late (by up to a few sync intervals, or a whole
 * outage). Arrival order is kept equal to time order within `tolerance` ms: a
 * touch later than that is merged by re-inserting, in time order, the recent end
 * of the list it belongs in (a cost bounded by how late it is). So an expired key
 * can stay counted for at most `tolerance` ms behind a later one.
 *
 * Kept cheap for the garbage collector at a million users (a large heap that is
 * written on every request slows every collection, not just ours):
 * - lru-cache's value is a slot number; times live in a Float64Array, ids and
 *   profiles in arrays written only when they change. A touch writes no pointer.
 * - Decimal ids of up to 9 digits are keyed by number, so such a user costs no
 *   key string at all.
 * - The few most recent entries, the ones pages list, are kept ready-made (walking
 *   lru-cache's iterator costs ~130 ns an entry), and so is the whole view built
 *   from them: a page whose request did not change what is listed or counted
 *   allocates nothing here.
 */
import { LRUCache } from 'lru-cache';
import { dateProperty } from './date-property';
import { EMPTY_PROFILE, HIDDEN_MARK, isHidden, mayShow, sameProfile } from './identity';
import { TextArena } from './text-arena';
import { ACTIVE_FIELD, STATUS_FIELD, activeAt, withoutStatus, type OnlineStatus, type Statuses } from './status';
import type { StatusCounts } from './metrics';
import type { Profile, ProfileValue, ScopeView, StoredEntry, UserId, Viewer } from './types';

/** A key as the LRU holds it: a decimal id of up to 9 digits as a number (no string per user), anything else as given. */
type Key = string | number;

/** '42' → 42, a bijection: only canonical decimals below 10^9 (< 2^30, a V8 small integer). */
export function internalKey(key: string): Key {
  const length = key.length;
  if (length === 0 || length > 9) return key;
  let value = 0;
  for (let i = 0; i < length; i++) {
    const digit = key.charCodeAt(i) - 48;
    if (digit < 0 || digit > 9 || (digit === 0 && i === 0 && length > 1)) return key;
    value = value * 10 + digit;
  }
  return value;
}

/**
 * An entry as pages see it: frozen, so a template that writes to one cannot
 * change the next request's page, and its `lastSeen` a fresh Date at each read.
 * Its class tells `isOnline(entry)` that the id is `entry.id`, whatever the app's `getId` reads.
 */
export class ListedEntry implements StoredEntry {
  readonly [field: string]: StoredEntry[string];
  declare readonly lastSeen: Date;

  constructor(
    readonly id: UserId,
    profile: Profile,
    time: () => number,
    statuses?: Statuses,
  ) {
    // Object.assign, not a spread followed by more keys: V8 takes a slow path (~1.5 µs) for the latter.
    // Status fields written by a process with status on are not this one's to show when it has it off.
    Object.assign(this, statuses === undefined ? withoutStatus(profile) : profile);
    defineLastSeen(this, time);
    if (statuses !== undefined && typeof profile[ACTIVE_FIELD] === 'number') defineStatus(this, profile, statuses);
    Object.freeze(this);
  }
}

const defineLastSeen = dateProperty('lastSeen');

/** With status on: `status` read at each read (time moves it from active to idle to away), `lastActive` a Date. */
const STATUS_OF = Symbol('status');
type StatusHolder = { readonly [STATUS_OF]: [Profile, Statuses]; readonly lastSeen: Date };
const STATUS_PROPERTIES: PropertyDescriptorMap = {
  [STATUS_FIELD]: {
    enumerable: true,
    get(this: StatusHolder): OnlineStatus {
      const [profile, statuses] = this[STATUS_OF];
      return statuses.of(profile, this.lastSeen.getTime());
    },
  },
  [ACTIVE_FIELD]: {
    enumerable: true,
    get(this: StatusHolder): Date {
      return new Date(activeAt(this[STATUS_OF][0], this.lastSeen.getTime()));
    },
  },
};

function defineStatus(entry: object, profile: Profile, statuses: Statuses): void {
  Object.defineProperty(entry, STATUS_OF, { value: [profile, statuses] });
  Object.defineProperties(entry, STATUS_PROPERTIES);
}

/** The ready-made list never grows past this; a longer list() walks the LRU. */
const TOP_CAPACITY = 200;
/** Slots are allocated this many at first, then doubled as users arrive, up to maxTracked + 1. */
const FIRST_SLOTS = 1024;

/** A viewer who sees no hidden user. */
export const EVERYONE: Viewer = Object.freeze({ seesHidden: false });
/** A viewer who sees every user, hidden ones too (staff, or a user's own lookup of themself). */
export const STAFF: Viewer = Object.freeze({ seesHidden: true });

/** Slot flags. */
const HIDDEN = 1;
/** The id is a string whose key is held as a number ('42'). */
const ID_TEXT = 2;
/** The profile is held as the bare value of its one field, `soleField`. */
const SOLE = 4;
/** The profile is held as stored text, decoded (by the index's RawCodec) when first needed. */
const RAW = 8;
/** With SOLE: the value is a string in `arena`, at the offset held in its place. */
const ARENA = 16;

/**
 * Passed to every lru-cache call: its default options object (`= {}`) would be
 * allocated on each call. lru-cache writes only `status` (undefined) to it.
 */
const LRU_OPTIONS = {};

/** How an index reads times and remembers invisible mode (see the constructor). */
export interface IndexClock {
  /**
   * Milliseconds to add to a stored time to make it a wall-clock time: what
   * `lastSeen` gives. Expiry stays on the store's own (monotonic) time base, so
   * a wall-clock step moves dates with the wall clock and `timeAgo` stays right.
   */
  readonly wallOffset: () => number;
  /** How long (ms) a key that was hidden is remembered as hidden after it left; 0: not at all. */
  readonly markTtlMs: number;
  /** The trackers' status rule once one with `status` on has attached: entries then carry `status`. */
  readonly statuses?: () => Statuses | undefined;
}

const NO_OFFSET = (): number => 0;
/** An index with no wall clock of its own, that remembers nothing past presence (rooms' tabs, tests). */
export const PLAIN_CLOCK: IndexClock = Object.freeze({ wallOffset: NO_OFFSET, markTtlMs: 0 });

/** A touch as a batch carries it. */
export interface TimedTouch {
  readonly key: string;
  readonly id: UserId;
  /** `undefined` keeps the profile already held. */
  readonly profile: Profile | undefined;
  /**
   * The profile as stored text instead, decoded (by the index's RawCodec)
   * only when the entry is first listed or read: a new Redis replica loads a
   * million users without parsing a million profiles.
   */
  readonly raw?: string | undefined;
  readonly at: number;
}

const givesProfile = (touch: TimedTouch): boolean => touch.profile !== undefined || touch.raw !== undefined;
/**
 * How a store holds profiles as text (`TimedTouch.raw`): decoded when first
 * needed; whether one is hidden must be told at once, without decoding.
 */
export interface RawCodec {
  decode(raw: string): Profile;
  isHidden(raw: string): boolean;
}

const NO_RAW: RawCodec = { decode: () => EMPTY_PROFILE, isHidden: () => false };

/** A view as the index hands it out, possibly to many requests in turn: immutable but for lookups read live. */
class IndexView implements ScopeView {
  constructor(
    private readonly index: PresenceIndex,
    readonly count: number,
    readonly hidden: number,
    readonly entries: readonly StoredEntry[],
    readonly ids: readonly UserId[],
    private readonly viewer: Viewer,
  ) {}

  lastSeen(key: string): number | null {
    return this.index.lastSeenBy(key, this.viewer);
  }

  profile(key: string): Profile | null {
    return this.index.profileBy(key, this.viewer);
  }

  statusCounts(): StatusCounts | undefined {
    return this.index.statusCounts();
  }
}

interface ReadyView {
  readonly view: IndexView;
  readonly version: number;
  readonly limit: number;
  /** Time of its last listed entry: once that is past the cutoff, the view is rebuilt. */
  readonly lastAt: number;
}

/**
 * Where the index keeps a key's columns: meaningful only to the index that
 * gave it, and only until that key is touched, forgotten or expires. -1: none.
 */
export type Slot = number & { readonly __slot: never };

export class PresenceIndex {
  /** Made on the first key: lru-cache allocates its lists for `max` at once (~28 B a key), and a scope may never be used. */
  private lru: LRUCache<Key, number> | undefined;
  private readonly maxSlots: number;
  /**
   * Per slot: last seen (ms on the store's time base), flags, id, and profile:
   * a profile of one field named `soleField` (the usual `{ username }`) is held
   * as its bare value, which saves an object per user.
   */
  private times = new Float64Array(0);
  private flags = new Uint8Array(0);
  private ids: UserId[] = [];
  private profiles: (Profile | ProfileValue)[] = [];
  /** The one field name of single-field profiles, learnt from the first one seen whose value is text. */
  private soleField: string | undefined;
  /** Where those values are kept when they are short Latin-1 strings (most usernames): off the heap. */
  private readonly arena = new TextArena();
  /** Per slot, when `onSeen` was last called (memory store); allocated on first use. */
  private reported: Float64Array | undefined;
  private readonly freeSlots: number[] = [];
  /** Where `decodeLoaded` goes on. */
  private rawScan = 0;
  private usedSlots = 0;
  /** The least recently seen slot as last found, -1 when unknown: `expire` needs no iterator while it is live. */
  private tailSlot = -1;
  /** Newest time stored: a touch older than this by more than `tolerance` is merged in place. */
  private latest = -Infinity;
  /** The cutoff of the latest view: lookups answer as of it. */
  private cutoff = -Infinity;
  /** Keys held whose profile is hidden. */
  private hiddenCount = 0;
  /** Keys last seen hidden, → when: kept past presence (at most maxTracked, `markTtlMs`) for bare-id touches. */
  private readonly marks = new Map<Key, number>();
  /** How many keys were ever added: a store tells a new key from a returning one by it. */
  added = 0;
  /**
   * Told of each key that leaves by expiry or eviction (not by `forget`), before its slot is
   * freed: a store that tells transitions (`onOffline`) reads the slot's entry and time then.
   */
  leaving: ((slot: Slot, key: string) => void) | undefined;
  /** Set while `expire` drops keys: their leaving is an expiry. */
  private expiring = false;
  /** Set by `update` for `place`: the slot's listed entry must be made again. */
  private entryStale = false;
  /** Bumped whenever what a view shows may have changed: who is held, who is hidden, the listed order. */
  private version = 0;
  /**
   * The ready-made list, newest first, with slots and times: every entry down
   * to the `topSize`-th visible one (or every entry, when fewer are visible), so
   * each viewer's first `topSize` are in it. Valid unless `topValid` is false.
   */
  private top: StoredEntry[] = [];
  private topSlots: number[] = [];
  private topTimes: number[] = [];
  private topVisible = 0;
  private topValid = false;
  private topSize = 0;
  /** Time of the last entry the latest `recent()` listed. */
  private lastListedAt = Infinity;
  /** What a scope never used shows. */
  private emptyView: IndexView | undefined;
  /** The views last built for everyone and for staff. */
  private readonly ready: [ReadyView | undefined, ReadyView | undefined] = [undefined, undefined];

  constructor(
    private readonly thresholdMs: number,
    maxTracked: number,
    private readonly tolerance = 0,
    /** Profiles given as stored text (`TimedTouch.raw`): a Redis read model's codec. */
    private readonly raw: RawCodec = NO_RAW,
    private readonly clock: IndexClock = PLAIN_CLOCK,
  ) {
    // One more than the LRU holds: a new key's slot is taken before the LRU evicts the oldest.
    this.maxSlots = maxTracked + 1;
  }

  private get cache(): LRUCache<Key, number> {
    return (this.lru ??= new LRUCache<Key, number>({
      max: this.maxSlots - 1,
      // Called on eviction (maxTracked), forget and expiry.
      dispose: (slot, k, reason) => this.release(slot, k, reason === 'evict'),
    }));
  }

  /** The slot of `key`, or -1 when it is not held (expired or not). */
  slotOf(key: string): Slot {
    return (this.lru?.peek(internalKey(key), LRU_OPTIONS) ?? -1) as Slot;
  }

  /** `key` is held (online, or expired and not yet swept). */
  has(key: string): boolean {
    return this.slotOf(key) !== -1;
  }

  /** What is held of `key`, to send it elsewhere (a RedisStore's write); undefined when it is not held. */
  held(key: string): { readonly id: UserId; readonly profile: Profile; readonly at: number; readonly reportedAt: number } | undefined {
    const slot = this.slotOf(key);
    if (slot === -1) return undefined;
    return { id: this.idOf(slot), profile: this.profileOf(slot), at: this.times[slot], reportedAt: this.reportedAt(slot) };
  }

  /** `key` was reported at `at` (`onSeen`): its entry with that time, or undefined when it is not held. */
  reportSeen(key: string, at: number): StoredEntry | undefined {
    const slot = this.slotOf(key);
    if (slot === -1) return undefined;
    this.markReported(slot, at);
    return this.entryOf(slot, at);
  }

  /** Last seen of a held slot, ms. */
  timeOf(slot: Slot): number {
    return this.times[slot];
  }

  idOf(slot: Slot): UserId {
    const id = this.ids[slot];
    return (this.flags[slot] & ID_TEXT) !== 0 ? String(id) : id;
  }

  profileOf(slot: Slot): Profile {
    if ((this.flags[slot] & RAW) !== 0) this.decodeHeld(slot);
    const flags = this.flags[slot];
    const held = this.profiles[slot];
    if ((flags & SOLE) === 0) return held as Profile;
    return { [this.soleField as string]: (flags & ARENA) !== 0 ? this.arena.read(held as number) : (held as ProfileValue) };
  }

  /** The slot's entry as it is now, its time fixed (its last seen, or `time`): what `onSeen` is given. */
  entryOf(slot: Slot, time: number = this.times[slot]): StoredEntry {
    const at = time + this.clock.wallOffset();
    return new ListedEntry(this.idOf(slot), this.profileOf(slot), () => at, this.clock.statuses?.());
  }

  /** Remembers that `key` was seen hidden at `at`, past its presence (a new Redis replica loads what Redis remembers). */
  mark(key: string, at: number): void {
    this.markKey(internalKey(key), at);
  }

  private markKey(k: Key, at: number): void {
    if (this.clock.markTtlMs === 0) return;
    this.marks.delete(k);
    this.marks.set(k, at);
    if (this.marks.size >= this.maxSlots) this.marks.delete(this.marks.keys().next().value as Key);
  }

  /** Every key remembered as hidden, with when: what a Redis replica writes back. */
  *marked(): IterableIterator<[string, number]> {
    for (const [k, at] of this.marks) yield [String(k), at];
  }

  /** A profile that is not hidden: the key's mark, if any, is over. */
  private unmark(k: Key, profile: Profile): void {
    if (this.marks.size !== 0 && !isHidden(profile)) this.marks.delete(k);
  }

  /** A bare touch of a key not held: hidden if it was seen hidden within the mark's time. */
  private remembered(k: Key, at: number): Profile {
    if (this.marks.size === 0) return EMPTY_PROFILE;
    const mark = this.marks.get(k);
    return mark !== undefined && at - mark < this.clock.markTtlMs ? HIDDEN_MARK : EMPTY_PROFILE; // a user remembered as hidden comes back hidden
  }

  reportedAt(slot: Slot): number {
    return this.reported?.[slot] ?? -Infinity;
  }

  /** The slot's user was reported at `at` (never moved back: an old report sent again changes nothing). */
  markReported(slot: Slot, at: number): void {
    this.reported ??= new Float64Array(this.times.length).fill(-Infinity);
    if (at > this.reported[slot]) this.reported[slot] = at;
  }

  /** Keys online at `now`, hidden ones included. */
  size(now: number): number {
    if (this.lru === undefined) return 0;
    this.expire(now - this.thresholdMs);
    return this.cache.size;
  }

  /**
   * Marks `key` seen at `at`, unless it was already seen later. An undefined
   * `profile` keeps the one held. Returns the key's slot when the touch took effect, else -1.
   */
  touch(key: string, id: UserId, profile: Profile | undefined, at: number): Slot {
    const k = internalKey(key);
    if (at < this.latest - this.tolerance) {
      this.merge([{ key, id, profile, at }]);
      const slot = this.cache.peek(k, LRU_OPTIONS) ?? -1;
      return (slot !== -1 && this.times[slot] === at ? slot : -1) as Slot;
    }
    const slot = this.update(this.cache.peek(k, LRU_OPTIONS) ?? -1, k, id, profile, at);
    if (slot !== -1) this.place(k, slot);
    return slot as Slot;
  }

  /**
   * Applies many touches (a sync's changes, a chunk of a first load). In time
   * order and none late, each is applied in turn; otherwise as a batch in any order.
   */
  merge(touches: readonly TimedTouch[]): void {
    let ordered = touches.length > 0 && touches[0].at >= this.latest - this.tolerance;
    for (let i = 1; ordered && i < touches.length; i++) ordered = touches[i].at >= touches[i - 1].at;
    if (ordered) {
      for (const touch of touches) this.apply(internalKey(touch.key), touch);
      return;
    }
    // Per key, what applying the batch in order would leave: the latest touch, with the last profile given.
    const batch = new Map<Key, TimedTouch>();
    for (const touch of touches) {
      const k = internalKey(touch.key);
      const before = batch.get(k);
      if (before !== undefined) {
        if (touch.at >= before.at) batch.set(k, givesProfile(touch) ? touch : { ...touch, profile: before.profile, raw: before.raw });
        continue;
      }
      const slot = this.cache.peek(k, LRU_OPTIONS) ?? -1;
      // A touch this index already holds as it is (a replica's own write, read back) changes nothing: skipped,
      // or each would re-sort the recent end of the list (a burst's echo would cost its size squared).
      if (slot === -1 || touch.at > this.times[slot] || (touch.at === this.times[slot] && !this.holdsTouch(slot, touch))) batch.set(k, touch);
    }
    const items: [Key, TimedTouch][] = [];
    let oldest = Infinity;
    for (const [k, touch] of batch) {
      items.push([k, touch]);
      if (touch.at < oldest) oldest = touch.at;
    }
    if (items.length === 0) return;
    if (oldest < this.latest - this.tolerance) {
      // Late: the recent end of the list, back to where these belong, is re-inserted in time order with
      // them, as touches of what it holds (so a key a new one evicts on the way comes back, and the newest stay).
      for (const [k, slot] of this.cache.entries()) {
        const at = this.times[slot];
        if (at < oldest - this.tolerance) break;
        if (!batch.has(k)) items.push([k, { key: String(k), id: this.idOf(slot as Slot), profile: this.profileOf(slot as Slot), at }]);
      }
      this.invalidateTop();
    }
    items.sort((a, b) => a[1].at - b[1].at);
    for (const [k, touch] of items) this.apply(k, touch);
  }

  /** Whether the slot already holds what `touch` (of the same time) would leave: its id and profile. */
  private holdsTouch(slot: number, touch: TimedTouch): boolean {
    if (touch.raw !== undefined || this.idOf(slot as Slot) !== touch.id) return false;
    return touch.profile === undefined || this.holds(slot, touch.profile);
  }

  /** One touch of a batch, updated and placed. */
  private apply(k: Key, { id, profile, raw, at }: TimedTouch): void {
    const slot = this.update(this.cache.peek(k, LRU_OPTIONS) ?? -1, k, id, raw === undefined ? profile : undefined, at);
    if (slot === -1) return;
    if (raw !== undefined) {
      this.dropHeld(slot);
      this.profiles[slot] = raw;
      this.flags[slot] = (this.flags[slot] & ~SOLE) | RAW;
      const hidden = this.raw.isHidden(raw);
      this.setHidden(slot, hidden);
      if (!hidden) this.unmark(k, EMPTY_PROFILE);
      this.entryStale = true;
    }
    this.place(k, slot);
  }

  /**
   * The slot after the touch (a new one for a new key), or -1 when the key was
   * already seen later. Not yet placed in the list; sets `entryStale` when its
   * listed entry must be made again (new key, new id or profile).
   */
  private update(slot: number, k: Key, id: UserId, profile: Profile | undefined, at: number): number {
    const idText = typeof k === 'number' && typeof id === 'string' ? ID_TEXT : 0;
    this.entryStale = slot === -1;
    if (slot === -1) {
      slot = this.allocate();
      this.added++;
      this.version++;
      this.times[slot] = at;
      // The key itself is the id (number, or the key's own string) unless the id is some other number, like 1e12.
      this.ids[slot] = typeof k === 'number' || typeof id !== 'number' ? k : id;
      this.flags[slot] = idText;
      const held = profile ?? this.remembered(k, at);
      this.holdProfile(slot, held);
      if (isHidden(held)) {
        this.flags[slot] |= HIDDEN;
        this.hiddenCount++;
      }
      if (profile !== undefined) this.unmark(k, profile);
      return slot;
    }
    if (at < this.times[slot]) return -1;
    this.times[slot] = at;
    if ((this.flags[slot] & ID_TEXT) !== idText || (typeof k === 'string' && typeof id !== typeof this.ids[slot])) {
      this.ids[slot] = typeof k === 'number' || typeof id !== 'number' ? k : id;
      this.flags[slot] = (this.flags[slot] & ~ID_TEXT) | idText;
      this.entryStale = true;
    }
    if (profile !== undefined && !this.holds(slot, profile)) {
      this.setHidden(slot, isHidden(profile));
      this.unmark(k, profile);
      this.holdProfile(slot, profile);
      this.entryStale = true;
    }
    return slot;
  }

  /** Whether the slot holds this profile (same fields, same values). Runs on every touch: no allocation. */
  private holds(slot: number, profile: Profile): boolean {
    if ((this.flags[slot] & RAW) !== 0) this.decodeHeld(slot);
    const flags = this.flags[slot];
    const held = this.profiles[slot];
    if ((flags & SOLE) === 0) return sameProfile(held as Profile, profile);
    let fields = 0;
    for (const name in profile) {
      if (name !== this.soleField) return false;
      const value = profile[name];
      if ((flags & ARENA) !== 0 ? typeof value !== 'string' || !this.arena.equals(held as number, value) : value !== held) return false;
      fields++;
    }
    return fields === 1;
  }

  private holdProfile(slot: number, profile: Profile): void {
    let only: string | undefined;
    let fields = 0;
    for (const name in profile) {
      only = name;
      fields++;
    }
    this.dropHeld(slot);
    this.flags[slot] &= ~(RAW | SOLE);
    // Learnt from a text field: a first profile of `{ hidden: true }` alone must not make it 'hidden' for good.
    if (fields === 1 && this.soleField === undefined && typeof profile[only as string] === 'string') this.soleField = only;
    if (fields === 1 && this.soleField === only) {
      const value = profile[only as string];
      const at = typeof value === 'string' ? this.store(value) : -1;
      this.profiles[slot] = at === -1 ? value : at;
      this.flags[slot] |= at === -1 ? SOLE : SOLE | ARENA;
    } else {
      this.profiles[slot] = profile;
    }
  }

  /** `text`'s offset in the arena, or -1 when it stays a string. */
  private store(text: string): number {
    if (this.arena.wasteful) {
      this.arena.compact((move) => {
        for (let slot = 0; slot < this.usedSlots; slot++) if ((this.flags[slot] & ARENA) !== 0) this.profiles[slot] = move(this.profiles[slot] as number);
      });
    }
    return this.arena.add(text);
  }

  /** The slot's arena entry, if any, is garbage from now on. */
  private dropHeld(slot: number): void {
    if ((this.flags[slot] & ARENA) === 0) return;
    this.arena.free(this.profiles[slot] as number);
    this.flags[slot] &= ~ARENA;
  }

  /** A profile held as text is decoded, once; whether it is hidden was guessed from the text, and is now known. */
  private decodeHeld(slot: number): void {
    const profile = this.raw.decode(this.profiles[slot] as string);
    this.holdProfile(slot, profile);
    this.setHidden(slot, isHidden(profile));
  }

  private setHidden(slot: number, hidden: boolean): void {
    if (hidden === ((this.flags[slot] & HIDDEN) !== 0)) return;
    this.hiddenCount += hidden ? 1 : -1;
    this.flags[slot] ^= HIDDEN;
    this.version++;
  }

  /** Decodes up to `limit` profiles still held as text (see `TimedTouch.raw`); true while some may be left. */
  decodeLoaded(limit: number): boolean {
    for (let decoded = 0; this.rawScan < this.usedSlots && decoded < limit; this.rawScan++) {
      if ((this.flags[this.rawScan] & RAW) === 0) continue;
      this.decodeHeld(this.rawScan);
      decoded++;
    }
    if (this.rawScan < this.usedSlots) return true;
    this.rawScan = 0;
    return false;
  }

  /** Moves a just-updated slot to the most recent end, and into the ready-made list where it belongs. */
  private place(k: Key, slot: number): void {
    const fresh = this.entryStale;
    this.cache.set(k, slot, LRU_OPTIONS);
    const at = this.times[slot];
    if (at > this.latest) this.latest = at;
    if (slot === this.tailSlot) this.tailSlot = -1;
    if (!this.topValid) return;
    const was = this.topSlots.indexOf(slot);
    // Already first, and staying first: its entry reads its time live, so nothing a page shows changed.
    if (was === 0 && !fresh) {
      this.topTimes[0] = at;
      return;
    }
    const full = this.topVisible >= this.topSize;
    let entry: StoredEntry | undefined;
    if (was !== -1) {
      entry = fresh ? undefined : this.top[was];
      if (!this.hiddenEntry(was)) this.topVisible--;
      this.topSlots.splice(was, 1);
      this.top.splice(was, 1);
      this.topTimes.splice(was, 1);
      this.version++;
    }
    let i = 0;
    while (i < this.topTimes.length && this.topTimes[i] > at) i++;
    if (i === this.top.length && full) {
      // It belongs below the list (a late touch): if the list lost a visible entry, what follows is not known here.
      if (this.topVisible < this.topSize) this.invalidateTop();
      return;
    }
    this.topSlots.splice(i, 0, slot);
    this.top.splice(i, 0, entry ?? this.liveEntry(slot));
    this.topTimes.splice(i, 0, at);
    if (!this.hiddenEntry(i)) this.topVisible++;
    this.version++;
    // The list ends just after its topSize-th visible entry.
    for (let last = this.top.length - 1; last >= 0; last--) {
      const lastHidden = this.hiddenEntry(last);
      if (!(this.topVisible > this.topSize || (this.topVisible === this.topSize && lastHidden))) break;
      this.top.pop();
      this.topSlots.pop();
      this.topTimes.pop();
      if (!lastHidden) this.topVisible--;
    }
    // A full list that lost a visible entry (one went hidden) cannot refill itself; and many hidden
    // users among the most recent make it too long: either way it is rebuilt on the next read.
    if ((full && this.topVisible < this.topSize) || this.top.length > TOP_CAPACITY) this.invalidateTop();
  }

  /** Whether the listed entry at `i` is marked hidden (its entry, not the slot: the slot may have changed since). */
  private hiddenEntry(i: number): boolean {
    return this.top[i].hidden === true;
  }

  /**
   * A listed entry: its profile copied, its time read from the slot while the
   * slot still holds this id (a slot another user took leaves it its last time).
   */
  private liveEntry(slot: number): StoredEntry {
    const held = this.ids[slot];
    let last = this.times[slot];
    return new ListedEntry(
      this.idOf(slot as Slot),
      this.profileOf(slot as Slot),
      () => {
        if (this.ids[slot] === held) last = this.times[slot];
        return last + this.clock.wallOffset();
      },
      this.clock.statuses?.(),
    );
  }

  private invalidateTop(): void {
    this.topValid = false;
    this.version++;
  }

  /** A logout at `at`: removes the key if it was last seen at or before then. True when removed. */
  forget(key: string, at: number): boolean {
    if (this.lru === undefined) return false;
    const k = internalKey(key);
    const slot = this.cache.peek(k, LRU_OPTIONS);
    if (slot === undefined || this.times[slot] > at) return false;
    this.cache.delete(k);
    return true;
  }

  /**
   * Exact count, the `limit` most recent, and lookups, all as of `now` and as
   * `viewer` may see them. The same view object is handed out again while
   * nothing it shows has changed.
   */
  view(limit: number, now: number, viewer: Viewer = EVERYONE): ScopeView {
    const cutoff = now - this.thresholdMs;
    this.cutoff = cutoff;
    if (this.lru === undefined) return (this.emptyView ??= new IndexView(this, 0, 0, Object.freeze([]), Object.freeze([]), EVERYONE));
    this.expire(cutoff);
    // A hidden user sees themself listed, and a store out of touch withholds some: such a view is the viewer's alone.
    const own = !viewer.seesHidden && ((viewer.self !== undefined && this.hiddenCount > 0 && this.isHiddenKey(viewer.self)) || viewer.withheldUpTo !== undefined);
    const which = viewer.seesHidden ? 1 : 0;
    const ready = this.ready[which];
    if (!own && ready !== undefined && ready.version === this.version && ready.limit === limit && ready.lastAt > cutoff) return ready.view;
    let entries = this.recent(limit, viewer);
    if (this.lastListedAt <= cutoff) {
      // The list reached late arrivals that expired behind a live key: they all leave now, so list and count agree.
      this.dropExpiredLate(cutoff);
      entries = this.recent(limit, viewer);
    }
    const ids = entries.map((entry) => entry.id);
    const view = new IndexView(
      this,
      this.cache.size - this.hiddenCount,
      this.hiddenCount,
      Object.freeze(entries),
      Object.freeze(ids),
      own ? viewer : which === 1 ? STAFF : EVERYONE,
    );
    // Kept only when made from the ready-made list: what `version` follows.
    if (!own && this.topValid && limit <= this.topSize) this.ready[which] = { view, version: this.version, limit, lastAt: this.lastListedAt };
    return view;
  }

  /**
   * Every key seen at or before `cutoff` that `expire` left behind a live one,
   * in one pass from the least recent end. Arrival order is time order within
   * `tolerance`, so past a key seen after `cutoff + tolerance` none can be left.
   */
  private dropExpiredLate(cutoff: number): void {
    const expired: Key[] = [];
    for (const [k, slot] of this.cache.rentries() as Iterable<[Key, number]>) {
      const at = this.times[slot];
      if (at > cutoff + this.tolerance) break;
      if (at <= cutoff) expired.push(k);
    }
    this.expiring = true;
    for (const k of expired) this.cache.delete(k);
    this.expiring = false;
  }

  /** What a view's `lastSeen(key)` answers: as of the latest view's cutoff, hidden reading exactly as offline. */
  lastSeenBy(key: string, viewer: Viewer): number | null {
    const slot = this.slotOf(key);
    if (slot === -1 || this.times[slot] <= this.cutoff) return null;
    if (!mayShow(viewer, key === viewer.self, (this.flags[slot] & HIDDEN) !== 0, this.times[slot])) return null;
    return this.times[slot] + this.clock.wallOffset();
  }

  /**
   * Keys held and not hidden (those a view's `count` counts), by status; an app's own states fold into
   * `other`. One pass over the keys held (a metrics scrape, not a page); undefined without `status` on.
   */
  statusCounts(): StatusCounts | undefined {
    const statuses = this.clock.statuses?.();
    if (statuses === undefined) return undefined;
    const counts: Record<keyof StatusCounts, number> = { active: 0, idle: 0, away: 0, other: 0 };
    if (this.lru === undefined) return counts;
    const now = statuses.dateNow();
    const offset = this.clock.wallOffset();
    for (const slot of this.cache.values()) {
      if ((this.flags[slot] & HIDDEN) !== 0) continue;
      const status = statuses.of(this.profileOf(slot as Slot), this.times[slot] + offset, now);
      counts[status === 'active' || status === 'idle' || status === 'away' ? (status as keyof StatusCounts) : 'other']++;
    }
    return counts;
  }

  /** What a view's `profile(key)` answers: null where `lastSeenBy` is. */
  profileBy(key: string, viewer: Viewer): Profile | null {
    return this.lastSeenBy(key, viewer) === null ? null : this.profileOf(this.slotOf(key));
  }

  /** Moves every time by `delta` ms: a Redis read model learns Redis's clock only after its first touches. */
  shift(delta: number): void {
    if (this.lru === undefined) return;
    for (const slot of this.cache.values()) this.times[slot] += delta;
    this.latest += delta;
    this.invalidateTop();
  }

  /** Every key, least recent first: what a Redis read model writes back when Redis has lost its data. */
  *keys(): IterableIterator<string> {
    if (this.lru === undefined) return;
    for (const k of this.lru.rkeys()) yield String(k);
  }

  private isHiddenKey(key: string): boolean {
    const slot = this.slotOf(key);
    return slot !== -1 && (this.flags[slot] & HIDDEN) !== 0;
  }

  /** The `limit` most recent entries `viewer` may see, newest first; sets `lastListedAt` (the slot's time: a Date keeps only whole ms). */
  private recent(limit: number, viewer: Viewer): StoredEntry[] {
    this.lastListedAt = Infinity;
    if (limit <= 0) return [];
    if (this.topValid && limit <= this.topSize && this.hiddenCount === 0 && viewer.withheldUpTo === undefined) {
      // The common case: nobody hidden, the list ready.
      const n = Math.min(limit, this.top.length);
      if (n > 0) this.lastListedAt = this.topTimes[n - 1];
      return this.top.slice(0, n);
    }
    if (this.topValid && limit <= this.topSize) return this.visibleTo(viewer, this.top, this.topSlots, limit);
    const [kept, visible] = this.walk(limit);
    const listed = kept.map((slot) => this.liveEntry(slot));
    if (limit <= TOP_CAPACITY && kept.length <= TOP_CAPACITY) {
      this.top = listed;
      this.topSlots = kept;
      this.topTimes = kept.map((slot) => this.times[slot]);
      this.topVisible = visible;
      this.topSize = limit;
      this.topValid = true;
      this.version++;
    }
    return this.visibleTo(viewer, listed, kept, limit);
  }

  /** The first `limit` of a newest-first list that `viewer` may see; sets `lastListedAt`. */
  private visibleTo(viewer: Viewer, entries: readonly StoredEntry[], slots: readonly number[], limit: number): StoredEntry[] {
    const self = viewer.self === undefined ? -1 : this.slotOf(viewer.self);
    const seen: StoredEntry[] = [];
    for (let i = 0; i < entries.length && seen.length < limit; i++) {
      if (mayShow(viewer, slots[i] === self, entries[i].hidden === true, this.times[slots[i]])) {
        seen.push(entries[i]);
        this.lastListedAt = this.times[slots[i]];
      }
    }
    return seen;
  }

  /**
   * Every slot down to the `limit`-th visible one, newest first, and how many
   * of them are visible. Arrival order is time order only within `tolerance`, so
   * the walk goes on until no earlier arrival can be newer than the last one kept.
   */
  private walk(limit: number): [number[], number] {
    const kept: number[] = [];
    let visible = 0;
    let floor = Infinity; // the oldest time walked: nothing that arrived earlier is newer than floor + tolerance
    for (const slot of this.cache.values()) {
      const at = this.times[slot];
      if (at < floor) floor = at;
      if (visible >= limit) {
        const bar = this.times[kept[kept.length - 1]];
        if (floor + this.tolerance <= bar) break;
        if (at <= bar) continue;
      }
      let i = kept.length;
      while (i > 0 && this.times[kept[i - 1]] < at) i--;
      kept.splice(i, 0, slot);
      if ((this.flags[slot] & HIDDEN) === 0) visible++;
      // End just after the limit-th visible slot.
      for (;;) {
        const lastHidden = (this.flags[kept[kept.length - 1]] & HIDDEN) !== 0;
        if (!(visible > limit || (visible === limit && lastHidden))) break;
        kept.pop();
        if (!lastHidden) visible--;
      }
    }
    return [kept, visible];
  }

  /** Drops keys seen at or before `cutoff` from the least-recent end; stops at the first live one. */
  private expire(cutoff: number): void {
    if (this.tailSlot !== -1 && this.times[this.tailSlot] > cutoff) return;
    for (;;) {
      const oldest = this.cache.rkeys().next();
      if (oldest.done) return;
      const slot = this.cache.peek(oldest.value, LRU_OPTIONS) as number;
      if (this.times[slot] > cutoff) {
        this.tailSlot = slot;
        return;
      }
      this.expiring = true;
      this.cache.delete(oldest.value);
      this.expiring = false;
    }
  }

  /** A free slot, growing the per-slot arrays (doubling, up to maxTracked + 1) when none is. */
  private allocate(): number {
    const free = this.freeSlots.pop();
    if (free !== undefined) return free;
    const slot = this.usedSlots++;
    if (slot === this.times.length) {
      const size = Math.min(this.maxSlots, Math.max(FIRST_SLOTS, slot * 2));
      this.times = grown(this.times, new Float64Array(size));
      this.flags = grown(this.flags, new Uint8Array(size));
      // Filled, so V8 keeps them as plain arrays of exactly this size (no slack past it, no holes).
      this.ids = grownArray(this.ids, size, 0);
      this.profiles = grownArray(this.profiles, size, EMPTY_PROFILE);
      if (this.reported !== undefined) this.reported = grown(this.reported, new Float64Array(size).fill(-Infinity));
    }
    return slot;
  }

  /** A key left (expired, forgotten or evicted): its slot is free for the next new key. */
  private release(slot: number, k: Key, evicted: boolean): void {
    if (this.leaving !== undefined && (evicted || this.expiring)) this.leaving(slot as Slot, String(k));
    if ((this.flags[slot] & HIDDEN) !== 0) {
      this.hiddenCount--;
      // Gone, but not forgotten as hidden: a bare-id touch brings them back hidden.
      this.markKey(k, this.times[slot]);
    }
    this.dropHeld(slot);
    if (this.topValid && this.topSlots.includes(slot)) this.topValid = false;
    if (slot === this.tailSlot) this.tailSlot = -1;
    this.version++;
    this.flags[slot] = 0;
    // Not a possible id (a listed entry tells its user from the slot's next one by the id).
    this.ids[slot] = NaN;
    this.profiles[slot] = EMPTY_PROFILE;
    if (this.reported !== undefined) this.reported[slot] = -Infinity;
    this.freeSlots.push(slot);
  }
}

function grownArray<T>(from: readonly T[], size: number, fill: T): T[] {
  const to = new Array<T>(size).fill(fill);
  for (let i = 0; i < from.length; i++) to[i] = from[i];
  return to;
}

function grown<T extends Float64Array | Uint8Array>(from: T, to: T): T {
  to.set(from);
  return to;
}

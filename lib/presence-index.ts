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
 * The few most recent entries, the ones pages list, are kept ready-made, frozen,
 * in a short array: walking lru-cache's iterator costs ~130 ns an entry, too much
 * to pay for 50 entries on every page.
 */
import { LRUCache } from 'lru-cache';
import { EMPTY_PROFILE, isHidden, sameProfile } from './identity';
import type { Profile, ScopeView, StoredEntry, UserId, Viewer } from './types';

/**
 * One key's presence. Updated in place on each touch, so a busy site does not
 * turn every request into old-generation garbage.
 */
export class Presence {
  /** When `onSeen` was last called for this key (memory store), ms. */
  reportedAt = -Infinity;
  constructor(
    public id: UserId,
    /** Last seen, ms on the store's time base. */
    public at: number,
    /** Never mutated: replaced whole when the user's profile changes. */
    public profile: Profile,
  ) {}
}

/**
 * An entry as pages see it: frozen, and its `lastSeen` a fresh Date at each
 * read, so a template that writes to one (or to its Date) cannot change the
 * next request's page. Its class tells `isOnline(entry)` that the id is
 * `entry.id`, whatever the app's `getId` reads.
 */
export class ListedEntry implements StoredEntry {
  readonly [field: string]: StoredEntry[string];
  declare readonly lastSeen: Date;
  constructor(readonly id: UserId) {}
}

/** The entry of a presence as it is now (its time and profile copied, not shared). */
export function listedEntry(presence: Presence): StoredEntry {
  const at = presence.at;
  // Object.assign, not a spread followed by more keys: V8 takes a slow path (~1.5 µs) for the latter.
  const entry = Object.assign(new ListedEntry(presence.id), presence.profile);
  // Enumerable, so JSON and templates see it like a field.
  Object.defineProperty(entry, 'lastSeen', { enumerable: true, get: () => new Date(at) });
  return Object.freeze(entry);
}

/** The ready-made list never grows past this; a longer list() walks the LRU. */
const TOP_CAPACITY = 200;

/** A viewer who sees no hidden user. */
export const EVERYONE: Viewer = Object.freeze({ seesHidden: false });

/** A touch as a batch carries it. */
export interface TimedTouch {
  readonly key: string;
  readonly id: UserId;
  /** `undefined` keeps the profile already held. */
  readonly profile: Profile | undefined;
  readonly at: number;
}

type KeyedPresence = [string, Presence];
const oldestFirst = (a: KeyedPresence, b: KeyedPresence): number => a[1].at - b[1].at;
const hiddenEntry = (entry: StoredEntry): boolean => entry.hidden === true;

export class PresenceIndex {
  private readonly cache: LRUCache<string, Presence>;
  /** Newest time stored: a touch older than this by more than `tolerance` is merged in place. */
  private latest = -Infinity;
  /** Keys held whose profile is hidden. */
  private hiddenCount = 0;
  /** How many keys were ever added: a store tells a new key from a returning one by it. */
  added = 0;
  /**
   * The ready-made list, newest first, with keys and times: every entry down to
   * the `topSize`-th visible one (or every entry, when fewer are visible), so
   * each viewer's first `topSize` are in it. Valid unless `topValid` is false.
   */
  private top: StoredEntry[] = [];
  private topKeys: string[] = [];
  private topTimes: number[] = [];
  private topVisible = 0;
  private topValid = false;
  private topSize = 0;
  /** Time of the last entry the latest `recent()` listed. */
  private lastListedAt = Infinity;

  constructor(
    private readonly thresholdMs: number,
    maxTracked: number,
    private readonly tolerance = 0,
  ) {
    this.cache = new LRUCache<string, Presence>({
      max: maxTracked,
      noDisposeOnSet: true,
      // Called on eviction (maxTracked), forget and expiry: a listed key leaving makes the list stale.
      dispose: (presence, key) => {
        if (isHidden(presence.profile)) this.hiddenCount--;
        if (this.topValid && this.topKeys.includes(key)) this.topValid = false;
      },
    });
  }

  /** The record of `key`, whether or not it has expired yet. */
  peek(key: string): Presence | undefined {
    return this.cache.peek(key);
  }

  /** Keys online at `now`, hidden ones included. */
  size(now: number): number {
    this.expire(now - this.thresholdMs);
    return this.cache.size;
  }

  /**
   * Marks `key` seen at `at`, unless it was already seen later. An undefined
   * `profile` keeps the one held. Returns the record when the touch took effect.
   */
  touch(key: string, id: UserId, profile: Profile | undefined, at: number): Presence | undefined {
    if (at < this.latest - this.tolerance) return this.merge([{ key, id, profile, at }])[0];
    const presence = this.update(this.cache.peek(key), id, profile, at);
    if (presence === undefined) return undefined;
    this.place(key, presence);
    return presence;
  }

  /** Applies many touches, in any order (a sync's changes). Returns the records that changed. */
  merge(touches: readonly TimedTouch[]): Presence[] {
    const changed = new Map<string, Presence>();
    let oldest = Infinity;
    for (const { key, id, profile, at } of touches) {
      const presence = this.update(changed.get(key) ?? this.cache.peek(key), id, profile, at);
      if (presence === undefined) continue;
      changed.set(key, presence);
      if (at < oldest) oldest = at;
    }
    if (changed.size === 0) return [];
    const records = [...changed.values()];
    if (oldest < this.latest - this.tolerance) {
      // Late: the recent end of the list, back to where these belong, is re-inserted in time order with them.
      for (const [key, presence] of this.cache.entries()) {
        if (presence.at < oldest - this.tolerance) break;
        if (!changed.has(key)) changed.set(key, presence);
      }
      this.topValid = false;
    }
    for (const [key, presence] of [...changed].sort(oldestFirst)) this.place(key, presence);
    return records;
  }

  /** The record after the touch, or undefined when the key was already seen later. Not yet placed in the list. */
  private update(presence: Presence | undefined, id: UserId, profile: Profile | undefined, at: number): Presence | undefined {
    if (presence === undefined) {
      const created = new Presence(id, at, profile ?? EMPTY_PROFILE);
      this.added++;
      if (isHidden(created.profile)) this.hiddenCount++;
      return created;
    }
    if (at < presence.at) return undefined;
    presence.id = id;
    presence.at = at;
    if (profile !== undefined && !sameProfile(presence.profile, profile)) {
      this.hiddenCount += Number(isHidden(profile)) - Number(isHidden(presence.profile));
      presence.profile = profile;
    }
    return presence;
  }

  /** Moves a record to the most recent end, and into the ready-made list where it belongs. */
  private place(key: string, presence: Presence): void {
    this.cache.set(key, presence);
    if (presence.at > this.latest) this.latest = presence.at;
    if (!this.topValid) return;
    const full = this.topVisible >= this.topSize;
    const was = this.topKeys.indexOf(key);
    if (was !== -1) {
      if (!hiddenEntry(this.top[was])) this.topVisible--;
      this.topKeys.splice(was, 1);
      this.top.splice(was, 1);
      this.topTimes.splice(was, 1);
    }
    let at = 0;
    while (at < this.topTimes.length && this.topTimes[at] > presence.at) at++;
    if (at === this.top.length && full) {
      // It belongs below the list (a late touch): if the list lost a visible entry, what follows is not known here.
      if (this.topVisible < this.topSize) this.topValid = false;
      return;
    }
    const entry = listedEntry(presence);
    this.topKeys.splice(at, 0, key);
    this.top.splice(at, 0, entry);
    this.topTimes.splice(at, 0, presence.at);
    if (!hiddenEntry(entry)) this.topVisible++;
    // The list ends just after its topSize-th visible entry.
    for (let last = this.top.length - 1; last >= 0; last--) {
      const lastHidden = hiddenEntry(this.top[last]);
      if (!(this.topVisible > this.topSize || (this.topVisible === this.topSize && lastHidden))) break;
      this.top.pop();
      this.topKeys.pop();
      this.topTimes.pop();
      if (!lastHidden) this.topVisible--;
    }
    // A full list that lost a visible entry (one went hidden) cannot refill itself; and many hidden
    // users among the most recent make it too long: either way it is rebuilt on the next read.
    if ((full && this.topVisible < this.topSize) || this.top.length > TOP_CAPACITY) this.topValid = false;
  }
  /** A logout at `at`: removes the key if it was last seen at or before then. True when removed. */
  forget(key: string, at: number): boolean {
    const presence = this.cache.peek(key);
    if (presence === undefined || presence.at > at) return false;
    this.cache.delete(key);
    return true;
  }

  /** Exact count, the `limit` most recent, and lookups, all as of `now` and as `viewer` may see them. */
  view(limit: number, now: number, viewer: Viewer = EVERYONE): ScopeView {
    const cutoff = now - this.thresholdMs;
    this.expire(cutoff);
    let entries = this.recent(limit, viewer);
    if (this.lastListedAt <= cutoff) {
      // Late arrivals that expired behind a live key: the listed ones leave now, so list and count agree.
      for (const { id } of entries) {
        const key = String(id);
        if ((this.cache.peek(key)?.at ?? Infinity) <= cutoff) this.cache.delete(key);
      }
      entries = this.recent(limit, viewer);
    }
    const hidden = this.hiddenCount;
    return {
      count: this.cache.size - hidden,
      hidden,
      entries,
      lastSeen: (key) => {
        const presence = this.cache.peek(key);
        if (presence === undefined || presence.at <= cutoff) return null;
        // Hidden reads exactly as offline, to everyone but staff and the user themselves.
        return isHidden(presence.profile) && !viewer.seesHidden && key !== viewer.self ? null : presence.at;
      },
    };
  }

  /** Moves every time by `delta` ms: a Redis read model learns Redis's clock only after its first touches. */
  shift(delta: number): void {
    for (const presence of this.cache.values()) presence.at += delta;
    this.latest += delta;
    this.topValid = false;
  }

  /** Every key, least recent first: what a Redis read model writes back when Redis has lost its data. */
  keys(): IterableIterator<string> {
    return this.cache.rkeys();
  }

  /** The `limit` most recent entries `viewer` may see, newest first; sets `lastListedAt`. */
  private recent(limit: number, viewer: Viewer): StoredEntry[] {
    let entries: StoredEntry[];
    if (limit <= 0) {
      entries = [];
    } else if (this.topValid && limit <= this.topSize && this.hiddenCount === 0) {
      // The common case: nobody hidden, the list ready. No allocation but the slice.
      const n = Math.min(limit, this.top.length);
      this.lastListedAt = n === 0 ? Infinity : this.topTimes[n - 1];
      return this.top.slice(0, n);
    } else if (this.topValid && limit <= this.topSize) {
      entries = this.visibleTo(viewer, this.top, this.topKeys, limit);
    } else {
      const [kept, visible] = this.walk(limit);
      const listed = kept.map(([, presence]) => listedEntry(presence));
      const keys = kept.map(([key]) => key);
      if (limit <= TOP_CAPACITY && kept.length <= TOP_CAPACITY) {
        this.top = listed;
        this.topKeys = keys;
        this.topTimes = kept.map(([, presence]) => presence.at);
        this.topVisible = visible;
        this.topSize = limit;
        this.topValid = true;
      }
      entries = this.visibleTo(viewer, listed, keys, limit);
    }
    this.lastListedAt = entries.length === 0 ? Infinity : entries[entries.length - 1].lastSeen.getTime();
    return entries;
  }

  /** The first `limit` of a newest-first list that `viewer` may see. */
  private visibleTo(viewer: Viewer, entries: readonly StoredEntry[], keys: readonly string[], limit: number): StoredEntry[] {
    const seen: StoredEntry[] = [];
    for (let i = 0; i < entries.length && seen.length < limit; i++) {
      if (viewer.seesHidden || !hiddenEntry(entries[i]) || keys[i] === viewer.self) seen.push(entries[i]);
    }
    return seen;
  }

  /**
   * Every record down to the `limit`-th visible one, newest first, and how many
   * of them are visible. Arrival order is time order only within `tolerance`, so
   * the walk goes on until no earlier arrival can be newer than the last one kept.
   */
  private walk(limit: number): [KeyedPresence[], number] {
    const kept: KeyedPresence[] = [];
    let visible = 0;
    let floor = Infinity; // the oldest time walked: nothing that arrived earlier is newer than floor + tolerance
    for (const record of this.cache.entries()) {
      const at = record[1].at;
      if (at < floor) floor = at;
      if (visible >= limit) {
        const bar = kept[kept.length - 1][1].at;
        if (floor + this.tolerance <= bar) break;
        if (at <= bar) continue;
      }
      let i = kept.length;
      while (i > 0 && kept[i - 1][1].at < at) i--;
      kept.splice(i, 0, record);
      if (!isHidden(record[1].profile)) visible++;
      // End just after the limit-th visible record.
      for (;;) {
        const last = kept[kept.length - 1];
        const lastHidden = isHidden(last[1].profile);
        if (!(visible > limit || (visible === limit && lastHidden))) break;
        kept.pop();
        if (!lastHidden) visible--;
      }
    }
    return [kept, visible];
  }

  /** Drops keys seen at or before `cutoff` from the least-recent end; stops at the first live one. */
  private expire(cutoff: number): void {
    for (;;) {
      const oldest = this.cache.rkeys().next();
      if (oldest.done) return;
      const presence = this.cache.peek(oldest.value);
      if (presence !== undefined && presence.at > cutoff) return;
      this.cache.delete(oldest.value);
    }
  }
}

/**
 * The in-process presence index: the memory store's whole state, and the Redis
 * store's local read model.
 *
 * Every key shares one time-to-live, so recency order is expiry order: the
 * expired keys are always the least recently seen, at one end of the LRU list.
 * Dropping them from that end before each read keeps `size` exact at O(1)
 * amortized per expiry, where lru-cache's own TTL would leave expired keys in
 * `size` until a full O(N) purge. Reads use `peek`, never `get`, so looking a
 * user up does not reorder them.
 *
 * The few most recent entries, the ones pages list, are also kept ready-made
 * in a short array updated on each touch: walking lru-cache's iterator costs
 * ~130 ns an entry, too much to pay for 50 entries on every page.
 */
import { LRUCache } from 'lru-cache';
import { EMPTY_PROFILE, sameProfile } from './identity';
import type { Profile, ScopeView, StoredEntry, UserId } from './types';

/**
 * One key's presence as held for every user: small, no Date until it is listed.
 * Updated in place on each touch, so a busy site does not turn every request
 * into old-generation garbage (which makes major GCs frequent when the heap holds
 * many users).
 */
export class Presence {
  constructor(
    public id: UserId,
    /** Last seen, ms since the epoch. */
    public at: number,
    /** Never mutated: replaced whole when the user's profile changes. */
    public profile: Profile,
  ) {}
}

/** The ready-made list never grows past this; a longer list() walks the LRU. */
const TOP_CAPACITY = 200;

function toEntry(presence: Presence): StoredEntry {
  // Object.assign, not a spread followed by more keys: V8 takes a slow path (~1.5 µs) for the latter.
  return Object.assign({ id: presence.id, lastSeen: new Date(presence.at) }, presence.profile);
}

export class PresenceIndex {
  private readonly cache: LRUCache<string, Presence>;
  /** Latest time stored: a clock that steps back must not break time order = recency order. */
  private latest = 0;
  /** The `topKeys.length` most recent entries, most recent first; valid unless `topValid` is false. */
  private top: StoredEntry[] = [];
  private topKeys: string[] = [];
  private topValid = false;
  private topSize = 0;

  constructor(
    private readonly thresholdMs: number,
    maxTracked: number,
  ) {
    this.cache = new LRUCache<string, Presence>({
      max: maxTracked,
      noDisposeOnSet: true,
      // Called on eviction (maxTracked), forget and expiry: a listed key leaving makes the list stale.
      dispose: (_value, key) => {
        if (this.topValid && this.topKeys.includes(key)) this.topValid = false;
      },
    });
  }

  /** Marks `key` seen at `at` (ms). An undefined `profile` keeps the one already held. Returns the record. */
  touch(key: string, id: UserId, profile: Profile | undefined, at: number): Presence {
    const time = at > this.latest ? at : this.latest;
    this.latest = time;
    let presence = this.cache.peek(key);
    if (presence === undefined) {
      presence = new Presence(id, time, profile ?? EMPTY_PROFILE);
    } else {
      presence.id = id;
      presence.at = time;
      if (profile !== undefined && !sameProfile(presence.profile, profile)) presence.profile = profile;
    }
    this.cache.set(key, presence); // moves it to the most recent end
    if (this.topValid) this.moveToTop(key, presence);
    return presence;
  }

  private moveToTop(key: string, presence: Presence): void {
    const was = this.topKeys.indexOf(key);
    if (was !== -1) {
      this.topKeys.splice(was, 1);
      this.top.splice(was, 1);
    }
    this.topKeys.unshift(key);
    this.top.unshift(toEntry(presence));
    if (this.top.length > this.topSize) {
      this.topKeys.pop();
      this.top.pop();
    }
  }

  forget(key: string): void {
    this.cache.delete(key);
  }

  /** Last-seen ms of `key` if online at `now`, else null. */
  lastSeen(key: string, now: number): number | null {
    const presence = this.cache.peek(key);
    return presence !== undefined && presence.at > now - this.thresholdMs ? presence.at : null;
  }

  /** Exact count, the `limit` most recent, and lookups, all as of `now`. */
  view(limit: number, now: number): ScopeView {
    this.expire(now);
    return { count: this.cache.size, entries: this.recent(limit), lastSeen: (key) => this.lastSeen(key, now) };
  }

  clear(): void {
    this.cache.clear();
    this.topValid = false;
  }

  private recent(limit: number): StoredEntry[] {
    if (limit <= 0) return [];
    if (this.topValid && limit <= this.topSize) return this.top.slice(0, limit);
    const keys: string[] = [];
    const entries: StoredEntry[] = [];
    for (const [key, presence] of this.cache.entries()) {
      keys.push(key);
      entries.push(toEntry(presence));
      if (entries.length === limit) break;
    }
    if (limit <= TOP_CAPACITY) {
      this.top = entries.slice();
      this.topKeys = keys;
      this.topSize = limit;
      this.topValid = true;
    }
    return entries;
  }

  /** Drops expired keys from the least-recent end; stops at the first live one. */
  private expire(now: number): void {
    const cutoff = now - this.thresholdMs;
    for (;;) {
      const oldest = this.cache.rkeys().next();
      if (oldest.done) return;
      const presence = this.cache.peek(oldest.value);
      if (presence !== undefined && presence.at > cutoff) return;
      this.cache.delete(oldest.value);
    }
  }
}

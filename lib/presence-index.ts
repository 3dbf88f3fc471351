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
 */
import { LRUCache } from 'lru-cache';
import type { Profile, ScopeView, StoredEntry as Entry, UserId } from './types';

export class PresenceIndex {
  private readonly cache: LRUCache<string, Entry>;
  /** Latest time stored: a clock that steps back must not break time order = recency order. */
  private latest = 0;

  constructor(
    private readonly thresholdMs: number,
    maxTracked: number,
  ) {
    this.cache = new LRUCache<string, Entry>({ max: maxTracked });
  }

  /** Marks `key` seen at `at` (ms). An undefined `profile` keeps the one already held. */
  touch(key: string, id: UserId, profile: Profile | undefined, at: number): void {
    const time = at > this.latest ? at : this.latest;
    this.latest = time;
    const base = profile ?? this.cache.peek(key);
    // One frozen object per touch, shared by every page that lists it until the next touch.
    this.cache.set(key, Object.freeze({ ...base, id, lastSeen: new Date(time) }));
  }

  /** The entry held for `key`, online or not yet expired away. */
  peek(key: string): Entry | undefined {
    return this.cache.peek(key);
  }

  forget(key: string): void {
    this.cache.delete(key);
  }

  /** Last-seen ms of `key` if online at `now`, else null. */
  lastSeen(key: string, now: number): number | null {
    const entry = this.cache.peek(key);
    if (entry === undefined) return null;
    const seen = entry.lastSeen.getTime();
    return seen > now - this.thresholdMs ? seen : null;
  }

  /** Exact count, the `limit` most recent, and lookups, all as of `now`. */
  view(limit: number, now: number): ScopeView {
    this.expire(now);
    const entries: Entry[] = [];
    if (limit > 0) {
      for (const entry of this.cache.values()) {
        entries.push(entry);
        if (entries.length === limit) break;
      }
    }
    return { count: this.cache.size, entries, lastSeen: (key) => this.lastSeen(key, now) };
  }

  get size(): number {
    return this.cache.size;
  }

  clear(): void {
    this.cache.clear();
  }

  /** Drops expired keys from the least-recent end; stops at the first live one. */
  private expire(now: number): void {
    const cutoff = now - this.thresholdMs;
    for (;;) {
      const oldest = this.cache.rkeys().next();
      if (oldest.done) return;
      const entry = this.cache.peek(oldest.value);
      if (entry !== undefined && entry.lastSeen.getTime() > cutoff) return;
      this.cache.delete(oldest.value);
    }
  }
}

/**
 * The default store: presence in this process only, bounded in memory.
 * Right for a single Node process; an app run as several processes needs RedisStore.
 */
import { PresenceIndex } from './presence-index';
import type { Profile, Scope, ScopeView, Store, StoreConfig, UserId } from './types';
import { OnlineNowConfigError, checkOptionsObject, integerAtLeast, rejectUnknownKeys } from './validations';

export interface MemoryStoreOptions {
  /**
   * How many users (and, separately, guests) are kept at most. Past it the
   * least recently seen are dropped first, so `onlineCount` then reads
   * `maxTracked` (saturated) rather than growing memory without bound.
   * Default 100,000: some 20 MB at the most.
   */
  maxTracked?: number;
}

export const DEFAULT_MAX_TRACKED = 100_000;

export class MemoryStore implements Store {
  readonly maxTracked: number;
  private indexes: Record<Scope, PresenceIndex> | undefined;
  private thresholdMs: number | undefined;

  constructor(options: MemoryStoreOptions = {}) {
    checkOptionsObject('new MemoryStore()', options);
    rejectUnknownKeys('new MemoryStore()', options, ['maxTracked']);
    this.maxTracked = integerAtLeast('maxTracked', options.maxTracked ?? DEFAULT_MAX_TRACKED, 1, '100000');
  }

  init(config: StoreConfig): void {
    if (this.thresholdMs !== undefined) {
      if (this.thresholdMs !== config.thresholdMs) {
        throw new OnlineNowConfigError(
          'ERR_ONLINE_NOW_STORE_SHARED',
          `one MemoryStore is shared by trackers with different thresholds (${this.thresholdMs / 1000}s and ${config.thresholdMs / 1000}s). Give each tracker its own store, or the same threshold.`,
        );
      }
      return;
    }
    this.thresholdMs = config.thresholdMs;
    this.indexes = {
      users: new PresenceIndex(config.thresholdMs, this.maxTracked),
      guests: new PresenceIndex(config.thresholdMs, this.maxTracked),
    };
  }

  touch(scope: Scope, key: string, id: UserId, profile: Profile | undefined): void {
    this.index(scope).touch(key, id, profile, Date.now());
  }

  forget(scope: Scope, key: string): void {
    this.index(scope).forget(key);
  }

  view(scope: Scope, limit: number): ScopeView {
    return this.index(scope).view(limit, Date.now());
  }

  close(): void {
    // Nothing to stop: expiry happens on reads, with no timers.
  }

  private index(scope: Scope): PresenceIndex {
    if (this.indexes === undefined) {
      throw new OnlineNowConfigError(
        'ERR_ONLINE_NOW_STORE_UNUSED',
        'this MemoryStore is not attached to a tracker: pass it as createOnlineTracker({ store }).',
      );
    }
    return this.indexes[scope];
  }
}

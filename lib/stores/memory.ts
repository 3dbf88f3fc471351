/**
 * The default store: presence in this process only, bounded in memory.
 * Right for a single Node process; an app run as several processes needs RedisStore.
 */
import { monotonicNow, type Clock } from '../clock';
import { PresenceIndex } from '../presence-index';
import type { Profile, Scope, ScopeView, UserId } from '../types';
import { checkOptions, optionNames, storeBasics } from '../validations';
import { DEFAULT_MAX_TRACKED, SharedStore } from './shared-store';

export interface MemoryStoreOptions {
  /**
   * How many users (and, separately, guests) are kept at most. Past it the
   * least recently seen are dropped first, so `onlineCount` then reads
   * `maxTracked` (saturated) rather than growing memory without bound.
   * Default 100,000: some 20 MB at the most with short profiles.
   */
  maxTracked?: number;
  /**
   * Milliseconds on a clock that never steps back. Default:
   * `performance.timeOrigin + performance.now()`. Tests pass their own to move time.
   */
  now?: () => number;
}

const memoryStoreOptions = optionNames<MemoryStoreOptions>({ maxTracked: true, now: true });

export class MemoryStore extends SharedStore {
  readonly maxTracked: number;
  private readonly now: Clock;
  private indexes: Record<Scope, PresenceIndex> | undefined;

  constructor(options: MemoryStoreOptions = {}) {
    super('MemoryStore');
    checkOptions('new MemoryStore()', options, memoryStoreOptions);
    const basics = storeBasics(options, DEFAULT_MAX_TRACKED);
    this.maxTracked = basics.maxTracked;
    this.now = basics.now ?? monotonicNow;
  }

  protected start(): void {
    this.indexes = {
      users: new PresenceIndex(this.thresholdMs, this.maxTracked),
      guests: new PresenceIndex(this.thresholdMs, this.maxTracked),
    };
  }

  protected stop(): void {
    // Nothing to stop: expiry happens on reads, with no timers.
  }

  touch(scope: Scope, key: string, id: UserId, profile: Profile | undefined): void {
    this.index(scope).touch(key, id, profile, this.now());
  }

  forget(scope: Scope, key: string): void {
    this.index(scope).forget(key, this.now());
  }

  view(scope: Scope, limit: number): ScopeView {
    return this.index(scope).view(limit, this.now());
  }

  private index(scope: Scope): PresenceIndex {
    return this.attached(this.indexes)[scope];
  }
}

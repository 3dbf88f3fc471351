/**
 * What every built-in store does as trackers attach to it: one threshold for
 * all of them, every tracker told of the store's failures, and the store
 * stopped only when the last of its trackers closes.
 */
import { OnlineNowConfigError } from '../errors';
import type { Awaitable, Profile, Scope, ScopeView, Store, StoreConfig, StoreReporter, UserId } from '../types';

/** Most users (and, apart, guests) a built-in store keeps unless told otherwise. */
export const DEFAULT_MAX_TRACKED = 100_000;

export abstract class SharedStore implements Store {
  /** The trackers' threshold, once one has attached. */
  protected thresholdMs = 0;
  private trackers = 0;
  private readonly reporters: StoreReporter[] = [];
  /** Tells every attached tracker. */
  protected readonly reporter: StoreReporter = {
    report: (kind, error) => {
      for (const r of this.reporters) r.report(kind, error);
    },
    recovered: (kind) => {
      for (const r of this.reporters) r.recovered(kind);
    },
  };

  constructor(private readonly what: string) {}

  init(config: StoreConfig): void {
    if (this.trackers > 0 && config.thresholdMs !== this.thresholdMs) {
      throw new OnlineNowConfigError(
        'ERR_ONLINE_NOW_STORE_SHARED',
        `one ${this.what} is shared by trackers with different thresholds (${this.thresholdMs / 1000}s and ${config.thresholdMs / 1000}s). Give each tracker its own store, or the same threshold.`,
      );
    }
    this.reporters.push(config.reporter);
    if (this.trackers++ === 0) {
      this.thresholdMs = config.thresholdMs;
      this.start();
    }
  }

  /** Called once by each tracker as it closes; the store stops with the last. */
  close(): Awaitable<void> {
    if (this.trackers === 0) return undefined;
    this.trackers -= 1;
    return this.trackers === 0 ? this.stop() : undefined;
  }

  /** The store's state, or a message that says how to attach it. */
  protected attached<T>(state: T | undefined): T {
    if (state === undefined) {
      throw new OnlineNowConfigError(
        'ERR_ONLINE_NOW_STORE_UNUSED',
        `this ${this.what} is not attached to a tracker: pass it as createOnlineTracker({ store }).`,
      );
    }
    return state;
  }

  /** The first tracker attached: `thresholdMs` is set. */
  protected abstract start(): void;
  /** The last tracker closed. */
  protected abstract stop(): Awaitable<void>;
  abstract touch(scope: Scope, key: string, id: UserId, profile: Profile | undefined): Awaitable<void>;
  abstract forget(scope: Scope, key: string): Awaitable<void>;
  abstract view(scope: Scope, limit: number): Awaitable<ScopeView>;
}

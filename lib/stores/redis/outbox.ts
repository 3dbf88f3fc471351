/**
 * Logouts on their way to Redis, for the life of a store (they must land
 * whatever happens to the replica): queued here, taken by a sync, and once in
 * Redis kept one threshold, to be written back if Redis loses its data. Until
 * Redis has a logout, it beats whatever Redis says of that key from before it.
 */
import { boundedSet, perScope } from './collections';
import type { ForgetWrite, ScopeNo } from './sync-script';

export class Outbox {
  /** Key → time of the logout (ms, Redis's time base), per scope. */
  private readonly queued = perScope(() => new Map<string, number>());
  /** Taken by the sync under way, not yet known to be in Redis. */
  private readonly taken = perScope(() => new Map<string, number>());
  /** In Redis, kept one threshold. */
  private readonly landed = perScope(() => new Map<string, number>());
  /**
   * Per scope, a logout's last profile here (stored form, and its touch's time, ms), queued or landed: written
   * back with it. A user's always; a tab's when its last heartbeat had not been sent (it goes with the leave).
   */
  private readonly lastProfiles = perScope(() => new Map<string, LastProfile>());

  /** `max(s)`: most logouts kept per scope. */
  constructor(private readonly max: (s: ScopeNo) => number) {}

  /** Tabs dropped here to keep the room bounds (their leave is an eviction), until taken. */
  private readonly dropped = new Set<string>();

  add(s: ScopeNo, key: string, at: number, last?: LastProfile, dropped = false): void {
    boundedSet(this.queued[s], key, at, this.max(s));
    if (last !== undefined) boundedSet(this.lastProfiles[s], key, last, this.max(s));
    if (dropped) this.dropped.add(key);
    else this.dropped.delete(key);
  }

  get empty(): boolean {
    return this.queued.every((m) => m.size === 0);
  }

  /** A logout here, queued or on its way, at or after `at`: Redis's news of `key` from `at` is older. */
  beats(s: ScopeNo, key: string, at: number): boolean {
    return (this.queued[s].get(key) ?? -Infinity) >= at || (this.taken[s].get(key) ?? -Infinity) >= at;
  }

  /** Everything queued, for one sync. */
  take(): ForgetWrite[] {
    const writes: ForgetWrite[] = [];
    this.queued.forEach((m, s) => {
      for (const [key, at] of m) {
        const write = forgetWrite(s as ScopeNo, key, at, this.lastProfiles[s].get(key));
        writes.push(this.dropped.delete(key) ? { ...write, evicted: true } : write);
        this.taken[s].set(key, at);
      }
      m.clear();
    });
    return writes;
  }

  /** Redis has it. */
  landedIn(write: ForgetWrite): void {
    this.taken[write.scope].delete(write.key);
    boundedSet(this.landed[write.scope], write.key, write.atUs / 1000, this.max(write.scope));
  }

  /** Not known to have landed: queued again, unless a later logout of the key is queued. */
  putBack(writes: readonly ForgetWrite[]): void {
    for (const w of writes) {
      const queued = this.queued[w.scope].get(w.key);
      if (queued === undefined || queued < w.atUs / 1000) this.queued[w.scope].set(w.key, w.atUs / 1000);
      if (w.evicted === true) this.dropped.add(w.key);
    }
  }

  /** The sync is over: what it took has landed or been put back. */
  settle(): void {
    for (const m of this.taken) m.clear();
  }

  /** What Redis had, for a write-back after it lost its data. */
  writeBack(): ForgetWrite[] {
    return this.landed.flatMap((m, s) => [...m].map(([key, at]) => ({ ...forgetWrite(s as ScopeNo, key, at, this.lastProfiles[s].get(key)), writtenBack: true })));
  }

  /** Forgets landed logouts older than their scope's threshold (`cutoff(s)`): a user gone that long is gone everywhere. */
  prune(cutoff: (s: ScopeNo) => number): void {
    this.landed.forEach((m, s) => {
      const before = cutoff(s as ScopeNo);
      for (const [key, at] of m) {
        if (at > before) break;
        m.delete(key);
        if (!this.queued[s].has(key) && !this.taken[s].has(key)) this.lastProfiles[s].delete(key);
      }
    });
  }

  /** Moves queued logouts onto Redis's clock once it is known (see RedisClock.measure). */
  shift(delta: number): void {
    for (const m of this.queued) for (const [key, at] of m) m.set(key, at + delta);
    for (const m of this.lastProfiles) for (const [key, last] of m) m.set(key, { profile: last.profile, at: last.at + delta });
  }
}

/** A user's profile as stored (see ./profile-codec.ts), or a tab's record, and the time of the touch that gave it, ms. */
export interface LastProfile {
  readonly profile: string;
  readonly at: number;
}

function forgetWrite(scope: ScopeNo, key: string, at: number, last?: LastProfile): ForgetWrite {
  return { scope, key, atUs: Math.round(at * 1000), last: last && { profile: last.profile, atUs: Math.round(last.at * 1000) } };
}

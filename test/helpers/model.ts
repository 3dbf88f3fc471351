// The truth RedisStore promises, as a tiny model for test/redis-model.test.ts,
// and the seeded random numbers that drive that test.
import { randomInt } from 'node:crypto';

/** mulberry32: small, fast, and the same seed always draws the same numbers. */
export class Rng {
  private state: number;

  constructor(seed: number) {
    this.state = seed >>> 0;
  }

  /** In [0, 1). */
  next(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  /** In [lo, hi). */
  between(lo: number, hi: number): number {
    return lo + (hi - lo) * this.next();
  }

  chance(p: number): boolean {
    return this.next() < p;
  }

  pick<T>(items: readonly T[]): T {
    if (items.length === 0) throw new Error('Rng.pick from nothing');
    return items[Math.floor(this.next() * items.length)];
  }
}

/** MODEL_SEED from the environment (to replay a failure), else a fresh random one. */
export function modelSeed(): number {
  const env = process.env.MODEL_SEED;
  if (env === undefined || env === '') return randomInt(1, 2 ** 31);
  const seed = Number(env);
  if (!Number.isSafeInteger(seed) || seed < 0 || seed >= 2 ** 32) throw new Error(`MODEL_SEED must be an integer in [0, 2^32), got ${env}`);
  return seed;
}

export type EventKind = 'touch' | 'logout';

/**
 * One request that changes a user's presence, as the client saw it: the server
 * handled it at some instant between `send` and `end` (one clock: every process
 * and redis-server run on this machine).
 */
export interface PresenceEvent {
  readonly user: number;
  readonly kind: EventKind;
  /** Index of the process that served it. */
  readonly proc: number;
  /** A touch's profile: a page carries one (visible or hidden, as the session says); a bare-id touch none. */
  readonly profile?: 'visible' | 'hidden' | undefined;
  readonly send: number;
  /** When its response arrived; undefined while in flight. */
  end: number | undefined;
}

export interface ModelTiming {
  /** The tracker's threshold, ms. */
  readonly thresholdMs: number;
  /** How long after a user's last event every process must show it. */
  readonly settleMs: number;
  /** A user is not judged this close (either side) to the instant their last touch expires. */
  readonly expiryMarginMs: number;
}

export type Judgement =
  | { readonly settled: true; readonly online: true; readonly touch: PresenceEvent }
  | { readonly settled: true; readonly online: false; readonly why: 'never seen' | 'logged out' | 'expired' }
  | { readonly settled: false; readonly why: 'request failed' | 'in flight' | 'recent event' | 'near expiry' };

/**
 * Every page view by a signed-in user is a touch at the instant the server
 * handled it; a logout removes the user if their last touch came before it; a
 * later touch makes them online again. A user is online at X iff their last
 * touch t exists, no logout came after it, and X - t < threshold.
 *
 * A user's requests are sent one after another (never two at once), so their
 * order is known; only the instant of each within its [send, end] is not.
 * `judge` answers only for users whose answer cannot depend on that, and who
 * have had `settleMs` for every process to learn of their last event.
 */
export class PresenceModel {
  private readonly events = new Map<number, PresenceEvent[]>();
  private readonly failures = new Map<number, string>();

  constructor(
    readonly users: readonly number[],
    readonly timing: ModelTiming,
  ) {}

  begin(user: number, kind: EventKind, proc: number, profile?: 'visible' | 'hidden'): PresenceEvent {
    const event: PresenceEvent = { user, kind, proc, profile, send: Date.now(), end: undefined };
    let list = this.events.get(user);
    if (list === undefined) this.events.set(user, (list = []));
    const last = list.at(-1);
    if (last !== undefined && last.end === undefined) throw new Error(`model misuse: user ${user} has two requests in flight`);
    list.push(event);
    return event;
  }

  finish(event: PresenceEvent): void {
    event.end = Date.now();
  }

  /**
   * A request that failed (no answer, or not the status expected): whether and
   * when the server acted on it is unknown, so this user is never judged again.
   */
  poison(user: number, why: string): void {
    if (!this.failures.has(user)) this.failures.set(user, why);
  }

  failed(user: number): boolean {
    return this.failures.has(user);
  }

  history(user: number): readonly PresenceEvent[] {
    return this.events.get(user) ?? [];
  }

  /** When the last presence request of anyone ended (or now, if one is in flight). */
  lastActivity(): number {
    let latest = 0;
    for (const list of this.events.values()) {
      const last = list.at(-1);
      if (last !== undefined) latest = Math.max(latest, last.end ?? Date.now());
    }
    return latest;
  }

  /**
   * Whether the user is hidden for a read answered in [xs, xr]: invisible mode goes with the
   * profile, and the latest touch that carried one decides, past logouts and expiry (a bare-id
   * touch keeps it: Redis and every process remember who hid). `undefined` when it is not settled.
   */
  hidden(user: number, xs: number, xr: number): boolean | undefined {
    if (this.failures.has(user)) return undefined;
    const list = this.events.get(user) ?? [];
    for (let i = list.length - 1; i >= 0; i--) {
      const e = list[i];
      if (e.send > xr || e.profile === undefined) continue;
      if (e.end === undefined || e.end > xs - this.timing.settleMs) return undefined;
      return e.profile === 'hidden';
    }
    return false;
  }

  /**
   * The user's presence as a read answered at some instant in [xs, xr] must show it, or
   * `settled: false` when the model cannot say (yet).
   */
  judge(user: number, xs: number, xr: number): Judgement {
    if (this.failures.has(user)) return { settled: false, why: 'request failed' };
    const list = this.events.get(user) ?? [];
    // The latest request sent before the read ended: one sent later was handled after the read.
    let last: PresenceEvent | undefined;
    for (let i = list.length - 1; i >= 0; i--) {
      if (list[i].send <= xr) {
        last = list[i];
        break;
      }
    }
    if (last === undefined) return { settled: true, online: false, why: 'never seen' };
    if (last.end === undefined) return { settled: false, why: 'in flight' };
    if (last.end > xs - this.timing.settleMs) return { settled: false, why: 'recent event' };
    if (last.kind === 'logout') return { settled: true, online: false, why: 'logged out' };
    // The touch happened at t in [send, end]; it expires at t + threshold.
    const { thresholdMs, expiryMarginMs } = this.timing;
    if (xr - last.send < thresholdMs - expiryMarginMs) return { settled: true, online: true, touch: last };
    if (xs - last.end >= thresholdMs + expiryMarginMs) return { settled: true, online: false, why: 'expired' };
    return { settled: false, why: 'near expiry' };
  }
}

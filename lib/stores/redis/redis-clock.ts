/**
 * Redis's clock as estimated by one process: every process stamps its writes
 * on it, so it is the one time base all replicas share (what `clock.ex` is to
 * Phoenix.Tracker). The estimate is this process's monotonic clock plus an
 * offset measured at each sync, off by at most half the round trip.
 */
import type { Clock } from '../../core/clock';

export class RedisClock {
  /** Redis time minus the local clock, ms. Until the first sync, a guess from the wall clock. */
  private offset: number;
  /** Round trip of the sync the offset was taken from. */
  private offsetRtt = Infinity;
  /** A sync has measured the offset: writes may be stamped for Redis. */
  measured = false;
  /** The most any date this process stamped may be off Redis's clock: half the slowest round trip an offset in use came from. */
  worstErrorMs = Infinity;

  constructor(readonly local: Clock) {
    this.offset = Date.now() - local();
  }

  /** The latest `now()` given: the estimate never goes back (a quicker round trip can move it back by up to half the last one). */
  private last = -Infinity;

  /**
   * Now on Redis's clock, ms. Never earlier than a `now()` before it: one process's
   * events keep their order (a logout is never stamped before the request it follows).
   * When a better estimate moves the clock back, it stands still until it catches up.
   */
  now(): number {
    const t = this.local() + this.offset;
    if (t > this.last) this.last = t;
    return this.last;
  }

  /**
   * Now, in whole µs as Redis stores it: a touch read back from Redis must carry
   * exactly the time this replica gave it, or its profile would lose to the replica's own.
   */
  eventTime(): number {
    return Math.round(this.now() * 1000) / 1000;
  }

  /**
   * Takes Redis's time at a call's midpoint. The offset comes from the quickest
   * recent round trip (its bar rises slowly, so a slower network is followed).
   * Returns how far the estimate moved at the first measurement (what was
   * stamped before it moves onto Redis's clock), else 0.
   */
  measure(redisMs: number, sent: number, received: number): number {
    const rtt = received - sent;
    const offset = redisMs - (sent + received) / 2;
    let moved = 0;
    if (!this.measured) {
      moved = offset - this.offset;
      this.measured = true;
      this.worstErrorMs = rtt / 2;
      // What was stamped before moves onto Redis's clock with the estimate (the store shifts it by `moved`).
      this.last += moved;
    } else {
      this.offsetRtt *= 1.05;
      if (rtt > this.offsetRtt) return 0;
    }
    this.offset = offset;
    this.offsetRtt = rtt;
    this.worstErrorMs = Math.max(this.worstErrorMs, rtt / 2);
    return moved;
  }
}

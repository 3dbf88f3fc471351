/**
 * Time for presence. Monotonic, so a wall-clock step (NTP, a VM resumed, an
 * operator's `date -s`) can neither keep users online nor drop them early.
 */

/** Milliseconds on a clock that never steps back. Stores take one as their `now` option (tests pass their own). */
export type Clock = () => number;

/** Close to the wall clock when the process started, then monotonic: the base every time in a MemoryStore is on. */
export const monotonicNow: Clock = () => performance.timeOrigin + performance.now();

/** Below this, the wall clock and a store's time base are taken to agree (an estimate of Redis's clock wobbles by a few ms). */
const WALL_TOLERANCE_MS = 1000;

/**
 * What to add to a time on `now` to make it a time on this server's wall
 * clock, read afresh at each call: after a wall-clock step or a VM resume the
 * two part, and dates follow the wall clock, so `timeAgo` (which reads it) stays
 * right. While they agree within a second, times are taken as they are. A
 * clock the app passed in is the whole time base (a test's): taken as it is.
 */
export function wallOffset(now: Clock, given: boolean): () => number {
  if (given) return () => 0;
  return () => {
    const offset = Date.now() - now();
    return offset > -WALL_TOLERANCE_MS && offset < WALL_TOLERANCE_MS ? 0 : offset;
  };
}

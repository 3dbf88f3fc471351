/**
 * Time for presence. Monotonic, so a wall-clock step (NTP, a VM resumed, an
 * operator's `date -s`) can neither keep users online nor drop them early.
 */

/** Milliseconds on a clock that never steps back. Stores take one as their `now` option (tests pass their own). */
export type Clock = () => number;

/** Close to the wall clock when the process started, then monotonic: the base every time in a MemoryStore is on. */
export const monotonicNow: Clock = () => performance.timeOrigin + performance.now();

// Waiting in tests: on a condition, never for a length of time that "should be enough".

/** Resolves after `ms`. Only where the time itself is the subject (see the comment at each use). */
export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Resolves once the store's deferred hooks (onSeen, onRecord: `setImmediate` in
 * lib/stores/base-store.ts) queued so far have run: the check phase runs immediates in order.
 */
export const hooksRun = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/**
 * Retries `check` until it stops throwing (or, for a boolean, returns true), for at most
 * `withinMs`, then throws its last error: for state that converges across processes
 * (a sync, a reconnect, a stream), so a slow machine does not fail the test. The default
 * allows for a machine under load (stress-ng on every core): a failing check fails in 10 s.
 */
export async function eventually(check: () => unknown, withinMs = 10_000, everyMs = 50): Promise<void> {
  const deadline = Date.now() + withinMs;
  for (;;) {
    try {
      const result = await check();
      if (result === false) throw new Error(`still false after ${withinMs} ms: ${check.toString()}`);
      return;
    } catch (error) {
      if (Date.now() > deadline) throw error;
      await sleep(everyMs);
    }
  }
}

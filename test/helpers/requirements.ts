import { existsSync } from 'node:fs';

/**
 * A suite that needs a real component (redis-server, chromium) skips loudly
 * when it is missing on a developer's machine, and fails under CI=true, where
 * .ci/run must have installed it.
 */
export function requireBinary(context: Mocha.Context, binary: string, installHint: string): void {
  if (existsSync(binary)) return;
  const reason = `${binary} is missing: ${installHint}`;
  if (process.env.CI === 'true') throw new Error(`${reason} (CI=true: this suite may not be skipped)`);
  console.warn(`\n  !!! SKIPPING: ${reason}\n`);
  context.skip();
}

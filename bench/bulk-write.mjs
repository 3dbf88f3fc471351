// A burst: one process touches N distinct users at once (a mass sign-in, a
// replica written back after Redis restarted empty). How long until Redis holds
// them all: the writer's sync loop sends them in slices and applies its own
// writes as they come back in the change feed, so both must stay linear in N.
// Run as `node bench/bulk-write.mjs [N ...]`, or from run.mjs.
import { createClient } from 'redis';
import { RedisStore, createOnlineTracker } from '../dist/index.js';
import { startRedis, table } from './lib.mjs';

/** `hooks`: the tracker has onOnline/onOffline, so the script also decides and queues a transition per user (told as they come back). */
async function burst(n, hooks = false) {
  const redis = await startRedis();
  const client = createClient({ url: `redis://127.0.0.1:${redis.port}` });
  await client.connect();
  let told = 0;
  const transitions = hooks ? { onOnline: () => void told++, onOffline: () => undefined } : {};
  const online = createOnlineTracker({ threshold: 3600, store: new RedisStore({ client, prefix: 'bench-bulk', maxTracked: n }), ...transitions });
  try {
    await online.count(); // attached and warm
    const started = performance.now();
    for (let i = 0; i < n; i++) online.store.touch('users', String(i), i, { username: `u${i}` });
    const touchedMs = performance.now() - started;
    while (Number(await client.sendCommand(['ZCARD', '{bench-bulk}:users:seen'])) < n) await new Promise((resolve) => setTimeout(resolve, 50));
    const landedS = (performance.now() - started) / 1000;
    if (hooks) while (told < n) await new Promise((resolve) => setTimeout(resolve, 50));
    const toldS = hooks ? (performance.now() - started) / 1000 : undefined;
    return { n, hooks, touchedMs, landedS, toldS, perSecond: n / landedS };
  } finally {
    await online.close();
    await client.quit();
    redis.stop();
  }
}

export async function bulkWrite(sizes = [100_000, 400_000, 1_000_000], withHooks = [100_000]) {
  const rows = [];
  for (const n of sizes) rows.push(await burst(n));
  for (const n of withHooks) rows.push(await burst(n, true));
  return rows;
}

export function bulkWriteTable(rows) {
  return table(
    'A burst into Redis: one process touches N distinct users at once (wall clock)',
    ['users', 'onOnline/onOffline', 'touched in (ms)', 'all in Redis after (s)', 'users/s', 'every onOnline told after (s)'],
    rows.map((r) => [
      r.n.toLocaleString('en'),
      r.hooks ? 'on' : 'off',
      r.touchedMs.toFixed(0),
      r.landedS.toFixed(1),
      Math.round(r.perSecond).toLocaleString('en'),
      r.toldS === undefined ? '' : r.toldS.toFixed(1),
    ]),
  );
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const sizes = process.argv.slice(2).map(Number);
  bulkWriteTable(await bulkWrite(sizes.length > 0 ? sizes : undefined));
}

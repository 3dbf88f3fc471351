// Section 1: what presence costs per operation, in-process and on Redis,
// at several numbers of users online, beside the recipe and the snippets.
import { createClient } from 'redis';
import { MemoryStore, RedisStore, createOnlineTracker } from 'express-online-now';
import { boundedProfile } from '../dist/identity.js';
import { hgetallSnippet, recipeOnLru, recipeOnRedis, sortedSetGist } from './baselines.mjs';
import { commandCount, nsPerOp, prng, range, redisInfo, table, usPerAsyncOp } from './lib.mjs';

const THRESHOLD_S = 900;
const gc = globalThis.gc ?? (() => undefined);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Fake request objects for `pool` random users among n, drawn with a fixed seed. */
function requests(n, pool = 4096) {
  const random = prng(7);
  return Array.from({ length: pool }, () => {
    const id = 1 + Math.floor(random() * n);
    return { headers: {}, session: { user: { id, username: `user${id}` } } };
  });
}

/** One request's whole presence work: mark its user, then what a page reads. */
function pageWork(middleware, reqs, n) {
  const random = prng(11);
  const others = Array.from({ length: 4096 }, () => 1 + Math.floor(random() * n));
  let sink = 0;
  const next = () => undefined;
  return (i) => {
    const res = { locals: {} };
    middleware(reqs[i & 4095], res, next);
    const l = res.locals;
    sink += l.onlineCount + l.onlineNow.length + (l.isOnline(others[i & 4095]) ? 1 : 0);
    return sink;
  };
}

function fillMemory(n) {
  const store = new MemoryStore({ maxTracked: n });
  const online = createOnlineTracker({ store, threshold: THRESHOLD_S });
  for (let id = 1; id <= n; id++) store.touch('users', String(id), id, { username: `user${id}` });
  return { store, online };
}

export async function memoryStoreOps(sizes) {
  const rows = [];
  const out = {};
  for (const n of sizes) {
    const { store, online } = fillMemory(n);
    const random = prng(3);
    const keys = Array.from({ length: 4096 }, () => String(1 + Math.floor(random() * n)));
    const touch = nsPerOp((i) => store.touch('users', keys[i & 4095], Number(keys[i & 4095]), { username: 'x' }));
    const snapshot = nsPerOp(() => store.view('users', 50));
    const view = store.view('users', 0);
    const isOnline = nsPerOp((i) => view.lastSeen(keys[i & 4095]));
    const request = nsPerOp(pageWork(online.middleware(), requests(n), n));
    const recipe = recipeOnLru({ thresholdMs: THRESHOLD_S * 1000, maxTracked: n + 100 });
    const ids = Array.from({ length: n }, (_, i) => i + 1);
    recipe.fill(ids);
    const recipeRequest = nsPerOp((i) => recipe.request(Number(keys[i & 4095])));
    out[n] = { touch, snapshot, isOnline, request, recipeRequest, recipeCount: recipe.request(1).count, count: view.count };
    rows.push([
      n.toLocaleString('en-US'),
      range(touch, 0),
      range(snapshot, 0),
      range(isOnline, 0),
      range(request, 0),
      range(recipeRequest, 0),
      `${view.count.toLocaleString('en-US')} / ${out[n].recipeCount}`,
    ]);
    online.close();
  }
  const text = table(
    'Memory store: ns per operation (median of 5 runs, min–max)',
    ['users online', 'touch', 'snapshot (count + 50 listed)', 'isOnline', 'whole request¹', 'Django recipe on lru-cache, per request', 'count: ours / recipe'],
    rows,
  );
  return { results: out, text };
}

/** Heap bytes per tracked user at n, measured with --expose-gc. */
export function memoryHeap(n) {
  // The JS heap and the typed arrays' memory (outside the heap, in `arrayBuffers`): both are per user.
  const used = () => {
    gc();
    gc();
    const { heapUsed, arrayBuffers } = process.memoryUsage();
    return heapUsed + arrayBuffers;
  };
  const measure = (profile, count = n) => {
    const before = used();
    const store = new MemoryStore({ maxTracked: count });
    createOnlineTracker({ store, threshold: THRESHOLD_S });
    for (let id = 1; id <= count; id++) store.touch('users', String(id), id, profile(id));
    const bytes = (used() - before) / count;
    store.view('users', 1); // keeps the store alive until measured
    return bytes;
  };
  const idOnly = measure(() => undefined); // as the middleware passes for a user with no name fields: the shared empty profile
  const withName = measure((id) => ({ username: `user${id}` }));
  // A string id (a UUID): its key is a string per user.
  const uuid = (id) => `${id.toString(16).padStart(8, '0')}-7d3c-4b8e-9a51-0c2f6e4d8b17`;
  const uuidOnly = (() => {
    const before = used();
    const store = new MemoryStore({ maxTracked: n });
    createOnlineTracker({ store, threshold: THRESHOLD_S });
    for (let id = 1; id <= n; id++) store.touch('users', uuid(id), uuid(id), undefined);
    const bytes = (used() - before) / n;
    store.view('users', 1);
    return bytes;
  })();
  // The most a profile can cost: 16 short fields of two-byte characters, as the 512-character cap leaves them.
  const worstN = Math.min(n, 100_000);
  const worst = measure((id) => {
    const wide = {};
    for (let f = 0; f < 16; f++) wide[`f${f}abcd`] = `é${id}${f}`.padEnd(24, 'é');
    return boundedProfile(wide);
  }, worstN);
  const text = table(
    `Memory store: memory per tracked user at ${n.toLocaleString('en-US')} users (JS heap + typed arrays)`,
    ['profile', 'bytes per user'],
    [
      ['numeric id only', idOnly.toFixed(0)],
      ['numeric id + username ("user123456")', withName.toFixed(0)],
      ['UUID string id only', uuidOnly.toFixed(0)],
      [`the largest profile allowed (at ${worstN.toLocaleString('en-US')} users)`, worst.toFixed(0)],
    ],
  );
  return { results: { idOnly, withName, uuidOnly, worst }, text };
}

async function usedMemory(client) {
  return Number((await redisInfo(client, 'memory')).used_memory);
}

export async function redisStoreOps(redis, sizes) {
  const client = await createClient({ url: redis.url }).connect();
  const rows = [];
  const out = {};
  for (const n of sizes) {
    await client.sendCommand(['FLUSHALL']);
    const memBefore = await usedMemory(client);
    // Ours: n users written by one tracker (as they would be by their first requests), then read by another process's view.
    const writer = createOnlineTracker({ store: new RedisStore({ client, prefix: 'bench', maxTracked: n + 10 }), threshold: THRESHOLD_S });
    for (let id = 1; id <= n; id++) writer.store.touch('users', String(id), id, { username: `user${id}` });
    await writer.close(); // flushes the queue
    while (Number(await client.sendCommand(['ZCARD', '{bench}:users:seen'])) < n) await sleep(50);
    const memOurs = ((await usedMemory(client)) - memBefore) / n;
    const store = new RedisStore({ client, prefix: 'bench', maxTracked: n + 10 });
    const online = createOnlineTracker({ store, threshold: THRESHOLD_S });
    while ((await online.count()) < n) await sleep(50);
    const work = pageWork(online.middleware(), requests(n), n);
    const request = nsPerOp(work);
    // Commands per request at steady state: requests spread over 3 s, yielding so the sync timer runs.
    await client.sendCommand(['CONFIG', 'RESETSTAT']);
    let served = 0;
    const until = Date.now() + 3000;
    while (Date.now() < until) {
      for (let i = 0; i < 2000; i++) work(served++);
      await new Promise((r) => setImmediate(r));
    }
    const commands = await commandCount(client);
    await online.close();

    const baselines = [];
    for (const make of [recipeOnRedis, hgetallSnippet, sortedSetGist]) {
      await client.sendCommand(['FLUSHALL']);
      const before = await usedMemory(client);
      const baseline = make(client, { thresholdMs: THRESHOLD_S * 1000 });
      await baseline.fill(Array.from({ length: n }, (_, i) => i + 1));
      const bytes = ((await usedMemory(client)) - before) / n;
      await client.sendCommand(['CONFIG', 'RESETSTAT']);
      const random = prng(5);
      let count = 0;
      const us = await usPerAsyncOp(
        async () => {
          count = (await baseline.request(1 + Math.floor(random() * n))).count;
        },
        { targetMs: n > 10_000 ? 1500 : 300, runs: n > 10_000 ? 3 : 5 },
      );
      baselines.push({ name: baseline.name, us, bytes, count, calls: await commandCount(client) });
    }
    out[n] = {
      request,
      roundTripsPerRequest: commands.roundTrips / served,
      commandsPerRequest: commands.executed / served,
      requests: served,
      bytesPerUser: memOurs,
      baselines,
    };
    rows.push([
      n.toLocaleString('en-US'),
      'express-online-now RedisStore',
      range({ median: request.median / 1000, min: request.min / 1000, max: request.max / 1000 }, 2),
      (commands.roundTrips / served).toFixed(5),
      (commands.executed / served).toFixed(4),
      memOurs.toFixed(0),
      n.toLocaleString('en-US'),
    ]);
    for (const b of baselines) {
      const perRequest = (b.calls.executed / b.us.calls).toFixed(1);
      rows.push([n.toLocaleString('en-US'), b.name, range(b.us, 1), perRequest, perRequest, b.bytes.toFixed(0), b.count.toLocaleString('en-US')]);
    }
  }
  await client.quit();
  const text = table(
    'Redis: one request’s presence work, sequential (median of runs, min–max)',
    ['users online', 'implementation', 'µs per request', 'round trips per request', 'commands run per request (in scripts too)', 'Redis bytes per online user', 'count shown'],
    rows,
  );
  return { results: out, text };
}

/**
 * What the forum features add to a request (memory store, n users online):
 * a signed-in page with invisible mode and onSeen on (1 user in 50 hidden) vs
 * without, and a signed-out request from a browser (a guest) vs from a crawler.
 */
export function forumFeatureCosts(n) {
  const rows = [];
  const out = {};
  const browser = 'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36';
  const googlebot = 'Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)';
  const forum = {
    hidden: (user) => user.id % 50 === 0,
    canSeeHidden: (req) => req.session.user.id % 100 === 1,
    onSeen: () => undefined,
  };
  const signedOut = (agent) => Array.from({ length: 4096 }, (_, i) => ({ headers: { 'user-agent': agent, cookie: `sid=s${i}` }, session: {}, sessionID: `s${i}` }));
  const cases = [
    ['signed-in page, plain options', {}, requests(n)],
    ['signed-in page, hidden + canSeeHidden + onSeen', forum, requests(n)],
    ['signed-out page, a browser (a guest)', { trackGuests: true }, signedOut(browser)],
    ['signed-out page, Googlebot (a bot)', { trackGuests: true }, signedOut(googlebot)],
  ];
  for (const [name, options, reqs] of cases) {
    const store = new MemoryStore({ maxTracked: n });
    const online = createOnlineTracker({ store, threshold: THRESHOLD_S, ...options });
    for (let id = 1; id <= n; id++) store.touch('users', String(id), id, { username: `user${id}` });
    const ns = nsPerOp(pageWork(online.middleware(), reqs, n));
    out[name] = ns;
    rows.push([name, range(ns, 0)]);
    online.close();
  }
  const text = table(
    `Forum features: ns per request through the middleware, memory store, ${n.toLocaleString('en-US')} users online (median of 5 runs, min–max)`,
    ['request', 'ns'],
    rows,
  );
  return { results: out, text };
}

// `npm run bench`: every table of BENCHMARKS.md, measured side by side in one
// run on this machine, printed as Markdown and written to bench/results.json.
// Starts its own redis-server where one is installed; the whole-request section needs wrk,
// the instructions-per-request section valgrind (INSTRUCTIONS=0 skips it).
// QUICK=1 runs smaller sizes and fewer rounds, for a look in about a minute (plus some 5 minutes of callgrind).
// The live-pages section (bench/live.mjs) opens 10,000 loopback connections: it wants ulimit -n above 10,200.
import { writeFileSync } from 'node:fs';
import { haveWrk, wholeRequests } from './http.mjs';
import { BEST_CASE, MANY_USERS, haveValgrind, instructionsPerRequest } from './instructions.mjs';
import { bulkWrite, bulkWriteTable } from './bulk-write.mjs';
import { machine, startRedis } from './lib.mjs';
import { live } from './live.mjs';
import { readModelScale } from './read-model.mjs';
import { soak } from './soak.mjs';
import { forumFeatureCosts, memoryHeap, memoryStoreOps, redisStoreOps } from './store-ops.mjs';

if (typeof globalThis.gc !== 'function') {
  console.error('run me with node --expose-gc (npm run bench does)');
  process.exit(1);
}
const quick = process.env.QUICK === '1';
const started = new Date();
const host = machine();
console.log(`express-online-now benchmarks, ${started.toISOString()}`);
console.log(`${host.cpu}, ${host.cores} cores, ${host.memoryGiB} GiB, Node ${host.node}, ${host.platform}`);
console.log('Times are medians of the runs shown, with their min–max. User ids come from a fixed-seed PRNG.');

const results = { date: started.toISOString(), machine: host, quick };
const texts = [];

const memory = await memoryStoreOps(quick ? [1_000, 100_000] : [1_000, 100_000, 1_000_000]);
results.memoryStore = memory.results;
texts.push(memory.text);
const forum = forumFeatureCosts(100_000);
results.forumFeatures = forum.results;
texts.push(forum.text);
const heap = memoryHeap(quick ? 100_000 : 1_000_000);
results.memoryHeap = heap.results;
texts.push(heap.text);

const redis = await startRedis();
if (redis === null) {
  console.log('\nredis-server is not installed (apt-get install redis-server): the Redis sections are skipped.\n');
} else {
  try {
    const ops = await redisStoreOps(redis, quick ? [1_000, 10_000] : [1_000, 100_000]);
    results.redisStore = ops.results;
    texts.push(ops.text);
  } finally {
    redis.stop();
  }
}

if (!haveWrk()) {
  console.log('\nwrk is not installed (apt-get install wrk): the whole-request section is skipped.\n');
} else {
  const web = await startRedis();
  try {
    const variants = ['none', 'control', 'memory', 'recipe-lru'];
    if (web !== null) variants.push('redis', 'recipe-redis', 'hgetall', 'zset');
    const http = await wholeRequests({
      sizes: quick ? [10_000] : [10_000, 100_000],
      variants,
      redisUrl: web?.url,
      rounds: quick ? 2 : 7,
      seconds: quick ? 1 : 2,
    });
    results.wholeRequests = http.results;
    texts.push(http.text);
  } finally {
    web?.stop();
  }
}

if (process.env.INSTRUCTIONS === '0') {
  console.log('\nINSTRUCTIONS=0: the instructions-per-request section is skipped.\n');
} else if (!haveValgrind()) {
  console.log('\nvalgrind is not installed (apt-get install valgrind): the instructions-per-request section is skipped.\n');
} else {
  // Counted by callgrind, so machine load does not matter; about 15 ms of real time per request under valgrind.
  // The headline rows: many users taking turns (MANY_USERS); beside them one user's best case, at 100,000.
  // Each RedisStore run starts a redis-server of its own.
  const sizes = quick ? [100_000] : [1_000, 100_000, 1_000_000];
  const cases = [];
  for (const store of redis === null ? ['memory'] : ['memory', 'redis']) {
    cases.push(...sizes.map((n) => ({ store, n, traffic: MANY_USERS })));
    if (!quick) cases.push({ store, n: 100_000, traffic: BEST_CASE });
  }
  // Status on (issue #25): every profile carries its activity time, stamped by each request.
  cases.push({ store: 'memory-status', n: 100_000, traffic: MANY_USERS });
  // And transitions on (onOnline/onOffline): a request of a user already online tells nothing, but is looked up first.
  cases.push({ store: 'memory-transitions', n: 100_000, traffic: MANY_USERS });
  // And onStatus: each request's user is watched (their status caught up, their due step filed again when it moves).
  cases.push({ store: 'memory-onstatus', n: 100_000, traffic: MANY_USERS });
  const counted = await instructionsPerRequest({ cases, K: quick ? 300 : 2000, W: 3000, R: quick ? 5000 : 30_000, repeats: quick ? 1 : 3 });
  results.instructionsPerRequest = counted.results;
  texts.push(counted.text);
}

if (redis !== null) {
  // Every process holds every online user: a new process's first read, memory and CPU at scale.
  const scale = await readModelScale(quick ? { n: 100_000, processes: 3, seconds: 2 } : { n: 1_000_000, processes: 8 });
  results.readModel = scale.results;
  texts.push(scale.text);
  // A burst into Redis (a mass sign-in, a replica written back after Redis restarted empty): each size on a redis-server of its own.
  results.bulkWrite = await bulkWrite(quick ? [20_000, 100_000] : [100_000, 400_000, 1_000_000], quick ? [20_000] : [100_000]);
  texts.push(bulkWriteTable(results.bulkWrite));
}

// Rooms and live updates: SSE fan-out (in two processes of its own), a room's page, Redis commands per heartbeat.
const liveSection = await live({ quick });
results.live = liveSection.results;
texts.push(liveSection.text);

const soaked = soak(quick ? { requests: 600_000, distinctUsers: 400_000, maxTracked: 20_000 } : {});
results.soak = soaked.results;
texts.push(soaked.text);

const notes = `¹ whole request: the middleware on a request of a signed-in user (mark them, take the page's view,
set every local), then what a page reads: onlineCount, the ${50} listed, one isOnline of another user.`;
console.log(notes);
results.seconds = Math.round((Date.now() - started.getTime()) / 1000);
writeFileSync(new URL('results.json', import.meta.url), `${JSON.stringify(results, null, 2)}\n`);
writeFileSync(
  new URL('results.md', import.meta.url),
  `Measured ${started.toISOString().slice(0, 10)} on ${host.cpu}, ${host.cores} cores, ${host.memoryGiB} GiB, Node ${host.node}${quick ? ' (QUICK=1)' : ''}; ${results.seconds} s in all.\n\n${texts.join('\n\n')}\n\n${notes}\n`,
);
console.log(`\nbench/results.json and bench/results.md written (${results.seconds} s).`);
process.exit(0);

// Instructions per whole request, counted by valgrind's callgrind: free of
// wall-clock noise. The app (bench/app-server.mjs) runs under callgrind with
// node --single-threaded, so V8's GC and compiler work happen on the counted
// thread. A plain Node client (not under valgrind) signs users in (MANY_USERS:
// 200 taking turns, 8 requests in flight; BEST_CASE: one, one at a time), warms
// every page up with K requests, turns instrumentation on (callgrind_control -i
// on), zeroes the counters, then sends W requests of each page in turn, with a
// dump (callgrind_control -d) after each page's window: each dump holds exactly
// that window's instructions. Start-up, preload and warm-up are never counted.
// Each run is repeated `repeats` times; median and min–max are reported.
//
// A window of a few thousand requests holds zero, one or two major GCs, so its
// count swings with where they fall. Each run therefore also counts one forced
// full GC alone (GET /gc), and the same app outside valgrind counts how many
// major GCs R requests bring: a request's steady cost is the window without its
// major GCs, plus one full GC times that rate.
//
// RedisStore's sync loop runs on wall-clock time, so under valgrind (~50×
// slower) it would run ~50× more often per request than at full speed. Under
// callgrind its timer is set long and kept out of the windows; each run counts
// SYNC_SAMPLES syncs alone instead, each carrying what a sync carries at full
// speed, and a request is charged instructions per sync × syncs per request
// at full speed (syncs Redis ran ÷ requests served, outside valgrind).
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createClient } from 'redis';
import { commandCount, cpuMicros, median, prng, startRedis, summary, table } from './lib.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const VALGRIND = '/usr/bin/valgrind';
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export function haveValgrind() {
  return existsSync(VALGRIND) && existsSync('/usr/bin/callgrind_control');
}

function get(agent, port, urlPath, cookie) {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path: urlPath, agent, headers: cookie ? { cookie } : {} }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks) }));
    });
    req.on('error', reject);
    req.end();
  });
}

/** The port app-server.mjs prints when it listens; rejects with the message `failed` gives if it exits first. */
function appPort(child, failed) {
  return new Promise((resolve, reject) => {
    let out = '';
    child.stdout.on('data', (c) => {
      out += c;
      const line = out.split('\n').find((l) => l.startsWith('{'));
      if (line) resolve(JSON.parse(line).port);
    });
    failed.then((message) => reject(new Error(message)));
  });
}

/** Total instructions (Ir) from a callgrind output file: its `totals:` (or `summary:`) line. */
export function callgrindTotal(file) {
  const text = readFileSync(file, 'utf8');
  const m = /^totals:\s+(\d+)/m.exec(text) ?? /^summary:\s+(\d+)/m.exec(text);
  if (!m) throw new Error(`no totals line in ${file}`);
  return Number(m[1]);
}

/** Sends `command` to callgrind in `pid` and wakes the app with /ping requests until it is done. */
async function control(pid, command, agent, port) {
  const done = new Promise((resolve, reject) => {
    const c = spawn('/usr/bin/callgrind_control', [...command.split(' '), String(pid)], { stdio: ['ignore', 'pipe', 'pipe'] });
    let o = '';
    c.stdout.on('data', (d) => {
      o += d;
    });
    c.on('exit', (code) => (code === 0 && o.includes('OK') ? resolve() : reject(new Error(`callgrind_control ${command}: ${o}`))));
  });
  let settled = false;
  done.then(
    () => {
      settled = true;
    },
    () => {
      settled = true;
    },
  );
  // callgrind takes commands only while the app runs code: idle in epoll, it needs a request.
  for (let i = 0; i < 60 && !settled; i++) {
    await sleep(250);
    if (!settled) await get(agent, port, '/ping');
  }
  await done;
}

/**
 * What a run sends. The headline: many signed-in users taking turns, several
 * requests in flight, so most requests move another user to the top of the
 * list, as on a busy site. The best case: one user, one request at a time, so
 * the list never changes and its ready-made view is reused on every request.
 */
export const MANY_USERS = { users: 200, inFlight: 8, name: '200 users, 8 in flight' };
export const BEST_CASE = { users: 1, inFlight: 1, name: 'best case: 1 user, 1 in flight' };

/** Signs in `users` distinct users, ids drawn with a fixed seed, and returns a sender of their requests. */
async function signIn(agent, port, n, { users, inFlight }) {
  const random = prng(99);
  const ids = new Set();
  while (ids.size < users) ids.add(1 + Math.floor(random() * n));
  const cookies = [];
  for (const id of ids) cookies.push((await get(agent, port, `/login/${id}`)).headers['set-cookie'][0].split(';')[0]);
  let turn = 0;
  /** `count` GETs of `page`, the users taking turns, `inFlight` at a time. */
  return async (page, count) => {
    let sent = 0;
    const worker = async () => {
      // Counted as sent before it goes, or the other workers would send past `count`.
      while (sent++ < count) {
        const res = await get(agent, port, page, cookies[turn++ % cookies.length]);
        if (res.status !== 200) throw new Error(`${page}: HTTP ${res.status}`);
      }
    };
    await Promise.all(Array.from({ length: inFlight }, worker));
  };
}

/**
 * The app (bench/app-server.mjs), under callgrind when `outFile` is given, else
 * plain node, both --single-threaded. For RedisStore, a redis-server of its own,
 * filled first by another app process outside valgrind (under it, a million
 * writes would not finish): the app measured reads everyone at its first sync,
 * as a new process does.
 */
async function launch({ variant, n, syncMs, outFile }) {
  const redis = variant === 'redis' ? await startRedis() : null;
  if (variant === 'redis' && redis === null) throw new Error('redis-server is not installed');
  const appArgs = ['--single-threaded', '--expose-gc', path.join(HERE, 'app-server.mjs'), variant, String(n), redis?.url ?? ''];
  const start = (command, args, env) => {
    const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
    const app = { child, stderr: '' };
    child.stderr.on('data', (c) => {
      app.stderr += c;
    });
    app.exited = new Promise((resolve) => child.on('exit', resolve));
    app.port = appPort(
      child,
      app.exited.then((code) => `${variant} app exited with ${code}: ${app.stderr.slice(-2000)}`),
    );
    return app;
  };
  try {
    if (redis !== null) {
      const filler = start(process.execPath, appArgs);
      await filler.port;
      filler.child.kill('SIGKILL');
      await filler.exited;
    }
    const args = syncMs === undefined ? appArgs : [...appArgs, String(syncMs)];
    const app =
      outFile === undefined
        ? start(process.execPath, args)
        : start(VALGRIND, [...CALLGRIND, `--callgrind-out-file=${outFile}`, process.execPath, ...args], { BENCH_TIMER_STRETCH: '50' });
    const agent = new http.Agent({ keepAlive: true, maxSockets: 8 });
    const stop = async () => {
      agent.destroy();
      app.child.kill('SIGKILL');
      await app.exited;
      redis?.stop();
    };
    return { app, agent, port: await app.port.catch(async (e) => (await stop(), Promise.reject(e))), redis, stop };
  } catch (error) {
    redis?.stop();
    throw error;
  }
}

/**
 * callgrind's options: nothing counted before `callgrind_control -i on`; GET
 * /sync zeroes the counters as it starts a sync and dumps as it ends (the app
 * calls process.resourceUsage() and process.cpuUsage() there, and only there).
 */
const CALLGRIND = ['--tool=callgrind', '--dump-instr=no', '--instr-atstart=no', '--zero-before=node::ResourceUsage*', '--dump-before=node::CPUUsage*'];

/**
 * RedisStore's syncInterval under callgrind: its longest for a 900 s threshold,
 * so the timer syncs (at valgrind's pace, ~50× more per request than at full
 * speed) stay out of the windows; the bench runs and counts syncs itself.
 */
const SYNC_MS_UNDER_VALGRIND = 225_000;
/**
 * Syncs counted per run, each alone, each after the requests a sync carries at full speed. With node
 * --single-threaded, a sync during which V8 optimizes a function counts the compilation too (10 M became
 * 35–65 M): the median of 7 stands for a sync of optimized code.
 */
const SYNC_SAMPLES = 7;
/** Syncs run before counting: counted cold (baseline-compiled code, just after the load), one took 2–6× as many; after 30, 3 of 5 still compiled. */
const SYNC_WARMUP = 100;

/**
 * One run: the app under callgrind, then for each of `pages` in turn `W` GETs
 * sent as `traffic` says. Returns instructions per request per page, of one
 * full GC, and, for RedisStore, of each sync counted.
 */
async function oneRun({ variant, n, pages, K, W, traffic, usersPerSync, outFile }) {
  const { app, agent, port, stop } = await launch({ variant, n, syncMs: variant === 'redis' ? SYNC_MS_UNDER_VALGRIND : undefined, outFile });
  try {
    const pid = app.child.pid;
    const send = await signIn(agent, port, n, traffic);
    for (const page of pages) await send(page, K);
    // A process at full speed has synced thousands of times: its sync code is optimized, as the pages' is.
    if (variant === 'redis') {
      for (let i = 0; i < SYNC_WARMUP; i++) {
        await send(pages[0], usersPerSync);
        await send('/sync', 1);
      }
      // Uninstrumented, callgrind sees no function entered, so these syncs dumped nothing: the dumps below are numbered from 1.
      if (existsSync(`${outFile}.1`)) throw new Error('callgrind dumped during the warm-up');
    }
    await control(pid, '-i on', agent, port);
    await control(pid, '-z', agent, port);
    const perRequest = {};
    let dumps = 0;
    for (const page of pages) {
      await send(page, W);
      await control(pid, '-d', agent, port);
      perRequest[page] = callgrindTotal(`${outFile}.${++dumps}`) / W;
    }
    // One full collection of this heap, counted alone: what a major GC costs at this N.
    await send('/gc', FULL_GCS);
    await control(pid, '-d', agent, port);
    perRequest.fullGc = callgrindTotal(`${outFile}.${++dumps}`) / FULL_GCS;
    if (variant === 'redis') {
      // What a sync carries at full speed: every user who made a request since the last one. A sync's
      // own dump holds just the sync (see CALLGRIND); the pages before it are zeroed.
      perRequest.syncs = [];
      const complaints = app.stderr.length;
      for (let i = 0; i < SYNC_SAMPLES; i++) {
        await send(pages[0], usersPerSync);
        await send('/sync', 1);
        perRequest.syncs.push(callgrindTotal(`${outFile}.${++dumps}`));
      }
      // A sync that failed (the store reports it) would be counted as one that did not.
      if (app.stderr.length > complaints) throw new Error(`RedisStore under callgrind: ${app.stderr.slice(complaints)}`);
    }
    return perRequest;
  } finally {
    await stop();
  }
}

/**
 * Rates at full speed, outside valgrind: the same app with node
 * --single-threaded and RedisStore's default syncInterval, R requests a page
 * after K of warm-up, sent as `traffic` says. Major GCs a request brings (the
 * app's own GC observer: a callgrind window holds too few to say), requests
 * per second of the app's own CPU time (what it serves with a core to itself,
 * however busy the machine), and for RedisStore syncs per second of wall
 * clock (Redis's count of script calls) and so syncs per request at full
 * speed. Both are wall-clock and CPU-tick readings: rougher than the counts.
 */
async function fullSpeedRates({ variant, n, pages, K, R, traffic }) {
  const { app, agent, port, redis, stop } = await launch({ variant, n });
  const client = redis === null ? null : await createClient({ url: redis.url }).connect();
  try {
    const send = await signIn(agent, port, n, traffic);
    const counts = async () => JSON.parse((await get(agent, port, '/collections')).body);
    const rate = {};
    for (const page of pages) {
      await send(page, K);
      const before = await counts();
      const syncsBefore = client && (await commandCount(client)).scripts;
      const started = performance.now();
      const cpuBefore = cpuMicros(app.child.pid);
      await send(page, R);
      const perSecond = R / ((cpuMicros(app.child.pid) - cpuBefore) / 1e6);
      const seconds = (performance.now() - started) / 1000;
      const after = await counts();
      rate[page] = { major: (after.major - before.major) / R, minor: (after.minor - before.minor) / R, perSecond };
      if (client) {
        const syncsPerSecond = ((await commandCount(client)).scripts - syncsBefore) / seconds;
        Object.assign(rate[page], { syncsPerSecond, syncs: syncsPerSecond / perSecond });
      }
    }
    return rate;
  } finally {
    await client?.quit();
    await stop();
  }
}

/** Full collections counted per run, each alone in its window. */
const FULL_GCS = 3;

/** Runs async jobs, `parallel` at a time (each app under valgrind takes one core). */
async function pool(jobs, parallel) {
  const results = new Array(jobs.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: parallel }, async () => {
      while (next < jobs.length) {
        const i = next++;
        results[i] = await jobs[i]();
      }
    }),
  );
  return results;
}

const fmtInt = (x) => Math.round(x).toLocaleString('en-US');
const fmtRate = (perRequest) => (perRequest * 10_000).toFixed(1);
const fmtRange = (s) => `${fmtInt(s.median)} (${fmtInt(s.min)}–${fmtInt(s.max)})`;
const PAGE_NAMES = { '/': 'Nunjucks page', '/hbs': 'Handlebars page', '/json': 'JSON' };
const storeName = (store) =>
  ({
    memory: 'MemoryStore',
    'memory-status': 'MemoryStore, status on',
    'memory-transitions': 'MemoryStore, status and onOnline/onOffline on',
    'memory-onstatus': 'MemoryStore, status and onOnline/onOffline/onStatus on',
  })[store] ?? 'RedisStore';

/**
 * cases: [{ store: 'memory' | 'redis', n, traffic }] (traffic: MANY_USERS or
 * BEST_CASE). Each case, and for each traffic the app without presence
 * ('static': the same locals built once at start-up), is run `repeats` times
 * under callgrind; every run counts W requests of each page. Rates at full
 * speed come first (a sync carries what a full-speed second brings).
 */
export async function instructionsPerRequest({ cases, pages = ['/', '/hbs', '/json'], K = 300, W = 3000, R = 30_000, repeats = 3, parallel = 2, annotateFrom = 100_000 }) {
  // CALLGRIND_DIR keeps the output files there, for callgrind_annotate by hand.
  const dir = process.env.CALLGRIND_DIR ?? mkdtempSync(path.join(tmpdir(), 'online-now-callgrind-'));
  const started = Date.now();
  // 'static' lists the same 50 names whatever N: one set of runs per traffic serves every case.
  const traffics = [...new Set(cases.map((c) => c.traffic))];
  const units = [...traffics.map((traffic) => ({ variant: 'static', n: 1000, traffic })), ...cases.map(({ store, n, traffic }) => ({ variant: store, n, traffic }))];
  const keyOf = (u) => `${u.variant} ${u.n} ${u.traffic.name}`;
  const fileOf = (u, r) => path.join(dir, `${u.variant}-${u.n}-${u.traffic.users}x${u.traffic.inFlight}-${r}.out`);

  process.stdout.write(`rates at full speed, outside valgrind: ${units.length} apps, ${pages.length} pages × ${fmtInt(R)} requests each\n`);
  const rates = new Map();
  await pool(
    units.map((u) => async () => rates.set(keyOf(u), await fullSpeedRates({ ...u, pages, K, R }))),
    parallel,
  );

  const counts = new Map(units.map((u) => [keyOf(u), []]));
  const jobs = [];
  for (let r = 0; r < repeats; r++) {
    for (const u of units) {
      const syncs = rates.get(keyOf(u))[pages[0]].syncs;
      const usersPerSync = syncs === undefined ? 0 : Math.max(1, Math.min(u.traffic.users, Math.round(1 / syncs)));
      jobs.push(async () => {
        counts.get(keyOf(u)).push(await oneRun({ ...u, pages, K, W, usersPerSync, outFile: fileOf(u, r) }));
        process.stdout.write('.');
      });
    }
  }
  process.stdout.write(`callgrind: ${jobs.length} runs of the app under valgrind, ${pages.length} pages × ${fmtInt(W)} requests each `);
  await pool(jobs, parallel);
  process.stdout.write('\n');

  // Each window split into major GC (mark-compact: marking, sweeping, evacuation) and the rest, by function names.
  const restOf = (u, r, p) => majorGcSplit(`${fileOf(u, r)}.${p + 1}`, W).rest;
  /**
   * A request's steady instructions in run r: the window without its major GCs, plus one full GC at this heap
   * times the major GCs a request brings, plus (RedisStore) the run's median sync times the syncs a request
   * brings, both rates at full speed.
   */
  const steadyRuns = (u, page) =>
    counts.get(keyOf(u)).map((c, r) => {
      const rate = rates.get(keyOf(u))[page];
      return restOf(u, r, pages.indexOf(page)) + c.fullGc * rate.major + (c.syncs ? median(c.syncs) * rate.syncs : 0);
    });
  const results = {};
  const rows = [];
  const pointers = [];
  for (const { store, n, traffic } of cases) {
    const u = { variant: store, n, traffic };
    const none = { variant: 'static', n: 1000, traffic };
    for (const [p, page] of pages.entries()) {
      const windows = summary(counts.get(keyOf(u)).map((c) => c[page]));
      const noneWindows = summary(counts.get(keyOf(none)).map((c) => c[page]));
      const rate = rates.get(keyOf(u))[page];
      const noneRate = rates.get(keyOf(none))[page];
      const fullGc = summary(counts.get(keyOf(u)).map((c) => c.fullGc));
      const noneFullGc = summary(counts.get(keyOf(none)).map((c) => c.fullGc));
      const sync = store === 'redis' ? summary(counts.get(keyOf(u)).flatMap((c) => c.syncs)) : undefined;
      const noneSteady = median(steadyRuns(none, page));
      const steady = summary(steadyRuns(u, page).map((x) => (x / noneSteady - 1) * 100));
      const pageName = PAGE_NAMES[page] ?? page;
      results[`${storeName(store)} ${n} ${pageName} ${traffic.name}`] = {
        store,
        n,
        page,
        traffic,
        W,
        R,
        windows,
        noneWindows,
        rate,
        noneRate,
        fullGc,
        noneFullGc,
        sync,
        noneSteady,
        steadyPercent: steady,
      };
      if (n >= annotateFrom && traffic === cases.find((c) => c.n >= annotateFrom)?.traffic) {
        // Where the difference goes, from callgrind_annotate of the first run's window of this page.
        const diff = functionDiff({ presence: `${fileOf(u, 0)}.${p + 1}`, none: `${fileOf(none, 0)}.${p + 1}`, W });
        results[`${storeName(store)} ${n} ${pageName} ${traffic.name}`].functions = diff;
        pointers.push(() =>
          table(
            `Where presence's instructions go: ${storeName(store)}, ${n.toLocaleString('en-US')} users, ${pageName}, ${traffic.name}, per request (first run; self cost per function, presence − none)`,
            ['function', 'with presence', 'no presence', 'difference'],
            [
              ...Object.entries(diff.byCategory)
                .sort((a, b) => b[1].diff - a[1].diff)
                .map(([cat, v]) => [`**all: ${cat}**`, fmtInt(v.presence), fmtInt(v.none), fmtInt(v.diff)]),
              ...diff.top.map((f) => [
                `\`${f.name
                  .replace(/^\?\?\?:/, '')
                  .replace(/\|/g, '\\|')
                  .slice(0, 120)}\``,
                fmtInt(f.presence),
                fmtInt(f.none),
                fmtInt(f.diff),
              ]),
            ],
          ),
        );
      }
      rows.push([
        storeName(store),
        n.toLocaleString('en-US'),
        traffic.name,
        pageName,
        fmtRange(windows),
        fmtRange(noneWindows),
        `${((windows.median / noneWindows.median - 1) * 100).toFixed(1)}%`,
        `${(fullGc.median / 1e6).toFixed(1)} M × ${fmtRate(rate.major)} / ${(noneFullGc.median / 1e6).toFixed(1)} M × ${fmtRate(noneRate.major)}`,
        sync ? `${fmtRange(sync)} × ${fmtRate(rate.syncs)} (${rate.syncsPerSecond.toFixed(2)}/s ÷ ${fmtInt(rate.perSecond)} req/s) = ${fmtInt(sync.median * rate.syncs)}` : '–',
        `**${steady.median.toFixed(1)}%** (${steady.min.toFixed(1)}–${steady.max.toFixed(1)})`,
      ]);
    }
  }
  const text = table(
    `Instructions per whole request (callgrind, node --single-threaded): presence vs none; windows of ${fmtInt(W)} requests per page after ${fmtInt(K)} warm-up requests, ${repeats} runs (median, min–max)`,
    [
      'store',
      'users online',
      'traffic',
      'page',
      'with presence, window',
      'no presence, window',
      'window difference',
      `major GC: one full GC × per 10,000 requests (${fmtInt(R)} at full speed), with / without`,
      'RedisStore sync: instructions per sync × syncs per 10,000 requests at full speed (syncs per second ÷ requests per CPU-second) = per request',
      'presence costs, steady (per run: window without major GC + major GC amortized + syncs at full-speed rate)',
    ],
    rows,
  );
  const allText = [text, ...pointers.map((print) => print())].join('\n\n');
  if (process.env.CALLGRIND_DIR === undefined) rmSync(dir, { recursive: true, force: true });
  return { results, text: allText, seconds: Math.round((Date.now() - started) / 1000) };
}

/** Functions of V8's major (mark-compact) collector: marking, sweeping, evacuation. The scavenger's are not. */
const MAJOR_GC = /Sweep|MarkCompact|Marking|MarkBit|Evacuat(?!ionAllocator)|Compaction|LiveObject|PointersUpdating|RememberedSetUpdating|ClearNonLive|WeakObjects/;

/**
 * A window's instructions per request, split: major GC, and the rest. A window
 * of a few thousand requests holds zero, one or two major GCs, and at 100,000
 * users and more each one marks the whole presence heap: the split shows how
 * much of a row's spread that is.
 */
function majorGcSplit(file, W) {
  let major = 0;
  for (const [name, count] of functions(file)) if (MAJOR_GC.test(name) && !/Scaveng/.test(name)) major += count;
  const total = callgrindTotal(file);
  return { major: major / W, rest: (total - major) / W };
}

/** Self-instructions per function (callgrind_annotate) of one output file. */
function functions(file) {
  const out = execFileSync('/usr/bin/callgrind_annotate', ['--threshold=100', '--inclusive=no', file], {
    encoding: 'utf8',
    maxBuffer: 256 * 2 ** 20,
  });
  const map = new Map();
  for (const line of out.split('\n')) {
    const m = /^\s*([\d,]+)\s+(?:\([^)]*\)\s+)?(.+?)\s*$/.exec(line);
    if (!m || !m[2].includes(':')) continue;
    let name = m[2].replace(/\s+\[[^\]]*\]$/, '');
    if (name.startsWith('???:0x')) name = '??? (JIT-compiled JavaScript, no symbols)';
    map.set(name, (map.get(name) ?? 0) + Number(m[1].replace(/,/g, '')));
  }
  return map;
}

/**
 * Which functions' counts differ most between presence and none, per request:
 * (presence window − none window) / W, per function.
 */
export function functionDiff({ presence, none, W, top = 12 }) {
  const [a, b] = [presence, none].map(functions);
  const rows = [];
  for (const name of new Set([...a.keys(), ...b.keys()])) {
    const p = (a.get(name) ?? 0) / W;
    const q = (b.get(name) ?? 0) / W;
    rows.push({ name, presence: p, none: q, diff: p - q });
  }
  const byCategory = {};
  for (const row of rows) {
    const cat = category(row.name);
    byCategory[cat] ??= { presence: 0, none: 0, diff: 0 };
    for (const k of ['presence', 'none', 'diff']) byCategory[cat][k] += row[k];
  }
  rows.sort((x, y) => Math.abs(y.diff) - Math.abs(x.diff));
  return { top: rows.slice(0, top), byCategory };
}

/** A rough bucket for a function name from callgrind_annotate. */
function category(name) {
  if (name.startsWith('??? (JIT')) return 'JIT-compiled JavaScript';
  if (/Scavenge|Marking|MarkCompact|Sweep|Heap::|Evacuat|GCTracer|RememberedSet|SlotSet|Compactor|ObjectVisitor|Visitor</.test(name)) return 'GC';
  if (/v8::internal::compiler::|Maglev|turboshaft|Zone::|SourcePositionTable|OptimizedCompilationJob|Pipeline/.test(name)) return 'optimizing compiler';
  if (/Builtins_/.test(name)) return 'V8 builtins (ICs, runtime stubs)';
  if (/v8::internal::/.test(name)) return 'V8 runtime (other)';
  if (/node::|uv_|libuv/.test(name)) return 'node / libuv';
  if (/libc|ld-linux|\?\?\?:(mem|str|__|malloc|free)/.test(name)) return 'libc';
  return 'other';
}

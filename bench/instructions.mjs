// Instructions per whole request, counted by valgrind's callgrind: free of
// wall-clock noise. The app (bench/app-server.mjs) runs under callgrind with
// node --single-threaded, so V8's GC and compiler work happen on the counted
// thread. A plain Node client (not under valgrind) signs a user in, warms every
// page up with K requests, turns instrumentation on (callgrind_control -i on),
// zeroes the counters, then sends W requests of each page in turn, one at a
// time over one keep-alive connection, with a dump (callgrind_control -d) after
// each page's window: each dump holds exactly that window's instructions. Start-up,
// preload and warm-up are never counted. Each run is repeated `repeats` times;
// median and min–max are reported.
//
// A window of a few thousand requests holds zero, one or two major GCs, so its
// count swings with where they fall. Each run therefore also counts one forced
// full GC alone (GET /gc), and the same app outside valgrind counts how many
// major GCs R requests bring: a request's steady cost is the window without its
// major GCs, plus one full GC times that rate.
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startRedis, summary, table } from './lib.mjs';

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
 * One run: the app under callgrind, then for each of `pages` in turn `W`
 * sequential GETs by one signed-in user. Returns instructions per request per page.
 */
async function oneRun({ variant, n, pages, K, W, outFile }) {
  const redis = variant === 'redis' ? await startRedis() : null;
  if (variant === 'redis' && redis === null) throw new Error('redis-server is not installed');
  const child = spawn(
    VALGRIND,
    [
      '--tool=callgrind',
      '--dump-instr=no',
      '--instr-atstart=no',
      `--callgrind-out-file=${outFile}`,
      process.execPath,
      '--single-threaded',
      '--expose-gc',
      path.join(HERE, 'app-server.mjs'),
      variant,
      String(n),
      redis?.url ?? '',
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let stderr = '';
  child.stderr.on('data', (c) => {
    stderr += c;
  });
  const exited = new Promise((resolve) => child.on('exit', resolve));
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  try {
    const port = await appPort(child, exited.then((code) => `${variant} app under callgrind exited with ${code}: ${stderr.slice(-2000)}`));
    const login = await get(agent, port, `/login/${1 + ((n * 7) >> 3)}`);
    const cookie = login.headers['set-cookie'][0].split(';')[0];
    const send = async (page, count) => {
      for (let i = 0; i < count; i++) {
        const res = await get(agent, port, page, cookie);
        if (res.status !== 200) throw new Error(`${variant} ${page}: HTTP ${res.status}`);
      }
    };
    for (const page of pages) await send(page, K);
    await control(child.pid, '-i on', agent, port);
    await control(child.pid, '-z', agent, port);
    const perRequest = {};
    for (const [i, page] of pages.entries()) {
      await send(page, W);
      await control(child.pid, '-d', agent, port);
      perRequest[page] = callgrindTotal(`${outFile}.${i + 1}`) / W;
    }
    // One full collection of this heap, counted alone: what a major GC costs at this N.
    await send('/gc', FULL_GCS);
    await control(child.pid, '-d', agent, port);
    perRequest.fullGc = callgrindTotal(`${outFile}.${pages.length + 1}`) / FULL_GCS;
    child.kill('SIGINT');
    await exited;
    return perRequest;
  } finally {
    agent.destroy();
    child.kill('SIGKILL');
    redis?.stop();
  }
}

/**
 * How often V8 makes a major collection on each page, outside valgrind: the
 * same app with node --single-threaded, R sequential requests a page after K
 * of warm-up, counted by the app's own GC observer. A callgrind window holds
 * too few major GCs to say; this many requests hold several.
 */
async function collectionRate({ variant, n, pages, K, R }) {
  const redis = variant === 'redis' ? await startRedis() : null;
  const child = spawn(process.execPath, ['--single-threaded', path.join(HERE, 'app-server.mjs'), variant, String(n), redis?.url ?? ''], { stdio: ['ignore', 'pipe', 'inherit'] });
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  try {
    const port = await appPort(child, new Promise((resolve) => child.on('exit', (code) => resolve(`${variant} app exited with ${code}`))));
    const cookie = (await get(agent, port, `/login/${1 + ((n * 7) >> 3)}`)).headers['set-cookie'][0].split(';')[0];
    const counts = async () => JSON.parse((await get(agent, port, '/collections')).body);
    const rate = {};
    for (const page of pages) {
      for (let i = 0; i < K; i++) await get(agent, port, page, cookie);
      const before = await counts();
      for (let i = 0; i < R; i++) await get(agent, port, page, cookie);
      const after = await counts();
      rate[page] = { major: (after.major - before.major) / R, minor: (after.minor - before.minor) / R };
    }
    return rate;
  } finally {
    agent.destroy();
    child.kill('SIGKILL');
    redis?.stop();
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
const PAGE_NAMES = { '/': 'Nunjucks page', '/hbs': 'Handlebars page', '/json': 'JSON' };
const storeName = (store) => (store === 'memory' ? 'MemoryStore' : 'RedisStore');

/**
 * cases: [{ store: 'memory' | 'redis', n }]. Each case, and the app without
 * presence ('static': the same locals built once at start-up), is run `repeats`
 * times; every run counts W requests of each page.
 */
export async function instructionsPerRequest({ cases, pages = ['/', '/hbs', '/json'], K = 300, W = 3000, R = 30_000, repeats = 3, parallel = 2, annotateFrom = 100_000 }) {
  const dir = mkdtempSync(path.join(tmpdir(), 'online-now-callgrind-'));
  const started = Date.now();
  // 'static' lists the same 50 names whatever N: one set of runs serves every case.
  const units = [{ variant: 'static', n: 1000 }, ...cases.map(({ store, n }) => ({ variant: store, n }))];
  const counts = new Map(units.map((u) => [`${u.variant} ${u.n}`, []]));
  const fileOf = (u, r) => path.join(dir, `${u.variant}-${u.n}-${r}.out`);
  const jobs = [];
  for (let r = 0; r < repeats; r++) {
    for (const u of units) {
      jobs.push(async () => {
        counts.get(`${u.variant} ${u.n}`).push(await oneRun({ ...u, pages, K, W, outFile: fileOf(u, r) }));
        process.stdout.write('.');
      });
    }
  }
  process.stdout.write(`callgrind: ${jobs.length} runs of the app under valgrind, ${pages.length} pages × ${fmtInt(W)} requests each `);
  await pool(jobs, parallel);
  process.stdout.write(`\nmajor GCs per request, outside valgrind: ${units.length} apps, ${pages.length} pages × ${fmtInt(R)} requests each\n`);
  const rates = new Map();
  await pool(
    units.map((u) => async () => rates.set(`${u.variant} ${u.n}`, await collectionRate({ ...u, pages, K, R }))),
    parallel,
  );

  const perPage = (key, page) => summary(counts.get(key).map((c) => c[page]));
  // A request's instructions with major GC amortized: the rest, plus one full GC's count at this heap times
  // the major GCs a request brings (from R requests outside valgrind).
  const amortized = (key, page) => {
    const split = splits.get(`${key} ${page}`);
    const gc = perPage(key, 'fullGc').median;
    const majors = rates.get(key)[page].major;
    return { fullGc: gc, majorsPerRequest: majors, perRequest: split.rest.median + gc * majors };
  };
  // Each window split into major GC (mark-compact: marking, sweeping, evacuation) and the rest, by function names.
  const splits = new Map();
  for (const u of units) {
    for (const [p, page] of pages.entries()) {
      const parts = Array.from({ length: repeats }, (_, r) => majorGcSplit(`${fileOf(u, r)}.${p + 1}`, W));
      splits.set(`${u.variant} ${u.n} ${page}`, { major: summary(parts.map((x) => x.major)), rest: summary(parts.map((x) => x.rest)) });
    }
  }
  const results = {};
  const rows = [];
  const pointers = [];
  for (const { store, n } of cases) {
    for (const [p, page] of pages.entries()) {
      const presence = perPage(`${store} ${n}`, page);
      const none = perPage('static 1000', page);
      const ratio = presence.median / none.median;
      const pageName = PAGE_NAMES[page] ?? page;
      const split = splits.get(`${store} ${n} ${page}`);
      const noneSplit = splits.get(`static 1000 ${page}`);
      const restRatio = split.rest.median / noneSplit.rest.median;
      const steady = amortized(`${store} ${n}`, page);
      const noneSteady = amortized('static 1000', page);
      const steadyRatio = steady.perRequest / noneSteady.perRequest;
      results[`${store} ${n} ${pageName}`] = { store, n, page, presence, none, ratio, W, split, noneSplit, restRatio, R, steady, noneSteady, steadyRatio };
      if (n >= annotateFrom) {
        // Where the difference goes, from callgrind_annotate of the first run's window of this page.
        const diff = functionDiff({ presence: `${fileOf({ variant: store, n }, 0)}.${p + 1}`, none: `${fileOf(units[0], 0)}.${p + 1}`, W });
        results[`${store} ${n} ${pageName}`].functions = diff;
        pointers.push(() =>
          table(
            `Where presence's instructions go: ${storeName(store)}, ${n.toLocaleString('en-US')} users, ${pageName}, per request (first run; self cost per function, presence − none)`,
            ['function', 'with presence', 'no presence', 'difference'],
            [
              ...Object.entries(diff.byCategory)
                .sort((a, b) => b[1].diff - a[1].diff)
                .map(([cat, v]) => [`**all: ${cat}**`, fmtInt(v.presence), fmtInt(v.none), fmtInt(v.diff)]),
              ...diff.top.map((f) => [`\`${f.name.replace(/^\?\?\?:/, '').replace(/\|/g, '\\|').slice(0, 120)}\``, fmtInt(f.presence), fmtInt(f.none), fmtInt(f.diff)]),
            ],
          ),
        );
      }
      rows.push([
        storeName(store),
        n.toLocaleString('en-US'),
        pageName,
        `${fmtInt(presence.median)} (${fmtInt(presence.min)}–${fmtInt(presence.max)})`,
        `${fmtInt(none.median)} (${fmtInt(none.min)}–${fmtInt(none.max)})`,
        fmtInt(presence.median - none.median),
        `${((ratio - 1) * 100).toFixed(1)}%`,
        `${fmtInt(split.major.median)} (${fmtInt(split.major.min)}–${fmtInt(split.major.max)}) / ${fmtInt(noneSplit.major.median)} (${fmtInt(noneSplit.major.min)}–${fmtInt(noneSplit.major.max)})`,
        `${((restRatio - 1) * 100).toFixed(1)}%`,
        `${(steady.fullGc / 1e6).toFixed(1)} M × ${fmtRate(steady.majorsPerRequest)} / ${(noneSteady.fullGc / 1e6).toFixed(1)} M × ${fmtRate(noneSteady.majorsPerRequest)}`,
        `**${((steadyRatio - 1) * 100).toFixed(1)}%**`,
      ]);
    }
  }
  const text = table(
    `Instructions per whole request (callgrind, node --single-threaded): presence vs none, one signed-in user, sequential keep-alive; windows of ${fmtInt(W)} requests per page after ${K} warm-up requests, ${repeats} runs (median, min–max)`,
    [
      'store',
      'users online',
      'page',
      'with presence',
      'no presence',
      'difference',
      'presence costs',
      'of which major GC: with / without',
      'presence costs, major GC left out',
      `one full GC × major GCs per 10,000 requests (${fmtInt(R)} outside valgrind): with / without`,
      'presence costs, major GC amortized',
    ],
    rows,
  );
  const allText = [text, ...pointers.map((print) => print())].join('\n\n');
  rmSync(dir, { recursive: true, force: true });
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

// Instructions per whole request, counted by valgrind's callgrind: free of
// wall-clock noise. The app (bench/app-server.mjs) runs under callgrind with
// node --single-threaded, so V8's GC and compiler work happen on the counted
// thread; instrumentation is switched on (callgrind_control -i on) only once
// the app has preloaded its users and a session has signed in. A plain Node
// client (not under valgrind) then sends R requests over one keep-alive
// connection, one at a time. The count per request is
//   (total after K+W requests − total after K requests) / W,
// from two separate runs, so start-up and warm-up cancel. Each pair is run
// `repeats` times; median and min–max are reported.
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

/** Total instructions (Ir) from a callgrind output file: its `totals:` (or `summary:`) line. */
export function callgrindTotal(file) {
  const text = readFileSync(file, 'utf8');
  const m = /^totals:\s+(\d+)/m.exec(text) ?? /^summary:\s+(\d+)/m.exec(text);
  if (!m) throw new Error(`no totals line in ${file}`);
  return Number(m[1]);
}

/**
 * One run: the app under callgrind, `requests` sequential GETs of `page` by one
 * signed-in user; returns the instructions counted from instrumentation-on to exit.
 */
async function oneRun({ variant, n, page, requests, outFile }) {
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
    const port = await new Promise((resolve, reject) => {
      let out = '';
      child.stdout.on('data', (c) => {
        out += c;
        const line = out.split('\n').find((l) => l.startsWith('{'));
        if (line) resolve(JSON.parse(line).port);
      });
      exited.then((code) => reject(new Error(`${variant} app under callgrind exited with ${code}: ${stderr.slice(-2000)}`)));
    });
    const login = await get(agent, port, `/login/${1 + ((n * 7) >> 3)}`);
    const cookie = login.headers['set-cookie'][0].split(';')[0];
    // callgrind_control is answered when the app next runs code: idle in epoll,
    // it needs a request to wake it. The same wake-up requests happen in the K and
    // the K+W run, so they cancel.
    const control = new Promise((resolve, reject) => {
      const c = spawn('/usr/bin/callgrind_control', ['-i', 'on', String(child.pid)], { stdio: ['ignore', 'pipe', 'pipe'] });
      let o = '';
      c.stdout.on('data', (d) => {
        o += d;
      });
      c.on('exit', (code) => (code === 0 && o.includes('OK') ? resolve() : reject(new Error(`callgrind_control: ${o}`))));
    });
    let on = false;
    control.then(() => {
      on = true;
    }, () => {});
    for (let i = 0; i < 30 && !on; i++) {
      await sleep(1000);
      if (!on) await get(agent, port, '/login/1');
    }
    await control;
    for (let i = 0; i < requests; i++) {
      const res = await get(agent, port, page, cookie);
      if (res.status !== 200) throw new Error(`${variant} ${page}: HTTP ${res.status}`);
    }
    child.kill('SIGINT');
    const code = await exited;
    if (code !== 0) throw new Error(`${variant} app exited with ${code}`);
    return callgrindTotal(outFile);
  } finally {
    agent.destroy();
    child.kill('SIGKILL');
    redis?.stop();
  }
}

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

/**
 * cases: [{ store: 'memory' | 'redis', n }]; pages: ['/', '/json'].
 * Every (variant, n, page) pair of runs K and K+W is repeated `repeats` times.
 */
export async function instructionsPerRequest({ cases, pages = ['/', '/json'], K = 500, W = 3000, repeats = 3, parallel = 2, keep = null, annotateFrom = 100_000 }) {
  const dir = mkdtempSync(path.join(tmpdir(), 'online-now-callgrind-'));
  const started = Date.now();
  // The measured units: every presence variant, and 'static' (no presence: the same page from locals
  // built once at start-up) once per N, the same for both stores.
  const units = [];
  const seen = new Set();
  for (const { store, n } of cases) {
    for (const variant of [store, 'static']) {
      for (const page of pages) {
        const key = `${variant} ${n} ${page}`;
        if (!seen.has(key)) {
          seen.add(key);
          units.push({ variant, n, page, key });
        }
      }
    }
  }
  const jobs = [];
  const totals = Object.fromEntries(units.map((u) => [u.key, Array.from({ length: repeats }, () => ({}))]));
  for (let r = 0; r < repeats; r++) {
    for (const u of units) {
      for (const requests of [K, K + W]) {
        const outFile = path.join(dir, `${u.variant}-${u.n}-${u.page === '/' ? 'page' : 'json'}-${r}-${requests}.out`);
        jobs.push(async () => {
          totals[u.key][r][requests] = await oneRun({ ...u, requests, outFile });
          process.stdout.write('.');
          return outFile;
        });
      }
    }
  }
  process.stdout.write(`callgrind: ${jobs.length} runs of the app under valgrind `);
  await pool(jobs, parallel);
  process.stdout.write('\n');

  const perRequest = (key) => summary(totals[key].map((t) => (t[K + W] - t[K]) / W));
  const file = (variant, n, page, requests) => path.join(dir, `${variant}-${n}-${page === '/' ? 'page' : 'json'}-0-${requests}.out`);
  const results = {};
  const rows = [];
  const pointers = [];
  for (const { store, n } of cases) {
    for (const page of pages) {
      const presence = perRequest(`${store} ${n} ${page}`);
      const none = perRequest(`static ${n} ${page}`);
      const ratio = presence.median / none.median;
      const pageName = page === '/' ? 'Nunjucks page' : 'JSON';
      results[`${store} ${n} ${pageName}`] = { store, n, page, presence, none, ratio, K, W };
      if (n >= annotateFrom) {
        // Where the difference goes, from callgrind_annotate of the first pair of runs.
        const diff = functionDiff({
          presence: [file(store, n, page, K), file(store, n, page, K + W)],
          none: [file('static', n, page, K), file('static', n, page, K + W)],
          W,
        });
        results[`${store} ${n} ${pageName}`].functions = diff;
        pointers.push(() =>
          table(
            `Where presence's instructions go: ${store === 'memory' ? 'MemoryStore' : 'RedisStore'}, ${n.toLocaleString('en-US')} users, ${pageName}, per request (first pair; self cost per function, presence − none)`,
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
        store === 'memory' ? 'MemoryStore' : 'RedisStore',
        n.toLocaleString('en-US'),
        pageName,
        `${fmtInt(presence.median)} (${fmtInt(presence.min)}–${fmtInt(presence.max)})`,
        `${fmtInt(none.median)} (${fmtInt(none.min)}–${fmtInt(none.max)})`,
        fmtInt(presence.median - none.median),
        `${((ratio - 1) * 100).toFixed(1)}%`,
      ]);
    }
  }
  const text = table(
    `Instructions per request (callgrind, node --single-threaded): presence vs none, one user, sequential keep-alive; (K+${fmtInt(W)} − K=${K}) / ${fmtInt(W)}, ${repeats} pairs (median, min–max)`,
    ['store', 'users online', 'page', 'with presence', 'no presence', 'difference', 'presence costs'],
    rows,
  );
  const allText = [text, ...pointers.map((print) => print())].join('\n\n');
  if (keep) {
    for (const f of execFileSync('ls', [dir], { encoding: 'utf8' }).split('\n').filter(Boolean)) {
      execFileSync('cp', [path.join(dir, f), keep]);
    }
  }
  rmSync(dir, { recursive: true, force: true });
  return { results, text: allText, seconds: Math.round((Date.now() - started) / 1000) };
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
 * ((presence K+W − presence K) − (none K+W − none K)) / W, per function.
 */
export function functionDiff({ presence: [pK, pKW], none: [nK, nKW], W, top = 12 }) {
  const [a, b, c, d] = [pK, pKW, nK, nKW].map(functions);
  const names = new Set([...a.keys(), ...b.keys(), ...c.keys(), ...d.keys()]);
  const rows = [];
  for (const name of names) {
    const p = ((b.get(name) ?? 0) - (a.get(name) ?? 0)) / W;
    const q = ((d.get(name) ?? 0) - (c.get(name) ?? 0)) / W;
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

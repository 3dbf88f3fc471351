// Section 2: whole requests. Each implementation runs in an app process of its
// own; wrk (a separate process) loads them in turn, alternating, over loopback.
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { cpuMicros, prng, summary, table } from './lib.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const WRK = '/usr/bin/wrk';

function startApp(variant, n, redisUrl) {
  const child = spawn(process.execPath, [path.join(HERE, 'app-server.mjs'), variant, String(n), redisUrl ?? ''], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  return new Promise((resolve, reject) => {
    let out = '';
    child.stdout.on('data', (c) => {
      out += c;
      const line = out.split('\n').find((l) => l.startsWith('{'));
      if (line) resolve({ child, port: JSON.parse(line).port, variant });
    });
    child.on('exit', (code) => reject(new Error(`${variant} app exited with ${code}`)));
  });
}

/** Signs in `sessions` users (ids drawn with a fixed seed) and returns their cookies. */
async function login(port, n, sessions) {
  const random = prng(99);
  const cookies = [];
  for (let i = 0; i < sessions; i++) {
    const id = 1 + Math.floor(random() * n);
    const res = await fetch(`http://127.0.0.1:${port}/login/${id}`);
    cookies.push(res.headers.getSetCookie()[0].split(';')[0]);
  }
  return cookies;
}

function wrkScript(dir, name, cookies) {
  const file = path.join(dir, `${name}.lua`);
  writeFileSync(
    file,
    `local cookies = {${cookies.map((c) => JSON.stringify(c)).join(',')}}
local i = 0
request = function()
  i = i % #cookies + 1
  return wrk.format("GET", "/", { Cookie = cookies[i] })
end
`,
  );
  return file;
}

function runWrk(app, script, seconds, connections) {
  const cpuBefore = cpuMicros(app.child.pid);
  const out = execFileSync(WRK, ['-t1', `-c${connections}`, `-d${seconds}s`, '--latency', '-s', script, `http://127.0.0.1:${app.port}/`], {
    encoding: 'utf8',
  });
  const cpuUs = cpuMicros(app.child.pid) - cpuBefore;
  const requests = Number(/(\d+) requests in/.exec(out)[1]);
  const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(out)[1]);
  const p99 = /\s99%\s+([\d.]+)(us|ms|s)\b/.exec(out);
  const scale = { us: 0.001, ms: 1, s: 1000 }[p99[2]];
  const non2xx = /Non-2xx or 3xx responses: (\d+)/.exec(out);
  return { rps, p99ms: Number(p99[1]) * scale, errors: non2xx ? Number(non2xx[1]) : 0, cpuUsPerRequest: cpuUs / requests };
}

/**
 * Waits until the app has worked off what wrk left in flight (a slow baseline
 * can leave seconds of Redis work queued), so the next variant runs on a quiet machine.
 */
async function drain(port, script) {
  const cookie = /"([^"]+)"/.exec(readFileSync(script, 'utf8'))[1];
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      await fetch(`http://127.0.0.1:${port}/`, { headers: { cookie } }).then((r) => r.arrayBuffer());
      break;
    } catch {
      // A kept-alive socket the app closed meanwhile: ask again on a new one.
    }
  }
  await new Promise((r) => setTimeout(r, 200));
}

export function haveWrk() {
  return existsSync(WRK);
}

/**
 * For each N: start every variant's app, then `rounds` alternating rounds of
 * `seconds` each, so drift on the machine hits every variant alike.
 */
export async function wholeRequests({ sizes, variants, redisUrl, rounds = 5, seconds = 2, connections = 16 }) {
  const dir = mkdtempSync(path.join(tmpdir(), 'online-now-bench-'));
  const results = {};
  const rows = [];
  for (const n of sizes) {
    const apps = [];
    for (const variant of variants) apps.push(await startApp(variant, n, redisUrl));
    try {
      const scripts = {};
      for (const app of apps) scripts[app.variant] = wrkScript(dir, `${app.variant}-${n}`, await login(app.port, n, 500));
      for (const app of apps) runWrk(app, scripts[app.variant], 1, connections); // warm-up
      const runs = Object.fromEntries(variants.map((v) => [v, []]));
      for (let r = 0; r < rounds; r++) {
        // Each round starts one variant further on, so no variant always follows the same neighbour.
        for (const app of [...apps.slice(r % apps.length), ...apps.slice(0, r % apps.length)]) {
          runs[app.variant].push(runWrk(app, scripts[app.variant], seconds, connections));
          await drain(app.port, scripts[app.variant]);
        }
      }
      results[n] = {};
      const base = summary(runs.none.map((x) => x.rps)).median;
      const baseCpu = summary(runs.none.map((x) => x.cpuUsPerRequest)).median;
      for (const variant of variants) {
        const rps = summary(runs[variant].map((x) => x.rps));
        const cpu = summary(runs[variant].map((x) => x.cpuUsPerRequest));
        const p99 = summary(runs[variant].map((x) => x.p99ms));
        const errors = runs[variant].reduce((s, x) => s + x.errors, 0);
        results[n][variant] = { rps, p99ms: p99, errors, ratioToNone: rps.median / base, cpuUsPerRequest: cpu, cpuRatioToNone: cpu.median / baseCpu };
        rows.push([
          n.toLocaleString('en-US'),
          variant,
          `${Math.round(rps.median).toLocaleString('en-US')} (${Math.round(rps.min).toLocaleString('en-US')}–${Math.round(rps.max).toLocaleString('en-US')})`,
          `${p99.median.toFixed(2)} (${p99.min.toFixed(2)}–${p99.max.toFixed(2)})`,
          `${((rps.median / base) * 100).toFixed(1)}%`,
          `${cpu.median.toFixed(0)} (${cpu.min.toFixed(0)}–${cpu.max.toFixed(0)})`,
          `${((cpu.median / baseCpu - 1) * 100).toFixed(1)}%`,
          String(errors),
        ]);
      }
    } finally {
      for (const app of apps) app.child.kill();
    }
  }
  const text = table(
    `Whole requests: Express 5 + express-session + a Nunjucks page, wrk -t1 -c${connections}, ${rounds} alternating rounds of ${seconds} s (median, min–max)`,
    ['users online', 'presence', 'requests/s', 'p99 latency, ms', 'vs. no presence', 'app CPU µs / request', 'CPU vs. no presence', 'non-2xx'],
    rows,
  );
  return { results, text };
}

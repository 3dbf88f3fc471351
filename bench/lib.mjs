// Measuring helpers shared by the benchmark sections.
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import os from 'node:os';

/** mulberry32: a fixed-seed PRNG, so every run draws the same user ids. */
export function prng(seed = 42) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function median(values) {
  const sorted = [...values].sort((x, y) => x - y);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

/** median, min and max of several runs. */
export function summary(values) {
  return { median: median(values), min: Math.min(...values), max: Math.max(...values), runs: values.length };
}

/**
 * ns per call of `fn(i)`: a warm-up, then `runs` timed runs of `ops` calls each.
 * `ops` is chosen so a run lasts about `targetMs`.
 */
export function nsPerOp(fn, { runs = 5, targetMs = 150, maxOps = 2_000_000 } = {}) {
  let ops = 1000;
  for (;;) {
    const t = process.hrtime.bigint();
    for (let i = 0; i < ops; i++) fn(i);
    const ms = Number(process.hrtime.bigint() - t) / 1e6;
    if (ms > targetMs / 4 || ops >= maxOps) {
      ops = Math.min(maxOps, Math.max(100, Math.round((ops * targetMs) / Math.max(ms, 0.001))));
      break;
    }
    ops *= 4;
  }
  const results = [];
  for (let r = 0; r < runs; r++) {
    const t = process.hrtime.bigint();
    for (let i = 0; i < ops; i++) fn(i);
    results.push(Number(process.hrtime.bigint() - t) / ops);
  }
  return summary(results);
}

/** µs per call of an async `fn(i)`, run sequentially, about `targetMs` per run; `calls` counts every call made. */
export async function usPerAsyncOp(fn, { runs = 5, targetMs = 300, maxOps = 100_000 } = {}) {
  const warmup = 3;
  for (let i = 0; i < warmup; i++) await fn(i);
  const results = [];
  let total = warmup;
  for (let r = 0; r < runs; r++) {
    const start = process.hrtime.bigint();
    let ops = 0;
    while (ops < maxOps && Number(process.hrtime.bigint() - start) / 1e6 < targetMs) await fn(ops++);
    results.push(Number(process.hrtime.bigint() - start) / 1e3 / ops);
    total += ops;
  }
  return { ...summary(results), calls: total };
}

/** CPU time (user + system) a process has used so far, in µs, from /proc/PID/stat (clock ticks of 10 ms). */
export function cpuMicros(pid) {
  // The command name, field 2, may hold spaces: count fields after its closing parenthesis.
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(fields[11]) + Number(fields[12])) * 1e4;
}

export function freePort() {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.listen(0, '127.0.0.1', () => {
      const { port } = probe.address();
      probe.close(() => resolve(port));
    });
    probe.on('error', reject);
  });
}

/** A redis-server of our own on a free loopback port, no persistence; null when none is installed. */
export async function startRedis() {
  const port = await freePort();
  const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], {
    stdio: ['ignore', 'pipe', 'ignore'],
  });
  const started = await new Promise((resolve) => {
    let out = '';
    child.on('error', () => resolve(false));
    child.stdout.on('data', (c) => {
      out += c;
      if (out.includes('Ready to accept connections')) resolve(true);
    });
    setTimeout(() => resolve(false), 10_000).unref();
  });
  if (!started) {
    child.kill();
    return null;
  }
  return { port, url: `redis://127.0.0.1:${port}`, stop: () => child.kill('SIGKILL') };
}

export function machine() {
  const cpus = os.cpus();
  return {
    cpu: cpus[0]?.model ?? 'unknown',
    cores: cpus.length,
    memoryGiB: Math.round(os.totalmem() / 2 ** 30),
    node: process.version,
    platform: `${os.type()} ${os.release()}`,
  };
}

const fmt = (n, digits) => (n >= 100 ? Math.round(n).toLocaleString('en-US') : n.toFixed(digits));
/** "1.23 (1.20–1.31)" */
export function range(s, digits = 2) {
  return `${fmt(s.median, digits)} (${fmt(s.min, digits)}–${fmt(s.max, digits)})`;
}

/** Prints a Markdown table and returns its text. */
export function table(title, header, rows) {
  const lines = [`### ${title}`, '', `| ${header.join(' | ')} |`, `|${header.map(() => '---').join('|')}|`];
  for (const row of rows) lines.push(`| ${row.join(' | ')} |`);
  const text = lines.join('\n');
  console.log(`\n${text}\n`);
  return text;
}

/** One INFO section of a node-redis client's server, as { field: value }. */
export async function redisInfo(client, section) {
  const info = String(await client.sendCommand(['INFO', section]));
  return Object.fromEntries(
    info
      .split('\r\n')
      .filter((l) => l.includes(':'))
      .map((l) => l.split(/:(.*)/s).slice(0, 2)),
  );
}

/**
 * Commands since the server started (or the last RESETSTAT), INFO and CONFIG
 * left out: `roundTrips`, what clients sent (a script call counts once; our
 * stores send nothing but scripts), `scripts`, the EVAL/EVALSHA calls, and
 * `executed`, every command Redis ran, those inside scripts too, and `calls`, by command.
 */
export async function commandCount(client) {
  const stats = await redisInfo(client, 'commandstats');
  let executed = 0;
  let scripts = 0;
  let scriptUs = 0;
  const calls = {};
  for (const [name, value] of Object.entries(stats)) {
    if (/^cmdstat_(info|config)/.test(name)) continue;
    const n = Number(/calls=(\d+)/.exec(value)[1]);
    calls[name.slice('cmdstat_'.length)] = n;
    executed += n;
    if (/^cmdstat_eval/.test(name)) {
      scripts += n;
      scriptUs += Number(/usec=(\d+)/.exec(value)[1]);
    }
  }
  return { roundTrips: scripts > 0 ? scripts : executed, scripts, scriptUs, executed, calls };
}

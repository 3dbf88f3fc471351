// The RedisStore read model at scale: every process holds every online user.
// One process writes N users (short usernames) into one Redis; then new
// processes start one after another and each reports how long it took to hold
// all N, and its heap and RSS once it does. Then every process touches its
// share of 10,000 users a second for a few seconds: CPU per process and of
// Redis, Redis time per sync, and how long a change takes to reach every process.
// Run as `node --expose-gc bench/read-model.mjs [N] [PROCESSES]`, or from run.mjs.
import { fork } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { startRedis, summary, table } from './lib.mjs';

const THRESHOLD_S = 900;
const PREFIX = 'bench-read-model';

/** CPU time (user + system) of a process so far, ms, from /proc/PID/stat (10 ms ticks). */
function cpuMs(pid) {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(fields[11]) + Number(fields[12])) * 10;
}

function memory() {
  globalThis.gc?.();
  globalThis.gc?.();
  const m = process.memoryUsage();
  return { heapMB: m.heapUsed / 2 ** 20, externalMB: (m.external + m.arrayBuffers) / 2 ** 20, rssMB: m.rss / 2 ** 20 };
}

/** One app process: `role` writer fills Redis first; a reader only reads. Both then follow commands from the parent. */
async function worker() {
  const [, , , role, nArg, url, indexArg] = process.argv;
  const n = Number(nArg);
  const { createClient } = await import('redis');
  const { RedisStore, createOnlineTracker } = await import('express-online-now');
  const client = await createClient({ url }).connect();
  // The process before it holds anyone: Node, the app's modules and a Redis client.
  const bareRssMB = memory().rssMB;
  const started = performance.now();
  const store = new RedisStore({ client, prefix: PREFIX, maxTracked: n + 1000 });
  createOnlineTracker({ store, threshold: THRESHOLD_S });
  const count = async () => (await store.view('users', 0)).count;
  if (role === 'writer') {
    for (let id = 1; id <= n; id++) store.touch('users', String(id), id, { username: `user${id}` });
    while ((await client.sendCommand(['ZCARD', `{${PREFIX}}:users:seen`])) < n) await new Promise((r) => setTimeout(r, 50));
  } else {
    while ((await count()) < n) await new Promise((r) => setTimeout(r, 5));
  }
  const completeMs = performance.now() - started;
  process.send({ ready: true, completeMs, bareRssMB, ...memory() });
  let touching;
  process.on('message', (m) => {
    if (m.touch !== undefined) {
      // m.touch per second, spread over 100 ticks a second, ids drawn so every process touches its own.
      const perTick = m.touch / 100;
      let next = Number(indexArg);
      touching = setInterval(() => {
        for (let i = 0; i < perTick; i++) {
          next = (next + m.processes) % n;
          store.touch('users', String(next + 1), next + 1, { username: `user${next + 1}` });
        }
      }, 10);
    } else if (m.stop) {
      clearInterval(touching);
      process.send({ stopped: true, ...memory() });
    } else if (m.watch !== undefined) {
      // Reports when the user `m.watch` shows as seen at or after m.since (Redis time, ms).
      const check = setInterval(() => {
        if ((store.view('users', 0).lastSeen(String(m.watch)) ?? 0) >= m.since) {
          clearInterval(check);
          process.send({ seen: m.watch, at: Date.now() });
        }
      }, 1);
    } else if (m.mark !== undefined) {
      store.touch('users', String(m.mark), m.mark, { username: `user${m.mark}` });
      process.send({ marked: m.mark, at: Date.now(), redisMs: store.view('users', 0).lastSeen(String(m.mark)) });
    } else if (m.exit) {
      process.exit(0);
    }
  });
}

function nextMessage(child, test) {
  return new Promise((resolve) => {
    const on = (m) => {
      if (test(m)) {
        child.off('message', on);
        resolve(m);
      }
    };
    child.on('message', on);
  });
}

async function redisInfo(port, section) {
  const { createClient } = await import('redis');
  const c = await createClient({ url: `redis://127.0.0.1:${port}` }).connect();
  const info = String(await c.sendCommand(['INFO', section]));
  await c.quit();
  return Object.fromEntries(
    info
      .split('\r\n')
      .filter((l) => l.includes(':'))
      .map((l) => l.split(/:(.*)/s).slice(0, 2)),
  );
}

/** N users online, `processes` app processes (one writer, the rest readers started one by one). */
export async function readModelScale({ n = 1_000_000, processes = 8, touchesPerSecond = 10_000, seconds = 5 } = {}) {
  const redis = await startRedis();
  if (redis === null) return null;
  const self = fileURLToPath(import.meta.url);
  const children = [];
  const spawnApp = (role, i) => {
    const child = fork(self, ['worker', role, String(n), redis.url, String(i)], { execArgv: ['--expose-gc'], stdio: ['ignore', 'ignore', 'inherit', 'ipc'] });
    children.push(child);
    return nextMessage(child, (m) => m.ready).then((m) => ({ child, ...m }));
  };
  try {
    const writer = await spawnApp('writer', 0);
    const redisMemory = Number((await redisInfo(redis.port, 'memory')).used_memory) / 2 ** 20;
    const apps = [writer];
    for (let i = 1; i < processes; i++) apps.push(await spawnApp('reader', i));
    const readers = apps.slice(1);

    // Steady state: every process touches its share; CPU of each process and of Redis over `seconds`.
    const redisPid = Number((await redisInfo(redis.port, 'server')).process_id);
    await redisInfo(redis.port, 'server'); // (a command outside the window)
    const statsBefore = await redisInfo(redis.port, 'commandstats');
    const cpuBefore = apps.map((a) => cpuMs(a.child.pid));
    const redisCpuBefore = cpuMs(redisPid);
    for (const a of apps) a.child.send({ touch: touchesPerSecond / processes, processes });
    await new Promise((r) => setTimeout(r, seconds * 1000));
    const cpu = apps.map((a, i) => (cpuMs(a.child.pid) - cpuBefore[i]) / (seconds * 10));
    const redisCpu = (cpuMs(redisPid) - redisCpuBefore) / (seconds * 10);
    const statsAfter = await redisInfo(redis.port, 'commandstats');
    const stopped = await Promise.all(apps.map((a) => (a.child.send({ stop: true }), nextMessage(a.child, (m) => m.stopped))));
    const evalStats = (stats) => {
      const line = stats.cmdstat_evalsha ?? '';
      return { calls: Number(/calls=(\d+)/.exec(line)?.[1] ?? 0), usec: Number(/usec=(\d+)/.exec(line)?.[1] ?? 0) };
    };
    const [e0, e1] = [evalStats(statsBefore), evalStats(statsAfter)];
    const usPerSync = (e1.usec - e0.usec) / Math.max(1, e1.calls - e0.calls);

    // How long one process's touch takes to reach every other process: 10 marks, each from another process.
    const reach = [];
    for (let k = 0; k < 10; k++) {
      const from = apps[k % apps.length];
      const id = n - k;
      const marked = (from.child.send({ mark: id }), await nextMessage(from.child, (m) => m.marked === id));
      const others = apps.filter((a) => a !== from);
      const seen = await Promise.all(others.map((a) => (a.child.send({ watch: id, since: marked.redisMs }), nextMessage(a.child, (m) => m.seen === id))));
      reach.push(Math.max(...seen.map((s) => s.at)) - marked.at);
    }

    const results = {
      n,
      processes,
      redisMB: redisMemory,
      redisBytesPerUser: (redisMemory * 2 ** 20) / n,
      newProcessMs: summary(readers.map((r) => r.completeMs)),
      writerFillMs: writer.completeMs,
      reader: { heapMB: summary(readers.map((r) => r.heapMB)), rssMB: summary(readers.map((r) => r.rssMB)), externalMB: summary(readers.map((r) => r.externalMB)) },
      writer: { heapMB: writer.heapMB, rssMB: writer.rssMB, externalMB: writer.externalMB },
      afterTouching: { heapMB: summary(stopped.map((s) => s.heapMB)), rssMB: summary(stopped.map((s) => s.rssMB)) },
      bareRssMB: summary(apps.map((a) => a.bareRssMB)),
      // What holding everyone adds to a process: its RSS after the touching, less its RSS before it held anyone.
      presenceRssMB: summary(stopped.map((s, i) => s.rssMB - apps[i].bareRssMB)),
      touchesPerSecond,
      cpuPercentPerProcess: summary(cpu),
      redisCpuPercent: redisCpu,
      redisUsPerSync: usPerSync,
      reachMs: summary(reach),
    };
    const mb = (s) => `${s.median.toFixed(0)} (${s.min.toFixed(0)}–${s.max.toFixed(0)})`;
    const text = table(
      `RedisStore read model: ${n.toLocaleString('en-US')} users online (short usernames), ${processes} processes on one Redis, ${touchesPerSecond.toLocaleString('en-US')} touches/s spread over them for ${seconds} s`,
      ['measure', 'value'],
      [
        ['Redis memory', `${redisMemory.toFixed(0)} MB (${results.redisBytesPerUser.toFixed(0)} B a user)`],
        ['a new process holds every user after, ms', mb(results.newProcessMs)],
        ['a reader then: heap / RSS, MB', `${mb(results.reader.heapMB)} / ${mb(results.reader.rssMB)}`],
        ['the writer (wrote all N): heap / RSS, MB', `${writer.heapMB.toFixed(0)} / ${writer.rssMB.toFixed(0)}`],
        ['every process after touching: heap / RSS, MB', `${mb(results.afterTouching.heapMB)} / ${mb(results.afterTouching.rssMB)}`],
        ['a process before it holds anyone (Node, modules, Redis client): RSS, MB', mb(results.bareRssMB)],
        ['RSS that presence adds to a process (after touching − before), MB', mb(results.presenceRssMB)],
        ['CPU per app process, % of a core', mb(results.cpuPercentPerProcess)],
        ['Redis CPU, % of a core', redisCpu.toFixed(0)],
        ['Redis time per sync (script), µs', usPerSync.toFixed(0)],
        [`a touch reaches every other process after, ms (${reach.length} touches)`, mb(results.reachMs)],
      ],
    );
    return { results, text };
  } finally {
    for (const c of children) c.kill('SIGKILL');
    redis.stop();
  }
}

if (process.argv[2] === 'worker') {
  await worker();
} else if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const [n, processes] = process.argv.slice(2).map(Number);
  await readModelScale({ n: n || 1_000_000, processes: processes || 8 });
  process.exit(0);
}

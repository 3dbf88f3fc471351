// Live pages: what rooms and Server-Sent Events cost.
// 1. SSE fan-out: one server process (events({ interval: 50 }), memory store)
//    with 1,000 and 10,000 real loopback connections, opened by a second Node
//    process that counts what each connection receives. The server drives
//    changes at a fixed rate; its own CPU time (process.cpuUsage) is divided by
//    the messages the clients counted. RSS and heap per connection.
// 2. A room's page: here(req, room) + a Nunjucks page rendering onlineHereHtml(),
//    in rooms of 10 and 1,000 members, on MemoryStore and RedisStore.
// 3. Redis commands per heartbeat: tabs beating through POST /online-now/beat
//    (real HTTP, real express-session cookies), INFO commandstats before/after.
// 4. A stream flood: one client (one address, no session) asks for 10,000 streams
//    while two signed-in users' streams get the count changes; the server's CPU and memory.
// 5. Delays: from a change (join, lock, leave, count) made through one tracker to
//    its event on a stream another serves: one process, and two RedisStores.
// 6. Guarded writes (requireLock) on a RedisStore: their latency beside an
//    unguarded write, Redis round trips per write (alone and 50 at once), and
//    the round trips of the room's pages meanwhile (none of their own).
// Run as `node --expose-gc bench/live.mjs` (QUICK=1 for smaller sizes), or from run.mjs.
import { fork } from 'node:child_process';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { fileURLToPath } from 'node:url';
import { commandCount, range, startRedis, summary, table } from './lib.mjs';

const SELF = fileURLToPath(import.meta.url);
const EVENTS_PATH = '/online-now/events';
/** The look interval measured: 20 looks a second, so at most 20 changes a second reach a client per channel. */
const INTERVAL_MS = 50;
const EVERYONE = Object.freeze({ seesHidden: false });
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const fmtInt = (n) => Math.round(n).toLocaleString('en-US');

/** A tab id the routes accept (16–64 of [A-Za-z0-9_-]). */
const tabId = (n) => `tab${String(n).padStart(13, '0')}`;
const roomOf = (id, rooms) => `room-${id % rooms}`;
const profileOf = (id) => ({ username: `user${id}` });

// ---------------------------------------------------------------------------
// Child processes and their messages: a request carries `ask`, its answer `reply`.

function forkRole(role) {
  return fork(SELF, [role], { execArgv: ['--expose-gc'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
}

let asked = 0;
function ask(child, message) {
  const id = ++asked;
  return new Promise((resolve, reject) => {
    // A child that dies (out of file descriptors, a crash) fails the section instead of hanging it.
    const died = (code) => reject(new Error(`bench/live.mjs ${child.spawnargs.at(-1)} exited (${code}) during ${message.cmd}`));
    const on = (m) => {
      if (m.reply !== id) return;
      child.off('message', on);
      child.off('exit', died);
      if (m.error !== undefined) reject(new Error(m.error));
      else resolve(m);
    };
    child.on('message', on);
    child.once('exit', died);
    child.send({ ...message, ask: id });
  });
}

/** Runs `handlers[m.cmd](m)` for each request from the parent and sends its result back. */
function serve(handlers) {
  // A parent that dies (Ctrl-C, a crash) takes its children along: no server is left listening.
  process.on('disconnect', () => process.exit(0));
  process.on('message', (m) => {
    Promise.resolve()
      .then(() => handlers[m.cmd](m))
      .then(
        (result) => process.send({ ...result, reply: m.ask }),
        (error) => process.send({ error: String(error?.stack ?? error), reply: m.ask }),
      );
  });
}

function memory() {
  globalThis.gc?.();
  globalThis.gc?.();
  const m = process.memoryUsage();
  return { rss: m.rss, heap: m.heapUsed, external: m.external + m.arrayBuffers };
}

// ---------------------------------------------------------------------------
// 1. SSE fan-out: the server process.

async function sseServer() {
  const { default: express } = await import('express');
  const { createOnlineTracker } = await import('express-online-now');
  const online = createOnlineTracker({
    // The clients are Node sockets: the user comes from a header (a browser's would come from its session cookie).
    // Who connects is resolved once per connection, so this choice does not touch the per-event cost.
    getUser: (req) => {
      const id = Number(req.headers['x-bench-user']);
      return id > 0 ? { id, username: `user${id}` } : undefined;
    },
    // Members are placed once and must stay for the whole run without heartbeats: section 3 measures heartbeats.
    roomThreshold: 3600,
    maxRoomMembers: 1100,
  });
  const events = online.events({ interval: INTERVAL_MS });
  const app = express();
  app.get(EVENTS_PATH, events);
  const server = await new Promise((resolve) => {
    const s = app.listen(0, '127.0.0.1', () => resolve(s));
  });
  const store = online.store;

  /** Members: one tab each, placed straight into the store (as their page's here() would). */
  function members({ rooms, from, to }) {
    for (let id = from; id <= to; id++) {
      store.roomTouch({ room: roomOf(id, rooms), tab: tabId(id), key: String(id), id, profile: profileOf(id), mode: 'viewing', takeover: false }, EVERYONE);
    }
    return {};
  }

  let visitor = 0;
  /** One change everyone subscribed to sees: a new user online (count), or a visitor joining or leaving a room. */
  function change(kind, rooms, k) {
    if (kind === 'count') {
      visitor++;
      void online.touch({ id: 1_000_000 + visitor, username: `visitor${visitor}` });
      return;
    }
    // Even changes: visitor k/2 opens the page of room (k/2 % rooms); odd: the same tab leaves.
    const v = k >> 1;
    const id = 2_000_000 + v;
    const room = roomOf(v, rooms);
    if (k % 2 === 0) store.roomTouch({ room, tab: tabId(id), key: String(id), id, profile: profileOf(id), mode: 'viewing', takeover: false }, EVERYONE);
    else store.roomLeave(room, String(id), tabId(id));
  }

  /** `rate` changes a second for `seconds`; this process's CPU time over it, the last change's look included. */
  async function drive({ kind, rate, seconds, rooms }) {
    const cpu0 = process.cpuUsage();
    const elu0 = performance.eventLoopUtilization();
    const t0 = performance.now();
    let changes = 0;
    const timer = rate > 0 ? setInterval(() => change(kind, rooms, changes++), 1000 / rate) : undefined;
    await sleep(seconds * 1000);
    clearInterval(timer);
    await sleep(4 * INTERVAL_MS); // the last change's look and writes
    const cpu = process.cpuUsage(cpu0);
    const elu = performance.eventLoopUtilization(elu0);
    return { cpuUs: cpu.user + cpu.system, wallMs: performance.now() - t0, changes, elu: elu.utilization };
  }

  serve({
    members,
    drive,
    memory: () => ({ ...memory(), size: events.connections }),
    cpu: () => {
      const { user, system } = process.cpuUsage();
      return { us: user + system };
    },
  });
  // Startup garbage is let go first: V8 returns freed pages to the system over a second or two, which would show as negative RSS per connection.
  memory();
  await sleep(2000);
  process.send({ ready: true, port: server.address().port });
}

// ---------------------------------------------------------------------------
// 1. SSE fan-out: the clients' process. Raw sockets speaking HTTP/1.1, as light
// as can be, so this process keeps up with the server and never lets its
// buffers fill (a connection 64 KB behind is dropped by the server).

const MARK = Buffer.from('\nevent: ');

async function sseClients() {
  let sockets = [];
  let counts = new Map();
  let bytes = 0;
  let closedByServer = 0;

  /** Counts `event:` lines; a marker cut by a chunk boundary is completed by the next chunk. */
  function reader(conn) {
    let carry = Buffer.alloc(0);
    return (chunk) => {
      bytes += chunk.length;
      const buf = carry.length > 0 ? Buffer.concat([carry, chunk]) : chunk;
      let pos = 0;
      for (;;) {
        const at = buf.indexOf(MARK, pos);
        if (at === -1) {
          carry = buf.subarray(Math.max(pos, buf.length - MARK.length + 1));
          return;
        }
        const end = buf.indexOf(10, at + MARK.length);
        if (end === -1) {
          carry = buf.subarray(at);
          return;
        }
        const type = buf.toString('latin1', at + MARK.length, end);
        counts.set(type, (counts.get(type) ?? 0) + 1);
        conn.received++;
        pos = end;
      }
    };
  }

  /** `ids`: how many users' badges the connection watches (users 1..ids), as a page of that many rows does. */
  function connect(port, id, rooms, ids = 0) {
    let query = rooms > 0 ? `?rooms=${encodeURIComponent(roomOf(id, rooms))}` : '';
    if (ids > 0) query = `?ids=${encodeURIComponent(Array.from({ length: ids }, (_, i) => i + 1).join('\n'))}`;
    return new Promise((resolve) => {
      const conn = { id, received: 0, socket: net.connect(port, '127.0.0.1'), status: 0, closing: false };
      const read = reader(conn);
      let head = '';
      conn.socket.on('data', (chunk) => {
        if (conn.status === 0) {
          head += chunk.toString('latin1');
          if (!head.includes('\r\n\r\n')) return;
          conn.status = Number(head.slice(9, 12));
          resolve(conn);
        }
        read(chunk);
      });
      conn.socket.on('error', () => undefined);
      conn.socket.on('close', () => {
        if (!conn.closing) closedByServer++;
        resolve(conn);
      });
      conn.socket.write(`GET ${EVENTS_PATH}${query} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nAccept: text/event-stream\r\nx-bench-user: ${id}\r\n\r\n`);
    });
  }

  function reset() {
    counts = new Map();
    bytes = 0;
    closedByServer = 0;
    for (const c of sockets) c.received = 0;
    return {};
  }

  serve({
    /** One address, no user, asking for n streams, 250 at a time; what it holds stays open. */
    flood: async ({ port, n }) => {
      const statuses = {};
      for (let first = 0; first < n; first += 250) {
        const batch = await Promise.all(Array.from({ length: Math.min(250, n - first) }, () => connect(port, 0, 0)));
        for (const c of batch) statuses[c.status] = (statuses[c.status] ?? 0) + 1;
        sockets.push(...batch);
      }
      return { statuses };
    },
    /** Opens n connections as users 1..n, 250 at a time (well within the listen backlog). */
    open: async ({ port, n, rooms, ids }) => {
      reset();
      for (let first = 1; first <= n; first += 250) {
        const batch = [];
        for (let id = first; id < Math.min(first + 250, n + 1); id++) batch.push(connect(port, id, rooms, ids));
        sockets.push(...(await Promise.all(batch)));
      }
      const ok = sockets.filter((c) => c.status === 200).length;
      return { ok, failed: sockets.length - ok };
    },
    reset,
    report: () => {
      const received = sockets.map((c) => c.received);
      return {
        byType: Object.fromEntries(counts),
        total: received.reduce((a, b) => a + b, 0),
        bytes,
        closedByServer,
        perClient: { min: Math.min(...received), max: Math.max(...received) },
        // The first connections opened (the flood's signed-in users): what each received.
        first: received.slice(0, 2),
      };
    },
    close: async () => {
      await Promise.all(
        sockets.map(
          (c) =>
            new Promise((resolve) => {
              c.closing = true;
              if (c.socket.destroyed) return resolve();
              c.socket.once('close', resolve);
              c.socket.destroy();
            }),
        ),
      );
      sockets = [];
      return {};
    },
  });
  process.send({ ready: true });
}

// ---------------------------------------------------------------------------
// 1. SSE fan-out: the parent's side.

async function waitForSize(server, size) {
  for (let i = 0; i < 600; i++) {
    const m = await ask(server, { cmd: 'memory' });
    if (m.size === size) return m;
    await sleep(50);
  }
  throw new Error(`the server never held ${size} connections`);
}

/** The clients' counts once they stop growing: a large burst can still be in their sockets when the server is done. */
async function settledReport(clients) {
  let last = await ask(clients, { cmd: 'report' });
  for (;;) {
    await sleep(300);
    const now = await ask(clients, { cmd: 'report' });
    if (now.total === last.total) return now;
    last = now;
  }
}

/**
 * One case, on a server process of its own (so its memory starts clean): `n`
 * connections subscribed to the count, or each to its room of `rooms`; `rate`
 * changes a second for `seconds`. A count change is one message to every
 * connection; a room change two (join or leave, then the room's state) to each
 * member of that room.
 */
async function fanOutCase(clients, { name, n, rooms, kind, rate, seconds, ids = 0 }) {
  const server = forkRole('sse-server');
  try {
    const { port } = await new Promise((resolve) => server.once('message', resolve));
    if (rooms > 0) await ask(server, { cmd: 'members', rooms, from: 1, to: n });
    const before = await ask(server, { cmd: 'memory' });
    // What a reconnect storm costs (every browser back at once after a restart): CPU to accept them all and send each its first state.
    const cpu0 = await ask(server, { cmd: 'cpu' });
    const t0 = performance.now();
    const opened = await ask(clients, { cmd: 'open', port, n, rooms, ids });
    const openMs = performance.now() - t0;
    await sleep(1000); // every fresh connection's first state sent (or the connection dropped for it)
    const cpu1 = await ask(server, { cmd: 'cpu' });
    const after = await ask(server, { cmd: 'memory' });
    const start = await settledReport(clients);

    // Idle: no change, only the looks (every 50 ms) over the connections.
    const idle = await ask(server, { cmd: 'drive', kind, rate: 0, seconds: Math.min(seconds, 2), rooms });
    await ask(clients, { cmd: 'reset' });
    const run = await ask(server, { cmd: 'drive', kind, rate, seconds, rooms });
    const got = await settledReport(clients);
    await ask(clients, { cmd: 'close' });
    await waitForSize(server, 0);

    const perChange = rooms > 0 ? 2 * (n / rooms) : n;
    const wallS = run.wallMs / 1000;
    const perHeld = (bytes) => (after.size > 0 ? bytes / after.size : null);
    return {
      name,
      n,
      rooms,
      rate,
      seconds,
      connected: opened.ok,
      refused: opened.failed,
      held: after.size,
      droppedAtStart: start.closedByServer,
      openMs,
      usPerConnect: (cpu1.us - cpu0.us) / n,
      firstStateBytes: start.bytes,
      changes: run.changes,
      changesPerSecond: run.changes / seconds,
      delivered: got.total,
      expected: run.changes * perChange,
      byType: got.byType,
      perClient: got.perClient,
      closedByServer: got.closedByServer,
      deliveredPerSecond: got.total / wallS,
      clientMBps: got.bytes / 2 ** 20 / wallS,
      cpuPercent: (run.cpuUs / (run.wallMs * 1000)) * 100,
      idleCpuPercent: (idle.cpuUs / (idle.wallMs * 1000)) * 100,
      eventLoopUtilization: run.elu,
      usPerDelivery: got.total > 0 ? run.cpuUs / got.total : null,
      // The same without what the looks cost with nothing to send (the idle rate over the same time).
      usPerDeliveryAboveIdle: got.total > 0 ? (run.cpuUs - (idle.cpuUs / idle.wallMs) * run.wallMs) / got.total : null,
      rssPerConnection: perHeld(after.rss - before.rss),
      heapPerConnection: perHeld(after.heap - before.heap),
    };
  } finally {
    server.kill('SIGKILL');
  }
}

/** The soft limit on open files (Linux), which children inherit; Infinity where unknown. */
function openFileLimit() {
  try {
    const line = readFileSync('/proc/self/limits', 'utf8')
      .split('\n')
      .find((l) => l.startsWith('Max open files'));
    const soft = line.split(/\s{2,}/)[1];
    return soft === 'unlimited' ? Infinity : Number(soft);
  } catch {
    return Infinity;
  }
}

export async function sseFanOut({ quick, only }) {
  const seconds = quick ? 3 : 10;
  const all = only ?? [
    { name: 'count, 1,000 clients', n: 1000, rooms: 0, kind: 'count', rate: 10 },
    { name: 'count, 10,000 clients', n: 10_000, rooms: 0, kind: 'count', rate: 10 },
    // Past what one core can write: the driving timer (same event loop) slows down with it.
    { name: 'count, 10,000 clients, one change per look', n: 10_000, rooms: 0, kind: 'count', rate: 1000 / INTERVAL_MS },
    { name: 'room, 1,000 clients in 20 rooms of 50', n: 1000, rooms: 20, kind: 'room', rate: 10 },
    { name: 'room, 250 clients in one room of 250', n: 250, rooms: 1, kind: 'room', rate: 2 },
    { name: 'room, 1,000 clients in one room of 1,000', n: 1000, rooms: 1, kind: 'room', rate: 2 },
    // Each client also watches 200 badges: idle looks cost one lookup per distinct id, not per id per client.
    { name: 'count, 2,000 clients each watching 200 badges', n: 2000, rooms: 0, kind: 'count', rate: 10, ids: 200 },
  ];
  // Each connection is a file descriptor in the server and in the clients' process.
  const limit = openFileLimit();
  const cases = all.filter((c) => c.n + 200 <= limit);
  if (cases.length < all.length) console.log(`\nulimit -n is ${limit}: the cases of more than ${limit - 200} connections are skipped.\n`);
  const clients = fork(SELF, ['sse-clients'], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  await new Promise((resolve) => clients.once('message', resolve));
  const out = [];
  try {
    for (const c of cases) out.push(await fanOutCase(clients, { ...c, seconds }));
  } finally {
    clients.kill('SIGKILL');
  }
  const kb = (bytes) => (bytes === null ? '–' : (bytes / 1024).toFixed(1));
  const rows = out.map((r) => [
    r.name,
    `${fmtInt(r.held)}${r.droppedAtStart > 0 ? ` (${fmtInt(r.droppedAtStart)} dropped)` : ''}`,
    `${r.rate}/s → ${r.changesPerSecond.toFixed(1)}/s`,
    `${fmtInt(r.delivered)} / ${fmtInt(r.expected)}${r.closedByServer > 0 ? ` (${fmtInt(r.closedByServer)} dropped)` : ''}`,
    `${r.perClient.min}–${r.perClient.max}`,
    fmtInt(r.deliveredPerSecond),
    r.usPerDelivery === null ? '–' : `${r.usPerDelivery.toFixed(1)} (${r.usPerDeliveryAboveIdle.toFixed(1)})`,
    r.usPerDelivery === null ? '–' : fmtInt(1e6 / r.usPerDelivery),
    `${r.cpuPercent.toFixed(0)} (idle ${r.idleCpuPercent.toFixed(1)})`,
    r.clientMBps.toFixed(1),
    `${kb(r.rssPerConnection)} / ${kb(r.heapPerConnection)}`,
    `${r.usPerConnect.toFixed(0)} (${(r.openMs / 1000).toFixed(1)} s)`,
  ]);
  const text = table(
    `SSE fan-out: one server process, events({ interval: ${INTERVAL_MS} }), memory store, ${seconds} s per case; the clients in another process`,
    [
      'case',
      'connections held (dropped by the server)',
      'changes a second: asked → made',
      'messages received / expected',
      'per client (min–max)',
      'messages/s',
      'server CPU µs per message (above idle)',
      'messages/s one core could push (1e6 / µs)',
      'server CPU % of a core (idle)',
      'MB/s to clients',
      'KB per connection: RSS / heap',
      'server CPU µs per connect, first state included (all opened in)',
    ],
    rows,
  );
  return { results: out, text };
}

// ---------------------------------------------------------------------------
// 4. A stream flood from one client, with signed-in users' streams open.

export async function streamFlood({ quick }) {
  const n = quick ? 2000 : 10_000;
  const seconds = quick ? 3 : 5;
  if (n + 400 > openFileLimit()) {
    console.log(`\nulimit -n is below ${n + 400}: the stream flood is skipped.\n`);
    return { results: null, text: '' };
  }
  const clients = forkRole('sse-clients');
  const server = forkRole('sse-server');
  try {
    await new Promise((resolve) => clients.once('message', resolve));
    const { port } = await new Promise((resolve) => server.once('message', resolve));
    await ask(clients, { cmd: 'open', port, n: 2, rooms: 0 }); // users 1 and 2, signed in
    const before = await ask(server, { cmd: 'memory' });
    const idle = await ask(server, { cmd: 'drive', kind: 'count', rate: 0, seconds: 2, rooms: 0 });
    await ask(clients, { cmd: 'reset' });
    // The count changes 10 times a second while the flood comes in: the signed-in users must get them.
    const driving = ask(server, { cmd: 'drive', kind: 'count', rate: 10, seconds, rooms: 0 });
    const t0 = performance.now();
    const flood = await ask(clients, { cmd: 'flood', port, n });
    const floodMs = performance.now() - t0;
    const run = await driving;
    const got = await settledReport(clients);
    const after = await ask(server, { cmd: 'memory' });
    await ask(clients, { cmd: 'close' });
    const results = {
      asked: n,
      statuses: flood.statuses,
      floodMs,
      changes: run.changes,
      signedInReceived: got.first,
      cpuPercent: (run.cpuUs / (run.wallMs * 1000)) * 100,
      idleCpuPercent: (idle.cpuUs / (idle.wallMs * 1000)) * 100,
      rssMB: (after.rss - before.rss) / 2 ** 20,
      held: after.size,
    };
    const text = table(
      `A stream flood: one client (one address, no session) asks for ${fmtInt(n)} streams, 250 at a time, while the count changes 10 times a second for ${seconds} s; events({ interval: ${INTERVAL_MS} }), default budgets`,
      [
        'streams asked',
        'answers',
        'flood took',
        'streams held by the server',
        'count changes made',
        'received by the two signed-in streams',
        'server CPU % of a core (idle before)',
        'server RSS growth',
      ],
      [
        [
          fmtInt(n),
          Object.entries(results.statuses)
            .map(([status, count]) => `${fmtInt(count)} × ${status}`)
            .join(', '),
          `${(floodMs / 1000).toFixed(1)} s`,
          fmtInt(results.held),
          fmtInt(results.changes),
          results.signedInReceived.join(' and '),
          `${results.cpuPercent.toFixed(0)} (${results.idleCpuPercent.toFixed(1)})`,
          `${results.rssMB.toFixed(1)} MB`,
        ],
      ],
    );
    return { results, text };
  } finally {
    server.kill('SIGKILL');
    clients.kill('SIGKILL');
  }
}

// ---------------------------------------------------------------------------
// 5. Delays from a change to its event on a stream.

/** A stream's events as they arrive, with a wait for the first one from `from` on that passes `match`. */
function eventsOf(port, user, query) {
  const seen = [];
  let wake = () => undefined;
  const req = http.get({ host: '127.0.0.1', port, path: `${EVENTS_PATH}?${query}`, headers: { 'x-bench-user': String(user), accept: 'text/event-stream' } }, (res) => {
    let buf = '';
    res.setEncoding('utf8');
    res.on('data', (chunk) => {
      buf += chunk;
      for (let end = buf.indexOf('\n\n'); end !== -1; end = buf.indexOf('\n\n')) {
        const block = buf.slice(0, end);
        buf = buf.slice(end + 2);
        const event = /^event: (.*)$/m.exec(block)?.[1];
        if (event !== undefined)
          seen.push({
            event,
            data: block
              .split('\n')
              .filter((l) => l.startsWith('data: '))
              .map((l) => l.slice(6))
              .join('\n'),
            at: performance.now(),
          });
      }
      wake();
    });
  });
  return {
    close: () => req.destroy(),
    /** ms from `t0` to the first event after it that passes `match`. */
    async after(t0, match) {
      for (;;) {
        const hit = seen.find((e) => e.at >= t0 && match(e));
        if (hit !== undefined) return hit.at - t0;
        await new Promise((resolve) => {
          wake = resolve;
          setTimeout(resolve, 50);
        });
      }
    },
  };
}

export async function crossProcessDelays({ quick, redis }) {
  const { default: express } = await import('express');
  const { createOnlineTracker, RedisStore } = await import('express-online-now');
  const samples = quick ? 5 : 11;
  const getUser = (req) => {
    const id = Number(req.headers['x-bench-user']);
    return id > 0 ? { id, username: `user${id}` } : undefined;
  };
  const asUser = (id) => ({ headers: { 'x-bench-user': String(id) }, res: { locals: {} } });
  // A setup: the streaming tracker, and a writer per sample. On Redis each sample's writer is a new
  // store started at a random moment: two processes' syncs run at any phase to each other.
  const setups = [
    [
      'one process, memory store',
      () => {
        const one = createOnlineTracker({ getUser });
        return { streaming: one, writer: async () => one };
      },
    ],
  ];
  const clients = [];
  if (redis !== null) {
    const { createClient } = await import('redis');
    const tracker = async () => {
      const client = await createClient({ url: redis.url }).connect();
      clients.push(client);
      return createOnlineTracker({ getUser, secret: 'bench', store: new RedisStore({ client, prefix: 'bench-delays' }) });
    };
    setups.push([
      'two RedisStores (syncInterval 1000, the default), each with its own client: the change on one, the stream on the other',
      async () => ({
        streaming: await tracker(),
        writer: async () => {
          await sleep(Math.random() * 1000);
          const t = await tracker();
          await sleep(1500); // its first sync done
          return t;
        },
      }),
    ]);
  }
  const rows = [];
  const results = {};
  for (const [name, make] of setups) {
    const { streaming, writer: writerFor } = await make();
    const trackers = new Set([streaming]);
    const app = express();
    app.get(EVENTS_PATH, streaming.events());
    const server = await new Promise((resolve) => {
      const s = app.listen(0, '127.0.0.1', () => resolve(s));
    });
    // User 9 watches room r (a member: its page joined) and user 5's badge; every other user acts through the writer.
    await streaming.here(asUser(9), 'r');
    const stream = eventsOf(server.address().port, 9, 'rooms=r&ids=5');
    await sleep(2500);
    const took = { join: [], lock: [], leave: [], count: [] };
    for (let i = 0; i < samples; i++) {
      const writer = await writerFor();
      trackers.add(writer);
      await streaming.here(asUser(9), 'r'); // still here
      const user = 100 + i;
      // Each change at a random point of the sync and look cycles (right after an event would always be the worst).
      const pause = () => sleep(Math.random() * 1000);
      await pause();
      let t0 = performance.now();
      const view = await writer.here(asUser(user), 'r', { mode: 'editing' });
      took.join.push(await stream.after(t0, (e) => e.event === 'join' && e.data.includes(`"id":${user}`)));
      took.lock.push(await stream.after(t0, (e) => e.event === 'lock' && e.data.includes(`"holder":{"username":"user${user}"`)));
      await pause();
      t0 = performance.now();
      await writer.store.roomLeave('r', String(user), view.tab);
      took.leave.push(await stream.after(t0, (e) => e.event === 'leave' && e.data.includes(`"id":${user}`)));
      await pause();
      t0 = performance.now();
      await writer.touch({ id: 5, username: 'user5' });
      took.count.push(await stream.after(t0, (e) => e.event === 'online' && e.data.includes('"id":"5"')));
      await writer.forget(5);
    }
    stream.close();
    server.closeAllConnections();
    server.close();
    for (const t of trackers) await t.close();
    results[name] = Object.fromEntries(Object.entries(took).map(([k, v]) => [k, summary(v)]));
    const ms = (v) => `${fmtInt(summary(v).median)} (${fmtInt(summary(v).min)}–${fmtInt(summary(v).max)})`;
    rows.push([name, ms(took.join), ms(took.lock), ms(took.leave), ms(took.count)]);
  }
  for (const c of clients) await c.quit();
  const text = table(
    `Delays, ms from a change to its event on another stream: median (min–max) of ${samples}; events() at its default interval (250 ms)`,
    ['setup', 'join (here())', 'lock (an editor’s here())', 'leave', 'a user online (badge; the count in the same look)'],
    rows,
  );
  return { results, text };
}

// ---------------------------------------------------------------------------
// 2. A room's page: here() and rendering who is here.

const ROOM_PAGE = `<section><h2>{{ onlineHereCount }} here</h2>
<ul class="online-here">{{ onlineHereHtml() }}</ul>{{ onlineLockHtml() }}</section>`;

/**
 * µs for here(req, room) and for rendering the room, per page view of a member,
 * members taking turns. A reload is a new tab: the page's previous tab leaves
 * afterwards, untimed (as the browser's leave beacon would), so the room stays
 * at `members` users of one tab each.
 */
async function roomPage(store, members, { runs, targetMs }) {
  const [{ createOnlineTracker, registerNunjucks }, { default: nunjucks }] = await Promise.all([import('express-online-now'), import('nunjucks')]);
  const online = createOnlineTracker({ store, maxRoomMembers: members + 50, maxRooms: 10 });
  const room = `order:${members}`;
  const tabs = new Map();
  for (let id = 1; id <= members; id++) {
    await store.roomTouch({ room, tab: tabId(id), key: String(id), id, profile: profileOf(id), mode: 'viewing', takeover: false }, EVERYONE);
    tabs.set(id, tabId(id));
  }
  const page = nunjucks.compile(ROOM_PAGE, registerNunjucks(new nunjucks.Environment(null, { autoescape: true })));
  let listed = 0;
  const view = async (i) => {
    const id = 1 + (i % members);
    const res = { locals: {} };
    const req = { headers: {}, session: { user: { id, username: `user${id}` } }, res };
    const t0 = process.hrtime.bigint();
    const here = await online.here(req, room);
    const t1 = process.hrtime.bigint();
    const html = page.render(res.locals);
    const t2 = process.hrtime.bigint();
    listed = html.split('<li').length - 1;
    await store.roomLeave(room, String(id), tabs.get(id));
    tabs.set(id, here.tab);
    return [Number(t1 - t0) / 1e3, Number(t2 - t1) / 1e3];
  };
  for (let i = 0; i < 50; i++) await view(i);
  const hereUs = [];
  const renderUs = [];
  let i = 0;
  for (let r = 0; r < runs; r++) {
    let h = 0;
    let p = 0;
    let ops = 0;
    while (h + p < targetMs * 1000 && ops < 20_000) {
      const [a, b] = await view(i++);
      h += a;
      p += b;
      ops++;
    }
    hereUs.push(h / ops);
    renderUs.push(p / ops);
  }
  await online.close();
  const pageUs = hereUs.map((h, k) => h + renderUs[k]);
  return { members, listed, views: i, here: summary(hereUs), render: summary(renderUs), page: summary(pageUs) };
}

export async function roomPageCost({ quick, redis }) {
  const { MemoryStore, RedisStore } = await import('express-online-now');
  const sizes = [10, 1000];
  const timing = quick ? { runs: 3, targetMs: 150 } : { runs: 5, targetMs: 300 };
  const out = [];
  for (const members of sizes) out.push({ store: 'memory', ...(await roomPage(new MemoryStore(), members, timing)) });
  if (redis !== null) {
    const { createClient } = await import('redis');
    const client = await createClient({ url: redis.url }).connect();
    for (const members of sizes) {
      const store = new RedisStore({ client, prefix: `bench-room-${members}` });
      out.push({ store: 'redis', ...(await roomPage(store, members, timing)) });
    }
    await client.quit();
  }
  const rows = out.map((r) => [r.store === 'memory' ? 'MemoryStore' : 'RedisStore', fmtInt(r.members), range(r.here, 1), range(r.render, 1), range(r.page, 1), fmtInt(r.listed)]);
  const text = table(
    `A room's page: µs for here(req, room) and for a Nunjucks render of onlineHereHtml() (median of ${timing.runs} runs, min–max)`,
    ['store', 'members (one tab each)', 'here()', 'render', 'page (both)', 'names listed'],
    rows,
  );
  return { results: out, text };
}

// ---------------------------------------------------------------------------
// 3. Redis commands per heartbeat, through the real route.

/** A tiny HTTP client on a keep-alive agent: resolves to [status, set-cookie, body]. */
function httpRequest(agent, port, method, path, { cookie, body } = {}) {
  return new Promise((resolve, reject) => {
    const headers = {};
    if (cookie !== undefined) headers.cookie = cookie;
    if (body !== undefined) headers['content-type'] = 'application/json';
    const req = http.request({ agent, host: '127.0.0.1', port, method, path, headers }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk) => (text += chunk));
      res.on('end', () => resolve([res.statusCode, res.headers['set-cookie'], text]));
    });
    req.on('error', reject);
    req.end(body);
  });
}

/** Beats every tab once a second, spread over 10 ms ticks, for `seconds`; resolves to the beats that got 200. */
async function beatFor(agent, port, tabs, seconds) {
  const perTick = tabs.length / 100;
  let next = 0;
  let ok = 0;
  let failed = 0;
  const inFlight = new Set();
  const timer = setInterval(() => {
    for (let k = 0; k < perTick; k++) {
      const tab = tabs[next++ % tabs.length];
      const p = httpRequest(agent, port, 'POST', '/online-now/beat', { cookie: tab.cookie, body: tab.body }).then(
        ([status]) => (status === 200 ? ok++ : failed++),
        () => failed++,
      );
      inFlight.add(p);
      void p.finally(() => inFlight.delete(p));
    }
  }, 10);
  await sleep(seconds * 1000);
  clearInterval(timer);
  await Promise.all(inFlight);
  return { ok, failed };
}

/**
 * An Express app on loopback with express-session (its in-process store: Redis
 * then sees only the presence store's commands), `GET /login/:id`, and a tracker
 * on a RedisStore; `routes(app, online)` adds the rest.
 */
async function redisSessionApp(redis, prefix, routes, options = {}) {
  const [{ default: express }, { default: session }, { createClient }, { RedisStore, createOnlineTracker }] = await Promise.all([
    import('express'),
    import('express-session'),
    import('redis'),
    import('express-online-now'),
  ]);
  const client = await createClient({ url: redis.url }).connect();
  const store = new RedisStore({ client, prefix });
  const online = createOnlineTracker({ store, secret: 'bench', ...options }); // one secret: client() on a shared store needs it
  const app = express();
  app.use(session({ secret: 'bench', resave: false, saveUninitialized: false }));
  app.get('/login/:id', (req, res) => {
    req.session.user = { id: Number(req.params.id), username: `user${req.params.id}` };
    res.sendStatus(204);
  });
  routes(app, online);
  const server = await new Promise((resolve) => {
    const s = app.listen(0, '127.0.0.1', () => resolve(s));
  });
  const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });
  const close = async () => {
    agent.destroy();
    server.close();
    await online.close();
    await client.quit();
  };
  return { client, store, port: server.address().port, agent, close };
}

/** One run of heartbeats (see heartbeatCommands); `onRoom`: the tracker has it (rooms' transitions decided in the script). */
async function beatRun({ quick, redis, onRoom }) {
  const nTabs = quick ? 500 : 2000;
  const seconds = quick ? 3 : 10;
  let told = 0;
  const options = onRoom ? { onRoom: () => void told++ } : {};
  const { client, port, agent, close } = await redisSessionApp(
    redis,
    onRoom ? 'bench-beats-onroom' : 'bench-beats',
    (app, online) => {
      app.use(online.client());
      // A tab is minted by here() for its user and room (a heartbeat for any other is refused).
      app.get('/tab', async (req, res) => res.json({ tab: (await online.here(req, String(req.query.room))).tab }));
    },
    options,
  );
  try {
    // Two tabs per user, in rooms of 50 tabs (the default maxRoomMembers).
    const tabs = [];
    for (let u = 1; u <= nTabs / 2; u++) {
      const [, setCookie] = await httpRequest(agent, port, 'GET', `/login/${u}`);
      const cookie = setCookie[0].split(';')[0];
      for (const t of [2 * u - 1, 2 * u]) {
        const room = roomOf(t, nTabs / 50);
        const [, , minted] = await httpRequest(agent, port, 'GET', `/tab?room=${room}`, { cookie });
        tabs.push({ cookie, body: JSON.stringify({ tab: JSON.parse(minted).tab, room }) });
      }
    }
    await beatFor(agent, port, tabs, 2); // every tab in its room, and the replica warm
    await sleep(1100); // the warm-up's last beats go out with the next sync, outside both windows

    const idle0 = await commandCount(client);
    await sleep(seconds * 1000);
    const idle1 = await commandCount(client);
    const told0 = told;
    const busy0 = await commandCount(client);
    const beats = await beatFor(agent, port, tabs, seconds);
    await sleep(1100); // the last beats' sync
    const busy1 = await commandCount(client);

    const diff = (a, b) => ({
      roundTrips: b.roundTrips - a.roundTrips,
      scripts: b.scripts - a.scripts,
      scriptUs: b.scriptUs - a.scriptUs,
      executed: b.executed - a.executed,
      byCommand: Object.fromEntries(
        Object.entries(b.calls)
          .map(([name, n]) => [name, n - (a.calls[name] ?? 0)])
          .filter(([, n]) => n > 0),
      ),
    });
    const idle = diff(idle0, idle1);
    const busy = diff(busy0, busy1);
    return {
      tabs: nTabs,
      seconds,
      beats: beats.ok,
      failedBeats: beats.failed,
      beatsPerSecond: beats.ok / seconds,
      idle,
      busy,
      roundTripsPerBeat: busy.roundTrips / beats.ok,
      idleCommandsPerSync: idle.executed / Math.max(1, idle.scripts),
      executedPerBeat: busy.executed / beats.ok,
      scriptUsPerBeat: busy.scriptUs / beats.ok,
      onRoomCalls: told - told0,
    };
  } finally {
    await close();
  }
}

/** Redis's work per heartbeat through the real route, without and with onRoom (same tabs, same rooms, a prefix each). */
export async function heartbeatCommands({ quick, redis }) {
  const plain = await beatRun({ quick, redis, onRoom: false });
  const rooms = await beatRun({ quick, redis, onRoom: true });
  const both = (f) => [f(plain), f(rooms)];
  const text = table(
    `Redis commands per heartbeat: ${fmtInt(plain.tabs)} tabs (2 per user, rooms of 50), each asked to beat once a second through POST /online-now/beat, for ${plain.seconds} s; RedisStore, syncInterval 1000; without and with onRoom`,
    ['measure', 'without onRoom', 'with onRoom'],
    [
      ['heartbeats answered 200 (failed)', ...both((r) => `${fmtInt(r.beats)} (${r.failedBeats})`)],
      ['heartbeats a second', ...both((r) => fmtInt(r.beatsPerSecond))],
      [`Redis round trips while beating, ${plain.seconds} s + 1.1 s for the last sync (sync scripts)`, ...both((r) => `${fmtInt(r.busy.roundTrips)} (${fmtInt(r.busy.scripts)})`)],
      [`Redis round trips in ${plain.seconds} s without beats (commands run per sync)`, ...both((r) => `${fmtInt(r.idle.roundTrips)} (${r.idleCommandsPerSync.toFixed(0)})`)],
      ['round trips per heartbeat', ...both((r) => r.roundTripsPerBeat.toFixed(5))],
      ['commands run per heartbeat, inside the scripts too', ...both((r) => r.executedPerBeat.toFixed(2))],
      ['Redis time in the sync script per heartbeat, µs (INFO commandstats)', ...both((r) => r.scriptUsPerBeat.toFixed(1))],
      ['onRoom calls while beating (none: every tab stays)', ...both((r) => fmtInt(r.onRoomCalls))],
    ],
  );
  return { results: { plain, rooms }, text };
}

// ---------------------------------------------------------------------------
// 6. Guarded writes, through the real routes.

/** `n` requests one after another; resolves to each one's ms. */
async function timed(n, send) {
  const ms = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    const [status] = await send();
    if (status !== 200) throw new Error(`answered ${status}`);
    ms.push(performance.now() - t0);
  }
  return ms;
}

export async function guardedWrites({ quick, redis }) {
  const n = quick ? 200 : 1000;
  const { client, store, port, agent, close } = await redisSessionApp(redis, 'bench-guard', (app, online) => {
    app.use(online.middleware());
    // The room's page: here() (a view, no lock change) and a body.
    app.get('/page', async (req, res) => {
      await online.here(req, 'order:1', { mode: req.query.edit === '1' ? 'editing' : 'viewing' });
      res.json({ count: res.locals.onlineHereCount });
    });
    app.post('/save', online.requireLock('order:1'), (req, res) => res.json({ saved: true }));
    app.post('/plain', (req, res) => res.json({ saved: true }));
  });
  try {
    const [, setCookie] = await httpRequest(agent, port, 'GET', '/login/1');
    const cookie = setCookie[0].split(';')[0];
    await httpRequest(agent, port, 'GET', '/page?edit=1', { cookie }); // user 1 holds order:1's lock
    const get = (path) => () => httpRequest(agent, port, 'GET', path, { cookie });
    const post = (path) => () => httpRequest(agent, port, 'POST', path, { cookie });
    await timed(100, post('/save')); // warm

    const pages0 = await commandCount(client);
    const t0 = performance.now();
    const pageMs = await timed(n, get('/page'));
    const pagesSeconds = (performance.now() - t0) / 1000;
    const pages1 = await commandCount(client);
    const plainMs = await timed(n, post('/plain'));
    const writes0 = await commandCount(client);
    const t1 = performance.now();
    const guardedMs = await timed(n, post('/save'));
    const writesSeconds = (performance.now() - t1) / 1000;
    const writes1 = await commandCount(client);
    // 50 at once: they share syncs.
    const burst0 = await commandCount(client);
    const burst = await Promise.all(Array.from({ length: 50 }, () => post('/save')()));
    const burst1 = await commandCount(client);
    if (burst.some(([status]) => status !== 200)) throw new Error('a guarded write of the burst was refused');

    const syncsIn = (seconds) => Math.floor((seconds * 1000) / store.syncInterval);
    const results = {
      n,
      pageMs: summary(pageMs),
      pageRoundTrips: pages1.roundTrips - pages0.roundTrips,
      pagesSeconds,
      plainMs: summary(plainMs),
      guardedMs: summary(guardedMs),
      guardedRoundTrips: writes1.roundTrips - writes0.roundTrips,
      writesSeconds,
      burstRoundTrips: burst1.roundTrips - burst0.roundTrips,
    };
    const p99 = (ms) => [...ms].sort((a, b) => a - b)[Math.floor(ms.length * 0.99)];
    const text = table(
      `Guarded writes: one holder, ${fmtInt(n)} requests of each kind one after another over keep-alive loopback HTTP; RedisStore (syncInterval 1000) on a local redis-server`,
      ['measure', 'value'],
      [
        ['room page, here(): ms median (p99)', `${results.pageMs.median.toFixed(3)} (${p99(pageMs).toFixed(3)})`],
        [
          `Redis round trips during those ${fmtInt(n)} pages, ${pagesSeconds.toFixed(1)} s (the timer's syncs in that time)`,
          `${results.pageRoundTrips} (${syncsIn(pagesSeconds)})`,
        ],
        ['unguarded POST: ms median (p99)', `${results.plainMs.median.toFixed(3)} (${p99(plainMs).toFixed(3)})`],
        ['guarded POST (requireLock): ms median (p99)', `${results.guardedMs.median.toFixed(3)} (${p99(guardedMs).toFixed(3)})`],
        [
          `Redis round trips for ${fmtInt(n)} guarded writes, ${writesSeconds.toFixed(1)} s (the timer's syncs in that time)`,
          `${results.guardedRoundTrips} (${syncsIn(writesSeconds)})`,
        ],
        ['Redis round trips for 50 guarded writes sent at once', String(results.burstRoundTrips)],
      ],
    );
    return { results, text };
  } finally {
    await close();
  }
}

// ---------------------------------------------------------------------------

/** Every section of this file; the Redis ones only where a redis-server is installed. */
export async function live({ quick }) {
  const results = {};
  const texts = [];
  const fan = await sseFanOut({ quick });
  results.sseFanOut = fan.results;
  texts.push(fan.text);
  const flood = await streamFlood({ quick });
  results.streamFlood = flood.results;
  texts.push(flood.text);
  const redis = await startRedis();
  if (redis === null) console.log('\nredis-server is not installed: the RedisStore room page and the commands per heartbeat are skipped.\n');
  try {
    const page = await roomPageCost({ quick, redis });
    results.roomPage = page.results;
    texts.push(page.text);
    const delays = await crossProcessDelays({ quick, redis });
    results.delays = delays.results;
    texts.push(delays.text);
    if (redis !== null) {
      const beats = await heartbeatCommands({ quick, redis });
      results.heartbeatCommands = beats.results;
      texts.push(beats.text);
      const guard = await guardedWrites({ quick, redis });
      results.guardedWrites = guard.results;
      texts.push(guard.text);
    }
  } finally {
    redis?.stop();
  }
  return { results, text: texts.join('\n\n') };
}

if (process.argv[2] === 'sse-server') {
  await sseServer();
} else if (process.argv[2] === 'sse-clients') {
  await sseClients();
} else if (process.argv[2] === 'flood') {
  await streamFlood({ quick: process.env.QUICK === '1' });
  process.exit(0);
} else if (process.argv[2] === 'badges') {
  await sseFanOut({ quick: false, only: [{ name: 'count, 2,000 clients each watching 200 badges', n: 2000, rooms: 0, kind: 'count', rate: 10, ids: 200 }] });
  process.exit(0);
} else if (process.argv[2] === 'guard') {
  const redis = await startRedis();
  console.log((await guardedWrites({ quick: process.env.QUICK === '1', redis })).text);
  redis?.stop();
  process.exit(0);
} else if (process.argv[2] === 'beats') {
  const redis = await startRedis();
  console.log((await heartbeatCommands({ quick: process.env.QUICK === '1', redis })).text);
  redis?.stop();
  process.exit(0);
} else if (process.argv[2] === 'delays') {
  const redis = await startRedis();
  await crossProcessDelays({ quick: process.env.QUICK === '1', redis });
  redis?.stop();
  process.exit(0);
} else if (process.argv[1] === SELF) {
  const { results } = await live({ quick: process.env.QUICK === '1' });
  console.log(JSON.stringify(results, null, 2));
  process.exit(0);
}

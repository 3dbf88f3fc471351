// Durable last-seen and the all-time record across three real Node processes on
// one Redis: the Redis script decides which process calls onSeen (at most once
// per user per seenInterval, at least once per interval while active) and
// raises the record (a max inside the script, so racing processes cannot both
// raise it to one count, nor lower it).
import { expect } from 'chai';
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import type { LocalsJson } from './helpers/app';
import { BROWSER_AGENT, CookieBrowser } from './helpers/browser';
import { Rng, modelSeed } from './helpers/model';
import { REDIS_SERVER, RedisServer, connect, uniquePrefix, type ClientKind, type TestClient } from './helpers/redis';
import { requireBinary } from './helpers/requirements';
import { eventually, sleep } from './helpers/wait';

const WORKER = path.join(__dirname, 'fixtures', 'forum-worker.ts');
const SEEN_INTERVAL_MS = 1000;
/** A touch is in Redis within two of the workers' syncs (syncInterval 100 ms), with room for a loaded machine's sync. */
const LANDED_MS = 2 * 100 + 500;

interface Worker {
  child: ChildProcess;
  base: string;
  seen: { id: number; at: number }[];
  records: { count: number; at: number }[];
}

function startWorker(port: number, kind: ClientKind, prefix: string): Promise<Worker> {
  const child = spawn(process.execPath, ['--import', 'tsx', WORKER, String(port), kind, prefix, String(SEEN_INTERVAL_MS / 1000)], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  return new Promise((resolve, reject) => {
    const worker: Worker = { child, base: '', seen: [], records: [] };
    let out = '';
    child.stdout!.on('data', (chunk: Buffer) => {
      out += chunk.toString();
      const lines = out.split('\n');
      out = lines.pop()!;
      for (const l of lines) {
        const msg = JSON.parse(l) as { base?: string; seen?: number; record?: number; at: number };
        if (msg.base !== undefined) {
          worker.base = msg.base;
          resolve(worker);
        } else if (msg.seen !== undefined) worker.seen.push({ id: msg.seen, at: msg.at });
        else if (msg.record !== undefined) worker.records.push({ count: msg.record, at: msg.at });
      }
    });
    child.on('exit', (code) => reject(new Error(`worker exited with ${code}`)));
  });
}

describe('onSeen and the record across three Node processes on one Redis', function () {
  this.timeout(120_000);
  let redis: RedisServer;
  let admin: TestClient;
  const workers: Worker[] = [];
  /**
   * One signed-out observer for every process: its guest cookie goes to all of
   * them, so it is one guest however often it looks (a fresh browser per look
   * would be a new guest each time, from its first request).
   */
  let observerCookie: string | undefined;
  async function look(w: Worker, query = ''): Promise<string> {
    const res = await fetch(`${w.base}/locals${query}`, { headers: { 'user-agent': BROWSER_AGENT, ...(observerCookie ? { cookie: observerCookie } : {}) } });
    observerCookie ??= res.headers.getSetCookie()[0]?.split(';')[0];
    return res.text();
  }
  const observe = async (w: Worker, query = ''): Promise<LocalsJson> => JSON.parse(await look(w, query)) as LocalsJson;
  const prefix = uniquePrefix();
  const meta = `{${prefix}}:meta`;

  before(async function () {
    requireBinary(this, REDIS_SERVER, 'apt-get install -y redis-server');
    redis = await RedisServer.start();
    admin = await connect('node-redis', redis);
    const kinds: ClientKind[] = ['node-redis', 'node-redis', 'ioredis'];
    workers.push(...(await Promise.all(kinds.map((kind) => startWorker(redis.port, kind, prefix)))));
  });

  after(async () => {
    for (const { child } of workers) child.kill();
    await admin?.close();
    await redis?.stop();
  });

  const allSeen = (): { id: number; at: number }[] => workers.flatMap((w) => w.seen).sort((a, b) => a.at - b.at);

  it('50 users browsing every process for 3 intervals: onSeen at most once per user per interval, at least once per interval', async () => {
    const seed = modelSeed();
    console.log(`      MODEL_SEED=${seed}`);
    const rng = new Rng(seed);
    const users = Array.from({ length: 50 }, (_, i) => i + 1);
    // Sessions live in each process's memory: each user signs in on all three, as a sticky-less balancer would need.
    const browsers = new Map<number, CookieBrowser[]>();
    await Promise.all(
      users.map(async (id) => {
        const mine = workers.map((w) => new CookieBrowser(w.base));
        browsers.set(id, mine);
        for (const b of mine) expect((await b.post('/login', { id: String(id), type: 'number' })).status).to.equal(204);
      }),
    );
    const start = Date.now();
    const end = start + 3.5 * SEEN_INTERVAL_MS;
    // Each user's requests, from sent to answered: the activity onSeen reports.
    const requests = new Map<number, [sent: number, answered: number][]>(users.map((id) => [id, []]));
    await Promise.all(
      users.map(async (id) => {
        while (Date.now() < end) {
          const sent = Date.now();
          await browsers.get(id)![Math.floor(rng.between(0, 3))].get('/locals');
          requests.get(id)!.push([sent, Date.now()]);
          await sleep(rng.between(50, 150)); // the pace of a user's requests: 3.5 intervals of browsing is the subject
        }
      }),
    );
    // The calls a user's requests must have earned, whatever the machine's pace: the first request, then each one sent
    // over an interval after the latest the last call can be dated (a later request may stand for the one that earned it,
    // within LANDED_MS of its answer, as below).
    const earned = (id: number): number => {
      let [count, last] = [0, -Infinity];
      for (const [sent, answered] of requests.get(id)!) if (sent > last + SEEN_INTERVAL_MS + 50) [count, last] = [count + 1, answered + LANDED_MS];
      return count;
    };
    // The last syncs: every user's calls for the intervals browsed have come.
    await eventually(() => {
      for (const id of users) expect(allSeen().filter((c) => c.id === id && c.at >= start).length, `user ${id}`).to.be.at.least(earned(id));
    });
    const calls = allSeen();
    for (const id of users) {
      const all = calls.filter((c) => c.id === id).map((c) => c.at);
      // Signing in is activity too (with trackGuests, the guest who signs in is the user from that response on): a call
      // per interval at most, however long the three sign-ins take on a loaded machine.
      const signIns = all.filter((at) => at < start);
      for (let i = 1; i < signIns.length; i++) expect(signIns[i] - signIns[i - 1], `user ${id}: ${signIns.join(', ')}`).to.be.at.least(SEEN_INTERVAL_MS - 1);
      const times = all.filter((at) => at >= start);
      // The first request's sync reports it, then one per interval while the user is active.
      expect(times.length, `user ${id}: ${times.join(', ')}`).to.be.within(earned(id), 4);
      for (let i = 1; i < times.length; i++) {
        const [last, next] = [times[i - 1], times[i]];
        expect(next - last, `user ${id}`).to.be.at.least(SEEN_INTERVAL_MS - 1);
        // Active all along: the next call is for a request soon after an interval has passed. Soon: a process sends
        // each user's latest touch at its next sync, so a later request (here or on a process that synced first) may
        // stand for one just before it; a request answered longer before than that went unreported.
        const skipped = requests.get(id)!.filter(([sent, answered]) => sent > last + SEEN_INTERVAL_MS + 50 && answered < next - LANDED_MS);
        expect(skipped, `user ${id}: requests after ${last} + an interval, before the call for ${next}`).to.deep.equal([]);
      }
    }
    // Every call was made by one process only: no date reported twice for a user.
    expect(new Set(calls.map((c) => `${c.id}@${c.at}`)).size).to.equal(calls.length);
    expect(new Set(workers.filter((w) => w.seen.length > 0))).to.have.property('size', 3);
  });

  it('calls onSeen once more on logout, with the last activity', async () => {
    const browser = new CookieBrowser(workers[1].base);
    await browser.post('/login', { id: '777', type: 'number' });
    await browser.get('/locals');
    await eventually(() => expect(allSeen().filter((c) => c.id === 777)).to.have.length(1));
    await browser.get('/locals');
    expect((await browser.post('/logout')).status).to.equal(204);
    await eventually(() => expect(allSeen().filter((c) => c.id === 777)).to.have.length(2));
  });

  it('raises the record atomically as users and guests arrive on every process, never for bots', async () => {
    // The 50 browsing users are online; 777's logout has reached every process.
    for (const w of workers) await eventually(async () => expect((await observe(w)).onlineCount).to.equal(50));
    // The observer's own guest has reached every process too.
    const before = await observe(workers[0]);
    for (const w of workers) await eventually(async () => expect((await observe(w)).onlineGuests).to.equal(before.onlineGuests));
    const online = before.onlineCount + before.onlineGuests;
    // 60 guests arrive at once, 20 on each process.
    await Promise.all(
      Array.from({ length: 60 }, async (_, i) => {
        const guest = new CookieBrowser(workers[i % 3].base);
        await guest.post('/guest');
        await guest.get('/locals');
      }),
    );
    // Crawlers, on every process: counted apart, never in the record.
    for (const w of workers) {
      for (const ua of ['Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)', 'Mozilla/5.0 (compatible; bingbot/2.0)']) {
        await fetch(`${w.base}/locals`, { headers: { 'user-agent': ua } });
      }
    }
    for (const w of workers) {
      await eventually(async () => {
        const locals = await observe(w);
        expect(locals.onlineGuests).to.equal(before.onlineGuests + 60);
        expect(locals.onlineBots).to.equal(2);
        expect(locals.onlineRecord.count).to.equal(online + 60);
      });
    }
    // onRecord: called by the process whose sync raised it, each count at most once across processes.
    const raised = workers.flatMap((w) => w.records.map((r) => r.count));
    expect(Math.max(...raised)).to.equal(online + 60);
    expect(new Set(raised).size).to.equal(raised.length);
    expect(await admin.command('HGET', meta, 'record')).to.equal(String(online + 60));
  });

  it('keeps a user who hides on one process out of every other process’s locals, and shows them again when they unhide', async () => {
    const hidden = new CookieBrowser(workers[0].base);
    await hidden.post('/login', { id: '4242', type: 'number', name: 'Hidden Hermit' });
    await hidden.get('/locals');
    const own = await hidden.json<LocalsJson>('/locals?ask=[4242]');
    expect(own.isOnline).to.deep.equal([true]); // they see themselves
    expect(own.onlineNow.find((e) => e.id === 4242)?.hidden).to.equal(true);
    for (const w of workers.slice(1)) {
      await eventually(async () => expect((await observe(w)).onlineHidden).to.equal(1));
      const text = await look(w, '?ask=[4242]');
      expect(text).not.to.contain('Hermit');
      const locals = JSON.parse(text) as LocalsJson;
      expect(locals.onlineNowIds).not.to.include(4242);
      expect([locals.isOnline, locals.lastSeen]).to.deep.equal([[false], [null]]);
    }
    // The same user, visible again, on another process: everyone sees them within a sync or two.
    const visible = new CookieBrowser(workers[2].base);
    await visible.post('/login', { id: '4242', type: 'number', name: 'Hermit' });
    await visible.get('/locals');
    for (const w of workers) {
      await eventually(async () => {
        const locals = await observe(w, '?ask=[4242]');
        expect([locals.isOnline, locals.onlineHidden]).to.deep.equal([[true], 0]);
      });
    }
  });

  it('keeps the record when Redis loses its data: the processes write it back', async () => {
    const { onlineRecord } = await observe(workers[2]);
    await admin.command('FLUSHALL');
    // Written back to Redis by a process that synced since; and no process lowered its record meanwhile.
    await eventually(async () => expect(await admin.command('HGET', meta, 'record')).to.equal(String(onlineRecord.count)));
    for (const w of workers) {
      const locals = await observe(w);
      expect(locals.onlineRecord).to.deep.equal(onlineRecord);
    }
  });
});

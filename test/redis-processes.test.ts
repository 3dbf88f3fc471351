import { expect } from 'chai';
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import type { LocalsJson } from './helpers/app';
import { CookieBrowser } from './helpers/browser';
import { REDIS_SERVER, RedisServer, connect, uniquePrefix, type ClientKind, type TestClient } from './helpers/redis';
import { requireBinary } from './helpers/requirements';
import { eventually } from './helpers/wait';

const WORKER = path.join(__dirname, 'fixtures', 'redis-worker.ts');

function startWorker(port: number, kind: ClientKind, prefix: string, skewMs = 0): Promise<{ child: ChildProcess; base: string }> {
  const child = spawn(process.execPath, ['--import', 'tsx', WORKER, String(port), kind, prefix, String(skewMs)], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  return new Promise((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (chunk: Buffer) => {
      out += chunk.toString();
      const line = out.split('\n').find((l) => l.startsWith('{'));
      if (line) resolve({ child, base: (JSON.parse(line) as { base: string }).base });
    });
    child.on('exit', (code) => reject(new Error(`worker exited with ${code}`)));
  });
}

describe('RedisStore across three separate Node processes (two node-redis, one ioredis, whose clock is 10 minutes fast)', function () {
  this.timeout(120_000);
  let redis: RedisServer;
  let admin: TestClient;
  const prefix = uniquePrefix();
  const workers: { child: ChildProcess; base: string }[] = [];

  before(async function () {
    requireBinary(this, REDIS_SERVER, 'apt-get install -y redis-server');
    redis = await RedisServer.start();
    admin = await connect('node-redis', redis);
    const kinds: ClientKind[] = ['node-redis', 'node-redis', 'ioredis'];
    // The third server's clock is 10 minutes fast: presence must go by Redis's clock, not each server's.
    const skews = [0, 0, 600_000];
    workers.push(...(await Promise.all(kinds.map((kind, i) => startWorker(redis.port, kind, prefix, skews[i])))));
  });

  after(async () => {
    for (const { child } of workers) child.kill();
    await admin?.close();
    await redis?.stop();
  });

  const users = Array.from({ length: 300 }, (_, i) => i + 1);
  const browsers = new Map<number, CookieBrowser>();

  it('300 users sign in concurrently, each through one of the processes; every process then shows 300', async () => {
    await Promise.all(
      users.map(async (id) => {
        const browser = new CookieBrowser(workers[id % 3].base);
        browsers.set(id, browser);
        expect((await browser.post('/login', { id: String(id), type: 'number' })).status).to.equal(204);
        await browser.get('/locals');
      }),
    );
    for (const [n, worker] of workers.entries()) {
      // Within a few syncIntervals (200 ms); polled, so a loaded CI machine does not fail it.
      await eventually(async () => {
        const { onlineCount } = await new CookieBrowser(worker.base).json<LocalsJson>('/locals');
        expect(onlineCount, `process ${n}`).to.equal(300);
      });
      const locals = await new CookieBrowser(worker.base).json<LocalsJson>(`/locals?ask=${JSON.stringify(users)}`);
      expect(locals.onlineCount, `process ${n}`).to.equal(300);
      expect(locals.onlineNow, `process ${n}`).to.have.length(50);
      // isOnline is exact for every user, including the 200 this process never served and the 250 not listed.
      expect(locals.isOnline!.every(Boolean), `process ${n}`).to.equal(true);
      expect(new Set(locals.onlineNowIds).size).to.equal(50);
      expect(locals.onlineNowIds.every((id) => typeof id === 'number')).to.equal(true);
      // Every process dates everyone by Redis's clock: nobody seen 10 minutes in the future, or the past.
      for (const entry of locals.onlineNow) expect(Math.abs(Date.parse(String(entry.lastSeen)) - Date.now()), `process ${n}`).to.be.below(30_000);
      // And measures timeAgo from it: a user's own page says "now", on the process whose clock is off too.
      const own = await browsers.get(n === 0 ? 3 : n)!.json<LocalsJson>(`/locals?ask=[${n === 0 ? 3 : n}]`);
      expect(own.timeAgo, `process ${n}`).to.deep.equal(['now']);
    }
    expect(await admin.command('ZCARD', `{${prefix}}:users:seen`)).to.equal(300);
  });

  it('a logout in one process reaches the others within syncInterval', async () => {
    const leaving = browsers.get(3)!; // served by process 0
    expect((await leaving.post('/logout')).status).to.equal(204);
    // The logout's write, then the others' read.
    await eventually(async () => {
      for (const [n, worker] of workers.entries()) {
        const locals = await new CookieBrowser(worker.base).json<LocalsJson>('/locals?ask=[3,4]');
        expect(locals.isOnline, `process ${n}`).to.deep.equal([false, true]);
        expect(locals.onlineCount, `process ${n}`).to.equal(299);
      }
    });
  });
});

import { expect } from 'chai';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { RedisStore, createOnlineTracker, type OnlineNowConfigError, type OnlineTracker } from 'express-online-now';
import { REDIS_SERVER, RedisServer, connect, uniquePrefix, type TestClient } from './helpers/redis';
import { requireBinary } from './helpers/requirements';
import { synced } from './helpers/stores';
import { eventually, sleep } from './helpers/wait';

/** A last-seen date in ms (a Date holds whole ms: one process may round a µs time the other way). */
const ms = (date: Date | null): number => (date as Date).getTime();

/**
 * The situations issue #8 reproduced, each as a user would meet it, on a real
 * redis-server. Two trackers on their own clients stand for two app processes
 * (the multi-process model test runs real processes). Both live in this process,
 * so they share one clock: a "last seen" is compared with the moment the test
 * made the request.
 */
describe('RedisStore tells the truth: restarts, outages, logout races, clock steps, shared stores, eviction', function () {
  this.timeout(60_000);
  let redis: RedisServer;
  const opened: { close(): Promise<unknown> }[] = [];
  let errors: Error[];

  before(async function () {
    requireBinary(this, REDIS_SERVER, 'apt-get install -y redis-server');
    redis = await RedisServer.start();
  });
  after(() => redis?.stop());
  beforeEach(() => {
    errors = [];
  });
  afterEach(async () => {
    redis.resume();
    for (const thing of opened.splice(0).reverse()) await thing.close();
  });

  async function client(server = redis): Promise<TestClient> {
    const c = await connect('node-redis', server);
    opened.push(c);
    return c;
  }

  /** One "process": a tracker on its own connection. */
  async function tracker(prefix: string, options: { threshold?: number; syncInterval?: number; c?: TestClient; errorsTo?: Error[] } = {}): Promise<OnlineTracker> {
    const { threshold = 2, syncInterval = 100, c = await client(), errorsTo = errors } = options;
    const online = createOnlineTracker({
      store: new RedisStore({ client: c.client, prefix, syncInterval }),
      threshold,
      onError: (error) => errorsTo.push(error),
    });
    opened.push(online);
    return online;
  }

  it('1. a process that starts while serving requests dates users by their last request, and drops them on time', async () => {
    const prefix = uniquePrefix();
    const a = await tracker(prefix);
    await a.touch({ id: 1, name: 'Ann' });
    const admin = await client();
    await eventually(async () => expect(await admin.command('ZSCORE', `{${prefix}}:users:seen`, '1')).not.to.equal(null));
    // B starts (after Ann's request reached Redis) and serves a page before its first sync: its own newest time is "now".
    const b = await tracker(prefix);
    await b.touch(2);
    await eventually(async () => expect(await b.isOnline(1)).to.equal(true));
    // B dates Ann by her request, as A does, not by when B learnt of her (later than B's own page).
    expect(ms(await b.lastSeen(1)), 'B dates Ann as A does').to.be.closeTo(ms(await a.lastSeen(1)), 1);
    expect(ms(await b.lastSeen(1)), "Ann's request came before B's page").to.be.below(ms(await b.lastSeen(2)));
    // So she goes offline on B a threshold (2 s) after that date, B's own user, who asks another page now, staying.
    // (Without it, B's first page may be within a sync of Ann's request: the replica keeps arrival order within one
    // sync of time order, so Ann would be counted until that page expires too, as docs/redis-and-processes.md says.)
    await synced(a, b); // B has read everything of Ann's it will: nothing of hers arrives after this page
    await b.touch(2);
    await eventually(async () => expect(await b.isOnline(1)).to.equal(false));
    await eventually(async () => expect(await b.count()).to.equal(1));
  });

  it('1b. a process whose Redis connection was down catches up with the right times', async () => {
    const prefix = uniquePrefix();
    const a = await tracker(prefix);
    const bClient = await client();
    const b = await tracker(prefix, { c: bClient });
    await b.touch(2);
    await eventually(async () => expect(await a.isOnline(2)).to.equal(true)); // B has synced
    const nodeRedis = bClient.client as unknown as { disconnect(): Promise<void>; connect(): Promise<unknown> };
    await nodeRedis.disconnect();
    await a.touch(1);
    const admin = await client();
    await eventually(async () => expect(await admin.command('ZSCORE', `{${prefix}}:users:seen`, '1')).not.to.equal(null)); // while B is away
    await b.touch(2); // B keeps serving its own users meanwhile
    await nodeRedis.connect();
    await eventually(async () => expect(await b.isOnline(1)).to.equal(true));
    expect(ms(await b.lastSeen(1)), 'B dates the user by the request, as A does').to.be.closeTo(ms(await a.lastSeen(1)), 1);
    expect(ms(await b.lastSeen(1)), 'the request came before B was back').to.be.below(ms(await b.lastSeen(2)));
    await eventually(async () => expect(await b.isOnline(1)).to.equal(false));
  });

  it('1c. Redis restarted from an older snapshot: every process notices, reads it all, and writes its replica back', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'online-now-rdb-'));
    const server = await RedisServer.start(undefined, ['--dir', dir, '--dbfilename', 'snapshot.rdb']);
    try {
      const admin = await client(server);
      const prefix = uniquePrefix();
      const a = await tracker(prefix, { threshold: 60, c: await client(server) });
      const b = await tracker(prefix, { threshold: 60, c: await client(server) });
      await b.touch({ id: 'z', name: 'Zoe' });
      await eventually(async () => expect(await a.isOnline('z')).to.equal(true));
      await admin.command('SAVE'); // the snapshot Redis will come back with
      for (let i = 0; i < 50; i++) await b.touch(i);
      await eventually(async () => expect(await a.count()).to.equal(51));
      await server.restart(); // same epoch, an older version counter, 50 users fewer
      await eventually(async () => expect(await admin.command('PING')).to.equal('PONG'));
      await b.forget('z');
      await b.touch('new');
      await eventually(async () => {
        for (const [name, t] of [
          ['A', a],
          ['B', b],
        ] as const) {
          expect(await t.isOnline('z'), name).to.equal(false);
          expect(await t.isOnline('new'), name).to.equal(true);
          expect(await t.count(), name).to.equal(51);
        }
        expect(await admin.command('ZCARD', `{${prefix}}:users:seen`)).to.equal(51);
      });
    } finally {
      for (const thing of opened.splice(0).reverse()) await thing.close();
      await server.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('1d. a store attached again after its last tracker closed reads Redis from the start', async () => {
    const prefix = uniquePrefix();
    const c = await client();
    const store = new RedisStore({ client: c.client, prefix, syncInterval: 100 });
    const other = await tracker(prefix);
    for (let i = 0; i < 5; i++) await other.touch(i);
    const first = createOnlineTracker({ store, threshold: 2, onError: (error) => errors.push(error) });
    await eventually(async () => expect(await first.count()).to.equal(5));
    await first.close();
    const second = createOnlineTracker({ store, threshold: 2, onError: (error) => errors.push(error) });
    opened.push(second);
    await eventually(async () => expect(await second.count()).to.equal(5));
  });

  it('2. a write queued while Redis hung keeps its request time: past the threshold it revives nobody', async () => {
    const prefix = uniquePrefix();
    // 4 s: user 9 must stay online from each touch through the checks after it, on a loaded machine too.
    const a = await tracker(prefix, { threshold: 4 });
    const b = await tracker(prefix, { threshold: 4 });
    await a.touch(9);
    await eventually(async () => expect(await b.isOnline(9)).to.equal(true));
    redis.pause();
    await a.touch(1); // the user's only request, while Redis hangs
    expect(await a.isOnline(1)).to.equal(true);
    await eventually(async () => expect(await a.isOnline(1)).to.equal(false)); // past the 4 s threshold
    redis.resume();
    await a.touch(9); // life goes on: a fresh write after the outage (9 had gone offline meanwhile)
    await eventually(async () => expect(await b.isOnline(9)).to.equal(true));
    await synced(a, b); // the write queued during the outage has landed, and both have heard what it did
    for (const t of [a, b]) {
      expect(await t.isOnline(1)).to.equal(false);
      expect(await t.count()).to.equal(1);
    }
  });

  it('3. a logout is not undone by a page served on another process just before it', async () => {
    const prefix = uniquePrefix();
    const a = await tracker(prefix, { threshold: 5, syncInterval: 1000 }); // writes at its next sync, up to 1 s later
    const b = await tracker(prefix, { threshold: 5 });
    await a.touch(1);
    await eventually(async () => expect(await b.isOnline(1)).to.equal(true));
    await a.touch(1); // Y's page on A: queued
    await sleep(50); // the order of the page and the logout is the subject: their times, taken on two processes' estimates of Redis's clock, must not tie
    await b.forget(1); // Y logs out on B: lands at once, before A's write
    await synced(a, b); // A's write has landed since, and both have heard what it did
    for (const [name, t] of [
      ['A', a],
      ['B', b],
    ] as const) {
      expect(await t.isOnline(1), name).to.equal(false);
      expect(await t.count(), name).to.equal(0);
    }
  });

  it('4. a sign-in just after a logout on another process is not lost', async () => {
    const prefix = uniquePrefix();
    const a = await tracker(prefix, { threshold: 5, syncInterval: 1000 });
    const b = await tracker(prefix, { threshold: 5 });
    await a.touch(1);
    await eventually(async () => expect(await b.isOnline(1)).to.equal(true));
    const firstSeen = ms(await a.lastSeen(1));
    await b.forget(1); // X logs out on B…
    await sleep(50); // the order of the logout and the sign-in is the subject: their times, taken on two processes' estimates of Redis's clock, must not tie
    await a.touch(1); // …and signs in again, served by A
    const signedIn = ms(await a.lastSeen(1));
    expect(signedIn).to.be.above(firstSeen);
    await synced(a, b); // past A's next sync
    for (const [name, t] of [
      ['A', a],
      ['B', b],
    ] as const) {
      expect(await t.isOnline(1), name).to.equal(true);
      expect(ms(await t.lastSeen(1)), `${name} dates X by the sign-in`).to.be.closeTo(signedIn, 1);
    }
  });

  it('7. a wall-clock step changes nothing: times stay on Redis’s clock', async () => {
    const prefix = uniquePrefix();
    const realNow = Date.now.bind(Date);
    const admin = await client();
    const redisNowUs = async (): Promise<number> => {
      const [sec, micros] = (await admin.command('TIME')) as string[];
      return Number(sec) * 1e6 + Number(micros);
    };
    const startUs = await redisNowUs();
    const b = await tracker(prefix);
    try {
      // A starts with its clock a minute fast, and serves a page before it has ever reached Redis…
      Date.now = () => realNow() + 60_000;
      const a = await tracker(prefix);
      await a.touch(1);
      // …then, once A has reached Redis, the clock is stepped back two minutes (a minute slow).
      await eventually(async () => expect(await b.isOnline(1)).to.equal(true));
      Date.now = () => realNow() - 60_000;
      await a.touch(2);
      await eventually(async () => expect(await b.count()).to.equal(2));
    } finally {
      Date.now = realNow;
    }
    const endUs = await redisNowUs();
    // On Redis's clock: between the test's start and end there (neither a minute ahead nor behind), in the order
    // they happened though the wall clock went back between them, and dated alike by the process that did not serve them.
    const scores = await Promise.all(['1', '2'].map(async (id) => Number(await admin.command('ZSCORE', `{${prefix}}:users:seen`, id))));
    for (const [i, score] of scores.entries()) {
      expect(score, `user ${i + 1} in Redis`).to.be.within(startUs, endUs);
      expect(ms(await b.lastSeen(i + 1)), `user ${i + 1} on B`).to.be.closeTo(score / 1000, 1);
    }
    expect(scores[0]).to.be.below(scores[1]);
  });

  it('8. trackers sharing a store: closing one leaves the store running for the other, which hears its failures', async () => {
    const prefix = uniquePrefix();
    const c = await client();
    const store = new RedisStore({ client: c.client, prefix, syncInterval: 100 });
    const mine: Error[] = [];
    const first = createOnlineTracker({ store, threshold: 2, onError: () => undefined });
    const second = createOnlineTracker({ store, threshold: 2, onError: (error) => mine.push(error) });
    opened.push(second);
    const other = await tracker(prefix);
    await first.close();
    await second.touch(1);
    await eventually(async () => expect(await other.isOnline(1)).to.equal(true));
    redis.pause();
    await eventually(() => expect(mine.map((e) => e.message).join()).to.match(/RedisStore .*answer/), 4000);
  });

  it('9. keys evicted by Redis (maxmemory with an evicting policy) are detected, reported once, and presence is written back', async () => {
    const server = await RedisServer.start();
    try {
      const admin = await client(server);
      const prefix = uniquePrefix();
      // Each process reports an eviction it detects, once for the life of its store.
      const reported: [Error[], Error[]] = [[], []];
      const evictions = (list: Error[]): Error[] => list.filter((e) => (e as OnlineNowConfigError).code === 'ERR_ONLINE_NOW_REDIS_EVICTED');
      const a = await tracker(prefix, { threshold: 30, c: await client(server), errorsTo: reported[0] });
      const b = await tracker(prefix, { threshold: 30, c: await client(server), errorsTo: reported[1] });
      for (let i = 0; i < 300; i++) await a.touch({ id: i, name: `user ${i}` });
      await eventually(async () => expect(await b.count()).to.equal(300));
      // Presence keys carry a TTL, so volatile-lru picks them first; the junk has none.
      const used = Number(/used_memory:(\d+)/.exec(String(await admin.command('INFO', 'memory')))![1]);
      await admin.command('CONFIG', 'SET', 'maxmemory-policy', 'volatile-lru');
      await admin.command('CONFIG', 'SET', 'maxmemory', String(used + 400_000));
      const junk = 'x'.repeat(1000);
      for (let i = 0; i < 2000; i++) {
        const ok = await admin.command('SET', `junk:${i}`, junk).then(
          () => true,
          () => false,
        );
        if (!ok) break;
      }
      expect(Number(/evicted_keys:(\d+)/.exec(String(await admin.command('INFO', 'stats')))![1])).to.be.above(0);
      // The operator makes room…
      for (let i = 0; i < 2000; i += 500) await admin.command('DEL', ...Array.from({ length: 500 }, (_, j) => `junk:${i + j}`));
      await admin.command('CONFIG', 'SET', 'maxmemory', '0');
      await eventually(() => {
        const evicted = [...evictions(reported[0]), ...evictions(reported[1])];
        expect(evicted.length).to.be.at.least(1);
        expect(evicted[0].message).to.match(/maxmemory-policy noeviction/);
      });
      // …and every process writes its replica back: both agree again, with everyone.
      await eventually(async () => {
        expect(await admin.command('ZCARD', `{${prefix}}:users:seen`)).to.equal(300);
        expect(await b.count()).to.equal(300);
        expect(await a.count()).to.equal(300);
      });
      await synced(a, b); // both have synced since
      // Both may have met an eviction (Redis went on evicting what the first write-back wrote): each says so once.
      for (const [n, list] of reported.entries()) expect(evictions(list), `process ${n}`).to.have.length.at.most(1);
    } finally {
      for (const thing of opened.splice(0).reverse()) await thing.close();
      await server.stop();
    }
  });
});

import { expect } from 'chai';
import { Redis as IORedis } from 'ioredis';
import express from 'express';
import { RedisStore, createOnlineTracker, type OnlineTracker } from 'express-online-now';
import { presenceApp, type LocalsJson } from './helpers/app';
import { CookieBrowser } from './helpers/browser';
import { REDIS_SERVER, RedisServer, connect, freePort, uniquePrefix, type TestClient } from './helpers/redis';
import { requireBinary } from './helpers/requirements';
import { listen, type Listening } from './helpers/server';
import { synced } from './helpers/stores';
import { eventually, sleep } from './helpers/wait';

/**
 * Redis hung, killed, restarted, down at start, or answering errors: pages keep
 * rendering from the last good view, without waiting, errors are reported once
 * per outage, and tracking resumes by itself.
 */
describe('RedisStore when Redis fails', function () {
  this.timeout(60_000);
  let redis: RedisServer;
  let web: Listening;
  let a: OnlineTracker; // serves the HTTP app
  let b: OnlineTracker; // another process's view of the same Redis
  let clients: TestClient[];
  let errors: string[];
  /** What the other process's tracker reported. */
  let otherErrors: string[];
  let prefix: string;

  beforeEach(async function () {
    requireBinary(this, REDIS_SERVER, 'apt-get install -y redis-server');
    redis = await RedisServer.start();
    clients = [await connect('node-redis', redis), await connect('ioredis', redis), await connect('node-redis', redis)];
    errors = [];
    otherErrors = [];
    prefix = uniquePrefix();
    const made = presenceApp(express, {
      store: new RedisStore({ client: clients[0].client, prefix, syncInterval: 100 }),
      onError: (error) => errors.push(error.message),
    });
    a = made.online;
    b = createOnlineTracker({ store: new RedisStore({ client: clients[1].client, prefix, syncInterval: 100 }), onError: (error) => otherErrors.push(error.message) });
    web = await listen(made.app);
  });

  afterEach(async () => {
    redis.resume();
    await web?.close();
    await a?.close();
    await b?.close();
    for (const c of clients ?? []) await c.close();
    await redis?.stop();
  });

  async function signIn(id: number): Promise<CookieBrowser> {
    const browser = new CookieBrowser(web.base);
    await browser.post('/login', { id: String(id), type: 'number' });
    await browser.get('/locals');
    return browser;
  }

  /** A page, and how long it took: presence must never hold it up. */
  async function page(browser: CookieBrowser, ask = '[]'): Promise<LocalsJson & { ms: number }> {
    const started = Date.now();
    const locals = await browser.json<LocalsJson>(`/locals?ask=${ask}`);
    return { ...locals, ms: Date.now() - started };
  }

  it('a store closed just as Redis answers after a pause still sends its last writes (the sync that timed out is waited for)', async () => {
    await eventually(async () => expect(await a.count()).to.equal(0)); // warm
    redis.pause();
    await a.touch(41);
    // The sync carrying it times out (1 s) and stays out: Redis will answer it only once resumed.
    await eventually(() => expect(errors.join()).to.match(/did not answer/), 5000);
    await a.touch(42);
    redis.resume();
    // Closed at once, before the paused sync's answer is read: its last flush must still go out.
    await a.close();
    await eventually(async () => expect((await b.list()).map((e) => String(e.id)).sort()).to.deep.equal(['41', '42']));
  });
  it('hung (SIGSTOP): pages render at once from the last good view; one error; writes land after SIGCONT', async () => {
    const ann = await signIn(1);
    await signIn(2);
    await eventually(async () => expect(await b.count()).to.equal(2));
    await clients[2].command('CONFIG', 'RESETSTAT');

    redis.pause();
    const carl = await signIn(3); // signs in during the outage
    // Pages all along the outage, until the store has given up waiting for Redis (its sync times out after 1 s).
    for (let i = 0; i < 15 || errors.length === 0; i++) {
      const locals = await page(i % 2 ? ann : carl, '[1,2,3]');
      expect(locals.ms, 'page time').to.be.below(1000);
      expect(locals.onlineCount).to.equal(3);
      expect(locals.isOnline).to.deep.equal([true, true, true]);
      await sleep(50); // the pace of the pages, not a wait for anything: Redis is stopped
    }
    // A logout during the outage does not hang either.
    const forgot = await Promise.race([a.forget(2).then(() => 'done'), sleep(1000).then(() => 'hung')]); // a deadline: not answering is the failure
    expect(forgot).to.equal('done');
    expect(errors).to.have.length(1);
    expect(errors[0]).to.match(/RedisStore .*did not answer|has not answered/);

    redis.resume();
    const calls = String(await clients[2].command('INFO', 'commandstats'));
    const evals = [...calls.matchAll(/cmdstat_eval(?:sha)?:calls=(\d+)/g)].reduce((n, m) => n + Number(m[1]), 0);
    // Over a second of 100 ms ticks, two stores: without the one-command-at-a-time rule some 30 would have piled up.
    expect(evals).to.be.at.most(6);

    await eventually(async () => {
      expect(await b.isOnline(3)).to.equal(true);
      expect(await b.isOnline(2)).to.equal(false);
      expect(await b.count()).to.equal(2);
    });
  });

  it('killed, then restarted empty: pages keep rendering; every process writes its replica back, so presence survives', async () => {
    const ann = await signIn(1);
    await signIn(2);
    await eventually(async () => expect(await b.count()).to.equal(2));

    await redis.kill();
    const carl = await signIn(3);
    // Pages all along, until the store has given up: a disconnected client holds our command until the sync times out (1 s).
    for (let i = 0; i < 5 || errors.length === 0; i++) {
      const locals = await page(carl, '[1,3]');
      expect(locals.ms).to.be.below(1000);
      expect(locals.onlineCount).to.equal(3);
      await sleep(50); // the pace of the pages, not a wait for anything: Redis is down
    }
    expect(errors).to.have.length(1);

    await redis.restart(); // same port, no data
    // Clients reconnect; the stores see a new epoch and write their replicas back: nobody who was online is lost.
    await eventually(async () => {
      expect(await b.count()).to.equal(3);
      expect(await b.isOnline(2)).to.equal(true); // seen before the crash, and still within the threshold
      expect(await b.isOnline(3)).to.equal(true); // queued during the outage, written after it
      expect(await clients[2].command('ZCARD', `{${prefix}}:users:seen`)).to.equal(3);
    });
    expect(await a.count()).to.equal(3);
    await page(ann);
    expect(errors).to.have.length(1);
  });

  it('a key of the wrong type: pages render, it is renamed aside and reported once, and presence heals by itself', async () => {
    const ann = await signIn(1);
    await eventually(async () => expect(await b.isOnline(1)).to.equal(true));
    const seen = `{${prefix}}:users:seen`;
    await clients[2].command('SET', seen, 'not a sorted set'); // one command: the sorted set is replaced at once
    // Pages render all along; nobody deletes the key: the store moves it aside (kept for whoever wrote it), says so once, and goes on.
    for (let i = 0; i < 5 || (await clients[2].command('TYPE', seen)) !== 'zset'; i++) {
      const locals = await page(ann, '[1]');
      expect(locals.onlineCount).to.equal(1);
      await sleep(50); // the pace of the pages, while the loop waits for the key to be a sorted set again
    }
    const aside = (await clients[2].command('KEYS', `${seen}:aside:*`)) as string[];
    expect(aside).to.have.length(1);
    expect(await clients[2].command('GET', aside[0])).to.equal('not a sorted set');
    // The store that renamed it (either process: both hit the key) says so once it has; the other, finding the key
    // a sorted set again, renames nothing and says nothing.
    const renamed = (): string[] => [...errors, ...otherErrors].filter((e) => e.includes('renamed'));
    await eventually(() => expect(renamed(), [...errors, ...otherErrors].join('\n')).to.have.length(1));
    expect(renamed()[0]).to.include(seen).and.include('prefix');
    // Ann, online before, was written back; a new user reaches the other process.
    await signIn(5);
    await eventually(async () => {
      expect(await b.isOnline(5)).to.equal(true);
      expect(await b.isOnline(1)).to.equal(true);
    });
    await synced(a, b); // both have synced since
    expect(renamed()).to.have.length(1);
  });

  it('down when the app starts: the first pages render without waiting; tracking starts when Redis comes up', async () => {
    const port = await freePort();
    const client = new IORedis(port, '127.0.0.1', { retryStrategy: () => 100, maxRetriesPerRequest: 1 });
    client.on('error', () => undefined);
    const late: string[] = [];
    const { app, online } = presenceApp(express, {
      store: new RedisStore({ client, prefix, syncInterval: 100 }),
      onError: (error) => late.push(error.message),
    });
    const server = await listen(app);
    let lateRedis: RedisServer | undefined;
    try {
      const browser = new CookieBrowser(server.base);
      await browser.post('/login', { id: '7', type: 'number' });
      const started = Date.now();
      const locals = await browser.json<LocalsJson>('/locals?ask=[7]');
      expect(Date.now() - started).to.be.below(1000);
      expect(locals.onlineCount).to.equal(1); // its own user, at once
      expect(locals.isOnline).to.deep.equal([true]);
      await eventually(() => expect(late.length).to.equal(1));

      lateRedis = await RedisServer.start(port);
      const other = await connect('node-redis', lateRedis);
      clients.push(other);
      const c = createOnlineTracker({ store: new RedisStore({ client: other.client, prefix, syncInterval: 100 }) });
      await eventually(async () => expect(await c.isOnline(7)).to.equal(true));
      await c.close();
    } finally {
      await server.close();
      await online.close();
      client.disconnect();
      await lateRedis?.stop();
    }
  });
});

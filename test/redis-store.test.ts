import { expect } from 'chai';
import { createClient } from 'redis';
import { Redis as IORedis } from 'ioredis';
import { OnlineNowConfigError, RedisStore, createOnlineTracker, type OnlineTracker } from 'express-online-now';
import { REDIS_SERVER, clientKinds, connect, sharedRedis, uniquePrefix, type RedisServer, type TestClient } from './helpers/redis';
import { requireBinary } from './helpers/requirements';
import { eventually } from './helpers/wait';

/** How long a bulk write or first read (tens of thousands of users) may take to land, on a loaded machine. */
const BULK_MS = 100_000;

/** `INFO commandstats` as { command: calls }. */
async function commandCalls(client: TestClient): Promise<Record<string, number>> {
  const info = String(await client.command('INFO', 'commandstats'));
  const calls: Record<string, number> = {};
  for (const m of info.matchAll(/^cmdstat_([a-z|]+):calls=(\d+)/gm)) calls[m[1]] = Number(m[2]);
  return calls;
}

describe('RedisStore', function () {
  this.timeout(120_000); // tens of thousands of users written and read: minutes on a loaded machine
  let server: RedisServer;
  const opened: { close(): Promise<unknown> }[] = [];

  before(async function () {
    requireBinary(this, REDIS_SERVER, 'apt-get install -y redis-server');
    server = await sharedRedis();
  });
  afterEach(async () => {
    for (const thing of opened.splice(0).reverse()) await thing.close();
  });

  async function client(kind: (typeof clientKinds)[number] = 'node-redis'): Promise<TestClient> {
    const c = await connect(kind, server);
    opened.push(c);
    return c;
  }

  /** A tracker on its own client: to Redis, as separate as another process. */
  async function tracker(prefix: string, options: Record<string, unknown> = {}, kind: (typeof clientKinds)[number] = 'node-redis') {
    const c = await client(kind);
    const { syncInterval = 50, ...rest } = options;
    const store = new RedisStore({ client: c.client, prefix, syncInterval: syncInterval as number });
    const online: OnlineTracker = createOnlineTracker({ store, ...rest });
    opened.push(online);
    return { online, store, client: c };
  }

  describe('configuration', () => {
    it('rejects a missing client, a client that is not a Redis client, and a bad prefix', () => {
      expect(() => new RedisStore(undefined as never)).to.throw(TypeError, /needs a connected Redis client/);
      expect(() => new RedisStore({ client: {} as never })).to.throw(TypeError, /node-redis client .* or an ioredis client/);
      expect(() => new RedisStore({ client: { get() {} } as never })).to.throw(OnlineNowConfigError);
    });

    it('rejects a node-redis client that was never connected, naming the fix', () => {
      const unconnected = createClient({ url: server.url });
      expect(() => new RedisStore({ client: unconnected })).to.throw(TypeError, /await client\.connect\(\)/);
    });

    it('rejects an ioredis client left in lazyConnect, naming the fix', async () => {
      const lazy = new IORedis(server.port, '127.0.0.1', { lazyConnect: true });
      try {
        expect(() => new RedisStore({ client: lazy })).to.throw(TypeError, /lazyConnect/);
      } finally {
        lazy.disconnect();
      }
    });

    it('rejects a prefix with braces, and a syncInterval that is not well under the threshold, naming the fix', async () => {
      const c = await client();
      expect(() => new RedisStore({ client: c.client, prefix: '{x}' })).to.throw(TypeError, /"prefix"/);
      expect(() => new RedisStore({ client: c.client, syncInterval: 0 })).to.throw(TypeError, /"syncInterval"/);
      const store = new RedisStore({ client: c.client, prefix: uniquePrefix(), syncInterval: 10_000 });
      expect(() => createOnlineTracker({ store, threshold: 30 })).to.throw(
        TypeError,
        /"syncInterval" \(10000 ms\) must be at most a quarter of the tracker's threshold \(30000 ms\).*\{ syncInterval: 7500 \}/,
      );
      opened.push(createOnlineTracker({ store, threshold: 40 }));
    });
  });

  for (const kind of clientKinds) {
    describe(`shared presence (${kind})`, () => {
      it('no update is lost: four trackers writing 250 users each at once all see 1,000', async () => {
        const prefix = uniquePrefix();
        const trackers = await Promise.all([0, 1, 2, 3].map(() => tracker(prefix, {}, kind)));
        await Promise.all(trackers.flatMap(({ online }, t) => Array.from({ length: 250 }, (_, i) => online.touch(t * 250 + i + 1))));
        await eventually(async () => {
          for (const { online } of trackers) {
            expect(await online.count()).to.equal(1000);
            expect(await online.isOnline(1)).to.equal(true);
            expect(await online.isOnline(1000)).to.equal(true);
          }
        });
        const admin = trackers[0].client;
        expect(await admin.command('ZCARD', `{${prefix}}:users:seen`)).to.equal(1000);
      });

      it('keeps each id’s type and profile across processes, and only the profile', async () => {
        const prefix = uniquePrefix();
        const a = await tracker(prefix, {}, kind);
        const b = await tracker(prefix, {}, kind);
        await a.online.touch({ id: 42, name: 'Ann', password: 'secret' });
        await a.online.touch({ id: 'abc', username: 'bob' });
        await eventually(async () => expect((await b.online.list()).map((e) => e.id)).to.deep.equal(['abc', 42]));
        const entries = await b.online.list();
        expect(entries[1]).to.deep.include({ id: 42, name: 'Ann' });
        expect(entries[1]).not.to.have.property('password');
        expect(entries[1].lastSeen).to.be.instanceOf(Date);
        expect(await b.online.isOnline('42')).to.equal(true);
      });

      it('a new process reads every user in large chunks (ties across a chunk’s edge too) and agrees with Redis, hidden users and profiles included', async () => {
        const prefix = uniquePrefix();
        const seen = `{${prefix}}:users:seen`;
        const a = await tracker(prefix, {}, kind);
        const n = 45_000; // over two chunks of 20,000
        for (let i = 1; i <= n; i++) a.store.touch('users', String(i), i, i % 1000 === 0 ? { username: `u${i}`, hidden: true } : { username: `u${i}` });
        await eventually(async () => expect(Number(await a.client.command('ZCARD', seen))).to.equal(n), BULK_MS);
        // 50 users on each side of both chunk edges get one time: a chunk ends inside a tie.
        for (const edge of [20_000, 40_000]) {
          const rows = (await a.client.command('ZRANGE', seen, String(edge - 50), String(edge + 49), 'WITHSCORES')) as string[];
          const args = rows.filter((_, i) => i % 2 === 0).flatMap((key) => [rows[1], key]);
          await a.client.command('ZADD', seen, ...args);
        }
        const inRedis = (await a.client.command('ZRANGE', seen, '0', '-1', 'WITHSCORES')) as string[];
        const b = await tracker(prefix, {}, kind);
        // A page served while b reads everyone: every user it then reads is older than this one.
        b.store.touch('users', 'early', 'early', { username: 'early' });
        let view = await b.store.view('users', 50, { seesHidden: true });
        await eventually(async () => {
          view = await b.store.view('users', 50, { seesHidden: true });
          expect([view.count, view.hidden]).to.deep.equal([n - 45 + 1, 45]);
        }, BULK_MS);
        for (let i = 0; i < inRedis.length; i += 2) {
          if (view.lastSeen(inRedis[i]) !== Number(inRedis[i + 1]) / 1000)
            expect.fail(`user ${inRedis[i]}: ${view.lastSeen(inRedis[i])} in the new process, ${inRedis[i + 1]} µs in Redis`);
        }
        // The 50 most recent, with their profiles, as the writing process lists them. Users seen in the same µs
        // come in any order, so where the 50th shares its µs with others, either process may list any of them.
        await eventually(async () => expect((await a.store.view('users', 0)).lastSeen('early'), "the writer has b's early visitor too").not.to.equal(null));
        view = await b.store.view('users', 50, { seesHidden: true });
        const writer = await a.store.view('users', 50, { seesHidden: true });
        const us = (v: typeof view, id: unknown): number => Math.round((v.lastSeen(String(id)) as number) * 1000);
        expect(view.entries.map((e) => us(view, e.id))).to.deep.equal(writer.entries.map((e) => us(writer, e.id)));
        const cut = us(view, view.entries[49].id);
        const listed = (v: typeof view): string[] =>
          v.entries
            .filter((e) => us(v, e.id) > cut)
            .map((e) => JSON.stringify([us(v, e.id), e.id, e.username, e.hidden]))
            .sort();
        expect(listed(view)).to.deep.equal(listed(writer));
        for (const e of view.entries.filter((x) => us(view, x.id) === cut)) expect(us(writer, e.id), `user ${String(e.id)} at the cut`).to.equal(cut);
        expect(view.entries.some((e) => e.hidden === true)).to.equal(true);
        expect(view.entries.map((e) => typeof e.id)).to.deep.equal(['string', ...Array<string>(49).fill('number')]); // 'early', then ids that were numbers
        // A guest's view leaves the hidden out, in the new process too.
        expect((await b.store.view('users', 50)).entries.some((e) => e.hidden === true)).to.equal(false);
      });

      it('a new process reads every user when more than a chunk of them share one µs', async () => {
        const prefix = uniquePrefix();
        const seen = `{${prefix}}:users:seen`;
        const a = await tracker(prefix, {}, kind);
        const n = 20_100;
        for (let i = 1; i <= n; i++) a.store.touch('users', String(i), i, undefined);
        await eventually(async () => expect(Number(await a.client.command('ZCARD', seen))).to.equal(n), BULK_MS);
        const rows = (await a.client.command('ZRANGE', seen, '0', '-1', 'WITHSCORES')) as string[];
        await a.client.command('ZADD', seen, ...rows.slice(0, -20).flatMap((key, i) => (i % 2 === 0 ? [rows[1], key] : []))); // all but the last 10 at one time
        const b = await tracker(prefix, {}, kind);
        await eventually(async () => expect((await b.store.view('users', 0)).count).to.equal(n), BULK_MS);
        expect((await b.store.view('users', 0)).lastSeen(String(n))).not.to.equal(null);
      });

      it('a new process misses no logout or sign-in made while it reads everyone', async () => {
        const prefix = uniquePrefix();
        const seen = `{${prefix}}:users:seen`;
        const a = await tracker(prefix, {}, kind);
        const n = 30_000;
        for (let i = 1; i <= n; i++) a.store.touch('users', String(i), i, { username: `u${i}` });
        await eventually(async () => expect(Number(await a.client.command('ZCARD', seen))).to.equal(n), BULK_MS);
        const b = await tracker(prefix, {}, kind);
        // While b reads: 300 logouts spread over the oldest and newest, 300 new users.
        await Promise.all([
          ...Array.from({ length: 150 }, (_, i) => a.store.forget('users', String(i + 1))),
          ...Array.from({ length: 150 }, (_, i) => a.store.forget('users', String(n - i))),
        ]);
        for (let i = n + 1; i <= n + 300; i++) a.store.touch('users', String(i), i, { username: `u${i}` });
        // The count is n before the changes too: b has converged when the logouts and sign-ins all show.
        await eventually(async () => {
          const view = await b.store.view('users', 0);
          expect(view.count).to.equal(n);
          for (const gone of [1, 150, n - 149, n]) expect(view.lastSeen(String(gone)), `user ${gone}`).to.equal(null);
          for (const there of [151, n - 150, n + 1, n + 300]) expect(view.lastSeen(String(there)), `user ${there}`).not.to.equal(null);
        }, BULK_MS);
      });

      it('a store closed and attached again while it reads everyone reads everyone again', async () => {
        const prefix = uniquePrefix();
        const seen = `{${prefix}}:users:seen`;
        const a = await tracker(prefix, {}, kind);
        const n = 60_000; // three chunks
        for (let i = 1; i <= n; i++) a.store.touch('users', String(i), i, { username: `u${i}` });
        await eventually(async () => expect(Number(await a.client.command('ZCARD', seen))).to.equal(n), BULK_MS);
        const b = await tracker(prefix, {}, kind);
        // Its replica, looked at directly: pages would wait for the first read, and this must act during it.
        const replica = (): { has(key: string): boolean } | undefined => (b.store as unknown as { replica?: { indexes: { has(key: string): boolean }[] } }).replica?.indexes[0];
        while (replica()?.has('25000') !== true) await new Promise(setImmediate);
        const closing = b.online.close();
        const errors: unknown[] = [];
        const again = createOnlineTracker({ store: b.store, onError: (error) => errors.push(error) });
        opened.push(again);
        await closing;
        await eventually(async () => expect((await b.store.view('users', 0)).count).to.equal(n), BULK_MS);
        expect((await b.store.view('users', 1)).entries[0]).to.deep.include({ id: n, username: `u${n}` });
        // The first read left behind waits for its own command: the new replica's syncs find Redis free.
        expect(errors.map(String)).to.deep.equal([]);
      });

      it('forget in one process takes the user offline in another within syncInterval', async () => {
        const prefix = uniquePrefix();
        const a = await tracker(prefix, {}, kind);
        const b = await tracker(prefix, {}, kind);
        await a.online.touch(1);
        await a.online.touch(2);
        await eventually(async () => expect(await b.online.isOnline(1)).to.equal(true));
        await a.online.forget(1);
        expect(await a.online.isOnline(1)).to.equal(false);
        await eventually(async () => expect(await b.online.isOnline(1)).to.equal(false));
        expect(await b.online.count()).to.equal(1);
      });
    });
  }

  it('removes expired users from Redis, so its memory follows the users online', async () => {
    const prefix = uniquePrefix();
    const { online, client: c } = await tracker(prefix, { threshold: 0.3 });
    for (let i = 0; i < 100; i++) await online.touch({ id: i, name: `user ${i}` });
    await eventually(async () => {
      expect(await c.command('ZCARD', `{${prefix}}:users:seen`)).to.equal(100);
      expect(await c.command('HLEN', `{${prefix}}:users:profiles`)).to.equal(100);
    });
    // Expiry runs on Redis's clock, which a test cannot set: wait for the 0.3 s threshold to pass there.
    await eventually(async () => {
      expect(await online.count()).to.equal(0);
      expect(await c.command('ZCARD', `{${prefix}}:users:seen`)).to.equal(0);
      expect(await c.command('HLEN', `{${prefix}}:users:profiles`)).to.equal(0);
    });
    // What is left is the small meta hash (epoch, change counter, the record), which never expires.
    expect(await c.command('KEYS', `*${prefix}*`)).to.deep.equal([`{${prefix}}:meta`]);
    expect(Number(await c.command('HLEN', `{${prefix}}:meta`))).to.be.at.most(10);
  });

  it('keeps every key under one hash tag, so the script runs on Redis Cluster', async () => {
    const prefix = uniquePrefix();
    const { online, client: c } = await tracker(prefix, { trackGuests: true });
    await online.touch({ id: 1, name: 'One' });
    await online.touch({ id: 2, name: 'Two' });
    await eventually(async () => expect(await c.command('ZCARD', `{${prefix}}:users:seen`)).to.equal(2));
    await online.forget(1);
    await eventually(async () => {
      const keys = (await c.command('KEYS', `*${prefix}*`)) as string[];
      for (const k of ['meta', 'users:changes', 'users:gone', 'users:profiles', 'users:seen']) expect(keys).to.include(`{${prefix}}:${k}`);
      for (const key of keys) expect(key.startsWith(`{${prefix}}:`), key).to.equal(true);
    });
  });

  it('a page costs no Redis command at steady state: writes wait for the next sync', async () => {
    const prefix = uniquePrefix();
    const { online, client: c } = await tracker(prefix, { syncInterval: 60_000 });
    await online.count(); // the first sync, at start
    await c.command('CONFIG', 'RESETSTAT');
    const middleware = online.middleware();
    for (let i = 0; i < 500; i++) {
      const res = { locals: {} as Record<string, unknown> };
      await new Promise<void>((done) => middleware({ headers: {}, session: { user: { id: i % 20, name: `u${i % 20}` } } }, res, () => done()));
      expect(res.locals.onlineCount).to.equal(Math.min(i + 1, 20));
    }
    const calls = await commandCalls(c);
    delete calls['config|resetstat'];
    delete calls.info;
    expect(calls).to.deep.equal({});
  });
});

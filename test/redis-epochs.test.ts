import { expect } from 'chai';
import { mkdtempSync, renameSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { RedisStore, createOnlineTracker, type OnlineRecord, type OnlineTracker } from 'express-online-now';
import { REDIS_SERVER, RedisServer, connect, uniquePrefix, type TestClient } from './helpers/redis';
import { requireBinary } from './helpers/requirements';
import { synced } from './helpers/stores';
import { eventually, sleep } from './helpers/wait';
import { TcpProxy } from './helpers/tcp-proxy';

/**
 * What is built on presence, through what a Redis deployment meets (issue #21):
 * Redis back from an older snapshot or a lagging replica, a reply that comes
 * too late, Redis restarted empty, a process cut off, a flood of users, a
 * profile at its bounds. Two trackers on their own connections stand for two
 * processes (test/redis-model.test.ts runs real ones, at random).
 */

interface User {
  id: number;
  name: string;
  invisible?: boolean;
}

interface Hooks {
  seen: { id: number; at: Date }[];
  records: OnlineRecord[];
  errors: Error[];
}

describe('RedisStore: the record, onSeen and invisible mode through snapshots, late replies, restarts and partitions', function () {
  this.timeout(60_000);
  const opened: { close(): Promise<unknown> }[] = [];
  /** Closed first: a client cut off by its proxy would wait for ever to quit. */
  const proxies: TcpProxy[] = [];
  const servers: RedisServer[] = [];
  const dirs: string[] = [];

  before(function () {
    requireBinary(this, REDIS_SERVER, 'apt-get install -y redis-server');
  });
  afterEach(async () => {
    for (const proxy of proxies) {
      proxy.delayReplies(0);
      proxy.heal();
    }
    for (const thing of opened.splice(0).reverse()) await thing.close();
    for (const proxy of proxies.splice(0)) await proxy.close();
    for (const server of servers.splice(0)) {
      server.resume();
      await server.stop();
    }
    for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
  });

  async function redis(args: string[] = []): Promise<RedisServer> {
    const server = await RedisServer.start(undefined, args);
    servers.push(server);
    return server;
  }

  async function client(port: number): Promise<TestClient> {
    const c = await connect('node-redis', { url: `redis://127.0.0.1:${port}`, port } as RedisServer);
    opened.push(c);
    return c;
  }

  async function proxyTo(port: number): Promise<TcpProxy> {
    const proxy = await TcpProxy.start(port);
    proxies.push(proxy);
    return proxy;
  }

  /** One "process": a tracker on its own connection to `port`, its hooks counted. */
  async function process_(port: number, prefix: string, options: Record<string, unknown> = {}): Promise<{ online: OnlineTracker<User>; hooks: Hooks }> {
    const hooks: Hooks = { seen: [], records: [], errors: [] };
    const c = await client(port);
    const { syncInterval = 100, ...rest } = options;
    const online = createOnlineTracker<User>({
      store: new RedisStore({ client: c.client, prefix, syncInterval: syncInterval as number }),
      threshold: 30,
      onSeen: (user, at) => void hooks.seen.push({ id: Number(user.id), at }),
      onRecord: (record) => void hooks.records.push({ count: record.count, at: record.at }),
      onError: (error) => void hooks.errors.push(error),
      hidden: (user) => user.invisible === true,
      ...rest,
    });
    opened.push(online);
    return { online, hooks };
  }

  const user = (id: number, invisible = false): User => ({ id, name: `User ${id}`, invisible });
  const ids = async (online: OnlineTracker<User>): Promise<number[]> => (await online.list(50)).map((e) => Number(e.id)).sort((a, b) => a - b);

  /**
   * For `ms`, every few ms, neither process lists or counts a signed-out user,
   * nor shows a record above the true maximum; then both settle on `expected`.
   */
  async function watch(procs: { online: OnlineTracker<User>; hooks: Hooks }[], gone: number[], trueMax: number, expected: number[], ms = 3000): Promise<number> {
    let looks = 0;
    for (const end = Date.now() + ms; Date.now() < end; looks++) {
      for (const [n, { online }] of procs.entries()) {
        const listed = await ids(online);
        const ghosts = listed.filter((id) => gone.includes(id));
        expect(ghosts, `process ${n} lists users who signed out (look ${looks})`).to.deep.equal([]);
        expect(await online.count(), `process ${n} counts more than are online (look ${looks})`).to.be.at.most(expected.length);
        expect(online.record().count, `process ${n}'s record`).to.be.at.most(trueMax);
      }
      await sleep(10); // the pace of the looks: the whole window of `ms` is watched, not a condition awaited
    }
    for (const [n, { online, hooks }] of procs.entries()) {
      await eventually(async () => expect(await ids(online), `process ${n}`).to.deep.equal(expected));
      expect(
        hooks.records.map((r) => r.count).filter((c) => c > trueMax),
        `process ${n}'s onRecord`,
      ).to.deep.equal([]);
    }
    return looks;
  }

  /** Ten users online (five on each process, record 10), then four sign out and three sign in: nine online, the record still 10. */
  async function tenThenNine(a: { online: OnlineTracker<User> }, b: { online: OnlineTracker<User> }, between: () => Promise<void>): Promise<void> {
    for (let id = 1; id <= 10; id++) await (id <= 5 ? a : b).online.touch(user(id));
    await eventually(async () => {
      expect(await a.online.count()).to.equal(10);
      expect(await b.online.count()).to.equal(10);
      expect(a.online.record().count).to.equal(10);
    });
    await between();
    for (const id of [1, 2]) await a.online.forget(id);
    for (const id of [6, 7]) await b.online.forget(id);
    for (const id of [11, 12, 13]) await (id % 2 === 0 ? a : b).online.touch(user(id));
    await eventually(async () => {
      expect(await ids(a.online)).to.deep.equal([3, 4, 5, 8, 9, 10, 11, 12, 13]);
      expect(await ids(b.online)).to.deep.equal([3, 4, 5, 8, 9, 10, 11, 12, 13]);
    });
  }

  const NINE = [3, 4, 5, 8, 9, 10, 11, 12, 13];
  const GONE = [1, 2, 6, 7];

  it('1. Redis restarted from an older snapshot: no signed-out user shows again, and the record is not raised from it', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'online-now-rdb-'));
    dirs.push(dir);
    const server = await redis(['--dir', dir, '--dbfilename', 'presence.rdb']);
    const admin = await client(server.port);
    const prefix = uniquePrefix();
    const a = await process_(server.port, prefix);
    const b = await process_(server.port, prefix);
    // The snapshot holds the ten; then four leave and three come, and Redis is killed before it saves again.
    await tenThenNine(a, b, async () => {
      await admin.command('SAVE');
    });
    await synced(a.online, b.online);
    await server.restart(); // SIGKILL, then a start that loads the 10-user snapshot
    const looks = await watch([a, b], GONE, 10, NINE);
    expect(looks).to.be.above(50);
    const redisNow = await client(server.port);
    expect((await redisNow.command('ZRANGE', `{${prefix}}:users:seen`, '0', '-1')) as string[]).to.have.members(NINE.map(String));
    expect(a.online.record().count).to.equal(10);
  });

  it('1. a failover to a replica that lagged: no signed-out user shows again, the record stays true, nobody online is lost', async () => {
    const master = await redis();
    const replica = await redis(['--replicaof', '127.0.0.1', String(master.port)]);
    const replicaAdmin = await client(replica.port);
    await eventually(async () => expect(String(await replicaAdmin.command('INFO', 'replication'))).to.match(/master_link_status:up/));
    const proxy = await proxyTo(master.port);
    const prefix = uniquePrefix();
    const a = await process_(proxy.port, prefix);
    const b = await process_(proxy.port, prefix);
    await tenThenNine(a, b, async () => {
      await eventually(async () => expect(await replicaAdmin.command('ZCARD', `{${prefix}}:users:seen`)).to.equal(10)); // the replica has the ten
      replica.pause(); // and lags from here on
    });
    await master.stop();
    replica.resume();
    await replicaAdmin.command('REPLICAOF', 'NO', 'ONE');
    proxy.retarget(replica.port);
    await watch([a, b], GONE, 10, NINE, 4000);
    expect((await replicaAdmin.command('ZRANGE', `{${prefix}}:users:seen`, '0', '-1')) as string[]).to.have.members(NINE.map(String));
  });

  it('1. Redis back on a snapshot saved before the epoch the processes know (taken just ahead of a restart): nobody signed out shows again, nobody is reported again', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'online-now-rdb-'));
    dirs.push(dir);
    const rdb = path.join(dir, 'presence.rdb');
    const server = await redis(['--dir', dir, '--dbfilename', 'presence.rdb', '--save', '']);
    const admin = await client(server.port);
    const prefix = uniquePrefix();
    const a = await process_(server.port, prefix);
    const b = await process_(server.port, prefix);
    const seenIds = (): number[] => [...a.hooks.seen, ...b.hooks.seen].map((s) => s.id).sort((x, y) => x - y);
    for (let id = 1; id <= 10; id++) await (id <= 5 ? a : b).online.touch(user(id));
    await eventually(() => expect(seenIds()).to.deep.equal([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]));
    // The snapshot holds the ten, in the epoch they were seen in; then Redis restarts empty, and a new one begins.
    await admin.command('SAVE');
    const old = path.join(dir, 'old.rdb');
    renameSync(rdb, old);
    await server.restart();
    await synced(a.online, b.online);
    for (const id of [1, 2]) await a.online.forget(id);
    for (const id of [6, 7]) await b.online.forget(id);
    for (const id of [11, 12, 13]) await (id % 2 === 0 ? a : b).online.touch(user(id));
    // Each reported once, and the four who signed out once more (onSeen on logout).
    const reportedOnce = [...Array.from({ length: 13 }, (_, i) => i + 1), ...GONE].sort((x, y) => x - y);
    await eventually(async () => {
      expect(await ids(a.online)).to.deep.equal(NINE);
      expect(await ids(b.online)).to.deep.equal(NINE);
      expect(seenIds()).to.deep.equal(reportedOnce);
    });
    // Redis comes back on the old snapshot: an epoch older than the one both processes know.
    renameSync(old, rdb);
    await server.restart();
    await watch([a, b], GONE, 10, NINE);
    await synced(a.online, b.online);
    expect(seenIds()).to.deep.equal(reportedOnce);
  });

  it('2. a reply that comes after the timeout: its onSeen and onRecord are still delivered, once', async () => {
    const server = await redis();
    const proxy = await proxyTo(server.port);
    const prefix = uniquePrefix();
    const a = await process_(proxy.port, prefix);
    const b = await process_(server.port, prefix);
    await b.online.touch(user(1));
    await eventually(() => expect(b.hooks.seen.map((s) => s.id)).to.deep.equal([1]));
    await eventually(async () => expect(await a.online.count()).to.equal(1));
    // A first-time visitor on a, whose sync reply (which assigns a the report and the raise to 2) comes 1.5 s late.
    proxy.delayReplies(1500);
    await a.online.touch(user(2));
    await eventually(() => expect(a.hooks.errors.map((e) => e.message).join()).to.match(/did not answer within 1000 ms/));
    proxy.delayReplies(0);
    await eventually(() => {
      expect(a.hooks.seen.map((s) => s.id)).to.deep.equal([2]);
      expect(a.hooks.records.map((r) => r.count)).to.deep.equal([2]);
    });
    // Acknowledged: never again, on either process.
    await synced(a.online, b.online);
    await synced(a.online, b.online);
    expect(a.hooks.seen.map((s) => s.id)).to.deep.equal([2]);
    expect(b.hooks.seen.map((s) => s.id)).to.deep.equal([1]);
    // b raised the record to 1 with the first user; a, to 2: each heard of its raise once.
    expect(b.hooks.records.map((r) => r.count)).to.deep.equal([1]);
    expect(a.hooks.records.map((r) => r.count)).to.deep.equal([2]);
  });

  it('2. a process that dies holding reports it never delivered: another process delivers them after the lease', async () => {
    const server = await redis();
    const proxy = await proxyTo(server.port);
    const prefix = uniquePrefix();
    // seenInterval 2 s: the lease (a process silent that long, and 5 s at least, is gone) is 5 s.
    const a = await process_(proxy.port, prefix, { seenInterval: 2 });
    const b = await process_(server.port, prefix, { seenInterval: 2 });
    await synced(a.online, b.online);
    proxy.delayReplies(60_000); // a's replies never arrive from here on
    await a.online.touch(user(5));
    // The touch reaches Redis (at once, or once a gives up a call whose reply is held), which assigns a the report.
    await eventually(async () => expect(await b.online.isOnline(5)).to.equal(true), 15_000);
    proxy.partition(); // and a is heard no more: gone, as far as Redis can tell
    expect(b.hooks.seen).to.deep.equal([]); // not before the lease: a might still deliver it
    await eventually(() => expect(b.hooks.seen.map((s) => s.id)).to.deep.equal([5]), 15_000);
    expect(a.hooks.seen).to.deep.equal([]);
  });

  it('3. Redis restarted empty: users it had reported are not reported again within seenInterval; new users are, once', async () => {
    const server = await redis();
    const prefix = uniquePrefix();
    const a = await process_(server.port, prefix);
    const b = await process_(server.port, prefix);
    const users = Array.from({ length: 30 }, (_, i) => i + 1);
    for (const id of users) await (id % 2 === 0 ? a : b).online.touch(user(id));
    const seenIds = (): number[] => [...a.hooks.seen, ...b.hooks.seen].map((s) => s.id).sort((x, y) => x - y);
    await eventually(() => expect(seenIds()).to.deep.equal(users));
    await server.restart();
    // Everyone keeps browsing, on either process, for 5 s after the restart; two new users arrive.
    for (const end = Date.now() + 5000; Date.now() < end;) {
      for (const id of users.slice(0, 10)) await (Math.random() < 0.5 ? a : b).online.touch(user(id));
      await sleep(100); // the pace of the browsing, which goes on for 5 s: its length is the subject
    }
    await a.online.touch(user(31));
    await b.online.touch(user(32));
    await eventually(() => expect(seenIds()).to.deep.equal([...users, 31, 32]));
    await synced(a.online, b.online);
    await synced(a.online, b.online);
    expect(seenIds()).to.deep.equal([...users, 31, 32]);
    expect(await a.online.count()).to.equal(32);
  });

  it('4. a hidden user idle past the threshold, or signed out, stays hidden after a bare touch(id), on every process', async () => {
    const server = await redis();
    const prefix = uniquePrefix();
    // 3 s: every check after a touch must run within the threshold, on a loaded machine too; the idle wait is the price.
    const a = await process_(server.port, prefix, { threshold: 3, syncInterval: 100 });
    const b = await process_(server.port, prefix, { threshold: 3, syncInterval: 100 });
    await a.online.touch(user(1, true));
    await a.online.touch(user(2, true));
    await eventually(async () => expect((await b.online.counts()).hidden).to.equal(2));
    await b.online.forget(2);
    // 1 is idle past the threshold, 2 signed out.
    for (const { online } of [a, b]) await eventually(async () => expect((await online.counts()).hidden).to.equal(0));
    // A websocket message: the id alone, on the other process.
    await b.online.touch(1);
    await a.online.touch(2);
    for (const { online } of [a, b]) {
      await eventually(async () => expect((await online.counts()).hidden).to.equal(2));
      expect(await ids(online)).to.deep.equal([]);
      expect(await online.isOnline(1)).to.equal(false);
      expect(await online.isOnline(2)).to.equal(false);
      expect((await online.list(50, { hidden: true })).map((e) => [e.id, e.hidden])).to.have.deep.members([
        [1, true],
        [2, true],
      ]);
    }
    // A request that unhides (on a) wins over a bare touch racing it (on b).
    await a.online.touch(user(1, false));
    await b.online.touch(1);
    for (const { online } of [a, b]) await eventually(async () => expect(await ids(online)).to.deep.equal([1]));
  });

  it('4. one who hides and signs out before their process syncs stays hidden after a bare touch(id) elsewhere; one who unhides and signs out comes back visible', async () => {
    const server = await redis();
    const prefix = uniquePrefix();
    // a syncs at a logout (at once) or when asked: a profile and the logout after it reach Redis in one call.
    const a = await process_(server.port, prefix, { syncInterval: 60_000, threshold: 300 });
    const b = await process_(server.port, prefix, { threshold: 300 });
    const store = a.online.store as RedisStore;
    await a.online.touch(user(1, false));
    await store.confirm();
    await eventually(async () => expect(await ids(b.online)).to.deep.equal([1]));
    // Hides, and signs out a moment later, on a.
    await a.online.touch(user(1, true));
    await a.online.forget(1);
    await eventually(async () => expect(await b.online.counts()).to.include({ users: 0, hidden: 0 }));
    // A websocket message for them on b: the id alone (in Redis once b has synced; a reads it when asked).
    const bStore = b.online.store as RedisStore;
    await b.online.touch(1);
    await bStore.confirm();
    await store.confirm();
    for (const { online } of [a, b]) {
      await eventually(async () => expect((await online.counts()).hidden).to.equal(1));
      expect(await online.isOnline(1)).to.equal(false);
    }
    // Unhides, and signs out a moment later: a bare touch brings them back visible, though b remembers them hidden.
    await a.online.touch(user(1, false));
    await a.online.forget(1);
    await eventually(async () => expect(await b.online.counts()).to.include({ users: 0, hidden: 0 }));
    await b.online.touch(1);
    await bStore.confirm();
    await store.confirm();
    for (const { online } of [a, b]) await eventually(async () => expect(await ids(online)).to.deep.equal([1]));
  });

  it('5. a process cut off from Redis stops listing users it knows only from others (one may have hidden), and says so once', async () => {
    const server = await redis();
    const proxy = await proxyTo(server.port);
    const prefix = uniquePrefix();
    const a = await process_(proxy.port, prefix);
    const b = await process_(server.port, prefix);
    await b.online.touch(user(1));
    await a.online.touch(user(2));
    await eventually(async () => {
      expect(await ids(a.online)).to.deep.equal([1, 2]);
      expect(await ids(b.online)).to.deep.equal([1, 2]);
    });
    await synced(a.online, b.online); // a has had replies since it sent 2: it knows 2 only as Redis does
    proxy.partition();
    await b.online.touch(user(1, true)); // 1 hides, where a cannot hear of it
    // Past the bound (3 syncIntervals, and 3 s at least), a lists none of those it knows only from others.
    await eventually(async () => expect(await ids(a.online)).to.deep.equal([]), 10_000);
    await a.online.touch(user(3)); // seen here since: a knows its visibility
    expect(await ids(a.online)).to.deep.equal([3]);
    expect(await a.online.isOnline(1)).to.equal(false);
    expect(await a.online.isOnline(2)).to.equal(false);
    // Staff see everyone a knows, and counts go on counting them.
    expect((await a.online.list(50, { hidden: true })).map((e) => Number(e.id)).sort()).to.deep.equal([1, 2, 3]);
    expect(await a.online.count()).to.equal(3);
    const stale = a.hooks.errors.filter((e) => (e as { code?: string }).code === 'ERR_ONLINE_NOW_REDIS_STALE');
    expect(stale).to.have.length(1);
    expect(stale[0].message).to.match(/withhold/);
    proxy.heal();
    await eventually(async () => expect(await ids(a.online)).to.deep.equal([2, 3]));
    expect(await a.online.isOnline(1)).to.equal(false);
  });

  it('6. `reported` and every other key stay within maxTracked, and leave with the users', async () => {
    const server = await redis();
    const admin = await client(server.port);
    const prefix = uniquePrefix();
    // Three processes, each keeping at most 1,000 users, with onSeen on: 10,000 users among them.
    const capped = await Promise.all(
      [0, 1, 2].map(async () => {
        const c = await client(server.port);
        const online = createOnlineTracker({
          store: new RedisStore({ client: c.client, prefix, syncInterval: 100, maxTracked: 1000 }),
          threshold: 2,
          onSeen: () => undefined,
        });
        opened.push(online);
        return online;
      }),
    );
    for (let id = 0; id < 10_000; id++) await capped[id % 3].touch(id);
    const sizes = async (): Promise<Record<string, number>> => {
      const out: Record<string, number> = {};
      for (const key of (await admin.command('KEYS', `{${prefix}}:*`)) as string[]) {
        const type = String(await admin.command('TYPE', key));
        out[key.slice(prefix.length + 3)] = Number(await admin.command(type === 'hash' ? 'HLEN' : 'ZCARD', key));
      }
      return out;
    };
    let full: Record<string, number> = {};
    await eventually(async () => {
      full = await sizes();
      expect(full['users:reported']).to.be.above(0); // the writes have landed, the reports assigned
    });
    for (const [key, size] of Object.entries(full)) expect(size, key).to.be.at.most(1000);
    // Threshold (2 s) and a few syncs after the last touch: every user's key is gone, `reported` with them.
    await eventually(async () => {
      const left = await sizes();
      expect(Object.keys(left).filter((k) => !['meta', 'users:gone', 'users:changes'].includes(k) && left[k] > 0)).to.deep.equal([]);
    }, 8000);
  });

  it('8. a profile at its bounds reads the same on every process', async () => {
    const server = await redis();
    const prefix = uniquePrefix();
    const a = await process_(server.port, prefix, { hidden: undefined });
    const b = await process_(server.port, prefix, { hidden: undefined });
    const long = { id: 1, username: 'u'.repeat(300), name: 'n'.repeat(300), displayName: 'd'.repeat(300) };
    await a.online.touch(long as unknown as User);
    await eventually(async () => expect(await b.online.count()).to.equal(1));
    const [mine] = await a.online.list();
    const [theirs] = await b.online.list();
    expect(Object.keys(theirs).sort()).to.deep.equal(Object.keys(mine).sort());
    expect({ ...theirs, lastSeen: 0 }).to.deep.equal({ ...mine, lastSeen: 0 });
    expect(mine.username).to.have.length(256);
  });
});

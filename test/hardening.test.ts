import { expect } from 'chai';
import express from 'express';
import session from 'express-session';
import { RedisStore, createOnlineTracker, type OnlineTrackerOptions, type Store } from 'express-online-now';
import { presenceApp, type LocalsJson } from './helpers/app';
import { CookieBrowser } from './helpers/browser';
import { REDIS_SERVER, connect, sharedRedis, uniquePrefix } from './helpers/redis';
import { requireBinary } from './helpers/requirements';
import { listen, type Listening } from './helpers/server';
import { describeEachStore, synced } from './helpers/stores';
import { eventually } from './helpers/wait';

/** An app whose signed-in "user" is whatever the test puts in the session, raw. */
async function rawUserApp(options: OnlineTrackerOptions) {
  const app = express();
  const online = createOnlineTracker(options);
  app.use(express.json());
  app.use(session({ secret: 's', resave: false, saveUninitialized: false }));
  app.post('/as', (req, res) => {
    (req.session as unknown as Record<string, unknown>).user = req.body.user;
    res.sendStatus(204);
  });
  app.use(online.middleware());
  app.get('/locals', (_req, res) => res.json({ onlineCount: res.locals.onlineCount, onlineNow: res.locals.onlineNow, onlineNowIds: res.locals.onlineNowIds }));
  const server = await listen(app);
  return { online, server };
}

async function as(server: Listening, user: unknown): Promise<CookieBrowser> {
  const browser = new CookieBrowser(server.base);
  const res = await fetch(`${server.base}/as`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ user }),
    redirect: 'manual',
  });
  const cookie = res.headers.getSetCookie()[0].split(';')[0];
  (browser as unknown as { cookies: Map<string, string> }).cookies.set(cookie.split('=')[0], cookie.slice(cookie.indexOf('=') + 1));
  return browser;
}

describeEachStore(
  (kind) => `hostile input (${kind.name})`,
  { syncInterval: 50 },
  function ({ store, clients }) {
    this.timeout(30_000);
    const closers: (() => Promise<unknown>)[] = [];
    afterEach(async () => {
      for (const close of closers.splice(0).reverse()) await close();
    });

    async function start(options: OnlineTrackerOptions = {}) {
      const made = await rawUserApp({ store: store(), ...options });
      closers.push(
        () => made.online.close(),
        () => made.server.close(),
      );
      return made;
    }

    it('ignores ids that are not finite numbers or sane non-empty strings, without failing the page', async () => {
      const { server } = await start();
      const hostile = [{ id: 'x'.repeat(100_000) }, { id: '' }, { id: true }, { id: [1, 2] }, { id: { $gt: '' } }, { id: null }, true, [], { name: 'no id at all' }];
      for (const user of hostile) {
        const locals = await (await as(server, user)).json<LocalsJson>('/locals');
        expect(locals.onlineCount, JSON.stringify(user).slice(0, 40)).to.equal(0);
      }
    });

    it('treats prototype names and Redis-looking ids as ordinary users, and pollutes no prototype', async () => {
      const namesBefore = Object.getOwnPropertyNames(Object.prototype).sort();
      const descriptorsBefore = Object.getOwnPropertyDescriptors(Object.prototype);
      // The whole user becomes the profile, so the hostile fields reach the profile bounds and the store.
      const { server } = await start({ profile: (user: unknown) => user as Record<string, unknown> });
      const ids = ['__proto__', 'constructor', 'prototype', 'toString', 'hasOwnProperty', '*', '{tag}', 'prefix:x', 'online-now:users:seen', '?[a]'];
      for (const id of ids) {
        // Raw JSON, so "__proto__" is an own field, as it is in a parsed request body or session.
        const user: unknown = JSON.parse(
          `{"id":${JSON.stringify(id)},"name":${JSON.stringify(`name of ${id}`)},` +
            '"__proto__":{"polluted":"yes","isAdmin":true},"constructor":{"prototype":{"polluted":"yes","isAdmin":true}}}',
        );
        await (await as(server, user)).get('/locals');
      }
      const viewer = await as(server, { id: 'viewer' });
      let locals: LocalsJson | undefined;
      await eventually(async () => {
        locals = await viewer.json<LocalsJson>('/locals');
        expect(locals.onlineCount).to.equal(ids.length + 1);
      });
      expect([...locals!.onlineNowIds].sort()).to.deep.equal([...ids, 'viewer'].sort());
      const proto = locals!.onlineNow.find((e) => e.id === '__proto__');
      expect(proto).to.include({ name: 'name of __proto__' });
      for (const entry of locals!.onlineNow) {
        // Only the name came through: no "__proto__", "constructor", "polluted" or "isAdmin" field.
        const fields = entry.id === 'viewer' ? ['id', 'lastSeen'] : ['id', 'lastSeen', 'name'];
        expect(Object.keys(entry).sort(), String(entry.id)).to.deep.equal(fields);
      }
      // Nothing was polluted: Object.prototype gained no property and lost none, none was replaced,
      // and a fresh object has none of the keys the hostile users tried to plant.
      expect(Object.getOwnPropertyNames(Object.prototype).sort()).to.deep.equal(namesBefore);
      for (const [name, before] of Object.entries(descriptorsBefore)) {
        const after = Object.getOwnPropertyDescriptor(Object.prototype, name);
        expect(after?.value, name).to.equal(before.value);
        expect(after?.get, name).to.equal(before.get);
        expect(after?.set, name).to.equal(before.set);
      }
      const fresh: Record<string, unknown> = {};
      for (const key of ['polluted', 'isAdmin']) expect(key in fresh, key).to.equal(false);
    });

    it('bounds what a profile can carry: 16 flat fields, strings of 256 characters, no nested objects', async () => {
      const { server } = await start({
        profile: (user: unknown) => user as Record<string, unknown>,
      });
      const huge: Record<string, unknown> = { id: 1, bio: 'b'.repeat(10_000), nested: { secret: 1 }, list: [1, 2], ok: true, n: 3 };
      for (let i = 0; i < 100; i++) huge[`f${i}`] = i;
      const locals = await (await as(server, huge)).json<LocalsJson>('/locals');
      const entry = locals.onlineNow[0];
      expect(Object.keys(entry).length).to.be.at.most(16 + 2);
      expect(String(entry.bio)).to.have.length(256);
      expect(entry).not.to.have.property('nested');
      expect(entry).not.to.have.property('list');
      expect(entry).to.include({ ok: true, n: 3 });
    });

    it('bounds a profile to 512 characters in all, dropping whole fields past it', async () => {
      const { server } = await start({ profile: (user: unknown) => user as Record<string, unknown> });
      const wide: Record<string, unknown> = { id: 1 };
      for (let i = 0; i < 16; i++) wide[`field${i}`] = String(i).padEnd(100, '.');
      const entry = (await (await as(server, wide)).json<LocalsJson>('/locals')).onlineNow[0];
      const fields = Object.keys(entry).filter((k) => k !== 'id' && k !== 'lastSeen');
      // 4 fields of 6–7 + 100 characters fit in 512; a fifth would not.
      expect(fields).to.deep.equal(['field0', 'field1', 'field2', 'field3']);
      expect(fields.every((k) => String(entry[k]).length === 100)).to.equal(true);
    });

    it('never puts a password hash or token in locals by default', async () => {
      const { server } = await start();
      const user = { id: 9, username: 'nine', passwordHash: '$2b$10$abc', token: 'tok', email: 'x@example.com' };
      const locals = await (await as(server, user)).json<LocalsJson>('/locals');
      expect(locals.onlineNow[0]).to.deep.equal({ id: 9, username: 'nine', lastSeen: locals.onlineNow[0].lastSeen });
    });

    it('a throwing getUser, getId or profile fails no request and is reported once', async () => {
      for (const option of ['getUser', 'getId', 'profile'] as const) {
        const errors: string[] = [];
        const { server } = await start({
          [option]: () => {
            throw new Error(`${option} broke`);
          },
          onError: (error: Error) => errors.push(error.message),
        });
        const browser = await as(server, { id: 1 });
        for (let i = 0; i < 5; i++) expect((await browser.get('/locals')).status).to.equal(200);
        expect(errors, option).to.deep.equal([`${option} broke`]);
      }
    });

    it('a getUser that returns a Promise is refused with a message, once', async () => {
      const errors: string[] = [];
      const { server } = await start({ getUser: async () => ({ id: 1 }), onError: (e) => errors.push(e.message) });
      const browser = await as(server, { id: 1 });
      for (let i = 0; i < 3; i++) expect((await browser.json<LocalsJson>('/locals')).onlineCount).to.equal(0);
      expect(errors).to.have.length(1);
      expect(errors[0]).to.match(/getUser\(req\) returned a Promise/);
    });

    it('a flood of guest sessions stays within maxTracked and never pushes out signed-in users', async () => {
      const made = presenceApp(express, { store: store({ maxTracked: 20 }), trackGuests: true });
      const server = await listen(made.app);
      closers.push(
        () => made.online.close(),
        () => server.close(),
      );
      const member = new CookieBrowser(server.base);
      await member.post('/login', { id: '1', type: 'number' });
      await member.get('/locals');
      await Promise.all(
        Array.from({ length: 60 }, async () => {
          const guest = new CookieBrowser(server.base);
          await guest.post('/guest');
          await guest.get('/locals');
        }),
      );
      // A Redis store's read model learns of the other sessions at its next sync.
      await eventually(async () => {
        const locals = await member.json<LocalsJson>('/locals?ask=[1]');
        expect(locals.onlineGuests).to.equal(20); // saturated: "at least 20"
        expect(locals.onlineCount).to.equal(1);
        expect(locals.isOnline).to.deep.equal([true]);
      });
      const [redis] = clients; // the Redis store's client; none on the memory store
      if (redis !== undefined) {
        const prefix = (made.online.store as RedisStore).prefix;
        expect(Number(await redis.command('ZCARD', `{${prefix}}:guests:seen`))).to.be.at.most(20);
      }
    });
  },
);

describe('misconfiguration and broken stores', () => {
  let server: Listening | undefined;
  afterEach(async () => {
    await server?.close();
    server = undefined;
  });

  it('warns once, naming the fix, when express-session is missing or mounted after the middleware', async () => {
    const errors: string[] = [];
    const app = express();
    const online = createOnlineTracker({ onError: (e) => errors.push(e.message) });
    app.use(online.middleware());
    app.use(session({ secret: 's', resave: false, saveUninitialized: false })); // too late
    app.get('/', (_req, res) => res.json({ count: res.locals.onlineCount }));
    server = await listen(app);
    const browser = new CookieBrowser(server.base);
    for (let i = 0; i < 3; i++) expect(await browser.json('/')).to.deep.equal({ count: 0 });
    expect(errors).to.have.length(1);
    expect(errors[0]).to.match(/mount express-session before the presence middleware/);
  });

  function brokenStore(kind: 'throws' | 'rejects' | 'hangs'): Store {
    const fail = () => {
      if (kind === 'throws') throw new Error('store exploded');
      if (kind === 'rejects') return Promise.reject(new Error('store rejected'));
      return new Promise<never>(() => undefined);
    };
    return { init: () => undefined, touch: fail, forget: fail, view: fail, close: () => undefined } as unknown as Store;
  }

  for (const kind of ['throws', 'rejects', 'hangs'] as const) {
    it(`a store that ${kind} on every call leaves pages rendering with empty locals, reported once`, async () => {
      const errors: string[] = [];
      const made = presenceApp(express, { store: brokenStore(kind), onError: (e) => errors.push(e.message) });
      server = await listen(made.app);
      const browser = new CookieBrowser(server.base);
      await browser.post('/login', { id: '1', type: 'number' });
      // The login and two pages: three calls that each fail (a hang costs the 100 ms wait), one report.
      for (let i = 0; i < 2; i++) {
        const started = Date.now();
        const locals = await browser.json<LocalsJson>('/locals?ask=[1]');
        expect(Date.now() - started).to.be.below(1000);
        expect(locals).to.include({ onlineCount: 0, onlineGuests: 0 });
        expect(locals.onlineNow).to.deep.equal([]);
        expect(locals.isOnline).to.deep.equal([false]);
      }
      expect(errors).to.have.length(1);
    });
  }

  it('warns when two trackers share a Redis prefix with different thresholds', async function () {
    requireBinary(this, REDIS_SERVER, 'apt-get install -y redis-server');
    const redis = await sharedRedis();
    const [c1, c2] = [await connect('node-redis', redis), await connect('ioredis', redis)];
    const prefix = uniquePrefix();
    const errors: string[] = [];
    const a = createOnlineTracker({ threshold: 900, store: new RedisStore({ client: c1.client, prefix, syncInterval: 50 }), onError: (e) => errors.push(e.message) });
    const b = createOnlineTracker({ threshold: 60, store: new RedisStore({ client: c2.client, prefix, syncInterval: 50 }), onError: () => undefined });
    // Reported at the first sync that sees both, then never again: several more syncs pass.
    await eventually(() => expect(errors).not.to.be.empty);
    await synced(a, b);
    await synced(a, b);
    await a.close();
    await b.close();
    await c1.close();
    await c2.close();
    expect(errors).to.have.length(1);
    expect(errors[0]).to.match(/another tracker uses the Redis prefix ".*" with a threshold of 60s, this one 900s/);
  });
});

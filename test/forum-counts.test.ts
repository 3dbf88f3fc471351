// Bots, the all-time record and the durable last-seen, on one process: over
// real HTTP where a page shows it, on a controlled clock where time matters.
// (Across processes on Redis: test/forum-processes.test.ts.)
import { expect } from 'chai';
import session from 'express-session';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { MemoryStore, createOnlineTracker, type OnlineNowLocals, type OnlineRecord, type OnlineTracker } from 'express-online-now';
import { presenceApp, type LocalsJson } from './helpers/app';
import { BROWSER_AGENT, CookieBrowser } from './helpers/browser';
import { Rng, modelSeed } from './helpers/model';
import { expressVersions, listen, type Listening } from './helpers/server';
import { describeEachStore } from './helpers/stores';
import { eventually, hooksRun } from './helpers/wait';

const express = expressVersions[0].express;
const GOOGLEBOT = 'Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)';
const BINGBOT = 'Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)';

describeEachStore(
  (kind) => `bots and the record over HTTP (${kind.name})`,
  { syncInterval: 50 },
  ({ store }) => {
    let server: Listening | undefined;
    let online: OnlineTracker | undefined;
    afterEach(async () => {
      await server?.close();
      await online?.close();
    });

    async function start(options: Parameters<typeof presenceApp>[1] = {}): Promise<string> {
      const made = presenceApp(express, { store: store(), trackGuests: true, ...options });
      online = made.online;
      server = await listen(made.app);
      return server.base;
    }

    const asBot = async (base: string, agent: string, cookie?: string): Promise<LocalsJson> =>
      (await (await fetch(`${base}/locals`, { headers: { 'user-agent': agent, ...(cookie ? { cookie } : {}) } })).json()) as LocalsJson;

    it('counts crawlers by kind, never as guests, with or without a session cookie, and leaves them out of the record', async () => {
      const base = await start();
      const person = new CookieBrowser(base);
      await person.post('/guest');
      await person.get('/locals');
      for (let i = 0; i < 5; i++) await asBot(base, GOOGLEBOT);
      await asBot(base, BINGBOT, person.cookieHeader); // a crawler that keeps cookies is still a crawler
      await asBot(base, 'curl/8.4.0');
      await asBot(base, 'curl/7.1.1');
      // isbot's pattern for both is "bot": the kind is the user agent's own word.
      await asBot(base, 'Mozilla/5.0 (compatible; AhrefsBot/7.0; +http://ahrefs.com/robot/)');
      await eventually(async () => {
        const locals = await person.json<LocalsJson>('/locals');
        expect([locals.onlineGuests, locals.onlineBots, locals.onlineRecord.count]).to.deep.equal([1, 4, 1]);
      });
      expect(await online!.counts()).to.deep.equal({ users: 0, hidden: 0, guests: 1, bots: 4 });
    });

    it('takes a name from isBot(req), and counts nothing as a bot that isBot says is a person', async () => {
      const base = await start({
        isBot: (req) => (req.headers['x-crawler'] === undefined ? false : String(req.headers['x-crawler'])),
      });
      await fetch(`${base}/locals`, { headers: { 'user-agent': GOOGLEBOT } }); // a person, by this app's rule (no cookie: not a guest)
      await fetch(`${base}/locals`, { headers: { 'x-crawler': 'Our-Monitor' } });
      await fetch(`${base}/locals`, { headers: { 'x-crawler': 'our-monitor' } });
      await eventually(async () => expect((await new CookieBrowser(base).json<LocalsJson>('/locals')).onlineBots).to.equal(1));
    });

    it('shows the record on every page: raised by users and guests, kept when they leave, started over by resetRecord()', async () => {
      const records: OnlineRecord[] = [];
      const base = await start({ onRecord: (record) => void records.push(record) });
      const people = [new CookieBrowser(base), new CookieBrowser(base), new CookieBrowser(base)];
      await people[0].post('/login', { id: '1' });
      await people[0].get('/locals');
      await people[1].post('/login', { id: '2' });
      await people[1].get('/locals');
      await people[2].post('/guest');
      await people[2].get('/locals');
      await eventually(async () => expect((await people[0].json<LocalsJson>('/locals')).onlineRecord.count).to.equal(3));
      await people[1].post('/logout');
      await eventually(async () => expect((await people[0].json<LocalsJson>('/locals')).onlineCount).to.equal(1));
      const { onlineRecord } = await people[0].json<LocalsJson>('/locals');
      expect(onlineRecord.count).to.equal(3);
      expect(Math.abs(Date.parse(onlineRecord.at) - Date.now())).to.be.below(10_000);
      await eventually(() => expect(records.map((r) => r.count).at(-1)).to.equal(3));
      await online!.resetRecord();
      await eventually(async () => expect((await people[0].json<LocalsJson>('/locals')).onlineRecord.count).to.equal(2));
    });
  },
);

describe('bots: a flood of invented crawler user agents', () => {
  it('leaves guests, users and memory where they were (100,000 requests through the middleware)', async function () {
    this.timeout(60_000);
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    const seed = modelSeed();
    const rng = new Rng(seed);
    const online = createOnlineTracker({ trackGuests: true, onError: (e) => expect.fail(e.message) });
    const middleware = online.middleware();
    // Each visitor brings its own guest cookie (22 characters, as the middleware gives them).
    const request = (agent: string, visitor: string) => ({
      headers: { 'user-agent': agent, cookie: `online_now_guest=${visitor.padEnd(22, '0')}` },
      session: {},
    });
    const run = (agent: string, visitor: string): Partial<OnlineNowLocals> => {
      const res = { locals: {} as Partial<OnlineNowLocals>, once: () => undefined };
      middleware(request(agent, visitor), res, () => undefined);
      return res.locals;
    };
    for (let i = 0; i < 10; i++) run(BROWSER_AGENT, `person-${i}`);
    const flood = (n: number): Partial<OnlineNowLocals> => {
      let last: Partial<OnlineNowLocals> = {};
      for (let i = 0; i < n; i++) {
        const name = Math.floor(rng.between(0, 2 ** 48)).toString(36);
        last = run(`Mozilla/5.0 (compatible; ${name}bot/${i}; +http://${name}.example/bot)`, `flood-${i}`);
      }
      return last;
    };
    flood(20_000); // the bounded tables fill up
    gc();
    const heapBefore = process.memoryUsage().heapUsed;
    const last = flood(100_000);
    gc();
    const grown = process.memoryUsage().heapUsed - heapBefore;
    expect(last.onlineGuests, `seed ${seed}`).to.equal(10);
    expect(last.onlineCount).to.equal(0);
    expect(last.onlineBots).to.be.at.most(1000);
    expect(last.onlineRecord!.count).to.equal(10);
    // Bounded: no per-bot growth (a guest each would be ~20 MB).
    expect(grown, `heap grew ${grown} bytes`).to.be.below(2_000_000);
    await online.close();
  });
});

describe('the record on a controlled clock (memory store)', () => {
  it('starts from initialRecord, rises past it once, and counts guests but not bots', async () => {
    let t = 1_700_000_000_000;
    const records: OnlineRecord[] = [];
    const online = createOnlineTracker({
      store: new MemoryStore({ now: () => t }),
      threshold: 60,
      initialRecord: { count: 2, at: '2026-01-02T03:04:05.000Z' },
      onRecord: (record) => void records.push(record),
    });
    expect(online.record()).to.deep.include({ count: 2 });
    expect(online.record().at.toISOString()).to.equal('2026-01-02T03:04:05.000Z');
    // Read through a prototype or a Proxy, as an app extending it would.
    expect((Object.create(online.record()) as { at: Date }).at.toISOString()).to.equal('2026-01-02T03:04:05.000Z');
    expect(new Proxy(online.record(), {}).at.toISOString()).to.equal('2026-01-02T03:04:05.000Z');
    await online.touch(1);
    await online.touch(2);
    expect(records).to.have.length(0);
    t += 1000;
    await online.touch(3);
    expect(online.record().count).to.equal(3);
    expect(online.record().at.getTime()).to.equal(t);
    await online.store.touch('guests', 'g1', 'g1', undefined);
    await online.store.touch('bots', 'googlebot', 'googlebot', undefined);
    expect(online.record().count).to.equal(4);
    t += 61_000; // everyone expires: the record stays
    await online.touch(9);
    expect(online.record().count).to.equal(4);
    await hooksRun(); // onRecord runs after the request
    expect(records.map((r) => r.count)).to.deep.equal([3, 4]);
    await online.resetRecord();
    expect(online.record()).to.deep.include({ count: 1 });
    await online.close();
  });

  it('a tracker closed on a shared store hears nothing more from it', async () => {
    const store = new MemoryStore();
    const heard: string[] = [];
    const a = createOnlineTracker({ store, onRecord: (record) => void heard.push(`a ${record.count}`) });
    const b = createOnlineTracker({ store, onRecord: (record) => void heard.push(`b ${record.count}`) });
    await a.touch(1);
    await hooksRun();
    await a.close();
    await b.touch(2);
    await hooksRun();
    expect(heard).to.deep.equal(['a 1', 'b 1', 'b 2']);
    await b.close();
  });

  it('refuses an initialRecord that is not { count, at }', () => {
    for (const bad of [{ count: -1, at: 0 }, { count: 1.5, at: 0 }, { count: 3, at: 'yesterday' }, { count: 3 }, 7]) {
      expect(() => createOnlineTracker({ initialRecord: bad as never }))
        .to.throw(TypeError, /option "initialRecord" must be \{ count, at \}/)
        .with.property('code', 'ERR_ONLINE_NOW_INITIALRECORD');
    }
  });
});

describe('onSeen on a controlled clock (memory store)', () => {
  it('is called once per user per seenInterval while active, and once more on forget', async () => {
    let t = 1_700_000_000_000;
    const start = t;
    const calls: [unknown, number][] = [];
    const online = createOnlineTracker({
      store: new MemoryStore({ now: () => t }),
      threshold: 900,
      seenInterval: 60,
      onSeen: (user, date) => void calls.push([user.id, date.getTime() - start]),
    });
    for (let s = 0; s <= 300; s += 10) {
      t = start + s * 1000;
      await online.touch({ id: 5, name: 'Eve' } as never);
    }
    await online.forget(5);
    await hooksRun();
    expect(calls).to.deep.equal([
      [5, 0],
      [5, 60_000],
      [5, 120_000],
      [5, 180_000],
      [5, 240_000],
      [5, 300_000],
      [5, 300_000], // on forget: the last activity
    ]);
    await online.close();
  });

  it('neither delays nor fails a page when the hook is slow or fails; a failure is reported once', async () => {
    const errors: string[] = [];
    let calls = 0;
    let t = 1_700_000_000_000;
    const made = presenceApp(express, {
      store: new MemoryStore({ now: () => t }),
      onSeen: () => {
        calls++;
        if (calls % 2 === 1) throw new Error('database down');
        return new Promise(() => undefined); // never settles
      },
      seenInterval: '10ms', // the shortest accepted: each request below comes after it
      onError: (error) => errors.push(error.message),
    });
    const server = await listen(made.app);
    try {
      const browser = new CookieBrowser(server.base);
      await browser.post('/login', { id: '1' });
      for (let i = 0; i < 6; i++) {
        t += 11;
        const res = await browser.get('/locals');
        expect(res.status).to.equal(200);
        await res.arrayBuffer();
      }
      await eventually(() => expect(calls).to.be.at.least(5));
      expect(errors).to.deep.equal(['database down']);
    } finally {
      await server.close();
      await made.online.close();
    }
  });

  it('is not called on the request’s own tick', async () => {
    let inRequest = false;
    let calledInRequest = false;
    const online = createOnlineTracker({ onSeen: () => void (calledInRequest ||= inRequest) });
    const app = express();
    app.use(session({ secret: 'x', resave: false, saveUninitialized: false }));
    app.use((req, _res, next) => {
      (req as unknown as { user: unknown }).user = { id: 1 };
      inRequest = true;
      next();
    });
    app.use(online.middleware());
    app.get('/', (_req, res) => {
      inRequest = false;
      res.send('ok');
    });
    const server = await listen(app);
    try {
      expect(await (await fetch(server.base)).text()).to.equal('ok');
      await hooksRun();
      expect(calledInRequest).to.equal(false);
    } finally {
      await server.close();
      await online.close();
    }
  });
});

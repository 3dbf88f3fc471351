import { expect } from 'chai';
import express from 'express';
import session from 'express-session';
import nunjucks from 'nunjucks';
import Handlebars from 'handlebars';
import { MemoryStore, RedisStore, createOnlineTracker, registerHandlebars, registerNunjucks, type OnlineTracker, type OnlineTrackerOptions } from 'express-online-now';
import { CookieBrowser, postFromPage } from './helpers/browser';
import { listen, type Listening } from './helpers/server';
import { SseStream } from './helpers/sse';
import { eventually } from './helpers/wait';
import { RedisServer, REDIS_SERVER, connect, uniquePrefix, type TestClient } from './helpers/redis';
import { requireBinary } from './helpers/requirements';
import { synced } from './helpers/stores';

const MINUTE = 60_000;

interface User {
  id: number;
  name: string;
  dnd?: boolean;
  invisible?: boolean;
  staff?: boolean;
}

const PEOPLE: Record<number, User> = {
  1: { id: 1, name: 'Ada' },
  2: { id: 2, name: 'Bob' },
  3: { id: 3, name: 'Cy', invisible: true },
  4: { id: 4, name: 'Dee', dnd: true },
  9: { id: 9, name: 'Staff', staff: true },
};

/**
 * A site whose pages show statuses in both engines: the listed entries' `status`, and
 * `onlineStatus` asked of every person (listed or not), plus the client script's tag.
 */
function statusSite(options: OnlineTrackerOptions<User>): { app: express.Express; online: OnlineTracker<User> } {
  const app = express();
  const online = createOnlineTracker<User>({
    secret: 'status test',
    hidden: (u) => u.invisible === true,
    canSeeHidden: (req) => (req.session as unknown as { user?: User }).user?.staff === true,
    ...options,
  });
  const env = registerNunjucks(new nunjucks.Environment());
  const hbs = registerHandlebars(Handlebars.create());
  const njk = env.renderString.bind(env);
  const page = hbs.compile('{{#each onlineNow}}[{{name}}:{{status}}]{{/each}}|{{#each people}}{{name}}={{onlineStatus this}};{{/each}}');
  const hbsBadges = hbs.compile('{{#each people}}{{onlineStatus this html=true}}{{/each}}');
  app.use(express.urlencoded({ extended: false }));
  app.use(session({ secret: 'status test', resave: false, saveUninitialized: false }));
  app.use(online.middleware());
  app.use(online.client());
  app.get('/online-now/events', online.events({ interval: 50 }));
  app.post('/login', (req, res) => {
    (req.session as unknown as { user: User }).user = PEOPLE[Number(req.body.id)];
    res.sendStatus(204);
  });
  const people = Object.values(PEOPLE);
  app.get('/njk', (_req, res) => {
    res.send(
      njk('{% for u in onlineNow %}[{{ u.name }}:{{ u.status }}]{% endfor %}|{% for p in people %}{{ p.name }}={{ p | onlineStatus }};{% endfor %}|{{ onlineScript() }}', {
        ...res.locals,
        people,
      }),
    );
  });
  app.get('/hbs', (_req, res) => {
    res.send(page({ ...res.locals, people }));
  });
  // An order's page: its room, and the script tag that carries the tab and its claim.
  app.get('/order', async (req, res, next) => {
    try {
      await online.here(req, 'order:1', { mode: req.query.edit === '1' ? 'editing' : 'viewing' });
      res.send(njk('{{ onlineScript() }}', res.locals));
    } catch (error) {
      next(error);
    }
  });
  app.get('/json', (_req, res) => {
    res.json(res.locals.onlineNow);
  });
  // Everyone's status badge (both engines), then the room's members as HTML and as locals.
  app.get('/badges', async (req, res, next) => {
    try {
      await online.here(req, 'order:1');
      const locals = { ...res.locals, people };
      const njkBadges = njk('{% for p in people %}{{ p | onlineStatus(html=true) }}{% endfor %}', locals);
      res.send(`${njkBadges}#${hbsBadges(locals)}#${njk('{{ onlineHereHtml() }}|{% for m in onlineHere %}{{ m.name }}={{ m.status }};{% endfor %}', locals)}`);
    } catch (error) {
      next(error);
    }
  });
  return { app, online };
}

/** What a page says: the listed `[name:status]` and `name=status` for everyone. */
function said(html: string): { listed: string; everyone: Record<string, string> } {
  const [listed, everyone] = html.split('|');
  return {
    listed,
    everyone: Object.fromEntries(
      everyone
        .split(';')
        .filter(Boolean)
        .map((pair) => pair.split('=')),
    ),
  };
}

async function signIn(base: string, id: number): Promise<CookieBrowser> {
  const browser = new CookieBrowser(base);
  expect((await browser.post('/login', { id: String(id) })).status).to.equal(204);
  return browser;
}

/** A heartbeat from a page of `browser`'s (the tab its script tag names), saying whether the page saw input. */
async function beat(base: string, browser: CookieBrowser, tab: string, body: Record<string, unknown>): Promise<number> {
  return (await postFromPage(base, '/online-now/beat', { tab, mode: 'viewing', ...body }, { cookie: browser.cookieHeader })).status;
}

const tabOf = (html: string): string => /data-tab="([^"]+)"/.exec(html)?.[1] ?? '';

describe('status: active, idle, away and offline, from requests and the page’s input (memory store, a clock the test moves)', () => {
  let t = 1_000_000;
  let server: Listening;
  let online: OnlineTracker<User>;
  beforeEach(async () => {
    t = 1_000_000;
    const site = statusSite({ store: new MemoryStore({ now: () => t }), status: (u) => (u.dnd === true ? 'busy' : undefined) });
    online = site.online;
    server = await listen(site.app);
  });
  afterEach(async () => {
    await server.close();
    await online.close();
  });

  it('goes from active to idle (idleAfter, 5 min) to away (awayAfter, 10 min) to offline (the threshold), in both engines and in JSON', async () => {
    const ada = await signIn(server.base, 1);
    const bob = await signIn(server.base, 2);
    await ada.get('/hbs');
    const at = async (minutes: number, expected: string): Promise<void> => {
      t = 1_000_000 + minutes * MINUTE;
      for (const engine of ['njk', 'hbs']) {
        const page = said(await bob.text(`/${engine}`));
        expect(page.everyone.Ada, `${engine}, ${minutes} min`).to.equal(expected);
        if (expected !== 'offline') expect(page.listed, `${engine}, ${minutes} min`).to.contain(`[Ada:${expected}]`);
        else expect(page.listed).not.to.contain('Ada');
      }
    };
    await at(0, 'active');
    await at(4.5, 'active');
    await at(5.5, 'idle');
    await at(9.5, 'idle');
    await at(10.5, 'away');
    // Bob keeps asking pages, so he stays active all along.
    expect(said(await bob.text('/njk')).everyone.Bob).to.equal('active');
    await at(15.5, 'offline');
    // A request is activity: active again at once.
    await ada.get('/hbs');
    await at(15.6, 'active');
    const [entry] = (await (await bob.get('/json')).json()) as { name: string; status: string; lastActive: string }[];
    expect(entry.name).to.equal('Bob');
    expect(entry.status).to.equal('active');
    expect(Date.parse(entry.lastActive)).to.be.within(1_000_000 + 15.6 * MINUTE - MINUTE, 1_000_000 + 15.6 * MINUTE);
  });

  it('metrics() counts members online by status as the pages show them: an app’s state as other, a hidden user only as hidden', async () => {
    const people = [await signIn(server.base, 1), await signIn(server.base, 2), await signIn(server.base, 3), await signIn(server.base, 4)];
    for (const person of people) await person.get('/hbs');
    const bob = people[1];
    const byStatus = async (): Promise<Record<string, number>> =>
      Object.fromEntries([...(await online.metrics()).matchAll(/^online_now_users_by_status\{status="(\w+)"\} (\d+)$/gm)].map((m) => [m[1], Number(m[2])]));
    t += 6 * MINUTE;
    expect(said(await bob.text('/njk')).everyone).to.include({ Ada: 'idle', Bob: 'active', Cy: 'offline', Dee: 'busy' });
    expect(await byStatus()).to.deep.equal({ active: 1, idle: 1, away: 0, other: 1 });
    t += 5 * MINUTE;
    expect(await byStatus()).to.deep.equal({ active: 0, idle: 1, away: 1, other: 1 });
    expect(await online.metrics())
      .to.include('online_now_users{kind="member"} 3')
      .and.include('online_now_users{kind="hidden"} 1');
  });

  it('a heartbeat from a page nobody touched keeps its reader online without making them active; one that saw input does; a hidden page’s never does', async () => {
    const ada = await signIn(server.base, 1);
    const bob = await signIn(server.base, 2);
    const tab = tabOf(await ada.text('/njk'));
    expect(tab).not.to.equal('');
    const status = async (): Promise<string> => said(await bob.text('/njk')).everyone.Ada;
    t += 6 * MINUTE;
    expect(await beat(server.base, ada, tab, {})).to.equal(200);
    expect(await status()).to.equal('idle');
    t += 5 * MINUTE;
    expect(await beat(server.base, ada, tab, {})).to.equal(200);
    expect(await status()).to.equal('away');
    // Past the threshold after her last request, she is still online (the page beats), and away.
    t += 5 * MINUTE;
    expect(await beat(server.base, ada, tab, {})).to.equal(200);
    expect(await status()).to.equal('away');
    // A hidden page's beat says nobody is looking, whatever it claims.
    expect(await beat(server.base, ada, tab, { active: true, away: true })).to.equal(200);
    expect(await status()).to.equal('away');
    expect(await beat(server.base, ada, tab, { active: true })).to.equal(200);
    expect(await status()).to.equal('active');
  });

  it('a user the app marks (status(user)) shows the app’s state while online; a hidden user is offline to others and has a status for staff; tracker.onlineStatus answers alike', async () => {
    const dee = await signIn(server.base, 4);
    const cy = await signIn(server.base, 3);
    await dee.get('/njk');
    await cy.get('/njk');
    const bob = await signIn(server.base, 2);
    const staff = await signIn(server.base, 9);
    t += 6 * MINUTE;
    for (const engine of ['njk', 'hbs']) {
      expect(said(await bob.text(`/${engine}`)).everyone, engine).to.include({ Dee: 'busy', Cy: 'offline' });
      expect(said(await staff.text(`/${engine}`)).everyone, engine).to.include({ Dee: 'busy', Cy: 'idle' });
    }
    // Cy sees herself (her request is activity).
    expect(said(await cy.text('/hbs')).everyone.Cy).to.equal('active');
    expect(await online.onlineStatus(4)).to.equal('busy');
    expect(await online.onlineStatus(3)).to.equal('offline');
    expect(await online.onlineStatus(3, { hidden: true })).to.equal('active');
    expect(await online.onlineStatus(9)).to.equal('active');
    expect(await online.onlineStatus(1)).to.equal('offline');
    expect(await online.onlineStatus({ id: 2, name: 'Bob' })).to.equal('active');
  });

  it('an app state of "offline" is none (appearing offline is invisible mode’s); a status(user) that returns a Promise is reported', async () => {
    const errors: string[] = [];
    const site = statusSite({
      status: (u) => (u.id === 1 ? 'offline' : (Promise.resolve('busy') as never)),
      onError: (error) => errors.push(error.message),
    });
    const other = await listen(site.app);
    try {
      const ada = await signIn(other.base, 1);
      const bob = await signIn(other.base, 2);
      await ada.get('/njk');
      expect(said(await bob.text('/njk')).everyone).to.include({ Ada: 'active', Bob: 'active' });
      expect(errors.join('\n')).to.match(/status\(user\) returned a Promise/);
    } finally {
      await other.close();
      await site.online.close();
    }
  });

  it('a status badge (onlineStatus with html) has a shape per state and an accessible name, in both engines; room members carry their status, and their badges', async () => {
    const ada = await signIn(server.base, 1);
    const bob = await signIn(server.base, 2);
    const cy = await signIn(server.base, 3);
    const dee = await signIn(server.base, 4);
    const staff = await signIn(server.base, 9);
    await ada.get('/badges');
    t += 5.5 * MINUTE;
    // Ada is idle now (her page open, untouched); Dee is the app's "busy"; Cy hides; Bob is the one looking.
    for (const person of [dee, cy, bob]) await person.get('/badges');
    const [njkBadges, hbsBadges, room] = (await bob.text('/badges')).split('#');
    const badge = (state: string, name: string, shape: string): string =>
      `<span class="online-status" data-status="${state}" role="img" aria-label="${name}" title="${name}">${shape}</span>`;
    // People in order: Ada, Bob, Cy, Dee, Staff (never signed in to a page: offline).
    const expected = [
      badge('idle', 'Idle', '◐'),
      badge('active', 'Active', '●'),
      badge('offline', 'Offline', '✕'),
      badge('busy', 'busy', '◆'),
      badge('offline', 'Offline', '✕'),
    ].join('');
    expect(njkBadges).to.equal(expected);
    expect(hbsBadges).to.equal(expected);
    // Ada's tab left the room (no heartbeat for the room threshold); Dee and Bob are here, each with their status; Cy is hidden from Bob.
    // (They joined at one instant of the test's clock: their order is not the point.)
    const sorted = (list: string): string[] => list.split(';').filter(Boolean).sort();
    const [html, members] = room.split('|');
    expect(sorted(members)).to.deep.equal(['Bob=active', 'Dee=busy']);
    expect(html.match(/<li [^>]*>.*?<\/li>/g)?.sort()).to.deep.equal([
      `<li data-online-id="2" data-mode="viewing">${badge('active', 'Active', '●')} Bob <span class="online-tabs">(2 tabs)</span></li>`,
      `<li data-online-id="4" data-mode="viewing">${badge('busy', 'busy', '◆')} Dee</li>`,
    ]);
    // Staff see the hidden member, with her status.
    const [, , staffRoom] = (await staff.text('/badges')).split('#');
    expect(sorted(staffRoom.split('|')[1])).to.deep.equal(['Bob=active', 'Cy=active', 'Dee=busy', 'Staff=active']);
  });

  it('the stream’s badges carry the status, and send it again when it changes with time alone', async () => {
    const ada = await signIn(server.base, 1);
    await ada.get('/njk');
    const bob = await signIn(server.base, 2);
    await bob.get('/njk');
    const stream = await SseStream.open(`${server.base}/online-now/events?ids=1`, { cookie: bob.cookieHeader });
    try {
      expect(await stream.next('online')).to.include({ id: '1', status: 'active' });
      t += 6 * MINUTE;
      await stream.next<{ status: string }>('online', (data) => data.status === 'idle');
      t += 10 * MINUTE;
      expect(await stream.next('offline')).to.deep.equal({ id: '1' });
    } finally {
      stream.close();
    }
  });

  it('the stream’s online list carries each one’s status badge, and is sent again when a status changes with time alone', async () => {
    const ada = await signIn(server.base, 1);
    await ada.get('/njk');
    const bob = await signIn(server.base, 2);
    await bob.get('/njk');
    const stream = await SseStream.open(`${server.base}/online-now/events?list=1&html=1`, { cookie: bob.cookieHeader });
    try {
      const first = await stream.next<string>('html:list');
      expect(first).to.contain('aria-label="Active" title="Active">●</span> Ada</li>');
      t += 6 * MINUTE;
      // Bob reads a page (he stays active); Ada's badge turns idle with no request of hers.
      await bob.get('/njk');
      const idle = await stream.next<string>('html:list', (html) => html.includes('Idle'));
      expect(idle).to.contain('<li data-online-id="1"><span class="online-status" data-status="idle" role="img" aria-label="Idle" title="Idle">◐</span> Ada</li>');
      expect(idle).to.contain('aria-label="Active" title="Active">●</span> Bob</li>');
    } finally {
      stream.close();
    }
  });

  it('what the client script asks by itself (its stream, the script, a leave) is no activity of its user; tracker.touch(user) is, a bare touch(id) is presence only', async () => {
    const ada = await signIn(server.base, 1);
    const bob = await signIn(server.base, 2);
    await ada.get('/njk');
    await bob.get('/njk');
    t += 6 * MINUTE;
    const stream = await SseStream.open(`${server.base}/online-now/events?ids=2`, { cookie: ada.cookieHeader });
    try {
      await stream.next('online');
      expect((await ada.get('/online-now/client.js')).status).to.equal(200);
      expect(said(await bob.text('/njk')).everyone.Ada).to.equal('idle');
    } finally {
      stream.close();
    }
    await online.touch(1);
    expect(said(await bob.text('/njk')).everyone.Ada, 'a bare touch(id)').to.equal('idle');
    await online.touch(PEOPLE[1]);
    expect(said(await bob.text('/njk')).everyone.Ada, 'touch(user)').to.equal('active');
    expect((await online.list(2)).find((e) => e.id === 1)).to.include({ status: 'active' });
  });

  it('an activity time that is not one (out of a Date’s range, or later than the user was seen) reads as the last time they were seen', async () => {
    const bob = await signIn(server.base, 2);
    // Touched through the store itself: what a profile written by something other than this package may hold.
    for (const lastActive of [1e300, -5, Number.NaN, t + 365 * 24 * 60 * MINUTE]) {
      t += MINUTE;
      online.store.touch('users', '7', 7, { name: 'Eve', lastActive } as never);
      await bob.get('/njk');
      const eve = (await online.list(2)).find((e) => e.id === 7)!;
      expect(eve.status, String(lastActive)).to.equal('active');
      expect((eve.lastActive as Date).getTime(), String(lastActive)).to.equal((eve.lastSeen as Date).getTime());
    }
    // Not active forever: idle an idle window after she was seen.
    t += 6 * MINUTE;
    await bob.get('/njk');
    expect(await online.onlineStatus(7)).to.equal('idle');
  });

  it('an ask for the lock passes it after askWait + askGrace once its holder is idle (their page open, untouched), not while they are active', async () => {
    const ada = await signIn(server.base, 1);
    const bob = await signIn(server.base, 2);
    const open = async (who: CookieBrowser, path: string): Promise<{ tab: string; claim: unknown }> => {
      const html = await who.text(path);
      const claim = /data-claim="([^"]+)"/.exec(html)?.[1];
      return { tab: tabOf(html), claim: claim === undefined ? undefined : JSON.parse(claim.replace(/&quot;/g, '"')) };
    };
    const roomBeat = async (who: CookieBrowser, page: { tab: string; claim: unknown }, extra: Record<string, unknown>): Promise<{ lock: { id?: number } | null }> => {
      const res = await postFromPage(
        server.base,
        '/online-now/beat',
        { tab: page.tab, room: 'order:1', mode: 'editing', claim: page.claim, ...extra },
        { cookie: who.cookieHeader },
      );
      expect(res.status).to.equal(200);
      const state = (await res.json()) as { self?: unknown; lock: { id?: number } | null };
      if (state.self !== undefined) page.claim = state.self;
      return state;
    };
    const adaPage = await open(ada, '/order?edit=1');
    const bobPage = await open(bob, '/order');
    expect((await roomBeat(bob, bobPage, { ask: 'new' })).lock?.id).to.equal(1);
    // Both pages beat every 20 s (the room keeps their tabs); Ada's saw no input. The ask is ripe after 70 s,
    // but Ada is active (her page request) until 5 minutes have passed.
    for (let seconds = 20; seconds <= 280; seconds += 20) {
      t += 20_000;
      await roomBeat(ada, adaPage, {});
      expect((await roomBeat(bob, bobPage, { ask: true })).lock?.id, `${seconds} s`).to.equal(1);
    }
    for (let seconds = 300; seconds <= 340; seconds += 20) {
      t += 20_000;
      await roomBeat(ada, adaPage, {});
      await roomBeat(bob, bobPage, { ask: true });
    }
    expect(await online.onlineStatus(1)).to.equal('idle');
    expect((await roomBeat(bob, bobPage, { ask: true })).lock?.id, 'Ada idle').to.equal(2);
  });

  it('the client script is told how often it may say its page saw input (a quarter of idleAfter, a minute at most)', async () => {
    const bob = await signIn(server.base, 2);
    expect(await bob.text('/njk')).to.match(
      /<script src="\/online-now\/client\.js" data-tab="[^"]+" data-interval="10000" data-events="\/online-now\/events" data-active="60000" defer><\/script>/,
    );
  });
});

describe('status off (the default), and status misconfigured', () => {
  it('without status, everyone online is active and entries carry no status', async () => {
    const { app, online } = statusSite({});
    const server = await listen(app);
    try {
      const ada = await signIn(server.base, 1);
      expect(said(await ada.text('/njk')).everyone).to.include({ Ada: 'active', Bob: 'offline' });
      const [entry] = (await (await ada.get('/json')).json()) as Record<string, unknown>[];
      expect(entry).not.to.have.property('status');
      expect(await ada.text('/njk')).not.to.contain('data-active');
    } finally {
      await server.close();
      await online.close();
    }
  });

  it('an app route that shares the client’s path is a request like any other (only the script’s own routes are not)', async () => {
    let t = 1_000_000;
    const app = express();
    const online = createOnlineTracker({ store: new MemoryStore({ now: () => t }) });
    app.use(express.urlencoded({ extended: false }));
    app.use(session({ secret: 'status test', resave: false, saveUninitialized: false }));
    app.use(online.middleware());
    app.use(online.client({ path: '/api' }));
    app.post('/login', (req, res) => {
      (req.session as unknown as { user: User }).user = PEOPLE[Number(req.body.id)];
      res.sendStatus(204);
    });
    app.post('/api/messages', (_req, res) => res.sendStatus(204));
    const server = await listen(app);
    try {
      const ada = await signIn(server.base, 1);
      t += MINUTE;
      expect((await ada.post('/api/messages')).status).to.equal(204);
      expect((await online.lastSeen(1))?.getTime()).to.equal(t);
    } finally {
      await server.close();
      await online.close();
    }
  });

  it('fails early, naming the fix', () => {
    const codeOf = (options: object): string | undefined => {
      try {
        createOnlineTracker(options as never);
      } catch (error) {
        return (error as { code?: string }).code;
      }
      return undefined;
    };
    expect(codeOf({ idleAfter: '5m' })).to.equal('ERR_ONLINE_NOW_STATUS');
    expect(codeOf({ status: 'yes' })).to.equal('ERR_ONLINE_NOW_STATUS');
    expect(codeOf({ status: true, idleAfter: '10m', awayAfter: '5m' })).to.equal('ERR_ONLINE_NOW_AWAYAFTER');
    expect(codeOf({ status: true, idleAfter: -1 })).to.equal('ERR_ONLINE_NOW_IDLEAFTER');
    expect(() => createOnlineTracker({ idleAfter: 300 })).to.throw(/add \{ status: true \}/);
    // awayAfter's default follows a long idleAfter (twice it, a day at most).
    expect(codeOf({ status: true, idleAfter: '13h' })).to.equal(undefined);
    const store = new MemoryStore();
    createOnlineTracker({ store, status: true });
    expect(() => createOnlineTracker({ store, status: true, idleAfter: 60 })).to.throw(/different idleAfter or awayAfter/);
  });

  it('a profile field of the app’s named status or lastActive is dropped: those are the package’s', async () => {
    const { app, online } = statusSite({ profile: (u) => ({ name: u.name, status: 'admin', lastActive: 5 }) as never });
    const server = await listen(app);
    try {
      const ada = await signIn(server.base, 1);
      const [entry] = (await (await ada.get('/json')).json()) as Record<string, unknown>[];
      expect(entry).to.deep.equal({ name: 'Ada', id: 1, lastSeen: entry.lastSeen });
    } finally {
      await server.close();
      await online.close();
    }
  });
});

describe('status across processes (RedisStore; idleAfter 1 s, awayAfter 2 s: real time, as Redis’s clock cannot be moved)', () => {
  let redis: RedisServer;
  const opened: { close(): unknown }[] = [];
  before(async function () {
    requireBinary(this, REDIS_SERVER, 'apt-get install -y redis-server');
    redis = await RedisServer.start();
  });
  after(async () => {
    for (const o of opened.reverse()) await o.close();
    await redis?.stop();
  });

  it('a user active on one process reads idle, then away, on the other; a beat there that saw input makes them active everywhere, one that did not leaves them away', async () => {
    const prefix = uniquePrefix();
    const sites: { online: OnlineTracker<User>; store: RedisStore; server: Listening }[] = [];
    for (const kind of ['node-redis', 'ioredis'] as const) {
      const client: TestClient = await connect(kind, redis);
      opened.push(client);
      const store = new RedisStore({ client: client.client, prefix, syncInterval: 100 });
      const { app, online } = statusSite({ store, status: true, idleAfter: '1s', awayAfter: '2s' });
      opened.push(online);
      const server = await listen(app);
      opened.push(server);
      sites.push({ online, store, server });
    }
    const [a, b] = sites;
    // Sessions live in each process's memory: Ada signs in on both, as a sticky-less balancer would need.
    const adaOnA = await signIn(a.server.base, 1);
    const adaOnB = await signIn(b.server.base, 1);
    const tab = tabOf(await adaOnB.text('/njk'));
    await adaOnA.get('/njk');
    await synced(a, b);
    expect(await b.online.onlineStatus(1)).to.equal('active');
    await eventually(async () => expect(await b.online.onlineStatus(1)).to.equal('idle'), 5000);
    await eventually(async () => expect(await b.online.onlineStatus(1)).to.equal('away'), 5000);
    // A page on B that nobody touches keeps her online and away, on both.
    expect(await beat(b.server.base, adaOnB, tab, {})).to.equal(200);
    await synced(a, b);
    for (const s of sites) expect(await s.online.onlineStatus(1)).to.equal('away');
    expect(await beat(b.server.base, adaOnB, tab, { active: true })).to.equal(200);
    await synced(a, b);
    for (const s of sites) expect(await s.online.onlineStatus(1)).to.equal('active');
  });

  it('a heartbeat that saw no input, on a process a sync behind, does not undo activity another process recorded; a process without status shows no status fields', async () => {
    const prefix = uniquePrefix();
    const made: { online: OnlineTracker<User>; store: RedisStore; server: Listening }[] = [];
    // A syncs often; B only when asked (confirm), so its replica stays a sync behind.
    for (const [kind, syncInterval, status] of [
      ['node-redis', 100, true],
      ['ioredis', 60_000, true],
      ['node-redis', 100, false],
    ] as const) {
      const client: TestClient = await connect(kind, redis);
      opened.push(client);
      const store = new RedisStore({ client: client.client, prefix, syncInterval });
      // roomThreshold 300 s: B's minute between syncs is allowed for rooms.
      const { app, online } = statusSite(status ? { store, status: true, idleAfter: '1s', awayAfter: '2s', roomThreshold: 300 } : { store, roomThreshold: 300 });
      opened.push(online);
      const server = await listen(app);
      opened.push(server);
      made.push({ online, store, server });
    }
    const [a, b, plain] = made;
    const adaOnA = await signIn(a.server.base, 1);
    const adaOnB = await signIn(b.server.base, 1);
    const tab = tabOf(await adaOnB.text('/njk'));
    await b.store.confirm();
    await eventually(async () => expect(await b.online.onlineStatus(1)).to.equal('away'), 5000);
    // Ada comes back on A; her background tab on B beats before B has heard of it.
    await adaOnA.get('/njk');
    await a.store.confirm();
    expect(await b.online.onlineStatus(1), 'B, a sync behind').to.equal('away');
    expect(await beat(b.server.base, adaOnB, tab, { away: true })).to.equal(200);
    await b.store.confirm();
    await a.store.confirm();
    for (const [name, s] of [
      ['A', a],
      ['B', b],
    ] as const)
      expect(await s.online.onlineStatus(1), name).to.equal('active');
    // The process without status lists her with none of the fields status adds.
    await plain.store.confirm();
    const [entry] = (await (await (await signIn(plain.server.base, 2)).get('/json')).json()) as Record<string, unknown>[];
    const ada = ((await plain.online.list(5)) as unknown as Record<string, unknown>[]).find((e) => e.id === 1);
    expect(ada).not.to.equal(undefined);
    expect(Object.keys(ada!)).to.have.members(['id', 'name', 'lastSeen']);
    expect(entry).not.to.have.property('lastActive');
  });
});

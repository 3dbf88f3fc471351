import { expect } from 'chai';
import http from 'node:http';
import { createRequire } from 'node:module';
import session from 'express-session';
import nunjucks from 'nunjucks';
import Handlebars from 'handlebars';
import { createOnlineTracker, registerHandlebars, registerNunjucks, type OnlineTracker } from 'express-online-now';
import { BROWSER_AGENT, CookieBrowser, postFromPage } from './helpers/browser';
import { expressVersions, listen, type Listening } from './helpers/server';
import { eventually, sleep } from './helpers/wait';
import { SseStream } from './helpers/sse';

const require = createRequire(__filename);
const express = require('express') as typeof import('express');

const NUNJUCKS_PAGE = `<h1>Order {{ id }}</h1>
<p>Here: <span data-online-here-count="{{ onlineHereRoom }}">{{ onlineHereCount }}</span></p>
<ul data-online-here="{{ onlineHereRoom }}">{{ onlineHereHtml() }}</ul>
<div data-online-lock="{{ onlineHereRoom }}">{{ onlineLockHtml() }}</div>
{{ onlineAnnounceHtml() }}
{% for v in onlineHere %}<i class="viewer" data-mode="{{ v.mode }}">{{ v.name }}</i>{% endfor %}
{{ onlineScript() }}`;

const HANDLEBARS_PAGE = `<h1>Order {{id}}</h1>
<p>Here: <span data-online-here-count="{{onlineHereRoom}}">{{onlineHereCount}}</span></p>
<ul data-online-here="{{onlineHereRoom}}">{{onlineHereHtml}}</ul>
<div data-online-lock="{{onlineHereRoom}}">{{onlineLockHtml}}</div>
{{onlineAnnounceHtml}}
{{#each onlineHere}}<i class="viewer" data-mode="{{mode}}">{{name}}</i>{{/each}}
{{onlineScript}}`;

interface Users {
  [id: string]: { id: number; name: string; hidden?: boolean; staff?: boolean };
}

function roomApp(online: OnlineTracker, users: Users): ReturnType<typeof express> {
  const app = express();
  const env = registerNunjucks(new nunjucks.Environment(null, { autoescape: true }));
  const hbs = registerHandlebars(Handlebars.create());
  const hbsPage = hbs.compile(HANDLEBARS_PAGE);
  app.use(express.urlencoded({ extended: false }));
  app.use(session({ secret: 'rooms test', resave: false, saveUninitialized: false }));
  app.use(online.client());
  app.get('/online-now/events', online.events({ interval: 50 }));
  app.use(online.middleware());
  app.post('/login', (req, res) => {
    (req.session as unknown as { user: unknown }).user = users[String(req.body.id)];
    res.sendStatus(204);
  });
  app.get('/orders/:id', async (req, res, next) => {
    try {
      await online.here(req, `order:${req.params.id}`, { mode: req.query.edit === '1' ? 'editing' : 'viewing' });
      const locals = { ...res.locals, id: req.params.id };
      res.type('html').send(req.query.engine === 'handlebars' ? hbsPage(locals) : env.renderString(NUNJUCKS_PAGE, locals));
    } catch (error) {
      next(error);
    }
  });
  app.get('/orders/:id/json', async (req, res, next) => {
    try {
      res.json(await online.here(req, `order:${req.params.id}`, { mode: req.query.edit === '1' ? 'editing' : 'viewing' }));
    } catch (error) {
      next(error);
    }
  });
  // What a mistake in here() looks like to the app: a rejected promise with a stable code.
  app.use((error: { code?: string }, _req: unknown, res: { status(n: number): { send(b: string): void } }, _next: unknown) => {
    void _next;
    res.status(500).send(String(error.code));
  });
  return app;
}

/** A browser tab's heartbeat or leave, from a signed-in browser. */
function post(base: string, browser: CookieBrowser, path: string, body: unknown, headers: Record<string, string> = {}): Promise<Response> {
  return postFromPage(base, path, body, { cookie: browser.cookieHeader, ...headers });
}

const tabOf = (html: string): string => /data-tab="([^"]+)"/.exec(html)?.[1] ?? '';

/** A browser signed in as user `id` (the test app's POST /login). */
async function signInAt(base: string, id: number): Promise<CookieBrowser> {
  const browser = new CookieBrowser(base);
  await browser.post('/login', { id: String(id) });
  return browser;
}

describe('rooms over HTTP: here(), the heartbeat and leave routes, and the events stream', () => {
  let server: Listening;
  let online: OnlineTracker;
  const users: Users = {
    1: { id: 1, name: 'Ada Lovelace' },
    2: { id: 2, name: 'Grace Hopper' },
    3: { id: 3, name: 'Mallory <b>', hidden: true },
    4: { id: 4, name: 'Staff', staff: true },
  };

  beforeEach(async () => {
    online = createOnlineTracker({
      roomThreshold: 30,
      hidden: (u: { hidden?: boolean }) => u.hidden === true,
      canSeeHidden: (req) => (req.session as unknown as { user?: { staff?: boolean } }).user?.staff === true,
    });
    server = await listen(roomApp(online, users));
  });

  afterEach(async () => {
    await online.close();
    await server.close();
  });

  const signedIn = (id: number): Promise<CookieBrowser> => signInAt(server.base, id);

  for (const engine of ['nunjucks', 'handlebars']) {
    it(`${engine}: two viewers see each other, the editor holds the lock, and the script tag carries the page's tab`, async () => {
      const ada = await signedIn(1);
      const grace = await signedIn(2);
      const first = await ada.text(`/orders/123?edit=1&engine=${engine}`);
      expect(first).to.contain('data-online-here-count="order:123">1<');
      expect(first).to.contain('You are editing');
      const page = await grace.text(`/orders/123?engine=${engine}`);
      expect(page).to.contain('data-online-here-count="order:123">2<');
      expect(page).to.match(/<i class="viewer" data-mode="editing">Ada Lovelace<\/i><i class="viewer" data-mode="viewing">Grace Hopper<\/i>/);
      expect(page).to.contain('Ada Lovelace is editing since');
      expect(page).to.contain('data-online-takeover');
      // The room's live region, empty until someone comes or goes.
      expect(page).to.contain('<div data-online-announce="order:123" aria-live="polite"></div>');
      expect(page).to.match(
        /<script src="\/online-now\/client\.js" data-tab="[A-Za-z0-9_-]{44}" data-interval="10000" data-events="\/online-now\/events" data-room="order:123" data-mode="viewing" defer><\/script>/,
      );
      // Another order is another room.
      expect(await grace.text(`/orders/456?engine=${engine}`)).to.contain('data-online-here-count="order:456">1<');
    });
  }

  it('a tab counts its user once; its leave takes it out at once; its heartbeats keep it in past the threshold', async () => {
    const ada = await signedIn(1);
    const tabs = [];
    for (let i = 0; i < 3; i++) tabs.push(tabOf(await ada.text('/orders/1')));
    const view = (await (await ada.get('/orders/1/json')).json()) as { count: number; entries: { tabs: number }[]; tab: string };
    expect(view.count).to.equal(1);
    expect(view.entries[0].tabs).to.equal(4);
    const left = await post(server.base, ada, '/online-now/leave', { room: 'order:1', tab: view.tab });
    expect(left.status).to.equal(204);
    const beat = await post(server.base, ada, '/online-now/beat', { room: 'order:1', tab: tabs[0], mode: 'viewing' });
    expect(beat.status).to.equal(200);
    const state = (await beat.json()) as { count: number; here: { name: string; tabs: number }[]; html: { here: string } };
    expect(state.count).to.equal(1);
    expect(state.here[0].tabs).to.equal(3);
    expect(state.html.here).to.contain('Ada Lovelace');
  });

  it('take over: the holder is told by the events stream, and the taker holds the lock', async () => {
    const ada = await signedIn(1);
    const grace = await signedIn(2);
    const adaTab = tabOf(await ada.text('/orders/9?edit=1'));
    const graceTab = tabOf(await grace.text('/orders/9'));
    const stream = await SseStream.open(`${server.base}/online-now/events?rooms=order:9`, { cookie: ada.cookieHeader });
    try {
      const first = await stream.next<{ lock: { tab: string; name: string } }>('here');
      expect(first.lock.tab).to.equal(adaTab);
      const taken = await post(server.base, grace, '/online-now/beat', { room: 'order:9', tab: graceTab, mode: 'editing', takeover: true });
      const state = (await taken.json()) as { lock: { tab: string; mine: boolean; name: string } };
      expect(state.lock).to.include({ tab: graceTab, mine: true, name: 'Grace Hopper' });
      const lock = await stream.next<{ holder: { tab: string; name: string }; previous: { tab: string } }>('lock');
      expect(lock.holder).to.include({ tab: graceTab, name: 'Grace Hopper' });
      expect(lock.previous.tab).to.equal(adaTab);
      const after = await stream.next<{ lock: { tab: string }; html: { lock: string } }>('here', (d) => d.lock.tab === graceTab);
      expect(after.html.lock).to.contain('Grace Hopper is editing since');
      // Ada's next heartbeat as an editor does not take the lock back.
      const back = await post(server.base, ada, '/online-now/beat', { room: 'order:9', tab: adaTab, mode: 'editing' });
      expect(((await back.json()) as { lock: { tab: string } }).lock.tab).to.equal(graceTab);
    } finally {
      stream.close();
    }
  });

  it('invisible mode: a hidden user is in nobody else’s room list or events, staff see them, and their lock says only “someone”', async () => {
    const ada = await signedIn(1);
    const mallory = await signedIn(3);
    const staff = await signedIn(4);
    await ada.text('/orders/5');
    const adaStream = await SseStream.open(`${server.base}/online-now/events?rooms=order:5`, { cookie: ada.cookieHeader });
    const staffTab = tabOf(await staff.text('/orders/5'));
    const staffStream = await SseStream.open(`${server.base}/online-now/events?rooms=order:5`, { cookie: staff.cookieHeader });
    try {
      await adaStream.next('here', (d: { count: number }) => d.count === 2);
      const malloryPage = await mallory.text('/orders/5?edit=1');
      expect(malloryPage, 'a hidden user sees themself').to.contain('Mallory &lt;b&gt;');
      const staffSees = await staffStream.next<{ here: { name: string; hidden?: boolean }[] }>('here', (d) => d.here.length === 3);
      expect(staffSees.here.map((e) => e.name)).to.include('Mallory <b>');
      expect(staffSees.here.find((e) => e.name === 'Mallory <b>')?.hidden).to.equal(true);
      // Ada's stream tells her only that the lock is held, never by whom.
      const lock = await adaStream.next<{ holder: { hidden?: boolean; name?: string; id?: number } }>('lock');
      expect(lock.holder).to.deep.include({ hidden: true });
      expect(lock.holder).not.to.have.any.keys('name', 'id', 'tab');
      const adaPage = await ada.text('/orders/5');
      expect(adaPage).not.to.contain('Mallory');
      expect(adaPage).to.contain('Someone is editing since');
      expect(adaStream.events.map((e) => e.data).join('\n')).not.to.contain('Mallory');
      void staffTab;
    } finally {
      adaStream.close();
      staffStream.close();
    }
  });

  it('events: only members get a room; counts and badges go to anyone; a guest’s room subscription is ignored', async () => {
    const ada = await signedIn(1);
    const grace = await signedIn(2);
    await grace.text('/orders/8');
    await ada.text('/orders/7');
    // Grace is signed in, but has not opened order 7: she gets its count of users online, never its viewers.
    const graceStream = await SseStream.open(`${server.base}/online-now/events?rooms=order:7&ids=1%0A2%0A99`, { cookie: grace.cookieHeader });
    const guestStream = await SseStream.open(`${server.base}/online-now/events?rooms=order:7`);
    try {
      const count = await graceStream.next<{ users: number }>('count');
      expect(count.users).to.equal(2);
      expect(await graceStream.next('online', (d: { id: string }) => d.id === '1')).to.include({ id: '1' });
      expect(await graceStream.next('offline', (d: { id: string }) => d.id === '99')).to.deep.equal({ id: '99' });
      await guestStream.next('count');
      await sleep(300);
      expect(graceStream.events.filter((e) => e.event === 'here')).to.have.length(0);
      expect(guestStream.events.filter((e) => e.event === 'here')).to.have.length(0);
      // Once she opens the page, she is a member, and the room comes.
      await grace.text('/orders/7');
      const ada2 = await SseStream.open(`${server.base}/online-now/events?rooms=order:7`, { cookie: grace.cookieHeader });
      try {
        expect((await ada2.next<{ count: number }>('here')).count).to.equal(2);
      } finally {
        ada2.close();
      }
    } finally {
      graceStream.close();
      guestStream.close();
    }
  });

  it('came online, went offline: a watched badge changes over the stream without reload', async () => {
    const ada = await signedIn(1);
    await ada.text('/orders/1');
    const stream = await SseStream.open(`${server.base}/online-now/events?ids=2&list=1`, { cookie: ada.cookieHeader });
    try {
      await stream.next('offline', (d: { id: string }) => d.id === '2');
      const grace = await signedIn(2);
      await grace.text('/orders/2');
      await stream.next('online', (d: { id: string }) => d.id === '2');
      const list = await stream.next<{ html: string }>('list', (d) => d.html.includes('Grace Hopper'));
      expect(list.html).to.contain('data-online-id="2"');
      expect((await stream.next<{ users: number }>('count', (d) => d.users === 2)).users).to.equal(2);
      await online.forget(2);
      await stream.next('offline', (d: { id: string }) => d.id === '2');
      await stream.next('count', (d: { users: number }) => d.users === 1);
      // Ada signs out: her stream ends (her browser reconnects as whoever it is now, with what that may see).
      await online.forget(1);
      await eventually(() => expect(stream.isClosed).to.equal(true), 2000);
    } finally {
      stream.close();
    }
  });

  it('a heartbeat echoes its tab’s signed claim; a forged or borrowed claim is ignored, so it takes no lock', async () => {
    const ada = await signedIn(1);
    const grace = await signedIn(2);
    const adaPage = await ada.text('/orders/33?edit=1');
    const adaTab = tabOf(adaPage);
    const echoed = JSON.parse(/data-claim="([^"]+)"/.exec(adaPage)![1].replace(/&quot;/g, '"')) as { claim: number; gen: number; since: number; sig: string };
    expect(echoed.gen).to.equal(0);
    // Ada's own echo is taken: she keeps the lock, and her reply gives her the record to echo next.
    const kept = (await (await post(server.base, ada, '/online-now/beat', { room: 'order:33', tab: adaTab, mode: 'editing', claim: echoed })).json()) as {
      lock: { tab: string };
      self: { sig: string };
    };
    expect(kept.lock.tab).to.equal(adaTab);
    expect(kept.self.sig).to.be.a('string');
    const graceTab = tabOf(await grace.text('/orders/33'));
    for (const claim of [
      { claim: 1, gen: 1e9, since: 0, sig: 'x'.repeat(22) },
      { claim: 1, gen: Number.MAX_SAFE_INTEGER, since: 0 },
      { claim: 1e16, gen: 5, since: 1 },
      echoed, // Ada's, for another tab
    ]) {
      const res = await post(server.base, grace, '/online-now/beat', { room: 'order:33', tab: graceTab, mode: 'editing', claim });
      expect(res.status).to.equal(200);
      expect(((await res.json()) as { lock: { tab: string } }).lock.tab, JSON.stringify(claim)).to.equal(adaTab);
    }
    // A plain takeover still works, and a valid date is shown.
    const taken = (await (await post(server.base, grace, '/online-now/beat', { room: 'order:33', tab: graceTab, mode: 'editing', takeover: true })).json()) as {
      lock: { tab: string };
      html: { lock: string };
    };
    expect(taken.lock.tab).to.equal(graceTab);
  });

  it('refuses what is not the session’s own: cross-site posts, bad bodies, guests, and a room name that is not one', async () => {
    const ada = await signedIn(1);
    const tab = tabOf(await ada.text('/orders/1'));
    expect((await post(server.base, ada, '/online-now/beat', { room: 'order:1', tab }, { 'sec-fetch-site': 'cross-site' })).status).to.equal(403);
    expect((await post(server.base, ada, '/online-now/beat', { room: 'order:1', tab }, { 'sec-fetch-site': '', origin: 'https://evil.example' })).status).to.equal(403);
    expect((await post(server.base, ada, '/online-now/beat', 'not json')).status).to.equal(400);
    expect((await post(server.base, ada, '/online-now/beat', { room: 'order:1', tab: 'short' })).status).to.equal(400);
    expect((await post(server.base, ada, '/online-now/beat', { room: 'x\u0000y', tab })).status).to.equal(400);
    expect((await post(server.base, ada, '/online-now/beat', { room: 'order:1', tab, mode: 'owning' })).status).to.equal(400);
    expect((await post(server.base, ada, '/online-now/beat', 'x'.repeat(5000))).status).to.equal(413);
    expect((await post(server.base, new CookieBrowser(server.base), '/online-now/beat', { room: 'order:1', tab })).status).to.equal(204); // a guest's page stops beating, with no error in its console
    const crossSiteEvents = await SseStream.open(`${server.base}/online-now/events`, { cookie: ada.cookieHeader, 'sec-fetch-site': 'cross-site' });
    expect(crossSiteEvents.status).to.equal(403);
    // Only a tab here() minted for this user and this room counts: not Grace's, not one of another room, not one made up.
    const grace = await signedIn(2);
    const graceTab = tabOf(await grace.text('/orders/1'));
    expect((await post(server.base, ada, '/online-now/leave', { room: 'order:1', tab: graceTab })).status).to.equal(403);
    expect((await post(server.base, ada, '/online-now/beat', { room: 'order:1', tab: graceTab, mode: 'editing', takeover: true })).status).to.equal(409);
    expect((await post(server.base, ada, '/online-now/beat', { room: 'order:2', tab })).status).to.equal(409);
    expect((await post(server.base, ada, '/online-now/beat', { room: 'order:secret', tab: 'A'.repeat(44) })).status).to.equal(409);
    expect(((await (await grace.get('/orders/1/json')).json()) as { count: number }).count).to.equal(2);
    // Nobody joined order:secret by naming it.
    expect(((await (await grace.get('/orders/secret/json')).json()) as { count: number }).count).to.equal(1);
    const bad = await ada.get('/orders/%00/json');
    expect(bad.status).to.equal(500);
    expect(await bad.text()).to.equal('ERR_ONLINE_NOW_ROOM');
  });

  for (const { name, express: expressN } of expressVersions) {
    it(`${name}: heartbeats work behind the app's own body parsers (json, urlencoded, text), and an empty body is refused, not hung`, async () => {
      const parsed = createOnlineTracker();
      const app = expressN();
      app.use(expressN.json());
      app.use(expressN.urlencoded({ extended: false }));
      app.use(session({ secret: 'parsers', resave: false, saveUninitialized: false }));
      app.use(parsed.client());
      app.get('/page', async (req, res) => {
        (req.session as unknown as { user: unknown }).user = { id: 1, name: 'Ada' };
        res.json(await parsed.here(req, 'r'));
      });
      const own = await listen(app as never);
      try {
        const ada = new CookieBrowser(own.base);
        const { tab } = (await (await ada.get('/page')).json()) as { tab: string };
        expect((await post(own.base, ada, '/online-now/beat', { room: 'r', tab })).status, 'text/plain').to.equal(200);
        expect((await post(own.base, ada, '/online-now/beat', { room: 'r', tab }, { 'content-type': 'application/json' })).status, 'json').to.equal(200);
        const empty = await post(own.base, ada, '/online-now/beat', '', { 'content-type': 'application/json' });
        expect(empty.status).to.equal(400);
      } finally {
        await parsed.close();
        await own.close();
      }
    });
  }

  it('events: a large room (400 viewers, a ~70 KB state) reaches its members; one large message alone does not count as a slow client', async () => {
    const big = createOnlineTracker({ maxRoomMembers: 1000 });
    const app = express();
    app.use(session({ secret: 'big room', resave: false, saveUninitialized: false }));
    app.get('/join', async (req, res) => {
      (req.session as unknown as { user: unknown }).user = { id: 0, name: 'Ada Lovelace' };
      res.json(await big.here(req, 'town-hall'));
    });
    app.get('/events', big.events({ interval: 50 }));
    const own = await listen(app as never);
    try {
      for (let i = 1; i <= 400; i++) {
        await big.store.roomTouch!(
          {
            room: 'town-hall',
            tab: `tab-of-user-${String(i).padStart(5, '0')}`,
            key: String(i),
            id: i,
            profile: { name: `Member number ${i} of the town hall` },
            mode: 'viewing',
            takeover: false,
          },
          { seesHidden: false },
        );
      }
      const ada = new CookieBrowser(own.base);
      await ada.get('/join');
      const stream = await SseStream.open(`${own.base}/events?rooms=town-hall`, { cookie: ada.cookieHeader });
      try {
        const state = await stream.next<{ count: number }>('here');
        expect(state.count).to.equal(401);
        expect(stream.events.find((e) => e.event === 'here')!.data.length).to.be.greaterThan(64 * 1024);
        expect(stream.isClosed).to.equal(false);
      } finally {
        stream.close();
      }
    } finally {
      await big.close();
      await own.close();
    }
  });

  it('events: refuses clients past maxConnections (503, the browser retries), and ends every stream when the tracker closes', async () => {
    const small = createOnlineTracker();
    const app = express();
    const events = small.events({ maxConnections: 2, maxGuestConnections: 2 });
    app.get('/events', events);
    const own = await listen(app as never);
    try {
      expect(events.connections).to.equal(0);
      const first = await SseStream.open(`${own.base}/events`);
      const second = await SseStream.open(`${own.base}/events`);
      expect([first.status, second.status]).to.deep.equal([200, 200]);
      const third = await SseStream.open(`${own.base}/events`);
      expect(third.status).to.equal(503);
      expect(events.connections, 'the handler counts the streams it holds').to.equal(2);
      await first.next('count');
      await small.close();
      await eventually(() => expect([first.isClosed, second.isClosed]).to.deep.equal([true, true]), 2000);
      expect(events.connections).to.equal(0);
      expect((await SseStream.open(`${own.base}/events`)).status, 'after close()').to.equal(503);
    } finally {
      await own.close();
    }
  });

  it('events: a stream ends after maxAge, so who it is for is read afresh when the browser reconnects', async () => {
    const aging = createOnlineTracker();
    const app = express();
    app.get('/events', aging.events({ interval: 50, maxAge: 300 }));
    const own = await listen(app as never);
    try {
      const stream = await SseStream.open(`${own.base}/events`);
      await stream.next('count');
      expect(stream.isClosed).to.equal(false);
      await eventually(() => expect(stream.isClosed).to.equal(true), 2000);
      expect(() => aging.events({ maxAge: 0 })).to.throw(TypeError, /maxAge/);
    } finally {
      await aging.close();
      await own.close();
    }
  });

  it('serves the client script with a validator, and the tag only once client() is mounted', async () => {
    const res = await fetch(`${server.base}/online-now/client.js`);
    expect(res.status).to.equal(200);
    expect(res.headers.get('content-type')).to.match(/^text\/javascript/);
    const etag = res.headers.get('etag') as string;
    expect((await res.text()).length).to.be.greaterThan(500);
    expect((await fetch(`${server.base}/online-now/client.js`, { headers: { 'if-none-match': etag } })).status).to.equal(304);
  });
});

describe('rooms over HTTP at the smallest bounds (maxRooms 1, maxRoomMembers 1)', () => {
  it('the lock holder survives a flood of rooms, tabs and heartbeats from other users: every page and every beat still shows them editing', async () => {
    const online = createOnlineTracker({ maxRooms: 1, maxRoomMembers: 1 });
    const users: Users = { 1: { id: 1, name: 'Ada Lovelace' } };
    for (let id = 2; id <= 11; id++) users[id] = { id, name: `Flooder ${id}` };
    const server = await listen(roomApp(online, users));
    try {
      const login = (id: number): Promise<CookieBrowser> => signInAt(server.base, id);
      const ada = await login(1);
      const page = await ada.text('/orders/1?edit=1');
      expect(page).to.contain('You are editing');
      const adaTab = tabOf(page);
      const flooders = await Promise.all([2, 3, 4, 5, 6, 7, 8, 9, 10, 11].map(login));
      for (let round = 0; round < 20; round++) {
        await Promise.all(
          flooders.map(async (f, i) => {
            const tab = tabOf(await f.text(`/orders/${round % 2 === 0 ? 1 : 100 + round * 10 + i}?edit=1`));
            await post(server.base, f, '/online-now/beat', { room: 'order:1', tab, mode: 'editing' });
          }),
        );
        const beat = (await (await post(server.base, ada, '/online-now/beat', { room: 'order:1', tab: adaTab, mode: 'editing' })).json()) as { lock: { tab?: string } | null };
        expect(beat.lock?.tab, `round ${round}: Ada's beat`).to.equal(adaTab);
        const seen = await flooders[round % flooders.length].text('/orders/1');
        expect(seen, `round ${round}: a flooder's page`).to.contain('Ada Lovelace is editing since');
      }
    } finally {
      await online.close();
      await server.close();
    }
  });
});

describe('event streams under a flood: budgets per user, per address and for guests, and authorize()', () => {
  let online: OnlineTracker;
  let server: Listening;
  const users: Users = { 1: { id: 1, name: 'Ada Lovelace' }, 2: { id: 2, name: 'Grace Hopper' }, 3: { id: 3, name: 'Alan Turing' }, 9: { id: 9, name: 'Banned' } };

  beforeEach(async () => {
    online = createOnlineTracker();
    const app = express();
    app.use(express.urlencoded({ extended: false }));
    app.use(session({ secret: 'floods', resave: false, saveUninitialized: false }));
    app.use(online.client());
    const signedIn = (req: { session?: unknown }): { id: number } | undefined => (req.session as { user?: { id: number } } | undefined)?.user;
    // A user the app bans gets no stream; everyone else who may load pages does (the README's example, with a check).
    app.get('/online-now/events', online.events({ interval: 50, maxConnections: 200, maxPerAddress: 5, maxPerUser: 3, authorize: (req) => signedIn(req as never)?.id !== 9 }));
    app.use(online.middleware());
    app.post('/login', (req, res) => {
      (req.session as unknown as { user: unknown }).user = users[String(req.body.id)];
      res.sendStatus(204);
    });
    app.post('/logout', async (req, res) => {
      await online.forget((req.session as unknown as { user: unknown }).user as never);
      req.session.destroy(() => res.sendStatus(204));
    });
    app.get('/', (_req, res) => res.sendStatus(204));
    server = await listen(app as never);
  });

  afterEach(async () => {
    await online.close();
    await server.close();
  });

  const signedIn = (id: number): Promise<CookieBrowser> => signInAt(server.base, id);

  it('a flood of 10,000 streams from one client takes none of the signed-in users’ streams: both keep getting updates', async function () {
    this.timeout(120_000);
    const ada = await signedIn(1);
    const grace = await signedIn(2);
    const adaStream = await SseStream.open(`${server.base}/online-now/events?ids=3`, { cookie: ada.cookieHeader });
    const graceStream = await SseStream.open(`${server.base}/online-now/events?ids=3`, { cookie: grace.cookieHeader });
    await adaStream.next('offline', (d: { id?: string }) => d.id === '3');
    // One client (one address, no session) asks for 10,000 streams, 200 at a time, and holds what it gets.
    const agent = new http.Agent({ keepAlive: true, maxSockets: 200 });
    const held: http.IncomingMessage[] = [];
    const statuses = new Map<number, number>();
    const ask = (): Promise<void> =>
      new Promise((resolve, reject) => {
        const req = http.get(`${server.base}/online-now/events?ids=${'1%0A2%0A3'}`, { agent, headers: { 'user-agent': BROWSER_AGENT } }, (res) => {
          statuses.set(res.statusCode!, (statuses.get(res.statusCode!) ?? 0) + 1);
          if (res.statusCode === 200) held.push(res);
          else res.resume();
          resolve();
        });
        req.on('error', reject);
      });
    for (let sent = 0; sent < 10_000; sent += 200) await Promise.all(Array.from({ length: 200 }, ask));
    expect(statuses.get(200), 'streams the flooding address got').to.equal(5);
    expect(statuses.get(429)).to.equal(10_000 - 5);
    // Alan signs in and out: both signed-in streams see it.
    const alan = await signedIn(3);
    await alan.get('/');
    await adaStream.next('online', (d: { id?: string }) => d.id === '3');
    await graceStream.next('online', (d: { id?: string }) => d.id === '3');
    await alan.post('/logout');
    await adaStream.next('offline', (d: { id?: string }) => d.id === '3', 5000, 1);
    await graceStream.next('offline', (d: { id?: string }) => d.id === '3', 5000, 1);
    // And a new signed-in user still gets a stream.
    const late = await SseStream.open(`${server.base}/online-now/events`, { cookie: (await signedIn(3)).cookieHeader });
    expect(late.status).to.equal(200);
    for (const res of held) res.destroy();
    agent.destroy();
    for (const s of [adaStream, graceStream, late]) s.close();
  });

  it('per user: a fourth stream of one user gets 429 (the browser retries); authorize() refuses whom the app bans; guests have their share', async () => {
    const ada = await signedIn(1);
    const streams = [];
    for (let i = 0; i < 3; i++) streams.push(await SseStream.open(`${server.base}/online-now/events`, { cookie: ada.cookieHeader }));
    expect(streams.map((s) => s.status)).to.deep.equal([200, 200, 200]);
    expect((await SseStream.open(`${server.base}/online-now/events`, { cookie: ada.cookieHeader })).status).to.equal(429);
    // One closes: room for another.
    streams[0].close();
    await eventually(async () => {
      const again = await SseStream.open(`${server.base}/online-now/events`, { cookie: ada.cookieHeader });
      expect(again.status).to.equal(200);
      streams.push(again);
    }, 3000);
    expect((await SseStream.open(`${server.base}/online-now/events`, { cookie: (await signedIn(9)).cookieHeader })).status).to.equal(403);
    for (const s of streams) s.close();
    expect(() => online.events({ authorize: true as never })).to.throw(TypeError, /authorize/);
    expect(() => online.events({ maxPerUser: 0 })).to.throw(TypeError, /maxPerUser/);
    expect(() => online.events({ maxPerAddress: 1.5 })).to.throw(TypeError, /maxPerAddress/);
    expect(() => online.events({ maxGuestConnections: -1 })).to.throw(TypeError, /maxGuestConnections/);
  });

  it('guests in all never take more than maxGuestConnections: signed-in users keep the rest', async () => {
    const small = createOnlineTracker();
    const app = express();
    app.use(express.urlencoded({ extended: false }));
    app.use(session({ secret: 'floods', resave: false, saveUninitialized: false }));
    app.post('/login', (req, res) => {
      (req.session as unknown as { user: unknown }).user = users[String(req.body.id)];
      res.sendStatus(204);
    });
    app.get('/events', small.events({ maxConnections: 4, maxGuestConnections: 2, maxPerAddress: 100 }));
    const own = await listen(app as never);
    try {
      const guests = [];
      for (let i = 0; i < 3; i++) guests.push(await SseStream.open(`${own.base}/events`));
      expect(guests.map((g) => g.status)).to.deep.equal([200, 200, 503]);
      const ada = await signInAt(own.base, 1);
      const grace = await signInAt(own.base, 2);
      const members = [await SseStream.open(`${own.base}/events`, { cookie: ada.cookieHeader }), await SseStream.open(`${own.base}/events`, { cookie: grace.cookieHeader })];
      expect(members.map((m) => m.status)).to.deep.equal([200, 200]);
      for (const s of [...guests, ...members]) s.close();
    } finally {
      await small.close();
      await own.close();
    }
  });
});

// Invisible mode: a hidden user is absent from everything every other viewer
// gets (the whole HTML of pages in both engines, and every local), while they
// see themselves and staff see them, marked. Memory store, and Redis with two
// app instances (each its own client and replica) sharing one Redis.
import { expect } from 'chai';
import Handlebars from 'handlebars';
import nunjucks from 'nunjucks';
import session from 'express-session';
import { createOnlineTracker, registerHandlebars, registerNunjucks, type OnlineTracker, type Store } from 'express-online-now';
import { CookieBrowser } from './helpers/browser';
import { expressVersions, listen, type Listening } from './helpers/server';
import { describeEachStore, MEMORY } from './helpers/stores';
import { eventually } from './helpers/wait';

const express = expressVersions[0].express;

// What must never reach a non-staff viewer.
const HIDDEN_ID = 'zed-4417';
const HIDDEN_NAME = 'Zed Quillfeather';

interface User {
  id: string;
  name: string;
  invisible: boolean;
  staff: boolean;
}

// The same page in both engines: counts, the list, and a badge with last-seen for every known user.
const NUNJUCKS_PAGE = `<p>{{ onlineCount }} online, {{ onlineHidden }} hidden</p>
<ul>{% for u in onlineNow %}<li data-id="{{ u.id }}">{{ u.name }}{% if u.hidden %} (hidden){% endif %} {{ u | timeAgo }}</li>{% endfor %}</ul>
<p>{{ onlineNowIds | join(",") }}</p>
<table>{% for u in everyone %}<tr><td>{% if u | isOnline %}{{ u.name }} online {{ u | lastSeen }} {{ u | timeAgo(html=true) }}{% else %}offline{% endif %}</td></tr>{% endfor %}</table>`;
const HANDLEBARS_PAGE = `<p>{{onlineCount}} online, {{onlineHidden}} hidden</p>
<ul>{{#each onlineNow}}<li data-id="{{id}}">{{name}}{{#if hidden}} (hidden){{/if}} {{timeAgo this}}</li>{{/each}}</ul>
<p>{{#each onlineNowIds}}{{this}},{{/each}}</p>
<table>{{#each everyone}}<tr><td>{{#if (isOnline this)}}{{name}} online {{lastSeen this}} {{timeAgo this html=true}}{{else}}offline{{/if}}</td></tr>{{/each}}</table>`;

/** `everyone` is the site's user table, shared by its instances. */
function makeApp(store: Store, everyone: User[] = []): { app: ReturnType<typeof express>; online: OnlineTracker } {
  const online = createOnlineTracker<User>({
    store,
    hidden: (user) => user.invisible,
    canSeeHidden: (req) => (req.session as unknown as { user?: User }).user?.staff === true,
  });
  const env = registerNunjucks(new nunjucks.Environment(null, { autoescape: true }));
  const hbs = registerHandlebars(Handlebars.create());
  const hbsPage = hbs.compile(HANDLEBARS_PAGE);
  const app = express();
  app.use(express.urlencoded({ extended: false }));
  app.use(session({ secret: 'test', resave: false, saveUninitialized: false }));
  app.use(online.middleware());
  app.post('/login', (req, res) => {
    const user: User = { id: String(req.body.id), name: String(req.body.name), invisible: req.body.invisible === '1', staff: req.body.staff === '1' };
    if (!everyone.some((u) => u.id === user.id)) everyone.push(user);
    (req.session as unknown as { user: User }).user = user;
    res.sendStatus(204);
  });
  app.post('/visibility', (req, res) => {
    const user = (req.session as unknown as { user: User }).user;
    user.invisible = req.body.invisible === '1';
    res.sendStatus(204);
  });
  app.post('/guest', (req, res) => {
    (req.session as unknown as { visited: boolean }).visited = true;
    res.sendStatus(204);
  });
  app.get('/page/nunjucks', (_req, res) => res.send(env.renderString(NUNJUCKS_PAGE, { ...res.locals, everyone })));
  app.get('/page/handlebars', (_req, res) => res.send(hbsPage({ ...res.locals, everyone })));
  // Every local, as JSON, with the functions asked about every user (by object and by id).
  app.get('/locals', (_req, res) => {
    const l = res.locals;
    res.json({
      ...l,
      isOnline: everyone.flatMap((u) => [l.isOnline(u), l.isOnline(u.id)]),
      lastSeen: everyone.flatMap((u) => [l.lastSeen(u), l.lastSeen(u.id)]),
      timeAgo: everyone.map((u) => l.timeAgo(u)),
    });
  });
  return { app, online };
}

describeEachStore(
  (kind) => `invisible mode (${kind.name})`,
  { syncInterval: 50, kinds: [MEMORY, { name: 'Redis store, two app instances', redis: ['node-redis', 'ioredis'] }] },
  ({ stores: makeStores }) => {
    let servers: Listening[] = [];
    let trackers: OnlineTracker[] = [];

    afterEach(async () => {
      for (const s of servers) await s.close();
      for (const t of trackers) await t.close();
      servers = [];
      trackers = [];
    });

    /** Two sites on the memory store would be two presences: then one instance serves everyone. */
    async function start(): Promise<[string, string]> {
      const stores = makeStores();
      const everyone: User[] = [];
      for (const store of stores) {
        const { app, online } = makeApp(store, everyone);
        trackers.push(online);
        servers.push(await listen(app));
      }
      return [servers[0].base, servers[servers.length - 1].base];
    }

    async function signIn(base: string, form: Record<string, string>): Promise<CookieBrowser> {
      const browser = new CookieBrowser(base);
      expect((await browser.post('/login', form)).status).to.equal(204);
      await browser.get('/locals');
      return browser;
    }

    /** The same session on the other instance (sessions live in each app's memory here, so sign in there too). */
    async function pages(browser: CookieBrowser): Promise<string[]> {
      return [await browser.text('/page/nunjucks'), await browser.text('/page/handlebars'), await browser.text('/locals')];
    }

    it('leaves a hidden user out of every page and local a guest or a member gets, in both engines', async () => {
      const [a, b] = await start();
      await signIn(a, { id: HIDDEN_ID, name: HIDDEN_NAME, invisible: '1' });
      await signIn(a, { id: 'amy', name: 'Amy Visible' });
      const member = await signIn(b, { id: 'bob', name: 'Bob Member' });
      const guest = new CookieBrowser(b);
      await guest.post('/guest');
      // The other instance has caught up once the visible user shows there.
      await eventually(async () => expect(await member.text('/page/nunjucks')).to.contain('Amy Visible'));
      for (const viewer of [member, guest]) {
        for (const html of await pages(viewer)) {
          expect(html).not.to.contain(HIDDEN_ID);
          expect(html).not.to.contain(HIDDEN_NAME);
          expect(html).not.to.contain('Zed');
        }
        const locals = JSON.parse(await viewer.text('/locals')) as { onlineCount: number; onlineHidden: number; onlineNowIds: string[] };
        expect(locals.onlineNowIds).to.include('amy');
        expect(locals.onlineCount).to.equal(2);
        // Not even the number: it would tick up as someone went offline, telling they went invisible.
        expect(locals.onlineHidden).to.equal(0);
      }
      // Offline and hidden read the same: the hidden user's row is the row of someone never seen.
      const html = await member.text('/page/nunjucks');
      expect(html.match(/<td>offline<\/td>/g)).to.have.length(1);
    });

    it('shows a hidden user to themselves and to staff, marked hidden, with a last-seen', async () => {
      const [a, b] = await start();
      const zed = await signIn(a, { id: HIDDEN_ID, name: HIDDEN_NAME, invisible: '1' });
      const staff = await signIn(b, { id: 'sue', name: 'Sue Staff', staff: '1' });
      await eventually(async () => expect(await staff.text('/page/handlebars')).to.contain(HIDDEN_NAME));
      for (const [viewer, engine] of [
        [zed, 'nunjucks'],
        [zed, 'handlebars'],
        [staff, 'nunjucks'],
        [staff, 'handlebars'],
      ] as const) {
        const html = await viewer.text(`/page/${engine}`);
        expect(html).to.contain(`<li data-id="${HIDDEN_ID}">${HIDDEN_NAME} (hidden) now</li>`);
        expect(html).to.match(new RegExp(`${HIDDEN_NAME} online .+ <time datetime=`));
      }
      const locals = JSON.parse(await staff.text('/locals')) as { onlineNow: { id: string; hidden?: boolean }[]; onlineCount: number; onlineHidden: number };
      expect(locals.onlineNow.find((e) => e.id === HIDDEN_ID)?.hidden).to.equal(true);
      expect(locals.onlineNow.find((e) => e.id === 'sue')?.hidden).to.equal(undefined);
      expect([locals.onlineCount, locals.onlineHidden]).to.deep.equal([1, 1]);
    });

    it('takes hiding and unhiding effect on the very next request, on every instance', async () => {
      const [a, b] = await start();
      const zed = await signIn(a, { id: HIDDEN_ID, name: HIDDEN_NAME });
      const member = await signIn(b, { id: 'bob', name: 'Bob Member' });
      await eventually(async () => expect(await member.text('/locals')).to.contain(HIDDEN_NAME));
      await zed.post('/visibility', { invisible: '1' });
      await zed.get('/locals'); // the next request is the first hidden one
      await eventually(async () => expect(await member.text('/locals')).not.to.contain(HIDDEN_ID));
      for (const html of await pages(member)) expect(html).not.to.contain(HIDDEN_NAME);
      await zed.post('/visibility', { invisible: '0' });
      await zed.get('/locals');
      await eventually(async () => expect(await member.text('/page/handlebars')).to.contain(HIDDEN_NAME));
    });

    it('keeps a user hidden when another instance marks them active by bare id (tracker.touch(id))', async () => {
      const [a, b] = await start();
      const zed = await signIn(a, { id: HIDDEN_ID, name: HIDDEN_NAME });
      const member = await signIn(b, { id: 'bob', name: 'Bob Member' });
      await eventually(async () => expect(await member.text('/locals')).to.contain(HIDDEN_NAME));
      await zed.post('/visibility', { invisible: '1' });
      await zed.get('/locals');
      await trackers[trackers.length - 1].touch(HIDDEN_ID); // a websocket ping, served by the other instance
      await eventually(async () => expect(await member.text('/locals')).not.to.contain(HIDDEN_ID));
      for (let i = 0; i < 5; i++) {
        await trackers[trackers.length - 1].touch(HIDDEN_ID);
        await new Promise((resolve) => setTimeout(resolve, 60));
        expect(await member.text('/locals')).not.to.contain(HIDDEN_ID);
      }
    });

    it('keeps hidden users out of the tracker’s own answers unless asked', async () => {
      const [a] = await start();
      await signIn(a, { id: HIDDEN_ID, name: HIDDEN_NAME, invisible: '1' });
      await signIn(a, { id: 'amy', name: 'Amy Visible' });
      const online = trackers[0];
      expect((await online.list()).map((e) => e.id)).to.deep.equal(['amy']);
      expect((await online.list(10, { hidden: true })).map((e) => [e.id, e.hidden])).to.deep.equal([
        ['amy', undefined],
        [HIDDEN_ID, true],
      ]);
      expect(await online.isOnline(HIDDEN_ID)).to.equal(false);
      expect(await online.lastSeen(HIDDEN_ID)).to.equal(null);
      expect(await online.isOnline(HIDDEN_ID, { hidden: true })).to.equal(true);
      expect(await online.count()).to.equal(1);
      expect(await online.counts()).to.deep.equal({ users: 1, hidden: 1, guests: 0, bots: 0 });
    });
  },
);

describe('invisible mode, callbacks that fail', () => {
  it('hides a user whose hidden() throws, and shows no one to a viewer whose canSeeHidden() throws', async () => {
    const errors: string[] = [];
    const online = createOnlineTracker<{ id: number; name: string }>({
      hidden: (user) => {
        if (user.id === 1) throw new Error('settings unavailable');
        return false;
      },
      canSeeHidden: () => {
        throw new Error('roles unavailable');
      },
      onError: (error) => errors.push(error.message),
    });
    const app = express();
    app.use((req, _res, next) => {
      (req as unknown as { user: unknown }).user = { id: Number(req.query.id), name: `User ${String(req.query.id)}` };
      next();
    });
    app.use(online.middleware());
    app.get('/', (_req, res) => res.json({ ids: res.locals.onlineNowIds, hidden: res.locals.onlineHidden }));
    const server = await listen(app);
    try {
      await fetch(`${server.base}/?id=1`);
      const res = (await (await fetch(`${server.base}/?id=2`)).json()) as { ids: number[]; hidden: number };
      expect(res).to.deep.equal({ ids: [2], hidden: 0 });
      expect(errors).to.deep.equal(['settings unavailable', 'roles unavailable']);
    } finally {
      await server.close();
      await online.close();
    }
  });
});

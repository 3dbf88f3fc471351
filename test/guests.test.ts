import { expect } from 'chai';
import express from 'express';
import session from 'express-session';
import nunjucks from 'nunjucks';
import Handlebars from 'handlebars';
import { createOnlineTracker, registerHandlebars, registerNunjucks, type OnlineTracker } from 'express-online-now';
import { BROWSER_AGENT, CookieBrowser } from './helpers/browser';
import { listen, type Listening } from './helpers/server';
import { describeEachStore } from './helpers/stores';
import { eventually } from './helpers/wait';

// Issue #23: with express-session's recommended settings (saveUninitialized:
// false), a signed-out browser never gets a session, and guests used to read 0.
// Now a guest counts from their first page, in what the page shows, in both
// engines and on both stores.
const PAGE = '<p>{n} online, {g} guests</p>';
const nunjucksEnv = new nunjucks.Environment(null, { autoescape: true });
registerNunjucks(nunjucksEnv);
const hbs = Handlebars.create();
registerHandlebars(hbs);
const engines = {
  nunjucks: (locals: object) => nunjucksEnv.renderString(PAGE.replace('{n}', '{{ onlineCount }}').replace('{g}', '{{ onlineGuests }}'), locals),
  handlebars: hbs.compile(PAGE.replace('{n}', '{{onlineCount}}').replace('{g}', '{{onlineGuests}}')),
};

const USERS: Record<string, { id: number; name: string }> = { ada: { id: 1, name: 'Ada Lovelace' }, grace: { id: 2, name: 'Grace Hopper' } };

describeEachStore(
  (kind) => `guests with express-session's recommended options (${kind.name})`,
  { syncInterval: 100 },
  ({ store: makeStore }) => {
    let server: Listening | undefined;
    let online: OnlineTracker | undefined;

    afterEach(async () => {
      await server?.close();
      await online?.close();
    });

    async function start(): Promise<string> {
      const store = makeStore();
      online = createOnlineTracker({ store, trackGuests: true, onError: (error) => expect.fail(error.message) });
      const app = express();
      app.use(express.urlencoded({ extended: false }));
      app.use(session({ secret: 'guests test', resave: false, saveUninitialized: false })); // exactly as express-session recommends
      app.use(online.middleware());
      app.post('/login', (req, res) => {
        (req.session as unknown as { user: unknown }).user = USERS[String(req.body.username)];
        res.redirect(303, '/nunjucks');
      });
      app.get('/:engine', (req, res) => {
        res.send(engines[req.params.engine as keyof typeof engines](res.locals));
      });
      server = await listen(app);
      return server.base;
    }

    for (const engine of Object.keys(engines)) {
      it(`${engine}: a signed-out browser counts on its first page; signed-in users never count as guests`, async () => {
        const base = await start();
        const ada = new CookieBrowser(base);
        const grace = new CookieBrowser(base);
        expect((await ada.post('/login', { username: 'ada' })).status).to.equal(303);
        expect((await grace.post('/login', { username: 'grace' })).status).to.equal(303);

        const first = new CookieBrowser(base);
        expect(await first.text(`/${engine}`)).to.equal('<p>2 online, 1 guests</p>');
        expect(first.cookieNames).to.deep.equal(['online_now_guest']); // no session was saved for it
        const second = new CookieBrowser(base);
        expect(await second.text(`/${engine}`)).to.equal('<p>2 online, 2 guests</p>');
        expect(await first.text(`/${engine}`)).to.equal('<p>2 online, 2 guests</p>'); // the same browser, counted once
        // A Redis store's replica hears of other requests at its sync; its own page is exact at once.
        await eventually(async () => expect(await ada.text(`/${engine}`)).to.equal('<p>2 online, 2 guests</p>'));

        // A guest who signs in is a user from the response on, a guest no more.
        expect((await first.post('/login', { username: 'ada' })).status).to.equal(303);
        expect(await first.text(`/${engine}`)).to.equal('<p>2 online, 1 guests</p>');
      });
    }
  },
);

describe('the guest cookie over HTTPS', () => {
  it('is Secure when the request came over HTTPS (req.secure, here through a trusted proxy), and not otherwise', async () => {
    // Guests only, and no session: guests need none.
    const online = createOnlineTracker({ trackGuests: true, getUser: () => undefined, onError: (error) => expect.fail(error.message) });
    const app = express();
    app.set('trust proxy', 'loopback');
    app.use(online.middleware());
    app.get('/', (_req, res) => res.send(String(res.locals.onlineGuests)));
    const server = await listen(app);
    try {
      const over = async (proto: string) => (await fetch(`${server.base}/`, { headers: { 'x-forwarded-proto': proto, 'user-agent': BROWSER_AGENT } })).headers.getSetCookie();
      const secure = await over('https');
      const plain = await over('http');
      expect(secure).to.have.length(1);
      expect(secure[0]).to.match(/^online_now_guest=[\w-]{22}; Path=\/; HttpOnly; SameSite=Lax; Secure$/);
      expect(plain).to.have.length(1);
      expect(plain[0]).to.match(/^online_now_guest=[\w-]{22}; Path=\/; HttpOnly; SameSite=Lax$/);
    } finally {
      await server.close();
      await online.close();
    }
  });
});

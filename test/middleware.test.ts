import { expect } from 'chai';
import { type OnlineTracker } from 'express-online-now';
import { presenceApp, type LocalsJson } from './helpers/app';
import { BROWSER_AGENT, CookieBrowser } from './helpers/browser';
import { expressVersions, listen, type Listening } from './helpers/server';
import { describeEachStore, MEMORY, type StoreKind } from './helpers/stores';
import { sleep } from './helpers/wait';

// Every rule of the contract, for every store: the memory store, and the Redis store with each client.
const storeKinds: StoreKind[] = [MEMORY, { name: 'Redis store, node-redis', redis: ['node-redis'] }, { name: 'Redis store, ioredis', redis: ['ioredis'] }];

for (const { name, express } of expressVersions)
  describeEachStore(
    (kind) => `middleware over HTTP (${name}, ${kind.name})`,
    { syncInterval: 100, kinds: storeKinds },
    ({ store: makeStore }) => {
      let server: Listening | undefined;
      let online: OnlineTracker | undefined;
      afterEach(async () => {
        await server?.close();
        await online?.close();
        server = undefined;
        online = undefined;
      });

      async function start(options: Parameters<typeof presenceApp>[1] = {}) {
        const made = presenceApp(express, { store: makeStore(), ...options });
        online = made.online;
        server = await listen(made.app);
        return { online, browser: () => new CookieBrowser(server!.base) };
      }

      async function signIn(browser: CookieBrowser, id: string | number, extra: Record<string, string> = {}) {
        const res = await browser.post('/login', { id: String(id), type: typeof id, ...extra });
        expect(res.status).to.equal(204);
        // The middleware ran before the login route set the user; the next page is the first signed-in one.
        await browser.get('/locals');
      }

      it('counts the request’s own user in its own page', async () => {
        const { browser } = await start();
        const ann = browser();
        await signIn(ann, 1, { name: 'Ann' });
        const locals = await ann.json<LocalsJson>('/locals?ask=[1]');
        expect(locals.onlineCount).to.equal(1);
        expect(locals.onlineNowIds).to.deep.equal([1]);
        expect(locals.onlineNow[0]).to.include({ id: 1, name: 'Ann' });
        expect(locals.isOnline).to.deep.equal([true]);
      });

      it('puts only the profile in onlineNow, never the session or user object', async () => {
        const { browser } = await start();
        const ann = browser();
        await signIn(ann, 1, { name: 'Ann' });
        const { onlineNow } = await ann.json<LocalsJson>('/locals');
        expect(Object.keys(onlineNow[0]).sort()).to.deep.equal(['id', 'lastSeen', 'name']);
        expect(JSON.stringify(onlineNow)).not.to.contain('hunter2');
      });

      it('counts a user signed in from several browsers once', async () => {
        const { browser } = await start();
        const [a, b, c] = [browser(), browser(), browser()];
        await signIn(a, 7);
        await signIn(b, 7);
        await signIn(c, 8);
        await a.get('/locals');
        await b.get('/locals');
        const locals = await c.json<LocalsJson>('/locals');
        expect(locals.onlineCount).to.equal(2);
        expect(locals.onlineNowIds).to.deep.equal([8, 7]);
      });

      it('treats 42 and "42" as one user and keeps the type it was last tracked with', async () => {
        const { browser } = await start();
        const asNumber = browser();
        const asString = browser();
        await signIn(asNumber, 42);
        expect((await asNumber.json<LocalsJson>('/locals')).onlineNowIds).to.deep.equal([42]);
        await signIn(asString, '42');
        const locals = await asString.json<LocalsJson>('/locals?ask=[42,"42"]');
        expect(locals.onlineCount).to.equal(1);
        expect(locals.onlineNowIds).to.deep.equal(['42']);
        expect(locals.isOnline).to.deep.equal([true, true]);
      });

      it('lists the most recently active first', async () => {
        const { browser } = await start();
        const browsers = [browser(), browser(), browser()];
        for (const [i, b] of browsers.entries()) await signIn(b, i + 1);
        await browsers[0].get('/locals'); // user 1 is now the most recent
        const locals = await browsers[1].json<LocalsJson>('/locals'); // and now user 2
        expect(locals.onlineNowIds).to.deep.equal([2, 1, 3]);
        const times = locals.onlineNow.map((e) => Date.parse(String(e.lastSeen)));
        expect(times).to.deep.equal([...times].sort((x, y) => y - x));
      });

      it('takes a user offline at once on logout (tracker.forget)', async () => {
        const { browser } = await start();
        const ann = browser();
        const bob = browser();
        await signIn(ann, 1);
        await signIn(bob, 2);
        await ann.get('/locals');
        expect((await bob.json<LocalsJson>('/locals?ask=[1]')).isOnline).to.deep.equal([true]);
        expect((await ann.post('/logout')).status).to.equal(204);
        const locals = await bob.json<LocalsJson>('/locals?ask=[1]');
        expect(locals.onlineCount).to.equal(1);
        expect(locals.onlineNowIds).to.deep.equal([2]);
        expect(locals.isOnline).to.deep.equal([false]);
        expect(locals.lastSeen).to.deep.equal([null]);
      });

      it('drops a user from count, list and isOnline after threshold seconds without a request', async () => {
        const { browser } = await start({ threshold: 0.5 });
        const ann = browser();
        const bob = browser();
        await signIn(ann, 1);
        await signIn(bob, 2);
        expect((await bob.json<LocalsJson>('/locals')).onlineCount).to.equal(2);
        // Bob stays active; Ann makes no request for 0.9 s: past her 0.5 s threshold, and past the
        // 0.1 s (one syncInterval) that a Redis replica may keep counting a late arrival.
        for (let i = 0; i < 9; i++) {
          await sleep(100);
          await bob.get('/locals');
        }
        const locals = await bob.json<LocalsJson>('/locals?ask=[1,2]');
        expect(locals.onlineCount).to.equal(1);
        expect(locals.onlineNowIds).to.deep.equal([2]);
        expect(locals.isOnline).to.deep.equal([false, true]);
      });

      it('counts exactly past max while listing at most max', async () => {
        const { browser } = await start({ max: 5 });
        const browsers = Array.from({ length: 12 }, () => browser());
        await Promise.all(browsers.map((b, i) => signIn(b, i + 1)));
        const locals = await browsers[0].json<LocalsJson>('/locals?ask=[12,1]');
        expect(locals.onlineCount).to.equal(12);
        expect(locals.onlineNow).to.have.length(5);
        expect(locals.onlineNowIds[0]).to.equal(1);
        expect(locals.isOnline).to.deep.equal([true, true]);
      });

      it('sets isOnline and lastSeen as synchronous functions for any user, listed or not', async () => {
        const { browser } = await start({ max: 1 });
        const ann = browser();
        const bob = browser();
        await signIn(ann, 1);
        await signIn(bob, 2);
        const locals = await bob.json<LocalsJson>('/locals?ask=[1,2,3,{"id":1},null,"x"]');
        expect(locals.onlineNowIds).to.deep.equal([2]);
        expect(locals.isOnline).to.deep.equal([true, true, false, true, false, false]);
        const [seen1, seen2, seen3] = locals.lastSeen!;
        expect(Date.now() - Date.parse(String(seen1))).to.be.within(0, 5000);
        expect(Date.parse(String(seen2))).to.be.at.least(Date.parse(String(seen1)));
        expect(seen3).to.equal(null);
      });

      it('gives signed-out visitors empty presence without counting them', async () => {
        const { browser } = await start();
        const ann = browser();
        await signIn(ann, 1);
        const visitor = browser();
        const locals = await visitor.json<LocalsJson>('/locals');
        expect(locals).to.include({ present: true, onlineCount: 1, onlineGuests: 0 });
        expect(visitor.hasCookies).to.equal(false);
      });

      describe('guests (trackGuests)', () => {
        it('counts a guest from their first request, once per browser, with no session saved', async () => {
          const { browser } = await start({ trackGuests: true });
          const g1 = browser();
          const g2 = browser();
          // The first page a browser loads already counts it (express-session's saveUninitialized: false gives it no session).
          expect((await g1.json<LocalsJson>('/locals')).onlineGuests).to.equal(1);
          await g1.get('/locals');
          const locals = await g2.json<LocalsJson>('/locals');
          expect(locals.onlineGuests).to.equal(2);
          expect(locals.onlineCount).to.equal(0);
          expect((await g1.json<LocalsJson>('/locals')).onlineGuests).to.equal(2);
          expect(g1.cookieNames).to.deep.equal(['online_now_guest']); // no session cookie: only the package's own
        });

        it('gives a guest cookie that is HttpOnly and SameSite=Lax, once, and replaces a forged one', async () => {
          const { browser } = await start({ trackGuests: true });
          const guest = browser();
          const first = await guest.get('/locals');
          await first.arrayBuffer();
          expect(first.headers.getSetCookie()).to.have.length(1);
          expect(first.headers.getSetCookie()[0]).to.match(/^online_now_guest=[\w-]{22}; Path=\/; HttpOnly; SameSite=Lax$/);
          const again = await guest.get('/locals');
          await again.arrayBuffer();
          expect(again.headers.getSetCookie()).to.deep.equal([]);
          const forged = await fetch(`${guest.base}/locals`, { headers: { cookie: 'online_now_guest=<script>', 'user-agent': BROWSER_AGENT } });
          expect(forged.headers.getSetCookie()[0]).to.match(/^online_now_guest=[\w-]{22};/);
          expect((await forged.json()).onlineGuests).to.equal(2);
        });

        it('stores only a hash of the guest cookie, never its value', async () => {
          const store = makeStore();
          const { browser } = await start({ trackGuests: true, store });
          const guest = browser();
          await guest.get('/locals');
          const guestId = guest.cookieHeader.split('=')[1];
          expect(guestId).to.have.length(22);
          const view = await store.view('guests', 10);
          expect(view.count).to.equal(1);
          expect(JSON.stringify(view.entries)).not.to.contain(guestId);
          expect(view.lastSeen(guestId)).to.equal(null);
        });

        it('stops counting a session as a guest once it signs in', async () => {
          const { browser } = await start({ trackGuests: true });
          const visitor = browser();
          await visitor.post('/guest');
          expect((await visitor.json<LocalsJson>('/locals')).onlineGuests).to.equal(1);
          await signIn(visitor, 5);
          const locals = await visitor.json<LocalsJson>('/locals');
          expect(locals).to.include({ onlineGuests: 0, onlineCount: 1 });
          expect((await browser().json<LocalsJson>('/locals')).onlineGuests).to.equal(1); // the newcomer alone
        });

        it('stops counting a guest on the very request that signs in through session.regenerate()', async () => {
          const { browser } = await start({ trackGuests: true });
          const visitor = browser();
          const observer = browser();
          await observer.post('/guest');
          await visitor.post('/guest');
          await observer.get('/locals');
          expect((await visitor.json<LocalsJson>('/locals')).onlineGuests).to.equal(2);
          const res = await visitor.post('/login', { id: '7', type: 'number', regenerate: '1' });
          expect(res.status).to.equal(204);
          // Seen by someone else before the visitor loads another page: a user now, a guest no more.
          const locals = await observer.json<LocalsJson>('/locals?ask=[7]');
          expect(locals).to.include({ onlineGuests: 1, onlineCount: 1 });
          expect(locals.isOnline).to.deep.equal([true]);
          expect((await visitor.json<LocalsJson>('/locals')).onlineGuests).to.equal(1);
        });

        it('does not count guests unless asked to', async () => {
          const { browser } = await start();
          const guest = browser();
          await guest.post('/guest');
          expect((await guest.json<LocalsJson>('/locals')).onlineGuests).to.equal(0);
          expect(guest.cookieNames).not.to.include('online_now_guest');
        });
      });

      it('gives frozen entries: a route that writes to one changes nobody else’s page', async () => {
        const { browser } = await start();
        const ann = browser();
        await signIn(ann, 1);
        expect(await ann.json('/scribble')).to.deep.equal({ unchanged: 1 });
        const [entry] = (await browser().json<LocalsJson>('/locals')).onlineNow;
        expect(entry).not.to.have.property('isYou');
      });

      it('answers isOnline(entry) for listed entries whatever getId reads', async () => {
        const { browser } = await start({ getId: (user) => `member-${(user as { id: number }).id}` });
        const ann = browser();
        await signIn(ann, 1);
        await signIn(browser(), 2);
        const locals = await ann.json<LocalsJson>('/locals?ask=["member-1","member-3"]');
        expect(locals.onlineNowIds).to.deep.equal(['member-1', 'member-2']);
        expect(locals.listedOnline).to.deep.equal([true, true]);
        expect(locals.isOnline).to.deep.equal([true, false]);
      });

      it('skip(req): neither marks the user online nor sets locals', async () => {
        const { browser } = await start({ skip: (req) => String((req as { path?: string }).path).startsWith('/static') });
        const ann = browser();
        const bob = browser();
        await signIn(bob, 2);
        expect((await ann.post('/login', { id: '1', type: 'number' })).status).to.equal(204);
        const skipped = await ann.json<LocalsJson>('/static/locals');
        expect(skipped.present).to.equal(false);
        let seen = await bob.json<LocalsJson>('/locals?ask=[1]');
        expect(seen.onlineCount).to.equal(1);
        expect(seen.isOnline).to.deep.equal([false]);
        await ann.get('/locals'); // not skipped: now Ann counts
        seen = await bob.json<LocalsJson>('/locals?ask=[1]');
        expect(seen.onlineCount).to.equal(2);
        expect(seen.isOnline).to.deep.equal([true]);
      });
    },
  );

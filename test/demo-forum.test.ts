import { expect } from 'chai';
import { mkdtempSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import type { Database } from 'better-sqlite3';
import { MemoryStore } from 'express-online-now';
import { CookieBrowser } from './helpers/browser';
import { SseStream } from './helpers/sse';
import { badgeOf, listedIds, testId } from './helpers/html';
import { expressVersions, listen, type Listening } from './helpers/server';
import { eventually } from './helpers/wait';

// The demo's forum features as people see them, over real HTTP: invisible mode,
// last seen kept in SQLite, crawlers counted apart, and the record of most online.

const require = createRequire(__filename);
const { createDemoApp } = require('../views-examples/server.js') as {
  createDemoApp: (options: object) => { app: never; db: Database };
};

const engines = ['nunjucks', 'handlebars'] as const;
const HOUR = 3_600_000;
const GOOGLEBOT = 'Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)';

/** The users-table row of one user, as HTML. */
function rowOf(html: string, userId: number): string {
  const row = new RegExp(`<tr data-user-id="${userId}">[\\s\\S]*?</tr>`).exec(html);
  if (!row) throw new Error(`no row for user ${userId}`);
  return row[0];
}

/** The entry of one user in the "online now" list, or undefined when not listed. */
function listedEntry(html: string, userId: number): string | undefined {
  return new RegExp(`<li data-user-id="${userId}">[\\s\\S]*?</li>`).exec(html)?.[0];
}

/** A page's content with the times taken out: two requests a few ms apart render different datetimes. */
function content(html: string): string {
  const main = /<main>([\s\S]*)<\/main>/.exec(html);
  if (!main) throw new Error('no <main> in the page');
  return main[1].replace(/<time [^>]*>/g, '<time>').replace(/\s+/g, ' ');
}

for (const { name, express } of expressVersions) {
  describe(`demo forum features, both engines (${name})`, () => {
    let server: Listening | undefined;
    let db: Database | undefined;
    let tmp: string | undefined;

    async function start(options: object = {}): Promise<void> {
      const demo = createDemoApp({ express, sessionSecret: 'test', ...options });
      db = demo.db;
      server = await listen(demo.app);
    }

    async function stop(): Promise<void> {
      await server?.close();
      await new Promise((resolve) => setImmediate(resolve)); // hooks queued by the last requests run first
      db?.close();
      server = undefined;
      db = undefined;
    }

    afterEach(async () => {
      await stop();
      if (tmp !== undefined) rmSync(tmp, { recursive: true, force: true });
      tmp = undefined;
    });

    async function signedIn(id: number): Promise<CookieBrowser> {
      const browser = new CookieBrowser(server!.base);
      expect((await browser.post('/login', { id: String(id) })).status).to.equal(303);
      return browser;
    }

    async function guest(): Promise<CookieBrowser> {
      const browser = new CookieBrowser(server!.base);
      expect((await browser.post('/guest')).status).to.equal(303);
      return browser;
    }

    const lastSeenInDb = (id: number): number | null => db!.prepare('SELECT last_seen FROM users WHERE id = ?').pluck().get(id) as number | null;

    for (const engine of engines) {
      const page = `/admin/${engine}`;

      it(`${engine}: an invisible user is marked for staff and for themselves, and reads as signed out (when they hid) to members and guests`, async () => {
        await start();
        // Linus signs in and out: what Grace must look like once she hides.
        const linus = await signedIn(5);
        await linus.get(page);
        await linus.post('/logout');
        await eventually(() => expect(lastSeenInDb(5)).to.be.a('number'));
        const grace = await signedIn(2);
        await grace.get(page);
        const toggled = await grace.post('/invisible', { engine });
        expect(toggled.status).to.equal(303);
        expect(toggled.headers.get('location')).to.equal(page);
        const alan = await signedIn(3);
        await alan.get(page);
        const visitor = await guest();
        await visitor.get(page);
        // Grace's last-seen is in the database: what the pages below must not give away.
        await eventually(() => expect(lastSeenInDb(2)).to.be.a('number'));

        const ada = await signedIn(1); // Admin: staff
        const staff = await ada.text(page);
        expect(listedIds(staff)).to.include('2');
        expect(listedEntry(staff, 2)).to.contain('<span class="tag hidden" data-testid="hidden-tag">hidden</span>');
        expect(rowOf(staff, 2)).to.contain('data-testid="hidden-tag">hidden<');
        expect(badgeOf(staff, 2)).to.equal('Online');
        expect(testId(staff, 'hidden-count')).to.equal('1');
        expect(testId(staff, 'online-count')).to.equal('2'); // Ada and Alan: the count leaves hidden users out
        expect(testId(staff, 'guest-count')).to.equal('1');

        const self = await grace.text(page);
        expect(listedEntry(self, 2)).to.contain('data-testid="hidden-tag">(invisible)<');
        expect(rowOf(self, 2)).to.contain('data-testid="hidden-tag">(invisible)<');
        expect(badgeOf(self, 2)).to.equal('Online');
        expect(testId(self, 'toggle-invisible')).to.equal('Appear online');

        for (const [who, html] of [
          ['member', await alan.text(page)],
          ['guest', await visitor.text(page)],
        ]) {
          expect(listedIds(html), who).to.deep.equal(['3', '1']);
          // Not even how many: the number ticking up as she went offline would tell.
          expect(testId(html, 'hidden-count'), who).to.equal('0');
          expect(html, who).not.to.contain('hidden-tag');
          // Her row is the only place she appears, and it reads exactly as Linus's, who signed out.
          const row = rowOf(html, 2);
          // The badge carries the id for live updates (data-online-id), like the row's data-user-id.
          const anonymous = (r: string, user: RegExp) =>
            r
              .replace(/data-user-id="\d+"/, '')
              .replace(/data-online-id="\d+"/g, '')
              .replace(user, 'someone')
              .replace(/Moderator|Member/, 'role')
              .replace(/<time [^>]*>[^<]*<\/time>/, '<time>');
          expect(anonymous(row, /Grace Hopper|grace/g), who).to.equal(anonymous(rowOf(html, 5), /Linus Torvalds|linus/g));
          expect(row, who).to.match(/<td class="muted"[^>]*>last seen <time /);
          const rest = html.replace(row, '');
          expect(rest, who).not.to.contain('Grace Hopper');
          expect(rest.toLowerCase(), who).not.to.contain('grace');
        }

        // Back to visible: members see her again, and she is no longer marked for anyone.
        await grace.post('/invisible', { engine });
        const member = await alan.text(page);
        expect(listedIds(member)).to.include('2');
        expect(badgeOf(member, 2)).to.equal('Online');
        expect(await ada.text(page)).not.to.contain('hidden-tag');
      });

      it(`${engine}: after sign-in and sign-out the users table shows "last seen … ago" from the database`, async () => {
        // The store's clock is the test's: Alan visits, signs out, and three hours pass.
        const visit = Date.now();
        let t = visit;
        await start({ tracker: { store: new MemoryStore({ now: () => t }) } });
        const ada = await signedIn(1);
        const alan = await signedIn(3);
        await alan.get(page);
        expect(badgeOf(await ada.text(page), 3)).to.equal('Online');
        expect((await alan.post('/logout')).status).to.equal(303);

        // onSeen runs just after the request (setImmediate): the sign-out's time reaches SQLite.
        await eventually(() => expect(lastSeenInDb(3)).to.equal(visit));
        t += 3 * HOUR;
        const html = await ada.text(page);
        expect(badgeOf(html, 3)).to.equal('Offline');
        const seen = new Date(lastSeenInDb(3)!).toISOString();
        expect(rowOf(html, 3)).to.match(new RegExp(`<td class="muted"[^>]*>last seen <time datetime="${seen}" title="[^"]+">3 hours ago</time></td>`));
        expect(rowOf(html, 4)).to.match(/<td class="muted"[^>]*>offline<\/td>/); // never seen
      });

      it(`${engine}: a crawler raises the bots count, not the guests count, once per kind`, async () => {
        await start();
        const ada = await signedIn(1);
        const before = await ada.text(page);
        expect(testId(before, 'bot-count')).to.equal('0');
        expect(testId(before, 'guest-count')).to.equal('0');
        for (let i = 0; i < 2; i++) {
          const crawl = await fetch(new URL(page, server!.base), { headers: { 'user-agent': GOOGLEBOT }, signal: AbortSignal.timeout(10_000) });
          expect(crawl.status).to.equal(200);
          expect(crawl.headers.getSetCookie()).to.deep.equal([]); // no session for a crawler
          await crawl.arrayBuffer();
        }
        const after = await ada.text(page);
        expect(testId(after, 'bot-count')).to.equal('1');
        expect(testId(after, 'guest-count')).to.equal('0');
        expect(testId(after, 'online-count')).to.equal('1');
      });

      it(`${engine}: the record line shows the most ever online, and a restart keeps it (and last seen) in the database`, async () => {
        tmp = mkdtempSync(path.join(os.tmpdir(), 'demo-forum-'));
        const database = path.join(tmp, 'demo.sqlite');
        await start({ database });
        const browsers = [await signedIn(1), await signedIn(3), await signedIn(4)];
        for (const browser of browsers) await browser.get(page);
        await browsers[2].post('/logout');
        const html = await browsers[0].text(page);
        expect(testId(html, 'online-count')).to.equal('2');
        // onRecord wrote it to the meta table; the page tells its date in full.
        const saved = JSON.parse(db!.prepare("SELECT value FROM meta WHERE key = 'record'").pluck().get() as string) as { count: number; at: number };
        expect(saved.count).to.equal(3);
        const date = new Intl.DateTimeFormat('en', { dateStyle: 'long', timeStyle: 'short' }).format(saved.at);
        expect(html).to.contain(`<p class="record" data-testid="record">Most ever online: <strong data-testid="record-count">3</strong> on ${date}</p>`);
        await eventually(() => expect(lastSeenInDb(4)).to.be.a('number'));
        await stop();

        await start({ database });
        const ada = await signedIn(1);
        const again = await ada.text(page);
        expect(testId(again, 'online-count')).to.equal('1');
        expect(testId(again, 'record-count')).to.equal('3');
        expect(rowOf(again, 4)).to.match(/<td class="muted"[^>]*>last seen <time [^>]+>[^<]+<\/time><\/td>/);
      });
    }

    it('a guest watching the live stream and the page cannot tell "hid, then signed out" from "signed out"', async function () {
      this.timeout(20_000);
      /** What a guest's stream and dashboard show as Grace signs in, then `leaves` one way or the other, then signs out. */
      async function watch(leave: '/invisible' | '/logout'): Promise<string[]> {
        await start();
        try {
          const visitor = await guest();
          const stream = await SseStream.open(`${server!.base}/online-now/events?ids=2&list=1&html=1`, { cookie: visitor.cookieHeader });
          await stream.next('count');
          const grace = await signedIn(2);
          await grace.get('/admin/nunjucks');
          await stream.next('online', (d: { id?: string }) => d.id === '2');
          // Times removed: the two runs happen at different moments.
          const seen = async (): Promise<string> => {
            await new Promise((resolve) => setTimeout(resolve, 800)); // a few looks of the stream, for anything else it would send
            // (The demo has status on: entries carry lastActive, stamped to a step of 30 s, which the two runs may straddle.)
            const events = stream.events.splice(0).map((e) => `${e.event} ${e.data.replace(/"(lastSeen|lastActive)":"[^"]*"/g, '')}`);
            const page = content(await visitor.text('/admin/nunjucks'))
              .replace(/<time>[^<]*<\/time>/g, '<time>')
              .replace(/ on [A-Z][a-z]+ \d+, \d{4} at \d+:\d+ [AP]M/g, ''); // the record's date
            return `${events.join('\n')}\n${page}`;
          };
          const before = await seen();
          await grace.post(leave, { engine: 'nunjucks' });
          await stream.next('offline', (d: { id?: string }) => d.id === '2');
          const after = await seen();
          if (leave === '/invisible') await grace.post('/logout');
          const end = await seen();
          stream.close();
          return [before, after, end];
        } finally {
          await stop();
        }
      }
      const hid = await watch('/invisible');
      const left = await watch('/logout');
      expect(hid[1]).to.contain('offline {"id":"2"}');
      expect(hid, 'what the guest saw: before, after hiding (or signing out), after signing out').to.deep.equal(left);
    });

    it('both engines render the same page for the same moment: counts, record, tags, last seen', async () => {
      await start();
      const grace = await signedIn(2);
      await grace.post('/invisible', { engine: 'nunjucks' });
      await grace.get('/admin/nunjucks');
      const alan = await signedIn(3);
      await alan.get('/admin/nunjucks');
      await alan.post('/logout');
      await fetch(new URL('/admin/nunjucks', server!.base), { headers: { 'user-agent': GOOGLEBOT } }).then((res) => res.arrayBuffer());
      await eventually(() => expect(lastSeenInDb(3)).to.be.a('number'));
      const ada = await signedIn(1);
      for (const viewer of [ada, grace]) {
        await viewer.get('/admin/nunjucks'); // the viewer first in the list for both renders
        const fromNunjucks = await viewer.text('/admin/nunjucks');
        const fromHandlebars = await viewer.text('/admin/handlebars');
        expect(fromNunjucks).to.contain('hidden-tag');
        expect(fromNunjucks).to.contain('last seen <time');
        expect(content(fromHandlebars)).to.equal(content(fromNunjucks));
      }
    });
  });
}

import { expect } from 'chai';
import { createRequire } from 'node:module';
import type { Browser, BrowserContext, Page, Request } from 'playwright-core';
import { chromiumAndSite, CHROMIUM, launch, memorySite, redisSite, shows, signIn, withVisibility } from './helpers/demo-site';
import { freePort } from './helpers/redis';
import { requireBinary } from './helpers/requirements';
import { listen } from './helpers/server';
import { eventually } from './helpers/wait';

const require = createRequire(__filename);
const { createDemoApp } = require('../views-examples/server.js') as { createDemoApp: (o: object) => { app: never; online: { close(): Promise<void> } } };
const session = require('express-session') as typeof import('express-session');

/** Event streams a browser context has open now, as Chromium's network log counts them (a closed tab's end with it). */
function openStreams(context: BrowserContext): () => number {
  const open = new Set<Request>();
  context.on('request', (r) => {
    if (r.resourceType() === 'eventsource') open.add(r);
  });
  context.on('requestfinished', (r) => open.delete(r));
  context.on('requestfailed', (r) => open.delete(r));
  context.on('page', (page) =>
    page.on('close', () => {
      for (const r of open) if (r.frame().page() === page) open.delete(r);
    }),
  );
  return () => open.size;
}

for (const kind of ['memory store', 'Redis, two processes behind one port'] as const) {
  describe(`who else is here, in headless Chromium (${kind})`, function () {
    this.timeout(90_000);
    const ui = chromiumAndSite(() => (kind === 'memory store' ? memorySite() : redisSite()), { redis: kind !== 'memory store' });

    it('two admins on order 123 see each other within 2 s; one edits, the other sees the lock and takes over; the first is told at once', async () => {
      const ada = await signIn(ui.browser, ui.site.base, 'ada');
      const grace = await signIn(ui.browser, ui.site.base, 'grace');
      const served = new Set<string>();
      try {
        const adaPage = await ada.newPage();
        await adaPage.goto(`${ui.site.base}/orders/123?edit=1`);
        await shows(adaPage, 'lock', /^You are editing/);
        await shows(adaPage, 'here-count', /^1$/);
        served.add(/in process (\d+)/.exec(await adaPage.innerText('footer'))![1]);

        const gracePage = await grace.newPage();
        await gracePage.goto(`${ui.site.base}/orders/123/handlebars`);
        served.add(/in process (\d+)/.exec(await gracePage.innerText('footer'))![1]);
        // On Redis, Grace's page may come from the other process before it has synced Ada: the list catches up live.
        await shows(gracePage, 'here-list', /Ada Lovelace\s+editing[\s\S]*Grace Hopper/);
        await shows(gracePage, 'lock', /^Ada Lovelace is editing since now\. Take over Ask to edit$/);
        // Ada sees Grace arrive, without reloading.
        await shows(adaPage, 'here-count', /^2$/);
        expect(await adaPage.getByTestId('here-list').innerText()).to.contain('Grace Hopper');

        await adaPage.evaluate(() => {
          document.addEventListener('online-now:takenover', (e) => {
            (window as unknown as { takenBy: string }).takenBy = String((e as CustomEvent<{ name: string }>).detail.name);
          });
        });
        await gracePage.getByRole('button', { name: 'Take over' }).click();
        await shows(gracePage, 'lock', /^You are editing/);
        await shows(adaPage, 'lock', /^Grace Hopper is editing since now\. Take over Ask to edit$/);
        expect(await adaPage.evaluate(() => (window as unknown as { takenBy?: string }).takenBy)).to.equal('Grace Hopper');
        await shows(adaPage, 'here-list', /Grace Hopper\s+editing/);

        // Grace closes her tab: Ada's page drops her within a few seconds (the leave beacon, not the 30 s threshold).
        await gracePage.close({ runBeforeUnload: true });
        await shows(adaPage, 'here-count', /^1$/, 4000);
        expect(await adaPage.getByTestId('here-list').innerText()).not.to.contain('Grace Hopper');
        await shows(adaPage, 'lock', /^$/);

        if (kind !== 'memory store') {
          // Make sure both processes served these users: more sign-ins until a second process answers. Each is a
          // new browser context, so a new connection (node:cluster deals out connections, not requests).
          for (let i = 0; i < 20 && served.size < 2; i++) {
            const context = await signIn(ui.browser, ui.site.base, i % 2 === 0 ? 'ada' : 'grace');
            const p = await context.newPage();
            await p.goto(`${ui.site.base}/admin/nunjucks`);
            served.add(/in process (\d+)/.exec(await p.innerText('footer'))![1]);
            await context.close();
          }
          expect(served.size, 'pages from two processes').to.equal(2);
        }
      } finally {
        await ada.close();
        await grace.close();
      }
    });

    it('eight tabs of one user keep one event stream and count one viewer; the dashboard count and badges go live', async () => {
      const alan = await signIn(ui.browser, ui.site.base, 'alan');
      const grace = await signIn(ui.browser, ui.site.base, 'grace');
      const streams = openStreams(alan);
      try {
        const gracePage = await grace.newPage();
        await gracePage.goto(`${ui.site.base}/orders/124`);
        const dashboard = await grace.newPage();
        await dashboard.goto(`${ui.site.base}/admin/nunjucks`);
        const alanBadge = dashboard.locator('tr[data-user-id="3"] [data-testid=badge]');
        const tabs: Page[] = [];
        for (let i = 0; i < 8; i++) {
          const tab = await alan.newPage();
          await tab.goto(`${ui.site.base}/orders/124`);
          tabs.push(tab);
        }
        await shows(gracePage, 'here-count', /^2$/);
        await shows(gracePage, 'here-list', /Alan Turing\s+\(8 tabs\)/);
        await eventually(() => expect(streams(), 'event streams open in the browser with 8 tabs').to.equal(1), 3000);
        // The server hears of a stream the browser closed (a reopen as tabs joined) a moment later.
        const serverStreams = ui.site.serverStreams;
        if (serverStreams !== undefined) await eventually(() => expect(serverStreams(), 'streams open at the server (Grace: one; Alan: one)').to.equal(2), 3000);
        expect((await alanBadge.innerText()).trim()).to.equal('Online');
        // The dashboard's list came live too, in its own markup (the page draws the list event itself).
        await shows(dashboard, 'online-list', /Alan Turing\s+@alan/);
        // Ada, from the test before, is still online too (she closed her browser without signing out).
        const online = Number(await dashboard.getByTestId('online-count').innerText());
        expect(online).to.be.greaterThanOrEqual(2);

        // The leader tab closes: another of Alan's tabs takes the stream over; still one.
        await tabs[0].close({ runBeforeUnload: true });
        await shows(gracePage, 'here-list', /Alan Turing\s+\(7 tabs\)/, 4000);
        await eventually(() => expect(streams()).to.equal(1), 3000);

        // Alan signs out in one tab: Grace's dashboard shows him offline, and the count drops, without reload.
        await tabs[1].getByRole('button', { name: 'Sign out' }).click();
        await shows(dashboard, 'online-count', new RegExp(`^${online - 1}$`), 4000);
        expect((await alanBadge.innerText()).trim()).to.equal('Offline');
        expect(await dashboard.getByTestId('online-list').innerText()).not.to.contain('Alan Turing');
      } finally {
        await alan.close();
        await grace.close();
      }
    });
  });
}

const ROOM_THRESHOLD = 4; // seconds: a visible tab's window; a background tab's is 5 × that (20 s)

for (const kind of ['memory store', 'Redis, two processes behind one port'] as const) {
  describe(`a tab in the background, and one that lapsed, in headless Chromium (${kind}, roomThreshold ${ROOM_THRESHOLD} s)`, function () {
    this.timeout(120_000);
    const ui = chromiumAndSite(() => (kind === 'memory store' ? memorySite({ roomThreshold: ROOM_THRESHOLD }) : redisSite({ ROOM_THRESHOLD: String(ROOM_THRESHOLD) })), {
      redis: kind !== 'memory store',
    });

    it('an editor whose tab is in the background (beating as rarely as browsers let hidden tabs) keeps presence and the lock, shown as away; back, still editing', async () => {
      const ada = await signIn(ui.browser, ui.site.base, 'ada');
      const grace = await signIn(ui.browser, ui.site.base, 'grace');
      await withVisibility(ada);
      try {
        const adaPage = await ada.newPage();
        await adaPage.goto(`${ui.site.base}/orders/123?edit=1`);
        await shows(adaPage, 'lock', /^You are editing/);
        const awayBeat = adaPage.waitForResponse((r) => r.url().endsWith('/online-now/beat') && /"away":true/.test(r.request().postData() ?? ''));
        await adaPage.evaluate(() => (window as unknown as { setHidden: (h: boolean) => void }).setHidden(true));
        expect((await awayBeat).status()).to.equal(200);
        // A hidden tab's timers are throttled to about one a minute: here, its beats stop reaching the server.
        await adaPage.route('**/online-now/beat', (route) => route.abort());
        await adaPage.waitForTimeout(ROOM_THRESHOLD * 1000 * 2);

        const gracePage = await grace.newPage();
        await gracePage.goto(`${ui.site.base}/orders/123/handlebars?edit=1`);
        await shows(gracePage, 'here-list', /Ada Lovelace\s+editing\s+away[\s\S]*Grace Hopper/);
        await shows(gracePage, 'lock', /^Ada Lovelace is editing since .*Take over Ask to edit$/);

        await adaPage.unroute('**/online-now/beat');
        await adaPage.evaluate(() => (window as unknown as { setHidden: (h: boolean) => void }).setHidden(false));
        await shows(adaPage, 'lock', /^You are editing/, 4000);
        // Not away any more (on Redis, once Grace's process has synced Ada's beat).
        await shows(gracePage, 'here-list', /^\W*Ada Lovelace\s+editing\s+\W*Grace Hopper/, 4000);
        expect(await gracePage.getByTestId('lock').innerText()).to.match(/^Ada Lovelace is editing/);
      } finally {
        await ada.close();
        await grace.close();
      }
    });

    it('lapse, other claims, first returns: a tab offline past its window comes back to who edits now, with Take over; nobody is switched without clicking', async () => {
      const ada = await signIn(ui.browser, ui.site.base, 'ada');
      const grace = await signIn(ui.browser, ui.site.base, 'grace');
      try {
        const adaPage = await ada.newPage();
        await adaPage.goto(`${ui.site.base}/orders/124?edit=1`);
        await shows(adaPage, 'lock', /^You are editing/);
        await ada.setOffline(true);
        await adaPage.waitForTimeout(ROOM_THRESHOLD * 1000 * 2);

        const gracePage = await grace.newPage();
        await gracePage.goto(`${ui.site.base}/orders/124?edit=1`);
        await shows(gracePage, 'lock', /^You are editing/, 4000);
        await ada.setOffline(false);
        // Ada's page, back, learns from its next beat that Grace edits now.
        await shows(adaPage, 'lock', /^Grace Hopper is editing since .*Take over Ask to edit$/, 6000);
        // And Grace keeps the lock: Ada's old, earlier claim did not take it back.
        await gracePage.waitForTimeout(ROOM_THRESHOLD * 1000);
        await shows(gracePage, 'lock', /^You are editing/);
        await shows(adaPage, 'lock', /^Grace Hopper is editing/);
        // Ada may take over like anyone else.
        await adaPage.getByRole('button', { name: 'Take over' }).click();
        await shows(adaPage, 'lock', /^You are editing/);
        await shows(gracePage, 'lock', /^Ada Lovelace is editing since .*Take over Ask to edit$/, 4000);
      } finally {
        await ada.close();
        await grace.close();
      }
    });
  });
}

describe('a server restart with default options (a random secret), in headless Chromium', function () {
  this.timeout(90_000);
  let browser: Browser;

  before(async function () {
    requireBinary(this, CHROMIUM, 'apt-get install -y chromium');
    browser = await launch();
  });
  after(async () => {
    await browser?.close();
  });

  it('an open page shows the truth within one heartbeat: its tab renewed, the room as it is now, the lock still its own', async () => {
    // Sessions outlive the process (as with any real session store); the tracker's secret does not.
    const sessions = new session.MemoryStore();
    const port = await freePort();
    const start = async (): Promise<() => Promise<void>> => {
      const { app, online } = createDemoApp({ sessionSecret: 'restarts', sessionStore: sessions, tracker: { secret: undefined, roomThreshold: ROOM_THRESHOLD } });
      const server = await listen(app, port);
      return async () => {
        await online.close();
        await server.close();
      };
    };
    let stop = await start();
    const base = `http://127.0.0.1:${port}`;
    const ada = await signIn(browser, base, 'ada');
    const grace = await signIn(browser, base, 'grace');
    try {
      const adaPage = await ada.newPage();
      await adaPage.goto(`${base}/orders/123?edit=1`);
      const gracePage = await grace.newPage();
      await gracePage.goto(`${base}/orders/123`);
      await shows(adaPage, 'here-count', /^2$/);

      await stop();
      // Grace leaves while the server is down: nobody hears her go.
      await gracePage.close({ runBeforeUnload: true });
      stop = await start();

      await shows(adaPage, 'here-count', /^1$/, ROOM_THRESHOLD * 1000);
      expect(await adaPage.getByTestId('here-list').innerText()).not.to.contain('Grace Hopper');
      await shows(adaPage, 'lock', /^You are editing/);
      const again = await grace.newPage();
      await again.goto(`${base}/orders/123`);
      await shows(again, 'lock', /^Ada Lovelace is editing since .*Take over Ask to edit$/);
      await shows(adaPage, 'here-count', /^2$/, 4000);
    } finally {
      await ada.close();
      await grace.close();
      await stop();
    }
  });
});

const HOST = 'orders.example';

describe(`plain HTTP under a name (${HOST}, no Web Locks, no Sec-Fetch-Site) and the back/forward cache, in headless Chromium`, function () {
  this.timeout(120_000);
  let base: string;
  // The name resolves to loopback; the back/forward cache, which Playwright turns off, stays on.
  const ui = chromiumAndSite(() => memorySite(), { args: [`--host-resolver-rules=MAP ${HOST} 127.0.0.1`], ignoreDefaultArgs: ['--disable-back-forward-cache'] });
  before(() => (base = ui.site.base.replace('127.0.0.1', HOST)));

  it('ten tabs of one user: one event stream, every heartbeat answered, and pages still load', async () => {
    const alan = await signIn(ui.browser, base, 'alan');
    const grace = await signIn(ui.browser, base, 'grace');
    const streams = openStreams(alan);
    const beats = { sent: 0, answered: 0 };
    alan.on('request', (r) => {
      if (r.url().endsWith('/online-now/beat')) beats.sent++;
    });
    alan.on('requestfinished', async (r) => {
      if (r.url().endsWith('/online-now/beat') && (await r.response())?.status() === 200) beats.answered++;
    });
    try {
      const gracePage = await grace.newPage();
      await gracePage.goto(`${base}/orders/124`);
      const tabs: Page[] = [];
      for (let i = 0; i < 10; i++) {
        const tab = await alan.newPage();
        await tab.goto(`${base}/orders/124`);
        tabs.push(tab);
      }
      expect(await tabs[0].evaluate(() => [window.isSecureContext, 'locks' in navigator])).to.deep.equal([false, false]);
      await shows(gracePage, 'here-list', /Alan Turing\s+\(10 tabs\)/, 4000);
      await eventually(() => expect(streams(), 'event streams open in the browser with 10 tabs').to.equal(1), 3000);
      // An 11th page loads, and a tab navigates: the browser's six connections to the host are not all held.
      const more = await alan.newPage();
      const response = await more.goto(`${base}/admin/nunjucks`, { timeout: 5000 });
      expect(response?.status()).to.equal(200);
      await tabs[3].goto(`${base}/orders/123`, { timeout: 5000 });
      await shows(tabs[3], 'here-count', /^1$/);
      // Every tab keeps beating: each beat sent gets its answer.
      await tabs[0].waitForTimeout(3000);
      expect(beats.sent).to.be.greaterThan(10);
      await eventually(() => expect(beats.answered).to.equal(beats.sent), 3000);
      // Grace's page hears a live change from Alan's one stream: his tab moved to order 123.
      await shows(gracePage, 'here-list', /Alan Turing\s+\(9 tabs\)/, 4000);
    } finally {
      await alan.close();
      await grace.close();
    }
  });

  it('a page with the script is restored from the back/forward cache, back in its room and live (on 127.0.0.1: a secure context, where a Web Lock and an open channel kept pages out of it)', async () => {
    const base = ui.site.base;
    const alan = await signIn(ui.browser, base, 'alan');
    const grace = await signIn(ui.browser, base, 'grace');
    await alan.addInitScript(`addEventListener('pageshow', (e) => { if (e.persisted) sessionStorage.setItem('restored', location.pathname); });`);
    try {
      const page = await alan.newPage();
      await page.goto(`${base}/orders/124`);
      await shows(page, 'here-count', /^1$/);
      // Another page of the site (its script posts on the channel at start), a moment there, then back.
      await page.goto(`${base}/admin/nunjucks`);
      await page.waitForTimeout(1000);
      // A restored page fires pageshow, not load.
      await page.goBack({ waitUntil: 'commit' });
      await eventually(async () => expect(await page.evaluate(() => sessionStorage.getItem('restored')), 'restored from the back/forward cache').to.equal('/orders/124'), 3000);
      // Back in the room and live: Grace arrives, and Alan's restored page shows her.
      const gracePage = await grace.newPage();
      await gracePage.goto(`${base}/orders/124`);
      await shows(gracePage, 'here-list', /Alan Turing[\s\S]*Grace Hopper/, 4000);
      await shows(page, 'here-count', /^2$/, 4000);
    } finally {
      await alan.close();
      await grace.close();
    }
  });
});

describe('the demo stays true after live updates, in headless Chromium (memory store)', function () {
  this.timeout(90_000);
  const ui = chromiumAndSite();

  it('the dashboard: listed count, the list’s “now” and Activity follow the badges; a signed-out page logs no error', async () => {
    const visitor = await ui.browser.newContext();
    const errors: string[] = [];
    const login = await visitor.newPage();
    login.on('console', (m) => m.type() === 'error' && errors.push(m.text()));
    await login.goto(`${ui.site.base}/`);
    await login.waitForTimeout(1500); // its script has beaten (or not) by now
    expect(errors, 'console errors on a signed-out page').to.deep.equal([]);
    await visitor.close();

    const grace = await signIn(ui.browser, ui.site.base, 'grace');
    const alan = await signIn(ui.browser, ui.site.base, 'alan');
    try {
      const dashboard = await grace.newPage();
      await dashboard.goto(`${ui.site.base}/admin/nunjucks`);
      const alanRow = dashboard.locator('tr[data-user-id="3"]');
      const listed = async (): Promise<[string, number]> => [
        (await dashboard.getByTestId('listed-count').innerText()).trim(),
        await dashboard.locator('[data-testid=online-list] li').count(),
      ];
      const alanPage = await alan.newPage();
      await alanPage.goto(`${ui.site.base}/admin/handlebars`);
      await shows(dashboard, 'online-list', /Alan Turing\s+@alan\s+now/, 4000);
      const [count, items] = await listed();
      expect(Number(count), 'Listed below').to.equal(items);
      expect((await alanRow.locator('[data-testid=badge]').innerText()).trim()).to.equal('Online');
      expect((await alanRow.locator('td').last().innerText()).trim()).to.equal('now');
      await alanPage.getByRole('button', { name: 'Sign out' }).click();
      await eventually(async () => expect((await alanRow.locator('[data-testid=badge]').innerText()).trim()).to.equal('Offline'), 4000);
      expect((await alanRow.locator('td').last().innerText()).trim()).to.equal('last seen now');
      const [after, left] = await listed();
      expect(Number(after)).to.equal(left);
    } finally {
      await grace.close();
      await alan.close();
    }
  });

  it('an order: names in Here now stay on one line beside editing and (N tabs); after a take-over the old editor is offered Edit, not Stop editing', async () => {
    const ada = await signIn(ui.browser, ui.site.base, 'ada');
    const grace = await signIn(ui.browser, ui.site.base, 'grace');
    try {
      const adaPage = await ada.newPage();
      await adaPage.goto(`${ui.site.base}/orders/123?edit=1`);
      await (await ada.newPage()).goto(`${ui.site.base}/orders/123`);
      const gracePage = await grace.newPage();
      await gracePage.goto(`${ui.site.base}/orders/123`);
      await shows(gracePage, 'here-list', /Ada Lovelace\s+editing\s+\(2 tabs\)/);
      // Each name is on one line (not broken word by word), and what follows it is drawn after it, not over it.
      // (Read again until it holds: a live update may be redrawing the list at that moment.)
      await eventually(async () => {
        const layout = await gracePage.locator('[data-testid=here-list] li').evaluateAll((items) =>
          items.map((li) => {
            // The name is the first text of the item (after the status badge, with status on).
            const nodes = Array.from(li.childNodes);
            const at = nodes.findIndex((n) => n.nodeType === Node.TEXT_NODE && n.textContent!.trim() !== '');
            const range = document.createRange();
            range.selectNodeContents(nodes[at]);
            const name = Array.from(range.getClientRects());
            const last = name[name.length - 1];
            const after = nodes.slice(at + 1).filter((n): n is HTMLElement => n instanceof HTMLElement);
            const overlaps = after.map((s) => s.getBoundingClientRect()).some((r) => last === undefined || (r.top < last.bottom - 1 && r.left < last.right - 1));
            return [name.length, overlaps];
          }),
        );
        expect(layout).to.deep.equal([
          [1, false],
          [1, false],
        ]);
      }, 4000);
      await expectText(adaPage, 'stop-editing', 'Stop editing');
      await gracePage.getByRole('button', { name: 'Take over' }).click();
      await shows(adaPage, 'lock', /^Grace Hopper is editing/, 4000);
      await expectText(adaPage, 'edit', 'Edit this order');
      expect(await adaPage.getByTestId('stop-editing').count()).to.equal(0);
    } finally {
      await ada.close();
      await grace.close();
    }
  });
});

async function expectText(page: Page, testId: string, text: string): Promise<void> {
  await eventually(async () => expect((await page.getByTestId(testId).innerText()).trim()).to.equal(text), 4000);
}

// Editing safely together (issue #24) in headless Chromium, as two admins see it:
// on the memory store, and on two demo processes behind one port sharing Redis.
// A save from the non-holder is refused with the holder's name; the other page
// shows "changed while you were looking" after a save; after a takeover the old
// holder's save is refused on either process; ask → decline keeps the lock, ask →
// hand over passes it, the old holder's page getting its grace event (and saving)
// first; a list of 50 orders shows lock badges and follows a new lock live.
import { expect } from 'chai';
import type { BrowserContext, Page } from 'playwright-core';
import { chromiumAndSite, memorySite, redisSite, shows, signIn } from './helpers/demo-site';

/** Events the page got, in order, as a list on window (read with `eventsOf`). */
async function recordEvents(page: Page, types: string[]): Promise<void> {
  await page.evaluate((names) => {
    const log: string[] = ((window as unknown as { seen: string[] }).seen = []);
    for (const name of names) document.addEventListener(`online-now:${name}`, () => log.push(name));
  }, types);
}

const eventsOf = (page: Page): Promise<string[]> => page.evaluate(() => (window as unknown as { seen: string[] }).seen);

async function save(page: Page, note: string): Promise<void> {
  await page.getByTestId('note').fill(note);
  await page.evaluate(() => {
    document.querySelector('[data-testid=save-result]')!.textContent = '';
  });
  await page.getByTestId('save').click();
}

for (const kind of ['memory store', 'Redis, two processes behind one port'] as const) {
  describe(`editing safely together, in headless Chromium (${kind})`, function () {
    this.timeout(120_000);
    // Live updates reach a page of the same process within a look (250 ms); of another, within 2 × syncInterval + 250 ms.
    const live = kind === 'memory store' ? 2000 : 4000;
    const ui = chromiumAndSite(() => (kind === 'memory store' ? memorySite({ askGrace: 1 }) : redisSite({ ASK_GRACE: '1' })), { redis: kind !== 'memory store' });

    it('the guard, the changed-notice, a takeover, ask → decline and ask → hand over, as two admins see them', async () => {
      const ada = await signIn(ui.browser, ui.site.base, 'ada');
      const grace = await signIn(ui.browser, ui.site.base, 'grace');
      try {
        const adaPage = await ada.newPage();
        await adaPage.goto(`${ui.site.base}/orders/123?edit=1`);
        await shows(adaPage, 'lock', /^You are editing/);
        const gracePage = await grace.newPage();
        await gracePage.goto(`${ui.site.base}/orders/123/handlebars`);
        await shows(gracePage, 'lock', /^Ada Lovelace is editing since now\. Take over Ask to edit$/, live);

        // Grace did not open it for editing: her save is refused, with who edits it.
        await save(gracePage, 'from Grace');
        await shows(gracePage, 'save-result', /^Not saved: Ada Lovelace is editing this order \(since (now|\d+ seconds? ago)\)\.$/);
        // Ada's goes through, and Grace's page says so at once.
        await save(adaPage, 'from Ada');
        await shows(adaPage, 'save-result', /^Saved\.$/);
        await shows(gracePage, 'changed', /^Ada Lovelace saved this order (now|\d+ seconds? ago) — reload$/, live);
        expect(await adaPage.getByTestId('changed').innerText()).to.equal('');
        await gracePage.getByRole('link', { name: 'reload' }).click();
        await gracePage.waitForLoadState();
        expect(await gracePage.getByTestId('note').inputValue()).to.equal('from Ada');
        await shows(gracePage, 'changed', /^$/);

        // Grace takes over: Ada's saves are refused now, whichever process answers them.
        await recordEvents(adaPage, ['handover', 'takenover']);
        await gracePage.getByRole('button', { name: 'Take over' }).click();
        await shows(gracePage, 'lock', /^You are editing/);
        await save(adaPage, 'too late');
        await shows(adaPage, 'save-result', /^Not saved: Grace Hopper is editing this order/);
        const served = new Set<string>();
        for (let i = 0; i < 12; i++) {
          // Each a new connection: node:cluster deals connections out to the processes in turn.
          const res = await ada.request.post(`${ui.site.base}/orders/123`, { form: { note: 'too late' }, headers: { accept: 'application/json', connection: 'close' } });
          expect(res.status()).to.equal(423);
          expect(((await res.json()) as { message: string }).message).to.match(/^Not saved: Grace Hopper is editing this order/);
          served.add(res.headers()['x-served-by']);
        }
        if (kind !== 'memory store') expect(served.size, 'refused by both processes').to.equal(2);
        await shows(adaPage, 'lock', /^Grace Hopper is editing since now\. Take over Ask to edit$/, live);

        // Ada asks; Grace declines: the lock stays Grace's, and Ada's page says so.
        await adaPage.getByRole('button', { name: 'Ask to edit' }).click();
        await shows(adaPage, 'request', /^You asked Grace Hopper to hand over \((now|\d+ seconds? ago)\)\.$/, live);
        await shows(gracePage, 'request', /^Ada Lovelace asks to edit \((now|\d+ seconds? ago)\)\. Hand over Decline$/, live);
        await gracePage.getByRole('button', { name: 'Decline' }).click();
        await shows(adaPage, 'request', /^Grace Hopper declined to hand over\.$/, live);
        await shows(gracePage, 'request', /^$/, live);
        expect(await gracePage.getByTestId('lock').innerText()).to.match(/^You are editing/);

        // Ada asks again; Grace hands over. Her page gets its grace event first (the demo saves on it), then loses the lock.
        await recordEvents(gracePage, ['handover', 'takenover']);
        await gracePage.getByTestId('note').fill('saved before handing over');
        await adaPage.getByRole('button', { name: 'Ask to edit' }).click();
        await shows(gracePage, 'request', /^Ada Lovelace asks to edit/, live);
        await gracePage.getByRole('button', { name: 'Hand over' }).click();
        await shows(gracePage, 'save-result', /^Saved\.$/);
        // Three steps, each up to a live update's delay on a loaded machine: the grace second, then Ada's stream seeing the
        // hand-over, then her page's beat taking the lock (two syncs on Redis).
        await shows(adaPage, 'lock', /^You are editing/, 2 * live + 1000);
        await shows(gracePage, 'lock', /^Ada Lovelace is editing since now\. Take over Ask to edit$/, live);
        expect(await eventsOf(gracePage)).to.deep.equal(['handover', 'takenover']);
        await save(adaPage, 'Ada again');
        await shows(adaPage, 'save-result', /^Saved\.$/);
        await shows(gracePage, 'changed', /^Ada Lovelace saved this order/, live);
      } finally {
        await ada.close();
        await grace.close();
      }
    });

    it('a takeover clicked while the page’s first heartbeat is still on its way stands: that late heartbeat does not undo it', async () => {
      const ada = await signIn(ui.browser, ui.site.base, 'ada');
      const grace = await signIn(ui.browser, ui.site.base, 'grace');
      try {
        const adaPage = await ada.newPage();
        await adaPage.goto(`${ui.site.base}/orders/140?edit=1`);
        await shows(adaPage, 'lock', /^You are editing/);
        const gracePage = await grace.newPage();
        // A slow network: the page's first heartbeat (a viewer's) is held on its way until the test lets it go.
        let release = (): void => undefined;
        const held = new Promise<void>((resolve) => (release = resolve));
        let beats = 0;
        await gracePage.route('**/beat', async (route) => {
          if (++beats === 1) await held;
          await route.continue();
        });
        const firstReply = gracePage.waitForResponse('**/beat');
        await gracePage.goto(`${ui.site.base}/orders/140`);
        await shows(gracePage, 'lock', /^Ada Lovelace is editing since now\. Take over Ask to edit$/);
        await gracePage.getByRole('button', { name: 'Take over' }).click();
        await gracePage.waitForTimeout(500);
        release();
        await firstReply;
        await shows(gracePage, 'lock', /^You are editing/, live);
        await shows(adaPage, 'lock', /^Grace Hopper is editing since now\. Take over Ask to edit$/, live);
        // Settled, and still so: had the takeover gone first, the late viewer's heartbeat would have dropped its claim.
        await gracePage.waitForTimeout(live);
        expect(await gracePage.getByTestId('lock').innerText()).to.match(/^You are editing/);
        expect(await adaPage.getByTestId('lock').innerText()).to.match(/^Grace Hopper is editing/);
      } finally {
        await ada.close();
        await grace.close();
      }
    });

    it('a state on the stream a sync behind (the old holder still shown, after a takeover) does not make the new holder give the lock up', async () => {
      const ada = await signIn(ui.browser, ui.site.base, 'ada');
      const grace = await signIn(ui.browser, ui.site.base, 'grace');
      try {
        const adaPage = await ada.newPage();
        await adaPage.goto(`${ui.site.base}/orders/141?edit=1`);
        await shows(adaPage, 'lock', /^You are editing/);
        const adaTab = await adaPage.evaluate(() => document.querySelector('script[data-tab]')!.getAttribute('data-tab'));
        const gracePage = await grace.newPage();
        await gracePage.goto(`${ui.site.base}/orders/141`);
        await shows(gracePage, 'lock', /^Ada Lovelace is editing/, live);
        await gracePage.getByRole('button', { name: 'Take over' }).click();
        await shows(gracePage, 'lock', /^You are editing/);
        await shows(adaPage, 'lock', /^Grace Hopper is editing/, live);
        await recordEvents(gracePage, ['takenover', 'released']);
        // What a process that has not synced the takeover streams: Ada still holding. It comes as a leading tab
        // forwards stream events, over the BroadcastChannel; Grace's page checks it with one heartbeat.
        // An older generation than Grace's, and then a higher one claimed before hers (an old holder, seen after a
        // free lock was claimed again at a low generation): neither is a takeover.
        for (const generation of [0, 99]) {
          const checked = gracePage.waitForResponse('**/beat');
          await gracePage.evaluate(
            ([tab, gen]) => {
              const stale = { room: 'order:141', count: 2, here: [], lock: { id: 1, name: 'Ada Lovelace', since: new Date(0).toISOString(), mine: false, tab, generation: gen } };
              new BroadcastChannel('online-now').postMessage({ t: 'ev', type: 'here', data: stale });
            },
            [adaTab, generation] as const,
          );
          await checked;
          await shows(gracePage, 'lock', /^You are editing/);
        }
        expect(await eventsOf(gracePage)).to.deep.equal([]);
        await save(gracePage, 'from Grace, still holding');
        await shows(gracePage, 'save-result', /^Saved\.$/);
        await shows(adaPage, 'lock', /^Grace Hopper is editing/);
      } finally {
        await ada.close();
        await grace.close();
      }
    });

    it('a list of 50 orders shows each one’s lock badge, and one taken meanwhile appears live', async () => {
      const ada = await signIn(ui.browser, ui.site.base, 'ada');
      const grace: BrowserContext = await signIn(ui.browser, ui.site.base, 'grace');
      try {
        const edit = await grace.newPage();
        await edit.goto(`${ui.site.base}/orders/130?edit=1`);
        await shows(edit, 'lock', /^You are editing/);
        const list = await ada.newPage();
        await list.goto(`${ui.site.base}/orders`);
        // On Redis the list may come from the other process before it synced Grace's claim: it catches up live.
        await shows(list, 'badge-130', /^✎ Grace Hopper$/, live);
        const badges = await list.locator('[data-testid^=badge-]').evaluateAll((cells) => cells.map((c) => [c.getAttribute('data-testid'), (c as HTMLElement).innerText]));
        expect(badges).to.have.length(50);
        // Orders 123, 140 and 141 are the tests' above (their last holder's tab may stay its window, when its leave was
        // not sent as its page closed): every other order but 130 is free.
        const above = new Set(['badge-123', 'badge-140', 'badge-141']);
        expect(badges.filter(([id, text]) => !above.has(id as string) && text !== '')).to.deep.equal([['badge-130', '✎ Grace Hopper']]);

        const other = await grace.newPage();
        await other.goto(`${ui.site.base}/orders/160?edit=1`);
        await shows(list, 'badge-160', /^✎ Grace Hopper$/, live);
        // Staff release it: the badge goes, and Grace's page is told.
        await list.getByTestId('release-160').click();
        await list.waitForURL('**/orders');
        await shows(list, 'badge-160', /^$/, live);
        await shows(other, 'lock', /^$/, live);
        await shows(other, 'edit', /^Edit this order$/);
      } finally {
        await ada.close();
        await grace.close();
      }
    });
  });
}

// Accessible output (issue #25, point 4) in headless Chromium: the demo's dashboard
// (online list with status badges, badges, count), its orders list (lock badges) and an order page (who
// is here with their status badges, the lock sentence with Take over / Ask to edit, an ask, the changed notice)
// pass axe-core with no violations, in Nunjucks and in Handlebars, before and after
// live updates redrew them; and the optional live region announces joins and leaves,
// held back a few seconds so a quick leave and rejoin says nothing, and never a count.
import { expect } from 'chai';
import { createRequire } from 'node:module';
import type { Page } from 'playwright-core';
import { chromiumAndSite, shows, signIn } from './helpers/demo-site';
import { eventually } from './helpers/wait';

const require = createRequire(__filename);
const axe = require('axe-core') as { source: string };

/** axe-core's violations on the page as it is now, one line each: rule, then the offending elements. */
async function violations(page: Page): Promise<string[]> {
  if (!(await page.evaluate(() => 'axe' in window))) await page.addScriptTag({ content: axe.source });
  return page.evaluate(async () => {
    const { violations } = await (window as unknown as { axe: { run(): Promise<{ violations: { id: string; nodes: { target: string[] }[] }[] }> } }).axe.run();
    return violations.map((v) => `${v.id}: ${v.nodes.map((n) => n.target.join(' ')).join(', ')}`);
  });
}

async function accessible(page: Page, what: string): Promise<void> {
  expect(await violations(page), what).to.deep.equal([]);
}

/** What the page's live region said, each text it was given in order (a MutationObserver's record). */
async function recordAnnouncements(page: Page): Promise<void> {
  await page.evaluate(() => {
    const said: string[] = ((window as unknown as { said: string[] }).said = []);
    const region = document.querySelector('[data-online-announce]')!;
    new MutationObserver(() => said.push(region.textContent!)).observe(region, { childList: true, characterData: true, subtree: true });
  });
}
const announcements = (page: Page): Promise<string[]> => page.evaluate(() => (window as unknown as { said: string[] }).said);

describe('accessible output, in headless Chromium (axe-core, memory store)', function () {
  this.timeout(120_000);
  const ui = chromiumAndSite();

  for (const engine of ['nunjucks', 'handlebars'] as const) {
    it(`${engine}: the dashboard, the orders list and an order page have no violations, before and after live updates`, async () => {
      // An order of its own per engine: the other test's locks and saves stay on theirs.
      const id = engine === 'nunjucks' ? 123 : 124;
      const order = engine === 'nunjucks' ? `/orders/${id}` : `/orders/${id}/handlebars`;
      const ada = await signIn(ui.browser, ui.site.base, 'ada');
      const grace = await signIn(ui.browser, ui.site.base, 'grace');
      const alan = await signIn(ui.browser, ui.site.base, 'alan');
      try {
        const dashboard = await ada.newPage();
        await dashboard.goto(`${ui.site.base}/admin/${engine}`);
        await shows(dashboard, 'online-list', /Ada Lovelace[\s\S]*Grace Hopper/);
        await accessible(dashboard, 'dashboard');

        // Ada edits, Grace looks on and asks for the lock, Ada saves.
        const adaPage = await ada.newPage();
        await adaPage.goto(`${ui.site.base}${order}?edit=1`);
        await shows(adaPage, 'lock', /^You are editing/);
        const gracePage = await grace.newPage();
        await gracePage.goto(`${ui.site.base}${order}`);
        await shows(gracePage, 'lock', /^Ada Lovelace is editing since now\. Take over Ask to edit$/);
        await accessible(gracePage, 'order page, the lock sentence');
        await gracePage.getByRole('button', { name: 'Ask to edit' }).click();
        await shows(gracePage, 'request', /^You asked Ada Lovelace to hand over/);
        await shows(adaPage, 'request', /^Grace Hopper asks to edit .* Hand over Decline$/);
        await adaPage.getByTestId('save').click();
        await shows(gracePage, 'changed', /^Ada Lovelace saved this order/);
        await accessible(adaPage, 'order page, an ask to its holder');
        await accessible(gracePage, 'order page, an ask and the changed notice');

        const list = await ada.newPage();
        await list.goto(`${ui.site.base}/orders`);
        await shows(list, `badge-${id}`, /^✎ Ada Lovelace$/);
        await accessible(list, 'orders list, a lock badge');

        // Live: Alan signs in (the dashboard's list and badges), joins the order, takes the lock over and saves.
        const alanPage = await alan.newPage();
        await alanPage.goto(`${ui.site.base}${order}`);
        await shows(gracePage, 'here-list', /Alan Turing/);
        await shows(dashboard, 'online-list', /Alan Turing/);
        await alanPage.getByRole('button', { name: 'Take over' }).click();
        await shows(gracePage, 'lock', /^Alan Turing is editing since .*\. Take over Ask to edit$/);
        await shows(list, `badge-${id}`, /^✎ Alan Turing$/);
        await alanPage.getByTestId('save').click();
        await shows(adaPage, 'changed', /^Alan Turing saved this order/);
        await shows(gracePage, 'changed', /^Alan Turing saved this order/);
        await accessible(dashboard, 'dashboard, after live updates');
        await accessible(list, 'orders list, after a live badge');
        // Status badges (the demo has status on): a shape and a name, on the live list and among a room's members.
        expect(await dashboard.locator('[data-testid=online-list]').getByRole('img', { name: 'Active', exact: true }).count(), 'status badges, live list').to.be.at.least(3);
        expect(await gracePage.locator('[data-testid=here-list]').getByRole('img', { name: 'Active', exact: true }).count(), 'status badges, room members').to.be.at.least(2);
        // What a screen reader gets of the badge: who edits, not "lower right pencil".
        expect(await list.getByRole('img', { name: 'Alan Turing is editing', exact: true }).count()).to.equal(1);
        expect(await gracePage.locator('[data-online-announce][aria-live=polite]').count(), 'the live region').to.equal(1);
        await accessible(adaPage, 'order page, taken over and changed, live');
        await accessible(gracePage, 'order page, a new viewer, lock and save, live');
      } finally {
        await ada.close();
        await grace.close();
        await alan.close();
      }
    });
  }

  it('the live region says who joined and left, a few seconds later; a quick leave and rejoin says nothing, and counts never', async () => {
    const grace = await signIn(ui.browser, ui.site.base, 'grace');
    const alan = await signIn(ui.browser, ui.site.base, 'alan');
    try {
      const gracePage = await grace.newPage();
      // The stream's events, as the page gets them: the quick rejoin below must reach it, and still be quiet.
      await gracePage.addInitScript(() => {
        const got: string[] = ((window as unknown as { got: string[] }).got = []);
        for (const type of ['count', 'join', 'leave'])
          document.addEventListener(`online-now:${type}`, (e) => got.push(type === 'count' ? 'count' : `${type} ${(e as CustomEvent<{ name: string }>).detail.name}`));
      });
      const got = (): Promise<string[]> => gracePage.evaluate(() => (window as unknown as { got: string[] }).got.filter((e) => e !== 'count'));
      await gracePage.goto(`${ui.site.base}/orders/125`);
      await shows(gracePage, 'here-count', /^1$/);
      await recordAnnouncements(gracePage);
      // Alan comes once Grace's page is live (its stream's first state in): a join before then updates her list, unannounced.
      await eventually(async () => expect(await gracePage.evaluate(() => (window as unknown as { got: string[] }).got)).to.include('count'));

      let alanPage = await alan.newPage();
      await alanPage.goto(`${ui.site.base}/orders/125`);
      await shows(gracePage, 'here-count', /^2$/);
      expect(await announcements(gracePage), 'not at once').to.deep.equal([]);
      await eventually(async () => expect(await announcements(gracePage)).to.deep.equal(['Alan Turing joined']), 8000);

      // A reload, as a flaky network makes it: Alan leaves and is back a moment later.
      await alanPage.close({ runBeforeUnload: true });
      await shows(gracePage, 'here-count', /^1$/, 4000);
      alanPage = await alan.newPage();
      await alanPage.goto(`${ui.site.base}/orders/125`);
      await shows(gracePage, 'here-count', /^2$/);
      await gracePage.waitForTimeout(6000);
      expect(await got()).to.deep.equal(['join Alan Turing', 'leave Alan Turing', 'join Alan Turing']);
      expect(await announcements(gracePage), 'a quick leave and rejoin').to.deep.equal(['Alan Turing joined']);

      await alanPage.close({ runBeforeUnload: true });
      await shows(gracePage, 'here-count', /^1$/, 4000);
      await eventually(async () => expect(await announcements(gracePage)).to.deep.equal(['Alan Turing joined', 'Alan Turing left']), 8000);
      // The count went 1, 2, 1, 2, 1 meanwhile: the region said names only.
      expect(await gracePage.locator('[data-online-announce]').innerText()).to.equal('Alan Turing left');
    } finally {
      await grace.close();
      await alan.close();
    }
  });
});

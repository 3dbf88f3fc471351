import { expect } from 'chai';
import type { Page } from 'playwright-core';
import { chromiumAndSite, memorySite, signIn, withVisibility } from './helpers/demo-site';
import { eventually, sleep } from './helpers/wait';

// Short windows, so a test waits seconds, not minutes: time passing is the subject, on the real clock a browser runs on.
const IDLE_S = 6;
const AWAY_S = 12;

describe(`status in headless Chromium: input keeps a reader active, idle after ${IDLE_S} s without it, away after ${AWAY_S} s, a background tab and back (memory store)`, function () {
  this.timeout(120_000);
  const ui = chromiumAndSite(() => memorySite({ status: true, idleAfter: IDLE_S, awayAfter: AWAY_S, roomThreshold: 3 }));

  /** Ada's badge on Grace's dashboard, as the live updates left it: [online, status]. */
  const adaAsGraceSees = async (page: Page): Promise<[string | null, string | null]> => {
    const badge = page.locator('[data-testid="badge"][data-online-id="1"]').first();
    return [await badge.getAttribute('data-online'), await badge.getAttribute('data-online-status')];
  };

  it('Grace’s dashboard shows Ada active while she works, idle then away once she stops, and never offline while her tab is in the background; back, active at once', async () => {
    const ada = await signIn(ui.browser, ui.site.base, 'ada');
    await withVisibility(ada);
    const adaPage = await ada.newPage();
    await adaPage.goto(`${ui.site.base}/admin/nunjucks`);
    const grace = await signIn(ui.browser, ui.site.base, 'grace');
    const gracePage = await grace.newPage();
    await gracePage.goto(`${ui.site.base}/admin/nunjucks`);
    await eventually(async () => expect(await adaAsGraceSees(gracePage)).to.deep.equal(['true', 'active']), 5000);

    // Ada works (the mouse moves) for longer than the idle window: Grace never sees her idle.
    const seen = new Set<string>();
    for (const end = Date.now() + (IDLE_S + 3) * 1000; Date.now() < end;) {
      await adaPage.mouse.move(100 + Math.random() * 300, 100 + Math.random() * 300);
      seen.add((await adaAsGraceSees(gracePage)).join(' '));
      await sleep(250); // the pace of Ada's input: working for longer than the idle window is the subject
    }
    expect([...seen], 'while Ada works').to.deep.equal(['true active']);

    // She stops: idle after the idle window, away after the away window, online all along (her page beats).
    const stopped = Date.now();
    await eventually(async () => expect(await adaAsGraceSees(gracePage)).to.deep.equal(['true', 'idle']), (IDLE_S + 5) * 1000);
    expect(Date.now() - stopped, 'idle no sooner than the window, less a minute-step and the signal period').to.be.above((IDLE_S - 3) * 1000);
    await eventually(async () => expect(await adaAsGraceSees(gracePage)).to.deep.equal(['true', 'away']), (AWAY_S + 5) * 1000);

    // Her tab goes to the background: input there is nobody's (it is hidden), and she stays online, away.
    await adaPage.evaluate('window.setHidden(true)');
    const hidden = new Set<string>();
    for (const end = Date.now() + 4000; Date.now() < end;) {
      await adaPage.mouse.move(100 + Math.random() * 300, 100 + Math.random() * 300);
      hidden.add((await adaAsGraceSees(gracePage)).join(' '));
      await sleep(250); // the pace of the hidden tab's input
    }
    expect([...hidden], 'while her tab is in the background').to.deep.equal(['true away']);
    // Back to the tab: active at once, never having read as offline.
    await adaPage.evaluate('window.setHidden(false)');
    await eventually(async () => expect(await adaAsGraceSees(gracePage)).to.deep.equal(['true', 'active']), 5000);
  });
});

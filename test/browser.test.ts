import { expect } from 'chai';
import { createRequire } from 'node:module';
import { chromium, type Browser } from 'playwright-core';
import { listen, type Listening } from './helpers/server';
import { requireBinary } from './helpers/requirements';

const require = createRequire(__filename);
const { createDemoApp } = require('../views-examples/server.js') as { createDemoApp: (o: object) => { app: never } };
const CHROMIUM = '/usr/bin/chromium';

describe('the demo in headless Chromium', function () {
  this.timeout(60_000);
  let browser: Browser;
  let server: Listening;

  before(async function () {
    requireBinary(this, CHROMIUM, 'apt-get install -y chromium');
    server = await listen(createDemoApp({ sessionSecret: 'browser test' }).app);
    // playwright-core runs it headless with a fresh temporary profile; the flags keep it off the (closed) network.
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
  });

  after(async () => {
    await browser?.close();
    await server?.close();
  });

  it('two people sign in from two browser contexts; the admin page shows both, with the right count', async () => {
    const grace = await browser.newContext();
    const alan = await browser.newContext();
    try {
      const gracePage = await grace.newPage();
      let dialogs = 0;
      gracePage.on('dialog', (dialog) => {
        dialogs++;
        void dialog.dismiss();
      });
      await gracePage.goto(`${server.base}/`);
      await gracePage.getByTestId('login-grace').click();
      await gracePage.waitForURL('**/admin/nunjucks');
      expect(await gracePage.getByTestId('online-count').textContent()).to.equal('1');

      const alanPage = await alan.newPage();
      await alanPage.goto(`${server.base}/`);
      await alanPage.getByTestId('login-alan').click();
      await alanPage.waitForURL('**/admin/nunjucks');

      for (const engine of ['nunjucks', 'handlebars']) {
        await gracePage.goto(`${server.base}/admin/${engine}`);
        expect(await gracePage.getByTestId('online-count').textContent(), engine).to.equal('2');
        const names = await gracePage.locator('[data-testid=online-list] .name').allTextContents();
        expect(names, engine).to.deep.equal(['Grace Hopper', 'Alan Turing']);
        const badge = (id: number) => gracePage.locator(`tr[data-user-id="${id}"] [data-testid=badge]`).textContent();
        expect(await badge(2)).to.equal('Online');
        expect(await badge(3)).to.equal('Online');
        expect(await badge(1)).to.equal('Offline');
        // What a person sees: innerText leaves out whatever CSS hides, and reads the page as laid out.
        const text = await gracePage.innerText('body');
        expect(text, engine).to.match(/Users online\s+2\s/);
        expect(text, engine).to.match(/Listed below\s+2\s/);
        expect(text, engine).to.match(new RegExp(`Rendered by ${engine === 'nunjucks' ? 'Nunjucks' : 'Handlebars'}`));
        const list = await gracePage.getByTestId('online-list').innerText();
        expect(list, engine).to.match(/^\W*Grace Hopper\s[\s\S]*\sAlan Turing\s/);
        expect(list, engine).not.to.contain('Ada Lovelace');
        expect(text, engine).to.match(/Alan Turing\s+@alan\s+Member\s+Online\s/);
        expect(text, engine).to.match(/Ada Lovelace\s+@ada\s+Admin\s+Offline\s/);
        // The user named <script>alert(1)</script> shows as text: escaped, not run (no dialog opened).
        expect(text, engine).to.contain('<script>alert(1)</script>');
        expect(dialogs, engine).to.equal(0);
      }

      // Alan signs out in his browser; Grace's next page shows one.
      await alanPage.getByRole('button', { name: 'Sign out' }).click();
      await alanPage.waitForURL(`${server.base}/`);
      await gracePage.reload();
      expect(await gracePage.getByTestId('online-count').textContent()).to.equal('1');
      expect(await gracePage.innerText('body')).to.match(/Users online\s+1\s/);
      const list = await gracePage.getByTestId('online-list').innerText();
      expect(list).to.match(/^\W*Grace Hopper\s/);
      expect(list).not.to.contain('Alan Turing');
    } finally {
      await grace.close();
      await alan.close();
    }
  });
});

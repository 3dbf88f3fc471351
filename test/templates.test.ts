import { expect } from 'chai';
import { createRequire } from 'node:module';
import path from 'node:path';
import Handlebars from 'handlebars';
import nunjucks from 'nunjucks';
import session from 'express-session';
import { create as createExpressHandlebars } from 'express-handlebars';
import { createOnlineTracker, registerHandlebars, registerNunjucks } from 'express-online-now';
import { CookieBrowser } from './helpers/browser';
import { badgeOf, listedIds, testId } from './helpers/html';
import { expressVersions, listen, type Listening } from './helpers/server';

const require = createRequire(__filename);
const { createDemoApp } = require('../views-examples/server.js') as {
  createDemoApp: (options: object) => { app: never };
};

const engines = ['nunjucks', 'handlebars'] as const;

for (const { name, express } of expressVersions) {
  describe(`demo admin page, both engines (${name})`, () => {
    let server: Listening;
    beforeEach(async () => {
      server = await listen(createDemoApp({ express, sessionSecret: 'test' }).app);
    });
    afterEach(() => server.close());

    async function signedIn(id: number): Promise<CookieBrowser> {
      const browser = new CookieBrowser(server.base);
      const res = await browser.post('/login', { id: String(id) });
      expect(res.status).to.equal(303);
      expect(res.headers.get('location')).to.equal('/admin/nunjucks');
      return browser;
    }

    for (const engine of engines) {
      it(`${engine}: shows the count, the list most recent first, and a badge on every row`, async () => {
        const ada = await signedIn(1);
        const alan = await signedIn(3);
        await ada.get(`/admin/${engine}`);
        await alan.get(`/admin/${engine}`);
        const grace = await signedIn(2);
        const html = await grace.text(`/admin/${engine}`);
        expect(testId(html, 'online-count')).to.equal('3');
        expect(testId(html, 'listed-count')).to.equal('3');
        expect(testId(html, 'signed-in-as')).to.equal('Grace Hopper');
        expect(listedIds(html)).to.deep.equal(['2', '3', '1']);
        expect(badgeOf(html, 1)).to.equal('Online');
        expect(badgeOf(html, 2)).to.equal('Online');
        expect(badgeOf(html, 3)).to.equal('Online');
        expect(badgeOf(html, 4)).to.equal('Offline');
        expect(html).to.match(/<td class="muted"[^>]*><time datetime="\d{4}-\d\d-\d\dT[\d:.]+Z" title="[^"]+">now<\/time><\/td>/);
        expect(html).to.match(/<td class="muted"[^>]*>offline<\/td>/);
      });

      it(`${engine}: a sign-out shows at once on another user’s page`, async () => {
        const ada = await signedIn(1);
        const alan = await signedIn(3);
        await alan.get(`/admin/${engine}`);
        expect(badgeOf(await ada.text(`/admin/${engine}`), 3)).to.equal('Online');
        await alan.post('/logout');
        const html = await ada.text(`/admin/${engine}`);
        expect(badgeOf(html, 3)).to.equal('Offline');
        expect(testId(html, 'online-count')).to.equal('1');
      });

      it(`${engine}: counts a guest session once, apart from users`, async () => {
        const guest = new CookieBrowser(server.base);
        expect((await guest.post('/guest')).status).to.equal(303);
        await guest.get(`/admin/${engine}`);
        await guest.get(`/admin/${engine}`);
        const ada = await signedIn(1);
        const html = await ada.text(`/admin/${engine}`);
        expect(testId(html, 'guest-count')).to.equal('1');
        expect(testId(html, 'online-count')).to.equal('1');
      });

      it(`${engine}: renders a hostile display name as inert text`, async () => {
        const mallory = await signedIn(6);
        const html = await mallory.text(`/admin/${engine}`);
        expect(html).not.to.contain('<script>alert(1)</script>');
        expect(html).to.contain('&lt;script&gt;alert(1)&lt;/script&gt;');
        expect(listedIds(html)).to.deep.equal(['6']);
      });
    }

    it('both engines render the same presence for the same moment', async () => {
      const ada = await signedIn(1);
      await signedIn(4);
      const fromNunjucks = await ada.text('/admin/nunjucks');
      const fromHandlebars = await ada.text('/admin/handlebars');
      for (const id of ['online-count', 'guest-count', 'listed-count']) {
        expect(testId(fromHandlebars, id), id).to.equal(testId(fromNunjucks, id));
      }
      for (const user of [1, 2, 3, 4, 5, 6]) expect(badgeOf(fromHandlebars, user)).to.equal(badgeOf(fromNunjucks, user));
    });
  });
}

describe('template helpers on every kind of engine object', () => {
  const { express } = expressVersions[0];
  let server: Listening | undefined;
  afterEach(async () => {
    await server?.close();
    server = undefined;
  });

  /** An app whose /page renders `render(locals)` with a user signed in as ?as=ID. */
  async function pageApp(render: (locals: Record<string, unknown>) => string | Promise<string>) {
    const app = express();
    const online = createOnlineTracker({ max: 1 });
    app.use(session({ secret: 't', resave: false, saveUninitialized: false }));
    app.get('/as/:id', (req, res) => {
      (req.session as unknown as Record<string, unknown>).user = { id: Number(req.params.id), name: `U${req.params.id}` };
      res.sendStatus(204);
    });
    app.use(online.middleware());
    app.get('/page', async (_req, res, next) => {
      try {
        res.type('text').send(await render({ ...res.locals, people: [{ id: 1 }, { id: 2 }, { id: 3 }], someone: 2 }));
      } catch (err) {
        next(err);
      }
    });
    server = await listen(app);
    const one = new CookieBrowser(server.base);
    const two = new CookieBrowser(server.base);
    await one.get('/as/1');
    await two.get('/as/2');
    await one.get('/page');
    return two; // user 2 is the most recent; max 1 lists only them, yet user 1 must show online
  }

  it('Nunjucks: isOnline filter in a loop, isOnline global, lastSeen filter, bare ids', async () => {
    const env = registerNunjucks(new nunjucks.Environment(null, { autoescape: true }));
    const template =
      '{% for p in people %}{{ p.id }}:{{ "on" if p | isOnline else "off" }} {% endfor %}' +
      '| {{ isOnline(someone) }} {{ isOnline(99) }} | {{ (1 | lastSeen).getTime() > 0 }} {{ 3 | lastSeen }} | {{ onlineNow | length }}/{{ onlineCount }}';
    const browser = await pageApp((locals) => env.renderString(template, locals));
    expect(await browser.text('/page')).to.equal('1:on 2:on 3:off | true false | true  | 1/2');
  });

  it('Nunjucks: macros imported "with context" see the page’s locals', async () => {
    const loader = {
      getSource: (name: string) => ({
        src:
          name === 'macros.njk'
            ? '{% macro dot(p) %}{{ "●" if p | isOnline else "○" }}{% endmacro %}'
            : '{% import "macros.njk" as m with context %}{% for p in people %}{{ m.dot(p) }}{% endfor %}',
        path: name,
        noCache: true,
      }),
    };
    const env = registerNunjucks(new nunjucks.Environment(loader as never, { autoescape: true }));
    const browser = await pageApp((locals) => env.render('page.njk', locals));
    expect(await browser.text('/page')).to.equal('●●○');
  });

  const handlebarsTemplate =
    '{{#each people}}{{id}}:{{#if (isOnline this)}}on{{else}}off{{/if}} {{/each}}| {{#if (isOnline someone)}}yes{{/if}}{{#if (isOnline 99)}}no{{/if}} | {{onlineNow.length}}/{{onlineCount}}';
  const expected = '1:on 2:on 3:off | yes | 1/2';

  it('Handlebars: helpers registered on the handlebars module', async () => {
    const hbs = Handlebars.create(); // a fresh copy, so this test does not leak helpers into the module others use
    registerHandlebars(hbs);
    const template = hbs.compile(handlebarsTemplate);
    const browser = await pageApp((locals) => template(locals));
    expect(await browser.text('/page')).to.equal(expected);
    expect(hbs.helpers).to.have.property('lastSeen');
  });

  it('Handlebars: helpers registered on the module itself (require("handlebars"))', async () => {
    const module = require('handlebars') as typeof Handlebars;
    registerHandlebars(module);
    const template = module.compile('{{#if (isOnline someone)}}on{{/if}} {{#if (lastSeen 3)}}seen{{else}}never{{/if}}');
    const browser = await pageApp((locals) => template(locals));
    expect(await browser.text('/page')).to.equal('on never');
  });

  it('Handlebars: helpers registered on an express-handlebars instance reach views and partials', async () => {
    const views = path.join(__dirname, 'fixtures', 'views');
    const exphbs = createExpressHandlebars({ extname: '.hbs', defaultLayout: false, partialsDir: path.join(views, 'partials') });
    registerHandlebars(exphbs);
    const browser = await pageApp((locals) => exphbs.render(path.join(views, 'people.hbs'), locals));
    expect(await browser.text('/page')).to.equal(expected);
  });

  it('helpers answer "offline" on a page rendered without the middleware', () => {
    const env = registerNunjucks(new nunjucks.Environment());
    expect(env.renderString('{{ 1 | isOnline }} {{ isOnline(1) }} {{ 1 | lastSeen }}', {})).to.equal('false false ');
    const hbs = registerHandlebars(Handlebars.create());
    expect(hbs.compile('{{#if (isOnline 1)}}on{{else}}off{{/if}}')({})).to.equal('off');
  });

  it('rejects what is not an engine, with a message that names the fix', () => {
    expect(() => registerNunjucks({} as never)).to.throw(TypeError, /nunjucks\.configure/);
    expect(() => registerHandlebars({} as never)).to.throw(TypeError, /Handlebars\.create\(\)/);
    expect(() => registerHandlebars(undefined as never)).to.throw(TypeError, /express-handlebars/);
  });
});

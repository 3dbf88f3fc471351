import { expect } from 'chai';
import Handlebars from 'handlebars';
import nunjucks from 'nunjucks';
import session from 'express-session';
import { create as createExpressHandlebars } from 'express-handlebars';
import { createOnlineTracker, registerHandlebars, registerNunjucks, type OnlineTrackerOptions } from 'express-online-now';
import { formatTimeAgo, timeAgoHtml } from '../lib/templates/time-ago';
import { CookieBrowser } from './helpers/browser';
import { expressVersions, listen, type Listening } from './helpers/server';

const now = Date.UTC(2026, 10, 28, 17, 8, 8);
const ago = (seconds: number, locale?: string): string => formatTimeAgo(now - seconds * 1000, locale, now);

describe('timeAgo: "3 minutes ago"', () => {
  it('rounds as a reader expects, in English by default', () => {
    const cases: [number, string][] = [
      [0, 'now'],
      [4, 'now'],
      [12, '12 seconds ago'],
      [44, '44 seconds ago'],
      [45, '1 minute ago'],
      [89, '1 minute ago'],
      [90, '2 minutes ago'],
      [44 * 60, '44 minutes ago'],
      [45 * 60, '1 hour ago'],
      [21 * 3600, '21 hours ago'],
      [30 * 3600, 'yesterday'],
      [3 * 86400, '3 days ago'],
      [40 * 86400, 'last month'],
      [400 * 86400, 'last year'],
      [-5 * 60, 'in 5 minutes'],
    ];
    for (const [seconds, text] of cases) expect(ago(seconds), `${seconds} s`).to.equal(text);
  });

  it('speaks the locale it is given, and falls back to English for one Intl does not know', () => {
    expect(ago(180, 'de')).to.equal('vor 3 Minuten');
    expect(ago(180, 'fr')).to.equal('il y a 3 minutes');
    expect(ago(180, 'not a locale!')).to.equal('3 minutes ago');
    expect(formatTimeAgo(Number.NaN, 'en', now)).to.equal('');
  });

  it('has a markup form whose datetime keeps it true in a cached page', () => {
    const html = timeAgoHtml(now - 180_000, 'en', now);
    expect(html).to.match(/^<time datetime="2026-11-28T17:05:08\.000Z" title="November 28, 2026 at \d{1,2}:05\s?[AP]M">3 minutes ago<\/time>$/);
    expect(timeAgoHtml(Number.NaN)).to.equal('');
  });
});

describe('timeAgo and the no-argument helpers in pages', () => {
  const { express } = expressVersions[0];
  let server: Listening | undefined;
  afterEach(async () => {
    await server?.close();
    server = undefined;
  });

  /** An app whose /page renders `render(locals)`; /as/:id signs in; ?locale= sets res.locals.locale. */
  async function pageApp(render: (locals: Record<string, unknown>) => string | Promise<string>, options: OnlineTrackerOptions = {}) {
    const app = express();
    const online = createOnlineTracker(options);
    app.use(session({ secret: 't', resave: false, saveUninitialized: false }));
    app.get('/as/:id', (req, res) => {
      (req.session as unknown as Record<string, unknown>).user = { id: Number(req.params.id), name: `U${req.params.id}` };
      res.sendStatus(204);
    });
    app.use((req, res, next) => {
      if (typeof req.query.locale === 'string') res.locals.locale = req.query.locale;
      next();
    });
    app.use(online.middleware());
    app.get('/page', async (_req, res, next) => {
      try {
        res.type('text').send(await render({ ...res.locals, someone: 1, offline: 99, date: new Date(Date.now() - 3 * 3600_000) }));
      } catch (err) {
        next(err);
      }
    });
    server = await listen(app);
    const browser = new CookieBrowser(server.base);
    await browser.get('/as/1');
    return browser;
  }

  it('Handlebars: {{lastSeen}}, {{timeAgo}} and {{isOnline}} with no argument answer for the entry in #each', async () => {
    const hbs = registerHandlebars(Handlebars.create());
    const template = hbs.compile(
      '{{#each onlineNow}}{{name}} [{{timeAgo}}] [{{timeAgo lastSeen}}] [{{#if (isOnline)}}on{{/if}}] [{{lastSeen}}]{{/each}}' +
        ' | {{timeAgo someone}} | [{{timeAgo offline}}] | {{timeAgo date}} | {{timeAgo someone html=true}}' +
        ' | {{#if (timeAgo offline html=true)}}seen{{else}}offline{{/if}}',
    );
    const page = await (await pageApp((locals) => template(locals))).text('/page');
    const [entries, someone, offline, date, html, fallback] = page.split(' | ');
    expect(fallback).to.equal('offline');
    expect(entries).to.match(/^U1 \[now\] \[now\] \[on\] \[\w{3} \w{3} \d\d \d{4} [\d:]{8} GMT/);
    expect([someone, offline, date]).to.deep.equal(['now', '[]', '3 hours ago']);
    expect(html).to.match(/^<time datetime="[^"]+Z" title="[^"]+">now<\/time>$/);
  });

  it('Handlebars on express-handlebars: the html form is markup, the text form is escaped text', async () => {
    const exphbs = createExpressHandlebars({ defaultLayout: false });
    registerHandlebars(exphbs);
    const template = exphbs.handlebars.compile('{{#each onlineNow}}{{timeAgo html=true}}{{/each}}', {});
    const render = (locals: Record<string, unknown>) => template(locals, { helpers: exphbs.helpers as never });
    expect(await (await pageApp(render)).text('/page')).to.match(/^<time datetime=.*>now<\/time>$/);
  });

  it('Nunjucks: the timeAgo filter on a Date, a user, an entry, and as markup through autoescape', async () => {
    const env = registerNunjucks(new nunjucks.Environment(null, { autoescape: true }));
    const template =
      '{% for u in onlineNow %}{{ u.lastSeen | timeAgo }}/{{ u | timeAgo }}{% endfor %} | {{ date | timeAgo }} | [{{ offline | timeAgo }}]' +
      ' | {{ offline | timeAgo(html=true) or "offline" }} | {{ someone | timeAgo(html=true) }}';
    const page = await (await pageApp((locals) => env.renderString(template, locals))).text('/page');
    const [entries, date, offline, fallback, html] = page.split(' | ');
    // No time is a plain, falsy '': a template can fall back with `or`.
    expect([entries, date, offline, fallback]).to.deep.equal(['now/now', '3 hours ago', '[]', 'offline']);
    expect(html).to.match(/^<time datetime="[^"]+Z" title="[^"]+">now<\/time>$/);
  });

  it('speaks the tracker’s locale, the request’s res.locals.locale, or what the app picks from Accept-Language', async () => {
    const env = registerNunjucks(new nunjucks.Environment(null, { autoescape: true }));
    const render = (locals: Record<string, unknown>) => env.renderString('{{ date | timeAgo }}', locals);
    expect(await (await pageApp(render, { locale: 'de' })).text('/page')).to.equal('vor 3 Stunden');
    await server!.close();
    expect(await (await pageApp(render)).text('/page?locale=fr')).to.equal('il y a 3 heures');
    await server!.close();
    const browser = await pageApp(render, { locale: (req) => req.acceptsLanguages('de', 'en') });
    const res = await fetch(`${server!.base}/page`, { headers: { cookie: browser.cookieHeader, 'accept-language': 'de-CH,de;q=0.9' } });
    expect(await res.text()).to.equal('vor 3 Stunden');
    expect(await browser.text('/page')).to.equal('vor 3 Stunden'); // no header: the first the app accepts
  });

  it('refuses a locale that is not a language tag, naming the fix', () => {
    expect(() => createOnlineTracker({ locale: 'no such locale!' })).to.throw(TypeError, /"locale" must be a language tag/);
    expect(() => createOnlineTracker({ locale: 5 as never })).to.throw(TypeError, /ERR_ONLINE_NOW_LOCALE|"locale"/);
  });
});

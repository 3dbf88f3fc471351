import { expect } from 'chai';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { createHmac, timingSafeEqual } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import os from 'node:os';
import path from 'node:path';
import express from 'express';
import session from 'express-session';
import passport from 'passport';
import { Strategy as LocalStrategy } from 'passport-local';
import { createOnlineTracker } from 'express-online-now';
import { CookieBrowser } from './helpers/browser';
import { connect, freePort, REDIS_SERVER, RedisServer } from './helpers/redis';
import { requireBinary } from './helpers/requirements';
import { listen, type Listening } from './helpers/server';
import { eventually } from './helpers/wait';

// The README and every guide are read as a reader reads them: each page's code
// blocks, pasted in the order the page shows them, make apps (scripts/readme-examples.mjs
// assembles them). This suite assembles every page afresh, runs each app it
// makes as its own process, and signs real users in over HTTP. examples/ must
// hold exactly what the pages make: it is what the package ships.
const root = path.join(__dirname, '..');
const script = path.join(root, 'scripts', 'readme-examples.mjs');

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function runScript(args: string[]): Promise<Run> {
  return new Promise((resolve) => {
    execFile(process.execPath, [script, ...args], { cwd: root, timeout: 10_000 }, (error, stdout, stderr) => {
      resolve({ code: error ? ((error as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

interface Assembler {
  assemble(text: string, page: string, problems: string[]): Map<string, string>;
  assembleAll(problems: string[]): Map<string, string>;
  pages(): string[];
  folderOf(page: string): string;
}

/** Every page's blocks, pasted in order into a fresh folder of the repository (so `require('express-online-now')` finds this package). */
let assembled: string;
let made: Map<string, string>;
before(async () => {
  const { assembleAll } = (await import(pathToFileURL(script).href)) as Assembler;
  const problems: string[] = [];
  made = assembleAll(problems);
  expect(problems).to.deep.equal([]);
  assembled = mkdtempSync(path.join(root, '.assembled-'));
  for (const [file, text] of made) {
    mkdirSync(path.dirname(path.join(assembled, file)), { recursive: true });
    writeFileSync(path.join(assembled, file), text);
  }
});
after(() => rmSync(assembled, { recursive: true, force: true }));

describe('the pages and examples/ agree', function () {
  this.timeout(15_000);
  let tmp: string;
  before(() => {
    tmp = mkdtempSync(path.join(os.tmpdir(), 'readme-examples-'));
  });
  after(() => rmSync(tmp, { recursive: true, force: true }));

  it('examples/ holds exactly what the README and the guides make (npm run examples:check)', async () => {
    const run = await runScript([]);
    expect(run.stderr).to.equal('');
    expect(run.code).to.equal(0);
    expect(run.stdout).to.match(/^\d+ page\(s\) make the \d+ file\(s\) of examples\/\.\n$/);
  });

  it('refuses a block that names no file, continues a file nothing started, or starts one twice', async () => {
    const page = path.join(tmp, 'page.md');
    writeFileSync(
      page,
      [
        '# x',
        '```js\nconsole.log(user);\n```',
        '```js\n// app.js, continued: a route\napp.get("/", () => {});\n```',
        '```js\n// app.js: an app\nconst app = 1;\n```',
        '```js\n// app.js: again\n```',
        '```nunjucks\n// app.js, continued\n```',
        '```sh\nnpm test\n```',
      ].join('\n\n'),
    );
    const run = await runScript(['--page', page]);
    expect(run.code).to.equal(1);
    expect(run.stderr).to.contain('page.md:3: a ```js block that names no file');
    expect(run.stderr).to.contain('page.md:7: continues app.js, which no block above it on this page starts');
    expect(run.stderr).to.contain('page.md:17: starts app.js again');
    expect(run.stderr).to.contain('page.md:21: a ```nunjucks block for app.js; use ```js');
  });

  it('pastes a page in order: a continued block lands after the blocks above it', async () => {
    const { assemble } = (await import(pathToFileURL(script).href)) as Assembler;
    const files = assemble('```js\n// a.js: first\nconst a = 1;\n```\n\ntext\n\n```js\n// a.js, continued: second\nconsole.log(a);\n```\n', 'ordered.md', []);
    expect([...files]).to.deep.equal([['a.js', '// a.js: first\nconst a = 1;\n\n// a.js, continued: second\nconsole.log(a);\n']]);
  });
});

const USERS = {
  ada: { name: 'Ada Lovelace', password: 'analytical' },
  grace: { name: 'Grace Hopper', password: 'cobol' },
} as const;
type Username = keyof typeof USERS;

interface Example {
  /** The page whose blocks make it, and the app's file under that page's folder (as examples/ holds it). */
  readonly page: string;
  readonly file: string;
  /** Pages besides "/" that show the same who-is-online list. */
  readonly alsoAt?: readonly string[];
  /** trackGuests: a signed-out browser counts from its first page. */
  readonly guests?: boolean;
  /** Passport's local strategy: a form posting username and password. */
  readonly passport?: boolean;
  /** Sessions and presence in Redis, through this client library. */
  readonly redis?: 'node-redis' | 'ioredis';
  /** Invisible mode, bots, the record and last-seen in SQLite. */
  readonly forum?: boolean;
  /** Rooms: who else is on an order's page, and its editing lock. */
  readonly rooms?: boolean;
}

const EXAMPLES: readonly Example[] = [
  { page: 'README.md', file: 'readme/app.js', alsoAt: ['/nunjucks', '/handlebars'], guests: true },
  { page: 'docs/templates.md', file: 'templates/nunjucks.cjs' },
  { page: 'docs/templates.md', file: 'templates/handlebars.cjs' },
  { page: 'docs/templates.md', file: 'templates/handlebars-no-layout.cjs' },
  { page: 'docs/templates.md', file: 'templates/ejs.cjs' },
  { page: 'docs/forum-features.md', file: 'forum-features/forum.cjs', forum: true, guests: true },
  { page: 'docs/rooms-and-live.md', file: 'rooms-and-live/rooms.cjs', rooms: true },
  { page: 'docs/passport.md', file: 'passport/passport.cjs', passport: true },
  { page: 'docs/typescript.md', file: 'typescript/typescript.ts' },
  { page: 'docs/typescript.md', file: 'typescript/minimal.mjs' },
  { page: 'docs/redis-and-processes.md', file: 'redis-and-processes/redis.mjs', redis: 'node-redis' },
  { page: 'docs/redis-and-processes.md', file: 'redis-and-processes/ioredis.mjs', redis: 'ioredis' },
];

/** An example running as its own process, as `node examples/FILE` runs it. */
class ExampleProcess {
  private output = '';

  private constructor(
    private readonly child: ChildProcess,
    readonly base: string,
  ) {
    child.stdout!.on('data', (chunk: Buffer) => (this.output += chunk.toString()));
    child.stderr!.on('data', (chunk: Buffer) => (this.output += chunk.toString()));
  }

  /** Runs an assembled app from its own folder, as a reader runs `node app.js`. */
  static async start(file: string, env: Record<string, string>): Promise<ExampleProcess> {
    const port = await freePort();
    const name = path.basename(file);
    const child = spawn(process.execPath, name.endsWith('.ts') ? ['--import', 'tsx', name] : [name], {
      cwd: path.join(assembled, path.dirname(file)),
      env: { ...process.env, NODE_OPTIONS: '', PORT: String(port), ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    running.add(child);
    child.on('exit', () => running.delete(child));
    const example = new ExampleProcess(child, `http://127.0.0.1:${port}`);
    try {
      await example.ready(file);
    } catch (error) {
      await example.stop();
      throw error;
    }
    return example;
  }

  /** Resolves when the app answers, or rejects with what it printed when it exits first or takes too long. */
  private async ready(file: string): Promise<void> {
    const deadline = Date.now() + 15_000;
    for (;;) {
      if (this.child.exitCode !== null || this.child.signalCode !== null) {
        throw new Error(`${file} exited (${this.child.exitCode ?? this.child.signalCode}) before answering:\n${this.output}`);
      }
      let res: Response | undefined;
      try {
        res = await fetch(`${this.base}/`, { signal: AbortSignal.timeout(1000) });
      } catch {
        // not listening yet
      }
      if (res !== undefined) {
        const body = await res.text();
        if (res.status === 200) return;
        throw new Error(`${file}: GET / answered ${res.status}:\n${body}\n${this.output}`);
      }
      if (Date.now() > deadline) throw new Error(`${file} did not answer within 15 s:\n${this.output}`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }

  /** Everything the app printed, stdout and stderr together. */
  get printed(): string {
    return this.output;
  }

  async stop(): Promise<void> {
    const child = this.child;
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 3000);
    await exited;
    clearTimeout(timer);
  }
}

/**
 * A webhook receiver, as the forum guide's recipe posts to: it answers 500 to the
 * first post (a receiver down for a moment), then 204, and keeps every post it got.
 */
async function webhookReceiver(secret: string): Promise<{ listening: Listening; posts: { body: string; signed: boolean; status: number }[] }> {
  const posts: { body: string; signed: boolean; status: number }[] = [];
  const app = express();
  app.post('/hook', express.text({ type: 'application/json' }), (req, res) => {
    const body = String(req.body);
    const expected = Buffer.from(`sha256=${createHmac('sha256', secret).update(body).digest('hex')}`);
    const given = Buffer.from(String(req.get('x-signature-256') ?? ''));
    const status = posts.length === 0 ? 500 : 204;
    posts.push({ body, signed: given.length === expected.length && timingSafeEqual(given, expected), status });
    res.sendStatus(status);
  });
  return { listening: await listen(app), posts };
}

const running = new Set<ChildProcess>();
process.on('exit', () => {
  for (const child of running) child.kill('SIGKILL');
});

interface Presence {
  count: number;
  names: string[];
  times: string[];
  signedInAs: string | null;
}

/** The page every example renders: "<p>N online", a <ul class="online"> of "Name, <time …>…</time>". */
function presenceOf(html: string): Presence {
  const count = /<p>(\d+) online\b/.exec(html);
  const list = /<ul class="online">([\s\S]*?)<\/ul>/.exec(html);
  if (!count || !list) throw new Error(`not a who-is-online page:\n${html}`);
  return {
    count: Number(count[1]),
    names: [...list[1].matchAll(/<li>([^,<]+),/g)].map((m) => m[1].trim()),
    times: [...list[1].matchAll(/<time datetime="[^"]+" title="[^"]+">([^<]+)<\/time>/g)].map((m) => m[1]),
    signedInAs: /Signed in as ([^<]+?) <button>/.exec(html)?.[1] ?? null,
  };
}

async function signIn(base: string, username: Username, example: Example): Promise<CookieBrowser> {
  const browser = new CookieBrowser(base);
  if (example.passport) {
    // The login form's fields, as a person submits them.
    const res = await browser.post('/login', { username, password: USERS[username].password });
    expect(res.status, 'passport login').to.equal(302);
    expect(res.headers.get('location')).to.equal('/');
  } else {
    const res = await browser.post('/login', { username });
    expect(res.status, 'login').to.equal(303);
    expect(res.headers.get('location')).to.equal('/');
  }
  return browser;
}

async function page(browser: CookieBrowser): Promise<Presence> {
  return presenceOf(await browser.text('/'));
}

const RECENT = /^(now|\d+ seconds? ago)$/;

for (const example of EXAMPLES) {
  describe(`${example.page}, pasted in order: ${example.file}`, function () {
    this.timeout(30_000);
    let redis: RedisServer | undefined;
    const apps: ExampleProcess[] = [];
    const env: Record<string, string> = { SESSION_SECRET: `examples test ${example.file}` };
    let webhooks: Awaited<ReturnType<typeof webhookReceiver>> | undefined;

    before(async function () {
      if (example.forum) {
        env.WEBHOOK_SECRET = 'examples test webhooks';
        webhooks = await webhookReceiver(env.WEBHOOK_SECRET);
        env.WEBHOOK_URL = `${webhooks.listening.base}/hook`;
      }
      if (example.redis) {
        requireBinary(this, REDIS_SERVER, 'apt-get install -y redis-server');
        redis = await RedisServer.start();
        env.REDIS_URL = redis.url;
      }
      apps.push(await ExampleProcess.start(example.file, env));
    });

    after(async () => {
      await Promise.all(apps.map((app) => app.stop()));
      await redis?.stop();
      await webhooks?.listening.close();
    });

    it('counts a user who signs in, then a second from another browser, and drops one who signs out', async () => {
      const [app] = apps;
      const firstVisit = await new CookieBrowser(app.base).text('/');
      const anonymous = presenceOf(firstVisit);
      expect(anonymous.count).to.equal(0);
      expect(anonymous.signedInAs).to.equal(null);
      // A signed-out browser is a guest from its first page, with express-session's saveUninitialized: false.
      if (example.guests) expect(firstVisit).to.match(/<p>0 online,( 0 hidden,)? 1 guests\b/);

      const ada = await signIn(app.base, 'ada', example);
      const first = await page(ada);
      expect(first.signedInAs).to.equal('Ada Lovelace');
      expect(first.count).to.equal(1);
      expect(first.names).to.deep.equal(['Ada Lovelace']);
      expect(first.times).to.have.length(1);
      expect(first.times[0]).to.match(RECENT);

      const grace = await signIn(app.base, 'grace', example);
      const second = await page(grace);
      expect(second.signedInAs).to.equal('Grace Hopper');
      expect(second.count).to.equal(2);
      expect(second.names).to.deep.equal(['Grace Hopper', 'Ada Lovelace']); // most recent first
      expect((await page(ada)).count).to.equal(2);
      for (const other of example.alsoAt ?? []) {
        const there = presenceOf(await ada.text(other));
        expect(there.count, other).to.equal(2);
        expect(there.names, other).to.deep.equal(['Ada Lovelace', 'Grace Hopper']); // Ada's own request is the latest
        expect(there.times, other).to.have.length(2);
      }

      const out = await grace.post('/logout');
      expect(out.status).to.be.oneOf([302, 303]);
      expect((await page(grace)).signedInAs).to.equal(null);
      const after = await page(ada);
      expect(after.count).to.equal(1);
      expect(after.names).to.deep.equal(['Ada Lovelace']);

      expect(app.printed).to.match(/^Listening on http:\/\/localhost:\d+\/\n$/);
    });

    if (example.passport) {
      it('refuses a wrong password, and counts nobody for it', async () => {
        const browser = new CookieBrowser(apps[0].base);
        const res = await browser.post('/login', { username: 'ada', password: 'wrong' });
        expect(res.status).to.equal(302);
        expect(res.headers.get('location')).to.equal('/?failed');
        const html = await browser.text('/?failed');
        expect(html).to.contain('Wrong username or password.');
        expect(presenceOf(html).signedInAs).to.equal(null);
      });
    }

    if (example.forum) {
      it('hides an invisible user from others but not from the admin, counts a crawler apart, and keeps last-seen in SQLite', async () => {
        const base = apps[0].base;
        const ada = await signIn(base, 'ada', example); // the admin
        const grace = await signIn(base, 'grace', example);
        expect((await grace.post('/invisible', { on: '1' })).status).to.equal(303);
        const own = await grace.text('/');
        expect(own).to.contain('<li>Grace Hopper, ').and.to.contain('(invisible)</li>');
        expect(await ada.text('/')).to.contain('(invisible)</li>');
        // status: true: each listed user's status (Ada's request just now is activity).
        expect(await ada.text('/')).to.match(/<li>Ada Lovelace, <time [^>]+>now<\/time>, active<\/li>/);
        const visitor = await new CookieBrowser(base).text('/');
        expect(presenceOf(visitor).names).to.deep.equal(['Ada Lovelace']);
        expect(visitor).to.contain('<tr><td>Grace Hopper</td><td>offline</td></tr>');
        // How many are hidden is for the admin only (publicHiddenCount makes it everyone's); the visitor is a guest from its first page.
        expect(visitor).to.match(/<p>1 online, 0 hidden, [1-9]\d* guests, \d+ bots<\/p>/);
        await fetch(`${base}/`, { headers: { 'user-agent': 'Mozilla/5.0 (compatible; Googlebot/2.1)' } });
        const counts = /<p>1 online, 1 hidden, ([1-9]\d*) guests, ([1-9]\d*) bots<\/p>/.exec(await ada.text('/'));
        expect(counts).not.to.equal(null);
        // The metrics route says the same, and scraping it (a client on no crawler list) counts nobody.
        for (let i = 0; i < 2; i++) {
          const metrics = await (await fetch(`${base}/metrics`, { headers: { 'user-agent': 'Prometheus/2.42.0' } })).text();
          expect(metrics).to.contain('online_now_users{kind="member"} 1\nonline_now_users{kind="hidden"} 1\n');
          expect(metrics).to.contain(`online_now_users{kind="guest"} ${counts![1]}\nonline_now_users{kind="bot"} ${counts![2]}\n`);
        }
        expect(await ada.text('/')).to.match(/<p>Most ever online: [2-9] on /); // users and guests at once
        await grace.post('/invisible', { on: '0' });
        await grace.post('/logout');
        // onSeen ran after the logout request: the offline row reads the database.
        await eventually(async () => expect(await ada.text('/')).to.contain('<tr><td>Grace Hopper</td><td>last seen now</td></tr>'));
        // onOnline and onOffline filled the admin's activity feed: who came, who went and why, once each.
        const feed = [...(await ada.text('/activity')).matchAll(/<li>([^,]+),/g)].map((m) => m[1]);
        expect(feed.slice(0, 2)).to.deep.equal(['Grace Hopper went offline (logout)', 'Grace Hopper came online']);
        expect(feed).to.include('Ada Lovelace came online');
        // Earlier tests signed people in and out on this app too: per person, arrivals and departures alternate.
        for (const name of ['Ada Lovelace', 'Grace Hopper']) {
          const theirs = feed.filter((line) => line.startsWith(name)).reverse();
          theirs.forEach((line, i) => expect(line, `${name}'s feed, oldest first`).to.match(i % 2 === 0 ? / came online$/ : / went offline \(logout\)$/));
        }
        expect((await new CookieBrowser(base).get('/activity')).status).to.equal(403);
      });

      it('posts every activity row to the webhook, signed, in order, each landing once after the receiver failed the first', async () => {
        const base = apps[0].base;
        const grace = await signIn(base, 'grace', example);
        await grace.post('/logout');
        const ada = await signIn(base, 'ada', example);
        const feed = [...(await ada.text('/activity')).matchAll(/<li>([^,]+),/g)].map((m) => m[1]).reverse();
        const landed = (): { id: number; user: number; what: string }[] =>
          webhooks!.posts.filter((p) => p.status === 204).map((p) => JSON.parse(p.body) as { id: number; user: number; what: string });
        // The feed's rows (its latest 20), oldest first, are the last ones posted: nothing happened since it was read.
        const names: Record<number, string> = { 1: 'Ada Lovelace', 2: 'Grace Hopper' };
        await eventually(
          () =>
            expect(
              landed()
                .slice(-feed.length)
                .map((row) => `${names[row.user]} ${row.what}`),
            ).to.deep.equal(feed),
          15_000,
        );
        const ids = landed().map((row) => row.id);
        expect(ids, 'each row once, in the order written').to.deep.equal([...ids].sort((a, b) => a - b).filter((id, i, all) => all.indexOf(id) === i));
        expect(webhooks!.posts.every((p) => p.signed)).to.equal(true);
        // The first post failed (500) and the same row went again.
        expect(webhooks!.posts[0].status).to.equal(500);
        expect(webhooks!.posts[1].body).to.equal(webhooks!.posts[0].body);
        expect(apps[0].printed).to.contain('webhook: the receiver answered 500; trying again in 1 s');
      });
    }

    if (example.rooms) {
      it('puts both viewers of an order in its room, in Nunjucks and Handlebars, with the lock and the client script', async () => {
        const base = apps[0].base;
        const ada = await signIn(base, 'ada', example);
        const grace = await signIn(base, 'grace', example);
        const editing = await ada.text('/orders/123?edit=1');
        expect(editing).to.contain('You are editing');
        for (const path of ['/orders/123', '/orders/123/hbs']) {
          const html = await grace.text(path);
          expect(html, path).to.match(/<span data-online-here-count="order:123">2<\/span>/);
          expect(html, path).to.match(
            /<li data-online-id="1" data-mode="editing">Ada Lovelace <span class="online-mode">editing<\/span><\/li><li data-online-id="2" data-mode="viewing">Grace Hopper/,
          );
          expect(html, path).to.contain('Ada Lovelace is editing since <time');
          expect(html, path).to.match(
            /<script src="\/online-now\/client\.js" data-tab="[\w-]{44}" data-interval="10000" data-events="\/online-now\/events" data-room="order:123" data-mode="viewing" defer><\/script>/,
          );
        }
        expect(await grace.text('/orders/123')).to.contain('Ada Lovelace has had it open for editing now.');
        const script = await fetch(`${base}/online-now/client.js`);
        expect(script.status).to.equal(200);
        expect(await script.text()).to.contain('online-now:');
        // A room is per order: 124 has nobody else.
        expect(await grace.text('/orders/124')).to.match(/<span data-online-here-count="order:124">1<\/span>/);
      });

      it('keeps each order’s history from onRoom: who came in, who took the editing lock, newest first', async () => {
        const base = apps[0].base;
        const ada = await signIn(base, 'ada', example);
        const grace = await signIn(base, 'grace', example);
        await ada.text('/orders/125?edit=1');
        await grace.text('/orders/125');
        // onRoom runs just after each request: the page after it shows it.
        const history = JSON.parse(await grace.text('/orders/125/history')) as string[];
        expect(history.map((line) => line.replace(/^\S+ /, ''))).to.deep.equal(['Grace Hopper came in', 'Ada Lovelace took the editing lock', 'Ada Lovelace came in']);
        expect(history.every((line) => !Number.isNaN(Date.parse(line.split(' ')[0])))).to.equal(true);
        expect((await fetch(`${base}/orders/125/history`)).status).to.equal(403);
      });

      it('editing safely together: only the lock holder saves, others read who holds it; badges of every order; staff release', async () => {
        const base = apps[0].base;
        const ada = await signIn(base, 'ada', example);
        const grace = await signIn(base, 'grace', example);
        expect(await ada.text('/orders/124?edit=1')).to.contain('You are editing');
        const refused = await grace.request('POST', '/orders/124', { note: 'mine' });
        expect(refused.status).to.equal(423);
        expect(await refused.text()).to.match(/^<p class="online-refused" role="alert">Not saved: Ada Lovelace is editing this order \(since now\)\.<\/p>$/);
        expect((await ada.post('/orders/124', { note: 'paid' })).status).to.equal(303);
        expect(await grace.text('/orders')).to.match(
          /<td><span data-online-lock-badge="order:124"><span class="online-lock-badge" role="img" aria-label="Ada Lovelace is editing" title="Editing since [^"]+">✎ Ada Lovelace<\/span><\/span><\/td>/,
        );
        expect((await grace.post('/orders/124/release')).status).to.equal(403);
        expect((await ada.post('/orders/124/release')).status).to.equal(303);
        expect(await grace.text('/orders')).to.contain('<span data-online-lock-badge="order:124"></span>');
      });
    }

    if (example.redis) {
      it('keeps sessions and presence in Redis: a second process knows the session and shows the same count', async () => {
        const client = await connect(example.redis!, redis!);
        try {
          const sessions = (await client.command('KEYS', 'sess:*')) as string[];
          expect(sessions.length, 'session keys in Redis').to.be.greaterThan(0);
        } finally {
          await client.close();
        }
        const other = await ExampleProcess.start(example.file, env);
        apps.push(other);
        // Ada signed in on the first process; her cookie is good on the second.
        const ada = await signIn(apps[0].base, 'ada', example);
        const res = await fetch(`${other.base}/`, { headers: { cookie: ada.cookieHeader }, signal: AbortSignal.timeout(5000) });
        const there = presenceOf(await res.text());
        expect(there.signedInAs).to.equal('Ada Lovelace');
        const grace = await signIn(apps[0].base, 'grace', example);
        await eventually(async () => {
          const view = await page(grace);
          const fromOther = presenceOf(await (await fetch(`${other.base}/`, { signal: AbortSignal.timeout(5000) })).text());
          expect(fromOther.count).to.equal(view.count);
          expect(fromOther.names).to.deep.equal(view.names);
          expect(fromOther.names).to.include.members(['Ada Lovelace', 'Grace Hopper']);
        }, 5000);
      });
    }
  });
}

describe('every app the pages make is run above', () => {
  it('lists every program file the README and the guides make, with its page', async () => {
    const { folderOf, pages } = (await import(pathToFileURL(script).href)) as Assembler;
    const apps = [...made.keys()].filter((file) => /\.(cjs|mjs|js|ts)$/.test(file));
    expect(apps.sort()).to.deep.equal(EXAMPLES.map((e) => e.file).sort());
    for (const example of EXAMPLES) expect(example.file.split('/')[0], example.file).to.equal(folderOf(example.page));
    expect(pages()).to.include.members([...new Set(EXAMPLES.map((e) => e.page))]);
  });
});

describe('Passport, with the presence middleware mounted before passport.session()', function () {
  this.timeout(10_000);
  type User = { id: number; username: string; name: string };
  const ada: User = { id: 1, username: 'ada', name: 'Ada Lovelace' };
  let server: Listening | undefined;

  afterEach(async () => {
    await server?.close();
    server = undefined;
  });

  /** A real Passport (its own instance) with passport-local; `wrongWay` mounts online.middleware() first. */
  async function passportApp(wrongWay: boolean, onError?: (error: Error) => void): Promise<string> {
    const app = express();
    const auth = new passport.Passport();
    auth.use(new LocalStrategy((username, password, done) => done(null, username === 'ada' && password === 'analytical' ? ada : false)));
    auth.serializeUser((user, done) => done(null, (user as User).id));
    auth.deserializeUser((id: number, done) => done(null, id === ada.id ? ada : false));
    const online = createOnlineTracker(onError ? { onError } : {});
    app.use(express.urlencoded({ extended: false }));
    app.use(session({ secret: 'passport order', resave: false, saveUninitialized: false }));
    if (wrongWay) app.use(online.middleware());
    app.use(auth.session());
    if (!wrongWay) app.use(online.middleware());
    app.post('/login', auth.authenticate('local', { successRedirect: '/', failureRedirect: '/' }));
    app.get('/', (_req, res) => {
      res.json({ count: res.locals.onlineCount });
    });
    server = await listen(app);
    return server.base;
  }

  async function signInAndBrowse(base: string): Promise<number[]> {
    const browser = new CookieBrowser(base);
    expect((await browser.post('/login', { username: 'ada', password: 'analytical' })).status).to.equal(302);
    const counts: number[] = [];
    for (let i = 0; i < 3; i++) counts.push((await browser.json<{ count: number }>('/')).count);
    return counts;
  }

  it('reports once through onError, naming the fix: passport.session() first', async () => {
    const errors: Error[] = [];
    const counts = await signInAndBrowse(await passportApp(true, (error) => errors.push(error)));
    expect(counts).to.deep.equal([0, 0, 0]); // it sees nobody: req.user is not set yet
    expect(errors).to.have.length(1);
    expect(errors[0].message).to.contain('passport.session()');
    expect(errors[0].message).to.contain('online.middleware()');
  });

  it('without onError, the warning reaches the console, once', async () => {
    const warned: unknown[][] = [];
    const original = console.warn;
    console.warn = (...args: unknown[]) => void warned.push(args);
    try {
      await signInAndBrowse(await passportApp(true));
    } finally {
      console.warn = original;
    }
    expect(warned).to.have.length(1);
    expect(String(warned[0][0])).to.match(/^\[express-online-now\] .*passport\.session\(\)/);
  });

  it('mounted after passport.session(), as the README says: counted, nothing reported', async () => {
    const errors: Error[] = [];
    const counts = await signInAndBrowse(await passportApp(false, (error) => errors.push(error)));
    expect(counts).to.deep.equal([1, 1, 1]);
    expect(errors).to.deep.equal([]);
  });
});

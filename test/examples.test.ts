import { expect } from 'chai';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
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
import { eventually, listen, type Listening } from './helpers/server';

// Every example in examples/ is what a README block shows: the README and the
// files must agree (scripts/readme-examples.mjs), and each file must run as a
// real app that counts real users signing in over HTTP.
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

describe('README code blocks and examples/ agree', function () {
  this.timeout(15_000);
  let tmp: string;
  before(() => {
    tmp = mkdtempSync(path.join(os.tmpdir(), 'readme-examples-'));
  });
  after(() => rmSync(tmp, { recursive: true, force: true }));

  it('every marked block equals its source (npm run examples:check)', async () => {
    const run = await runScript([]);
    expect(run.stderr).to.equal('');
    expect(run.code).to.equal(0);
    expect(run.stdout).to.match(/README\.md: \d+ code block\(s\) match/);
  });

  it('a block edited by hand fails the check with a diff, and --write restores it', async () => {
    const readme = readFileSync(path.join(root, 'README.md'), 'utf8');
    const edited = readme.replace("app.use(online.middleware()); // after express-session\n", 'app.use(online.middleware());\n');
    expect(edited).not.to.equal(readme);
    const copy = path.join(tmp, 'README.md');
    writeFileSync(copy, edited);
    const run = await runScript(['--readme', copy]);
    expect(run.code).to.equal(1);
    expect(run.stderr).to.contain('the block differs from examples/minimal.cjs');
    expect(run.stderr).to.contain('  - app.use(online.middleware());\n');
    expect(run.stderr).to.contain('  + app.use(online.middleware()); // after express-session\n');

    expect((await runScript(['--readme', copy, '--write'])).code).to.equal(0);
    expect(readFileSync(copy, 'utf8')).to.equal(readme);
  });

  it('a program block with no source, or a source region that does not exist, fails the check', async () => {
    const copy = path.join(tmp, 'unsourced.md');
    writeFileSync(copy, '# x\n\n```js\nconsole.log(user);\n```\n\n<!-- example: examples/minimal.cjs#nope -->\n```js\n```\n\n```sh\nnpm test\n```\n');
    const run = await runScript(['--readme', copy]);
    expect(run.code).to.equal(1);
    expect(run.stderr).to.contain(':3: a ```js block with no source');
    expect(run.stderr).to.contain('examples/minimal.cjs has no region "nope"');
    expect(run.stderr).to.contain('2 problem(s)');
  });
});

const USERS = {
  ada: { name: 'Ada Lovelace', password: 'analytical' },
  grace: { name: 'Grace Hopper', password: 'cobol' },
} as const;
type Username = keyof typeof USERS;

interface Example {
  readonly file: string;
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
  { file: 'minimal.cjs' },
  { file: 'minimal.mjs' },
  { file: 'typescript.ts' },
  { file: 'passport.cjs', passport: true },
  { file: 'nunjucks.cjs' },
  { file: 'handlebars.cjs' },
  { file: 'handlebars-no-layout.cjs' },
  { file: 'ejs.cjs' },
  { file: 'redis.mjs', redis: 'node-redis' },
  { file: 'ioredis.mjs', redis: 'ioredis' },
  { file: 'forum.cjs', forum: true },
  { file: 'rooms.cjs', rooms: true },
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

  static async start(file: string, env: Record<string, string>): Promise<ExampleProcess> {
    const port = await freePort();
    const args = file.endsWith('.ts') ? ['--import', 'tsx', path.join('examples', file)] : [path.join('examples', file)];
    const child = spawn(process.execPath, args, {
      cwd: root,
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
        throw new Error(`examples/${file} exited (${this.child.exitCode ?? this.child.signalCode}) before answering:\n${this.output}`);
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
        throw new Error(`examples/${file}: GET / answered ${res.status}:\n${body}\n${this.output}`);
      }
      if (Date.now() > deadline) throw new Error(`examples/${file} did not answer within 15 s:\n${this.output}`);
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
  describe(`examples/${example.file}`, function () {
    this.timeout(30_000);
    let redis: RedisServer | undefined;
    const apps: ExampleProcess[] = [];
    const env: Record<string, string> = { SESSION_SECRET: `examples test ${example.file}` };

    before(async function () {
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
    });

    it('counts a user who signs in, then a second from another browser, and drops one who signs out', async () => {
      const [app] = apps;
      const anonymous = await page(new CookieBrowser(app.base));
      expect(anonymous.count).to.equal(0);
      expect(anonymous.signedInAs).to.equal(null);

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
        const visitor = await new CookieBrowser(base).text('/');
        expect(presenceOf(visitor).names).to.deep.equal(['Ada Lovelace']);
        expect(visitor).to.contain('<tr><td>Grace Hopper</td><td>offline</td></tr>');
        // How many are hidden is for the admin only (publicHiddenCount makes it everyone's).
        expect(visitor).to.match(/<p>1 online, 0 hidden, 0 guests, \d+ bots<\/p>/);
        await fetch(`${base}/`, { headers: { 'user-agent': 'Mozilla/5.0 (compatible; Googlebot/2.1)' } });
        expect(await ada.text('/')).to.match(/<p>1 online, 1 hidden, 0 guests, [1-9]\d* bots<\/p>/);
        expect(await ada.text('/')).to.contain('<p>Most ever online: 2 on ');
        await grace.post('/invisible', { on: '0' });
        await grace.post('/logout');
        // onSeen ran after the logout request: the offline row reads the database.
        await eventually(async () => expect(await ada.text('/')).to.contain('<tr><td>Grace Hopper</td><td>last seen now</td></tr>'));
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
          expect(html, path).to.match(/<li data-online-id="1" data-mode="editing">Ada Lovelace <span class="online-mode">editing<\/span><\/li><li data-online-id="2" data-mode="viewing">Grace Hopper/);
          expect(html, path).to.contain('Ada Lovelace is editing since <time');
          expect(html, path).to.match(/<script src="\/online-now\/client\.js" data-tab="[\w-]{44}" data-interval="10000" data-events="\/online-now\/events" data-room="order:123" data-mode="viewing" defer><\/script>/);
        }
        expect(await grace.text('/orders/123')).to.contain('Ada Lovelace has had it open for editing now.');
        const script = await fetch(`${base}/online-now/client.js`);
        expect(script.status).to.equal(200);
        expect(await script.text()).to.contain('online-now:');
        // A room is per order: 124 has nobody else.
        expect(await grace.text('/orders/124')).to.match(/<span data-online-here-count="order:124">1<\/span>/);
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

describe('examples/ holds no example this suite does not run', () => {
  it('lists every app in examples/', () => {
    const apps = readdirSync(path.join(root, 'examples')).filter((name) => /\.(cjs|mjs|js|ts)$/.test(name));
    expect(apps.sort()).to.deep.equal(EXAMPLES.map((e) => e.file).sort());
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

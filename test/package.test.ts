import { expect } from 'chai';
import { execFile, spawn } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { CookieBrowser } from './helpers/browser';
import { freePort } from './helpers/redis';
import { eventually } from './helpers/wait';

// What users get: the package as `npm pack` publishes it, installed from its
// tarball into a fresh project outside this repository, then loaded by name
// from CommonJS, from an ES module and from TypeScript.

const run = promisify(execFile);
const root = path.join(__dirname, '..');
const fixtures = path.join(__dirname, 'fixtures', 'consumer');
const fromRoot = createRequire(path.join(root, 'package.json'));

/** What both the CommonJS and the ES module consumer print when the package works. */
const works = {
  count: 2,
  ids: ['2', 1],
  exports: ['function', 'function', 'function', 'function', 'function'],
  configError: 'ERR_ONLINE_NOW_MAX',
  // Loading the package loads itself and its dependencies: never a devDependency, never express.
  loaded: ['express-online-now', 'isbot', 'lru-cache'],
  version: (fromRoot('./package.json') as { version: string }).version,
  // Only what package.json "exports" lists can be reached.
  deepImport: 'ERR_PACKAGE_PATH_NOT_EXPORTED',
  // One request through the app's own Express, rendered by Nunjucks (CommonJS) or Handlebars (ESM).
  page: '3 online: Cy, 2, Ann',
  reported: [],
};

/** The only top-level entries the tarball may hold. */
const published = ['BENCHMARKS.md', 'CHANGELOG.md', 'CONTRIBUTING.md', 'LICENSE', 'README.md', 'dist', 'docs', 'examples', 'lib', 'package.json'];

/** What the consumers need besides the package, at the versions this repository tests with. */
const consumerDependencies = ['express', 'express-session', 'express-handlebars', 'nunjucks', 'handlebars'];
const consumerDevDependencies = ['@types/express', '@types/node', '@types/nunjucks'];

/** Our environment minus what `npm test` adds for its own package, and minus module path overrides. */
function childEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  for (const key of Object.keys(env)) {
    if (/^npm_(?!config_)/i.test(key) || /^npm_config_local_prefix$/i.test(key)) delete env[key];
  }
  delete env.NODE_PATH;
  delete env.NODE_OPTIONS;
  return env;
}

function newestMtime(dir: string): { file: string; ms: number } {
  let newest = { file: dir, ms: 0 };
  for (const name of readdirSync(dir, { recursive: true }) as string[]) {
    const ms = statSync(path.join(dir, name)).mtimeMs;
    if (ms > newest.ms) newest = { file: path.join(dir, name), ms };
  }
  return newest;
}

/** Every file path a package.json points a consumer at: main, types, and each target in exports. */
function entryPoints(pkg: { main?: string; types?: string; exports?: unknown }): string[] {
  const targets: string[] = [];
  const walk = (value: unknown): void => {
    if (typeof value === 'string') targets.push(value);
    else if (value && typeof value === 'object') Object.values(value).forEach(walk);
  };
  walk([pkg.main, pkg.types, pkg.exports]);
  return [...new Set(targets.map((target) => path.posix.normalize(target)))].sort();
}

const kB = (bytes: number): string => `${(bytes / 1000).toFixed(1)} kB`;

describe('the published package, installed from its tarball into a fresh project', function () {
  let tmp: string;
  let project: string;
  let entries: string[]; // paths in the tarball, without the leading "package/"
  let packedJson: { main?: string; types?: string; exports?: unknown; scripts?: Record<string, string> };
  const env = childEnv();

  before(async function () {
    this.timeout(180_000);
    // `npm test` has just built dist/; build it here too and the suite would build twice. So pack
    // without the prepack build, after checking that dist/ is there and newer than every source.
    const built = path.join(root, 'dist', 'index.mjs'); // the build's last file
    if (!existsSync(built)) throw new Error('dist/ is not built: run `npm run build` first (`npm test` does)');
    const source = newestMtime(path.join(root, 'lib'));
    if (source.ms > statSync(built).mtimeMs) {
      throw new Error(`dist/ is older than ${path.relative(root, source.file)}: run \`npm run build\` first (\`npm test\` does)`);
    }

    tmp = mkdtempSync(path.join(os.tmpdir(), 'online-now-package-'));
    const { stdout: packOut } = await run('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', tmp], { cwd: root, env });
    const [pack] = JSON.parse(packOut) as [{ filename: string; size: number; unpackedSize: number; entryCount: number }];
    const tarball = path.join(tmp, pack.filename);

    const { stdout: listing } = await run('tar', ['-tzf', tarball]);
    entries = listing
      .split('\n')
      .filter(Boolean)
      .map((entry) => entry.replace(/^package\//, ''))
      .sort();
    const { stdout: packageJson } = await run('tar', ['-xzOf', tarball, 'package/package.json']);
    packedJson = JSON.parse(packageJson);

    // The fresh project: the tarball, and what the consumers need, pinned to the versions
    // installed here (found in npm's cache after `npm ci`; the registry only for what is not).
    project = path.join(tmp, 'project');
    const pinned = (names: string[]) => Object.fromEntries(names.map((name) => [name, (fromRoot(`${name}/package.json`) as { version: string }).version]));
    cpSync(fixtures, project, { recursive: true });
    writeFileSync(
      path.join(project, 'package.json'),
      JSON.stringify(
        {
          name: 'fresh-consumer',
          version: '1.0.0',
          private: true,
          dependencies: { 'express-online-now': `file:../${pack.filename}`, ...pinned(consumerDependencies) },
          devDependencies: pinned(consumerDevDependencies),
        },
        null,
        2,
      ),
    );
    const started = performance.now();
    await run('npm', ['install', '--no-audit', '--no-fund', '--prefer-offline', '--no-package-lock', '--ignore-scripts', '--loglevel=error'], {
      cwd: project,
      env,
    });
    await run(process.execPath, ['-e', "require('express-online-now')"], { cwd: project, env });
    const seconds = ((performance.now() - started) / 1000).toFixed(1);
    console.log(`      ${pack.filename}: ${kB(pack.size)} packed, ${kB(pack.unpackedSize)} unpacked, ${pack.entryCount} files; ` + `npm install to first require() ${seconds} s`);
  });

  after(() => {
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  });

  async function consumer(file: string): Promise<unknown> {
    const { stdout } = await run(process.execPath, [file], { cwd: project, env });
    return JSON.parse(stdout);
  }

  it('holds dist/, lib/, docs/, examples/, the README, LICENSE, CHANGELOG, BENCHMARKS, CONTRIBUTING and package.json, and nothing else', () => {
    expect([...new Set(entries.map((entry) => entry.split('/')[0]))].sort()).to.deep.equal(published);
    expect(entries.filter((entry) => /^(test|bench|views-examples|scripts|node_modules)\//.test(entry))).to.deep.equal([]);
    expect(entries.filter((entry) => /\.tgz$|(^|\/)\.|tsconfig|eslint/.test(entry))).to.deep.equal([]);
  });

  it('ships dist/ built from exactly the lib/ it ships: no stale file, none missing', () => {
    const modules = entries.filter((entry) => /^lib\/.*\.ts$/.test(entry)).map((entry) => entry.slice('lib/'.length, -'.ts'.length));
    expect(modules).to.include('index');
    const expected = [
      ...modules.flatMap((m) => [`dist/${m}.js`, `dist/${m}.js.map`, `dist/${m}.d.ts`]),
      'dist/index.mjs',
      'dist/index.d.mts',
      // The browser script (tracker.client()): its readable source in lib/, minified in dist/.
      'dist/live/browser/online-now.min.js',
    ].sort();
    expect(entries.filter((entry) => entry.startsWith('dist/'))).to.deep.equal(expected);
    expect(entries.filter((entry) => entry.startsWith('lib/') && !entry.endsWith('.ts'))).to.deep.equal(['lib/live/browser/online-now.js']);
  });

  it('points main, types and every export at a file it ships, and runs nothing on install', () => {
    const targets = entryPoints(packedJson);
    expect(targets).to.include.members(['dist/index.js', 'dist/index.mjs', 'dist/index.d.ts', 'dist/index.d.mts', 'package.json']);
    for (const target of targets) expect(entries, target).to.include(target);
    const lifecycle = Object.keys(packedJson.scripts ?? {}).filter((name) => /^(pre|post)?install$|^prepare$/.test(name));
    expect(lifecycle).to.deep.equal([]);
  });

  it('ships the guides and examples/: every relative link of the README and the guides leads to a file it ships', () => {
    const installed = path.join(project, 'node_modules', 'express-online-now');
    const pages = ['README.md', ...entries.filter((entry) => /^docs\/[\w-]+\.md$/.test(entry))];
    expect(pages).to.include.members(['docs/privacy.md', 'docs/rooms-and-live.md', 'docs/error-codes.md']);
    const broken: string[] = [];
    let relative = 0;
    for (const page of pages) {
      for (const [, target] of readFileSync(path.join(installed, page), 'utf8').matchAll(/\]\(([^)\s#]+)(?:#[^)\s]*)?\)/g)) {
        if (/^[a-z]+:/i.test(target)) continue;
        relative++;
        const shipped = path.posix.normalize(path.posix.join(path.posix.dirname(page), target)).replace(/\/$/, '');
        if (!entries.includes(shipped) && !entries.some((entry) => entry.startsWith(`${shipped}/`))) broken.push(`${page}: ${target}`);
      }
    }
    expect(relative).to.be.greaterThan(20);
    expect(broken).to.deep.equal([]);
    // The examples are the repository's, which the pages make (test/examples.test.ts).
    const inRepo = (readdirSync(path.join(root, 'examples'), { recursive: true }) as string[])
      .filter((name) => statSync(path.join(root, 'examples', name)).isFile())
      .map((name) => `examples/${name.split(path.sep).join('/')}`);
    expect(entries.filter((entry) => entry.startsWith('examples/'))).to.deep.equal(inRepo.sort());
  });

  it("runs the README's app from the installed package, pasted into a new folder: two users and a guest counted", async function () {
    this.timeout(30_000);
    const app = path.join(project, 'newcomer');
    cpSync(path.join(project, 'node_modules', 'express-online-now', 'examples', 'readme'), app, { recursive: true });
    const port = await freePort();
    const child = spawn(process.execPath, ['app.js'], { cwd: app, env: { ...env, PORT: String(port) }, stdio: ['ignore', 'pipe', 'pipe'] });
    let printed = '';
    child.stdout.on('data', (chunk: Buffer) => (printed += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (printed += chunk.toString()));
    try {
      await eventually(() => expect(printed).to.contain('Listening on'), 15_000);
      const base = `http://127.0.0.1:${port}`;
      const guest = new CookieBrowser(base);
      expect(await guest.text('/')).to.contain('<p>0 online, 1 guests</p>');
      for (const username of ['ada', 'grace']) expect((await new CookieBrowser(base).post('/login', { username })).status).to.equal(303);
      for (const page of ['/', '/nunjucks', '/handlebars']) {
        const html = await guest.text(page);
        expect(html, page).to.contain('<p>2 online, 1 guests</p>');
        expect(
          [...html.matchAll(/<li>([^,<]+),/g)].map((m) => m[1]),
          page,
        ).to.deep.equal(['Grace Hopper', 'Ada Lovelace']);
      }
    } finally {
      child.kill();
    }
  });

  it('works from CommonJS require()', async () => {
    expect(await consumer('cjs.cjs')).to.deep.equal(works);
  });

  it('works from an ES module import, sharing one instance with require()', async () => {
    expect(await consumer('esm.mjs')).to.deep.equal({ ...works, sameInstance: true });
  });

  it('type-checks a strict TypeScript consumer, each module system on its own declarations, and rejects wrong options', async function () {
    this.timeout(60_000);
    const tsc = fromRoot.resolve('typescript/bin/tsc');
    // Strict, and checking the published declaration files too (no skipLibCheck), whatever the fixture's tsconfig says.
    const args = [tsc, '-p', 'tsconfig.json', '--strict', '--skipLibCheck', 'false', '--traceResolution'];
    const { stdout, failed } = await run(process.execPath, args, { cwd: project, env, maxBuffer: 256 << 20 }).then(
      ({ stdout: out }) => ({ stdout: out, failed: false }),
      (err: { stdout?: string }) => ({ stdout: err.stdout ?? String(err), failed: true }),
    );
    expect(failed ? stdout.split('\n').filter((line) => /error TS/.test(line)) : []).to.deep.equal([]);
    // From the trace: which declaration file each consumer's import of the package resolved to.
    const resolved: Record<string, string> = {};
    let importer = '';
    for (const line of stdout.split('\n')) {
      const from = /^======== Resolving module 'express-online-now' from '(.+)'\. ========$/.exec(line);
      if (from) importer = path.relative(project, from[1]);
      const to = /^======== Module name 'express-online-now' was successfully resolved to '([^']+)'/.exec(line);
      if (to) resolved[importer] = path.relative(project, to[1]);
    }
    expect(resolved).to.deep.equal({
      'typed.cts': path.join('node_modules', 'express-online-now', 'dist', 'index.d.ts'),
      'typed.mts': path.join('node_modules', 'express-online-now', 'dist', 'index.d.mts'),
    });
  });
});

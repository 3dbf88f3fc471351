// The demo in headless Chromium, for the browser tests: on the memory store in
// this process, or as two processes behind one port (views-examples/cluster.js)
// sharing presence and sessions through Redis; people sign in, and a test reads
// what a page shows until it matches.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { freePort, REDIS_SERVER, RedisServer } from './redis';
import { requireBinary } from './requirements';
import { expect } from 'chai';
import { listen, type Listening } from './server';
import { eventually } from './wait';

const require = createRequire(__filename);
const express = require('express') as typeof import('express');
const { createDemoApp } = require('../../views-examples/server.js') as { createDemoApp: (o: object) => { app: never; online: { close(): Promise<void> } } };
export const CHROMIUM = '/usr/bin/chromium';
const ROOT = path.join(__dirname, '..', '..');

/** What a person sees of an element, read until it matches (live updates come without reload). */
export async function shows(page: Page, testId: string, pattern: RegExp, withinMs = 2000): Promise<string> {
  let text = '';
  await eventually(async () => {
    text = (await page.getByTestId(testId).innerText()).trim();
    expect(text, testId).to.match(pattern);
  }, withinMs);
  return text;
}

export async function signIn(browser: Browser, base: string, who: 'ada' | 'grace' | 'alan'): Promise<BrowserContext> {
  const context = await browser.newContext();
  const page = await context.newPage();
  await page.goto(`${base}/`);
  await page.getByTestId(`login-${who}`).click();
  await page.waitForURL('**/admin/nunjucks');
  await page.close();
  return context;
}

export interface Site {
  readonly base: string;
  /** Event streams the server has open now, when it can tell (one process). */
  readonly serverStreams?: () => number;
  close(): Promise<void>;
}

/** The demo in this process, on the memory store, counting its open event streams. */
export async function memorySite(tracker: object = {}): Promise<Site> {
  const outer = express();
  let open = 0;
  outer.use((req, res, next) => {
    if (req.path === '/online-now/events') {
      open++;
      res.on('close', () => open--);
    }
    next();
  });
  outer.use(createDemoApp({ sessionSecret: 'rooms in the browser', tracker }).app);
  const server: Listening = await listen(outer as never);
  return { base: server.base, serverStreams: () => open, close: () => server.close() };
}

/** Two demo processes behind one port (node:cluster, round robin), sharing sessions and presence through Redis. */
export async function redisSite(env: Record<string, string> = {}): Promise<Site> {
  const redis = await RedisServer.start();
  const port = await freePort();
  const dir = mkdtempSync(path.join(os.tmpdir(), 'rooms-cluster-'));
  const child: ChildProcess = spawn(process.execPath, [path.join(ROOT, 'views-examples', 'cluster.js')], {
    env: { ...process.env, REDIS_URL: redis.url, WORKERS: '2', PORT: String(port), DATABASE: path.join(dir, 'demo.sqlite'), SESSION_SECRET: 'two processes', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
    // Its own process group: the workers are killed with the primary.
    detached: true,
  });
  await new Promise<void>((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`the cluster did not start: ${out}`)), 20_000);
    const onData = (chunk: Buffer): void => {
      out += chunk.toString();
      if ((out.match(/express-online-now demo on/g) ?? []).length === 2) {
        clearTimeout(timer);
        resolve();
      }
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    child.on('exit', (code) => reject(new Error(`the cluster exited (${code}): ${out}`)));
  });
  return {
    base: `http://127.0.0.1:${port}`,
    close: async () => {
      if (child.exitCode === null && child.signalCode === null) {
        const exited = new Promise((resolve) => child.once('exit', resolve));
        process.kill(-child.pid!, 'SIGKILL');
        await exited;
      }
      await redis.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export function launch(args: string[] = [], ignoreDefaultArgs: string[] = []): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync', ...args],
    ignoreDefaultArgs,
  });
}

/**
 * Chromium and a demo site for the tests of one describe block: started before them, closed after. `open`
 * starts the site; `redis` (the site runs on Redis) requires redis-server too; `args`, `ignoreDefaultArgs`: launch()'s.
 */
export function chromiumAndSite(
  open: () => Promise<Site> = () => memorySite(),
  options: { redis?: boolean; args?: string[]; ignoreDefaultArgs?: string[] } = {},
): { readonly browser: Browser; readonly site: Site } {
  const ui = {} as { browser: Browser; site: Site };
  before(async function () {
    requireBinary(this, CHROMIUM, 'apt-get install -y chromium');
    if (options.redis === true) requireBinary(this, REDIS_SERVER, 'apt-get install -y redis-server');
    ui.site = await open();
    ui.browser = await launch(options.args, options.ignoreDefaultArgs);
  });
  after(async () => {
    try {
      await ui.browser?.close();
    } finally {
      await ui.site?.close();
    }
  });
  return ui;
}

/**
 * Headless Chromium reports every page visible, whatever is in front of it (a
 * second tab, a minimized window, focus emulation off: all tried). So a page's
 * visibility is the one thing emulated: `setHidden(true)` makes
 * `document.visibilityState` read 'hidden' and fires `visibilitychange`, as a
 * tab switch does.
 */
export async function withVisibility(context: BrowserContext): Promise<void> {
  // Source text, not a function: the test's transpiler would add helpers the page does not have.
  await context.addInitScript(`
    let hidden = false;
    Object.defineProperty(document, 'visibilityState', { get: () => (hidden ? 'hidden' : 'visible') });
    Object.defineProperty(document, 'hidden', { get: () => hidden });
    window.setHidden = (h) => {
      hidden = h;
      document.dispatchEvent(new Event('visibilitychange'));
    };
  `);
}

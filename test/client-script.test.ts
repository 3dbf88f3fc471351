import { expect } from 'chai';
import { existsSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import vm from 'node:vm';
import { gzipSync } from 'node:zlib';

// The browser client as the server sends it: dist/live/browser/online-now.min.js,
// minified by `npm run build` from lib/live/browser/online-now.js. Its behaviour in
// a browser is tested in real Chromium; here, its size and that it survives a
// browser without the modern APIs it uses.

const root = path.join(__dirname, '..');
const source = path.join(root, 'lib', 'live', 'browser', 'online-now.js');
const built = path.join(root, 'dist', 'live', 'browser', 'online-now.min.js');

type Listener = (event: Record<string, unknown>) => void;

/** A page as an old browser shows it: DOM basics and timers, but no fetch, EventSource, BroadcastChannel, Web Locks, sendBeacon or CustomEvent. */
function oldBrowser(options: { readyState: string; visibilityState: string; attributes: Record<string, string> }) {
  const listeners: Record<string, Listener[]> = {};
  const target = (prefix: string) => ({
    addEventListener(type: string, fn: Listener) {
      (listeners[prefix + type] ??= []).push(fn);
    },
  });
  const timers: (() => void)[] = [];
  const currentScript = {
    src: 'https://example.test/online-now/client.js',
    getAttribute: (name: string) => options.attributes[name] ?? null,
  };
  const sandbox: Record<string, unknown> = {
    document: {
      ...target('document:'),
      currentScript,
      readyState: options.readyState,
      visibilityState: options.visibilityState,
      querySelector: () => null,
      querySelectorAll: () => [],
    },
    navigator: { userAgent: 'old' },
    location: { href: 'https://example.test/orders/123' },
    setTimeout: (fn: () => void) => timers.push(fn),
    setInterval: (fn: () => void) => timers.push(fn),
    clearTimeout: () => undefined,
    clearInterval: () => undefined,
    ...target('window:'),
  };
  sandbox.window = sandbox; // in a browser, window is the global object
  const context = vm.createContext(sandbox);
  const fire = (name: string, event: Record<string, unknown> = {}) => {
    expect(listeners[name]?.length ?? 0, `${name} listeners`).to.be.above(0);
    for (const fn of listeners[name]) fn(event);
  };
  /** Runs what the script scheduled (beats, the EventSource reconnect), once. */
  const runTimers = () => timers.splice(0).forEach((fn) => fn());
  return { context, sandbox, listeners, fire, runTimers };
}

describe('the browser client script', () => {
  it('is built into dist/live/browser, from the current source', () => {
    expect(existsSync(built), `${built} (run npm run build)`).to.equal(true);
    expect(statSync(built).mtimeMs).to.be.at.least(statSync(source).mtimeMs);
  });

  it('is under 3.25 KB gzipped', () => {
    const size = gzipSync(readFileSync(built), { level: 9 }).length;
    expect(size).to.be.below(3328);
  });

  describe('in a browser without fetch, EventSource, BroadcastChannel, Web Locks or CustomEvent', () => {
    const code = (): string => readFileSync(built, 'utf8');

    it('runs, defines window.OnlineNow, and its API and page events do not throw', () => {
      const page = oldBrowser({
        readyState: 'complete',
        visibilityState: 'visible',
        attributes: { 'data-tab': 'k3J9aaaaaaaaaaaaaaaaaa', 'data-room': 'order:123', 'data-interval': '10000' },
      });
      vm.runInContext(code(), page.context);

      const api = page.sandbox.OnlineNow as Record<string, unknown>;
      expect(api).to.be.an('object');
      for (const name of ['edit', 'view', 'takeOver', 'on']) expect(api[name], name).to.be.a('function');

      const { edit, view, takeOver, on } = api as Record<string, (...args: unknown[]) => void>;
      on('count', () => undefined);
      edit();
      takeOver();
      view();
      page.runTimers();
      page.fire('document:visibilitychange');
      page.fire('document:click', { target: {} }); // a target without closest()
      page.fire('window:pagehide'); // no sendBeacon, no channel
      page.fire('window:pageshow', { persisted: true });
      page.runTimers();
    });

    it('waits for DOMContentLoaded, and copes with no data-room and a hidden page', () => {
      const page = oldBrowser({ readyState: 'loading', visibilityState: 'hidden', attributes: { 'data-tab': 'k3J9aaaaaaaaaaaaaaaaaa' } });
      vm.runInContext(code(), page.context);
      expect(page.listeners['document:visibilitychange'], 'nothing before the DOM is ready').to.equal(undefined);
      page.fire('document:DOMContentLoaded');
      page.fire('document:visibilitychange');
      page.runTimers();
      page.fire('window:pagehide');
      expect((page.sandbox.OnlineNow as Record<string, unknown>).takeOver).to.be.a('function');
    });
  });
});

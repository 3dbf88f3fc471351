// One app for the whole-request benchmark: Express + express-session and three
// pages (a Nunjucks page, the same page in Handlebars, a JSON route), with one
// presence implementation (or none), N users already online. Started by run.mjs
// as `node app-server.mjs VARIANT N [REDIS_URL] [SYNC_MS]`; prints {"port": …} when ready.
import express from 'express';
import session from 'express-session';
import Handlebars from 'handlebars';
import nunjucks from 'nunjucks';
import { PerformanceObserver, constants } from 'node:perf_hooks';
import { createClient } from 'redis';
import { MemoryStore, RedisStore, createOnlineTracker, registerHandlebars, registerNunjucks } from 'express-online-now';
import { hgetallSnippet, recipeOnLru, recipeOnRedis, sortedSetGist } from './baselines.mjs';

const [variant, nArg, redisUrl, syncArg] = process.argv.slice(2);
const n = Number(nArg);
/** RedisStore's syncInterval: its default unless bench/instructions.mjs sets it long, to run the syncs itself (GET /sync). */
const syncInterval = syncArg ? Number(syncArg) : undefined;
/** Users the RedisStore variant writes to Redis at a time before it serves. */
const FILL_BURST = 100_000;
/** The RedisStore variant's store, for GET /sync. */
let redisStore;
const THRESHOLD_S = 900;
const thresholdMs = THRESHOLD_S * 1000;
const ids = Array.from({ length: n }, (_, i) => i + 1);
/** Names of one length whatever N ("user0000042"), so every variant's page is the same size. */
const nameOf = (id) => `user${String(id).padStart(7, '0')}`;

const PAGE = `<!doctype html><title>Forum</title>
<p>{{ onlineCount }} online</p>
<ul>{% for u in onlineNow %}<li>{{ u.username }}</li>{% endfor %}</ul>
<table>{% for p in posts %}<tr><td>{{ p.author }}</td><td>{{ "online" if p.author | isOnline }}</td></tr>{% endfor %}</table>`;
const HBS_PAGE = `<!doctype html><title>Forum</title>
<p>{{ onlineCount }} online</p>
<ul>{{#each onlineNow}}<li>{{ username }}</li>{{/each}}</ul>
<table>{{#each posts}}<tr><td>{{ author }}</td><td>{{#if (isOnline author)}}online{{/if}}</td></tr>{{/each}}</table>`;
// Authors among the first 1,000 users, so the page is the same whatever N; every one of them is online.
const posts = Array.from({ length: 20 }, (_, i) => ({ author: 1 + ((i * 7919) % Math.min(n, 1000)) }));

/**
 * Sets the locals our middleware would, from a baseline's answer, so the same page renders. A snippet
 * knows only the ids it lists; the apps without presence (`everyoneOnline`) say what presence says:
 * all N users are online, so each post shows its badge.
 */
function baselineLocals(res, answer, everyoneOnline = false) {
  const online = new Set(answer.ids.map(String));
  res.locals.onlineNow = answer.ids.map((id) => ({ id, username: nameOf(id) }));
  res.locals.onlineCount = answer.count;
  res.locals.isOnline = everyoneOnline ? (id) => id >= 1 && id <= n : (id) => online.has(String(id));
}

/** The baselines' isOnline as a Handlebars helper, as registerHandlebars makes ours. */
function registerBaselineHandlebars(hbs) {
  hbs.registerHelper('isOnline', (id, options) => options.data.root.isOnline(id));
  return hbs;
}

/**
 * Runs `work` with wall-clock timers stretched BENCH_TIMER_STRETCH times. Under valgrind (~50× slower) a new
 * process's first read of a million users, or a sync on a loaded machine, outlasts the store's 1 s timeouts
 * and fails: bench/instructions.mjs stretches them by as much while the store loads and while a counted
 * sync runs (the timeout's timer is all it changes there), never while pages are served.
 */
async function stretched(work) {
  const realSetTimeout = globalThis.setTimeout;
  const stretch = Number(process.env.BENCH_TIMER_STRETCH ?? 1);
  globalThis.setTimeout = (fn, ms, ...args) => realSetTimeout(fn, (ms ?? 0) * stretch, ...args);
  try {
    await work();
  } finally {
    globalThis.setTimeout = realSetTimeout;
  }
}

/** One sync now: RedisStore's own (private) `sync()`, the one its timer calls, so the bench counts exactly that. */
function syncNow(store) {
  if (typeof store.sync !== 'function') throw new Error('RedisStore has no sync() method any more: update bench/app-server.mjs');
  return store.sync();
}

/** A sync now (a long syncInterval would leave the preload waiting), then a short pause. */
async function syncOrWait(store) {
  await syncNow(store);
  await new Promise((r) => setTimeout(r, 20));
}

async function presence() {
  switch (variant) {
    case 'none':
    case 'control': {
      // 'control' is a second copy of 'none': the gap between the two is this machine's noise.
      // The same page with the same content, from a fixed list: what rendering costs without presence.
      const fixed = { ids: ids.slice(-50).reverse(), count: n };
      return (_req, res, next) => {
        baselineLocals(res, fixed, true);
        next();
      };
    }
    case 'static': {
      // 'none' with the locals built once: the page's content at the least cost (bench/instructions.mjs).
      const locals = {};
      baselineLocals({ locals }, { ids: ids.slice(-50).reverse(), count: n }, true);
      return (_req, res, next) => {
        Object.assign(res.locals, locals);
        next();
      };
    }
    case 'memory':
    case 'memory-status':
    case 'memory-transitions':
    case 'memory-onstatus': {
      // 'memory-status': with status on, every profile carries its activity time (as a request stamps it).
      // 'memory-transitions': status and onOnline/onOffline on (a request by a user already online tells nothing).
      // 'memory-onstatus': and onStatus (each request's user is watched: a change of status is told, none here).
      const status = variant !== 'memory';
      const transitions = { onOnline: () => undefined, onOffline: () => undefined };
      const hooks = variant === 'memory-transitions' ? transitions : variant === 'memory-onstatus' ? { ...transitions, onStatus: () => undefined } : {};
      const store = new MemoryStore({ maxTracked: n + 1000 });
      const online = createOnlineTracker({ store, threshold: THRESHOLD_S, status, ...hooks });
      const lastActive = Date.now() - (Date.now() % 30_000);
      for (const id of ids) store.touch('users', String(id), id, status ? { username: nameOf(id), lastActive } : { username: nameOf(id) });
      return online.middleware();
    }
    case 'recipe-lru': {
      const recipe = recipeOnLru({ thresholdMs, maxTracked: n + 1000 });
      recipe.fill(ids);
      return (req, res, next) => {
        baselineLocals(res, recipe.request(req.session.user.id));
        next();
      };
    }
    default: {
      const client = await createClient({ url: redisUrl }).connect();
      if (variant === 'redis') {
        const store = new RedisStore({ client, prefix: `bench-web-${n}`, maxTracked: n + 1000, syncInterval });
        redisStore = store;
        const online = createOnlineTracker({ store, threshold: THRESHOLD_S });
        const inRedis = () => client.sendCommand(['ZCARD', `{bench-web-${n}}:users:seen`]);
        // Redis already filled by another process (bench/instructions.mjs does so outside valgrind, where a
        // million writes go faster): this one is a new process that reads them at its first sync.
        // In bursts: a million touches at once take minutes to reach Redis (issue #26, point 3), 100,000 seconds.
        for (let from = await inRedis(); from < n; from += FILL_BURST) {
          for (const id of ids.slice(from, from + FILL_BURST)) store.touch('users', String(id), id, { username: nameOf(id) });
          while ((await inRedis()) < Math.min(n, from + FILL_BURST)) await syncOrWait(store);
        }
        await stretched(async () => {
          while ((await store.view('users', 0)).count < n) await syncOrWait(store);
        });
        return online.middleware();
      }
      const make = { 'recipe-redis': recipeOnRedis, hgetall: hgetallSnippet, zset: sortedSetGist }[variant];
      const baseline = make(client, { thresholdMs });
      await baseline.fill(ids);
      return (req, res, next) => {
        baseline.request(req.session.user.id).then((answer) => {
          baselineLocals(res, answer);
          next();
        }, next);
      };
    }
  }
}

const app = express();
const env = registerNunjucks(new nunjucks.Environment(null, { autoescape: true }));
const template = nunjucks.compile(PAGE, env);
const ours = ['memory', 'memory-status', 'memory-transitions', 'memory-onstatus', 'redis'].includes(variant);
const hbs = ours ? registerHandlebars(Handlebars.create()) : registerBaselineHandlebars(Handlebars.create());
const hbsTemplate = hbs.compile(HBS_PAGE);
// Wakes the app for callgrind_control (bench/instructions.mjs): no session, no presence.
app.get('/ping', (_req, res) => res.end());
// For bench/instructions.mjs: one full collection of this heap (node --expose-gc), and how many major and
// minor collections V8 has made so far.
const collections = { major: 0, minor: 0 };
new PerformanceObserver((list) => {
  for (const entry of list.getEntries()) {
    if (entry.detail.kind === constants.NODE_PERFORMANCE_GC_MAJOR) collections.major++;
    else if (entry.detail.kind === constants.NODE_PERFORMANCE_GC_MINOR) collections.minor++;
  }
}).observe({ entryTypes: ['gc'] });
app.get('/gc', (_req, res) => {
  globalThis.gc?.();
  res.end();
});
app.get('/collections', (_req, res) => res.json(collections));
// For bench/instructions.mjs: one RedisStore sync, counted alone. callgrind zeroes its counters on entering
// node::ResourceUsage and dumps on entering node::CPUUsage (--zero-before, --dump-before), which nothing else calls.
app.get('/sync', async (_req, res) => {
  process.resourceUsage();
  await stretched(() => syncNow(redisStore));
  process.cpuUsage();
  res.end();
});
app.use(session({ secret: 'bench', resave: false, saveUninitialized: false }));
app.get('/login/:id', (req, res) => {
  req.session.user = { id: Number(req.params.id), username: nameOf(req.params.id) };
  res.sendStatus(204);
});
app.use(await presence());
app.get('/', (_req, res) => res.type('html').send(template.render({ ...res.locals, posts })));
app.get('/hbs', (_req, res) => res.type('html').send(hbsTemplate({ ...res.locals, posts })));
// The same locals as JSON (bench/instructions.mjs): the count and the 50 listed names.
app.get('/json', (_req, res) => res.json({ onlineCount: res.locals.onlineCount, onlineNow: res.locals.onlineNow.map((u) => u.username) }));

const server = app.listen(0, '127.0.0.1', () => {
  process.stdout.write(`${JSON.stringify({ port: server.address().port })}\n`);
});
// Kept-alive connections stay open however long a client leaves them idle: under valgrind, the instruction
// bench's in-flight connections wait seconds between windows, and one closed as it is reused fails its request.
server.keepAliveTimeout = 0;
process.on('SIGINT', () => process.exit(0));

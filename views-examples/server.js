'use strict';
// The demo: an admin page rendered by Nunjucks and the same page rendered by
// Handlebars. `npm start` runs it on the built-in memory store;
// `REDIS_URL=redis://127.0.0.1:6379 npm start` on the Redis store (sessions in Redis too),
// and views-examples/cluster.js runs several such processes behind one port.
// The users, their invisible-mode setting, their last-seen time and the record of
// most online at once live in SQLite, so they outlive a restart; presence does not need to.
const path = require('node:path');
const os = require('node:os');
const crypto = require('node:crypto');
const Database = require('better-sqlite3');
const session = require('express-session');
const nunjucks = require('nunjucks');
const { create: createHandlebars } = require('express-handlebars');
const { createOnlineTracker, registerNunjucks, registerHandlebars, RedisStore } = require('express-online-now');

const SAMPLE_USERS = [
  { id: 1, username: 'ada', name: 'Ada Lovelace', role: 'Admin' },
  { id: 2, username: 'grace', name: 'Grace Hopper', role: 'Moderator' },
  { id: 3, username: 'alan', name: 'Alan Turing', role: 'Member' },
  { id: 4, username: 'margaret', name: 'Margaret Hamilton', role: 'Member' },
  { id: 5, username: 'linus', name: 'Linus Torvalds', role: 'Member' },
  // A name a hostile user could pick: both engines must show it as text.
  { id: 6, username: 'mallory', name: '<script>alert(1)</script>', role: 'Member' },
];

/**
 * Opens (or creates) the demo's database and seeds the sample users. A restart
 * keeps what people did (invisible mode, last seen); names and roles follow SAMPLE_USERS.
 */
function openDatabase(file) {
  const db = new Database(file);
  db.pragma('journal_mode = WAL'); // the workers of cluster.js share one file
  db.exec(`
    CREATE TABLE IF NOT EXISTS users (
      id INTEGER PRIMARY KEY, username TEXT NOT NULL, name TEXT NOT NULL, role TEXT NOT NULL,
      invisible INTEGER NOT NULL DEFAULT 0,
      last_seen INTEGER -- ms since the epoch; NULL: never seen
    );
    CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
  `);
  const seed = db.prepare(`
    INSERT INTO users (id, username, name, role) VALUES (@id, @username, @name, @role)
    ON CONFLICT (id) DO UPDATE SET username = excluded.username, name = excluded.name, role = excluded.role`);
  db.transaction(() => SAMPLE_USERS.forEach((user) => seed.run(user)))();
  return db;
}

/** "November 28, 2025 at 5:44 PM": the same in both engines. */
const longDateFormat = new Intl.DateTimeFormat('en', { dateStyle: 'long', timeStyle: 'short' });
function longDate(date) {
  return date instanceof Date ? longDateFormat.format(date) : '';
}

/** Staff see invisible users; everyone else sees them as offline. */
function isStaff(req) {
  return req.session.user?.role === 'Admin';
}

/** The orders of the "who else is here" page: each is a room, `order:<id>`. */
const SAMPLE_ORDERS = [
  { id: 123, customer: 'Initech', total: '€1,250.00', status: 'Open' },
  { id: 124, customer: 'Globex', total: '€89.90', status: 'Shipped' },
  // A list page's worth: the orders page shows each one's lock badge.
  ...Array.from({ length: 48 }, (_, i) => ({ id: 125 + i, customer: `Customer ${i + 1}`, total: '€10.00', status: 'Open' })),
];

/** Admins and moderators see every order's lock badge live, and may release a lock. */
function managesLocks(req) {
  return ['Admin', 'Moderator'].includes(req.session.user?.role);
}

/** A name's first character, for the avatar: the same in both engines (a whole emoji, not half of one). */
function initial(name) {
  return typeof name === 'string' ? (Array.from(name.trim())[0] ?? '') : '';
}

/**
 * Builds the demo app. Tests call it with their own Express (4 or 5) and
 * tracker options, on a fresh in-memory database; `npm start` on a file.
 */
function createDemoApp({ express = require('express'), tracker: trackerOptions = {}, sessionSecret, sessionStore, database = ':memory:' } = {}) {
  const app = express();
  const viewsDir = path.join(__dirname, 'views');
  app.set('views', viewsDir);

  const db = openDatabase(database);
  const sql = {
    users: db.prepare('SELECT id, username, name, role, invisible, last_seen FROM users ORDER BY id'),
    invisible: db.prepare('SELECT invisible FROM users WHERE id = ?').pluck(),
    toggleInvisible: db.prepare('UPDATE users SET invisible = 1 - invisible WHERE id = ?'),
    // An invisible user's last-seen stays where they went invisible: to others it reads as a sign-out then.
    seen: db.prepare('UPDATE users SET last_seen = ? WHERE id = ? AND invisible = 0'),
    hideAt: db.prepare('UPDATE users SET last_seen = ? WHERE id = ? AND invisible = 1'),
    record: db.prepare("SELECT value FROM meta WHERE key = 'record'").pluck(),
    // An order's note, the one thing its page edits (in the shared database: every process reads the same).
    note: db.prepare('SELECT value FROM meta WHERE key = ?').pluck(),
    saveNote: db.prepare('INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value'),
    saveRecord: db.prepare("INSERT INTO meta (key, value) VALUES ('record', ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value"),
  };
  const savedRecord = sql.record.get();
  // One secret signs the session cookie and the room tabs here() mints: every process must share it.
  const secret = sessionSecret ?? process.env.SESSION_SECRET ?? crypto.randomBytes(32).toString('hex');

  const online = createOnlineTracker({
    trackGuests: true, // and crawlers, counted apart by the isbot list
    // Read from the database on every request: hiding takes effect in every session of the user at once.
    hidden: (user) => sql.invisible.get(user.id) === 1,
    canSeeHidden: isStaff,
    // Called outside requests, at most once a minute per user and once more at sign-out.
    onSeen: (entry, date) => sql.seen.run(date.getTime(), entry.id),
    onRecord: ({ count, at }) => sql.saveRecord.run(JSON.stringify({ count, at: at.getTime() })),
    initialRecord: savedRecord === undefined ? undefined : JSON.parse(savedRecord),
    secret,
    canReleaseLocks: managesLocks,
    // Active, idle (5 minutes without input) and away (10): the dashboard and the order pages show each as a badge.
    status: true,
    ...trackerOptions,
  });

  const env = new nunjucks.Environment(new nunjucks.FileSystemLoader(viewsDir), { autoescape: true });
  registerNunjucks(env); // isOnline, lastSeen, timeAgo: the same helpers as Handlebars gets below
  env.addFilter('initial', initial);
  env.addFilter('longDate', longDate);
  app.engine('njk', (file, options, done) => env.render(file, options, done));

  const hbs = createHandlebars({
    extname: '.hbs',
    layoutsDir: path.join(viewsDir, 'handlebars', 'layouts'),
    partialsDir: path.join(viewsDir, 'handlebars', 'partials'),
    defaultLayout: 'main',
    helpers: { initial, longDate, eq: (a, b) => a === b },
  });
  registerHandlebars(hbs);
  app.engine('hbs', hbs.engine);

  // Static files and the favicon come before sessions and presence: fetching them is not activity.
  app.use('/static', express.static(path.join(__dirname, 'public')));
  const favicon = path.join(__dirname, 'public', 'favicon.ico');
  app.get('/favicon.ico', (req, res) => res.sendFile(favicon, { maxAge: '1d' }));
  app.use(express.urlencoded({ extended: false }));
  app.use(
    session({
      store: sessionStore, // undefined: express-session's in-process store, fine for one process
      secret,
      resave: false,
      saveUninitialized: false,
      cookie: { httpOnly: true, sameSite: 'lax' },
    }),
  );
  // The browser side: the script, heartbeats and leaves; and live updates (Server-Sent Events).
  app.use(online.client());
  // Live updates for every visitor (the sign-in page's count is live too) but a suspended account;
  // each user and each guest address has a budget of streams, and guests in all at most half of them.
  app.get('/online-now/events', online.events({ authorize: (req) => req.session.user?.role !== 'Suspended', canListLocks: managesLocks }));
  app.use(online.middleware());

  // What every page needs besides presence: who is signed in, and the users with their last-seen.
  app.use((req, res, next) => {
    const me = req.session.user;
    const staff = isStaff(req);
    res.locals.user = me;
    res.locals.isGuest = Boolean(req.session.guest);
    const rows = sql.users.all();
    res.locals.appearingOffline = rows.some((row) => row.id === me?.id && row.invisible === 1);
    res.locals.users = rows.map(({ invisible, last_seen: lastSeen, ...person }) => {
      // Only staff and the user themselves may know someone is invisible. To anyone else they
      // read as someone who signed out when they went invisible (their last-seen stopped there).
      const known = staff || person.id === me?.id;
      return { ...person, invisible: known && invisible === 1, lastSeenAt: lastSeen === null ? null : new Date(lastSeen) };
    });
    res.locals.servedBy = process.pid;
    res.set('X-Served-By', String(process.pid)); // which process answered (the footer says it too)
    next();
  });

  app.get('/', (req, res) => res.render('nunjucks/login.njk', { engine: 'nunjucks' }));

  app.post('/login', (req, res, next) => {
    const user = SAMPLE_USERS.find((u) => String(u.id) === String(req.body.id));
    if (!user) return res.status(400).render('nunjucks/login.njk', { engine: 'nunjucks', error: 'Pick one of the sample users.' });
    // A new session id on sign-in, as any login should.
    req.session.regenerate((err) => {
      if (err) return next(err);
      req.session.user = { id: user.id, username: user.username, name: user.name, role: user.role };
      res.redirect(303, '/admin/nunjucks');
    });
  });

  app.post('/guest', (req, res) => {
    req.session.guest = true; // saving something gives the visitor a session, so they count as a guest
    res.redirect(303, '/admin/nunjucks');
  });

  // "Appear offline": back on the page the form was on.
  app.post('/invisible', async (req, res, next) => {
    if (!req.session.user) return res.redirect(303, '/');
    try {
      sql.toggleInvisible.run(req.session.user.id);
      sql.hideAt.run(Date.now(), req.session.user.id); // going invisible looks like signing out, to the minute
      await online.touch(req.session.user); // others see the change now, not at this user's next page
      res.redirect(303, req.body.engine === 'handlebars' ? '/admin/handlebars' : '/admin/nunjucks');
    } catch (err) {
      next(err);
    }
  });

  app.post('/logout', async (req, res, next) => {
    try {
      if (req.session.user) await online.forget(req.session.user);
      req.session.destroy((err) => (err ? next(err) : res.redirect(303, '/')));
    } catch (err) {
      next(err);
    }
  });

  app.get('/admin/nunjucks', (req, res) => res.render('nunjucks/admin.njk', { engine: 'nunjucks', page: 'admin' }));
  app.get('/admin/handlebars', (req, res) => res.render('handlebars/admin.hbs', { engine: 'handlebars' }));

  // Who else is looking at this order: a room per order. ?edit=1 opens it for editing (the first editor holds the lock).
  const orderPage = (engine) => async (req, res, next) => {
    const order = SAMPLE_ORDERS.find((o) => String(o.id) === req.params.id);
    if (!order) return next();
    if (!req.session.user) return res.redirect(303, '/');
    try {
      await online.here(req, `order:${order.id}`, { mode: req.query.edit === '1' ? 'editing' : 'viewing' });
      const note = sql.note.get(`order-note:${order.id}`) ?? '';
      res.render(engine === 'handlebars' ? 'handlebars/order.hbs' : 'nunjucks/order.njk', { engine, page: 'orders', order, note, orders: SAMPLE_ORDERS });
    } catch (err) {
      next(err);
    }
  };
  app.get('/orders/:id', orderPage('nunjucks'));
  app.get('/orders/:id/handlebars', orderPage('handlebars'));

  // A save: only the holder of the order's lock gets past requireLock (others get 423 with who edits it,
  // as JSON for the page's script, as HTML for a plain form). Then every other page open on it is told.
  app.post(
    '/orders/:id',
    express.urlencoded({ extended: false }),
    online.requireLock((req) => `order:${req.params.id}`),
    async (req, res, next) => {
      const order = SAMPLE_ORDERS.find((o) => String(o.id) === req.params.id);
      if (!order) return next();
      try {
        sql.saveNote.run(`order-note:${order.id}`, String(req.body.note ?? '').slice(0, 2000));
        await online.changed(req, `order:${order.id}`);
        if (req.accepts(['html', 'json']) === 'json') res.json({ saved: true });
        else res.redirect(303, `/orders/${order.id}?edit=1`);
      } catch (err) {
        next(err);
      }
    },
  );

  // Staff end someone's lock (say, one left open over the weekend).
  app.post('/orders/:id/release', async (req, res, next) => {
    try {
      if (!(await online.release(req, `order:${req.params.id}`))) return res.sendStatus(403);
      res.redirect(303, '/orders');
    } catch (err) {
      next(err);
    }
  });

  // Every order with its lock badge, in one call; live for staff (events({ canListLocks })).
  app.get('/orders', async (req, res, next) => {
    if (!req.session.user) return res.redirect(303, '/');
    try {
      await online.lockBadges(req, SAMPLE_ORDERS.map((o) => `order:${o.id}`));
      res.render('nunjucks/orders.njk', { engine: 'nunjucks', page: 'list', orders: SAMPLE_ORDERS, staff: managesLocks(req) });
    } catch (err) {
      next(err);
    }
  });

  return { app, online, db };
}

/**
 * Starts the demo on PORT (default 3000): on Redis when REDIS_URL is set, else in memory;
 * the database in DATABASE (default a file in the temporary directory, kept across restarts).
 */
/** Where `start` keeps the database: DATABASE, or a file in the temporary directory. */
function databaseFile() {
  return process.env.DATABASE ?? path.join(os.tmpdir(), 'express-online-now-demo.sqlite');
}

async function start({ port = Number(process.env.PORT ?? 3000) } = {}) {
  const database = databaseFile();
  let options = {};
  let where = 'memory store';
  if (process.env.REDIS_URL) {
    const { createClient } = require('redis');
    const { RedisStore: RedisSessionStore } = require('connect-redis');
    const client = createClient({ url: process.env.REDIS_URL });
    client.on('error', (err) => console.warn(`redis: ${err.message}`));
    await client.connect();
    // One client for both: sessions (connect-redis) and presence (RedisStore).
    options = {
      tracker: { store: new RedisStore({ client }) },
      sessionStore: new RedisSessionStore({ client, prefix: 'demo-session:' }),
      // Every process must sign cookies alike; set SESSION_SECRET in earnest deployments.
      sessionSecret: process.env.SESSION_SECRET ?? 'express-online-now demo secret',
    };
    where = `Redis store at ${process.env.REDIS_URL}`;
  }
  // ROOM_THRESHOLD (seconds): how long a visible tab stays in a room without a heartbeat (default 30).
  if (process.env.ROOM_THRESHOLD) options.tracker = { ...options.tracker, roomThreshold: Number(process.env.ROOM_THRESHOLD) };
  if (process.env.ASK_GRACE) options.tracker = { ...options.tracker, askGrace: Number(process.env.ASK_GRACE) };
  const { app } = createDemoApp({ ...options, database });
  const server = app.listen(port, () => {
    const { port: actual } = server.address();
    console.log(`express-online-now demo on http://localhost:${actual}/ (${where}, database ${database}, process ${process.pid})`);
  });
  return server;
}

if (require.main === module) {
  start().catch((err) => {
    console.error(err);
    process.exit(1);
  });
}

module.exports = { createDemoApp, start, openDatabase, databaseFile, SAMPLE_USERS, SAMPLE_ORDERS };

'use strict';
// The demo: an admin page rendered by Nunjucks and the same page rendered by
// Handlebars. `npm start` runs it on the built-in memory store;
// `REDIS_URL=redis://127.0.0.1:6379 npm start` on the Redis store (sessions in Redis too),
// and views-examples/cluster.js runs several such processes behind one port.
const path = require('node:path');
const crypto = require('node:crypto');
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

/** A name's first character, for the avatar: the same in both engines (a whole emoji, not half of one). */
function initial(name) {
  return typeof name === 'string' ? (Array.from(name.trim())[0] ?? '') : '';
}

/**
 * Builds the demo app. Tests call it with their own Express (4 or 5) and
 * tracker options; `npm start` calls it with the defaults.
 */
function createDemoApp({ express = require('express'), tracker: trackerOptions = {}, sessionSecret, sessionStore } = {}) {
  const app = express();
  const viewsDir = path.join(__dirname, 'views');
  app.set('views', viewsDir);

  const online = createOnlineTracker({ trackGuests: true, ...trackerOptions });

  const env = new nunjucks.Environment(new nunjucks.FileSystemLoader(viewsDir), { autoescape: true });
  registerNunjucks(env); // isOnline, lastSeen, timeAgo: the same helpers as Handlebars gets below
  env.addFilter('initial', initial);
  app.engine('njk', (file, options, done) => env.render(file, options, done));

  const hbs = createHandlebars({
    extname: '.hbs',
    layoutsDir: path.join(viewsDir, 'handlebars', 'layouts'),
    partialsDir: path.join(viewsDir, 'handlebars', 'partials'),
    defaultLayout: 'main',
    helpers: { initial, eq: (a, b) => a === b },
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
      secret: sessionSecret ?? process.env.SESSION_SECRET ?? crypto.randomBytes(32).toString('hex'),
      resave: false,
      saveUninitialized: false,
      cookie: { httpOnly: true, sameSite: 'lax' },
    }),
  );
  app.use(online.middleware());

  // What every page needs besides presence: who is signed in, and the sample users.
  app.use((req, res, next) => {
    res.locals.user = req.session.user;
    res.locals.isGuest = Boolean(req.session.guest);
    res.locals.users = SAMPLE_USERS;
    res.locals.servedBy = process.pid;
    next();
  });

  app.get('/', (req, res) => res.render('nunjucks/login.njk', { engine: 'nunjucks' }));

  app.post('/login', (req, res, next) => {
    const user = SAMPLE_USERS.find((u) => String(u.id) === String(req.body.id));
    if (!user) return res.status(400).render('nunjucks/login.njk', { engine: 'nunjucks', error: 'Pick one of the sample users.' });
    // A new session id on sign-in, as any login should.
    req.session.regenerate((err) => {
      if (err) return next(err);
      req.session.user = { id: user.id, username: user.username, name: user.name };
      res.redirect(303, '/admin/nunjucks');
    });
  });

  app.post('/guest', (req, res) => {
    req.session.guest = true; // saving something gives the visitor a session, so they count as a guest
    res.redirect(303, '/admin/nunjucks');
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

  return { app, online };
}

/** Starts the demo on PORT (default 3000): on Redis when REDIS_URL is set, else in memory. */
async function start({ port = Number(process.env.PORT ?? 3000) } = {}) {
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
  const { app } = createDemoApp(options);
  const server = app.listen(port, () => {
    const { port: actual } = server.address();
    console.log(`express-online-now demo on http://localhost:${actual}/ (${where}, process ${process.pid})`);
  });
  return server;
}

if (require.main === module) {
  start().catch((err) => {
    console.error(err);
    process.exit(1);
  });
}

module.exports = { createDemoApp, start, SAMPLE_USERS };

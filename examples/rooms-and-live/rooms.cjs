// rooms.cjs
'use strict';
// Who else is here: a room per order, live, in Nunjucks and Handlebars.
// node rooms.cjs, sign in as ada in one browser and grace in another,
// then open http://localhost:3000/orders/123 in both (add ?edit=1 to edit).
const path = require('node:path');
const express = require('express');
const session = require('express-session');
const nunjucks = require('nunjucks');
const Handlebars = require('handlebars');
const { createOnlineTracker, registerNunjucks, registerHandlebars } = require('express-online-now');

const USERS = [
  { id: 1, username: 'ada', name: 'Ada Lovelace' },
  { id: 2, username: 'grace', name: 'Grace Hopper' },
];
const views = path.join(__dirname, 'views', 'rooms');

const app = express();
app.use(express.urlencoded({ extended: false }));
app.use(
  session({
    secret: process.env.SESSION_SECRET ?? 'change me', // set SESSION_SECRET: the fallback is for trying the example
    resave: false,
    saveUninitialized: false,
  }),
);
const online = createOnlineTracker({
  canReleaseLocks: (req) => req.session.user?.username === 'ada', // staff: may end anyone's editing lock
  onRoom: (event) => noteRoom(event), // who came, left, took or gave up the lock: see "Who came and went" below
});
app.use(online.client()); // after express-session: serves /online-now/client.js, takes heartbeats and leaves
// Live updates (Server-Sent Events), for signed-in users only here; each user and each guest address has a budget of streams.
// canListLocks: who may follow a list page's lock badges live (rooms they are not in).
app.get('/online-now/events', online.events({ authorize: (req) => req.session.user !== undefined, canListLocks: (req) => req.session.user !== undefined }));
app.use(online.middleware());

app.get('/orders/:id', async (req, res, next) => {
  try {
    // This page view joins the room "order:<id>"; ?edit=1 asks for the editing lock.
    await online.here(req, `order:${req.params.id}`, { mode: req.query.edit === '1' ? 'editing' : 'viewing' });
    res.render('order.njk', { user: req.session.user, orderId: req.params.id });
  } catch (err) {
    next(err);
  }
});

const env = nunjucks.configure(views, { express: app, autoescape: true });
registerNunjucks(env); // also onlineScript(), onlineHereHtml(), onlineLockHtml()
const hbs = registerHandlebars(Handlebars.create()); // the same helpers for Handlebars
const orderHbs = hbs.compile(require('node:fs').readFileSync(path.join(views, 'order.hbs'), 'utf8'));

app.get('/orders/:id/hbs', async (req, res, next) => {
  try {
    await online.here(req, `order:${req.params.id}`, { mode: req.query.edit === '1' ? 'editing' : 'viewing' });
    res.type('html').send(orderHbs({ ...res.locals, user: req.session.user, orderId: req.params.id }));
  } catch (err) {
    next(err);
  }
});

app.get('/', (req, res) => res.render('home.njk', { user: req.session.user }));

app.post('/login', (req, res, next) => {
  const user = USERS.find((u) => u.username === req.body.username);
  if (!user) return res.status(401).send('Unknown user: try ada or grace.');
  req.session.regenerate((err) => {
    if (err) return next(err);
    req.session.user = { id: user.id, username: user.username, name: user.name };
    res.redirect(303, '/');
  });
});

app.post('/logout', async (req, res, next) => {
  await online.forget(req.session.user);
  req.session.destroy((err) => (err ? next(err) : res.redirect(303, '/')));
});

const port = Number(process.env.PORT ?? 3000);
app.listen(port, (error) => {
  if (error) throw error;
  console.log(`Listening on http://localhost:${port}/`);
});

// rooms.cjs, continued: saving an order, for the lock's holder only
const notes = new Map(); // your database

app.post('/orders/:id', online.requireLock((req) => `order:${req.params.id}`), async (req, res, next) => {
  try {
    notes.set(req.params.id, String(req.body.note ?? ''));
    // Every other page open on this order shows "Ada Lovelace saved this order 10 seconds ago — reload".
    await online.changed(req, `order:${req.params.id}`);
    res.redirect(303, `/orders/${req.params.id}?edit=1`);
  } catch (err) {
    next(err);
  }
});

// rooms.cjs, continued: every order's lock badge, and staff's release
app.get('/orders', async (req, res, next) => {
  try {
    const orders = ['123', '124'];
    await online.lockBadges(req, orders.map((id) => `order:${id}`)); // one call, however many orders
    res.render('orders.njk', { orders, user: req.session.user });
  } catch (err) {
    next(err);
  }
});

app.post('/orders/:id/release', async (req, res, next) => {
  try {
    if (!(await online.release(req, `order:${req.params.id}`))) return res.sendStatus(403);
    res.redirect(303, '/orders');
  } catch (err) {
    next(err);
  }
});

// rooms.cjs, continued: each order's last 20 comings, goings and lock changes, newest first
const roomHistory = new Map();
const told = { join: 'came in', lock: 'took the editing lock', unlock: 'gave up the editing lock' };
function noteRoom(event) {
  const line = `${event.at.toISOString()} ${event.user.name} ${told[event.type] ?? `left (${event.why})`}`;
  roomHistory.set(event.room, [line, ...(roomHistory.get(event.room) ?? [])].slice(0, 20));
}
app.get('/orders/:id/history', (req, res) => {
  if (!req.session.user) return res.sendStatus(403);
  res.json(roomHistory.get(`order:${req.params.id}`) ?? []);
});

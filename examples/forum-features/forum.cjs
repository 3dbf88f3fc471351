// forum.cjs: the app; the blocks below add its page and invisible mode
'use strict';
// Forum features: invisible mode, bots counted apart, the all-time record, and a
// durable "last seen" in SQLite (npm install better-sqlite3@12 on Node 20).
// node forum.cjs, then http://localhost:3000/ (DATABASE=forum.db keeps it across restarts)
const express = require('express');
const session = require('express-session');
const Database = require('better-sqlite3');
const { createOnlineTracker } = require('express-online-now');

const db = new Database(process.env.DATABASE ?? ':memory:');
db.exec(`CREATE TABLE IF NOT EXISTS users (id INTEGER PRIMARY KEY, username TEXT, name TEXT,
           invisible INTEGER DEFAULT 0, admin INTEGER DEFAULT 0, last_seen INTEGER);
         CREATE TABLE IF NOT EXISTS record (id INTEGER PRIMARY KEY CHECK (id = 1), count INTEGER, at INTEGER);
         CREATE TABLE IF NOT EXISTS activity (user_id INTEGER, what TEXT, at INTEGER, sent INTEGER DEFAULT 0);
         INSERT OR IGNORE INTO users (id, username, name, admin) VALUES (1, 'ada', 'Ada Lovelace', 1), (2, 'grace', 'Grace Hopper', 0);`);
const saveLastSeen = db.prepare('UPDATE users SET last_seen = ? WHERE id = ?');
const saveRecord = db.prepare('INSERT OR REPLACE INTO record (id, count, at) VALUES (1, ?, ?)');
const savedRecord = db.prepare('SELECT count, at FROM record WHERE id = 1').get();
const logActivity = db.prepare('INSERT INTO activity (user_id, what, at) VALUES (?, ?, ?)');

const online = createOnlineTracker({
  trackGuests: true, // guests, and crawlers counted apart (onlineBots)
  hidden: (user) => user.invisible, // read on every request: hiding takes effect at once
  canSeeHidden: (req) => req.session.user?.admin === true, // staff see hidden users, marked
  onSeen: (user, date) => saveLastSeen.run(date.getTime(), user.id), // at most once a minute per user
  onRecord: (record) => saveRecord.run(record.count, record.at.getTime()),
  // Comings and goings, once each; an invisible member's are nobody's business.
  onOnline: (user, at) => user.hidden || logActivity.run(user.id, 'came online', at.getTime()),
  onOffline: (user, at, why) => user.hidden || logActivity.run(user.id, `went offline (${why})`, at.getTime()),
  initialRecord: savedRecord, // undefined on the first start
  skip: (req) => req.path === '/metrics', // a scraper is nobody online
  status: true, // active; idle after 5 minutes without a request (or input on an open page), away after 10
});

const app = express();
app.use(express.urlencoded({ extended: false }));
app.use(
  session({
    secret: process.env.SESSION_SECRET ?? 'change me', // set SESSION_SECRET: the fallback is for trying the example
    resave: false,
    saveUninitialized: false,
  }),
);
app.use(online.middleware()); // after express-session

app.post('/login', (req, res, next) => {
  const user = db.prepare('SELECT id, username, name, invisible, admin FROM users WHERE username = ?').get(req.body.username);
  if (!user) return res.status(401).send('Unknown user: try ada or grace.');
  req.session.regenerate((err) => {
    if (err) return next(err);
    req.session.user = { id: user.id, username: user.username, name: user.name, invisible: user.invisible === 1, admin: user.admin === 1 };
    res.redirect(303, '/');
  });
});

app.post('/logout', async (req, res, next) => {
  await online.forget(req.session.user); // offline at once; onSeen writes the last activity
  req.session.destroy((err) => (err ? next(err) : res.redirect(303, '/')));
});

const port = Number(process.env.PORT ?? 3000);
app.listen(port, (error) => {
  if (error) throw error;
  console.log(`Listening on http://localhost:${port}/`);
});

// forum.cjs, continued: the page
const escapeHtml = (text) => String(text).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

app.get('/', (req, res) => {
  const { onlineCount, onlineHidden, onlineGuests, onlineBots, onlineRecord, onlineNow, isOnline, timeAgo } = res.locals;
  const me = req.session.user;
  const form = me
    ? `<form method="post" action="/logout">Signed in as ${escapeHtml(me.name)} <button>Sign out</button></form>` +
      `<form method="post" action="/invisible"><input type="hidden" name="on" value="${me.invisible ? 0 : 1}"><button>${me.invisible ? 'Appear online' : 'Appear offline'}</button></form>`
    : '<form method="post" action="/login"><input name="username" placeholder="ada or grace"> <button>Sign in</button></form>';
  const list = onlineNow
    .map((u) => `<li>${escapeHtml(u.name)}, ${timeAgo(u, { html: true })}, ${u.status}${u.hidden ? ' (invisible)' : ''}</li>`)
    .join('');
  // Last seen from the database, for offline users only; never for a hidden one (isOnline says offline, and so must this).
  const members = db.prepare('SELECT id, name, invisible, last_seen FROM users ORDER BY id').all();
  const rows = members
    .map((u) => {
      const seen = isOnline(u) ? 'online' : u.last_seen && !u.invisible ? `last seen ${timeAgo(new Date(u.last_seen))}` : 'offline';
      return `<tr><td>${escapeHtml(u.name)}</td><td>${seen}</td></tr>`;
    })
    .join('');
  res.send(
    '<!doctype html><title>Who is online</title>' +
      `${form}<p>${onlineCount} online, ${onlineHidden} hidden, ${onlineGuests} guests, ${onlineBots} bots</p>` +
      `<ul class="online">${list}</ul><table>${rows}</table>` +
      `<p>Most ever online: ${onlineRecord.count}${onlineRecord.count > 0 ? ` on ${onlineRecord.at.toUTCString()}` : ''}</p>`,
  );
});

// forum.cjs, continued: invisible mode
app.post('/invisible', (req, res) => {
  const me = req.session.user;
  if (!me) return res.sendStatus(401);
  me.invisible = req.body.on === '1';
  db.prepare('UPDATE users SET invisible = ? WHERE id = ?').run(Number(me.invisible), me.id);
  res.redirect(303, '/');
});

// forum.cjs, continued: who came and went, for the admin
app.get('/activity', (req, res) => {
  if (!req.session.user?.admin) return res.sendStatus(403);
  const rows = db
    .prepare('SELECT name, what, activity.at FROM activity JOIN users ON users.id = user_id ORDER BY activity.rowid DESC LIMIT 20')
    .all()
    .map((r) => `<li>${escapeHtml(r.name)} ${r.what}, ${new Date(r.at).toISOString()}</li>`);
  res.send(`<!doctype html><title>Activity</title><ul>${rows.join('')}</ul>`);
});

// forum.cjs, continued: the activity rows posted to WEBHOOK_URL (when set), signed with WEBHOOK_SECRET, retried until they land
const crypto = require('node:crypto');
const nextUnsent = db.prepare('SELECT rowid, user_id, what, at FROM activity WHERE sent = 0 ORDER BY rowid LIMIT 1');
const markSent = db.prepare('UPDATE activity SET sent = 1 WHERE rowid = ?');
async function postActivity(retryMs = 1000) {
  const row = nextUnsent.get();
  if (!row) return void setTimeout(postActivity, 1000); // nothing new: look again in a second
  const body = JSON.stringify({ id: row.rowid, user: row.user_id, what: row.what, at: new Date(row.at).toISOString() });
  const signature = crypto.createHmac('sha256', process.env.WEBHOOK_SECRET ?? 'change me').update(body).digest('hex');
  try {
    const res = await fetch(process.env.WEBHOOK_URL, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-signature-256': `sha256=${signature}` },
      body,
      signal: AbortSignal.timeout(10_000),
    });
    if (!res.ok) throw new Error(`the receiver answered ${res.status}`);
    markSent.run(row.rowid);
    setImmediate(postActivity);
  } catch (error) {
    console.warn(`webhook: ${error.message}; trying again in ${retryMs / 1000} s`);
    setTimeout(postActivity, retryMs, Math.min(2 * retryMs, 60_000));
  }
}
if (process.env.WEBHOOK_URL) postActivity();

// forum.cjs, continued: metrics for Prometheus
app.get('/metrics', async (req, res) => {
  res.type('text/plain; version=0.0.4').send(await online.metrics());
});

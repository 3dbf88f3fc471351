// redis.mjs
// Who is online across processes, on Redis with node-redis; sessions in Redis too, by connect-redis:
//   REDIS_URL=redis://127.0.0.1:6379 node redis.mjs
// Start it twice (PORT=3001 for the second) with one SESSION_SECRET: both pages show the same count.
import express from 'express';
import session from 'express-session';
import { createClient } from 'redis';
import { RedisStore as SessionStore } from 'connect-redis';
import { createOnlineTracker, RedisStore } from 'express-online-now';

const client = createClient({ url: process.env.REDIS_URL ?? 'redis://127.0.0.1:6379' });
client.on('error', (err) => console.error(`redis: ${err.message}`));
await client.connect(); // top-level await: this file is an ES module

const secret = process.env.SESSION_SECRET ?? 'change me'; // set SESSION_SECRET, the same in every process
const app = express();
app.use(express.urlencoded({ extended: false }));
app.use(session({ store: new SessionStore({ client }), secret, resave: false, saveUninitialized: false }));
const online = createOnlineTracker({ store: new RedisStore({ client }) }); // the same client: presence in Redis
app.use(online.middleware());

// Sample users: sign in as "ada" or "grace". A real app checks a password.
const USERS = [
  { id: 1, username: 'ada', name: 'Ada Lovelace' },
  { id: 2, username: 'grace', name: 'Grace Hopper' },
];

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
  await online.forget(req.session.user); // offline at once, not in 15 minutes
  req.session.destroy((err) => (err ? next(err) : res.redirect(303, '/')));
});

const escapeHtml = (text) => String(text).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

app.get('/', (req, res) => {
  const { onlineCount, onlineNow, timeAgo } = res.locals; // set by online.middleware()
  const me = req.session.user;
  const form = me
    ? `<form method="post" action="/logout">Signed in as ${escapeHtml(me.name)} <button>Sign out</button></form>`
    : '<form method="post" action="/login"><input name="username" placeholder="ada or grace"> <button>Sign in</button></form>';
  const list = onlineNow.map((u) => `<li>${escapeHtml(u.name)}, ${timeAgo(u, { html: true })}</li>`).join('');
  res.send(`<!doctype html><title>Who is online</title>${form}<p>${onlineCount} online</p><ul class="online">${list}</ul>`);
});

const port = Number(process.env.PORT ?? 3000);
app.listen(port, (error) => {
  if (error) throw error;
  console.log(`Listening on http://localhost:${port}/`);
});

// ioredis.mjs
// Who is online across processes, on Redis with ioredis; sessions in Redis too:
//   REDIS_URL=redis://127.0.0.1:6379 node ioredis.mjs
// Start it twice (PORT=3001 for the second) with one SESSION_SECRET: both pages show the same count.
import express from 'express';
import session from 'express-session';
import { Redis } from 'ioredis';
import { createOnlineTracker, RedisStore } from 'express-online-now';

const client = new Redis(process.env.REDIS_URL ?? 'redis://127.0.0.1:6379'); // connects by itself
client.on('error', (err) => console.error(`redis: ${err.message}`));

// Sessions in Redis through ioredis. (connect-redis 9 takes only a node-redis client.)
const answer = (promise, done) => promise.then((value) => done?.(null, value), (err) => done?.(err));
class IORedisSessionStore extends session.Store {
  constructor(client, { prefix = 'sess:', ttl = 86400 } = {}) {
    super();
    Object.assign(this, { client, prefix, ttl });
  }
  get(sid, done) {
    answer(this.client.get(this.prefix + sid).then((json) => (json ? JSON.parse(json) : null)), done);
  }
  set(sid, data, done) {
    answer(this.client.set(this.prefix + sid, JSON.stringify(data), 'EX', this.ttlOf(data)), done);
  }
  touch(sid, data, done) {
    answer(this.client.expire(this.prefix + sid, this.ttlOf(data)), done);
  }
  destroy(sid, done) {
    answer(this.client.del(this.prefix + sid), done);
  }
  ttlOf(data) {
    const expires = data.cookie?.expires; // the cookie's own expiry, when it has one
    return expires ? Math.max(1, Math.ceil((new Date(expires).getTime() - Date.now()) / 1000)) : this.ttl;
  }
}

const secret = process.env.SESSION_SECRET ?? 'change me'; // set SESSION_SECRET, the same in every process
const app = express();
app.use(express.urlencoded({ extended: false }));
app.use(session({ store: new IORedisSessionStore(client), secret, resave: false, saveUninitialized: false }));
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

// minimal.mjs
// Who is online, as an ES module: node minimal.mjs, then http://localhost:3000/
import express from 'express';
import session from 'express-session';
import { createOnlineTracker } from 'express-online-now';

// Sample users: sign in as "ada" or "grace". A real app checks a password.
const USERS = [
  { id: 1, username: 'ada', name: 'Ada Lovelace' },
  { id: 2, username: 'grace', name: 'Grace Hopper' },
];

const app = express();
app.use(express.urlencoded({ extended: false }));
app.use(
  session({
    secret: process.env.SESSION_SECRET ?? 'change me', // set SESSION_SECRET: the fallback is for trying the example
    resave: false,
    saveUninitialized: false,
  }),
);

const online = createOnlineTracker(); // in-process store, 15 minutes, a list of 50
app.use(online.middleware()); // after express-session

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

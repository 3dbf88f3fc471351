// typescript.ts
// Who is online, in strict TypeScript: node --import tsx typescript.ts (or npx tsx typescript.ts),
// then http://localhost:3000/. This repository type-checks it, strict, in `npm run typecheck`.
import express from 'express';
import session from 'express-session';
import { createOnlineTracker } from 'express-online-now';

interface User {
  id: number;
  username: string;
  name: string;
  avatar: string;
}

// Sample users: sign in as "ada" or "grace". A real app checks a password.
const USERS: readonly User[] = [
  { id: 1, username: 'ada', name: 'Ada Lovelace', avatar: '🧮' },
  { id: 2, username: 'grace', name: 'Grace Hopper', avatar: '🐛' },
];

declare module 'express-session' {
  interface SessionData {
    user?: { id: number; name: string; avatar: string };
  }
}
declare module 'express-online-now' {
  interface OnlineNowProfile {
    avatar?: string;
  }
}

const online = createOnlineTracker({
  getUser: (req) => req.session.user,
  profile: (user) => ({ name: user.name, avatar: user.avatar }),
  skip: (req) => req.path === '/health', // a load balancer's probe is not a user's activity
});
// res.locals.onlineNow[0]?.avatar is a string | undefined

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

app.get('/health', (_req, res) => {
  res.send('ok');
});

app.post('/login', (req, res, next) => {
  const user = USERS.find((u) => u.username === req.body.username);
  if (!user) {
    res.status(401).send('Unknown user: try ada or grace.');
    return;
  }
  req.session.regenerate((err) => {
    if (err) return next(err);
    req.session.user = { id: user.id, name: user.name, avatar: user.avatar };
    res.redirect(303, '/');
  });
});

app.post('/logout', async (req, res, next) => {
  if (req.session.user) await online.forget(req.session.user); // offline at once, not in 15 minutes
  req.session.destroy((err) => (err ? next(err) : res.redirect(303, '/')));
});

const escapeHtml = (text: string): string => text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

app.get('/', (req, res) => {
  const { onlineCount, onlineNow, timeAgo } = res.locals; // typed: set by online.middleware()
  const me = req.session.user;
  const form = me
    ? `<form method="post" action="/logout">Signed in as ${escapeHtml(me.name)} <button>Sign out</button></form>`
    : '<form method="post" action="/login"><input name="username" placeholder="ada or grace"> <button>Sign in</button></form>';
  const list = onlineNow
    .map((u) => `<li>${escapeHtml(u.name ?? String(u.id))}, ${timeAgo(u, { html: true })} ${escapeHtml(u.avatar ?? '')}</li>`)
    .join('');
  res.send(`<!doctype html><title>Who is online</title>${form}<p>${onlineCount} online</p><ul class="online">${list}</ul>`);
});

const port = Number(process.env.PORT ?? 3000);
app.listen(port, (error) => {
  if (error) throw error;
  console.log(`Listening on http://localhost:${port}/`);
});

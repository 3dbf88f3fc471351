// passport.cjs
'use strict';
// Who is online, with Passport's local strategy: node passport.cjs, then http://localhost:3000/
const express = require('express');
const session = require('express-session');
const passport = require('passport');
const { Strategy: LocalStrategy } = require('passport-local');
const { createOnlineTracker } = require('express-online-now');

// Sample users: ada / analytical, grace / cobol. A real app keeps password hashes
// (bcrypt, argon2) in its database and compares those.
const USERS = [
  { id: 1, username: 'ada', name: 'Ada Lovelace', password: 'analytical' },
  { id: 2, username: 'grace', name: 'Grace Hopper', password: 'cobol' },
];

passport.use(
  new LocalStrategy((username, password, done) => {
    const user = USERS.find((u) => u.username === username && u.password === password);
    done(null, user ?? false);
  }),
);
passport.serializeUser((user, done) => done(null, user.id));
passport.deserializeUser((id, done) => {
  const user = USERS.find((u) => u.id === id);
  // What req.user holds; presence keeps only its username, name and displayName.
  done(null, user ? { id: user.id, username: user.username, name: user.name } : false);
});

const app = express();
app.use(express.urlencoded({ extended: false }));
const secret = process.env.SESSION_SECRET ?? 'change me'; // set SESSION_SECRET: the fallback is for trying the example
const online = createOnlineTracker();

app.use(session({ secret, resave: false, saveUninitialized: false }));
app.use(passport.session());
app.use(online.middleware()); // after passport.session(), which sets req.user

app.post('/login', passport.authenticate('local', { successRedirect: '/', failureRedirect: '/?failed' }));
app.post('/logout', async (req, res, next) => {
  await online.forget(req.user); // before req.logout(), which clears req.user
  req.logout((err) => (err ? next(err) : res.redirect(303, '/')));
});

const escapeHtml = (text) => String(text).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

app.get('/', (req, res) => {
  const { onlineCount, onlineNow, timeAgo } = res.locals; // set by online.middleware()
  const form = req.user
    ? `<form method="post" action="/logout">Signed in as ${escapeHtml(req.user.name)} <button>Sign out</button></form>`
    : `<form method="post" action="/login">${'failed' in req.query ? '<p>Wrong username or password.</p>' : ''}
<input name="username" placeholder="ada" autocomplete="username"> <input name="password" type="password" autocomplete="current-password"> <button>Sign in</button></form>`;
  const list = onlineNow.map((u) => `<li>${escapeHtml(u.name)}, ${timeAgo(u, { html: true })}</li>`).join('');
  res.send(`<!doctype html><title>Who is online</title>${form}<p>${onlineCount} online</p><ul class="online">${list}</ul>`);
});

const port = Number(process.env.PORT ?? 3000);
app.listen(port, (error) => {
  if (error) throw error;
  console.log(`Listening on http://localhost:${port}/`);
});

// nunjucks.cjs
'use strict';
// Who is online, rendered by Nunjucks: node nunjucks.cjs, then http://localhost:3000/
// The page is views/nunjucks/home.njk.
const path = require('node:path');
const express = require('express');
const session = require('express-session');
const nunjucks = require('nunjucks');
const { createOnlineTracker, registerNunjucks } = require('express-online-now');

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
const online = createOnlineTracker();
app.use(online.middleware()); // after express-session

const env = nunjucks.configure(path.join(__dirname, 'views', 'nunjucks'), { express: app, autoescape: true });
registerNunjucks(env); // filters isOnline, lastSeen and timeAgo, global isOnline()
app.set('view engine', 'njk');

app.get('/', (req, res) => res.render('home', { user: req.session.user, users: USERS }));

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

const port = Number(process.env.PORT ?? 3000);
app.listen(port, (error) => {
  if (error) throw error;
  console.log(`Listening on http://localhost:${port}/`);
});

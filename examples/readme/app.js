// app.js: node app.js, then open http://localhost:3000/ in two browsers
const express = require('express');
const session = require('express-session');
const { createOnlineTracker } = require('express-online-now');

const USERS = new Map([['ada', { id: 1, name: 'Ada Lovelace' }], ['grace', { id: 2, name: 'Grace Hopper' }]]); // your users table

const app = express();
app.use(express.urlencoded({ extended: false }));
app.use(session({ secret: process.env.SESSION_SECRET ?? 'change me', resave: false, saveUninitialized: false }));
const online = createOnlineTracker({ trackGuests: true }); // in this process; online = a request in the last 15 minutes
app.use(online.middleware()); // after express-session: every page gets onlineCount, onlineNow, …

app.post('/login', (req, res) => {
  req.session.user = USERS.get(req.body.username); // a real app checks a password, and regenerates the session
  res.redirect(303, '/');
});
app.post('/logout', async (req, res) => {
  await online.forget(req.session.user); // offline at once, not in 15 minutes
  req.session.destroy(() => res.redirect(303, '/'));
});
app.get('/', (req, res) => {
  const { onlineCount, onlineGuests, onlineNow, timeAgo } = res.locals;
  const me = req.session.user; // names come from USERS here: escape any name a user typed
  const form = me
    ? `<form method="post" action="/logout">Signed in as ${me.name} <button>Sign out</button></form>`
    : '<form method="post" action="/login"><input name="username" placeholder="ada or grace"> <button>Sign in</button></form>';
  const list = onlineNow.map((u) => `<li>${u.name}, ${timeAgo(u, { html: true })}</li>`).join('');
  res.send(`${form}<p>${onlineCount} online, ${onlineGuests} guests</p><ul class="online">${list}</ul>`);
});

const port = Number(process.env.PORT ?? 3000);
app.listen(port, (error) => {
  if (error) throw error;
  console.log(`Listening on http://localhost:${port}/`);
});

// app.js, continued: the page in Nunjucks, at /nunjucks
const path = require('node:path');
const nunjucks = require('nunjucks');
const { registerNunjucks } = require('express-online-now');

app.set('views', path.join(__dirname, 'views'));
const env = registerNunjucks(new nunjucks.Environment(new nunjucks.FileSystemLoader(app.get('views')), { autoescape: true }));
app.engine('njk', (file, options, done) => env.render(file, options, done)); // Nunjucks for .njk views only
app.get('/nunjucks', (req, res) => res.render('home.njk', { user: req.session.user }));

// app.js, continued: the page in Handlebars, at /handlebars
const { create } = require('express-handlebars');
const { registerHandlebars } = require('express-online-now');

const hbs = registerHandlebars(create({ extname: '.hbs', defaultLayout: false })); // each view a whole page: no layouts/main.hbs
app.engine('hbs', hbs.engine);
app.get('/handlebars', (req, res) => res.render('home.hbs', { user: req.session.user }));

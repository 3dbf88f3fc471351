'use strict';
// Several demo processes behind one port (node:cluster), sharing presence and
// sessions through Redis: every process shows the same count. They share one
// SQLite file too (DATABASE, default in the temporary directory): the store calls
// onSeen once per user per minute and onRecord once per new record across all of
// them, so the workers do not race to write the same row.
//   REDIS_URL=redis://127.0.0.1:6379 WORKERS=3 node views-examples/cluster.js
const cluster = require('node:cluster');
const crypto = require('node:crypto');

if (!process.env.REDIS_URL) {
  console.error('cluster.js needs REDIS_URL (e.g. REDIS_URL=redis://127.0.0.1:6379): processes share presence through Redis.');
  process.exit(1);
}

if (cluster.isPrimary) {
  // The primary creates the database (WAL mode, tables, sample users) before the workers open it:
  // two workers switching a new file to WAL at once would find it locked.
  const { openDatabase, databaseFile } = require('./server.js');
  openDatabase(databaseFile()).close();
  const workers = Number(process.env.WORKERS ?? 3);
  // One secret for all workers, so a session cookie from one is valid at the others.
  const env = { SESSION_SECRET: process.env.SESSION_SECRET ?? crypto.randomBytes(32).toString('hex') };
  for (let i = 0; i < workers; i++) cluster.fork(env);
  cluster.on('exit', (worker, code) => console.log(`worker ${worker.process.pid} exited (${code})`));
} else {
  require('./server.js')
    .start()
    .catch((err) => {
      console.error(err);
      process.exit(1);
    });
}

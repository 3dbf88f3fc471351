// Section 4: a soak. Millions of requests through the middleware (in process,
// no HTTP: this is about memory, not speed), from a large space of distinct
// users and guest sessions, so maxTracked is hit over and over; the heap is
// sampled after a full GC along the way and must level off.
import { MemoryStore, createOnlineTracker } from 'express-online-now';
import { prng, table } from './lib.mjs';

export function soak({ requests = 3_000_000, distinctUsers = 2_000_000, maxTracked = 100_000, samples = 6 }) {
  const online = createOnlineTracker({ store: new MemoryStore({ maxTracked }), trackGuests: true });
  const middleware = online.middleware();
  const random = prng(2024);
  const next = () => undefined;
  const rows = [];
  const heap = [];
  const every = Math.floor(requests / samples);
  for (let i = 1; i <= requests; i++) {
    let req;
    if (i % 4 === 0) {
      // A guest: a session that came with its cookie.
      const sid = `sess-${Math.floor(random() * distinctUsers)}`;
      req = { headers: { cookie: `connect.sid=s%3A${sid}.sig` }, sessionID: sid, session: {} };
    } else {
      const id = 1 + Math.floor(random() * distinctUsers);
      req = { headers: {}, session: { user: { id, username: `user${id}`, name: `User number ${id}` } } };
    }
    const res = { locals: {} };
    middleware(req, res, next);
    if (i % every === 0) {
      globalThis.gc();
      const mb = process.memoryUsage().heapUsed / 2 ** 20;
      heap.push(mb);
      rows.push([i.toLocaleString('en-US'), res.locals.onlineCount.toLocaleString('en-US'), res.locals.onlineGuests.toLocaleString('en-US'), mb.toFixed(1)]);
    }
  }
  const drift = heap[heap.length - 1] / heap[1];
  const text = table(
    `Soak: ${requests.toLocaleString('en-US')} requests from ${distinctUsers.toLocaleString('en-US')} distinct users and guest sessions, memory store, maxTracked ${maxTracked.toLocaleString('en-US')}`,
    ['requests so far', 'onlineCount', 'onlineGuests', 'heap after GC, MB'],
    rows,
  );
  console.log(`heap at the end / heap after the second sample: ${drift.toFixed(3)}`);
  return { results: { heapMB: heap, drift }, text: `${text}\n\nHeap at the end ÷ heap at the second sample: ${drift.toFixed(3)}.` };
}

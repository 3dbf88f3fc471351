import { expect } from 'chai';
import express from 'express';
import { createOnlineTracker, type OnlineTracker } from 'express-online-now';
import { listen, type Listening } from './helpers/server';
import { SseStream } from './helpers/sse';

// The stream's `ids` parameter, as a person writes it by hand (`ids=1,2`) and as
// the client script and URLSearchParams write it (`ids=1&ids=2`): the same badges.
describe('events(): the ids parameter', () => {
  let server: Listening;
  let online: OnlineTracker;
  before(async () => {
    online = createOnlineTracker();
    const app = express();
    app.get('/online-now/events', online.events());
    server = await listen(app);
    await online.touch(1);
    await online.touch(2);
  });
  after(async () => {
    await server.close();
    await online.close();
  });

  for (const query of ['ids=1,2,3', 'ids=1&ids=2&ids=3', 'ids=1,2&ids=3', 'ids=1%0A2%0A3']) {
    it(`${query}: one badge event per id, online for 1 and 2, offline for 3`, async () => {
      const stream = await SseStream.open(`${server.base}/online-now/events?${query}`);
      try {
        await stream.next('count');
        await stream.next('offline', (d: { id: string }) => d.id === '3');
        const badges = stream.events.filter((e) => e.event === 'online' || e.event === 'offline').map((e) => `${e.event} ${(JSON.parse(e.data) as { id: string }).id}`);
        expect(badges.sort()).to.deep.equal(['offline 3', 'online 1', 'online 2']);
      } finally {
        stream.close();
      }
    });
  }
});

import { expect } from 'chai';
import express from 'express';
import { createOnlineTracker, MemoryStore, type OnlineTracker, type ScopeView, type Store } from 'express-online-now';
import { listen, type Listening } from './helpers/server';
import { SseStream } from './helpers/sse';

// A memory store whose reads wait while the test holds them: a slow look (a busy Redis, a busy process).
function heldStore(): { store: Store; hold(): void; release(): void; reads(): number } {
  const memory = new MemoryStore();
  let held: Promise<void> | undefined;
  let release = (): void => {};
  let reads = 0;
  const store = new Proxy(memory, {
    get(target, key, receiver) {
      if (key !== 'view') return Reflect.get(target, key, receiver) as unknown;
      return async (...args: Parameters<Store['view']>): Promise<ScopeView> => {
        reads++;
        await held;
        return target.view(...args);
      };
    },
  });
  return {
    store,
    hold: () => (held = new Promise((resolve) => (release = resolve))),
    release: () => {
      held = undefined;
      release();
    },
    reads: () => reads,
  };
}

describe('events(): a new stream gets the state at once', () => {
  let server: Listening;
  let online: OnlineTracker;
  const held = heldStore();
  before(async () => {
    // An interval far longer than the test: only the look a connection asks for can answer it.
    online = createOnlineTracker({ store: held.store });
    const app = express();
    app.get('/online-now/events', online.events({ interval: 600_000 }));
    server = await listen(app);
    await online.touch(1);
  });
  after(async () => {
    await server.close();
    await online.close();
  });

  it('even one that connects while another stream’s first look is still on its way', async () => {
    held.hold();
    const streams: SseStream[] = [];
    try {
      const first = await SseStream.open(`${server.base}/online-now/events`);
      streams.push(first);
      // The first stream's look is waiting on the store when the second connects.
      while (held.reads() === 0) await new Promise((resolve) => setTimeout(resolve, 5));
      const second = await SseStream.open(`${server.base}/online-now/events`);
      streams.push(second);
      held.release();
      await first.next('count');
      expect(await second.next('count')).to.deep.include({ users: 1 });
    } finally {
      held.release();
      for (const stream of streams) stream.close();
    }
  });
});

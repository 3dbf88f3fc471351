import { expect } from 'chai';
import { createClient as createClient5 } from 'redis';
import { createClient as createClient4 } from 'redis4';
import { createClient as createClient6 } from 'redis6';
import { OnlineNowConfigError, RedisStore } from 'express-online-now';
import { REDIS_SERVER, RedisServer, connect, uniquePrefix } from './helpers/redis';
import { expectSharedPresence, reconnectStrategy, trackerPair, type TestConnection, type TrackerPair } from './helpers/redis-cluster';
import { requireBinary } from './helpers/requirements';

type PlainKind = 'node-redis v4' | 'node-redis v5' | 'node-redis v6' | 'ioredis';
const plainKinds: readonly PlainKind[] = ['node-redis v4', 'node-redis v5', 'node-redis v6', 'ioredis'];

/** A plain (non-cluster) client of the given kind, connected and ready. */
async function connectPlain(kind: PlainKind, server: RedisServer): Promise<TestConnection> {
  const socket = { reconnectStrategy, connectTimeout: 2000 };
  switch (kind) {
    case 'node-redis v5':
      return connect('node-redis', server);
    case 'ioredis':
      return connect('ioredis', server);
    case 'node-redis v4': {
      const client = createClient4({ url: server.url, socket });
      client.on('error', () => undefined);
      await client.connect();
      return {
        client: client,
        close: async () => {
          // quit() waits in the offline queue when the server is gone: disconnect() does not.
          if (client.isReady) await client.quit().catch(() => undefined);
          if (client.isOpen) await client.disconnect().catch(() => undefined);
        },
      };
    }
    case 'node-redis v6': {
      const client = createClient6({ url: server.url, socket });
      client.on('error', () => undefined);
      await client.connect();
      return {
        client,
        close: async () => {
          if (client.isReady) await client.close().catch(() => undefined);
          if (client.isOpen) client.destroy();
        },
      };
    }
  }
}

describe('RedisStore with each supported client library, on a standalone Redis', function () {
  this.timeout(15_000);
  let server: RedisServer;
  const opened: TrackerPair[] = [];

  before(async function () {
    requireBinary(this, REDIS_SERVER, 'apt-get install -y redis-server');
    server = await RedisServer.start();
  });
  afterEach(async () => {
    for (const pair of opened.splice(0).reverse()) await pair.close();
  });
  after(async () => {
    await server?.stop();
  });

  for (const kind of plainKinds) {
    it(`${kind}: two trackers on their own connections share presence, and a logout`, async () => {
      const pair = await trackerPair(() => connectPlain(kind, server), uniquePrefix());
      opened.push(pair);
      await expectSharedPresence(pair);
    });
  }

  // No socket is opened by creating a client: nothing to close afterwards.
  const unconnected = [
    ['node-redis v4', () => createClient4({ url: server.url })],
    ['node-redis v5', () => createClient5({ url: server.url })],
    ['node-redis v6', () => createClient6({ url: server.url })],
  ] as const;
  for (const [kind, create] of unconnected) {
    it(`${kind}: a client not connected yet is refused at new RedisStore(), with a stable code`, () => {
      const client = create();
      expect(client.isOpen).to.equal(false);
      expect(() => new RedisStore({ client: client }))
        .to.throw(OnlineNowConfigError, /connect/)
        .with.property('code', 'ERR_ONLINE_NOW_REDIS_NOT_CONNECTED');
    });
  }
});

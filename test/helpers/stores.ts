// The one per-store harness: a describe run against the memory store and against
// RedisStore (on the shared redis-server), with the same tests and the same assertions.
import { expect } from 'chai';
import { MemoryStore, RedisStore, type Store } from 'express-online-now';
import { REDIS_SERVER, connect, sharedRedis, uniquePrefix, type ClientKind, type TestClient } from './redis';
import { requireBinary } from './requirements';
import { eventually } from './wait';

export interface StoreKind {
  /** In the describe's title. */
  readonly name: string;
  /** The Redis clients the suite connects, one per app instance; none: the memory store. */
  readonly redis?: readonly ClientKind[];
}

export const MEMORY: StoreKind = { name: 'memory store' };
export const REDIS: StoreKind = { name: 'Redis store', redis: ['node-redis'] };

export interface StoreOptions {
  maxTracked?: number;
}

export interface PerStore {
  readonly kind: StoreKind;
  /** The suite's Redis clients (connected before its tests, closed after them); empty on the memory store. */
  readonly clients: readonly TestClient[];
  /** A fresh store: a MemoryStore, or a RedisStore on the first client under a prefix of its own. */
  store(options?: StoreOptions): Store;
  /**
   * Fresh stores holding one presence, one per app instance: a RedisStore per client on one
   * prefix, or a single MemoryStore (two memory stores would be two presences).
   */
  stores(options?: StoreOptions): Store[];
}

/**
 * Runs `body` once per kind (default: the memory store, then RedisStore on node-redis) in a
 * describe titled `title(kind)`; RedisStores sync every `syncInterval` ms.
 */
export function describeEachStore(
  title: (kind: StoreKind) => string,
  options: { syncInterval: number; kinds?: readonly StoreKind[] },
  body: (this: Mocha.Suite, stores: PerStore) => void,
): void {
  for (const kind of options.kinds ?? [MEMORY, REDIS]) {
    describe(title(kind), function () {
      const clients: TestClient[] = [];
      before(async function () {
        if (kind.redis === undefined) return;
        requireBinary(this, REDIS_SERVER, 'apt-get install -y redis-server');
        const server = await sharedRedis();
        for (const clientKind of kind.redis) clients.push(await connect(clientKind, server));
      });
      after(async () => {
        for (const c of clients.splice(0)) await c.close();
      });
      const stores = (extra: StoreOptions = {}): Store[] => {
        if (kind.redis === undefined) return [new MemoryStore(extra)];
        const prefix = uniquePrefix();
        return clients.map((c) => new RedisStore({ client: c.client, prefix, syncInterval: options.syncInterval, ...extra }));
      };
      body.call(this, { kind, clients, stores, store: (extra) => stores(extra)[0] });
    });
  }
}

let barriers = 0;

/**
 * Resolves once every store has applied all that any of them had queued, or Redis held, when it
 * was called: each writes a bot of its own (bots count in no record, list or hook) and waits until it has every other's (a change
 * feed is read in order). Where a test checks that nothing more happens, what a sync would bring has come by then.
 */
export async function synced(...trackers: { store: Store }[]): Promise<void> {
  const marks = trackers.map((_, i) => `barrier-${++barriers}-${i}`);
  trackers.forEach(({ store }, i) => void store.touch('bots', marks[i], marks[i], undefined));
  await eventually(async () => {
    for (const { store } of trackers) {
      const bots = await store.view('bots', 0);
      for (const mark of marks) expect(bots.lastSeen(mark), mark).not.to.equal(null);
    }
  });
}

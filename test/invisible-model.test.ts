// Invisible mode against a model: random sign-ins (visible or hidden), hide and
// unhide, bare-id pings (tracker.touch(id), which carry no profile) and logouts,
// sent to three RedisStores (three clients, one prefix) in random order. After
// each burst the stores settle and every one must show what the model says: the
// visible users to everyone, the hidden ones counted, and listed only to staff.
// The seed is printed: MODEL_SEED=… replays a failure.
import { expect } from 'chai';
import { RedisStore, createOnlineTracker, type OnlineTracker } from 'express-online-now';
import { Rng, modelSeed } from './helpers/model';
import { REDIS_SERVER, connect, sharedRedis, uniquePrefix, type TestClient } from './helpers/redis';
import { requireBinary } from './helpers/requirements';
import { synced } from './helpers/stores';
import { sleep } from './helpers/wait';

interface User {
  id: number;
  name: string;
  invisible: boolean;
}

/** Per user: online or not, and hidden as the latest request that said so. */
interface ModelUser {
  online: boolean;
  hidden: boolean;
}

const USERS = 12;
const SYNC_MS = 50;
const MIN_GAP_MS = 25;

describe('invisible mode across three RedisStores, random events against a model', function () {
  this.timeout(120_000);
  let clients: TestClient[] = [];
  let trackers: OnlineTracker<User>[] = [];

  before(async function () {
    requireBinary(this, REDIS_SERVER, 'apt-get install -y redis-server');
    const server = await sharedRedis();
    clients = [await connect('node-redis', server), await connect('node-redis', server), await connect('ioredis', server)];
  });
  after(async () => {
    for (const t of trackers) await t.close();
    for (const c of clients) await c.close();
  });

  it('every store agrees with the model after each burst', async () => {
    const seed = modelSeed();
    console.log(`      model seed: ${seed} (replay with MODEL_SEED=${seed})`);
    const rng = new Rng(seed);
    const prefix = uniquePrefix();
    trackers = clients.map((c) =>
      createOnlineTracker<User>({
        store: new RedisStore({ client: c.client, prefix, syncInterval: SYNC_MS }),
        threshold: 600,
        hidden: (user) => user.invisible,
      }),
    );
    const model: ModelUser[] = Array.from({ length: USERS }, () => ({ online: false, hidden: false }));
    const counts = { requests: 0, pings: 0, logouts: 0, toggles: 0 };
    const lastEvent = model.map(() => 0);

    for (let burst = 0; burst < 12; burst++) {
      for (let step = 0; step < 40; step++) {
        const id = Math.floor(rng.between(0, USERS));
        // Events on one user stay further apart than the stores' clock estimates can disagree
        // (half the quickest round trip to Redis each): closer ones have no order to keep.
        const wait = lastEvent[id] + MIN_GAP_MS - Date.now();
        if (wait > 0) await sleep(wait); // the gap above is the subject: events on one user closer than it have no order
        lastEvent[id] = Date.now();
        const tracker = rng.pick(trackers);
        const m = model[id];
        const roll = rng.next();
        if (roll < 0.15 && m.online) {
          await tracker.forget(id);
          m.online = false;
          counts.logouts++;
        } else if (roll < 0.4 && m.online) {
          // A websocket or API ping: no profile, so it keeps whatever visibility the user chose last.
          await tracker.touch(id);
          counts.pings++;
        } else {
          if (rng.chance(0.3)) {
            m.hidden = !m.hidden;
            counts.toggles++;
          }
          await tracker.touch({ id, name: `User ${id}`, invisible: m.hidden });
          m.online = true;
          counts.requests++;
          if (rng.chance(0.3)) {
            // A ping on another store right after: it may reach Redis before the request it follows.
            await sleep(MIN_GAP_MS); // the same gap, so the ping comes after the request on every clock
            lastEvent[id] = Date.now();
            await rng.pick(trackers.filter((t) => t !== tracker)).touch(id);
            counts.pings++;
          }
        }
        await sleep(rng.between(1, 6)); // the model's pace: events spread over syncs are the subject
      }
      await synced(...trackers);
      const visible = model.flatMap((u, id) => (u.online && !u.hidden ? [id] : [])).sort((a, b) => a - b);
      const hidden = model.flatMap((u, id) => (u.online && u.hidden ? [id] : [])).sort((a, b) => a - b);
      for (const [n, tracker] of trackers.entries()) {
        const where = `seed ${seed}, burst ${burst}, store ${n}`;
        const listed = (await tracker.list(50)).map((e) => e.id as number).sort((a, b) => a - b);
        expect(listed, where).to.deep.equal(visible);
        const staff = await tracker.list(50, { hidden: true });
        expect(
          staff
            .filter((e) => e.hidden === true)
            .map((e) => e.id as number)
            .sort((a, b) => a - b),
          `${where}, staff`,
        ).to.deep.equal(hidden);
        expect(await tracker.counts(), where).to.deep.include({ users: visible.length, hidden: hidden.length });
        for (const id of hidden) expect(await tracker.isOnline(id), `${where}, user ${id}`).to.equal(false);
      }
    }
    console.log(`      ${counts.requests} requests, ${counts.toggles} hide/unhide, ${counts.pings} bare-id pings, ${counts.logouts} logouts`);
  });
});

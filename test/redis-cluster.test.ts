import { expect } from 'chai';
import { REDIS_SERVER, uniquePrefix } from './helpers/redis';
import {
  REDIS_CLI,
  RedisCluster,
  clusterKinds,
  connectCluster,
  expectSharedPresence,
  trackerPair,
  type TrackerPair,
} from './helpers/redis-cluster';
import { requireBinary } from './helpers/requirements';

describe('RedisStore on a real Redis Cluster (three masters)', function () {
  this.timeout(15_000);
  let cluster: RedisCluster;
  const opened: TrackerPair[] = [];

  before(async function () {
    this.timeout(60_000);
    requireBinary(this, REDIS_SERVER, 'apt-get install -y redis-server');
    requireBinary(this, REDIS_CLI, 'apt-get install -y redis-server');
    cluster = await RedisCluster.start();
  });
  afterEach(async () => {
    for (const pair of opened.splice(0).reverse()) await pair.close();
  });
  after(async () => {
    await cluster?.stop();
  });

  for (const kind of clusterKinds) {
    describe(`${kind} cluster client`, () => {
      it('two trackers on their own connections share presence, and a logout', async () => {
        const pair = await trackerPair(() => connectCluster(kind, cluster), uniquePrefix());
        opened.push(pair);
        await expectSharedPresence(pair);
      });

      it('keeps every key in one slot, on one master: the script is one single-slot command', async () => {
        // Its own suffix: KEYS *test-1-5* would also match the keys of test-1-50.
        const prefix = `${uniquePrefix()}-slot`;
        const pair = await trackerPair(() => connectCluster(kind, cluster), prefix);
        opened.push(pair);
        await expectSharedPresence(pair);
        const byNode = await cluster.keysByNode(`*${prefix}*`);
        const holders = [...byNode].filter(([, keys]) => keys.length > 0);
        expect(holders.map(([port]) => port), 'masters holding the keys').to.have.length(1);
        const [port, keys] = holders[0];
        expect(keys).to.include(`{${prefix}}:users:seen`);
        const slot = await cluster.command(port, 'CLUSTER', 'KEYSLOT', `{${prefix}}`);
        for (const key of keys) expect(await cluster.command(port, 'CLUSTER', 'KEYSLOT', key), key).to.equal(slot);
      });
    });
  }
});

import { expect } from 'chai';
import { REDIS_SERVER, uniquePrefix } from './helpers/redis';
import { REDIS_CLI, RedisCluster, clusterKinds, connectCluster, expectSharedPresence, trackerPair, type ClusterKind, type TrackerPair } from './helpers/redis-cluster';
import { requireBinary } from './helpers/requirements';
import { eventually } from './helpers/wait';

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
        expect(
          holders.map(([port]) => port),
          'masters holding the keys',
        ).to.have.length(1);
        const [port, keys] = holders[0];
        expect(keys).to.include(`{${prefix}}:users:seen`);
        const slot = await cluster.command(port, 'CLUSTER', 'KEYSLOT', `{${prefix}}`);
        for (const key of keys) expect(await cluster.command(port, 'CLUSTER', 'KEYSLOT', key), key).to.equal(slot);
      });
    });
  }
});

/**
 * A master of the cluster dies and its replica takes over (cluster-node-timeout
 * 2 s): what each store shows and reports, with each client, as
 * docs/redis-and-processes.md ("Redis Cluster") states it.
 */
describe('RedisStore on a Redis Cluster whose master fails over (three masters, one replica each)', function () {
  this.timeout(120_000);
  let cluster: RedisCluster | undefined;
  let pair: TrackerPair | undefined;

  before(function () {
    requireBinary(this, REDIS_SERVER, 'apt-get install -y redis-server');
    requireBinary(this, REDIS_CLI, 'apt-get install -y redis-server');
  });
  afterEach(async () => {
    await pair?.close();
    await cluster?.stop();
    pair = undefined;
    cluster = undefined;
  });

  /** Two processes with users online, then presence's master killed; a new user on a every 200 ms meanwhile. */
  async function failOver(kind: ClusterKind): Promise<{ pair: TrackerPair; killedAt: number; lastTouched: () => number; stop: () => void }> {
    cluster = await RedisCluster.start(1);
    const prefix = uniquePrefix();
    pair = await trackerPair(() => connectCluster(kind, cluster!), prefix);
    const { a, b } = pair;
    await a.touch({ id: 1, name: 'Ann' });
    await eventually(async () => expect(await b.isOnline(1)).to.equal(true));
    await cluster.kill(await cluster.masterOf(`{${prefix}}:meta`));
    const killedAt = Date.now();
    let next = 100;
    const timer = setInterval(() => void a.touch({ id: next++, name: 'New' }), 200);
    return { pair, killedAt, lastTouched: () => next - 1, stop: () => clearInterval(timer) };
  }

  it('ioredis Cluster: presence crosses processes again within seconds, by itself, with nothing reported past the outage', async () => {
    const { pair: p, killedAt, lastTouched, stop } = await failOver('ioredis');
    try {
      await eventually(async () => expect(await p.b.isOnline(lastTouched() - 1), p.errors.map((e) => e.message).join('\n')).to.equal(true), 30_000);
      console.log(`      ioredis Cluster: presence crosses again ${((Date.now() - killedAt) / 1000).toFixed(1)} s after the master died`);
      expect(await p.b.isOnline(1)).to.equal(true);
      expect(p.errors.map((e) => (e as { code?: string }).code)).not.to.include('ERR_ONLINE_NOW_REDIS_HUNG');
    } finally {
      stop();
    }
  });

  it('node-redis createCluster: its command to the lost master never settles; the store gives it up, says so naming the client and the fix, keeps serving pages, and withholds what it cannot confirm', async () => {
    const { pair: p, killedAt, stop } = await failOver('node-redis v5');
    try {
      await eventually(() => expect(p.errors.map((e) => (e as { code?: string }).code)).to.include('ERR_ONLINE_NOW_REDIS_HUNG'), 30_000);
      console.log(`      node-redis cluster: given up and reported ${((Date.now() - killedAt) / 1000).toFixed(1)} s after the master died`);
      const hung = p.errors.find((e) => (e as { code?: string }).code === 'ERR_ONLINE_NOW_REDIS_HUNG')!;
      expect(hung.message).to.include('node-redis cluster').and.to.include('ioredis Cluster');
      // Pages are served from the replica: users seen here since the last sync listed; the rest withheld (they may have hidden).
      expect(await p.a.isOnline(1)).to.equal(false);
      expect((await p.a.list()).length).to.be.above(0);
      expect(p.errors.map((e) => (e as { code?: string }).code)).to.include('ERR_ONLINE_NOW_REDIS_STALE');
    } finally {
      stop();
    }
  });
});

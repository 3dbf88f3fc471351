// A real Redis Cluster (three masters, with or without a replica each, no persistence) on loopback,
// started and stopped by the tests; the cluster clients of node-redis v4, v5, v6
// and ioredis, connected to it; and the two-process presence check that the
// cluster and the standalone client suites both run.
import { execFile, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { expect } from 'chai';
import { createClient, createCluster as createCluster5 } from 'redis';
import { createCluster as createCluster4 } from 'redis4';
import { createCluster as createCluster6 } from 'redis6';
import { Cluster as IORedisCluster } from 'ioredis';
import { RedisStore, createOnlineTracker, type OnlineTracker, type RedisClientLike } from 'express-online-now';
import { freePort, spawnRedis } from './redis';
import { eventually } from './wait';

export const REDIS_CLI = '/usr/bin/redis-cli';

const run = promisify(execFile);

/** Whether nothing listens on 127.0.0.1:port. */
function isFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const probe = createServer();
    probe.once('error', () => resolve(false));
    probe.listen(port, '127.0.0.1', () => probe.close(() => resolve(true)));
  });
}

/** Free ports whose cluster bus port (port + 10000) is free too, and clear of each other's. */
async function clusterPorts(count: number): Promise<number[]> {
  const ports: number[] = [];
  for (let tries = 0; ports.length < count; tries++) {
    if (tries > 200) throw new Error(`found only ${ports.length} of ${count} free port pairs (P, P + 10000)`);
    const port = await freePort();
    const taken = ports.flatMap((p) => [p, p + 10_000]);
    if (port + 10_000 > 65_535 || taken.includes(port) || taken.includes(port + 10_000)) continue;
    if (await isFree(port + 10_000)) ports.push(port);
  }
  return ports;
}

// spawnRedis kills the nodes when the test process exits; their folders go too.
const tempDirs = new Set<string>();
process.on('exit', () => {
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
});

type AdminClient = ReturnType<typeof createClient>;

export class RedisCluster {
  private readonly children = new Map<number, ChildProcess>();
  private readonly admins = new Map<number, AdminClient>();

  private constructor(
    readonly ports: readonly number[],
    private readonly dir: string,
  ) {}

  /** Three masters (and `replicas` replicas of each) on free loopback ports, slots spread by redis-cli, every node reporting cluster_state:ok. */
  static async start(replicas = 0): Promise<RedisCluster> {
    const dir = mkdtempSync(path.join(tmpdir(), 'online-now-cluster-'));
    tempDirs.add(dir);
    const cluster = new RedisCluster(await clusterPorts(3 * (1 + replicas)), dir);
    try {
      await Promise.all(cluster.ports.map((port) => cluster.launch(port)));
      await run(REDIS_CLI, ['--cluster', 'create', ...cluster.ports.map((port) => `127.0.0.1:${port}`), '--cluster-replicas', String(replicas), '--cluster-yes'], {
        timeout: 20_000,
      }).catch((error: { message: string; stdout?: string }) => {
        // redis-cli prints its [ERR] lines on stdout.
        throw new Error(`redis-cli --cluster create failed: ${error.message}\n${error.stdout ?? ''}`);
      });
      for (const port of cluster.ports) {
        const admin = createClient({ socket: { host: '127.0.0.1', port, reconnectStrategy: false } });
        admin.on('error', () => undefined);
        await admin.connect();
        cluster.admins.set(port, admin);
      }
      // redis-cli returns once the nodes agree on the configuration; each still has to call the cluster healthy.
      await eventually(async () => {
        for (const port of cluster.ports) {
          expect(String(await cluster.command(port, 'CLUSTER', 'INFO')), `node ${port}`).to.include('cluster_state:ok');
          // A replica that never synced with its master may not take over from it.
          const replication = String(await cluster.command(port, 'INFO', 'replication'));
          if (replication.includes('role:slave')) expect(replication, `replica ${port}`).to.include('master_link_status:up');
        }
      }, 20_000);
    } catch (error) {
      await cluster.stop();
      throw error;
    }
    return cluster;
  }

  private async launch(port: number): Promise<void> {
    const args = [
      '--port',
      String(port),
      '--bind',
      '127.0.0.1',
      '--cluster-enabled',
      'yes',
      '--cluster-config-file',
      path.join(this.dir, `nodes-${port}.conf`),
      '--cluster-node-timeout',
      '2000',
      '--dir',
      this.dir,
    ];
    this.children.set(port, await spawnRedis(args, `redis-server (cluster node ${port})`));
  }

  /** The port of the master that serves `key` now. */
  async masterOf(key: string): Promise<number> {
    const slot = Number(await this.command(this.live()[0], 'CLUSTER', 'KEYSLOT', key));
    for (const port of this.live()) {
      const me = String(await this.command(port, 'CLUSTER', 'NODES'))
        .split('\n')
        .find((line) => line.includes('myself'));
      if (me === undefined || !me.includes('master')) continue;
      for (const range of me.split(' ').slice(8)) {
        const [from, to = from] = range.split('-').map(Number);
        if (slot >= from && slot <= to) return port;
      }
    }
    throw new Error(`no master serves slot ${slot}`);
  }

  /** SIGKILL one node, as a crashed master: its replica is promoted after cluster-node-timeout (2 s). */
  async kill(port: number): Promise<void> {
    const child = this.children.get(port);
    this.admins.get(port)?.destroy();
    this.admins.delete(port);
    if (child === undefined || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGKILL');
    await exited;
  }

  /** The nodes still running. */
  private live(): number[] {
    return this.ports.filter((port) => this.admins.has(port));
  }

  /** A plain command on one node, not routed: CLUSTER INFO, KEYS, CLUSTER KEYSLOT. */
  command(port: number, ...args: string[]): Promise<unknown> {
    const admin = this.admins.get(port);
    if (admin === undefined) throw new Error(`no cluster node on port ${port}`);
    return admin.sendCommand(args);
  }

  /** Keys matching `pattern` on each node (KEYS sees only the node's own slots). */
  async keysByNode(pattern: string): Promise<Map<number, string[]>> {
    const found = new Map<number, string[]>();
    for (const port of this.ports) found.set(port, ((await this.command(port, 'KEYS', pattern)) as string[]).sort());
    return found;
  }

  /** Kills every node and removes their config files. */
  async stop(): Promise<void> {
    for (const admin of this.admins.values()) if (admin.isOpen) admin.destroy();
    this.admins.clear();
    await Promise.all(
      [...this.children.values()].map((child) => {
        if (child.exitCode !== null || child.signalCode !== null) return undefined;
        const exited = new Promise((resolve) => child.once('exit', resolve));
        child.kill('SIGKILL');
        return exited;
      }),
    );
    rmSync(this.dir, { recursive: true, force: true });
    tempDirs.delete(this.dir);
  }
}

export type ClusterKind = 'node-redis v4' | 'node-redis v5' | 'node-redis v6' | 'ioredis';
export const clusterKinds: readonly ClusterKind[] = ['node-redis v4', 'node-redis v5', 'node-redis v6', 'ioredis'];

/** A connected client, as an app would hand it to `new RedisStore({ client })`. */
export interface TestConnection {
  readonly client: RedisClientLike;
  close(): Promise<void>;
}

export const reconnectStrategy = (retries: number): number => Math.min(50 * (retries + 1), 300);

/** A cluster client of the given kind, its root nodes the three masters, connected and ready. */
export async function connectCluster(kind: ClusterKind, cluster: RedisCluster): Promise<TestConnection> {
  const rootNodes = cluster.ports.map((port) => ({ url: `redis://127.0.0.1:${port}` }));
  const defaults = { socket: { reconnectStrategy, connectTimeout: 2000 } };
  switch (kind) {
    case 'node-redis v4': {
      const client = createCluster4({ rootNodes, defaults });
      client.on('error', () => undefined); // node noise while a test's connections close
      await client.connect();
      return {
        client,
        close: async () => {
          if (client.isOpen) await client.quit().catch(() => client.disconnect().catch(() => undefined));
        },
      };
    }
    case 'node-redis v5':
    case 'node-redis v6': {
      // v5 and v6 share this API; their types differ only in defaults.
      const create = (kind === 'node-redis v5' ? createCluster5 : createCluster6) as typeof createCluster5;
      const client = create({ rootNodes, defaults });
      client.on('error', () => undefined);
      await client.connect();
      return {
        client,
        close: async () => {
          // close() waits for commands a lost master will never answer: a second, then the sockets are dropped.
          if (client.isOpen) await Promise.race([client.close().catch(() => undefined), new Promise((resolve) => setTimeout(resolve, 1000))]);
          if (client.isOpen) client.destroy();
        },
      };
    }
    case 'ioredis': {
      const client = new IORedisCluster(
        cluster.ports.map((port) => ({ host: '127.0.0.1', port })),
        { clusterRetryStrategy: (times: number) => Math.min(50 * times, 300), redisOptions: { maxRetriesPerRequest: 1 } },
      );
      client.on('error', () => undefined);
      await new Promise<void>((resolve, reject) => {
        client.once('ready', resolve);
        client.once('end', () => reject(new Error('ioredis Cluster could not connect')));
      });
      return {
        client,
        close: async () => {
          if (client.status === 'ready') await client.quit().catch(() => undefined);
          client.disconnect();
        },
      };
    }
  }
}

/** Two trackers on one prefix, each with its own store on its own connection: two processes of one app. */
export interface TrackerPair {
  readonly a: OnlineTracker;
  readonly b: OnlineTracker;
  /** Everything either tracker reported to onError. */
  readonly errors: Error[];
  close(): Promise<void>;
}

export async function trackerPair(connect: () => Promise<TestConnection>, prefix: string): Promise<TrackerPair> {
  const connections: TestConnection[] = [];
  const errors: Error[] = [];
  let a: OnlineTracker;
  let b: OnlineTracker;
  try {
    connections.push(await connect(), await connect());
    [a, b] = connections.map(({ client }) =>
      createOnlineTracker({
        store: new RedisStore({ client, prefix, syncInterval: 100 }),
        onError: (error) => errors.push(error),
      }),
    );
  } catch (error) {
    // A store that refuses its client must not leave the connections open.
    for (const connection of connections) await connection.close();
    throw error;
  }
  return {
    a,
    b,
    errors,
    close: async () => {
      await Promise.all([a.close(), b.close()]);
      for (const connection of connections) await connection.close();
    },
  };
}

/** What A touches B sees, with profiles; what B touches A sees; a forget on A takes the user offline on B; nothing is reported. */
export async function expectSharedPresence({ a, b, errors }: TrackerPair): Promise<void> {
  // First in every check: when the store fails, the failure is the message, not a count of 0.
  const noErrors = () =>
    expect(
      errors.map((e) => e.message),
      'errors reported to onError',
    ).to.deep.equal([]);
  expect(await a.touch({ id: 1, name: 'Ann' })).to.equal(true);
  expect(await a.touch({ id: 2, name: 'Bob' })).to.equal(true);
  await eventually(async () => {
    noErrors();
    expect(await b.count()).to.equal(2);
    expect(await b.isOnline(1)).to.equal(true);
    const entries = await b.list();
    expect(entries.map((e) => e.id)).to.deep.equal([2, 1]);
    expect(entries.map((e) => e.name)).to.deep.equal(['Bob', 'Ann']);
  });
  await b.touch({ id: 'c3', name: 'Cy' });
  await eventually(async () => {
    noErrors();
    expect(await a.isOnline('c3')).to.equal(true);
    expect(await a.count()).to.equal(3);
  });
  await a.forget(1);
  expect(await a.isOnline(1)).to.equal(false);
  await eventually(async () => {
    noErrors();
    expect(await b.isOnline(1)).to.equal(false);
    expect(await b.count()).to.equal(2);
    expect((await b.list()).map((e) => e.id)).to.deep.equal(['c3', 2]);
  });
  noErrors();
}

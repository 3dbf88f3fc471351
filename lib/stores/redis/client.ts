/**
 * The Redis clients an Express app already has, reduced to the one thing
 * RedisStore needs: send a raw command, routed by its first key on a cluster.
 * (While the client is disconnected its offline queue holds at most one command
 * of ours: RedisStore never sends a second before the first is answered.)
 * The client is the app's: we never connect, quit or configure it.
 */
import { OnlineNowConfigError } from '../../core/errors';

/** node-redis (v4–v6): `createClient()` after `await client.connect()`. */
export interface NodeRedisLike {
  readonly isOpen: boolean;
  // A mutable array: node-redis v4 and every cluster declare one.
  sendCommand(args: string[]): Promise<unknown>;
}

/** node-redis (v4–v6) cluster: `createCluster()` after `await cluster.connect()`. */
export interface NodeRedisClusterLike {
  readonly isOpen?: boolean;
  sendCommand(firstKey: string | undefined, isReadonly: boolean | undefined, args: string[]): Promise<unknown>;
}

/** ioredis: `new Redis(url)` or `new Cluster(nodes)`. */
export interface IORedisLike {
  readonly status: string;
  call(command: string, ...args: string[]): Promise<unknown>;
}

export type RedisClientLike = NodeRedisLike | NodeRedisClusterLike | IORedisLike;

export interface RawRedis {
  /** Sends one command; `firstKey` routes it on a cluster. */
  send(args: string[], firstKey: string): Promise<unknown>;
  /** Which client it is, for messages: "node-redis cluster", "ioredis Cluster", … */
  readonly name: string;
}

function notConnected(what: string): OnlineNowConfigError {
  return new OnlineNowConfigError(
    'ERR_ONLINE_NOW_REDIS_NOT_CONNECTED',
    `the ${what} passed to new RedisStore({ client }) is not connected: call \`await client.connect()\` first.`,
  );
}

/** A node-redis cluster has its masters; a plain client has none. The two `sendCommand`s differ. */
function isNodeRedisCluster(client: Record<string, unknown>): boolean {
  return 'masters' in client || typeof client.getMasters === 'function';
}

export function adaptClient(client: unknown): RawRedis {
  const c = (typeof client === 'object' && client !== null ? client : {}) as Record<string, unknown>;
  if (typeof c.sendCommand === 'function' && isNodeRedisCluster(c)) {
    if (c.isOpen === false) throw notConnected('node-redis cluster');
    const cluster = client as NodeRedisClusterLike;
    return { send: (args, firstKey) => cluster.sendCommand(firstKey, false, args), name: 'node-redis cluster (createCluster)' };
  }
  if (typeof c.sendCommand === 'function' && typeof c.isOpen === 'boolean') {
    if (!c.isOpen) throw notConnected('node-redis client');
    const plain = client as NodeRedisLike;
    return { send: (args) => plain.sendCommand(args), name: 'node-redis client' };
  }
  if (typeof c.call === 'function' && typeof c.status === 'string') {
    if (c.status === 'wait' || c.status === 'end') {
      throw new OnlineNowConfigError(
        'ERR_ONLINE_NOW_REDIS_NOT_CONNECTED',
        `the ioredis client passed to new RedisStore({ client }) is not connected (status "${c.status}"): call \`await client.connect()\` first, or drop lazyConnect.`,
      );
    }
    // ioredis routes by the command's keys itself, on a Cluster too.
    const io = client as IORedisLike;
    const name = (client as { constructor?: { name?: string } }).constructor?.name === 'Cluster' ? 'ioredis Cluster' : 'ioredis client';
    return { send: ([command, ...args]) => io.call(command, ...args), name };
  }
  throw new OnlineNowConfigError(
    'ERR_ONLINE_NOW_REDIS_CLIENT',
    'new RedisStore({ client }) takes a connected node-redis client or cluster (createClient / createCluster from "redis") or an ioredis client (new Redis() / new Cluster()).',
  );
}

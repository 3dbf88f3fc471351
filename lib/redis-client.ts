/**
 * The two Redis clients an Express app already has, reduced to the one thing
 * RedisStore needs: send a raw command. (While the client is disconnected its
 * offline queue holds at most one command of ours: RedisStore never sends a
 * second before the first is answered.)
 * The client is the app's: we never connect, quit or configure it.
 */
import { OnlineNowConfigError } from './validations';

/** node-redis (v4, v5): `createClient()` after `await client.connect()`. */
export interface NodeRedisLike {
  readonly isOpen: boolean;
  sendCommand(args: readonly string[]): Promise<unknown>;
}

/** ioredis: `new Redis(url)`. */
export interface IORedisLike {
  readonly status: string;
  call(command: string, ...args: string[]): Promise<unknown>;
}

export type RedisClientLike = NodeRedisLike | IORedisLike;

export interface RawRedis {
  send(args: readonly string[]): Promise<unknown>;
}

export function adaptClient(client: unknown): RawRedis {
  const nodeRedis = client as Partial<NodeRedisLike> | undefined;
  if (typeof nodeRedis?.sendCommand === 'function' && typeof nodeRedis.isOpen === 'boolean') {
    if (!nodeRedis.isOpen) {
      throw new OnlineNowConfigError(
        'ERR_ONLINE_NOW_REDIS_NOT_CONNECTED',
        'the node-redis client passed to new RedisStore({ client }) is not connected: call `await client.connect()` first.',
      );
    }
    const c = client as NodeRedisLike;
    return { send: (args) => c.sendCommand(args) };
  }
  const ioredis = client as Partial<IORedisLike> | undefined;
  if (typeof ioredis?.call === 'function' && typeof ioredis.status === 'string') {
    if (ioredis.status === 'wait' || ioredis.status === 'end') {
      throw new OnlineNowConfigError(
        'ERR_ONLINE_NOW_REDIS_NOT_CONNECTED',
        `the ioredis client passed to new RedisStore({ client }) is not connected (status "${ioredis.status}"): call \`await client.connect()\` first, or drop lazyConnect.`,
      );
    }
    const c = client as IORedisLike;
    return { send: ([command, ...args]) => c.call(command, ...args) };
  }
  throw new OnlineNowConfigError(
    'ERR_ONLINE_NOW_REDIS_CLIENT',
    'new RedisStore({ client }) takes a connected node-redis client (createClient from "redis") or an ioredis client (new Redis()).',
  );
}

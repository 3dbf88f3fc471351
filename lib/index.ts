/**
 * express-online-now: who is online now, for server-rendered Express sites.
 */
export { createOnlineTracker, OnlineTracker } from './tracker';
export { MemoryStore, type MemoryStoreOptions } from './stores/memory';
export { RedisStore, type RedisStoreOptions } from './stores/redis/store';
export type { IORedisLike, NodeRedisClusterLike, NodeRedisLike, RedisClientLike } from './stores/redis/client';
export { registerNunjucks, registerHandlebars } from './template-helpers';
export { OnlineNowConfigError, type ErrorCode } from './errors';
export type {
  Awaitable,
  DefaultProfile,
  NextFunction,
  OnlineEntry,
  OnlineMiddleware,
  OnlineNowLocals,
  OnlineNowProfile,
  OnlineRequest,
  OnlineResponse,
  OnlineTrackerOptions,
  Profile,
  ProfileValue,
  Scope,
  ScopeView,
  Store,
  StoreConfig,
  StoreReporter,
  StoredEntry,
  TimeAgoOptions,
  UserId,
} from './types';

/**
 * express-online-now: who is online now, for server-rendered Express sites.
 */
export { createOnlineTracker, OnlineTracker } from './tracker';
export { MemoryStore, type MemoryStoreOptions } from './memory-store';
export { RedisStore, type RedisStoreOptions } from './redis-store';
export type { IORedisLike, NodeRedisLike, RedisClientLike } from './redis-client';
export { registerNunjucks, registerHandlebars } from './template-helpers';
export { OnlineNowConfigError } from './validations';
export type {
  Awaitable,
  DefaultProfile,
  NextFunction,
  OnlineEntry,
  OnlineMiddleware,
  OnlineNowLocals,
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
  UserId,
} from './types';

/**
 * express-online-now: who is online now, for server-rendered Express sites.
 */
export { createOnlineTracker, OnlineTracker, type LookupOptions, type OnlineCounts } from './tracker';
export { MemoryStore, type MemoryStoreOptions } from './stores/memory';
export { RedisStore, type RedisStoreOptions } from './stores/redis/store';
export type { IORedisLike, NodeRedisClusterLike, NodeRedisLike, RedisClientLike } from './stores/redis/client';
export { registerNunjucks, registerHandlebars } from './template-helpers';
export { OnlineNowConfigError, type ErrorCode } from './errors';
export type { RoomEntry, RoomLimits, RoomLock, RoomMode, RoomTouch, RoomView } from './rooms';
export type { HereOptions, HereView } from './here';
export type { ClientOptions } from './client-routes';
export type { EventsOptions } from './events';
export type {
  Awaitable,
  DefaultProfile,
  NextFunction,
  OnlineEntry,
  OnlineMiddleware,
  OnlineNowLocals,
  OnlineNowProfile,
  OnlineRequest,
  OnlineRecord,
  OnlineResponse,
  OnlineTrackerOptions,
  Profile,
  ProfileValue,
  Scope,
  ScopeView,
  Store,
  StoreConfig,
  StoreHooks,
  StoreReporter,
  StoredEntry,
  TimeAgoOptions,
  UserId,
  Viewer,
} from './types';

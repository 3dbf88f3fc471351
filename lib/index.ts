/**
 * express-online-now: who is online now, for server-rendered Express sites.
 */
export { createOnlineTracker, OnlineTracker, type LookupOptions, type OnlineCounts } from './tracker';
export { MemoryStore, type MemoryStoreOptions } from './stores/memory';
export { RedisStore, type RedisStoreOptions } from './stores/redis/store';
export type { IORedisLike, NodeRedisClusterLike, NodeRedisLike, RedisClientLike } from './stores/redis/client';
export { registerNunjucks, registerHandlebars } from './templates/helpers';
export { OnlineNowConfigError, type ErrorCode } from './core/errors';
export type { OnlineStatus } from './core/status';

export type { HereOptions, HereView, RoomPayload } from './live/here';
export type { LockRefusal, RequireLockOptions } from './live/locks';
export type { ClientOptions } from './live/client-routes';
export type { EventsOptions } from './live/events';
export type { HistogramCounts, MeterLike, ObservationsLike, StatusCounts, SyncStats } from './core/metrics';
export type {
  Awaitable,
  DefaultProfile,
  NextFunction,
  OnlineEntry,
  OnlineMiddleware,
  OnlineNowLocals,
  OnlineNowProfile,
  OnlineRecord,
  OnlineRequest,
  OnlineResponse,
  OfflineReason,
  OnlineTrackerOptions,
  Profile,
  ProfileValue,
  RoomEntry,
  RoomEvent,
  RoomLeaveReason,
  RoomLimits,
  RoomLock,
  RoomLockState,
  RoomMode,
  RoomRequest,
  RoomSaved,
  RoomTouch,
  RoomView,
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
} from './core/types';

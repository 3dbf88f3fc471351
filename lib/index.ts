/**
 * express-online-now: who is online now, for server-rendered Express sites.
 */
export { createOnlineTracker, OnlineTracker } from './tracker';
export { MemoryStore, type MemoryStoreOptions } from './memory-store';
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
  StoredEntry,
  UserId,
} from './types';

/**
 * Every error code the package uses, with what it means. The table of codes in
 * docs/error-codes.md is checked against this list by a test, so the two cannot drift.
 */
export const ERROR_CODES = {
  ERR_ONLINE_NOW_OPTIONS: 'the options argument is not an object',
  ERR_ONLINE_NOW_UNKNOWN_OPTION: 'an option name the function does not know (a typo)',
  ERR_ONLINE_NOW_THRESHOLD: '`threshold` is not a positive number of seconds or a duration string such as "15m"',
  ERR_ONLINE_NOW_MAX: '`max` is not a whole number ≥ 0',
  ERR_ONLINE_NOW_STORE: '`store` is not a presence store',
  ERR_ONLINE_NOW_GETUSER: '`getUser` is not a function',
  ERR_ONLINE_NOW_GETID: '`getId` is not a function',
  ERR_ONLINE_NOW_PROFILE: '`profile` is not a function',
  ERR_ONLINE_NOW_SKIP: '`skip` is not a function',
  ERR_ONLINE_NOW_ONERROR: '`onError` is not a function',
  ERR_ONLINE_NOW_TRACKGUESTS: '`trackGuests` is not a boolean',
  ERR_ONLINE_NOW_LOCALE: '`locale` is not a language tag (a string) or a function',
  ERR_ONLINE_NOW_HIDDEN: '`hidden` is not a function',
  ERR_ONLINE_NOW_CANSEEHIDDEN: '`canSeeHidden` is not a function',
  ERR_ONLINE_NOW_ISBOT: '`isBot` is not a function',
  ERR_ONLINE_NOW_ONSEEN: '`onSeen` is not a function',
  ERR_ONLINE_NOW_SEENINTERVAL: '`seenInterval` is not a positive number of seconds or a duration string such as "1m"',
  ERR_ONLINE_NOW_ONRECORD: '`onRecord` is not a function',
  ERR_ONLINE_NOW_ONONLINE: '`onOnline` is not a function',
  ERR_ONLINE_NOW_ONOFFLINE: '`onOffline` is not a function',
  ERR_ONLINE_NOW_ONSTATUS: '`onStatus` is not a function',
  ERR_ONLINE_NOW_ONROOM: '`onRoom` is not a function',
  ERR_ONLINE_NOW_TRANSITIONS: '`onOnline`, `onOffline`, `onStatus` or `onRoom` given with a store that does not decide transitions (a custom store without `transitions`)',
  ERR_ONLINE_NOW_INITIALRECORD: '`initialRecord` is not `{ count, at }` with a whole count and a valid date',
  ERR_ONLINE_NOW_MAXTRACKED: "a store's `maxTracked` is not a whole number ≥ 1",
  ERR_ONLINE_NOW_NOW: "a store's `now` is not a function",
  ERR_ONLINE_NOW_SYNCINTERVAL: '`syncInterval` is not a positive number of ms, or not well under the threshold',
  ERR_ONLINE_NOW_PREFIX: '`prefix` is empty, not a string, or has braces',
  ERR_ONLINE_NOW_REDIS_CLIENT: '`client` is not a node-redis or ioredis client',
  ERR_ONLINE_NOW_REDIS_NOT_CONNECTED: 'the Redis client is not connected yet',
  ERR_ONLINE_NOW_STORE_SHARED: 'one store given to trackers with different thresholds (or seenInterval values)',
  ERR_ONLINE_NOW_STORE_UNUSED: 'a store used before it was given to a tracker',
  ERR_ONLINE_NOW_PREFIX_SHARED: 'reported: another tracker uses the same Redis prefix with another threshold, or with other transition hooks',
  ERR_ONLINE_NOW_REDIS_EVICTED: 'reported: Redis evicted presence keys (an evicting maxmemory-policy)',
  ERR_ONLINE_NOW_REDIS_WRONGTYPE: 'reported: a key under the prefix held another type (not written by this package); it was renamed aside',
  ERR_ONLINE_NOW_REDIS_HUNG: 'reported: the Redis client left a command unanswered for 10 s (a cluster client after a failover); it was given up',
  ERR_ONLINE_NOW_REDIS_STALE: 'reported: no sync with Redis for a while; pages withhold users known only from other processes',
  ERR_ONLINE_NOW_NUNJUCKS: '`registerNunjucks` was not given a Nunjucks Environment',
  ERR_ONLINE_NOW_HANDLEBARS: '`registerHandlebars` was not given Handlebars or express-handlebars',
  ERR_ONLINE_NOW_METER: '`observe()` was not given an OpenTelemetry Meter with batch callbacks',
  ERR_ONLINE_NOW_STATUS: '`status` is not true, false or a function of the user, or `idleAfter`/`awayAfter`/`onStatus` is given without it',
  ERR_ONLINE_NOW_IDLEAFTER: '`idleAfter` is not a positive number of seconds or a duration string such as "5m"',
  ERR_ONLINE_NOW_AWAYAFTER: '`awayAfter` is not a duration longer than `idleAfter`',
  ERR_ONLINE_NOW_ROOMTHRESHOLD: '`roomThreshold` is not a positive number of seconds or a duration string such as "30s"',
  ERR_ONLINE_NOW_DURATION: 'a duration is implausible: over a day (`threshold: 900000`, milliseconds where seconds are meant) or under 10 ms; the message names the slip',
  ERR_ONLINE_NOW_MAXROOMS: '`maxRooms` is not a whole number ≥ 1',
  ERR_ONLINE_NOW_MAXROOMMEMBERS: '`maxRoomMembers` is not a whole number ≥ 1',
  ERR_ONLINE_NOW_ROOM: '`here()` was given a room that is not a name (1–200 characters, no control characters) or a mode other than viewing / editing',
  ERR_ONLINE_NOW_NO_ROOMS: 'the store has no rooms (a custom store without `roomTouch`): `here()` and room events need a built-in store',
  ERR_ONLINE_NOW_INTERVAL: '`events({ interval })` is not a positive number of ms',
  ERR_ONLINE_NOW_MAXCONNECTIONS: '`events({ maxConnections })` is not a whole number ≥ 1',
  ERR_ONLINE_NOW_MAXAGE: '`events({ maxAge })` is not a positive number of ms',
  ERR_ONLINE_NOW_MAXGUESTCONNECTIONS: '`events({ maxGuestConnections })` is not a whole number ≥ 0',
  ERR_ONLINE_NOW_MAXPERUSER: '`events({ maxPerUser })` is not a whole number ≥ 1',
  ERR_ONLINE_NOW_MAXPERADDRESS: '`events({ maxPerAddress })` is not a whole number ≥ 1',
  ERR_ONLINE_NOW_AUTHORIZE: '`events({ authorize })` is not a function',
  ERR_ONLINE_NOW_SECRET: '`secret` is not a non-empty string, or is missing where `client()` runs on a RedisStore',
  ERR_ONLINE_NOW_PATH: '`client({ path })` is not a path starting with "/"',
  ERR_ONLINE_NOW_PUBLICHIDDENCOUNT: '`publicHiddenCount` is not a boolean',
  ERR_ONLINE_NOW_ORIGINS: '`client({ origins })` or `events({ origins })` is not a list of origins such as "https://example.com"',
  ERR_ONLINE_NOW_CANLISTLOCKS: '`events({ canListLocks })` is not a function',
  ERR_ONLINE_NOW_CANRELEASELOCKS: '`canReleaseLocks` is not a function',
  ERR_ONLINE_NOW_ASKWAIT: '`askWait` is not a positive number of seconds or a duration string such as "1m"',
  ERR_ONLINE_NOW_ASKGRACE: '`askGrace` is not a positive number of seconds or a duration string such as "10s"',
  ERR_ONLINE_NOW_ASKHANDOVER: '`askHandOver` is not a function',
  ERR_ONLINE_NOW_ONREFUSED: '`requireLock(room, { onRefused })` is not a function',
  ERR_ONLINE_NOW_PROXY_HOST: 'reported: live requests refused as cross-site where a proxy seems to have rewritten Host (the message names the fix)',
} as const;

export type ErrorCode = keyof typeof ERROR_CODES;

/** A configuration mistake. `code` is stable (see ERROR_CODES); the message names the option and the fix. */
export class OnlineNowConfigError extends TypeError {
  readonly code: ErrorCode;

  constructor(code: ErrorCode, message: string) {
    super(`express-online-now: ${message}`);
    this.name = 'OnlineNowConfigError';
    this.code = code;
  }
}

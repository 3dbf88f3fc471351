/**
 * Configuration checks. Every mistake is caught when the tracker or store is
 * created, never on a request, with a message that says what to write instead.
 */
import type { Clock } from './clock';
import { OnlineNowConfigError, type ErrorCode } from './errors';
import type { OnlineRecord } from './types';

/** An option whose own error code is in ERROR_CODES: a name without one does not compile. */
type CodedOption<N extends string> = `ERR_ONLINE_NOW_${Uppercase<N>}` extends ErrorCode ? N : never;

function codeOf<N extends string>(name: CodedOption<N>): ErrorCode {
  return `ERR_ONLINE_NOW_${name.toUpperCase()}` as ErrorCode;
}

/** The names of an options type, listed once and checked against the type at compile time. */
export function optionNames<T>(names: Record<keyof T, true>): readonly string[] {
  return Object.keys(names);
}

function describe(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value);
  if (typeof value === 'function') return 'a function';
  if (Array.isArray(value)) return 'an array';
  if (value === null) return 'null';
  if (typeof value === 'object') return `an object (${Object.prototype.toString.call(value)})`;
  if (typeof value === 'number' || typeof value === 'boolean' || typeof value === 'bigint') return String(value);
  return typeof value === 'symbol' ? value.toString() : 'undefined';
}

/** An options argument: an object (or nothing) with only known keys. */
export function checkOptions(where: string, options: unknown, known: readonly string[]): asserts options is object | undefined {
  if (options !== undefined && (typeof options !== 'object' || options === null || Array.isArray(options))) {
    throw new OnlineNowConfigError('ERR_ONLINE_NOW_OPTIONS', `${where} takes an options object, got ${describe(options)}.`);
  }
  for (const key of Object.keys(options ?? {})) {
    if (!known.includes(key)) {
      throw new OnlineNowConfigError(
        'ERR_ONLINE_NOW_UNKNOWN_OPTION',
        `${where} has no option "${key}". Known options: ${known.join(', ')}.`,
      );
    }
  }
}

/** A positive, finite number; `example` shows the fix in the message. */
export function positiveNumber<N extends string>(name: CodedOption<N>, value: unknown, example: string): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) {
    throw new OnlineNowConfigError(
      codeOf(name),
      `option "${name}" must be a positive, finite number, got ${describe(value)}. For example: { ${name}: ${example} }.`,
    );
  }
  return value;
}

/** A whole number no smaller than `min`. */
export function integerAtLeast<N extends string>(name: CodedOption<N>, value: unknown, min: number, example: string): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min) {
    throw new OnlineNowConfigError(
      codeOf(name),
      `option "${name}" must be a whole number of at least ${min}, got ${describe(value)}. For example: { ${name}: ${example} }.`,
    );
  }
  return value;
}

export function optionalFunction<N extends string>(name: CodedOption<N>, value: unknown, signature: string): void {
  if (value !== undefined && typeof value !== 'function') {
    throw new OnlineNowConfigError(codeOf(name), `option "${name}" must be a function ${signature}, got ${describe(value)}.`);
  }
}

export function optionalBoolean<N extends string>(name: CodedOption<N>, value: unknown): void {
  if (value !== undefined && typeof value !== 'boolean') {
    throw new OnlineNowConfigError(codeOf(name), `option "${name}" must be true or false, got ${describe(value)}.`);
  }
}

/** A BCP 47 tag that Intl knows, or a function. */
export function optionalLocale(value: unknown): void {
  if (value === undefined || typeof value === 'function') return;
  let known = false;
  try {
    known = typeof value === 'string' && Intl.getCanonicalLocales(value).length === 1;
  } catch {
    known = false;
  }
  if (!known) {
    throw new OnlineNowConfigError(
      'ERR_ONLINE_NOW_LOCALE',
      `option "locale" must be a language tag such as "en" or "de-CH", or (req) => tag, got ${describe(value)}.`,
    );
  }
}

/** `initialRecord`: a count of at least 0 and a valid time, as `onRecord` gave it (or as JSON made of it). */
export function optionalRecord(value: unknown): OnlineRecord | undefined {
  if (value === undefined) return undefined;
  const { count, at } = (typeof value === 'object' && value !== null ? value : {}) as { count?: unknown; at?: unknown };
  const date = at instanceof Date || typeof at === 'number' || typeof at === 'string' ? new Date(at) : undefined;
  if (typeof count !== 'number' || !Number.isSafeInteger(count) || count < 0 || date === undefined || Number.isNaN(date.getTime())) {
    throw new OnlineNowConfigError(
      'ERR_ONLINE_NOW_INITIALRECORD',
      `option "initialRecord" must be { count, at } with a whole count ≥ 0 and a date (a Date, ms, or an ISO string), as onRecord gave it; got ${describe(value)}.`,
    );
  }
  return { count, at: date };
}

/** The options every store shares: `maxTracked` and `now`. */
export function storeBasics(options: { maxTracked?: unknown; now?: unknown }, defaultMaxTracked: number): { maxTracked: number; now: Clock | undefined } {
  optionalFunction('now', options.now, '() => milliseconds on a monotonic clock');
  return {
    maxTracked: integerAtLeast('maxTracked', options.maxTracked ?? defaultMaxTracked, 1, String(defaultMaxTracked)),
    now: options.now as Clock | undefined,
  };
}

const storeMethods = ['init', 'touch', 'forget', 'view', 'close'] as const;

/** A store must have every method of the Store interface; a lookalike fails here, not on a request. */
export function checkStore(value: unknown): void {
  const missing =
    typeof value === 'object' && value !== null
      ? storeMethods.filter((m) => typeof (value as Record<string, unknown>)[m] !== 'function')
      : storeMethods;
  if (missing.length > 0) {
    throw new OnlineNowConfigError(
      'ERR_ONLINE_NOW_STORE',
      `option "store" must be a store such as new MemoryStore() or new RedisStore({ client }), got ${describe(value)}` +
        (typeof value === 'object' && value !== null ? ` (missing ${missing.join(', ')})` : '') +
        '. A session store (connect-redis, …) or a Redis client is not a presence store: wrap the client in new RedisStore({ client }).',
    );
  }
}

/** A secret for signing tab ids: a non-empty string (the app's session secret will do). */
export function optionalSecret(value: unknown): string | undefined {
  if (value !== undefined && (typeof value !== 'string' || value === '')) {
    throw new OnlineNowConfigError('ERR_ONLINE_NOW_SECRET', `option "secret" must be a non-empty string (your session secret will do), got ${describe(value)}.`);
  }
  return value;
}

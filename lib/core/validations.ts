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
      throw new OnlineNowConfigError('ERR_ONLINE_NOW_UNKNOWN_OPTION', `${where} has no option "${key}". Known options: ${known.join(', ')}.`);
    }
  }
}

/** A positive, finite number; `example` shows the fix in the message. */
export function positiveNumber<N extends string>(name: CodedOption<N>, value: unknown, example: string): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) {
    throw new OnlineNowConfigError(codeOf(name), `option "${name}" must be a positive, finite number, got ${describe(value)}. For example: { ${name}: ${example} }.`);
  }
  return value;
}

/** Milliseconds per unit of a duration string. */
const UNIT_MS = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const;
const DURATION_TEXT = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)$/;
/** What no presence duration plausibly is: past a day, the number was likely meant as ms; under 10 ms, as seconds. */
const MAX_DURATION_MS = UNIT_MS.d;
const MIN_DURATION_MS = 10;

/** 900000 ms as "15m", 250 as "250ms": the shortest exact string form, for messages. */
function durationText(ms: number): string {
  for (const unit of ['d', 'h', 'm', 's'] as const) if (ms >= UNIT_MS[unit] && ms % UNIT_MS[unit] === 0) return `'${ms / UNIT_MS[unit]}${unit}'`;
  return `'${ms}ms'`;
}

/**
 * A duration option: a number in the option's documented `unit`, or a string
 * with its own unit ('15m', '250ms', '1.5s'). Returns milliseconds. A value
 * over a day or under 10 ms is refused, naming the likely slip (ms given where
 * seconds are meant, or the reverse), since a silent 10-day threshold is worse than an error.
 */
export function duration<N extends string>(name: CodedOption<N>, value: unknown, unit: 's' | 'ms', example: number): number {
  const text = typeof value === 'string' ? DURATION_TEXT.exec(value.trim()) : null;
  const ms = text !== null ? Number(text[1]) * UNIT_MS[text[2] as keyof typeof UNIT_MS] : typeof value === 'number' ? value * UNIT_MS[unit] : NaN;
  const words = unit === 's' ? 'seconds' : 'milliseconds';
  if (!Number.isFinite(ms) || ms <= 0) {
    throw new OnlineNowConfigError(
      codeOf(name),
      `option "${name}" must be a positive number of ${words} or a string with a unit such as ${durationText(example * UNIT_MS[unit])}, got ${describe(value)}. ` +
        `For example: { ${name}: ${example} }.`,
    );
  }
  if (ms > MAX_DURATION_MS || ms < MIN_DURATION_MS) {
    const tooLong = ms > MAX_DURATION_MS;
    let slip = '';
    if (typeof value === 'number' && tooLong && unit === 's') slip = ` It looks like milliseconds; ${name} is in seconds: use ${value / 1000} or ${durationText(value)}.`;
    if (typeof value === 'number' && !tooLong && unit === 'ms') slip = ` It looks like seconds; ${name} is in milliseconds: use ${value * 1000} or ${durationText(value * 1000)}.`;
    throw new OnlineNowConfigError(
      'ERR_ONLINE_NOW_DURATION',
      `option "${name}": ${describe(value)}${typeof value === 'number' ? ` ${words}` : ''} is ${tooLong ? `${(ms / MAX_DURATION_MS).toFixed(1)} days, over a day` : `${ms} ms, under 10 ms`}.${slip || ` Durations must be between 10 ms and a day; for example { ${name}: ${example} }.`}`,
    );
  }
  return ms;
}

/** A whole number no smaller than `min`. */
export function integerAtLeast<N extends string>(name: CodedOption<N>, value: unknown, min: number, example: string): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min) {
    throw new OnlineNowConfigError(codeOf(name), `option "${name}" must be a whole number of at least ${min}, got ${describe(value)}. For example: { ${name}: ${example} }.`);
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
    throw new OnlineNowConfigError('ERR_ONLINE_NOW_LOCALE', `option "locale" must be a language tag such as "en" or "de-CH", or (req) => tag, got ${describe(value)}.`);
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
  const missing = typeof value === 'object' && value !== null ? storeMethods.filter((m) => typeof (value as Record<string, unknown>)[m] !== 'function') : storeMethods;
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

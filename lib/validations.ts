/**
 * Configuration checks. Every mistake is caught when the tracker or store is
 * created, never on a request, with a message that says what to write instead.
 */

/** A configuration mistake. `code` is stable; the message names the option and the fix. */
export class OnlineNowConfigError extends TypeError {
  readonly code: string;

  constructor(code: string, message: string) {
    super(`express-online-now: ${message}`);
    this.name = 'OnlineNowConfigError';
    this.code = code;
  }
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

export function rejectUnknownKeys(where: string, options: object, known: readonly string[]): void {
  for (const key of Object.keys(options)) {
    if (!known.includes(key)) {
      throw new OnlineNowConfigError(
        'ERR_ONLINE_NOW_UNKNOWN_OPTION',
        `${where} has no option "${key}". Known options: ${known.join(', ')}.`,
      );
    }
  }
}

export function checkOptionsObject(where: string, options: unknown): asserts options is object | undefined {
  if (options !== undefined && (typeof options !== 'object' || options === null || Array.isArray(options))) {
    throw new OnlineNowConfigError(
      'ERR_ONLINE_NOW_OPTIONS',
      `${where} takes an options object, got ${describe(options)}.`,
    );
  }
}

/** A positive, finite number; `example` shows the fix in the message. */
export function positiveNumber(name: string, value: unknown, example: string): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) {
    throw new OnlineNowConfigError(
      `ERR_ONLINE_NOW_${name.toUpperCase()}`,
      `option "${name}" must be a positive, finite number, got ${describe(value)}. For example: { ${name}: ${example} }.`,
    );
  }
  return value;
}

/** A whole number no smaller than `min`. */
export function integerAtLeast(name: string, value: unknown, min: number, example: string): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min) {
    throw new OnlineNowConfigError(
      `ERR_ONLINE_NOW_${name.toUpperCase()}`,
      `option "${name}" must be a whole number of at least ${min}, got ${describe(value)}. For example: { ${name}: ${example} }.`,
    );
  }
  return value;
}

export function optionalFunction(name: string, value: unknown, signature: string): void {
  if (value !== undefined && typeof value !== 'function') {
    throw new OnlineNowConfigError(
      `ERR_ONLINE_NOW_${name.toUpperCase()}`,
      `option "${name}" must be a function ${signature}, got ${describe(value)}.`,
    );
  }
}

export function optionalBoolean(name: string, value: unknown): void {
  if (value !== undefined && typeof value !== 'boolean') {
    throw new OnlineNowConfigError(
      `ERR_ONLINE_NOW_${name.toUpperCase()}`,
      `option "${name}" must be true or false, got ${describe(value)}.`,
    );
  }
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

/**
 * Who a request belongs to, and how users are keyed and described in a store.
 */
import { createHash, randomBytes } from 'node:crypto';
import { ACTIVE_FIELD, STATUS_FIELD, keepStatusFields } from './status';
import type { OnlineRequest, OnlineResponse, Profile, ProfileValue, Viewer } from './types';

/** Longest string id tracked; longer ones are ignored (they are not ids, and would bloat the store). */
const MAX_ID_LENGTH = 256;
/** Profile bounds: at most this many fields, each string at most this long. */
const MAX_PROFILE_FIELDS = 16;
export const MAX_PROFILE_STRING = 256;
export const MAX_FIELD_NAME = 64;
/** And all of a profile's names and strings together at most this many characters: a bound on memory per user whatever the profile. */
const MAX_PROFILE_CHARS = 512;

/**
 * The store key of an id: `42` and `"42"` share one. Anything that is not a
 * finite number or a non-empty string of sane length gives `undefined`: not tracked.
 */
export function keyOf(id: unknown): string | undefined {
  if (typeof id === 'number') return Number.isFinite(id) ? String(id) : undefined;
  if (typeof id === 'string') return id.length > 0 && id.length <= MAX_ID_LENGTH ? id : undefined;
  return undefined;
}

export function defaultGetUser(req: OnlineRequest): unknown {
  const session = req.session as { user?: unknown } | undefined;
  return session?.user ?? req.user;
}

export function defaultGetId(user: unknown): unknown {
  return typeof user === 'object' && user !== null ? (user as { id?: unknown }).id : user;
}

const defaultProfileFields = ['username', 'name', 'displayName'] as const;

/** Shared by every user whose profile is empty: one object, not one per user. */
export const EMPTY_PROFILE: Profile = Object.freeze({});

/**
 * Invisible mode travels with the profile, as its `hidden` field: so it follows
 * the user's latest request (latest event wins) in every store and process, and
 * staff see it on the entry. The field is the package's: an app's own `hidden` is dropped.
 */
export const HIDDEN_MARK: Profile = Object.freeze({ hidden: true });

export function withHidden(profile: Profile): Profile {
  return Object.assign({}, profile, HIDDEN_MARK);
}

export function isHidden(profile: Profile): boolean {
  return profile.hidden === true;
}

/** A profile read back from a store (JSON any process may have written): bounded again, its hidden mark and status fields kept. */
export function readProfile(parsed: unknown): Profile {
  const profile = boundedProfile(parsed);
  if (typeof parsed !== 'object' || parsed === null) return profile;
  const withStatus = keepStatusFields(parsed as Record<string, unknown>, profile);
  return (parsed as { hidden?: unknown }).hidden === true ? withHidden(withStatus) : withStatus;
}

/**
 * The one rule of who `viewer` may see: staff see everyone and a user sees
 * themself; others see no hidden user (it reads exactly as offline), nor,
 * while a store is out of touch, one it knows of only from others, last seen
 * at or before `withheldUpTo` (they may have hidden since).
 */
export function mayShow(viewer: Viewer, isSelf: boolean, hidden: boolean, lastSeen: number): boolean {
  return viewer.seesHidden || isSelf || (!hidden && lastSeen > (viewer.withheldUpTo ?? -Infinity));
}

/**
 * `username`, `name` and `displayName`, when the user object has them: never the
 * whole object. Bounded by the one rule every profile follows (boundedProfile),
 * so every process that reads it back from a shared store keeps the same fields.
 */
export function defaultProfile(user: unknown): Profile {
  let picked: Record<string, string> | undefined;
  if (typeof user === 'object' && user !== null) {
    for (const field of defaultProfileFields) {
      const value = (user as Record<string, unknown>)[field];
      if (typeof value === 'string') (picked ??= {})[field] = value;
    }
  }
  return picked === undefined ? EMPTY_PROFILE : boundedProfile(picked);
}

/** Same fields, same values. Runs on every request: no allocation. */
export function sameProfile(a: Profile, b: Profile): boolean {
  if (a === b) return true;
  let fields = 0;
  for (const k in a) {
    if (a[k] !== b[k]) return false;
    fields++;
  }
  for (const _k in b) fields--;
  return fields === 0;
}

function boundedValue(value: unknown): ProfileValue | undefined {
  switch (typeof value) {
    case 'string':
      return value.length > MAX_PROFILE_STRING ? value.slice(0, MAX_PROFILE_STRING) : value;
    case 'number':
      return Number.isFinite(value) ? value : undefined;
    case 'boolean':
      return value;
    default:
      return value === null ? null : undefined;
  }
}

/**
 * Reduces whatever `profile()` returned to a small, flat, JSON-safe record, so a
 * careless profile cannot put a session, a Buffer or a megabyte into every page.
 * `id`, `lastSeen`, `hidden`, `lastActive` and `status` belong to the entry and are dropped here.
 */
export function boundedProfile(raw: unknown): Profile {
  if (typeof raw !== 'object' || raw === null) return EMPTY_PROFILE;
  const profile: Record<string, ProfileValue> = {};
  let fields = 0;
  let chars = 0;
  for (const name of Object.keys(raw)) {
    if (fields === MAX_PROFILE_FIELDS) break;
    if (name === 'id' || name === 'lastSeen' || name === 'hidden' || name === ACTIVE_FIELD || name === STATUS_FIELD || name === '__proto__' || name.length > MAX_FIELD_NAME)
      continue;
    const value = boundedValue((raw as Record<string, unknown>)[name]);
    if (value === undefined) continue;
    chars += name.length + (typeof value === 'string' ? value.length : 8);
    // Fields past the budget are dropped whole: a cut-off name is worse than none.
    if (chars > MAX_PROFILE_CHARS) break;
    profile[name] = value;
    fields++;
  }
  return profile;
}

/**
 * Guests carry a cookie of the package's own: a random id that says "the same
 * browser as before", nothing else. So a signed-out visitor counts from their
 * first request, whatever the session settings (express-session's
 * `saveUninitialized: false` gives them no session cookie), and no session id
 * or address is ever needed.
 */
export const GUEST_COOKIE = 'online_now_guest';
/** 16 random bytes, base64url: 22 characters. Anything else in the cookie is ignored, and replaced. */
const GUEST_ID = /(?:^|;)\s*online_now_guest=([\w-]{22})\s*(?:;|$)/;

/**
 * A guest's key: a hash of their cookie's id, so the id itself (what tells one
 * browser from another) is never stored or shown.
 */
export function guestKey(guestId: string): string {
  return createHash('sha256').update(guestId).digest('base64url').slice(0, 22);
}

/**
 * The guest id of the request's cookie; without a valid one, a new id, sent
 * back as the cookie (for the browser's lifetime, HttpOnly, SameSite=Lax, and
 * Secure on HTTPS).
 */
export function guestIdOf(req: OnlineRequest, res: OnlineResponse): string {
  const cookie = req.headers.cookie;
  const sent = typeof cookie === 'string' ? GUEST_ID.exec(cookie)?.[1] : undefined;
  if (sent !== undefined) return sent;
  const id = randomBytes(16).toString('base64url');
  if (res.setHeader !== undefined && res.headersSent !== true) {
    const line = `${GUEST_COOKIE}=${id}; Path=/; HttpOnly; SameSite=Lax${req.secure === true ? '; Secure' : ''}`;
    // Next to any cookie set before us (express-session adds its own later, on writeHead).
    const before = res.getHeader?.('set-cookie');
    const lines: string[] = Array.isArray(before) ? before.map(String) : typeof before === 'string' ? [before] : [];
    res.setHeader('set-cookie', [...lines, line]);
  }
  return id;
}

/**
 * How a user's id and profile are stored in Redis: the profile's JSON, after a
 * "#" when the id is a number (the key already holds its digits, so the id is
 * left out of the JSON to save Redis some bytes a user).
 */
import { MAX_FIELD_NAME, MAX_PROFILE_STRING, keyOf, readProfile } from '../../core/identity';
import type { RawCodec } from '../../core/presence-index';
import type { Profile, ProfileValue, UserId } from '../../core/types';

/** A profile as stored; none (`undefined`, a bare-id touch) is '' or just the id's '#'. */
export function encodeProfile(id: UserId, profile: Profile | undefined): string {
  const json = profile === undefined ? '' : JSON.stringify(profile);
  return typeof id === 'number' ? `#${json}` : json;
}

/** The profile part of a profiles hash value, "µs|profile": the time is the profile's own (latest write wins). */
export function storedProfile(value: string): string {
  return value.slice(value.indexOf('|') + 1);
}

/** A profile read back from Redis is bounded again: whoever wrote it, it reaches our pages. */
export function decodeProfile(key: string, stored: string | null): { id: UserId; profile: Profile } {
  return { id: idOf(key, stored), profile: profileOf(stored) };
}

/** The id a stored profile was written for: the key's number when it was a number. */
export function idOf(key: string, stored: string | null): UserId {
  if (stored?.startsWith('#') !== true) return key;
  const asNumber = Number(key);
  return keyOf(asNumber) === key ? asNumber : key;
}

/** Field names a profile never carries (see boundedProfile). */
const NOT_PROFILE_FIELDS = new Set(['id', 'lastSeen', 'hidden', 'lastActive', 'status', '__proto__']);
/** The field name `plainProfile` last found valid: the next profile most likely has it too. */
let knownName: string | undefined;

/** Whether `text` from `from` to `to` can stand between JSON's quotes as it is: no quote, backslash or control character. */
function literal(text: string, from: number, to: number): boolean {
  for (let i = from; i < to; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x20 || c === 0x22 || c === 0x5c) return false;
  }
  return true;
}

/**
 * The profile of a stored profile ("#" and JSON, or JSON, as `storedProfile`
 * gives it) when it is one plain string field, `{"username":"ann"}`, as this
 * package writes the usual profile; undefined for any other form. The same as
 * `profileOf` gives, read without JSON.parse: a first read of a million users takes them so.
 */
export function plainProfile(stored: string): Profile | undefined {
  const at = stored.charCodeAt(0) === 0x23 /* # */ ? 1 : 0;
  const end = stored.length - 2;
  if (!stored.startsWith('{"', at) || !stored.endsWith('"}') || end < at + 2) return undefined;
  const from = at + 2;
  let name = knownName;
  if (name === undefined || !stored.startsWith(name, from) || !stored.startsWith('":"', from + name.length)) {
    const colon = stored.indexOf('":"', from);
    if (colon === -1 || colon - from > MAX_FIELD_NAME || !literal(stored, from, colon)) return undefined;
    name = stored.slice(from, colon);
    if (NOT_PROFILE_FIELDS.has(name)) return undefined;
    knownName = name;
  }
  const start = from + name.length + 3;
  if (start > end || end - start > MAX_PROFILE_STRING || !literal(stored, start, end)) return undefined;
  const profile: Record<string, ProfileValue> = {};
  profile[name] = stored.slice(start, end);
  return profile;
}

/** The profile of a stored profile ("#" and JSON, or JSON). */
export function profileOf(stored: string | null): Profile {
  let parsed: unknown;
  try {
    parsed = stored === null ? undefined : JSON.parse(stored.startsWith('#') ? stored.slice(1) : stored);
  } catch {
    parsed = undefined;
  }
  return readProfile(parsed);
}

/** Only the key "hidden" can be followed by :true, right after `{` or `,`, in the JSON of a flat object. */
const HIDDEN_IN_JSON = /[{,]"hidden":true[,}]/;

/** Profiles as a first read keeps them ("µs|#json"), for a replica's users index. */
export const STORED_PROFILES: RawCodec = {
  decode: (stored) => profileOf(storedProfile(stored)),
  isHidden: (stored) => HIDDEN_IN_JSON.test(stored),
};

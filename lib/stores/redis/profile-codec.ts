/**
 * How a user's id and profile are stored in Redis: the profile's JSON, after a
 * "#" when the id is a number (the key already holds its digits, so the id is
 * left out of the JSON to save Redis some bytes a user).
 */
import { boundedProfile, keyOf, withHidden } from '../../identity';
import type { Profile, UserId } from '../../types';

export function encodeProfile(id: UserId, profile: Profile): string {
  const json = JSON.stringify(profile);
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

/** The profile of a stored profile ("#" and JSON, or JSON). */
export function profileOf(stored: string | null): Profile {
  let parsed: unknown;
  try {
    parsed = stored === null ? undefined : JSON.parse(stored.startsWith('#') ? stored.slice(1) : stored);
  } catch {
    parsed = undefined;
  }
  const profile = boundedProfile(parsed);
  return (parsed as { hidden?: unknown } | undefined)?.hidden === true ? withHidden(profile) : profile;
}

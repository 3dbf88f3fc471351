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

/** A profile read back from Redis is bounded again: whoever wrote it, it reaches our pages. */
export function decodeProfile(key: string, stored: string | null): { id: UserId; profile: Profile } {
  const numeric = stored?.startsWith('#') === true;
  let parsed: unknown;
  try {
    parsed = stored === null ? undefined : JSON.parse(numeric ? stored.slice(1) : stored);
  } catch {
    parsed = undefined;
  }
  const asNumber = Number(key);
  const profile = boundedProfile(parsed);
  return {
    id: numeric && keyOf(asNumber) === key ? asNumber : key,
    profile: (parsed as { hidden?: unknown } | undefined)?.hidden === true ? withHidden(profile) : profile,
  };
}

/**
 * Status: `active`, `idle`, `away` (or the app's own state, such as "busy")
 * for a user online, `offline` otherwise. It follows the time of the user's last
 * activity — a page request, or a heartbeat from a visible tab that saw input —
 * which travels with the profile as `lastActive`, as invisible mode travels as
 * `hidden`: so the latest event wins in every store and process, and a status
 * costs a request no store call of its own. The state is read from that time at
 * each read, so it moves from active to idle to away as time passes, and back
 * to active at the next activity, with no event needed.
 */

/** What status reads of a profile (./types' Profile, named here structurally: types.ts imports this module). */
type Profile = Readonly<Record<string, string | number | boolean | null>>;

/** What status reads of a view (./types' ScopeView). */
interface ProfileLookup {
  lastSeen(key: string): number | null;
  profile?(key: string): Profile | null;
}

/** A user's status as a viewer may see it: a hidden user is `offline` to those who may not see them. */
export type OnlineStatus = 'active' | 'idle' | 'away' | 'offline' | (string & {});

/** The profile fields that carry a status (the package's, as `hidden` is: an app's own are dropped). */
export const ACTIVE_FIELD = 'lastActive';
export const STATUS_FIELD = 'status';

/** The longest app state kept: a word or two ("busy", "on leave"), never a message. */
export const MAX_MANUAL_STATUS = 32;

/** Activity is stamped to this much at most (less when `idleAfter` is short): a profile changes once a step, not on every request. */
const MAX_STEP_MS = 60_000;
/** A browser signals input once a minute at most (less when `idleAfter` is short, so a user at work never reads idle). */
const MAX_SIGNAL_MS = 60_000;

export class Statuses {
  /** Activity times are rounded down to this: a status is early by up to one step. */
  readonly stepMs: number;
  /** How often a browser may say its page saw input: activity is then at most this (plus a step) old while someone works. */
  readonly signalMs: number;

  constructor(
    readonly idleMs: number,
    readonly awayMs: number,
    /** Now, on the clock a store's dates are on (`Store.dateNow`). */
    readonly dateNow: () => number,
  ) {
    this.stepMs = Math.max(1, Math.min(MAX_STEP_MS, Math.floor(idleMs / 10)));
    this.signalMs = Math.max(1, Math.min(MAX_SIGNAL_MS, Math.floor(idleMs / 4)));
  }

  /** The activity time a touch made now carries. */
  stamp(now: number = this.dateNow()): number {
    return now - (now % this.stepMs);
  }

  /** The status of an online user with this profile, last seen at `lastSeen` (an activity time past it counts as then). */
  of(profile: Profile, lastSeen: number, now: number = this.dateNow()): OnlineStatus {
    const manual = profile[STATUS_FIELD];
    if (typeof manual === 'string') return manual;
    const quiet = now - activeAt(profile, lastSeen);
    return quiet < this.idleMs ? 'active' : quiet < this.awayMs ? 'idle' : 'away';
  }

  /** When time alone next changes the status `of` reads at `at` (active → idle → away); Infinity when only activity can. */
  nextChange(profile: Profile, lastSeen: number, at: number): number {
    if (typeof profile[STATUS_FIELD] === 'string') return Infinity;
    const active = activeAt(profile, lastSeen);
    return at - active < this.idleMs ? active + this.idleMs : at - active < this.awayMs ? active + this.awayMs : Infinity;
  }
}

/**
 * When a user last did something, as `profile` says: its activity time, unless
 * that is no time at all or later than they were seen (written by something
 * that is not this package), or missing (a user touched by id alone): then when they were seen.
 */
export function activeAt(profile: Profile, lastSeen: number): number {
  const at = profile[ACTIVE_FIELD];
  return typeof at === 'number' && at >= 0 && at <= lastSeen ? at : lastSeen;
}

/** `profile` with its activity time (and the app's state, when it has one): what a touch made with status on carries. */
export function withActivity(profile: Profile, at: number, manual: string | undefined): Profile {
  const stamped: Record<string, Profile[string]> = Object.assign({}, profile);
  stamped[ACTIVE_FIELD] = at;
  if (manual !== undefined) stamped[STATUS_FIELD] = manual;
  return stamped;
}

/** The app's state as a status: a short non-empty string, or none ("offline" is none: appearing offline is invisible mode's, `hidden`). */
export function manualStatus(value: unknown): string | undefined {
  return typeof value === 'string' && value !== '' && value !== 'offline' ? value.slice(0, MAX_MANUAL_STATUS) : undefined;
}

/** The latest time a Date holds, in ms. */
const MAX_TIME = 8.64e15;

/** The status fields of a profile read back from a store, kept (bounded) on the profile read. */
export function keepStatusFields(parsed: Readonly<Record<string, unknown>>, profile: Profile): Profile {
  const at = parsed[ACTIVE_FIELD];
  const manual = manualStatus(parsed[STATUS_FIELD]);
  // Another process wrote it, or something that is not one of ours: a time a Date can hold, or nothing.
  if (typeof at !== 'number' || !Number.isInteger(at) || at < 0 || at > MAX_TIME) return profile;
  return withActivity(profile, at, manual);
}

/**
 * The status of a key in a view, for whoever the view is for: `offline` when
 * the view shows the key offline (a hidden user, to those who may not see
 * them); without status on (or a store without profiles), `active` when online.
 */
export function statusIn(view: ProfileLookup, key: string, statuses: Statuses | undefined): OnlineStatus {
  const seen = view.lastSeen(key);
  if (seen === null) return 'offline';
  const profile = statuses === undefined ? null : (view.profile?.(key) ?? null);
  return profile === null ? 'active' : (statuses as Statuses).of(profile, seen);
}

/** `profile` without its status fields: rooms show who is there, and a member's status is their site-wide one (`onlineStatus`). */
export function withoutStatus(profile: Profile): Profile {
  if (!(ACTIVE_FIELD in profile) && !(STATUS_FIELD in profile)) return profile;
  const rest: Record<string, Profile[string]> = Object.assign({}, profile);
  delete rest[ACTIVE_FIELD];
  delete rest[STATUS_FIELD];
  return rest;
}

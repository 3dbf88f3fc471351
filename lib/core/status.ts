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

  /** The status of an online user with this profile. */
  of(profile: Profile, now: number = this.dateNow()): OnlineStatus {
    const manual = profile[STATUS_FIELD];
    if (typeof manual === 'string') return manual;
    const at = profile[ACTIVE_FIELD];
    if (typeof at !== 'number') return 'active';
    const quiet = now - at;
    return quiet < this.idleMs ? 'active' : quiet < this.awayMs ? 'idle' : 'away';
  }
}

/** `profile` with its activity time (and the app's state, when it has one): what a touch made with status on carries. */
export function withActivity(profile: Profile, at: number, manual: string | undefined): Profile {
  const stamped: Record<string, Profile[string]> = Object.assign({}, profile);
  stamped[ACTIVE_FIELD] = at;
  if (manual !== undefined) stamped[STATUS_FIELD] = manual;
  return stamped;
}

/** The app's state as a status: a short non-empty string, or none. */
export function manualStatus(value: unknown): string | undefined {
  return typeof value === 'string' && value !== '' ? value.slice(0, MAX_MANUAL_STATUS) : undefined;
}

/** The status fields of a profile read back from a store, kept (bounded) on the profile read. */
export function keepStatusFields(parsed: Readonly<Record<string, unknown>>, profile: Profile): Profile {
  const at = parsed[ACTIVE_FIELD];
  const manual = manualStatus(parsed[STATUS_FIELD]);
  if (typeof at !== 'number' || !Number.isFinite(at)) return profile;
  return withActivity(profile, at, manual);
}

/**
 * The status of a key in a view, for whoever the view is for: `offline` when
 * the view shows the key offline (a hidden user, to those who may not see
 * them); without status on (or a store without profiles), `active` when online.
 */
export function statusIn(view: ProfileLookup, key: string, statuses: Statuses | undefined): OnlineStatus {
  if (view.lastSeen(key) === null) return 'offline';
  const profile = statuses === undefined ? null : (view.profile?.(key) ?? null);
  return profile === null ? 'active' : (statuses as Statuses).of(profile);
}

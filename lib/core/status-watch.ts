/**
 * `onStatus` in one process (MemoryStore): each online user's status as last
 * told, and when time alone will next change it (active → idle at their
 * activity plus idleAfter, idle → away at plus awayAfter). State only: the
 * store feeds it comings online, touches, goings and the clock, and tells what
 * it returns. RedisStore decides the same in its sync script.
 */
import type { OnlineStatus, Statuses } from './status';
import type { Profile } from './types';

/** A status time or activity gave a user: `at` is the moment it changed, not when it was found. */
export interface StatusChange {
  readonly key: string;
  readonly status: OnlineStatus;
  readonly at: number;
}

/** What the watch reads of an online user: their profile (activity time, app state), when they were last seen, and when they go offline unless seen again. */
export interface Watched {
  readonly profile: Profile;
  readonly lastSeen: number;
  readonly until: number;
}

interface Told {
  status: OnlineStatus;
  /** The user as of their last touch: time changes their status from it. */
  user: Watched;
  /** When time alone changes it next (Infinity: only activity can). */
  due: number;
  /** The step `due` is filed under, or NaN. */
  step: number;
}

const NONE: readonly StatusChange[] = [];

export class StatusWatch {
  private readonly told = new Map<string, Told>();
  /** Keys by the step (of `Statuses.stepMs`) in which their status next changes: a sweep visits only the steps that are due. */
  private readonly steps = new Map<number, Set<string>>();
  /** The earliest step filed (or a little earlier): a read before it finds nothing due without walking the steps. */
  private earliest = Infinity;

  constructor(private readonly statuses: Statuses) {}

  /** A user came online at `at`: their status then is the one `onOnline`'s entry shows, not a change. */
  online(key: string, user: Watched, at: number): void {
    const told: Told = { status: this.statuses.of(user.profile, user.lastSeen, at), user, due: Infinity, step: NaN };
    const before = this.told.get(key);
    if (before !== undefined) this.unfile(key, before);
    this.told.set(key, told);
    this.file(key, told, this.statuses.nextChange(user.profile, user.lastSeen, at));
  }

  /**
   * A touch at `at` of a user online, now `user`: the changes time made since
   * the last one (none found by a sweep yet), then the one the touch makes.
   * A user online from before `onStatus` was is watched from here, with no change.
   */
  touched(key: string, user: Watched, at: number): readonly StatusChange[] {
    const told = this.told.get(key);
    if (told === undefined) {
      this.online(key, user, at);
      return NONE;
    }
    const changes = this.catchUp(key, told, at);
    const status = this.statuses.of(user.profile, user.lastSeen, at);
    if (status !== told.status) changes.push({ key, status, at });
    told.status = status;
    told.user = user;
    const due = this.statuses.nextChange(user.profile, user.lastSeen, at);
    // Most touches leave the activity step, so the due time, as it was.
    if (due !== told.due) {
      this.unfile(key, told);
      this.file(key, told, due);
    }
    return changes;
  }

  /** The user goes offline at `at`: the changes time made before it, to tell before `onOffline`; then nothing more. */
  offline(key: string, at: number): readonly StatusChange[] {
    const told = this.told.get(key);
    if (told === undefined) return NONE;
    const changes = this.catchUp(key, told, at);
    this.unfile(key, told);
    this.told.delete(key);
    return changes;
  }

  /** The changes time made by `now`, each at its moment, in order per user (idle, then away, when a sweep comes late). */
  due(now: number): readonly StatusChange[] {
    if (now < this.earliest) return NONE;
    this.earliest = Infinity;
    let out: StatusChange[] | undefined;
    for (const [step, keys] of this.steps) {
      if (step > now) {
        this.earliest = Math.min(this.earliest, step);
        continue;
      }
      for (const key of keys) {
        const told = this.told.get(key) as Told;
        const changes = this.catchUp(key, told, now);
        if (changes.length > 0) (out ??= []).push(...changes);
        // Filed again at its next change, in a later step (none past their going offline: that tells the rest).
        this.unfile(key, told);
        if (told.due > now) this.file(key, told, told.due);
      }
    }
    return out ?? NONE;
  }

  /** Walks `told` through the changes time made before `upto` (and before the user goes offline), each told at its moment. */
  private catchUp(key: string, told: Told, upto: number): StatusChange[] {
    const changes: StatusChange[] = [];
    const { profile, lastSeen, until } = told.user;
    while (told.due <= upto && told.due < until) {
      const status = this.statuses.of(profile, lastSeen, told.due);
      if (status !== told.status) changes.push({ key, status, at: told.due });
      told.status = status;
      told.due = this.statuses.nextChange(profile, lastSeen, told.due);
    }
    return changes;
  }

  private file(key: string, told: Told, due: number): void {
    told.due = due;
    if (due === Infinity) return;
    const stepMs = this.statuses.stepMs;
    told.step = Math.ceil(due / stepMs) * stepMs;
    this.earliest = Math.min(this.earliest, told.step);
    const keys = this.steps.get(told.step);
    if (keys === undefined) this.steps.set(told.step, new Set([key]));
    else keys.add(key);
  }

  private unfile(key: string, told: Told): void {
    if (Number.isNaN(told.step)) return;
    const keys = this.steps.get(told.step);
    keys?.delete(key);
    if (keys?.size === 0) this.steps.delete(told.step);
    told.step = NaN;
  }
}

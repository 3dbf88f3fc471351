/**
 * `onRoom` in one process: what was told of each room (who is in it, who
 * holds its lock) and when time next changes that. State only: a store feeds
 * it a room's presence (`RoomIndex.presence`) after each write to the room and
 * at each moment a tab's window ends, and tells the changes it returns.
 * RedisStore decides the same in its sync script (../stores/redis/room-script.ts).
 *
 * Rules, the same in both:
 * - `join` and `leave` alternate per room and user; `lock` and `unlock` per room.
 * - In one check, in this order: the lock lost, those who left, those who came, the lock taken.
 * - A room first met with people in it (occupied before the hook attached, or
 *   whose state was lost) takes them as they are, untold, except whoever a touch
 *   brought in just now; from then on their leaving and the lock's changes are told.
 * - Dates never go back within a room (a late write is judged when the last check was).
 */
import { ListedEntry } from './presence-index';
import type { Profile, RoomEvent, RoomLeaveReason, UserId } from './types';

/** One person in a room, as their latest tab there has them. Times on the store's time base. */
export interface RoomMember {
  readonly key: string;
  readonly id: UserId;
  readonly profile: Profile;
  readonly lastSeen: number;
}

/** A room at one moment, as `onRoom` sees it: no viewer, nobody withheld. */
export interface RoomPresence {
  readonly members: ReadonlyMap<string, RoomMember>;
  readonly holder: RoomMember | undefined;
  /** When the earliest window of a live tab ends (Infinity: none). */
  readonly next: number;
}

export interface RoomChange {
  readonly type: RoomEvent['type'];
  readonly room: string;
  readonly member: RoomMember;
  readonly at: number;
  readonly why?: RoomLeaveReason;
}

interface Told {
  readonly members: ReadonlyMap<string, RoomMember>;
  readonly holder: RoomMember | undefined;
  readonly at: number;
  readonly due: number;
}

const NOBODY: ReadonlySet<string> = new Set();
const NO_REASONS: ReadonlyMap<string, RoomLeaveReason> = new Map();

export class RoomWatch {
  private readonly told = new Map<string, Told>();
  /** No room is due before this (a read that finds nothing due costs one comparison). */
  private earliest = Infinity;

  /** Something was told of the room (or it was taken as it was): else its first check adopts who is there. */
  knows(room: string): boolean {
    return this.told.has(room);
  }

  /**
   * The room's presence at `at` against what was told: the changes to tell.
   * `arrived`: users a touch brought in now (they had no live tab there before
   * it). `why`: how those who leave now left (default: their windows ended).
   */
  check(room: string, at: number, presence: RoomPresence, arrived: ReadonlySet<string> = NOBODY, why: ReadonlyMap<string, RoomLeaveReason> = NO_REASONS): RoomChange[] {
    const before = this.told.get(room);
    const when = Math.max(at, before?.at ?? -Infinity);
    const changes: RoomChange[] = [];
    const holder = presence.holder;
    const adopted = (key: string): boolean => before === undefined && !arrived.has(key);
    const held = before === undefined ? (holder !== undefined && adopted(holder.key) ? holder : undefined) : before.holder;
    if (held !== undefined && held.key !== holder?.key) changes.push({ type: 'unlock', room, member: presence.members.get(held.key) ?? held, at: when });
    for (const [key, member] of before?.members ?? []) {
      if (!presence.members.has(key)) changes.push({ type: 'leave', room, member, at: when, why: why.get(key) ?? 'expired' });
    }
    for (const [key, member] of presence.members) {
      if (!(before?.members.has(key) ?? false) && !adopted(key)) changes.push({ type: 'join', room, member, at: when });
    }
    if (holder !== undefined && holder.key !== held?.key) changes.push({ type: 'lock', room, member: holder, at: when });
    if (presence.members.size === 0 && holder === undefined && presence.next === Infinity) this.told.delete(room);
    else this.told.set(room, { members: presence.members, holder, at: when, due: presence.next });
    if (presence.next < this.earliest) this.earliest = presence.next;
    return changes;
  }

  /** The room due earliest, if by `now`, and its moment: the store checks it then (and asks again). */
  next(now: number): [string, number] | undefined {
    if (this.earliest > now) return undefined;
    let first: [string, number] | undefined;
    let earliest = Infinity;
    for (const [room, told] of this.told) {
      if (told.due < earliest) {
        earliest = told.due;
        first = [room, told.due];
      }
    }
    this.earliest = earliest;
    return earliest <= now ? first : undefined;
  }
}

/** A change as `onRoom` hears it; `offset` turns the store's times into wall-clock ms. */
export function roomEvent(change: RoomChange, offset: number): RoomEvent {
  const { member } = change;
  const seen = member.lastSeen + offset;
  const user = new ListedEntry(member.id, member.profile, () => seen);
  const at = new Date(change.at + offset);
  if (change.type === 'leave') return Object.freeze({ type: 'leave', room: change.room, user, at, why: change.why ?? 'expired' });
  return Object.freeze({ type: change.type, room: change.room, user, at });
}

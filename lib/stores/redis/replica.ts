/**
 * What one attachment of a RedisStore holds (the state, as `state.ex` is
 * Phoenix.Tracker's): its name in the protocol, a full replica of presence
 * (the same indexes the memory store uses) and the rules that merge what
 * Redis says into it, its cursor in the change feed, the touches it has not
 * sent, and the reports it owes an acknowledgement. A store attached again
 * gets a new one whole, and the old one is retired: work still running for it
 * (a first read) stops where it is, and nothing of it leaks into the new one.
 */
import { randomBytes } from 'node:crypto';
import { PresenceIndex, type IndexClock, type TimedTouch } from '../../core/presence-index';
import { RoomIndex } from '../../core/room-index';
import type { RoomLimits, StoredEntry } from '../../core/types';
import { boundedSet, perScope, type PerScope } from './collections';
import type { Outbox } from './outbox';
import { STORED_PROFILES, decodeProfile, encodeProfile, idOf, plainProfile, storedProfile } from './profile-codec';
import { KEY, syncKeys, type KeyTime, type ScopeNo, type SyncReply, type TouchWrite, type TransitionRow } from './sync-script';

/** Rooms' tabs travel as a fourth scope. */
export const ROOMS: ScopeNo = 3;
const SCOPES = [0, 1, 2, 3] as const;

/** Users one read of a new replica's first load takes (a ZRANGEBYSCORE and an HMGET, a few ms of Redis each). */
const SNAPSHOT_CHUNK = 20_000;
/** Keys of a chunk applied between two looks at the network (about 1 ms). */
const APPLY_SLICE = 1000;
/** Profiles parsed per tick after the first read (about 1 ms). */
const DECODE_SLICE = 2000;

/**
 * A key to send, whether its profile goes too (it does unless every touch since the last sync was a bare id),
 * and whether it is a write-back (which carries the time this process last reported the user).
 */
export type PendingTouch = [ScopeNo, string, boolean, boolean?];

export interface ReplicaSettings {
  readonly prefix: string;
  readonly thresholdMs: number;
  readonly maxTracked: number;
  readonly maxBots: number;
  readonly syncInterval: number;
  readonly roomLimits: RoomLimits;
  readonly clock: IndexClock;
  /** Now on the shared time base (Redis's clock, estimated). */
  readonly now: () => number;
  /** Where the replica's logouts wait for Redis. */
  readonly outbox: Outbox;
}

/** What a first read asks Redis: one plain command at a time. */
export type Command = (args: string[]) => Promise<unknown>;

/** Part of a first read (see `load`). */
interface SnapshotChunk {
  readonly keys: readonly string[];
  /** Scores as Redis sends them: µs, as text. */
  readonly scores: readonly string[];
  /** Users' stored profiles ("µs|json"), by position; none for guests and bots. */
  readonly profiles: readonly (string | null)[];
  /** Where the next chunk starts (score, keys already read at it, every key at that score at once), when there is one. */
  readonly next: [string, Set<string>, boolean] | undefined;
}

/** A WITHSCORES reply as [member, score, member, score, …]: RESP2 sends it flat, RESP3 as pairs. */
function flatPairs(reply: unknown): string[] {
  const rows = reply as (string | [string, string | number])[];
  if (rows.length === 0 || !Array.isArray(rows[0])) return rows as string[];
  const flat: string[] = [];
  for (const [member, score] of rows as [string, string | number][]) flat.push(member, String(score));
  return flat;
}

export class Replica {
  /** This attachment's name in the protocol: reports and record raises are assigned to it. */
  readonly token = randomBytes(8).toString('hex');
  readonly keys: readonly string[];
  readonly indexes: PerScope<PresenceIndex>;
  readonly rooms: RoomIndex;
  /** Keys touched here since the last sync; their time and profile are read from the index when sent. */
  private readonly touched: PerScope<Map<string, boolean>> = perScope(() => new Map<string, boolean>());
  /** Where this replica reads the change feed from. */
  cursor = 0;
  /** Has not read Redis's whole state yet: it does so in large plain reads (`load`), not through the change feed. */
  fresh = true;
  /** Replaced by a newer attachment: work still running for it stops. */
  retired = false;
  /** Has had its first sync (or waited long enough for it): pages read it without waiting. */
  warm = false;
  /** When (shared time base) the last sync reply arrived: long ago, and this replica withholds what others told it. */
  syncedAt = -Infinity;
  /** Reports this process delivered, to acknowledge until a reply confirms it did (and not to deliver twice). */
  readonly acks = new Map<string, number>();
  /** Users Redis told online (transitions on) → when, µs: written back if Redis loses its data, so nobody is told online twice. */
  private readonly told = new Map<string, number>();
  /** Transitions this process delivered (sequence numbers), to acknowledge until a reply confirms it (and not to deliver twice). */
  readonly transitionAcks = new Set<number>();
  /** The record raise delivered last ("count|µs"), and its acknowledgement until a reply confirms it. */
  private raiseDelivered = '';
  recordAck = '';

  constructor(private readonly settings: ReplicaSettings) {
    const { thresholdMs, maxTracked, maxBots, syncInterval, roomLimits, clock } = settings;
    this.keys = syncKeys(settings.prefix, this.token);
    // Arrival order is kept within one sync of time order: an expired user stays counted at most that long.
    this.rooms = new RoomIndex(roomLimits, syncInterval, (key, at) => this.queueRoomForget(key, at));
    this.indexes = [
      new PresenceIndex(thresholdMs, maxTracked, syncInterval, STORED_PROFILES, clock),
      new PresenceIndex(thresholdMs, maxTracked, syncInterval, undefined, clock),
      new PresenceIndex(thresholdMs, maxBots, syncInterval, undefined, clock),
      this.rooms.tabs,
    ];
  }

  private get maxRoomTabs(): number {
    return this.settings.roomLimits.maxRooms * this.settings.roomLimits.maxMembers;
  }

  thresholdOf(s: ScopeNo): number {
    return s === ROOMS ? this.settings.roomLimits.thresholdMs : this.settings.thresholdMs;
  }

  /**
   * A touch here, to send at the next sync. A touch without a profile (a bare
   * id) must not send the profile this replica holds: it may be older than one
   * another process has written (the user hid there a moment ago).
   */
  queueTouch(s: ScopeNo, key: string, withProfile: boolean): void {
    const pending = this.touched[s];
    const queued = pending.get(key);
    const send = withProfile || queued === true;
    // Already queued as it is: the common case of a busy user, left without touching the Map.
    if (queued === send) return;
    boundedSet(pending, key, send, s === ROOMS ? this.maxRoomTabs : this.settings.maxTracked);
  }

  /**
   * A logout (or a tab gone) here: not sent as a touch, and queued in the outbox. Call it before the
   * index forgets the key: a user's logout carries the profile they had here (one still waiting to be
   * sent, if they hid a moment ago; and the one a write-back needs if Redis loses it), or a later bare
   * touch elsewhere would bring them back as Redis last knew them.
   */
  queueForget(s: ScopeNo, key: string, at: number, dropped = false): void {
    // A tab's heartbeat not sent yet goes with its leave: Redis then sees the visit (and tells it, with onRoom).
    const held = s === 0 || (s === ROOMS && this.touched[s].has(key)) ? this.indexes[s].held(key) : undefined;
    this.touched[s].delete(key);
    const profile = held === undefined ? undefined : s === 0 ? encodeProfile(held.id, held.profile) : String(held.profile.t);
    this.settings.outbox.add(s, key, at, held && { profile: profile as string, at: held.at }, dropped);
  }

  /** A tab the rooms index dropped to keep its bounds: its user, if it was their last tab there, is evicted. */
  private queueRoomForget(tabKey: string, at: number): void {
    this.queueForget(ROOMS, tabKey, at, true);
  }

  get touchesQueued(): boolean {
    return this.touched.some((m) => m.size > 0);
  }

  takeTouches(): PendingTouch[] {
    const taken = this.touched.flatMap((m, s) => [...m].map(([key, withProfile]): PendingTouch => [s as ScopeNo, key, withProfile]));
    for (const m of this.touched) m.clear();
    return taken;
  }

  /** Not known to have landed: queued again (writes are idempotent), unless the key has left since. */
  putBack(touches: readonly PendingTouch[]): void {
    for (const [s, key, withProfile] of touches) if (this.indexes[s].has(key)) this.touched[s].set(key, withProfile);
  }

  /** The whole replica, to write back after Redis lost its data; and who it remembers as hidden, some of them in no replica. */
  writeBack(): { touches: PendingTouch[]; marks: KeyTime[] } {
    const touches = this.indexes.flatMap((index, s) => [...index.keys()].map((key): PendingTouch => [s as ScopeNo, key, true, true]));
    const marks = [...this.indexes[0].marked()].map(([key, at]): KeyTime => ({ key, atUs: Math.round(at * 1000) }));
    return { touches, marks };
  }

  /** Each touched key as the index holds it when sent: its latest time and profile. One that left since is not sent. */
  touchWrites(keys: readonly PendingTouch[]): TouchWrite[] {
    const writes: TouchWrite[] = [];
    for (const [s, key, withProfile, writeBack] of keys) {
      const held = this.indexes[s].held(key);
      if (held === undefined) continue;
      let profile = '';
      if (s === 0) profile = encodeProfile(held.id, withProfile ? held.profile : undefined);
      else if (s === ROOMS) profile = String(held.profile.t);
      const reported = s === 0 && writeBack === true ? held.reportedAt : -Infinity;
      const toldUs = s === 0 && writeBack === true ? this.told.get(key) : undefined;
      writes.push({ scope: s, key, atUs: Math.round(held.at * 1000), profile, reportedUs: reported === -Infinity ? undefined : reported * 1000, toldUs });
    }
    return writes;
  }

  /** Applies one reply's changes, under the same latest-event rules as Redis. */
  apply(reply: SyncReply): void {
    const { now, outbox } = this.settings;
    reply.changes.forEach((rows, s) => {
      const index = this.indexes[s];
      const cutoff = now() - this.thresholdOf(s as ScopeNo);
      const touches: TimedTouch[] = [];
      for (const row of rows) {
        if (s === 0 && (row.toldUs !== null || this.told.size > 0)) this.noteTold(index, row.key, row.toldUs, row.seenUs);
        if (row.goneUs !== null) index.forget(row.key, row.goneUs / 1000);
        if (row.seenUs === null) continue;
        const at = row.seenUs / 1000;
        // A logout here that Redis has not had yet beats what Redis saw before it.
        if (at <= cutoff || outbox.beats(s as ScopeNo, row.key, at)) continue;
        if (s === ROOMS) {
          // A tab's record is read (and checked) by the rooms index, which keeps it as text.
          touches.push({ key: row.key, id: row.key, profile: { t: row.profile ?? '' }, at });
          continue;
        }
        // No profile in Redis (a bare-id touch reached it first) says nothing of visibility: what is held stays.
        const { id, profile } = s === 0 && row.profile !== null ? decodeProfile(row.key, row.profile) : { id: row.key, profile: undefined };
        touches.push({ key: row.key, id, profile, at });
      }
      index.merge(touches);
      if (s === ROOMS) this.rooms.noteKeys(touches.map((t) => t.key));
    });
    this.cursor = reply.cursor;
  }

  /**
   * Who Redis says was told online. A user online without it is either waiting for a recovery window to end
   * (same visit: what this replica knew stays) or back after a going this replica did not see (forgotten).
   */
  private noteTold(index: PresenceIndex, key: string, toldUs: number | null, seenUs: number | null): void {
    if (toldUs !== null) return boundedSet(this.told, key, toldUs, this.settings.maxTracked);
    const slot = seenUs === null ? -1 : index.slotOf(key);
    if (slot === -1 || (seenUs as number) / 1000 - index.timeOf(slot) >= this.settings.thresholdMs) this.told.delete(key);
  }

  /** The transitions Redis queued for this process that it has not delivered: to deliver now, each once, in order. */
  transitionsToDeliver(reply: SyncReply): TransitionRow[] {
    const rows: TransitionRow[] = [];
    for (const row of reply.transitions) {
      if (this.transitionAcks.has(row.seq)) continue;
      this.transitionAcks.add(row.seq);
      rows.push(row);
    }
    return rows;
  }

  /** Redis started over: its transitions are numbered afresh, so the numbers acknowledged so far mean nothing. */
  transitionsRestarted(): void {
    this.transitionAcks.clear();
  }

  /** The record raise Redis assigned to this process, when not delivered yet: to deliver now (acknowledged in the next call). */
  raiseToDeliver(reply: SyncReply): [count: number, atMs: number] | undefined {
    if (reply.raise === '') return undefined;
    this.recordAck = reply.raise;
    if (reply.raise === this.raiseDelivered) return undefined;
    this.raiseDelivered = reply.raise;
    const [count, atUs] = reply.raise.split('|').map(Number);
    return [count, atUs / 1000];
  }

  /** The reports Redis assigned to this process that it has not delivered: their entries for `onSeen`, each once. */
  reportsToDeliver(reply: SyncReply): StoredEntry[] {
    const users = this.indexes[0];
    const entries: StoredEntry[] = [];
    for (const { key, atUs } of reply.reports) {
      if (this.acks.get(key) === atUs) continue;
      // Remembered for a write-back: Redis, if it loses its data, is told this user was reported.
      const entry = users.reportSeen(key, atUs / 1000);
      if (entry !== undefined) entries.push(entry);
      boundedSet(this.acks, key, atUs, this.settings.maxTracked);
    }
    return entries;
  }

  /** What a reply acknowledged has landed: delivered reports are not sent again. */
  acknowledged(acks: readonly KeyTime[], recordAck: string, transitionAcks: readonly number[]): void {
    for (const { key, atUs } of acks) if (this.acks.get(key) === atUs) this.acks.delete(key);
    for (const seq of transitionAcks) this.transitionAcks.delete(seq);
    if (this.recordAck === recordAck) this.recordAck = '';
  }

  /**
   * The first read: every scope's online keys, oldest first, in chunks of plain
   * ZRANGEBYSCORE + HMGET (the change feed's script reads ~7 µs of Redis a key,
   * these well under one). Changes made meanwhile are in the feed after the
   * version read first, and are read again from there: applying one twice is
   * harmless, as the latest event wins. `epoch`: the one this process's last
   * reply named (a different one in Redis: the feed reads it all).
   */
  async load(command: Command, epoch: string | undefined, transitions: boolean, chunkSize: number = SNAPSHOT_CHUNK): Promise<void> {
    const [current, version] = (await command(['HMGET', this.keys[KEY.meta], 'epoch', 'version'])) as [string | null, string | null];
    if (current === null || current !== epoch) return; // Redis has no presence yet, or lost it just now
    for (const s of SCOPES) {
      let pending = this.chunk(command, s, `(${Math.round((this.settings.now() - this.thresholdOf(s)) * 1000)}`, new Set(), false, chunkSize);
      for (;;) {
        const { keys, scores, profiles, next } = await pending;
        if (this.retired) return;
        // The next chunk is read while this one is applied. Settled, it is awaited below; failed, it must not
        // be an unhandled rejection meanwhile; and it is waited for before leaving early, or the next sync
        // would find our command still out.
        let settled: Promise<unknown> | undefined;
        if (next !== undefined) {
          pending = this.chunk(command, s, ...next, chunkSize);
          settled = pending.catch(() => undefined);
        }
        for (let from = 0; from < keys.length; from += APPLY_SLICE) {
          // Between slices the next chunk's replies come in and its HMGET goes out: Redis reads while this process applies.
          if (from > 0) await new Promise(setImmediate);
          if (this.retired) {
            await settled;
            return;
          }
          this.applyLoaded(s, keys, scores, profiles, from, Math.min(from + APPLY_SLICE, keys.length));
        }
        if (next === undefined) break;
      }
    }
    // Who hid, past their presence: a bare-id touch here must bring them back hidden, as Redis would.
    const since = Math.round((this.settings.now() - this.settings.clock.markTtlMs) * 1000);
    const marks = flatPairs(await command(['ZRANGEBYSCORE', this.keys[KEY.marks], `(${since}`, '+inf', 'WITHSCORES']));
    for (let i = 0; i < marks.length; i += 2) this.indexes[0].mark(marks[i], Number(marks[i + 1]) / 1000);
    // Who was told online: written back if Redis loses its data (by rank; one missed while users leave is told by another process's write-back).
    for (let from = 0; transitions; from += chunkSize) {
      const told = flatPairs(await command(['ZRANGE', this.keys[KEY.announced], String(from), String(from + chunkSize - 1), 'WITHSCORES']));
      for (let i = 0; i < told.length; i += 2) boundedSet(this.told, told[i], Number(told[i + 1]), this.settings.maxTracked);
      if (told.length < 2 * chunkSize || this.retired) break;
    }
    this.cursor = Math.max(this.cursor, Number(version ?? 0));
  }

  /** Keys `from` to `to` of a first read's chunk, into the index. */
  private applyLoaded(s: ScopeNo, keys: readonly string[], scores: readonly string[], profiles: readonly (string | null)[], from: number, to: number): void {
    const touches: TimedTouch[] = [];
    for (let i = from; i < to; i++) {
      const key = keys[i];
      const at = Number(scores[i]) / 1000;
      if (this.settings.outbox.beats(s, key, at)) continue;
      const stored = profiles[i];
      if (s === ROOMS) {
        touches.push({ key, id: key, profile: { t: storedProfile(stored ?? '') }, at });
      } else if (typeof stored === 'string') {
        // The usual one-field profile is taken at once (the index keeps its value off the heap). Any other is
        // kept as stored ("µs|#json": a substring would keep the whole reply's text alive), parsed when first needed.
        const text = storedProfile(stored);
        const plain = plainProfile(text);
        touches.push({ key, id: idOf(key, text), profile: plain, raw: plain === undefined ? stored : undefined, at });
      } else {
        touches.push({ key, id: key, profile: undefined, at });
      }
    }
    // Oldest first, so applied one by one; as one batch when pages touched users meanwhile (then these are late).
    this.indexes[s].merge(touches);
    if (s === ROOMS) this.rooms.noteKeys(keys.slice(from, to));
  }

  /**
   * Up to `size` keys of scope `s` seen after `min` (a score, exclusive when it
   * starts with "("), oldest first, with their profiles (users and tabs), and
   * where the next chunk starts: from the last score, inclusive, less the keys
   * already read at it, so keys that share a time across two chunks are all
   * read. A chunk that is all one time is followed by every key at that time
   * at once (`whole`): no offset, which writes meanwhile could shift.
   */
  private async chunk(command: Command, s: ScopeNo, min: string, atMin: Set<string>, whole: boolean, size: number): Promise<SnapshotChunk> {
    const seen = this.keys[KEY.scope[s]];
    const rows = flatPairs(await command(whole ? ['ZRANGEBYSCORE', seen, min, min, 'WITHSCORES'] : ['ZRANGEBYSCORE', seen, min, '+inf', 'WITHSCORES', 'LIMIT', '0', String(size)]));
    const keys: string[] = [];
    const scores: string[] = [];
    for (let i = 0; i < rows.length; i += 2) {
      if (atMin.has(rows[i])) continue;
      keys.push(rows[i]);
      scores.push(rows[i + 1]);
    }
    let next: [string, Set<string>, boolean] | undefined;
    if (whole) {
      next = [`(${min}`, new Set(), false];
    } else if (rows.length === 2 * size) {
      const last = rows[rows.length - 1];
      const ties = new Set(last === min ? atMin : []);
      for (let i = rows.length - 2; i >= 0 && rows[i + 1] === last; i -= 2) ties.add(rows[i]);
      next = [last, ties, last === min];
    }
    const profiles = (s === 0 || s === ROOMS) && keys.length > 0 ? ((await command(['HMGET', this.keys[KEY.scope[s] + 1], ...keys])) as (string | null)[]) : [];
    return { keys, scores, profiles, next };
  }

  /** The profiles the first read kept as text are parsed a slice at a time, between requests: a loaded replica shrinks to its usual size. */
  decodeLoaded(): void {
    const index = this.indexes[0];
    const step = (): void => {
      if (!this.retired && index.decodeLoaded(DECODE_SLICE)) setImmediate(step);
    };
    setImmediate(step);
  }
}

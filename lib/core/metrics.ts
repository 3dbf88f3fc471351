/**
 * Presence as Prometheus metrics (text exposition format 0.0.4). Labels are a
 * small fixed set, never a user, a room or a process id, so a scrape's series
 * stay the same however many users come and go.
 */

/** Sync durations, seconds: a sync is a round trip of one script call, a few ms on a LAN. */
export const SYNC_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5] as const;

/** A histogram as Prometheus keeps one: cumulative counts per bucket bound (`le`), the sum and the number of observations. */
export interface HistogramCounts {
  readonly bounds: readonly number[];
  readonly counts: readonly number[];
  readonly sum: number;
  readonly count: number;
}

export class Histogram implements HistogramCounts {
  readonly counts: number[];
  sum = 0;
  count = 0;

  constructor(readonly bounds: readonly number[]) {
    this.counts = bounds.map(() => 0);
  }

  observe(value: number): void {
    for (let i = 0; i < this.bounds.length; i++) if (value <= this.bounds[i]) this.counts[i]++;
    this.sum += value;
    this.count++;
  }
}

/** What a store shared between processes says of its syncs (Store.syncStats). */
export interface SyncStats {
  readonly durations: HistogramCounts;
  readonly failures: number;
  /** Seconds since the last sync that Redis answered; Infinity before the first. */
  readonly ageSeconds: number;
  /**
   * How far any date this process gave may be from the shared clock, in ms: half
   * the slowest round trip it took the clock from (Infinity before the first sync).
   */
  readonly clockErrorMs?: number;
}

/** Users online and not hidden, by status: an app's own states (`status: (user) => state`) count as `other`. */
export interface StatusCounts {
  readonly active: number;
  readonly idle: number;
  readonly away: number;
  readonly other: number;
}

export interface MetricsSnapshot {
  readonly members: number;
  readonly hidden: number;
  readonly guests: number;
  readonly bots: number;
  /** With `status` on: members online (not hidden) by status. */
  readonly statuses: StatusCounts | undefined;
  readonly record: number;
  readonly recordAtSeconds: number;
  readonly streams: number;
  /** Rooms' editing locks held now, and asks for them not yet answered; undefined for a store without rooms. */
  readonly locks: { readonly held: number; readonly asks: number } | undefined;
  readonly sync: SyncStats | undefined;
}

function number(value: number): string {
  if (value === Infinity) return '+Inf';
  return Number.isFinite(value) ? String(value) : 'NaN';
}

function metric(lines: string[], name: string, type: 'gauge' | 'counter' | 'histogram', help: string): void {
  lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
}

/** Online now by kind: the one label's fixed set of values. */
function byKind(s: MetricsSnapshot): [string, number][] {
  return [
    ['member', s.members],
    ['hidden', s.hidden],
    ['guest', s.guests],
    ['bot', s.bots],
  ];
}

/** Members by status, with status on: the label's fixed set of values (none with status off). */
function byStatusOf({ statuses: c }: MetricsSnapshot): [string, number][] {
  if (c === undefined) return [];
  return [
    ['active', c.active],
    ['idle', c.idle],
    ['away', c.away],
    ['other', c.other],
  ];
}

export function prometheusText(s: MetricsSnapshot): string {
  const lines: string[] = [];
  metric(lines, 'online_now_users', 'gauge', 'Online now, by kind: members others may see, members in invisible mode, guests, kinds of crawlers.');
  for (const [kind, value] of byKind(s)) lines.push(`online_now_users{kind="${kind}"} ${value}`);
  if (s.statuses !== undefined) {
    metric(lines, 'online_now_users_by_status', 'gauge', "Members online and not hidden, by status: active, idle, away; an app's own states as other.");
    for (const [status, value] of byStatusOf(s)) lines.push(`online_now_users_by_status{status="${status}"} ${value}`);
  }
  metric(lines, 'online_now_record', 'gauge', 'Most members and guests ever online at once.');
  lines.push(`online_now_record ${s.record}`);
  metric(lines, 'online_now_record_timestamp_seconds', 'gauge', 'When the record was set (Unix time).');
  lines.push(`online_now_record_timestamp_seconds ${s.recordAtSeconds}`);
  metric(lines, 'online_now_event_streams', 'gauge', "Live update streams (Server-Sent Events) this process's events() handlers hold.");
  lines.push(`online_now_event_streams ${s.streams}`);
  if (s.locks !== undefined) {
    metric(lines, 'online_now_room_locks', 'gauge', "Rooms whose editing lock someone holds now (here(), mode 'editing').");
    lines.push(`online_now_room_locks ${s.locks.held}`);
    metric(lines, 'online_now_room_lock_asks', 'gauge', 'Asks to hand a room’s lock over that its holder has not answered yet.');
    lines.push(`online_now_room_lock_asks ${s.locks.asks}`);
  }
  if (s.sync !== undefined) {
    const { durations, failures, ageSeconds } = s.sync;
    metric(lines, 'online_now_sync_duration_seconds', 'histogram', 'Time a sync with Redis took, answered ones.');
    durations.bounds.forEach((le, i) => lines.push(`online_now_sync_duration_seconds_bucket{le="${le}"} ${durations.counts[i]}`));
    lines.push(`online_now_sync_duration_seconds_bucket{le="+Inf"} ${durations.count}`);
    lines.push(`online_now_sync_duration_seconds_sum ${number(durations.sum)}`, `online_now_sync_duration_seconds_count ${durations.count}`);
    metric(lines, 'online_now_sync_failures_total', 'counter', 'Syncs with Redis that failed (no answer in time, an error).');
    lines.push(`online_now_sync_failures_total ${failures}`);
    metric(lines, 'online_now_sync_age_seconds', 'gauge', "Seconds since Redis last answered this process's sync: how stale what it shows from other processes may be.");
    lines.push(`online_now_sync_age_seconds ${number(ageSeconds)}`);
  }
  return `${lines.join('\n')}\n`;
}

type Attributes = Record<string, string>;
/** What a batch callback is given (OpenTelemetry's BatchObservableResult). */
export interface ObservationsLike {
  observe(observable: object, value: number, attributes?: Attributes): void;
}
type BatchCallback = (result: ObservationsLike) => Promise<void>;

/**
 * The part of an OpenTelemetry `Meter` (@opentelemetry/api) that `observe()`
 * uses, typed here: the package needs no OpenTelemetry at all unless the app
 * has its own (tested with @opentelemetry/api 1.9).
 */
export interface MeterLike {
  createObservableGauge(name: string, options?: { description?: string; unit?: string }): object;
  createObservableCounter(name: string, options?: { description?: string; unit?: string }): object;
  addBatchObservableCallback(callback: BatchCallback, observables: object[]): void;
  removeBatchObservableCallback(callback: BatchCallback, observables: object[]): void;
}

/**
 * The same figures as prometheusText, as OpenTelemetry observable instruments,
 * read once per collection (one snapshot for all of them). The sync histogram
 * is left out: an asynchronous instrument cannot report one. Returns a function that stops it.
 */
export function observeMetrics(meter: MeterLike, snapshot: () => Promise<MetricsSnapshot>): () => void {
  const gauge = (name: string, description: string, unit: string): object => meter.createObservableGauge(name, { description, unit });
  const users = gauge('online_now.users', 'Online now, by kind (member, hidden, guest, bot).', '{user}');
  const byStatus = gauge('online_now.users.status', "Members online and not hidden, by status (active, idle, away; an app's own states as other).", '{user}');
  const record = gauge('online_now.record', 'Most members and guests ever online at once.', '{user}');
  const recordAt = gauge('online_now.record.timestamp', 'When the record was set (Unix time).', 's');
  const streams = gauge('online_now.event_streams', "Live update streams this process's events() handlers hold.", '{stream}');
  const locks = gauge('online_now.room_locks', 'Rooms whose editing lock someone holds now.', '{lock}');
  const asks = gauge('online_now.room_lock_asks', 'Asks to hand a lock over not answered yet.', '{ask}');
  const age = gauge('online_now.sync.age', "Seconds since Redis last answered this process's sync.", 's');
  const failures = meter.createObservableCounter('online_now.sync.failures', { description: 'Syncs with Redis that failed.', unit: '{sync}' });
  const observables = [users, byStatus, record, recordAt, streams, locks, asks, age, failures];
  const callback: BatchCallback = async (result) => {
    const s = await snapshot();
    for (const [kind, value] of byKind(s)) result.observe(users, value, { kind });
    for (const [status, value] of byStatusOf(s)) result.observe(byStatus, value, { status });
    result.observe(record, s.record);
    result.observe(recordAt, s.recordAtSeconds);
    result.observe(streams, s.streams);
    if (s.locks !== undefined) {
      result.observe(locks, s.locks.held);
      result.observe(asks, s.locks.asks);
    }
    if (s.sync !== undefined) {
      // Before the first answered sync there is no age to give (Infinity is no measurement).
      if (Number.isFinite(s.sync.ageSeconds)) result.observe(age, s.sync.ageSeconds);
      result.observe(failures, s.sync.failures);
    }
  };
  meter.addBatchObservableCallback(callback, observables);
  return () => meter.removeBatchObservableCallback(callback, observables);
}

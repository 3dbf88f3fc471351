import { expect } from 'chai';
import { spawn, type ChildProcess } from 'node:child_process';
import { appendFileSync, copyFileSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { LocalsJson } from './helpers/app';
import { CookieBrowser } from './helpers/browser';
import { PresenceModel, Rng, modelSeed, type PresenceEvent } from './helpers/model';
import { REDIS_SERVER, RedisServer, connect, uniquePrefix, type ClientKind, type TestClient } from './helpers/redis';
import { requireBinary } from './helpers/requirements';
import { eventually, sleep } from './helpers/wait';
import { TcpProxy } from './helpers/tcp-proxy';

/**
 * Presence truth, at random: 200 users sign in, browse, hide (invisible mode),
 * are touched by bare id (a websocket message), log out and sign in again
 * through 4 Node processes, each behind its own TCP proxy to one redis-server.
 * At random moments Redis is paused (SIGSTOP), restarted empty, restarted from
 * an older RDB snapshot or from its AOF, or replaced by a replica that lagged;
 * one process's link is partitioned, or its replies come late (past the
 * store's 1 s timeout). Every few seconds, and once everything has settled at
 * the end, every process is asked about every user, by staff and by a guest,
 * and must agree with a model of what the package promises (see
 * helpers/model.ts): no ghosts, no lost users, lastSeen the time of the
 * request, no hidden user shown to a guest (nor, on a process cut off from
 * Redis past its staleness bound, anyone it knows only from others); every
 * onSeen call counted (none twice within seenInterval, none lost); the record
 * never above the most users the model lets be online at once.
 *
 * The plan (who does what, where, when; the faults) comes from a seeded PRNG:
 * the seed is printed, and MODEL_SEED=N replays the same plan (the exact
 * interleavings still depend on timing). MODEL_SECONDS sets each run's length (60 s, 30 s at 5 s syncs);
 * MODEL_LOG=file appends every violation there (a failure shows a few of each kind).
 */

const WORKER = path.join(__dirname, 'fixtures', 'model-worker.ts');
/** One client kind per process, both kinds twice. */
const CLIENTS: readonly ClientKind[] = ['node-redis', 'ioredis', 'node-redis', 'ioredis'];
const PROCS = CLIENTS.map((_, i) => i);
const USERS = Array.from({ length: 200 }, (_, i) => i + 1);
/** A fifth of the users get most of the traffic: the rest are often settled when checked. */
const HOT = USERS.slice(0, 40);
/** Planned sequences of requests (a page, a logout, a logout then a sign-in elsewhere, …) per second. */
const CHAINS_PER_SECOND = 50;
/** At most this many sequences run at once (each user's own run one after another). */
const MAX_IN_FLIGHT = 8;
const CHECK_EVERY_MS = 5000;
/**
 * lastSeen must be the request's time: within its [send, response] widened by this, or by the
 * documented precision of the processes' estimates of Redis's clock (half the slowest round trip
 * one was taken from, which a loaded machine's first syncs can make longer) plus CLOCK_MARGIN_MS.
 */
const LAST_SEEN_SLACK_MS = 150;
const CLOCK_MARGIN_MS = 50;
/** Violations shown in full per kind; the rest are counted. */
const SHOWN_PER_KIND = 6;
/** onSeen's interval: short, so a 30–45 s run holds several per active user. */
const SEEN_INTERVAL_MS = 4000;

type Op = 'login' | 'page' | 'logout' | 'hide' | 'show' | 'ping';
interface Step {
  readonly op: Op;
  readonly proc: number;
  /** Wait before this step, ms. */
  readonly waitMs?: number;
  /** A sign-in: the user is invisible (every session of theirs says the same, as an app's user record would). */
  readonly hidden?: boolean;
}
interface Chain {
  /** ms after the start of the run. */
  readonly at: number;
  readonly user: number;
  readonly label: string;
  readonly steps: readonly Step[];
}
/**
 * pause: SIGSTOP for `ms`; restart: empty; rdb: SAVE, `ms` more of traffic, then a restart that
 * reloads that snapshot; aof: AOF on, `ms` more, SIGKILL and a restart from the AOF; failover: a
 * replica stalled for `ms` is promoted; delay: `proc`'s replies come `delayMs` late for `ms`;
 * partition: `proc`'s link carries nothing for `ms`.
 */
type FaultKind = 'pause' | 'restart' | 'rdb' | 'aof' | 'failover' | 'delay' | 'partition';
/** Faults that make Redis lose data or go back in time: a new epoch, write-backs, a recovery window. */
const LOSSY: ReadonlySet<FaultKind> = new Set(['restart', 'rdb', 'aof', 'failover']);
/** Faults that cut one process off from Redis. */
const CUT: ReadonlySet<FaultKind> = new Set(['delay', 'partition']);
const ALL_FAULTS: readonly FaultKind[] = ['pause', 'restart', 'rdb', 'aof', 'failover', 'delay', 'partition'];
interface Fault {
  readonly at: number;
  readonly kind: FaultKind;
  readonly ms: number;
  readonly proc: number;
  readonly delayMs: number;
}
interface Outage {
  readonly kind: FaultKind;
  readonly proc: number;
  readonly start: number;
  end: number | undefined;
}
interface Worker {
  readonly child: ChildProcess;
  readonly base: string;
}
/** One hook call a worker printed: onSeen (on logout, or a report) or onRecord. */
type HookCall =
  | { readonly hook: 'seen'; readonly proc: number; readonly id: number; readonly date: number; readonly cause: 'report' | 'forget'; readonly t: number }
  | { readonly hook: 'record'; readonly proc: number; readonly count: number; readonly at: number; readonly t: number };
interface Violation {
  readonly kind:
    | 'ghost'
    | 'lost'
    | 'lastSeen'
    | 'count'
    | 'page'
    | 'own page'
    | 'disagree'
    | 'request'
    | 'hidden shown'
    | 'withheld'
    | 'onSeen twice'
    | 'onSeen lost'
    | 'onSeen date'
    | 'record'
    | 'onRecord twice';
  readonly text: string;
}
interface Read {
  readonly proc: number;
  readonly xs: number;
  readonly xr: number;
  readonly locals: LocalsJson;
}

function startWorker(
  children: ChildProcess[],
  proc: number,
  redisPort: number,
  kind: ClientKind,
  prefix: string,
  syncMs: number,
  thresholdS: number,
  hooks: HookCall[],
): Promise<Worker> {
  const child = spawn(process.execPath, ['--import', 'tsx', WORKER, String(redisPort), kind, prefix, String(syncMs), String(thresholdS), String(SEEN_INTERVAL_MS / 1000)], {
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  children.push(child);
  return new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`worker did not start within 30 s: ${out}`)), 30_000);
    child.stdout!.on('data', (chunk: Buffer) => {
      out += chunk.toString();
      const lines = out.split('\n');
      out = lines.pop()!;
      for (const line of lines) {
        if (!line.startsWith('{')) continue;
        const message = JSON.parse(line) as { base?: string; hook?: string };
        if (message.base !== undefined) {
          clearTimeout(timer);
          resolve({ child, base: message.base });
        } else if (message.hook !== undefined) {
          hooks.push({ ...message, proc } as HookCall);
        }
      }
    });
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`worker exited with ${code}`));
    });
  });
}

async function stopWorker(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.stdin?.end();
  child.kill('SIGTERM');
  const force = setTimeout(() => child.kill('SIGKILL'), 3000);
  await exited;
  clearTimeout(force);
}

const sleepUntil = (at: number): Promise<void> => sleep(Math.max(0, at - Date.now()));

/** Runs at most `max` of the given functions at once. */
function limiter(max: number): <T>(fn: () => Promise<T>) => Promise<T> {
  let active = 0;
  const waiting: (() => void)[] = [];
  return async (fn) => {
    while (active >= max) await new Promise<void>((resolve) => waiting.push(resolve));
    active++;
    try {
      return await fn();
    } finally {
      active--;
      waiting.shift()?.();
    }
  };
}

/** A field of `INFO section`, as text. */
async function info(admin: TestClient, section: string, field: string): Promise<string | undefined> {
  return new RegExp(`^${field}:(.*)$`, 'm').exec(String(await admin.command('INFO', section)))?.[1]?.trim();
}

/** Polls until `ready` (a server's state change we asked for), for at most 10 s. */
async function until(what: string, ready: () => Promise<boolean>): Promise<void> {
  await eventually(async () => expect(await ready(), `${what}: not within 10 s`).to.equal(true), 10_000);
}

/**
 * The Redis side of the deployment: the master (replaced on a failover), and one TCP
 * proxy per app process in front of it, so one process's link can be held or slowed and
 * every process pointed at a promoted replica. Each launch has a data directory of its own
 * (a restart from a snapshot is a launch in a new one with that snapshot only in it).
 */
class RedisSite {
  readonly proxies: TcpProxy[] = [];
  /** Servers started besides the master, stopped at the end. */
  private readonly others: RedisServer[] = [];
  private dirs = 0;

  private constructor(
    private readonly root: string,
    public master: RedisServer,
    private dir: string,
  ) {}

  static async start(procs: number): Promise<RedisSite> {
    const root = mkdtempSync(path.join(os.tmpdir(), 'model-redis-'));
    const dir = path.join(root, 'gen-0');
    mkdirSync(dir);
    const site = new RedisSite(root, await RedisSite.launch(undefined, dir, false), dir);
    for (let i = 0; i < procs; i++) site.proxies.push(await TcpProxy.start(site.master.port));
    return site;
  }

  /** A master with its data in `dir`: from the AOF there if `aof`, else from the RDB file there (if any). */
  private static launch(port: number | undefined, dir: string, aof: boolean): Promise<RedisServer> {
    // A replica's first sync starts at once (Redis 7 waits 5 s for more replicas by default).
    return RedisServer.start(port, ['--dir', dir, '--dbfilename', 'dump.rdb', '--appendonly', aof ? 'yes' : 'no', '--appendfsync', 'everysec', '--repl-diskless-sync-delay', '0']);
  }

  private newDir(): string {
    const dir = path.join(this.root, `gen-${++this.dirs}`);
    mkdirSync(dir);
    return dir;
  }

  private async admin<T>(server: RedisServer, work: (admin: TestClient) => Promise<T>): Promise<T> {
    const admin = await connect('ioredis', server);
    try {
      return await work(admin);
    } finally {
      await admin.close();
    }
  }

  /** SIGKILL, and a new master on the same port from `dir`. */
  private async relaunch(dir: string, aof: boolean): Promise<void> {
    await this.master.kill();
    this.master = await RedisSite.launch(this.master.port, dir, aof);
    this.dir = dir;
  }

  async restartEmpty(): Promise<void> {
    await this.relaunch(this.newDir(), false);
  }

  /** SAVE now; traffic goes on for `ms`; then Redis restarts from that snapshot, `ms` in the past. */
  async restartFromSnapshot(ms: number): Promise<void> {
    await this.admin(this.master, (admin) => admin.command('SAVE'));
    const dir = this.newDir();
    copyFileSync(path.join(this.dir, 'dump.rdb'), path.join(dir, 'dump.rdb'));
    await sleep(ms); // the model's timeline (planned faults, outage lengths, settle times): time is the subject
    await this.relaunch(dir, false);
  }

  /** AOF on (fsync every second), `ms` of traffic, SIGKILL: the restart replays the AOF, the last second maybe lost. */
  async restartFromAof(ms: number): Promise<void> {
    await this.admin(this.master, async (admin) => {
      await admin.command('CONFIG', 'SET', 'appendfsync', 'everysec');
      await admin.command('CONFIG', 'SET', 'appendonly', 'yes');
      await until(
        'AOF rewrite',
        async () => (await info(admin, 'persistence', 'aof_rewrite_in_progress')) === '0' && (await info(admin, 'persistence', 'aof_rewrite_scheduled')) === '0',
      );
    });
    await sleep(ms); // the model's timeline (planned faults, outage lengths, settle times): time is the subject
    await this.relaunch(this.dir, true);
  }

  /**
   * A real replica, in sync, then stalled for `ms` while traffic goes on: its link held (SIGSTOP
   * alone would let the kernel's socket buffers catch it up) and the process stopped. The master
   * dies, the replica is resumed and promoted (REPLICAOF NO ONE), and every process is pointed at it.
   */
  async failover(ms: number): Promise<void> {
    const link = await TcpProxy.start(this.master.port);
    const dir = this.newDir();
    const replica = await RedisServer.start(undefined, ['--dir', dir, '--dbfilename', 'dump.rdb', '--replicaof', '127.0.0.1', String(link.port)]);
    this.others.push(replica);
    try {
      await this.admin(replica, (admin) => until('replica sync', async () => (await info(admin, 'replication', 'master_link_status')) === 'up'));
      link.partition();
      replica.pause();
      await sleep(ms); // the model's timeline (planned faults, outage lengths, settle times): time is the subject
      // What the link holds is dropped, not delivered: the replica stays behind.
      link.reset();
      await this.master.kill();
    } finally {
      await link.close();
      replica.resume();
    }
    await this.admin(replica, (admin) => admin.command('REPLICAOF', 'NO', 'ONE'));
    this.others.splice(this.others.indexOf(replica), 1);
    this.others.push(this.master);
    this.master = replica;
    this.dir = dir;
    for (const proxy of this.proxies) proxy.retarget(replica.port);
  }

  async stop(): Promise<void> {
    this.master.resume();
    for (const proxy of this.proxies) await proxy.close();
    for (const server of [this.master, ...this.others]) await server.stop();
    rmSync(this.root, { recursive: true, force: true });
  }
}

/**
 * Who does what, where, and when: drawn up front, following each user's sessions
 * (one per process at most: a browser tab per server behind a load balancer), so
 * the plan depends on the seed only.
 */
function planChains(rng: Rng, durationMs: number): Chain[] {
  const count = Math.round((durationMs / 1000) * CHAINS_PER_SECOND);
  const times = Array.from({ length: count }, () => rng.between(0, durationMs)).sort((a, b) => a - b);
  const sessions = new Map(USERS.map((u) => [u, new Set<number>()]));
  const invisible = new Set<number>();
  const elsewhere = (p: number): number[] => PROCS.filter((q) => q !== p);
  return times.map((at): Chain => {
    const user = rng.chance(0.6) ? rng.pick(HOT) : rng.pick(USERS);
    const mine = sessions.get(user)!;
    const signedIn = [...mine];
    const hidden = invisible.has(user);
    const login = (proc: number): Step => ({ op: 'login', proc, hidden });
    const kind = rng.next();
    // A bare-id touch (a websocket message), on any process, signed in or not: after a logout, or idle
    // past the threshold, it brings the user back, hidden if they hid.
    if (kind < 0.1) return { at, user, label: signedIn.length === 0 ? 'bare touch, signed out' : 'bare touch', steps: [{ op: 'ping', proc: rng.pick(PROCS) }] };
    if (signedIn.length === 0) {
      const p = rng.pick(PROCS);
      mine.add(p);
      return { at, user, label: 'sign-in', steps: [login(p), { op: 'page', proc: p }] };
    }
    if (kind < 0.18) {
      // Invisible mode flips in every session of the user; the next page carries it.
      const op = hidden ? 'show' : 'hide';
      if (hidden) invisible.delete(user);
      else invisible.add(user);
      return { at, user, label: op, steps: [...signedIn.map((proc): Step => ({ op, proc })), { op: 'page', proc: rng.pick(signedIn) }] };
    }
    const r = rng.next();
    const free = PROCS.filter((q) => !mine.has(q));
    if (r < 0.4 || (r < 0.5 && free.length === 0)) {
      return { at, user, label: 'page', steps: [{ op: 'page', proc: rng.pick(signedIn) }] };
    }
    if (r < 0.5) {
      const p = rng.pick(free);
      mine.add(p);
      return { at, user, label: 'sign-in on another process', steps: [login(p), { op: 'page', proc: p }] };
    }
    if (r < 0.65) {
      const b = rng.pick(signedIn);
      mine.delete(b);
      return { at, user, label: 'logout', steps: [{ op: 'logout', proc: b }] };
    }
    if (r < 0.82) {
      // The race that used to lose users: signed in again soon after a logout, on another process.
      const b = rng.pick(signedIn);
      const c = rng.pick(elsewhere(b));
      const waitMs = rng.chance(0.6) ? rng.between(0, 50) : rng.between(50, 1500);
      mine.delete(b);
      mine.add(c);
      return {
        at,
        user,
        label: 'logout, sign-in elsewhere',
        steps: [
          { op: 'logout', proc: b },
          { ...login(c), waitMs },
          { op: 'page', proc: c },
        ],
      };
    }
    // The race that used to revive users: a page on one process, at once a logout on another.
    const a = rng.pick(signedIn);
    const b = rng.pick(elsewhere(a));
    const steps: Step[] = mine.has(b) ? [] : [login(b)];
    steps.push({ op: 'page', proc: a }, { op: 'logout', proc: b });
    mine.delete(b);
    return { at, user, label: 'page, logout elsewhere', steps };
  });
}

function shuffled<T>(rng: Rng, items: readonly T[]): T[] {
  const out = [...items];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(rng.next() * (i + 1));
    [out[i], out[j]] = [out[j], out[i]];
  }
  return out;
}

/**
 * Faults of the given kinds: first those of #21 (every one in each run, in a random order), then
 * every kind, each once before any repeats (a shuffled bag); quiet stretches between some, for checks.
 */
function planFaults(rng: Rng, durationMs: number, outageSettleMs: number, kinds: readonly FaultKind[]): Fault[] {
  const faults: Fault[] = [];
  let bag: FaultKind[] = shuffled(
    rng,
    kinds.filter((k) => k !== 'pause' && k !== 'restart'),
  );
  let at = rng.between(2000, 4000);
  while (at < durationMs - 1000) {
    if (bag.length === 0) bag = shuffled(rng, kinds);
    const kind = bag.pop()!;
    const ms = {
      pause: rng.between(500, 3000),
      restart: 0,
      rdb: rng.between(1500, 3000),
      aof: rng.between(1000, 2000),
      failover: rng.between(1500, 3000),
      delay: rng.between(3500, 5000),
      partition: rng.between(5000, 9000),
    }[kind];
    faults.push({ at, kind, ms, proc: rng.pick(PROCS), delayMs: rng.between(1200, 2000) });
    at += ms + rng.between(1500, 4000) + (rng.chance(0.3) ? outageSettleMs + 2000 : 0);
  }
  return faults;
}

interface CheckRecord {
  readonly label: string;
  readonly settled: number;
  readonly online: number;
  /** Settled users hidden by the model (online or not): what the guest reads are judged on. */
  readonly hidden: number;
}

class ModelRun {
  readonly model: PresenceModel;
  readonly thresholdMs: number;
  /** After a user's last event, every process must show it within this. */
  readonly settleMs: number;
  /** After a fault ends, every process must be right again within this. */
  readonly outageSettleMs: number;
  /** The store's bound: a process without a sync for this long withholds the users it knows only from others. */
  readonly staleMs: number;
  /** The store's recovery window after an epoch change: reports wait (deferred) and the record is not raised. */
  readonly recoveryMs: number;
  readonly outages: Outage[] = [];
  readonly violations: Violation[] = [];
  readonly checks: CheckRecord[] = [];
  readonly counts = {
    chains: 0,
    requests: 0,
    logins: 0,
    pages: 0,
    logouts: 0,
    flips: 0,
    pings: 0,
    guestReads: 0,
    cutChecks: 0,
    delayedChecks: 0,
    skippedChecks: 0,
    skippedFaults: 0,
    maxPageRecord: 0,
    /** onSeen repeats within seenInterval a logout, or a partition that let Redis see the user expire, justifies. */
    allowedRepeats: 0,
    /** Touches held on a cut-off process past their expiry: never in Redis, so never reported. */
    expiredUnsent: 0,
    deferredGone: 0,
  };
  private readonly browsers = new Map<string, CookieBrowser>();
  /** Whether each session (user:proc) is in invisible mode. */
  private readonly sessionHidden = new Map<string, boolean>();
  private checking: Promise<void> | undefined;
  private faultActive = false;
  /** The slack for dates, as the processes' clocks allow (see LAST_SEEN_SLACK_MS): it only grows. */
  private clockSlackMs = LAST_SEEN_SLACK_MS;
  /** Own pages whose lastSeen is outside LAST_SEEN_SLACK_MS: judged at the next check, on the clock slack then. */
  private doubtfulOwnPages: { readonly where: string; readonly at: number; readonly send: number; readonly end: number }[] = [];
  private t0 = Date.now();

  constructor(
    readonly seed: number,
    readonly syncMs: number,
    private readonly workers: readonly Worker[],
    private readonly site: RedisSite,
    private readonly hooks: readonly HookCall[],
  ) {
    this.thresholdMs = Math.max(8000, 5 * syncMs);
    this.settleMs = 2 * syncMs + 1500;
    // A restart: reconnect (≤ 300 ms), every process's next sync sees the new epoch and
    // writes back its replica, and the others read it at their sync after: three syncs, with room.
    this.outageSettleMs = 3 * syncMs + 2500;
    this.staleMs = Math.max(3 * syncMs, 3000);
    this.recoveryMs = Math.max(3 * syncMs, 2000);
    this.model = new PresenceModel(USERS, {
      thresholdMs: this.thresholdMs,
      settleMs: this.settleMs,
      // Near its expiry instant a user is not judged: a replica may keep an expired user counted
      // and listed for up to a syncInterval longer (it keeps arrival order within one sync of time
      // order). A second beyond that, and never more than settleMs. (lastSeen, which the expiry
      // instant follows, has its own check, to 150 ms.)
      expiryMarginMs: Math.min(this.settleMs, syncMs + 1000),
    });
  }

  get label(): string {
    return `model seed ${this.seed} (replay with MODEL_SEED=${this.seed}), syncInterval ${this.syncMs} ms, threshold ${this.thresholdMs / 1000} s`;
  }

  async run(chains: readonly Chain[], faults: readonly Fault[], durationMs: number): Promise<void> {
    this.t0 = Date.now();
    const loops = await Promise.allSettled([this.runChains(chains), this.runFaults(faults, durationMs), this.runChecks(durationMs)]);
    for (const loop of loops) if (loop.status === 'rejected') throw loop.reason;
    // Settled: every user's last event and the last outage had their time.
    const quiet = Math.max(this.model.lastActivity() + this.settleMs, this.lastOutageEnd() + this.outageSettleMs) + 100;
    await sleepUntil(quiet); // the model's timeline (planned faults, outage lengths, settle times): time is the subject
    await this.check(true);
    // Reports held back by a recovery window go out at the first sync after it (and a printed hook line has a moment to arrive).
    await sleepUntil(Math.max(Date.now(), this.lastOutageEnd() + this.recoveryMs + 2 * this.syncMs + 2000) + 500); // the model's timeline (planned faults, outage lengths, settle times): time is the subject
    this.checkHooks(Date.now() - 500);
  }

  summary(): string {
    const byKind = this.violationCounts();
    const faults = this.outages.map((o) => {
      const where = CUT.has(o.kind) ? `@P${o.proc}` : '';
      return `${o.kind}${where} ${this.rel(o.start)}+${((o.end! - o.start) / 1000).toFixed(1)}s`;
    });
    const settled = this.checks.map((c) => `${c.label} ${c.settled}/${USERS.length} (${c.online} online, ${c.hidden} hidden)`);
    const seen = this.hooks.filter((h) => h.hook === 'seen');
    const records = this.hooks.filter((h) => h.hook === 'record');
    return (
      `${this.label}: ${this.counts.chains} sequences, ${this.counts.requests} requests ` +
      `(${this.counts.logins} sign-ins, ${this.counts.pages} pages, ${this.counts.pings} bare touches, ${this.counts.flips} invisible flips, ${this.counts.logouts} logouts); ` +
      `faults: ${faults.join(', ') || 'none'}${this.counts.skippedFaults > 0 ? ` (${this.counts.skippedFaults} past the end, skipped)` : ''}; ` +
      `${this.checks.length} checks (${this.counts.delayedChecks} waited for an outage to settle, ${this.counts.skippedChecks} skipped; ` +
      `${this.counts.guestReads} guest reads, ${this.counts.cutChecks} reads of a cut-off process), ` +
      `users settled per check: ${settled.join(', ')}; ` +
      `onSeen: ${seen.filter((h) => h.cause === 'report').length} reports + ${seen.filter((h) => h.cause === 'forget').length} on logout, ` +
      `for ${new Set(seen.map((h) => h.id)).size} users (${this.counts.allowedRepeats} repeats within seenInterval after a logout, a partition's expiry, or a cut before an acknowledgement, ` +
      `${this.counts.expiredUnsent} touches held past expiry on a cut-off process, ${this.counts.deferredGone} deferred by a recovery window whose user had left when it ended); record: ${records.length} onRecord calls (highest ${Math.max(0, ...records.map((h) => h.count))}), ` +
      `highest on a page ${this.counts.maxPageRecord}, the model's most online at once ${this.maxOnline(Infinity)}; ` +
      `dates judged to ${Math.round(this.clockSlackMs)} ms (the processes' clock precision); violations: ${this.violations.length}` +
      (this.violations.length > 0
        ? ` (${Object.entries(byKind)
            .map(([k, n]) => `${k} ${n}`)
            .join(', ')})`
        : '')
    );
  }

  /** With MODEL_LOG=file: the summary and every violation, appended there. */
  writeLog(): void {
    const file = process.env.MODEL_LOG;
    if (file === undefined || file === '') return;
    appendFileSync(file, `${[this.summary(), ...this.violations.map((v) => `  ${v.kind}: ${v.text}`)].join('\n')}\n`);
  }

  /** One assertion for the whole run, with a few of each kind of violation, the seed, and the outages. */
  assertTruth(): void {
    if (this.violations.length === 0) return;
    const lines: string[] = [];
    for (const kind of Object.keys(this.violationCounts())) {
      const all = this.violations.filter((v) => v.kind === kind);
      lines.push(`  ${kind}: ${all.length}`);
      for (const v of all.slice(0, SHOWN_PER_KIND)) lines.push(`    - ${v.text}`);
      if (all.length > SHOWN_PER_KIND) lines.push(`    … and ${all.length - SHOWN_PER_KIND} more`);
    }
    const outages = this.outages.map((o) => `${o.kind}${CUT.has(o.kind) ? `@P${o.proc}` : ''} ${this.rel(o.start)}–${o.end === undefined ? '?' : this.rel(o.end)}`);
    expect.fail(
      `${this.label}: ${this.violations.length} violations of presence truth (times are seconds from the start; ` +
        `P0–P3 the processes):\n${lines.join('\n')}\n  outages: ${outages.join(', ') || 'none'}`,
    );
  }

  private violationCounts(): Record<string, number> {
    const counts: Record<string, number> = {};
    for (const v of this.violations) counts[v.kind] = (counts[v.kind] ?? 0) + 1;
    return counts;
  }

  private violation(kind: Violation['kind'], text: string): void {
    this.violations.push({ kind, text });
  }

  private rel(at: number): string {
    return `${((at - this.t0) / 1000).toFixed(3)}s`;
  }

  private describeEvent(e: PresenceEvent): string {
    const how = e.kind === 'logout' ? 'logout' : e.profile === undefined ? 'bare touch' : e.profile === 'hidden' ? 'hidden page' : 'page';
    return `${how}@P${e.proc} ${this.rel(e.send)}–${e.end === undefined ? '…' : this.rel(e.end)}`;
  }

  /** The user's last few presence requests, for a violation's message. */
  private story(user: number, upto: number): string {
    const events = this.model.history(user).filter((e) => e.send <= upto);
    const last = Number(process.env.MODEL_STORY ?? 4);
    const shown = events.slice(-last).map((e) => this.describeEvent(e));
    return `${events.length > last ? '…, ' : ''}${shown.join(', ') || 'no requests'}`;
  }

  private lastOutageEnd(): number {
    return this.outages.reduce((latest, o) => Math.max(latest, o.end ?? Date.now()), 0);
  }

  /** Checks run only outside outages, and long enough after one. */
  private blocked(): boolean {
    return this.faultActive || Date.now() < this.lastOutageEnd() + this.outageSettleMs;
  }

  /** By when an event that ended at `t` has surely reached Redis and every process: settleMs, or an outage's settling after it. */
  private propagated(t: number): number {
    let by = t + this.settleMs;
    for (const o of this.outages) {
      const settled = (o.end ?? Infinity) + this.outageSettleMs;
      if (o.start <= t + this.settleMs && settled > t) by = Math.max(by, settled);
    }
    return by;
  }

  private async runChains(chains: readonly Chain[]): Promise<void> {
    const limit = limiter(MAX_IN_FLIGHT);
    // Each user's sequences run one after another: the order of their requests is known.
    const tails = new Map<number, Promise<void>>();
    for (const chain of chains) {
      await sleepUntil(this.t0 + chain.at); // the model's timeline (planned faults, outage lengths, settle times): time is the subject
      const previous = tails.get(chain.user) ?? Promise.resolve();
      tails.set(
        chain.user,
        previous.then(() => limit(() => this.runChain(chain))),
      );
    }
    await Promise.all(tails.values());
  }

  private async runChain(chain: Chain): Promise<void> {
    this.counts.chains++;
    for (const step of chain.steps) {
      if (this.model.failed(chain.user)) return;
      if (step.waitMs !== undefined) await sleep(step.waitMs); // the model's timeline (planned faults, outage lengths, settle times): time is the subject
      await this.step(chain.user, step, chain.label);
    }
  }

  private async step(user: number, { op, proc, hidden }: Step, label: string): Promise<void> {
    const key = `${user}:${proc}`;
    let event: PresenceEvent | undefined;
    this.counts.requests++;
    try {
      if (op === 'login') {
        // A new browser session: the sign-in request itself carries no user, so it marks nobody.
        const browser = new CookieBrowser(this.workers[proc].base);
        this.browsers.set(key, browser);
        this.counts.logins++;
        const res = await browser.post('/login', { id: String(user), type: 'number' });
        if (res.status !== 204) throw new Error(`POST /login answered ${res.status}`);
        this.sessionHidden.set(key, hidden === true);
        // An invisible user's new session is invisible too (the app reads it from the user's record).
        if (hidden === true) await this.invisible(browser, true);
        return;
      }
      if (op === 'ping') {
        // A bare id, from no session: no profile, so what Redis and the processes remember decides visibility.
        this.counts.pings++;
        event = this.model.begin(user, 'touch', proc);
        const res = await new CookieBrowser(this.workers[proc].base).post('/ping', { id: String(user) });
        if (res.status !== 204) throw new Error(`POST /ping answered ${res.status}`);
        this.model.finish(event);
        return;
      }
      const browser = this.browsers.get(key);
      if (browser === undefined) throw new Error(`the plan has no session for user ${user} on P${proc}`);
      if (op === 'hide' || op === 'show') {
        // Not a presence event (the tracker skips it): the session's next page carries it.
        this.counts.flips++;
        await this.invisible(browser, op === 'hide');
        this.sessionHidden.set(key, op === 'hide');
      } else if (op === 'page') {
        this.counts.pages++;
        event = this.model.begin(user, 'touch', proc, this.sessionHidden.get(key) === true ? 'hidden' : 'visible');
        const locals = await browser.json<LocalsJson>(`/locals?ask=[${user}]`);
        this.model.finish(event);
        this.checkOwnPage(event, locals);
      } else {
        this.counts.logouts++;
        event = this.model.begin(user, 'logout', proc);
        const res = await browser.post('/logout');
        this.browsers.delete(key);
        if (res.status !== 204) throw new Error(`POST /logout answered ${res.status}`);
        this.model.finish(event);
      }
    } catch (error) {
      if (event !== undefined && event.end === undefined) this.model.finish(event);
      this.model.poison(user, String(error));
      this.violation(
        'request',
        `${op} of user ${user} on P${proc} (in "${label}") at ${this.rel(event?.send ?? Date.now())} failed: ${(error as Error).message}; user not judged further`,
      );
    }
  }

  private async invisible(browser: CookieBrowser, on: boolean): Promise<void> {
    const res = await browser.post('/invisible', { on: on ? '1' : '0' });
    if (res.status !== 204) throw new Error(`POST /invisible answered ${res.status}`);
  }

  /** README: "The request's own user is already in its own page." (A hidden user sees themselves.) */
  private checkOwnPage(event: PresenceEvent, locals: LocalsJson): void {
    const where = `user ${event.user}'s own page on P${event.proc} (${this.rel(event.send)}–${this.rel(event.end!)})`;
    const seen = locals.lastSeen?.[0] ?? null;
    if (locals.isOnline?.[0] !== true || seen === null) {
      this.violation('own page', `${where} shows them offline`);
      return;
    }
    const at = Date.parse(seen);
    if (at < event.send - LAST_SEEN_SLACK_MS || at > event.end! + LAST_SEEN_SLACK_MS) {
      this.doubtfulOwnPages.push({ where, at, send: event.send, end: event.end! });
    }
  }

  private async runFaults(faults: readonly Fault[], durationMs: number): Promise<void> {
    for (const fault of faults) {
      await sleepUntil(this.t0 + fault.at); // the model's timeline (planned faults, outage lengths, settle times): time is the subject
      // A cut process is judged against its last sync: taken when Redis was well, after the fault before settled.
      if (CUT.has(fault.kind)) await sleepUntil(this.lastOutageEnd() + this.outageSettleMs + 500); // the model's timeline (planned faults, outage lengths, settle times): time is the subject
      // One that overran the plan would only lengthen the run.
      if (Date.now() > this.t0 + durationMs - 1000) {
        this.counts.skippedFaults++;
        continue;
      }
      // A check in progress finishes first: checks happen only outside outages.
      while (this.checking !== undefined) await this.checking;
      this.faultActive = true;
      const outage: Outage = { kind: fault.kind, proc: fault.proc, start: Date.now(), end: undefined };
      this.outages.push(outage);
      try {
        await this.fault(fault, outage.start);
      } finally {
        outage.end = Date.now();
        this.faultActive = false;
      }
    }
  }

  private async fault({ kind, ms, proc, delayMs }: Fault, start: number): Promise<void> {
    const redis = this.site;
    const proxy = redis.proxies[proc];
    switch (kind) {
      case 'pause':
        redis.master.pause();
        await sleep(ms); // the model's timeline (planned faults, outage lengths, settle times): time is the subject
        redis.master.resume();
        return;
      case 'restart':
        return redis.restartEmpty();
      case 'rdb':
        return redis.restartFromSnapshot(ms);
      case 'aof':
        return redis.restartFromAof(ms);
      case 'failover':
        return redis.failover(ms);
      case 'delay':
      case 'partition': {
        if (kind === 'delay') proxy.delayReplies(delayMs);
        else proxy.partition();
        // Past the staleness bound (and a reply already on its way), the cut process is read as a guest sees it, once a second.
        for (let read = start + this.staleMs + 500; read < start + ms - 200; read += 1000) {
          await sleepUntil(read); // the model's timeline (planned faults, outage lengths, settle times): time is the subject
          await this.checkCut(proc, start);
        }
        await sleepUntil(start + ms); // the model's timeline (planned faults, outage lengths, settle times): time is the subject
        if (kind === 'delay') {
          proxy.delayReplies(0);
          // Replies already held back still arrive late.
          await sleep(delayMs); // the model's timeline (planned faults, outage lengths, settle times): time is the subject
        } else {
          proxy.heal();
        }
        return;
      }
    }
  }

  private async runChecks(durationMs: number): Promise<void> {
    const end = this.t0 + durationMs;
    for (let next = this.t0 + CHECK_EVERY_MS; next < end;) {
      await sleepUntil(next); // the model's timeline (planned faults, outage lengths, settle times): time is the subject
      if (this.blocked()) this.counts.delayedChecks++;
      while (this.blocked() && Date.now() < end) await sleep(100); // the model's timeline (planned faults, outage lengths, settle times): time is the subject
      if (Date.now() >= end) {
        this.counts.skippedChecks++;
        break;
      }
      this.checking = this.check(false).finally(() => {
        this.checking = undefined;
      });
      await this.checking;
      next = Math.max(next + CHECK_EVERY_MS, Date.now() + 1000);
    }
  }

  /** One read of every user on `proc`, as staff (who see hidden users) or as a guest. */
  private async read(n: string, proc: number, staff: boolean): Promise<Read | undefined> {
    const xs = Date.now();
    try {
      const locals = await new CookieBrowser(this.workers[proc].base).json<LocalsJson>(`/locals?${staff ? 'staff=1&' : ''}ask=${JSON.stringify(USERS)}`);
      return { proc, xs, xr: Date.now(), locals };
    } catch (error) {
      this.violation('request', `${n}: the ${staff ? 'staff' : 'guest'} read on P${proc} failed: ${(error as Error).message}`);
      return undefined;
    }
  }

  /** The processes' clock precision, as each says now (a process that does not answer keeps what it said before). */
  private async refreshClockSlack(): Promise<void> {
    const said = await Promise.all(
      this.workers.map((w) =>
        fetch(`${w.base}/clock`, { signal: AbortSignal.timeout(2000) })
          .then((res) => res.json() as Promise<{ errorMs: number | null }>)
          .then((clock) => clock.errorMs ?? 0)
          .catch(() => 0),
      ),
    );
    this.clockSlackMs = Math.max(this.clockSlackMs, ...said.map((ms) => ms + CLOCK_MARGIN_MS));
    const doubtful = this.doubtfulOwnPages;
    this.doubtfulOwnPages = [];
    for (const { where, at, send, end } of doubtful) {
      if (at < send - this.clockSlackMs || at > end + this.clockSlackMs) this.violation('own page', `${where} gives lastSeen ${this.rel(at)}, not the request's time`);
    }
  }

  /** Every process, asked about every user by staff and by a guest, against the model. */
  private async check(final: boolean): Promise<void> {
    await this.refreshClockSlack();
    const n = this.checks.length + 1;
    const name = final ? `final check (${n})` : `check ${n}`;
    const [staff, guests] = await Promise.all([Promise.all(PROCS.map((proc) => this.read(name, proc, true))), Promise.all(PROCS.map((proc) => this.read(name, proc, false)))]);
    const done = staff.filter((r) => r !== undefined);
    if (done.length === 0) return;
    const xs = Math.min(...done.map((r) => r.xs));
    const xr = Math.max(...done.map((r) => r.xr));
    const judged = USERS.map((u) => this.model.judge(u, xs, xr));
    this.checks.push({
      label: final ? 'final' : `@${this.rel(xs)}`,
      settled: judged.filter((j) => j.settled).length,
      online: judged.filter((j) => j.settled && j.online).length,
      hidden: USERS.filter((u) => this.model.hidden(u, xs, xr) === true).length,
    });
    for (const read of done) this.checkRead(name, read);
    for (const read of guests) {
      if (read === undefined) continue;
      this.counts.guestReads++;
      this.checkGuest(name, read);
    }
    if (final && done.length === staff.length) this.checkAgreement(done, xs, xr);
  }

  /** Presence, as staff see it (hidden users too, marked). */
  private checkRead(name: string, { proc, xs, xr, locals }: Read): void {
    const where = `${name} on P${proc} (${this.rel(xs)}–${this.rel(xr)})`;
    this.checkRecord(where, locals, xr);
    // Compared as text: a user only ever touched by bare id is listed by other processes with its key, a string (see the report).
    const ids = locals.onlineNowIds.map(String);
    const listed = new Set(ids);
    const isOnline = locals.isOnline ?? [];
    const lastSeen = locals.lastSeen ?? [];
    // A page agrees with itself: with max 500, everyone online is listed, once: the count, and the hidden apart.
    // (Whether each badge agrees with the list is judged below for settled users only: near their expiry
    // instant a user may still be listed for a moment after their badge went out.)
    const online = locals.onlineCount + locals.onlineHidden;
    if (listed.size !== ids.length) this.violation('page', `${where}: onlineNowIds has duplicates`);
    if (online !== ids.length)
      this.violation('page', `${where}: onlineCount ${locals.onlineCount} + onlineHidden ${locals.onlineHidden}, but ${ids.length} listed to staff (max 500)`);
    let settledOnline = 0;
    let unsettled = 0;
    USERS.forEach((user, i) => {
      const judgement = this.model.judge(user, xs, xr);
      if (!judgement.settled) {
        unsettled++;
        return;
      }
      const id = String(user);
      const shown = isOnline[i] === true || listed.has(id) || lastSeen[i] !== null;
      if (judgement.online) {
        settledOnline++;
        if (isOnline[i] !== true || !listed.has(id) || lastSeen[i] === null) {
          const how = `isOnline ${isOnline[i]}, ${listed.has(id) ? '' : 'not '}listed, lastSeen ${lastSeen[i]}`;
          this.violation('lost', `${where}: user ${user} offline (${how}), but online by the model: ${this.story(user, xr)}`);
          return;
        }
        const at = Date.parse(lastSeen[i]!);
        const { send, end } = judgement.touch;
        if (at < send - this.clockSlackMs || at > end! + this.clockSlackMs) {
          const off = at < send ? `${send - at} ms before` : `${at - end!} ms after`;
          this.violation('lastSeen', `${where}: user ${user} lastSeen ${this.rel(at)}, ${off} their last page's request: ${this.story(user, xr)}`);
        }
      } else if (shown) {
        const at = lastSeen[i] === null ? 'none' : this.rel(Date.parse(lastSeen[i]!));
        const how = `isOnline ${isOnline[i]}, ${listed.has(id) ? '' : 'not '}listed, lastSeen ${at}`;
        this.violation('ghost', `${where}: user ${user} online (${how}), but offline by the model (${judgement.why}): ${this.story(user, xr)}`);
      }
    });
    if (online < settledOnline || online > settledOnline + unsettled) {
      this.violation('count', `${where}: ${online} online (count + hidden), the model says ${settledOnline} settled online + up to ${unsettled} unsettled`);
    }
  }

  /** Whether a read shows the user online, in any way a template could. */
  private shows(locals: LocalsJson, user: number): string | undefined {
    const i = USERS.indexOf(user);
    const ways = [
      locals.onlineNowIds.some((id) => String(id) === String(user)) ? 'listed' : '',
      locals.isOnline?.[i] === true ? 'isOnline' : '',
      (locals.lastSeen?.[i] ?? null) !== null ? `lastSeen ${this.rel(Date.parse(locals.lastSeen![i]!))}` : '',
    ].filter((w) => w !== '');
    return ways.length === 0 ? undefined : ways.join(', ');
  }

  /** As a guest sees it: nobody hidden (by the model, settled), everyone visible and online; the count is the list. */
  private checkGuest(name: string, { proc, xs, xr, locals }: Read): void {
    const where = `${name}, guest on P${proc} (${this.rel(xs)}–${this.rel(xr)})`;
    if (locals.onlineCount !== locals.onlineNowIds.length) {
      this.violation('page', `${where}: onlineCount ${locals.onlineCount}, but ${locals.onlineNowIds.length} listed (max 500): the count includes someone not shown`);
    }
    for (const user of USERS) {
      const hidden = this.model.hidden(user, xs, xr);
      const judgement = this.model.judge(user, xs, xr);
      const shown = this.shows(locals, user);
      if (hidden === true && shown !== undefined) {
        this.violation('hidden shown', `${where}: user ${user} (${shown}), hidden by the model: ${this.story(user, xr)}`);
      } else if (hidden === false && judgement.settled && judgement.online && shown === undefined) {
        this.violation('lost', `${where}: visible user ${user} not shown to a guest, online by the model: ${this.story(user, xr)}`);
      }
    }
  }

  /**
   * A process cut off from Redis past the staleness bound, as a guest sees it: it shows only users
   * seen on it since its last sync (taken when the cut began, or up to a sync interval and a
   * timeout before), and none it knows hid: one whose hidden page it served, or whose hiding
   * settled before the cut.
   */
  private async checkCut(proc: number, cutStart: number): Promise<void> {
    const read = await this.read(`cut-off check on P${proc}`, proc, false);
    if (read === undefined) return;
    this.counts.cutChecks++;
    const { xs, xr, locals } = read;
    const where = `guest on P${proc} ${this.rel(xs)}–${this.rel(xr)}, cut off from Redis since ${this.rel(cutStart)}`;
    const lastSync = cutStart - this.syncMs - 1100;
    for (const user of USERS) {
      const shown = this.shows(locals, user);
      if (shown === undefined || this.model.failed(user)) continue;
      const events = this.model.history(user).filter((e) => e.send <= xr);
      if (!events.some((e) => e.kind === 'touch' && e.proc === proc && (e.end ?? Infinity) >= lastSync)) {
        this.violation('withheld', `${where}: user ${user} (${shown}), known there only from other processes: ${this.story(user, xr)}`);
        continue;
      }
      const hid = events.filter((e) => e.profile !== undefined).at(-1);
      if (hid?.profile === 'hidden' && hid.end !== undefined && (hid.proc === proc ? hid.end <= xs : hid.end < cutStart - this.settleMs)) {
        this.violation('hidden shown', `${where}: user ${user} (${shown}), hidden, and that process knew: ${this.story(user, xr)}`);
      }
    }
  }

  /** The record on a page is never above the most users the model lets be online at once, up to then. */
  private checkRecord(where: string, locals: LocalsJson, xr: number): void {
    const count = locals.onlineRecord.count;
    this.counts.maxPageRecord = Math.max(this.counts.maxPageRecord, count);
    const bound = this.maxOnline(xr);
    if (count > bound)
      this.violation(
        'record',
        `${where}: onlineRecord ${count} (at ${this.rel(Date.parse(locals.onlineRecord.at))}), but at most ${bound} users were ever online at once by the model`,
      );
  }

  /**
   * The most users that can have been counted online in Redis at once, up to `upto`: each touch
   * from when it was sent until it expired (threshold, and the model's margin) or a logout after
   * it had surely reached Redis; a user whose request failed, from then on. Trackers count no
   * guests here (trackGuests off), so users are the whole record.
   */
  private maxOnline(upto: number): number {
    const marks: [number, number][] = [];
    for (const user of USERS) {
      const list = this.model.history(user);
      const spans: [number, number][] = [];
      list.forEach((e, i) => {
        if (e.kind !== 'touch' || e.send > upto) return;
        let end = e.end === undefined ? Infinity : e.end + this.thresholdMs + this.model.timing.expiryMarginMs;
        const logout = list.slice(i + 1).find((f) => f.kind === 'logout');
        if (logout !== undefined) end = Math.min(end, logout.end === undefined ? Infinity : this.propagated(logout.end));
        if (this.model.failed(user)) end = Infinity;
        const last = spans.at(-1);
        if (last !== undefined && e.send <= last[1]) last[1] = Math.max(last[1], end);
        else spans.push([e.send, end]);
      });
      for (const [from, to] of spans) marks.push([from, 1], [to, -1]);
    }
    marks.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
    let now = 0;
    let most = 0;
    for (const [, step] of marks) most = Math.max(most, (now += step));
    return most;
  }

  /**
   * The hooks, counted (`by`: when the lines were read). onSeen: each date is a request of that
   * user's; per user, no two reports closer than seenInterval unless a logout came between (the
   * next sign-in is reported at once, as documented); every touch reported, or covered by a report
   * less than seenInterval before it. onRecord: never above the model's most online, never twice.
   */
  private checkHooks(by: number): void {
    const seen = this.hooks.filter((h) => h.hook === 'seen');
    for (const user of USERS) {
      if (this.model.failed(user)) continue;
      const events = this.model.history(user);
      const mine = seen.filter((h) => h.id === user);
      for (const h of mine) {
        // A logout request is a touch too (the middleware marks the user, then the route forgets them).
        if (!events.some((e) => e.send - this.clockSlackMs <= h.date && h.date <= (e.end ?? Infinity) + this.clockSlackMs)) {
          this.violation('onSeen date', `user ${user}: onSeen (${h.cause}) on P${h.proc} with date ${this.rel(h.date)}, when they made no request: ${this.story(user, Infinity)}`);
        }
      }
      const reports = mine.filter((h) => h.cause === 'report').sort((a, b) => a.date - b.date);
      for (let i = 1; i < reports.length; i++) {
        const [a, b] = [reports[i - 1], reports[i]];
        // Dates come to the hook as whole ms: 1 ms of rounding.
        if (b.date - a.date >= SEEN_INTERVAL_MS - 1) continue;
        const between = events.some((e) => e.kind === 'logout' && (e.end ?? Infinity) >= a.date && e.send <= b.date);
        if (b.date !== a.date && (between || this.expiredInRedis(events, a.date, b.date, b.t))) {
          this.counts.allowedRepeats++;
          continue;
        }
        // One report, delivered by a process cut off before it could acknowledge it, then by another after the
        // lease (docs/redis-and-processes.md, "Hooks, once": at least a lease, so a seenInterval, apart).
        const cutBeforeAck = this.outages.some((o) => CUT.has(o.kind) && o.proc === a.proc && o.start >= a.t - this.syncMs - 1000 && o.start <= a.t + this.syncMs + 1000);
        if (b.date === a.date && a.proc !== b.proc && cutBeforeAck && b.t - a.t >= Math.max(SEEN_INTERVAL_MS, 10 * this.syncMs, 5000) - 100) {
          this.counts.allowedRepeats++;
          continue;
        }
        this.violation(
          'onSeen twice',
          `user ${user}: onSeen ${this.rel(a.date)} on P${a.proc} (called ${this.rel(a.t)}) and ${this.rel(b.date)} on P${b.proc} (called ${this.rel(b.t)}), ` +
            `${b.date - a.date} ms apart (seenInterval ${SEEN_INTERVAL_MS} ms), no logout between; faults around: ${this.faultsAround(a.date - 1000, b.t)}: ${this.story(user, Math.max(b.date, b.t) + 1000)}`,
        );
      }
      this.checkReported(user, events, mine, by);
    }
    const raises = new Set<string>();
    const bound = this.maxOnline(Infinity);
    for (const h of this.hooks) {
      if (h.hook !== 'record') continue;
      const raise = `${h.count} at ${this.rel(h.at)}`;
      if (raises.has(raise)) this.violation('onRecord twice', `onRecord(${raise}) called again, on P${h.proc} at ${this.rel(h.t)}`);
      raises.add(raise);
      if (h.count > bound) this.violation('record', `onRecord(${raise}) on P${h.proc}, but at most ${bound} users were ever online at once by the model`);
    }
  }

  /** A cut-off process that served `e` (its writes held until the cut ends), if one did. */
  private cutAt(e: PresenceEvent): Outage | undefined {
    return this.outages.find((o) => CUT.has(o.kind) && o.proc === e.proc && o.start <= (e.end ?? Infinity) + this.syncMs + 1000 && (e.end ?? Infinity) <= (o.end ?? Infinity));
  }

  /**
   * A repeat that a partition justifies: the report at `to` is for a touch held on a cut-off process, and no
   * request that reached Redis (elsewhere, or on that process before the cut) kept the user online there until
   * the held touches landed, so Redis saw the user expire (taking their report with them, as documented):
   * to Redis, the user left and came back. The held touch landed before its report was called (`calledAt`):
   * a request sent after that cannot have kept the user online until then, and a logout keeps nobody online.
   */
  private expiredInRedis(events: readonly PresenceEvent[], from: number, to: number, calledAt: number): boolean {
    const touch = events.find((e) => e.kind === 'touch' && e.send - this.clockSlackMs <= to && to <= (e.end ?? Infinity) + this.clockSlackMs);
    const cut = touch === undefined ? undefined : this.cutAt(touch);
    if (touch === undefined || cut === undefined) return false;
    const landed = Math.min((cut.end ?? Infinity) + this.syncMs + 1000, calledAt);
    // Held by the same cut (as cutAt tells: a touch made up to a sync before it began may not have been sent) is not
    // reached; nor is one made elsewhere within a sync (and a round trip) of the landing: its process's next sync may
    // have carried it after the held touch.
    const reached = events.filter((e) => e.kind === 'touch' && (e.end ?? Infinity) + this.syncMs + 1000 < landed && this.cutAt(e) !== cut);
    const last = Math.max(from, ...reached.map((e) => e.end ?? e.send));
    return last + this.thresholdMs < landed;
  }

  private faultsAround(from: number, to: number): string {
    const near = this.outages.filter((o) => o.start <= to && (o.end ?? Infinity) >= from);
    return near.map((o) => `${o.kind}${CUT.has(o.kind) ? `@P${o.proc}` : ''} ${this.rel(o.start)}–${o.end === undefined ? '?' : this.rel(o.end)}`).join(', ') || 'none';
  }

  /**
   * None lost: each touch has an onSeen dated from a seenInterval before it to its end, or later when
   * the user's next requests came before it had surely reached Redis and been answered: a later touch
   * that lands first takes the report, and a logout (whose request is a touch, then forget()) drops a
   * queued touch and a report not yet delivered, and makes its own onSeen. A recovery window after an
   * epoch change holds reports back (the deferred report carries the latest touch).
   */
  private checkReported(user: number, events: readonly PresenceEvent[], seen: readonly HookCall[], by: number): void {
    const dates = seen.map((h) => (h as { date: number }).date);
    events.forEach((e, i) => {
      if (e.kind !== 'touch' || e.end === undefined) return;
      let upto = e.end;
      const reached = this.propagated(e.end);
      for (const f of events.slice(i + 1)) {
        if (f.send >= reached) break;
        upto = Math.max(upto, f.end ?? Infinity);
      }
      let deferred = false;
      // A touch held on a cut-off process reaches Redis when the cut ends: a restart just after finds it in its window.
      const cut = this.cutAt(e);
      const lands = cut === undefined ? upto : Math.max(upto, (cut.end ?? Infinity) + this.syncMs + 1000);
      for (const o of this.outages) {
        if (!LOSSY.has(o.kind)) continue;
        const recovered = (o.end ?? Infinity) + this.recoveryMs + 2 * this.syncMs + 2000;
        // A touch waits for its process's next sync: one made before a restart may reach Redis after it, in the window.
        if (o.start <= lands + this.settleMs && upto < recovered) {
          upto = recovered;
          deferred = true;
        }
      }
      if (upto > by) return;
      // A report a recovery window held back goes out when the window ends only if the user is still online
      // then (docs/redis-and-processes.md, "Hooks, once"): one who left meanwhile may go unreported.
      const then = this.model.judge(user, upto, upto);
      if (deferred && (then.settled ? !then.online : then.why === 'near expiry')) {
        this.counts.deferredGone++;
        return;
      }
      // Held on a cut-off process until it had expired: Redis ignores a touch older than the threshold (no presence, no report).
      if (cut !== undefined && (cut.end ?? Infinity) + this.syncMs + 1000 > e.send + this.thresholdMs) {
        this.counts.expiredUnsent++;
        return;
      }
      const from = e.send - SEEN_INTERVAL_MS - this.clockSlackMs;
      if (!dates.some((d) => d > from && d <= upto + this.clockSlackMs)) {
        const near = dates.filter((d) => Math.abs(d - e.send) < 3 * SEEN_INTERVAL_MS).map((d) => this.rel(d));
        this.violation(
          'onSeen lost',
          `user ${user}: ${this.describeEvent(e)} never reported (onSeen dates near it: ${near.join(', ') || 'none'}): ${this.story(user, e.end + 3 * SEEN_INTERVAL_MS)}`,
        );
      }
    });
  }

  /** At the end, settled: the processes agree with each other, on every user not about to expire. */
  private checkAgreement(reads: readonly Read[], xs: number, xr: number): void {
    // Everyone is settled by now but those about to expire (or whose request failed).
    const exempt = new Set(USERS.filter((user) => !this.model.judge(user, xs, xr).settled));
    const views = reads.map(({ proc, locals }) => {
      const ids = locals.onlineNowIds.map(Number).filter((id) => !exempt.has(id));
      return { proc, ids: [...new Set(ids)].sort((a, b) => a - b), count: locals.onlineCount + locals.onlineHidden - (locals.onlineNowIds.length - ids.length) };
    });
    const [first, ...rest] = views;
    for (const other of rest) {
      if (other.count !== first.count || JSON.stringify(other.ids) !== JSON.stringify(first.ids)) {
        const onlyFirst = first.ids.filter((id) => !other.ids.includes(id));
        const onlyOther = other.ids.filter((id) => !first.ids.includes(id));
        this.violation(
          'disagree',
          `final check: P${first.proc} and P${other.proc} disagree (${exempt.size} unsettled users left out): ` +
            `count ${first.count} vs ${other.count}; only on P${first.proc}: [${onlyFirst.join(',')}], only on P${other.proc}: [${onlyOther.join(',')}]`,
        );
      }
    }
  }
}

/**
 * Every interval keeps the user side (invisible flips, bare touches, hooks, guest and staff reads).
 * The new faults run at 50 ms and 1 s, 60 s each (room for all five, then pauses and restarts); at 5 s the recovery window and the staleness bound
 * are 15 s and a fault settles in 17.5 s, so in 30 s they would leave no checks (and a 9 s partition
 * never reaches the bound): that run keeps pauses and empty restarts.
 */
const RUNS = [
  { syncMs: 50, seconds: 60, kinds: ALL_FAULTS },
  { syncMs: 1000, seconds: 60, kinds: ALL_FAULTS },
  { syncMs: 5000, seconds: 30, kinds: ['pause', 'restart'] as const },
];

describe('RedisStore presence truth: 4 processes on one Redis, random sessions, races and Redis faults, against a model', function () {
  this.timeout(60_000);
  const seed = modelSeed();
  const children: ChildProcess[] = [];
  let site: RedisSite | undefined;

  afterEach(async () => {
    await Promise.all(children.splice(0).map(stopWorker));
    await site?.stop();
    site = undefined;
  });

  for (const { syncMs, seconds, kinds } of RUNS) {
    const thresholdMs = Math.max(8000, 5 * syncMs);
    it(`syncInterval ${syncMs} ms, threshold ${thresholdMs / 1000} s, faults: ${kinds.join(', ')}: every process shows what the model says`, async function () {
      const durationMs = Number(process.env.MODEL_SECONDS ?? seconds) * 1000;
      this.timeout(durationMs + 3 * (3 * syncMs + 2500) + 120_000);
      requireBinary(this, REDIS_SERVER, 'apt-get install -y redis-server');
      console.log(`      model seed: ${seed} (replay with MODEL_SEED=${seed})`);
      site = await RedisSite.start(PROCS.length);
      const prefix = uniquePrefix();
      const hooks: HookCall[] = [];
      const proxies = site.proxies;
      const workers = await Promise.all(CLIENTS.map((kind, proc) => startWorker(children, proc, proxies[proc].port, kind, prefix, syncMs, thresholdMs / 1000, hooks)));
      const run = new ModelRun(seed, syncMs, workers, site, hooks);
      const rng = new Rng(seed);
      const chains = planChains(rng, durationMs);
      const faults = planFaults(rng, durationMs, run.outageSettleMs, kinds);
      await run.run(chains, faults, durationMs);
      console.log(`      ${run.summary()}`);
      run.writeLog();
      run.assertTruth();
    });
  }
});

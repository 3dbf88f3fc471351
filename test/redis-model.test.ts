import { expect } from 'chai';
import { spawn, type ChildProcess } from 'node:child_process';
import { appendFileSync } from 'node:fs';
import path from 'node:path';
import type { LocalsJson } from './helpers/app';
import { CookieBrowser } from './helpers/browser';
import { PresenceModel, Rng, modelSeed, type PresenceEvent } from './helpers/model';
import { REDIS_SERVER, RedisServer, uniquePrefix, type ClientKind } from './helpers/redis';
import { requireBinary } from './helpers/requirements';
import { sleep } from './helpers/server';

/**
 * Presence truth, at random: 200 users sign in, browse, log out and sign in
 * again through 4 Node processes that share one redis-server, which is
 * paused (SIGSTOP) and restarted empty at random moments. Every few seconds,
 * and once everything has settled at the end, every process is asked about
 * every user, and must agree with a model of what the package promises (see
 * helpers/model.ts): no ghosts, no lost users, lastSeen the time of the request.
 *
 * The plan (who does what, where, when; the faults) comes from a seeded PRNG:
 * the seed is printed, and MODEL_SEED=N replays the same plan (the exact
 * interleavings still depend on timing). MODEL_SECONDS sets the length (30);
 * MODEL_LOG=file appends every violation there (a failure shows a few of each kind).
 */

const WORKER = path.join(__dirname, 'fixtures', 'model-worker.ts');
/** One client kind per process, both kinds twice. */
const CLIENTS: readonly ClientKind[] = ['node-redis', 'ioredis', 'node-redis', 'ioredis'];
const PROCS = CLIENTS.map((_, i) => i);
const USERS = Array.from({ length: 200 }, (_, i) => i + 1);
/** A fifth of the users get most of the traffic: the rest are often settled when checked. */
const HOT = USERS.slice(0, 40);
const SECONDS = Number(process.env.MODEL_SECONDS ?? 30);
/** Planned sequences of requests (a page, a logout, a logout then a sign-in elsewhere, …) per second. */
const CHAINS_PER_SECOND = 50;
/** At most this many sequences run at once (each user's own run one after another). */
const MAX_IN_FLIGHT = 8;
const CHECK_EVERY_MS = 5000;
/** lastSeen must be the request's time: within its [send, response] widened by this. */
const LAST_SEEN_SLACK_MS = 150;
/** Violations shown in full per kind; the rest are counted. */
const SHOWN_PER_KIND = 6;

type Op = 'login' | 'page' | 'logout';
interface Step {
  readonly op: Op;
  readonly proc: number;
  /** Wait before this step, ms. */
  readonly waitMs?: number;
}
interface Chain {
  /** ms after the start of the run. */
  readonly at: number;
  readonly user: number;
  readonly label: string;
  readonly steps: readonly Step[];
}
interface Fault {
  readonly at: number;
  readonly kind: 'pause' | 'restart';
  readonly ms: number;
}
interface Outage {
  readonly kind: 'pause' | 'restart';
  readonly start: number;
  end: number | undefined;
}
interface Worker {
  readonly child: ChildProcess;
  readonly base: string;
}
interface Violation {
  readonly kind: 'ghost' | 'lost' | 'lastSeen' | 'count' | 'page' | 'own page' | 'disagree' | 'request';
  readonly text: string;
}

function startWorker(children: ChildProcess[], redisPort: number, kind: ClientKind, prefix: string, syncMs: number, thresholdS: number): Promise<Worker> {
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', WORKER, String(redisPort), kind, prefix, String(syncMs), String(thresholdS)],
    { stdio: ['pipe', 'pipe', 'inherit'] },
  );
  children.push(child);
  return new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`worker did not start within 30 s: ${out}`)), 30_000);
    child.stdout!.on('data', (chunk: Buffer) => {
      out += chunk.toString();
      const line = out.split('\n').find((l) => l.startsWith('{'));
      if (line) {
        clearTimeout(timer);
        resolve({ child, base: (JSON.parse(line) as { base: string }).base });
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

/**
 * Who does what, where, and when: drawn up front, following each user's sessions
 * (one per process at most: a browser tab per server behind a load balancer), so
 * the plan depends on the seed only.
 */
function planChains(rng: Rng, durationMs: number): Chain[] {
  const count = Math.round((durationMs / 1000) * CHAINS_PER_SECOND);
  const times = Array.from({ length: count }, () => rng.between(0, durationMs)).sort((a, b) => a - b);
  const sessions = new Map(USERS.map((u) => [u, new Set<number>()]));
  const elsewhere = (p: number): number[] => PROCS.filter((q) => q !== p);
  return times.map((at): Chain => {
    const user = rng.chance(0.6) ? rng.pick(HOT) : rng.pick(USERS);
    const mine = sessions.get(user)!;
    const signedIn = [...mine];
    if (signedIn.length === 0) {
      const p = rng.pick(PROCS);
      mine.add(p);
      return { at, user, label: 'sign-in', steps: [{ op: 'login', proc: p }, { op: 'page', proc: p }] };
    }
    const r = rng.next();
    const free = PROCS.filter((q) => !mine.has(q));
    if (r < 0.4 || (r < 0.5 && free.length === 0)) {
      return { at, user, label: 'page', steps: [{ op: 'page', proc: rng.pick(signedIn) }] };
    }
    if (r < 0.5) {
      const p = rng.pick(free);
      mine.add(p);
      return { at, user, label: 'sign-in on another process', steps: [{ op: 'login', proc: p }, { op: 'page', proc: p }] };
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
        steps: [{ op: 'logout', proc: b }, { op: 'login', proc: c, waitMs }, { op: 'page', proc: c }],
      };
    }
    // The race that used to revive users: a page on one process, at once a logout on another.
    const a = rng.pick(signedIn);
    const b = rng.pick(elsewhere(a));
    const steps: Step[] = mine.has(b) ? [] : [{ op: 'login', proc: b }];
    steps.push({ op: 'page', proc: a }, { op: 'logout', proc: b });
    mine.delete(b);
    return { at, user, label: 'page, logout elsewhere', steps };
  });
}

/** Redis pauses (SIGSTOP, 0.5–3 s) and restarts (data lost), with quiet stretches between some for checks. */
function planFaults(rng: Rng, durationMs: number, outageSettleMs: number): Fault[] {
  const faults: Fault[] = [];
  let at = rng.between(2000, 6000);
  while (at < durationMs - 1000) {
    const kind = rng.chance(0.55) ? 'pause' : 'restart';
    const ms = kind === 'pause' ? rng.between(500, 3000) : 0;
    faults.push({ at, kind, ms });
    at += ms + rng.between(2000, 8000) + (rng.chance(0.5) ? outageSettleMs + 2000 : 0);
  }
  return faults;
}

interface CheckRecord {
  readonly label: string;
  readonly settled: number;
  readonly online: number;
}

class ModelRun {
  readonly model: PresenceModel;
  readonly thresholdMs: number;
  /** After a user's last event, every process must show it within this. */
  readonly settleMs: number;
  /** After a pause or restart ends, every process must be right again within this. */
  readonly outageSettleMs: number;
  readonly outages: Outage[] = [];
  readonly violations: Violation[] = [];
  readonly checks: CheckRecord[] = [];
  readonly counts = { chains: 0, requests: 0, logins: 0, pages: 0, logouts: 0, delayedChecks: 0, skippedChecks: 0 };
  private readonly browsers = new Map<string, CookieBrowser>();
  private checking: Promise<void> | undefined;
  private faultActive = false;
  private t0 = Date.now();

  constructor(
    readonly seed: number,
    readonly syncMs: number,
    private readonly workers: readonly Worker[],
    private readonly redis: RedisServer,
  ) {
    this.thresholdMs = Math.max(8000, 5 * syncMs);
    this.settleMs = 2 * syncMs + 1500;
    // A restart: reconnect (≤ 300 ms), every process's next sync sees the new epoch and
    // writes back its replica, and the others read it at their sync after: three syncs, with room.
    this.outageSettleMs = 3 * syncMs + 2500;
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
    const loops = await Promise.allSettled([this.runChains(chains), this.runFaults(faults), this.runChecks(durationMs)]);
    for (const loop of loops) if (loop.status === 'rejected') throw loop.reason;
    // Settled: every user's last event and the last outage had their time.
    const quiet = Math.max(this.model.lastActivity() + this.settleMs, this.lastOutageEnd() + this.outageSettleMs) + 100;
    await sleepUntil(quiet);
    await this.check(true);
  }

  summary(): string {
    const byKind = this.violationCounts();
    const faults = this.outages.map((o) => (o.kind === 'pause' ? `pause ${this.rel(o.start)}+${((o.end! - o.start) / 1000).toFixed(1)}s` : `restart ${this.rel(o.start)}`));
    const settled = this.checks.map((c) => `${c.label} ${c.settled}/${USERS.length} (${c.online} online)`);
    return (
      `${this.label}: ${this.counts.chains} sequences, ${this.counts.requests} requests ` +
      `(${this.counts.logins} sign-ins, ${this.counts.pages} pages, ${this.counts.logouts} logouts); ` +
      `faults: ${faults.join(', ') || 'none'}; ${this.checks.length} checks (${this.counts.delayedChecks} waited for an outage to settle, ` +
      `${this.counts.skippedChecks} skipped), ` +
      `users settled per check: ${settled.join(', ')}; violations: ${this.violations.length}` +
      (this.violations.length > 0 ? ` (${Object.entries(byKind).map(([k, n]) => `${k} ${n}`).join(', ')})` : '')
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
    const outages = this.outages.map((o) => `${o.kind} ${this.rel(o.start)}–${o.end === undefined ? '?' : this.rel(o.end)}`);
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
    return `${e.kind}@P${e.proc} ${this.rel(e.send)}–${e.end === undefined ? '…' : this.rel(e.end)}`;
  }

  /** The user's last few presence requests, for a violation's message. */
  private story(user: number, upto: number): string {
    const events = this.model.history(user).filter((e) => e.send <= upto);
    const shown = events.slice(-4).map((e) => this.describeEvent(e));
    return `${events.length > 4 ? '…, ' : ''}${shown.join(', ') || 'no requests'}`;
  }

  private lastOutageEnd(): number {
    return this.outages.reduce((latest, o) => Math.max(latest, o.end ?? Date.now()), 0);
  }

  /** Checks run only outside outages, and long enough after one. */
  private blocked(): boolean {
    return this.faultActive || Date.now() < this.lastOutageEnd() + this.outageSettleMs;
  }

  private async runChains(chains: readonly Chain[]): Promise<void> {
    const limit = limiter(MAX_IN_FLIGHT);
    // Each user's sequences run one after another: the order of their requests is known.
    const tails = new Map<number, Promise<void>>();
    for (const chain of chains) {
      await sleepUntil(this.t0 + chain.at);
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
      if (step.waitMs !== undefined) await sleep(step.waitMs);
      await this.step(chain.user, step, chain.label);
    }
  }

  private async step(user: number, { op, proc }: Step, label: string): Promise<void> {
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
        return;
      }
      const browser = this.browsers.get(key);
      if (browser === undefined) throw new Error(`the plan has no session for user ${user} on P${proc}`);
      if (op === 'page') {
        this.counts.pages++;
        event = this.model.begin(user, 'touch', proc);
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
      this.violation('request', `${op} of user ${user} on P${proc} (in "${label}") at ${this.rel(event?.send ?? Date.now())} failed: ${(error as Error).message}; user not judged further`);
    }
  }

  /** README: "The request's own user is already in its own page." */
  private checkOwnPage(event: PresenceEvent, locals: LocalsJson): void {
    const where = `user ${event.user}'s own page on P${event.proc} (${this.rel(event.send)}–${this.rel(event.end!)})`;
    const seen = locals.lastSeen?.[0] ?? null;
    if (locals.isOnline?.[0] !== true || seen === null) {
      this.violation('own page', `${where} shows them offline`);
      return;
    }
    const at = Date.parse(seen);
    if (at < event.send - LAST_SEEN_SLACK_MS || at > event.end! + LAST_SEEN_SLACK_MS) {
      this.violation('own page', `${where} gives lastSeen ${this.rel(at)}, not the request's time`);
    }
  }

  private async runFaults(faults: readonly Fault[]): Promise<void> {
    for (const fault of faults) {
      await sleepUntil(this.t0 + fault.at);
      // A check in progress finishes first: checks happen only outside outages.
      while (this.checking !== undefined) await this.checking;
      this.faultActive = true;
      const outage: Outage = { kind: fault.kind, start: Date.now(), end: undefined };
      this.outages.push(outage);
      try {
        if (fault.kind === 'pause') {
          this.redis.pause();
          await sleep(fault.ms);
          this.redis.resume();
        } else {
          await this.redis.restart();
        }
      } finally {
        outage.end = Date.now();
        this.faultActive = false;
      }
    }
  }

  private async runChecks(durationMs: number): Promise<void> {
    const end = this.t0 + durationMs;
    for (let next = this.t0 + CHECK_EVERY_MS; next < end; ) {
      await sleepUntil(next);
      if (this.blocked()) this.counts.delayedChecks++;
      while (this.blocked() && Date.now() < end) await sleep(100);
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

  /** Every process, asked about every user, against the model. */
  private async check(final: boolean): Promise<void> {
    const n = this.checks.length + 1;
    const ask = `/locals?ask=${JSON.stringify(USERS)}`;
    const reads = await Promise.all(
      this.workers.map(async (worker, proc) => {
        const xs = Date.now();
        try {
          const locals = await new CookieBrowser(worker.base).json<LocalsJson>(ask);
          return { proc, xs, xr: Date.now(), locals };
        } catch (error) {
          this.violation('request', `check ${n}: the read on P${proc} failed: ${(error as Error).message}`);
          return undefined;
        }
      }),
    );
    const done = reads.filter((r) => r !== undefined);
    if (done.length === 0) return;
    const xs = Math.min(...done.map((r) => r.xs));
    const xr = Math.max(...done.map((r) => r.xr));
    const judged = USERS.map((u) => this.model.judge(u, xs, xr));
    this.checks.push({
      label: final ? 'final' : `@${this.rel(xs)}`,
      settled: judged.filter((j) => j.settled).length,
      online: judged.filter((j) => j.settled && j.online).length,
    });
    for (const read of done) this.checkRead(final ? `final check (${n})` : `check ${n}`, read);
    if (final && done.length === reads.length) this.checkAgreement(done, xs, xr);
  }

  private checkRead(name: string, { proc, xs, xr, locals }: { proc: number; xs: number; xr: number; locals: LocalsJson }): void {
    const where = `${name} on P${proc} (${this.rel(xs)}–${this.rel(xr)})`;
    const ids = locals.onlineNowIds;
    const listed = new Set(ids);
    const isOnline = locals.isOnline ?? [];
    const lastSeen = locals.lastSeen ?? [];
    // A page agrees with itself: with max 500, everyone counted is listed, once. (Whether each
    // badge agrees with the list is judged below for settled users only: near their expiry
    // instant a user may still be listed for a moment after their badge went out.)
    if (listed.size !== ids.length) this.violation('page', `${where}: onlineNowIds has duplicates`);
    if (locals.onlineCount !== ids.length) this.violation('page', `${where}: onlineCount ${locals.onlineCount}, but ${ids.length} listed (max 500)`);
    let settledOnline = 0;
    let unsettled = 0;
    USERS.forEach((user, i) => {
      const judgement = this.model.judge(user, xs, xr);
      if (!judgement.settled) {
        unsettled++;
        return;
      }
      const shown = isOnline[i] === true || listed.has(user) || lastSeen[i] !== null;
      if (judgement.online) {
        settledOnline++;
        if (isOnline[i] !== true || !listed.has(user) || lastSeen[i] === null) {
          const how = `isOnline ${isOnline[i]}, ${listed.has(user) ? '' : 'not '}listed, lastSeen ${lastSeen[i]}`;
          this.violation('lost', `${where}: user ${user} offline (${how}), but online by the model: ${this.story(user, xr)}`);
          return;
        }
        const at = Date.parse(lastSeen[i]!);
        const { send, end } = judgement.touch;
        if (at < send - LAST_SEEN_SLACK_MS || at > end! + LAST_SEEN_SLACK_MS) {
          const off = at < send ? `${send - at} ms before` : `${at - end!} ms after`;
          this.violation('lastSeen', `${where}: user ${user} lastSeen ${this.rel(at)}, ${off} their last page's request: ${this.story(user, xr)}`);
        }
      } else if (shown) {
        const at = lastSeen[i] === null ? 'none' : this.rel(Date.parse(lastSeen[i]!));
        const how = `isOnline ${isOnline[i]}, ${listed.has(user) ? '' : 'not '}listed, lastSeen ${at}`;
        this.violation('ghost', `${where}: user ${user} online (${how}), but offline by the model (${judgement.why}): ${this.story(user, xr)}`);
      }
    });
    if (locals.onlineCount < settledOnline || locals.onlineCount > settledOnline + unsettled) {
      this.violation(
        'count',
        `${where}: onlineCount ${locals.onlineCount}, the model says ${settledOnline} settled online + up to ${unsettled} unsettled`,
      );
    }
  }

  /** At the end, settled: the processes agree with each other, on every user not about to expire. */
  private checkAgreement(reads: readonly { proc: number; locals: LocalsJson }[], xs: number, xr: number): void {
    // Everyone is settled by now but those about to expire (or whose request failed).
    const exempt = new Set(USERS.filter((user) => !this.model.judge(user, xs, xr).settled));
    const views = reads.map(({ proc, locals }) => {
      const ids = locals.onlineNowIds.filter((id) => !exempt.has(Number(id)));
      return { proc, ids: [...new Set(ids)].sort((a, b) => Number(a) - Number(b)), count: locals.onlineCount - (locals.onlineNowIds.length - ids.length) };
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

describe('RedisStore presence truth: 4 processes on one Redis, random sessions, races and Redis faults, against a model', function () {
  this.timeout(60_000);
  const seed = modelSeed();
  const children: ChildProcess[] = [];
  let redis: RedisServer | undefined;

  afterEach(async () => {
    await Promise.all(children.splice(0).map(stopWorker));
    redis?.resume();
    await redis?.stop();
    redis = undefined;
  });

  for (const syncMs of [50, 1000, 5000]) {
    const thresholdMs = Math.max(8000, 5 * syncMs);
    it(`syncInterval ${syncMs} ms, threshold ${thresholdMs / 1000} s: every process shows what the model says`, async function () {
      const durationMs = SECONDS * 1000;
      this.timeout(durationMs + 2 * (3 * syncMs + 2500) + 120_000);
      requireBinary(this, REDIS_SERVER, 'apt-get install -y redis-server');
      console.log(`      model seed: ${seed} (replay with MODEL_SEED=${seed})`);
      redis = await RedisServer.start();
      const prefix = uniquePrefix();
      const port = redis.port;
      const workers = await Promise.all(CLIENTS.map((kind) => startWorker(children, port, kind, prefix, syncMs, thresholdMs / 1000)));
      const run = new ModelRun(seed, syncMs, workers, redis);
      const rng = new Rng(seed);
      const chains = planChains(rng, durationMs);
      const faults = planFaults(rng, durationMs, run.outageSettleMs);
      await run.run(chains, faults, durationMs);
      console.log(`      ${run.summary()}`);
      run.writeLog();
      run.assertTruth();
    });
  }
});

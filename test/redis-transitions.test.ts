import { expect } from 'chai';
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { CookieBrowser } from './helpers/browser';
import { Rng, modelSeed } from './helpers/model';
import { RedisStore, createOnlineTracker, type OnlineTracker } from 'express-online-now';
import { REDIS_SERVER, RedisServer, connect, sharedRedis, uniquePrefix, type TestClient } from './helpers/redis';
import { requireBinary } from './helpers/requirements';
import { eventually, sleep } from './helpers/wait';

/**
 * onOnline, onOffline and onStatus across processes, at random, against a model: 30
 * users visit a site of 4 Node processes on one real redis-server (each
 * request to a random process, with that process's own session cookie), and
 * each visit ends with a logout or by walking away. Within a visit a user's
 * requests are less than half a threshold apart; between visits, more than a
 * threshold and a half (or a logout): so every visit is one online and one
 * offline, whatever the faults below delay. Redis is paused (SIGSTOP, shorter
 * than the margin) and processes are restarted gracefully, at random; in the
 * second run Redis also restarts empty.
 *
 * Each user's calls, in the order they were made (any process), must be the
 * model's: visit 1's online (dated by its first request), its offline (a
 * logout's time with 'logout', or the last request + threshold with 'expired'),
 * visit 2's online… Each at most once, in order, on whatever process; with
 * Redis keeping its data, every one exactly once. Through a restart empty,
 * one may be missing (docs: at most once) but never repeated or out of order.
 * Statuses (idle 1 s, away 2 s after a page; some requests are heartbeats,
 * presence without activity) are told within their visit, from active (the
 * online's) to idle to away and back to active, none skipped or repeated,
 * dates never going back, a visit walked away from ending idle then away
 * before its expiry, each dated as a page of the visit makes it: active by
 * the page's time, idle and away by its activity time (to a step) plus the
 * window; a page that reached Redis after a change was told counts from that
 * change (dates never go back).
 * The seed is printed; MODEL_SEED=N replays the plan.
 */

const WORKER = path.join(__dirname, 'fixtures', 'transitions-worker.ts');
const PROCS = 4;
const USERS = Array.from({ length: 30 }, (_, i) => i + 1);
const THRESHOLD_MS = 5000;
const SYNC_MS = 100;
/** Within a visit: well inside the threshold, even when a pause holds a request's write back. */
const SHORT_GAP: [number, number] = [100, 1500];
/** Between visits: past the threshold by more than a pause and a few syncs. */
const LONG_GAP: [number, number] = [THRESHOLD_MS + 2500, THRESHOLD_MS + 4500];
/**
 * After a logout, before the next visit: longer than a pause, so one pause never holds a whole visit and the
 * start of the next (then the first may go untold: docs/forum-features.md). A pause may still land the logout
 * after the next visit's first page: both are told then.
 */
const AFTER_LOGOUT: [number, number] = [2500, 4000];
/** Longer than the store's 1 s sync timeout at times: replies then come late, and are dropped and sent again. */
const PAUSE_MS: [number, number] = [200, 2000];
/** How far a date given to a hook may be from the request that made it: Redis's clock as the processes estimate it. */
const SLACK_MS = 300;
/** A gracefully closed process's undelivered transitions pass to another after the lease (5 s at this syncInterval). */
const LEASE_MS = 5000;
const RECOVERY_MS = 2000;
const [IDLE_MS, AWAY_MS] = [1000, 2000];
/** The statuses each can follow. */
const FROM: Record<string, readonly string[]> = { idle: ['active'], away: ['idle'], active: ['idle', 'away'] };
/** Activity times are stamped to a tenth of idleAfter. */
const STEP_MS = IDLE_MS / 10;

interface Call {
  readonly hook: 'online' | 'offline' | 'status';
  readonly status?: string;
  readonly id: number;
  readonly at: number;
  readonly why?: 'logout' | 'expired' | 'evicted';
  readonly t: number;
  readonly proc: number;
}
/** A request as the client saw it: the server handled it between `send` and `end`. */
interface Request {
  readonly send: number;
  end: number;
}
interface Visit {
  readonly first: Request;
  /** Its last request (a heartbeat too): the user expires a threshold after it. */
  last: Request;
  logout?: Request;
  /** Its requests that are activity: pages, and the logout (a request marks its user first); not heartbeats. */
  readonly pages: Request[];
}
interface Worker {
  child: ChildProcess;
  base: string;
  /** Each user's session on this process (a new process: new sessions). */
  jars: Map<number, CookieBrowser>;
  up: boolean;
}

function startWorker(proc: number, redisPort: number, prefix: string, calls: Call[], children: ChildProcess[]): Promise<Worker> {
  const child = spawn(process.execPath, ['--import', 'tsx', WORKER, String(redisPort), prefix, String(SYNC_MS), String(THRESHOLD_MS / 1000)], {
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
        const message = JSON.parse(line) as { base?: string } & Omit<Call, 'proc'>;
        if (message.base !== undefined) {
          clearTimeout(timer);
          resolve({ child, base: message.base, jars: new Map(), up: true });
        } else {
          calls.push({ ...message, proc });
        }
      }
    });
    child.once('exit', (code) => reject(new Error(`worker exited with ${code} before listening`)));
  });
}

/** Graceful: stdin closes, the tracker closes (its last sync acknowledges what it told), the process exits. */
async function stopWorker(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.stdin?.end();
  const force = setTimeout(() => child.kill('SIGKILL'), 5000);
  await exited;
  clearTimeout(force);
}

class TransitionsRun {
  readonly calls: Call[] = [];
  readonly visits = new Map<number, Visit[]>(USERS.map((u) => [u, []]));
  readonly workers: Worker[] = [];
  /** When Redis restarted empty. */
  /** When Redis restarted empty: from the kill to when it answered again (slow on a loaded machine). */
  readonly restarts: [number, number][] = [];
  readonly children: ChildProcess[] = [];
  private readonly prefix = uniquePrefix();
  private stopping = false;
  private lossy = false;
  /** Users with a request that failed (a process closing under it): whether the server handled it is unknown, so they are not checked. */
  readonly unsure = new Set<number>();

  constructor(
    private readonly redis: RedisServer,
    private readonly rng: Rng,
  ) {}

  async start(): Promise<void> {
    for (let proc = 0; proc < PROCS; proc++) this.workers.push(await startWorker(proc, this.redis.port, this.prefix, this.calls, this.children));
  }

  /** A process that is up, the planned one if it is. */
  private worker(planned: number): [number, Worker] {
    for (let i = 0; i < PROCS; i++) {
      const proc = (planned + i) % PROCS;
      if (this.workers[proc].up) return [proc, this.workers[proc]];
    }
    throw new Error('no process up');
  }

  /** One request of `user` on a random process: a sign-in first where they have no session there. */
  private async request(user: number, what: 'page' | 'beat' | 'logout'): Promise<Request> {
    const [, worker] = this.worker(Math.floor(this.rng.next() * PROCS));
    let jar = worker.jars.get(user);
    const send = Date.now();
    const request: Request = { send, end: Infinity };
    try {
      if (jar === undefined) {
        jar = new CookieBrowser(worker.base);
        worker.jars.set(user, jar);
        await jar.post('/login', { id: String(user) });
      }
      const res = what === 'page' ? await jar.get('/page') : await jar.post(what === 'beat' ? '/beat' : '/logout');
      await res.arrayBuffer().catch(() => undefined);
      if (what === 'logout') worker.jars.delete(user);
      request.end = Date.now();
    } catch {
      this.unsure.add(user);
    }
    return request;
  }

  /** One user's visits until `until`: a few pages, then a logout or walking away; a long gap between visits. */
  async user(user: number, until: number): Promise<void> {
    await sleep(this.rng.between(0, 3000));
    while (Date.now() < until && !this.stopping) {
      const first = await this.request(user, 'page');
      const visit: Visit = { first, last: first, pages: [first] };
      this.visits.get(user)!.push(visit);
      const pages = Math.floor(this.rng.between(0, 5));
      for (let i = 0; i < pages && Date.now() < until; i++) {
        await sleep(this.rng.between(...SHORT_GAP));
        // Now and then a heartbeat of an untouched page: presence, not activity.
        const beat = this.rng.chance(0.3);
        visit.last = await this.request(user, beat ? 'beat' : 'page');
        if (!beat) visit.pages.push(visit.last);
      }
      if (this.rng.chance(0.5)) {
        await sleep(this.rng.between(...SHORT_GAP));
        visit.logout = await this.request(user, 'logout');
        visit.pages.push(visit.logout);
        await sleep(this.rng.between(...AFTER_LOGOUT));
      } else {
        await sleep(this.rng.between(...LONG_GAP));
      }
    }
  }

  /** Redis paused now and then; a process restarted now and then; in the lossy run, Redis restarted empty. */
  async faults(until: number, lossy: boolean): Promise<void> {
    while (Date.now() < until - 4000) {
      await sleep(this.rng.between(2000, 5000));
      // The lossy run restarts Redis empty at its first fault and often after: it must not pass without one.
      const roll = lossy && this.restarts.length === 0 ? 1 : this.rng.next();
      if (roll < 0.4) {
        this.redis.pause();
        await sleep(this.rng.between(...PAUSE_MS));
        this.redis.resume();
      } else if (roll < 0.65 || !lossy) {
        const proc = Math.floor(this.rng.next() * PROCS);
        const worker = this.workers[proc];
        if (this.workers.filter((w) => w.up).length < 2) continue;
        worker.up = false;
        await stopWorker(worker.child);
        this.workers[proc] = await startWorker(proc, this.redis.port, this.prefix, this.calls, this.children);
      } else {
        const from = Date.now();
        await this.redis.restart();
        this.restarts.push([from, Date.now()]);
      }
    }
  }

  async run(durationMs: number, lossy: boolean): Promise<void> {
    const until = Date.now() + durationMs;
    await Promise.all([...USERS.map((u) => this.user(u, until)), this.faults(until, lossy)]);
    this.stopping = true;
  }

  /**
   * Every visit has ended (the threshold is the subject of this wait: the last visits expire) and every
   * transition owed has been told (a lease covers one left by a closed process).
   */
  async settled(): Promise<void> {
    await sleep(THRESHOLD_MS + LEASE_MS + 10 * SYNC_MS);
    if (!this.lossy) await eventually(() => USERS.every((u) => this.unsure.has(u) || this.visits.get(u)!.length * 2 <= this.callsOf(u).length), 10_000).catch(() => undefined);
  }

  markLossy(): void {
    this.lossy = true;
  }

  /** A user's onOnline and onOffline calls, in the order they were made. */
  callsOf(user: number): Call[] {
    return this.calls.filter((c) => c.id === user && c.hook !== 'status').sort((a, b) => a.t - b.t);
  }

  /**
   * A user's onStatus calls against their visits: each between its visit's online and offline, never the same
   * status twice in a row nor away → idle, and dated as a request of the visit makes it (see the header).
   */
  private checkStatuses(user: number, visits: readonly Visit[], problems: string[]): number {
    const calls = this.calls.filter((c) => c.id === user).sort((a, b) => a.t - b.t);
    const near = (at: number, r: Request, plus: number, step = 0): boolean => at >= r.send + plus - step - SLACK_MS && at <= r.end + plus + SLACK_MS;
    let visit: Visit | undefined;
    let last: string | undefined;
    let lastAt = NaN;
    /** The visit's online and status changes so far: where news of activity that reached Redis late counts from. */
    let changes: number[] = [];
    let checked = 0;
    for (const call of calls) {
      if (call.hook !== 'status') {
        const what = `user ${user}: ${call.hook} ${call.why ?? ''}@${call.at}`;
        if (call.hook === 'offline' && visit !== undefined) {
          // (A logout may be: one that reached Redis after the user's return is told then, dated by itself.)
          if (call.why === 'expired' && call.at < lastAt) problems.push(`${what} is dated before the status told before it (${last}@${lastAt})`);
          // Walked away: idle, then away (2 s) came before the expiry (5 s) — unless a change may have been lost to a restart.
          const lost = this.lossy && this.nearRestart(call.at - THRESHOLD_MS, call.at);
          if (call.why === 'expired' && visit.logout === undefined && last !== 'away' && !lost)
            problems.push(`${what} after ${last}: a visit walked away from ends idle, then away, then offline`);
        }
        const b = call.hook === 'online' ? this.boundary(call, visits) : undefined;
        visit = b === undefined ? undefined : visits[b >> 1];
        // A user comes online active (their request's activity); one told online when a recovery window ends may not be.
        last = call.hook === 'online' ? 'active' : undefined;
        lastAt = call.hook === 'online' ? call.at : NaN;
        changes = call.hook === 'online' ? [call.at] : [];
        continue;
      }
      checked++;
      const what = `user ${user}: ${call.status}@${call.at} (P${call.proc}; calls ${calls.map((c) => `${c.status ?? c.hook}@${c.at}/P${c.proc}`).join(' ')})`;
      const pages = visit?.pages ?? [];
      const plus = call.status === 'idle' ? IDLE_MS : call.status === 'away' ? AWAY_MS : 0;
      // Near a restart empty, a change not yet delivered may be lost (at most once): the next may then repeat the one before it.
      const lost = this.lossy && this.nearRestart(call.at - AWAY_MS, call.at);
      // A visit whose online a restart empty lost (at most once) still has its statuses: found by their time.
      if (visit === undefined && lost) {
        visit = visits.find((v) => call.at >= v.first.send - SLACK_MS && call.at <= (v.logout?.end ?? v.last.end + THRESHOLD_MS) + SLACK_MS);
        last = undefined;
        changes = [];
      }
      if (visit === undefined) problems.push(`${what} told outside any visit (after its offline, or before an online)`);
      else if (call.status === last && (call.at === lastAt || !lost)) problems.push(`${what} told twice in a row (the last at ${lastAt})`);
      else if (call.at < lastAt) problems.push(`${what} is dated before the transition told before it (${last}@${lastAt})`);
      else if (!lost && FROM[call.status as string] !== undefined && !FROM[call.status as string].includes(last as string)) {
        problems.push(`${what} after ${last}: time makes active idle, then away; activity makes either active`);
      } else if (
        !lost &&
        // A page's activity (never a heartbeat's), or, for a page that reached Redis after a change was told (or a
        // heartbeat that brought the user online before their first page landed), from that change.
        !pages.some((r) => near(call.at, r, plus, plus === 0 ? 0 : STEP_MS)) &&
        !changes.some((at) => Math.abs(call.at - plus - at) <= SLACK_MS)
      ) {
        problems.push(`${what} is not ${plus === 0 ? 'the time' : `the activity time + ${plus} ms`} of any page of its visit: ${JSON.stringify(pages)}`);
      }
      last = call.status;
      lastAt = call.at;
      changes.push(call.at);
    }
    return checked;
  }

  /**
   * Which boundary of which visit a call is (visit i's online is 2i, its offline 2i + 1), or undefined when none
   * matches. An online is dated by the visit's first request, or by a later one (its logout request too, which
   * marks the user first) when that first request reached Redis late: after a later one, or after the logout.
   */
  private boundary(call: Call, visits: readonly Visit[]): number | undefined {
    const within = (at: number, r: Request, plus = 0): boolean => at >= r.send + plus - SLACK_MS && at <= r.end + plus + SLACK_MS;
    for (let i = 0; i < visits.length; i++) {
      const v = visits[i];
      if (call.hook === 'online' && within(call.at, { send: v.first.send, end: (v.logout ?? v.last).end })) return 2 * i;
      if (call.hook === 'offline' && call.why === 'logout' && v.logout !== undefined && within(call.at, v.logout)) return 2 * i + 1;
      if (call.hook === 'offline' && call.why === 'expired' && v.logout === undefined && within(call.at, v.last, THRESHOLD_MS)) return 2 * i + 1;
    }
    return undefined;
  }

  /** Near a restart empty (its recovery window, and the threshold that users online through it may take to leave). */
  private nearRestart(from: number, to: number): boolean {
    return this.restarts.some(([r, back]) => r <= to + SLACK_MS && back + RECOVERY_MS + THRESHOLD_MS + 2000 >= from);
  }

  check(): { problems: string[]; missing: number; checked: number; statuses: number } {
    const problems: string[] = [];
    let missing = 0;
    let statuses = 0;
    for (const user of USERS) {
      if (this.unsure.has(user)) continue;
      const visits = this.visits.get(user)!;
      const calls = this.callsOf(user);
      statuses += this.checkStatuses(user, visits, problems);
      const story = (): string =>
        `visits ${JSON.stringify(visits.map((v) => [v.first.send, v.last.end, v.logout?.end ?? 'walked away']))}; calls ${JSON.stringify(calls.map((c) => [c.hook, c.why, c.at, c.t, `P${c.proc}`]))}`;
      let next = 0;
      for (const call of calls) {
        const b = this.boundary(call, visits);
        if (b === undefined) {
          problems.push(`user ${user}: ${call.hook} ${call.why ?? ''} at ${call.at} matches no visit of the model: ${story()}`);
          continue;
        }
        if (b < next) {
          problems.push(`user ${user}: ${call.hook} of visit ${b >> 1} told again or out of order: ${story()}`);
          continue;
        }
        for (; next < b; next++) {
          const v = visits[next >> 1];
          if (this.lossy && this.nearRestart(v.first.send, (next & 1) === 0 ? v.first.end : (v.logout?.end ?? v.last.end + THRESHOLD_MS))) missing++;
          else problems.push(`user ${user}: ${next & 1 ? 'offline' : 'online'} of visit ${next >> 1} never told: ${story()}`);
        }
        next = b + 1;
      }
      for (; next < 2 * visits.length; next++) {
        const v = visits[next >> 1];
        if (this.lossy && this.nearRestart(v.first.send, (next & 1) === 0 ? v.first.end : (v.logout?.end ?? v.last.end + THRESHOLD_MS))) missing++;
        else problems.push(`user ${user}: ${next & 1 ? 'offline' : 'online'} of visit ${next >> 1} never told: ${story()}`);
      }
    }
    return { problems, missing, checked: USERS.length - this.unsure.size, statuses };
  }

  async stop(): Promise<void> {
    this.stopping = true;
    await Promise.all(this.children.map(stopWorker));
  }
}

describe('RedisStore onOnline/onOffline/onStatus: 4 processes, random visits, Redis pauses and process restarts, against a model', function () {
  const seed = modelSeed();
  let redis: RedisServer | undefined;
  let run: TransitionsRun | undefined;

  afterEach(async () => {
    await run?.stop();
    await redis?.stop();
    run = undefined;
    redis = undefined;
  });

  for (const lossy of [false, true]) {
    const label = lossy
      ? 'Redis also restarted empty: every transition told at most once, in order, matched to the model'
      : 'every transition told exactly once, in per-user order, on whichever process, matching the model';
    it(label, async function () {
      const durationMs = Number(process.env.MODEL_SECONDS ?? 30) * 1000;
      this.timeout(durationMs + 90_000);
      requireBinary(this, REDIS_SERVER, 'apt-get install -y redis-server');
      console.log(`      model seed: ${seed} (replay with MODEL_SEED=${seed})`);
      redis = await RedisServer.start();
      run = new TransitionsRun(redis, new Rng(seed + (lossy ? 1 : 0)));
      if (lossy) run.markLossy();
      await run.start();
      await run.run(durationMs, lossy);
      await run.settled();
      const { problems, missing, checked, statuses } = run.check();
      const visits = [...run.visits.values()].reduce((n, v) => n + v.length, 0);
      console.log(
        `      ${visits} visits, ${run.calls.length} transitions told (${statuses} of them statuses), ${missing} missing near a restart empty (${run.restarts.length} restarts), ${checked} of ${USERS.length} users checked (the rest had a request fail)`,
      );
      expect(visits).to.be.greaterThan(50);
      expect(statuses).to.be.greaterThan(50);
      expect(checked).to.be.greaterThan(USERS.length / 2);
      if (lossy) expect(run.restarts.length).to.be.greaterThan(0);
      expect(problems.slice(0, 8), `${problems.length} problems (seed ${seed})`).to.deep.equal([]);
    });
  }
});

describe('RedisStore transitions with a process that has no hooks, one with other hooks, and one that closes', function () {
  this.timeout(30_000);
  const opened: { online: OnlineTracker; redis: TestClient }[] = [];

  before(function () {
    requireBinary(this, REDIS_SERVER, 'apt-get install -y redis-server');
  });

  afterEach(async () => {
    for (const { online, redis } of opened.splice(0)) {
      await online.close();
      await redis.close();
    }
  });

  async function tracker(prefix: string, told?: string[]): Promise<OnlineTracker> {
    const redis = await connect('node-redis', await sharedRedis());
    const online = createOnlineTracker({
      store: new RedisStore({ client: redis.client, prefix, syncInterval: 100 }),
      threshold: 60,
      ...(told && {
        onOnline: (user) => void told.push(`online ${String(user.id)}`),
        onOffline: (user, _at, why) => void told.push(`offline ${String(user.id)} ${why}`),
      }),
    });
    opened.push({ online, redis });
    await online.count(); // attached, first sync done
    return online;
  }

  it('a sign-in and a logout on the process without hooks are told once by the one with them', async () => {
    const prefix = uniquePrefix();
    const told: string[] = [];
    const withHooks = await tracker(prefix, told);
    const without = await tracker(prefix);
    await withHooks.count(); // it has synced, so Redis knows a process tells transitions
    await without.touch({ id: 7 });
    await eventually(() => expect(told).to.deep.equal(['online 7']));
    await without.forget({ id: 7 });
    await eventually(() => expect(told).to.deep.equal(['online 7', 'offline 7 logout']));
  });

  it('what a closing process was given and had not told passes to another at once, told once', async () => {
    const prefix = uniquePrefix();
    const first: string[] = [];
    const second: string[] = [];
    const a = await tracker(prefix, first);
    const b = await tracker(prefix, second);
    // Users signing in on a: a is given their comings (each caller tells its own), and closes as they come.
    for (let id = 1; id <= 20; id++) await a.touch({ id });
    const closing = opened.findIndex((o) => o.online === a);
    const [{ redis }] = opened.splice(closing, 1);
    await a.close();
    await redis.close();
    await b.touch({ id: 99 }); // b syncs on
    // Within less than the 5 s lease after which a silent process's would pass anyway.
    await eventually(() => expect([...first, ...second].filter((line) => line.startsWith('online'))).to.have.length(21), 3000);
    const all = [...first, ...second];
    expect(new Set(all).size, `each told once: ${all.join(', ')}`).to.equal(all.length);
  });

  it('a process given a transition it has no hook for (processes with different hooks) says so, naming the fix', async () => {
    const prefix = uniquePrefix();
    await tracker(prefix, []);
    const redis = await connect('node-redis', await sharedRedis());
    const errors: Error[] = [];
    // Status on, onStatus only: the comings online of the users it touches are given to it, and it has no onOnline.
    const statusOnly = createOnlineTracker({
      store: new RedisStore({ client: redis.client, prefix, syncInterval: 100 }),
      threshold: 60,
      status: true,
      onStatus: () => undefined,
      onError: (error) => void errors.push(error),
    });
    opened.push({ online: statusOnly, redis });
    await statusOnly.touch({ id: 5 });
    await eventually(() => expect(errors.map((e) => (e as { code?: string }).code)).to.deep.equal(['ERR_ONLINE_NOW_PREFIX_SHARED']));
    expect(errors[0].message).to.match(/given a transition for onOnline.*Give every process that has onOnline, onOffline, onStatus or onRoom the same four/);
  });
});

// The write guard across processes, against a model (issue #24): two app
// processes share one Redis; users open the edit page, beat, take over, go
// silent until their lock lapses, and save on either process, while Redis
// is now and then paused (SIGSTOP). Operations run one after another, so the
// model knows who holds the lock at every save: a save by anyone else is never
// accepted, a save by the holder never refused as locked (423); during a pause
// every save is refused as "cannot confirm the lock" (503), as is one Redis
// answers too slowly on a loaded machine (counted). A page's tab lapses a
// window after its last heartbeat reached the server, which happened between the
// beat's sending and its answer: the model knows a lock holds while the window
// since the sending has not run out, and has lapsed once it has since the
// answer; in between it does nothing, and a save answered there (the machine
// stalled) is not judged: the model starts again from every tab lapsed. The seed
// is printed: MODEL_SEED=<seed> replays the same choices.
import { expect } from 'chai';
import express from 'express';
import { RedisStore, createOnlineTracker, type OnlineTracker } from 'express-online-now';
import { RedisServer, REDIS_SERVER, connect, uniquePrefix } from './helpers/redis';
import { modelSeed, Rng } from './helpers/model';
import { requireBinary } from './helpers/requirements';
import { listen, type Listening } from './helpers/server';

const ROOM_THRESHOLD_S = 4;
const USERS = [1, 2, 3] as const;

interface Proc {
  readonly online: OnlineTracker;
  readonly server: Listening;
}

interface UserState {
  tab: string;
  claim: unknown;
  /** When its page's last heartbeat was sent and answered (Date.now()); a silent page stops beating until its tab lapses. */
  sentAt: number;
  answeredAt: number;
  silent: boolean;
}

/** One app process: the edit page (here, editing), the client's routes, and a guarded save. */
async function appProcess(redis: RedisServer, prefix: string, kind: 'node-redis' | 'ioredis', opened: { close(): Promise<unknown> }[]): Promise<Proc> {
  const client = await connect(kind, redis);
  opened.push(client);
  const store = new RedisStore({ client: client.client, prefix, syncInterval: 100 });
  const online = createOnlineTracker({
    store,
    secret: 'one secret for both processes',
    roomThreshold: ROOM_THRESHOLD_S,
    getUser: (req) => (req.headers['x-user'] === undefined ? undefined : { id: Number(req.headers['x-user']), name: `User ${String(req.headers['x-user'])}` }),
    onError: () => undefined, // a paused Redis is reported; the model checks what users get
  });
  opened.push(online);
  const app = express();
  app.use(online.client());
  app.get('/page', async (req, res, next) => {
    try {
      const here = await online.here(req, 'doc', { mode: 'editing' });
      res.json({ tab: here.tab, claim: res.locals.onlineHereSelf, lock: here.lock?.id ?? null });
    } catch (error) {
      next(error);
    }
  });
  app.post('/save', online.requireLock('doc'), (_req, res) => {
    res.json({ saved: true });
  });
  const server = await listen(app as never);
  opened.push(server);
  return { online, server };
}

describe('the write guard across two processes on Redis, against a model (takeovers, lapses, Redis pauses)', function () {
  this.timeout(180_000);
  let redis: RedisServer;
  const opened: { close(): Promise<unknown> }[] = [];

  before(async function () {
    requireBinary(this, REDIS_SERVER, 'apt-get install -y redis-server');
    redis = await RedisServer.start();
  });
  after(async () => {
    for (const thing of opened.splice(0).reverse()) await thing.close();
    await redis?.stop();
  });

  it('no save by a non-holder is accepted, no save by the holder refused; during a Redis pause every save is refused as unconfirmed', async () => {
    const seed = modelSeed();
    console.log(`      model seed: ${seed} (replay with MODEL_SEED=${seed})`);
    const rng = new Rng(seed);
    const prefix = uniquePrefix();
    const procs = [await appProcess(redis, prefix, 'node-redis', opened), await appProcess(redis, prefix, 'ioredis', opened)];
    const users = new Map<number, UserState>();
    let holder: number | undefined;
    const counts = { accepted: 0, refused: 0, unconfirmed: 0, slow: 0, unconfirmedBeats: 0, takeovers: 0, lapses: 0, pauses: 0, skipped: 0, stalls: 0 };
    const log: string[] = [];

    const call = async (user: number, method: string, path: string, body?: unknown): Promise<Response> => {
      const p = rng.pick([0, 1]);
      log.push(
        `${method} ${path} by ${user} on ${p}${JSON.stringify(body ?? '').includes('takeover') ? ' takeover' : ''} (holder ${String(holder)}${[...users]
          .filter(([, u]) => u.silent)
          .map(([n]) => `, ${n} silent`)
          .join('')})`,
      );
      return fetch(`${procs[p].server.base}${path}`, {
        method,
        headers: { 'x-user': String(user), 'content-type': 'text/plain', accept: 'application/json' },
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: AbortSignal.timeout(10_000),
      });
    };
    const open = async (user: number): Promise<void> => {
      const sentAt = Date.now();
      const page = (await (await call(user, 'GET', '/page')).json()) as { tab: string; claim: unknown; lock: number | null };
      users.set(user, { tab: page.tab, claim: page.claim, sentAt, answeredAt: Date.now(), silent: false });
      // The first editor of a free lock holds it (confirmed with Redis before the page is answered); a page of a
      // held lock is rendered from this process's replica, as every page is, up to a sync behind.
      if (holder !== undefined) return;
      holder = user;
      expect(page.lock, `${user}'s page shows the holder (seed ${seed})`).to.equal(holder);
    };
    const beat = async (user: number, takeover = false): Promise<void> => {
      const u = users.get(user)!;
      const sentAt = Date.now();
      let res = await call(user, 'POST', '/online-now/beat', { tab: u.tab, room: 'doc', mode: 'editing', claim: u.claim, takeover: takeover || undefined });
      // 503: a change of the lock Redis did not confirm in time (a loaded machine); the page's next beats confirm it.
      for (let retry = 0; res.status === 503 && retry < 20; retry++) {
        counts.unconfirmedBeats++;
        await new Promise((resolve) => setTimeout(resolve, 100));
        res = await call(user, 'POST', '/online-now/beat', { tab: u.tab, room: 'doc', mode: 'editing', claim: u.claim });
      }
      expect(res.status).to.equal(200);
      const state = (await res.json()) as { self: { claim: number }; lock: { id: number } | null };
      u.claim = state.self;
      u.sentAt = sentAt;
      u.answeredAt = Date.now();
      // A lock change (a takeover, a claim of a free lock) is confirmed with Redis before its reply, which is then
      // right; a plain heartbeat's reply is this process's replica, up to a sync behind (the guard confirms anew).
      if (!(takeover || holder === undefined)) return;
      holder = user;
      expect(state.lock?.id, `after ${user}'s beat (seed ${seed})\n${log.slice(-15).join('\n')}`).to.equal(holder);
    };
    /**
     * 200 from the holder, 423 from anyone else; or 503 (cannot confirm the lock), which refuses
     * without a wrong answer: always while Redis is paused, and when it answers slower than the guard waits.
     */
    const save = async (user: number, expected: 200 | 423 | 503): Promise<void> => {
      const sent = Date.now();
      const res = await call(user, 'POST', '/save');
      const body = (await res.json()) as { error?: string; message?: string };
      log.push(`  → ${res.status} after ${Date.now() - sent} ms`);
      if (expected !== 503 && mayHaveLapsed(holder, Date.now())) {
        // The machine stalled: the holder's window may have run out before the save was judged. Not judged; start again.
        counts.stalls++;
        return restart();
      }
      if (res.status === 200) counts.accepted++;
      else if (res.status === 423) counts.refused++;
      else if (expected === 503) counts.unconfirmed++;
      else counts.slow++;
      const allowed = expected === 503 ? [503] : [expected, 503];
      expect(res.status, `save by ${user} (holder ${String(holder)}; seed ${seed}): ${JSON.stringify(body)}\n${log.slice(-12).join('\n')}`).to.be.oneOf(allowed);
      if (res.status === 503)
        expect(body).to.deep.equal({
          error: 'lock-unconfirmed',
          message: 'Not saved: the editing lock of this page cannot be confirmed right now. Try again in a moment.',
          room: 'doc',
          lock: null,
        });
    };
    const thresholdMs = ROOM_THRESHOLD_S * 1000;
    /** Holds for sure while the window since its beat was sent has not run out (1 s to spare: Redis's clock is estimated). */
    const mayHaveLapsed = (user: number | undefined, at: number): boolean => user !== undefined && at - users.get(user)!.sentAt > thresholdMs - 1000;
    const lapsed = (user: number, at: number): boolean => at - users.get(user)!.answeredAt > thresholdMs + 500;
    /** From a state the model knows: every tab lapsed (nobody beats for a window), then everyone opens the page again. */
    const restart = async (): Promise<void> => {
      const last = Math.max(...[...users.values()].map((u) => u.answeredAt));
      await new Promise((resolve) => setTimeout(resolve, Math.max(0, last + thresholdMs + 500 - Date.now())));
      holder = undefined;
      users.clear();
      for (const user of USERS) await open(user);
    };

    for (const user of USERS) await open(user);
    const deadline = Date.now() + 30_000;
    while (Date.now() < deadline) {
      const silent = [...users].find(([, u]) => u.silent);
      if (holder !== undefined && !users.get(holder)!.silent && mayHaveLapsed(holder, Date.now())) {
        // The machine stalled between steps: even an active holder's window may have run out.
        counts.stalls++;
        await restart();
        continue;
      }
      if (silent !== undefined) {
        const [user] = silent;
        // Its lock holds through most of its window and has lapsed just past it; around the edge, nobody acts (an
        // editing page's heartbeat would claim a lapsed lock). Someone may have taken the lock over meanwhile.
        if (!mayHaveLapsed(user, Date.now())) await save(user, user === holder ? 200 : 423);
        else if (lapsed(user, Date.now())) {
          if (holder === user) holder = undefined;
          counts.lapses++;
          await save(user, 423);
          await open(user); // back: a new page, editing (it claims only if nobody beat it to the free lock)
          continue;
        } else {
          counts.skipped++;
          await new Promise((resolve) => setTimeout(resolve, 50));
          continue;
        }
      }
      const active = USERS.filter((user) => !users.get(user)!.silent);
      const r = rng.next();
      if (r < 0.4) {
        const user = rng.pick(active);
        await save(user, user === holder ? 200 : 423);
      } else if (r < 0.55) {
        const user = rng.pick(active);
        counts.takeovers += user === holder ? 0 : 1;
        await beat(user, true);
      } else if (r < 0.6 && silent === undefined && holder !== undefined && active.length > 1) {
        users.get(holder)!.silent = true;
      } else if (r < 0.64) {
        // Redis stops answering: saves are refused as unconfirmed, whoever sends them. Short of any lapse.
        counts.pauses++;
        redis.pause();
        try {
          await save(rng.pick(active), 503);
        } finally {
          redis.resume();
        }
        // Back: every page beats (a pause is short of a tab's window), then saves are judged again.
        for (const user of active) await beat(user);
      } else {
        for (const user of active) await beat(user);
      }
    }
    console.log(`      ${JSON.stringify(counts)}`);
    expect(counts.accepted).to.be.greaterThan(10);
    expect(counts.refused).to.be.greaterThan(10);
    expect(counts.takeovers).to.be.greaterThan(3);
    expect(counts.lapses).to.be.greaterThan(0);
    expect(counts.unconfirmed).to.be.greaterThan(0);
  });
});

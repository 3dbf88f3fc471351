// onOnline and onOffline (issue #25, transitions) with the memory store, over real
// HTTP with cookie jars and a clock the test moves: random sign-ins, pages,
// logouts and jumps of the clock, against a model of when each user came and
// went. Every transition is told once, in order, with its time and reason. The
// seed is printed: MODEL_SEED=… replays a failure.
import { expect } from 'chai';
import express from 'express';
import { MemoryStore, OnlineNowConfigError, createOnlineTracker, type OfflineReason, type OnlineTracker } from 'express-online-now';
import { presenceApp } from './helpers/app';
import { CookieBrowser } from './helpers/browser';
import { Rng, modelSeed } from './helpers/model';
import { listen, type Listening } from './helpers/server';
import { eventually } from './helpers/wait';

const THRESHOLD_S = 60;
const THRESHOLD_MS = THRESHOLD_S * 1000;

/** A hook call as the app saw it: `on` or `off`, when, why, and whether the entry was marked hidden. */
type Told = string;
const on = (at: number, hidden = false): Told => `on@${at}${hidden ? ' hidden' : ''}`;
const off = (at: number, why: OfflineReason, hidden = false): Told => `off@${at} ${why}${hidden ? ' hidden' : ''}`;

/** A site on a MemoryStore whose clock is `clock.t`, recording every transition per user id. */
async function site(clock: { t: number }, options: { maxTracked?: number; onOnline?: () => void } = {}) {
  const told = new Map<number, Told[]>();
  const errors: Error[] = [];
  const note = (id: unknown, text: Told): void => {
    const list = told.get(Number(id)) ?? [];
    list.push(text);
    told.set(Number(id), list);
  };
  const made = presenceApp(express, {
    store: new MemoryStore({ now: () => clock.t, maxTracked: options.maxTracked }),
    threshold: THRESHOLD_S,
    // Every fourth user is invisible: their transitions are told too, marked hidden.
    hidden: (user) => (user as { id: number }).id % 4 === 0,
    onOnline: (user, at) => {
      options.onOnline?.();
      note(user.id, on(at.getTime(), user.hidden === true));
    },
    onOffline: (user, at, why) => note(user.id, off(at.getTime(), why, user.hidden === true)),
    onError: (error) => void errors.push(error),
  });
  const server = await listen(made.app);
  return { told, errors, online: made.online, server };
}

/** Hooks run after the request that caused them (setImmediate): one turn of the loop lets them run. */
const hooksRun = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

describe('onOnline, onOffline and onStatus (memory store), against a model', function () {
  this.timeout(60_000);
  let opened: { online: OnlineTracker; server: Listening }[] = [];
  afterEach(async () => {
    for (const { online, server } of opened) {
      await server.close();
      await online.close();
    }
    opened = [];
  });

  it('random sign-ins, pages, logouts and clock jumps: each user’s comings and goings told once, in order, with time and reason', async () => {
    const seed = modelSeed();
    console.log(`      model seed: ${seed} (replay with MODEL_SEED=${seed})`);
    const rng = new Rng(seed);
    const clock = { t: 1_000_000 };
    const s = await site(clock);
    opened.push(s);
    const USERS = 10;
    const browsers = Array.from({ length: USERS }, () => new CookieBrowser(s.server.base));
    /** The model: signed in or not, last request, and what the app should have been told. */
    const model = Array.from({ length: USERS }, () => ({ signedIn: false, last: -Infinity, online: false, told: [] as Told[] }));
    // Past the threshold since the last request, a user has gone offline then (reads and the sweep find it later; the time is exact).
    const expire = (): void => {
      for (const [i, m] of model.entries()) {
        if (m.online && m.last <= clock.t - THRESHOLD_MS) {
          m.online = false;
          m.told.push(off(m.last + THRESHOLD_MS, 'expired', (i + 1) % 4 === 0));
        }
      }
    };
    const request = (i: number): void => {
      expire();
      const m = model[i];
      if (!m.online) m.told.push(on(clock.t, (i + 1) % 4 === 0));
      m.online = true;
      m.last = clock.t;
    };
    const counts = { pages: 0, signIns: 0, logouts: 0, jumps: 0, checks: 0 };
    for (let step = 0; step < 600; step++) {
      const i = Math.floor(rng.between(0, USERS));
      const m = model[i];
      const roll = rng.next();
      if (roll < 0.15) {
        // The clock moves: mostly a little, sometimes about a threshold (to either side of it), sometimes far.
        const kind = rng.next();
        clock.t += Math.round(kind < 0.6 ? rng.between(1, 5000) : kind < 0.9 ? rng.between(THRESHOLD_MS - 3000, THRESHOLD_MS + 3000) : rng.between(THRESHOLD_MS, 3 * THRESHOLD_MS));
        counts.jumps++;
      } else if (roll < 0.3 && m.signedIn) {
        // The logout request is a request too (the middleware marks the user), then forget takes them offline.
        await browsers[i].post('/logout');
        request(i);
        m.told.push(off(clock.t, 'logout', (i + 1) % 4 === 0));
        m.online = false;
        m.signedIn = false;
        counts.logouts++;
      } else if (!m.signedIn) {
        // Signing in is no presence yet (the middleware ran before the session had the user): the next page is.
        await browsers[i].post('/login', { id: String(i + 1) });
        m.signedIn = true;
        counts.signIns++;
      } else {
        await browsers[i].get('/locals');
        request(i);
        counts.pages++;
      }
      if (step % 25 === 24) {
        // A read sweeps the expired, as the timer does between reads.
        await s.online.count();
        await hooksRun();
        expire();
        for (const [n, mu] of model.entries()) expect(s.told.get(n + 1) ?? [], `user ${n + 1} after step ${step} (seed ${seed})`).to.deep.equal(mu.told);
        counts.checks++;
      }
    }
    clock.t += 2 * THRESHOLD_MS;
    await s.online.count();
    await hooksRun();
    expire();
    for (const [n, mu] of model.entries()) expect(s.told.get(n + 1) ?? [], `user ${n + 1} at the end (seed ${seed})`).to.deep.equal(mu.told);
    expect(s.errors).to.deep.equal([]);
    const transitions = model.reduce((sum, mu) => sum + mu.told.length, 0);
    console.log(`      ${JSON.stringify(counts)}; ${transitions} transitions`);
    // The run exercised what it claims to: logouts, expiries found by reads and by returns, hidden users.
    const all = model.flatMap((mu) => mu.told);
    expect(all.filter((t) => t.endsWith('logout') || t.endsWith('logout hidden')).length).to.be.above(5);
    expect(all.filter((t) => t.includes('expired')).length).to.be.above(5);
    expect(all.filter((t) => t.endsWith('hidden')).length).to.be.above(2);
  });

  it('status on, random pages, app states, logouts and clock jumps: each change of status told once (onStatus), at its moment, in order between the user’s coming and going', async () => {
    const seed = modelSeed();
    console.log(`      model seed: ${seed} (replay with MODEL_SEED=${seed})`);
    const rng = new Rng(seed);
    const clock = { t: 1_000_000 };
    const [IDLE, AWAY, STEP, LIMIT] = [60_000, 120_000, 6_000, 300_000];
    const busy = new Set<number>();
    const told = new Map<number, string[]>();
    const note = (id: unknown, text: string): void => void told.set(Number(id), [...(told.get(Number(id)) ?? []), text]);
    const errors: Error[] = [];
    const made = presenceApp(express, {
      store: new MemoryStore({ now: () => clock.t }),
      threshold: LIMIT / 1000,
      status: (user) => (busy.has((user as { id: number }).id) ? 'busy' : undefined),
      idleAfter: IDLE / 1000,
      awayAfter: AWAY / 1000,
      hidden: (user) => (user as { id: number }).id % 4 === 0,
      // Not the entry's status: it is read at each read, so it moves with the clock once the hook has run.
      onOnline: (user, at) => note(user.id, `on@${at.getTime()}`),
      onStatus: (user, status, at) => note(user.id, `${status}@${at.getTime()}`),
      onOffline: (user, at, why) => note(user.id, `off@${at.getTime()} ${why}`),
      onError: (error) => void errors.push(error),
    });
    const s = { online: made.online, server: await listen(made.app) };
    opened.push(s);
    const USERS = 8;
    const browsers = Array.from({ length: USERS }, () => new CookieBrowser(s.server.base));
    /** The model: the user's last request, activity (stamped to a step), app state, status as told, and what the app should have been told. */
    const model = Array.from({ length: USERS }, () => ({
      signedIn: false,
      online: false,
      last: 0,
      active: 0,
      manual: undefined as string | undefined,
      status: '',
      passed: 0,
      told: [] as string[],
    }));
    type Model = (typeof model)[number];
    const statusAt = (m: Model, t: number): string => m.manual ?? (t - m.active < IDLE ? 'active' : t - m.active < AWAY ? 'idle' : 'away');
    // Time passes until `upto`: idle and away at their moments (none at or past the user's expiry), then the expiry.
    const pass = (m: Model, upto: number): void => {
      if (!m.online) return;
      const until = m.last + LIMIT;
      for (const at of [m.active + IDLE, m.active + AWAY]) {
        if (at <= m.passed || at > upto || at >= until || statusAt(m, at) === m.status) continue;
        m.status = statusAt(m, at);
        m.told.push(`${m.status}@${at}`);
      }
      if (until <= upto) {
        m.told.push(`off@${until} expired`);
        m.online = false;
      }
      m.passed = Math.max(m.passed, upto);
    };
    const request = (i: number): void => {
      const m = model[i];
      pass(m, clock.t);
      m.last = clock.t;
      m.active = clock.t - (clock.t % STEP);
      m.manual = busy.has(i + 1) ? 'busy' : undefined;
      const status = statusAt(m, clock.t);
      if (!m.online) m.told.push(`on@${clock.t}`);
      else if (status !== m.status) m.told.push(`${status}@${clock.t}`);
      m.online = true;
      m.status = status;
    };
    const check = async (when: string): Promise<void> => {
      // A read finds the statuses time changed and the expired, as the sweep does between reads.
      await s.online.count();
      await hooksRun();
      for (const m of model) pass(m, clock.t);
      for (const [n, m] of model.entries()) expect(told.get(n + 1) ?? [], `user ${n + 1} ${when} (seed ${seed})`).to.deep.equal(m.told);
    };
    for (let step = 0; step < 500; step++) {
      const i = Math.floor(rng.between(0, USERS));
      const m = model[i];
      const roll = rng.next();
      if (roll < 0.2) {
        // Mostly within a status window, often across idleAfter or awayAfter, sometimes about the threshold.
        const kind = rng.next();
        clock.t += Math.round(kind < 0.4 ? rng.between(1, 20_000) : kind < 0.85 ? rng.between(40_000, 130_000) : rng.between(LIMIT - 30_000, LIMIT + 30_000));
      } else if (roll < 0.27) {
        // The app's state changes; the user's next request carries it.
        if (busy.has(i + 1)) busy.delete(i + 1);
        else busy.add(i + 1);
      } else if (roll < 0.35 && m.signedIn) {
        await browsers[i].post('/logout');
        request(i);
        m.told.push(`off@${clock.t} logout`);
        m.online = false;
        m.signedIn = false;
      } else if (!m.signedIn) {
        await browsers[i].post('/login', { id: String(i + 1) });
        m.signedIn = true;
      } else {
        await browsers[i].get('/locals');
        request(i);
      }
      if (step % 20 === 19) await check(`after step ${step}`);
    }
    clock.t += 2 * LIMIT;
    await check('at the end');
    expect(errors).to.deep.equal([]);
    // The run exercised what it claims to: each status told, by time and by activity, and app states.
    const all = model.flatMap((m) => m.told);
    for (const kind of ['idle@', 'away@', 'active@', 'busy@', 'off@']) expect(all.filter((t) => t.startsWith(kind)).length, kind).to.be.above(0);
    console.log(`      ${all.length} calls, ${all.filter((t) => !t.startsWith('on@') && !t.startsWith('off@')).length} of onStatus`);
  });

  it('a user dropped to keep maxTracked goes offline as evicted, at once', async () => {
    const clock = { t: 1_000_000 };
    const s = await site(clock, { maxTracked: 3 });
    opened.push(s);
    const people = [1, 2, 3, 5].map(() => new CookieBrowser(s.server.base));
    for (const [n, id] of [1, 2, 3, 5].entries()) {
      await people[n].post('/login', { id: String(id) });
      clock.t += 1000;
      await people[n].get('/locals');
    }
    await hooksRun();
    expect(s.told.get(1)).to.deep.equal([on(1_001_000), off(1_004_000, 'evicted')]);
    expect(s.told.get(5)).to.deep.equal([on(1_004_000)]);
    expect(await s.online.count()).to.equal(3);
  });

  it('nobody reads: the store’s own sweep tells who went offline, within a tenth of the threshold (1 s at least)', async () => {
    const clock = { t: 1_000_000 };
    const s = await site(clock);
    opened.push(s);
    const ada = new CookieBrowser(s.server.base);
    await ada.post('/login', { id: '1' });
    await ada.get('/locals');
    clock.t += THRESHOLD_MS + 1;
    // No request and no read from here: only the sweep (every 6 s at this threshold) can find her gone.
    await eventually(() => expect(s.told.get(1)).to.deep.equal([on(1_000_000), off(1_000_000 + THRESHOLD_MS, 'expired')]), 8000);
  });

  it('status on and nobody reads: the store’s own sweep tells who went idle, then away, each at its moment (a step of idleAfter: 200 ms here)', async () => {
    const clock = { t: 1_000_000 };
    const told: string[] = [];
    const made = presenceApp(express, {
      store: new MemoryStore({ now: () => clock.t }),
      threshold: 10,
      status: true,
      idleAfter: 2,
      awayAfter: 4,
      onStatus: (_user, status, at) => void told.push(`${status}@${at.getTime()}`),
    });
    const s = { online: made.online, server: await listen(made.app) };
    opened.push(s);
    const ada = new CookieBrowser(s.server.base);
    await ada.post('/login', { id: '1' });
    await ada.get('/locals');
    clock.t += 2500;
    await eventually(() => expect(told).to.deep.equal(['idle@1002000']), 3000);
    clock.t += 2000;
    await eventually(() => expect(told).to.deep.equal(['idle@1002000', 'away@1004000']), 3000);
  });

  it('status on: a user online before a tracker with onStatus attached is watched from their next touch', async () => {
    const clock = { t: 1_000_000 };
    const store = new MemoryStore({ now: () => clock.t });
    const plain = createOnlineTracker({ store, threshold: 600, status: true, idleAfter: 60, awayAfter: 120 });
    await plain.touch({ id: 1 });
    const told: string[] = [];
    const hooked = createOnlineTracker({
      store,
      threshold: 600,
      status: true,
      idleAfter: 60,
      awayAfter: 120,
      onStatus: (user, status, at) => void told.push(`${String(user.id)} ${status}@${at.getTime()}`),
    });
    clock.t += 30_000;
    await plain.touch({ id: 1 });
    clock.t += 130_000;
    await hooked.count();
    await hooksRun();
    // Active at 1,030,000, stamped to its 6 s step (1,026,000): idle a minute later, away two.
    expect(told).to.deep.equal(['1 idle@1086000', '1 away@1146000']);
    await hooked.close();
    await plain.close();
  });

  it('a store whose trackers all closed, given to a new one: its sweep and its expiries are told again', async () => {
    const clock = { t: 1_000_000 };
    const store = new MemoryStore({ now: () => clock.t });
    const told: Told[] = [];
    const hooks = { onOnline: () => void told.push('on'), onOffline: (_user: unknown, _at: Date, why: OfflineReason) => void told.push(`off ${why}`) };
    await createOnlineTracker({ store, threshold: THRESHOLD_S, ...hooks }).close();
    const again = createOnlineTracker({ store, threshold: THRESHOLD_S, ...hooks });
    await again.touch(1);
    clock.t += THRESHOLD_MS + 1;
    expect(await again.count()).to.equal(0);
    await hooksRun();
    expect(told).to.deep.equal(['on', 'off expired']);
    await again.close();
  });

  it('a hook that throws is reported once under its name, and the page is served', async () => {
    const clock = { t: 1_000_000 };
    const s = await site(clock, {
      onOnline: () => {
        throw new Error('webhook down');
      },
    });
    opened.push(s);
    const ada = new CookieBrowser(s.server.base);
    await ada.post('/login', { id: '1' });
    expect((await ada.get('/locals')).status).to.equal(200);
    await ada.post('/logout');
    await ada.post('/login', { id: '1' });
    expect((await ada.get('/locals')).status).to.equal(200);
    await hooksRun();
    expect(s.errors.map((e) => e.message)).to.deep.equal(['webhook down']);
    expect(s.told.get(1)).to.deep.equal([off(1_000_000, 'logout')]);
  });

  it('refuses hooks that are not functions, and a store that does not decide transitions, naming the fix', () => {
    expect(() => createOnlineTracker({ onOnline: 'https://example.com/hook' as never }))
      .to.throw(OnlineNowConfigError, /option "onOnline" must be a function/)
      .with.property('code', 'ERR_ONLINE_NOW_ONONLINE');
    expect(() => createOnlineTracker({ onOffline: {} as never }))
      .to.throw(OnlineNowConfigError)
      .with.property('code', 'ERR_ONLINE_NOW_ONOFFLINE');
    // A custom store that does not say it decides transitions (built-in ones do: RedisStore across processes, test/redis-transitions.test.ts).
    const custom = Object.assign(new MemoryStore(), { transitions: false });
    expect(() => createOnlineTracker({ store: custom, onOffline: () => undefined }))
      .to.throw(OnlineNowConfigError, /MemoryStore.*RedisStore.*transitions: true/)
      .with.property('code', 'ERR_ONLINE_NOW_TRANSITIONS');
    expect(() => createOnlineTracker({ status: true, onStatus: 'idle' as never }))
      .to.throw(OnlineNowConfigError, /option "onStatus" must be a function/)
      .with.property('code', 'ERR_ONLINE_NOW_ONSTATUS');
    expect(() => createOnlineTracker({ onStatus: () => undefined }))
      .to.throw(OnlineNowConfigError, /"onStatus" needs status on: add \{ status: true \}/)
      .with.property('code', 'ERR_ONLINE_NOW_STATUS');
    expect(() => createOnlineTracker({ onRoom: true as never }))
      .to.throw(OnlineNowConfigError, /option "onRoom" must be a function/)
      .with.property('code', 'ERR_ONLINE_NOW_ONROOM');
    expect(() => createOnlineTracker({ store: Object.assign(new MemoryStore(), { transitions: false }), onRoom: () => undefined }))
      .to.throw(OnlineNowConfigError, /onRoom need a store/)
      .with.property('code', 'ERR_ONLINE_NOW_TRANSITIONS');
  });
});

import { expect } from 'chai';
import { MemoryStore, OnlineNowConfigError, createOnlineTracker, type OnlineNowLocals } from 'express-online-now';
import express from 'express';
import { formatTimeAgo } from '../lib/templates/time-ago';
import { presenceApp } from './helpers/app';
import { CookieBrowser } from './helpers/browser';
import { listen } from './helpers/server';
import { sleep } from './helpers/wait';

/**
 * tsx compiles test files to CommonJS without "use strict", so a plain assignment here is sloppy.
 * The directive makes this one function strict, as an ES module or a "use strict" script is.
 */
function strictAssign(target: object, field: string, value: unknown): void {
  'use strict';
  (target as Record<string, unknown>)[field] = value;
}

describe('tracker API (memory store)', () => {
  it('touch, count, list, isOnline, lastSeen and forget all return promises with the contract’s values', async () => {
    const online = createOnlineTracker();
    expect(await online.touch({ id: 1, username: 'ann', name: 'Ann', passwordHash: 'x' })).to.equal(true);
    await online.touch(2);
    expect(await online.count()).to.equal(2);
    const list = await online.list();
    expect(list.map((e) => e.id)).to.deep.equal([2, 1]);
    expect(list[1]).to.deep.include({ id: 1, username: 'ann', name: 'Ann' });
    expect(list[1]).not.to.have.property('passwordHash');
    expect(list[1].lastSeen).to.be.instanceOf(Date);
    expect(await online.isOnline('1')).to.equal(true);
    expect(await online.lastSeen({ id: 2 })).to.be.instanceOf(Date);
    await online.forget({ id: 1 });
    expect(await online.isOnline(1)).to.equal(false);
    expect(await online.lastSeen(1)).to.equal(null);
    expect(await online.count()).to.equal(1);
    await online.close();
  });

  it('list(limit) gives at most limit entries; list() at most max', async () => {
    const online = createOnlineTracker({ max: 3 });
    for (let i = 0; i < 10; i++) await online.touch(i);
    expect(await online.list()).to.have.length(3);
    expect((await online.list(7)).map((e) => e.id)).to.deep.equal([9, 8, 7, 6, 5, 4, 3]);
    expect(await online.list(0)).to.deep.equal([]);
    expect(await online.count()).to.equal(10);
  });

  it('keeps the stored profile when touched again by bare id, and replaces it when given one', async () => {
    const online = createOnlineTracker();
    await online.touch({ id: 'u1', name: 'Ann' });
    await online.touch('u1');
    expect((await online.list())[0]).to.deep.include({ id: 'u1', name: 'Ann' });
    await online.touch('u1', { name: 'Ann B.' });
    expect((await online.list())[0]).to.deep.include({ id: 'u1', name: 'Ann B.' });
  });

  it('uses getId and profile when given', async () => {
    const online = createOnlineTracker<{ uid: string; nick: string }, { nick: string }>({
      getId: (user) => user.uid,
      profile: (user) => ({ nick: user.nick }),
    });
    await online.touch({ uid: 'abc', nick: 'ace' });
    const [entry] = await online.list();
    expect(entry).to.deep.include({ id: 'abc', nick: 'ace' });
    expect(Object.keys(entry).sort()).to.deep.equal(['id', 'lastSeen', 'nick']);
  });

  it('ignores ids that are not finite numbers or non-empty strings', async () => {
    const online = createOnlineTracker();
    for (const bad of [NaN, Infinity, -Infinity, '', true, [], {}, { id: {} }, null, undefined]) {
      expect(await online.touch(bad as never)).to.equal(false);
    }
    expect(await online.count()).to.equal(0);
    expect(await online.isOnline(NaN)).to.equal(false);
  });

  it('expires a user exactly threshold seconds after their last touch (a controlled clock)', async () => {
    let t = 1_000_000;
    const online = createOnlineTracker({ store: new MemoryStore({ now: () => t }), threshold: 60 });
    await online.touch(1);
    t += 30_000;
    await online.touch(2);
    t += 29_999; // 1 was seen 59.999 s ago: still online
    expect(await online.count()).to.equal(2);
    expect(await online.isOnline(1)).to.equal(true);
    expect((await online.lastSeen(1))?.getTime()).to.equal(1_000_000);
    t += 1; // exactly 60 s: offline
    expect(await online.isOnline(1)).to.equal(false);
    expect(await online.lastSeen(1)).to.equal(null);
    expect(await online.count()).to.equal(1);
    const list = await online.list();
    expect(list.map((e) => e.id)).to.deep.equal([2]);
    expect(list[0].lastSeen.getTime()).to.equal(1_030_000);
    t += 30_000;
    expect(await online.count()).to.equal(0);
    expect(await online.list()).to.deep.equal([]);
  });

  it('renews the whole threshold on each touch, and honours a fractional threshold', async () => {
    let t = 1_000_000;
    const online = createOnlineTracker({ store: new MemoryStore({ now: () => t }), threshold: 0.25 });
    await online.touch(1);
    t += 200;
    await online.touch(1);
    t += 249; // 449 ms after the first touch, 249 after the second
    expect(await online.isOnline(1)).to.equal(true);
    t += 1;
    expect(await online.isOnline(1)).to.equal(false);
    expect(await online.count()).to.equal(0);
  });

  it('a hidden user idle past the threshold, or signed out, stays hidden after a bare touch(id); a request that unhides wins', async () => {
    let t = 1_000_000;
    const online = createOnlineTracker<{ id: number; name: string; invisible: boolean }>({
      store: new MemoryStore({ now: () => t }),
      threshold: 60,
      hidden: (user) => user.invisible,
    });
    await online.touch({ id: 1, name: 'Ann', invisible: true });
    await online.touch({ id: 2, name: 'Bob', invisible: true });
    await online.forget(2);
    t += 61_000; // 1 idle past the threshold, 2 signed out
    await online.touch(1); // a websocket message: the id alone
    await online.touch(2);
    expect(await online.list()).to.deep.equal([]);
    expect(await online.isOnline(1)).to.equal(false);
    expect(await online.counts()).to.deep.include({ users: 0, hidden: 2 });
    expect((await online.list(50, { hidden: true })).map((e) => [e.id, e.hidden])).to.have.deep.members([
      [1, true],
      [2, true],
    ]);
    await online.touch({ id: 1, name: 'Ann', invisible: false });
    await online.forget(1);
    await online.touch(1);
    expect((await online.list()).map((e) => e.id)).to.deep.equal([1]);
    await online.close();
  });

  it('takes no notice of a wall-clock step for expiry (the default clock is monotonic), while dates follow the wall clock', async () => {
    const realNow = Date.now;
    const online = createOnlineTracker({ threshold: 0.2 });
    try {
      // Forward 60 s (an NTP step, a VM resumed): 1 must not stay online a minute longer, and
      // its own lastSeen is on the wall clock that timeAgo reads: "now", not "in 1 minute".
      Date.now = () => realNow() + 60_000;
      await online.touch(1);
      expect((await online.lastSeen(1))!.getTime() - Date.now()).to.be.within(-1000, 0);
      expect(formatTimeAgo((await online.lastSeen(1))!)).to.equal('now');
      // Back 60 s: 2 must not be dropped early, and 1 does not look seen in the future.
      Date.now = () => realNow() - 60_000;
      await online.touch(2);
      expect((await online.lastSeen(2))!.getTime() - Date.now()).to.be.within(-1000, 0);
      expect((await online.lastSeen(1))!.getTime()).to.be.at.most(Date.now());
      expect(formatTimeAgo((await online.lastSeen(2))!)).to.equal('now');
      expect((await online.list()).map((e) => e.id)).to.deep.equal([2, 1]);
      expect((await online.list())[0].lastSeen.getTime() - Date.now()).to.be.within(-1000, 0);
      Date.now = realNow;
      expect(await online.isOnline(2), 'dropped by the step back').to.equal(true);
      expect(await online.count()).to.equal(2);
      await sleep(250);
      expect(await online.isOnline(1), 'kept online by the step forward').to.equal(false);
      expect(await online.count()).to.equal(0);
    } finally {
      Date.now = realNow;
      await online.close();
    }
  });

  it('a user\'s own page right after a wall-clock step says they were seen "now" (memory store, over HTTP)', async () => {
    const realNow = Date.now;
    const { app, online } = presenceApp(express);
    app.get('/ago', (_req, res) => res.json({ ago: (res.locals.timeAgo as (u: unknown) => string)(1), seen: res.locals.lastSeen(1) }));
    const server = await listen(app);
    try {
      const browser = new CookieBrowser(server.base);
      await browser.post('/login', { id: '1', type: 'number' });
      for (const step of [3_600_000, -3_600_000]) {
        Date.now = () => realNow() + step;
        const page = await browser.json<{ ago: string; seen: string }>('/ago');
        expect(page.ago, `after a ${step / 60_000} min step`).to.equal('now');
        expect(Date.parse(page.seen) - Date.now()).to.be.within(-1000, 0);
        Date.now = realNow;
      }
    } finally {
      Date.now = realNow;
      await server.close();
      await online.close();
    }
  });

  it('answers isOnline and lastSeen for an entry from list() or onlineNow, whatever getId reads', async () => {
    let t = 5_000_000;
    const online = createOnlineTracker<{ userId: string; name: string }, { name: string }>({
      store: new MemoryStore({ now: () => t }),
      getId: (user) => user.userId,
      profile: (user) => ({ name: user.name }),
    });
    await online.touch({ userId: 'u7', name: 'Ann' });
    const [entry] = await online.list();
    expect(entry).not.to.have.property('userId'); // so getId(entry) would give undefined
    expect(await online.isOnline(entry as never)).to.equal(true);
    expect((await online.lastSeen(entry as never))?.getTime()).to.equal(5_000_000);

    // The same through res.locals, as a template asks `{% if entry | isOnline %}`.
    t += 1000;
    const req = { headers: {}, session: { user: { userId: 'u8', name: 'Bo' } } };
    const res = { locals: {} as Record<string, unknown> };
    await new Promise<void>((resolve, reject) => online.middleware()(req, res, (err) => (err ? reject(err) : resolve())));
    const locals = res.locals as unknown as OnlineNowLocals;
    expect(locals.onlineNowIds).to.deep.equal(['u8', 'u7']);
    expect(locals.onlineNow.map((e) => locals.isOnline(e))).to.deep.equal([true, true]);
    expect(locals.onlineNow.map((e) => locals.lastSeen(e)?.getTime())).to.deep.equal([5_001_000, 5_000_000]);

    await online.forget('u7');
    expect(await online.isOnline(entry as never)).to.equal(false);
    expect(await online.lastSeen(entry as never)).to.equal(null);
  });

  it('gives frozen entries: a write throws in strict code and no later list shows it', async () => {
    const online = createOnlineTracker();
    await online.touch({ id: 1, name: 'Ann' });
    const [entry] = await online.list();
    expect(Object.isFrozen(entry)).to.equal(true);
    expect(() => strictAssign(entry, 'name', 'Mallory')).to.throw(TypeError);
    expect(() => strictAssign(entry, 'isAdmin', true)).to.throw(TypeError);
    expect(() => strictAssign(entry, 'id', 2)).to.throw(TypeError);
    const [again] = await online.list();
    expect({ ...again }).to.deep.equal({ id: 1, name: 'Ann', lastSeen: entry.lastSeen });
    expect(await online.isOnline(2)).to.equal(false);
  });

  it('keeps memory bounded by maxTracked, dropping the least recently seen', async () => {
    const online = createOnlineTracker({ store: new MemoryStore({ maxTracked: 10 }) });
    for (let i = 1; i <= 25; i++) await online.touch(i);
    expect(await online.count()).to.equal(10);
    expect(await online.isOnline(15)).to.equal(false);
    expect(await online.isOnline(16)).to.equal(true);
    expect((await online.list(100)).map((e) => e.id)).to.deep.equal([25, 24, 23, 22, 21, 20, 19, 18, 17, 16]);
  });

  it('counts guests separately from users: a guest flood does not evict signed-in users', async () => {
    const store = new MemoryStore({ maxTracked: 5 });
    const online = createOnlineTracker({ store, trackGuests: true });
    await online.touch(1);
    for (let i = 0; i < 50; i++) store.touch('guests', `g${i}`, `g${i}`, undefined);
    expect(await online.isOnline(1)).to.equal(true);
    expect(store.view('guests', 0).count).to.equal(5);
  });
});

describe('option validation', () => {
  const cases: [string, Record<string, unknown>, RegExp][] = [
    ['negative threshold', { threshold: -1 }, /"threshold".*positive number of seconds.*threshold: 900/],
    ['zero threshold', { threshold: 0 }, /"threshold"/],
    ['infinite threshold', { threshold: Infinity }, /"threshold"/],
    ['string threshold', { threshold: '900' }, /"threshold".*got "900"/],
    ['fractional max', { max: 2.5 }, /"max".*whole number/],
    ['negative max', { max: -1 }, /"max"/],
    ['a store that is not a store', { store: {} }, /"store".*new MemoryStore\(\).*missing init, touch, forget, view, close/],
    ['a Redis client as store', { store: { get() {}, set() {} } }, /"store".*RedisStore/],
    ['getUser not a function', { getUser: 'user' }, /"getUser" must be a function/],
    ['getId not a function', { getId: 1 }, /"getId"/],
    ['profile not a function', { profile: {} }, /"profile"/],
    ['skip not a function', { skip: true }, /"skip"/],
    ['trackGuests not a boolean', { trackGuests: 'yes' }, /"trackGuests" must be true or false/],
    ['a misspelt option', { treshold: 60 }, /no option "treshold"/],
  ];
  for (const [what, options, message] of cases) {
    it(`throws a TypeError naming the option for ${what}`, () => {
      let thrown: unknown;
      try {
        createOnlineTracker(options as never);
      } catch (err) {
        thrown = err;
      }
      expect(thrown).to.be.instanceOf(TypeError);
      expect(thrown).to.be.instanceOf(OnlineNowConfigError);
      expect((thrown as OnlineNowConfigError).code).to.match(/^ERR_ONLINE_NOW_/);
      expect((thrown as Error).message).to.match(message);
    });
  }

  it('takes durations as a number in the option’s unit or a string with its own, and refuses implausible ones naming the slip', () => {
    const online = createOnlineTracker({ threshold: '15m', roomThreshold: '1.5s', seenInterval: '250ms' });
    expect([online.threshold, online.roomThreshold]).to.deep.equal([900, 1.5]);
    expect(createOnlineTracker({ threshold: 900 }).threshold).to.equal(900);
    expect(createOnlineTracker({ threshold: '1d' }).threshold).to.equal(86_400); // a day is the longest accepted
    const refusals: [Record<string, unknown>, string, string][] = [
      [
        { threshold: 900_000 },
        'ERR_ONLINE_NOW_DURATION',
        `option "threshold": 900000 seconds is 10.4 days, over a day. It looks like milliseconds; threshold is in seconds: use 900 or '15m'.`,
      ],
      [
        { seenInterval: 3_600_000 },
        'ERR_ONLINE_NOW_DURATION',
        `option "seenInterval": 3600000 seconds is 41.7 days, over a day. It looks like milliseconds; seenInterval is in seconds: use 3600 or '1h'.`,
      ],
      [
        { threshold: '2d' },
        'ERR_ONLINE_NOW_DURATION',
        `option "threshold": "2d" is 2.0 days, over a day. Durations must be between 10 ms and a day; for example { threshold: 900 }.`,
      ],
      [
        { roomThreshold: 0.005 },
        'ERR_ONLINE_NOW_DURATION',
        `option "roomThreshold": 0.005 seconds is 5 ms, under 10 ms. Durations must be between 10 ms and a day; for example { roomThreshold: 30 }.`,
      ],
      [
        { threshold: '15 minutes' },
        'ERR_ONLINE_NOW_THRESHOLD',
        `option "threshold" must be a positive number of seconds or a string with a unit such as '15m', got "15 minutes". For example: { threshold: 900 }.`,
      ],
      [
        { seenInterval: '60' },
        'ERR_ONLINE_NOW_SEENINTERVAL',
        `option "seenInterval" must be a positive number of seconds or a string with a unit such as '1m', got "60". For example: { seenInterval: 60 }.`,
      ],
    ];
    for (const [options, code, message] of refusals) {
      let thrown: OnlineNowConfigError | undefined;
      try {
        createOnlineTracker(options as never);
      } catch (err) {
        thrown = err as OnlineNowConfigError;
      }
      expect(thrown?.code, JSON.stringify(options)).to.equal(code);
      expect(thrown?.message).to.equal(`express-online-now: ${message}`);
    }
  });

  it('rejects a non-object options argument', () => {
    expect(() => createOnlineTracker(5 as never)).to.throw(TypeError, /options object/);
  });

  it('rejects a bad maxTracked', () => {
    expect(() => new MemoryStore({ maxTracked: 0 })).to.throw(TypeError, /"maxTracked"/);
    expect(() => new MemoryStore({ maxTracked: 1.5 })).to.throw(TypeError, /"maxTracked"/);
  });

  it('rejects a clock that is not a function', () => {
    let thrown: unknown;
    try {
      new MemoryStore({ now: 5 as never });
    } catch (err) {
      thrown = err;
    }
    expect(thrown).to.be.instanceOf(OnlineNowConfigError);
    expect((thrown as OnlineNowConfigError).code).to.equal('ERR_ONLINE_NOW_NOW');
    expect((thrown as Error).message).to.match(/"now"/);
  });

  it('rejects one MemoryStore shared by trackers with different thresholds', () => {
    const store = new MemoryStore();
    createOnlineTracker({ store, threshold: 60 });
    expect(() => createOnlineTracker({ store })).to.throw(TypeError, /different thresholds \(60s and 900s\)/);
    expect(() => createOnlineTracker({ store, threshold: 60 })).not.to.throw();
  });

  it('tells a user of a detached MemoryStore to attach it', () => {
    expect(() => new MemoryStore().view('users', 1)).to.throw(TypeError, /createOnlineTracker\(\{ store \}\)/);
  });
});

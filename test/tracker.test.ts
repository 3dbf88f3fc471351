import { expect } from 'chai';
import { MemoryStore, OnlineNowConfigError, createOnlineTracker } from 'express-online-now';
import { sleep } from './helpers/server';

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

  it('expires users after threshold seconds (exact count, no stale entries)', async () => {
    const online = createOnlineTracker({ threshold: 0.2 });
    await online.touch(1);
    await sleep(120);
    await online.touch(2);
    await sleep(120);
    expect(await online.count()).to.equal(1);
    expect((await online.list()).map((e) => e.id)).to.deep.equal([2]);
    expect(await online.isOnline(1)).to.equal(false);
    await sleep(120);
    expect(await online.count()).to.equal(0);
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
    ['negative threshold', { threshold: -1 }, /"threshold".*positive, finite number.*threshold: 900/],
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

  it('rejects a non-object options argument', () => {
    expect(() => createOnlineTracker(5 as never)).to.throw(TypeError, /options object/);
  });

  it('rejects a bad maxTracked', () => {
    expect(() => new MemoryStore({ maxTracked: 0 })).to.throw(TypeError, /"maxTracked"/);
    expect(() => new MemoryStore({ maxTracked: 1.5 })).to.throw(TypeError, /"maxTracked"/);
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

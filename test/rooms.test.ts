import { expect } from 'chai';
import { createOnlineTracker, MemoryStore, type RoomEvent, type RoomView } from 'express-online-now';

type TabClaim = NonNullable<RoomView['self']>;
import { modelSeed, Rng } from './helpers/model';
import { hooksRun } from './helpers/wait';

/** A clock the test moves. */
class Clock {
  now = 1_700_000_000_000;
  readonly read = (): number => this.now;
}

interface FakeRequest {
  headers: Record<string, string>;
  session: { user?: { id: number; name: string; hidden?: boolean } };
  res: { locals: Record<string, unknown> };
}

const request = (user?: { id: number; name: string; hidden?: boolean }): FakeRequest => ({ headers: {}, session: { user }, res: { locals: {} } });

interface ModelTab {
  user: number;
  tab: string;
  mode: 'viewing' | 'editing';
  claim: number;
  gen: number;
  since: number;
  at: number;
  hidden: boolean;
  /** Its page was hidden at that beat: it stays for the away window (5 × the threshold). */
  away: boolean;
}

/** An `onRoom` call as the model writes it: per user `join@t` / `leave@t why`, and the lock's `lock u@t` / `unlock u@t`. */
function toldOf(event: RoomEvent): [string, string] {
  const user = String(event.user.id);
  const at = event.at.getTime();
  if (event.type === 'join' || event.type === 'leave') return [user, `${event.type}@${at}${event.type === 'leave' ? ` ${event.why}` : ''}`];
  return ['lock', `${event.type} ${user}@${at}`];
}

/**
 * What a room must show, kept the plainest way: every tab with its last
 * heartbeat, mode, lock claim and invisible flag. The store must agree with it after every step.
 * And what `onRoom` must have told: each user's comings and goings and the lock's changes, each at its moment.
 */
class RoomModel {
  readonly tabs = new Map<string, ModelTab>();
  /** Per user, and under 'lock', what onRoom should have been told. */
  readonly told = new Map<string, string[]>();
  private members = new Set<number>();
  private holderUser: number | undefined;
  /** Up to when time's changes have been told. */
  private settled = -Infinity;
  constructor(private readonly thresholdMs: number) {}

  live(now: number): [string, ModelTab][] {
    return [...this.tabs].filter(([, t]) => t.at > now - this.thresholdMs * (t.away ? 5 : 1));
  }

  /** The ends of tabs' windows after the last settled moment and by `now`, each settled in turn (people expire, locks lapse). */
  catchUp(now: number): void {
    const ends = [...new Set([...this.tabs.values()].map((t) => t.at + this.thresholdMs * (t.away ? 5 : 1)))].sort((a, b) => a - b);
    for (const end of ends) if (end > this.settled && end <= now) this.settle(end, new Map());
    this.settled = Math.max(this.settled, now);
  }

  /** Who is in the room and who holds the lock at `now`, against what was told: the lock lost, who left, who came, the lock taken. */
  settle(now: number, why: Map<number, string>): void {
    const note = (who: string, text: string): void => void this.told.set(who, [...(this.told.get(who) ?? []), text]);
    const at = new Date(now).getTime(); // as a Date holds it: whole ms
    const members = new Set(this.live(now).map(([, t]) => t.user));
    const holder = this.holder(now)?.user;
    if (this.holderUser !== undefined && this.holderUser !== holder) note('lock', `unlock ${this.holderUser}@${at}`);
    for (const user of this.members) if (!members.has(user)) note(String(user), `leave@${at} ${why.get(user) ?? 'expired'}`);
    for (const user of members) if (!this.members.has(user)) note(String(user), `join@${at}`);
    if (holder !== undefined && holder !== this.holderUser) note('lock', `lock ${holder}@${at}`);
    this.members = members;
    this.holderUser = holder;
  }

  /** The live editing claim of the most takeovers, the earliest of those (ties: the greater key). */
  holder(now: number): ModelTab | undefined {
    let best: [string, ModelTab] | undefined;
    for (const [key, t] of this.live(now)) {
      if (t.claim === 0 || t.mode !== 'editing') continue;
      const b = best?.[1];
      if (b === undefined || t.gen > b.gen || (t.gen === b.gen && (t.claim < b.claim || (t.claim === b.claim && key > best![0])))) best = [key, t];
    }
    return best?.[1];
  }

  /** A heartbeat: an editor claims the lock when nobody holds it, keeps it while holding it, and takes it over when asked. */
  beat(user: number, tab: string, mode: 'viewing' | 'editing', takeover: boolean, hidden: boolean, now: number, away = false): void {
    const key = `r\u001f${user}\u001f${tab}`;
    const before = new Map(this.live(now)).get(key);
    const holder = this.holder(now);
    let claim = 0;
    let gen = 0;
    if (mode === 'editing') {
      const top = Math.max(0, ...this.live(now).map(([, t]) => (t.claim === 0 ? 0 : t.gen)));
      if (before !== undefined && holder === before) [claim, gen] = [before.claim, before.gen];
      else if (takeover) [claim, gen] = [now, top + 1];
      else if (holder === undefined) claim = now;
    }
    // Kept in the order they beat: at one instant, the later heartbeat speaks for its user.
    this.tabs.delete(key);
    this.tabs.set(key, { user, tab, mode, claim, gen, since: before?.since ?? now, at: now, hidden, away });
  }

  leave(user: number, tab: string): void {
    this.tabs.delete(`r\u001f${user}\u001f${tab}`);
  }

  /** Per user (their latest heartbeat says whether they are hidden): tabs and mode, in the order they came; and the lock. */
  expected(now: number, viewer: { staff: boolean; self: number }): { users: [number, number, string, boolean][]; lock: string } {
    const users = new Map<number, { tabs: number; mode: string; since: number; at: number; hidden: boolean; away: boolean }>();
    for (const [, t] of this.live(now)) {
      const u = users.get(t.user) ?? { tabs: 0, mode: 'viewing', since: Infinity, at: -Infinity, hidden: false, away: true };
      u.tabs++;
      if (t.mode === 'editing') u.mode = 'editing';
      if (!t.away) u.away = false;
      u.since = Math.min(u.since, t.since);
      if (t.at >= u.at) [u.at, u.hidden] = [t.at, t.hidden];
      users.set(t.user, u);
    }
    const hiddenFrom = (user: number): boolean => users.get(user)?.hidden === true && !viewer.staff && user !== viewer.self;
    const ordered = [...users].filter(([id]) => !hiddenFrom(id)).sort((a, b) => a[1].since - b[1].since || (String(a[0]) < String(b[0]) ? -1 : 1));
    const holder = this.holder(now);
    let lock = 'none';
    if (holder !== undefined) lock = hiddenFrom(holder.user) ? 'someone' : `${holder.user}/${holder.tab}`;
    return { users: ordered.map(([id, u]) => [id, u.tabs, u.mode, u.away]), lock };
  }
}

function seen(view: RoomView): { users: [number, number, string, boolean][]; lock: string } {
  let lock = 'none';
  if (view.lock !== null) lock = view.lock.id === undefined ? 'someone' : `${String(view.lock.id)}/${String(view.lock.tab)}`;
  return { users: view.entries.map((e) => [e.id as number, e.tabs, e.mode, e.away === true]), lock };
}

describe('rooms (here): viewers, tabs and the editing lock, against a model', () => {
  it('random page views, heartbeats (visible or in the background, echoing their last record as pages do), takeovers, leaves, lapses, invisible mode and time steps: every viewer sees what the model says, and onRoom tells each coming, going and lock change once, in order, at its moment', async function () {
    this.timeout(60_000);
    const seed = modelSeed();
    console.log(`      model seed: ${seed} (replay with MODEL_SEED=${seed})`);
    const rng = new Rng(seed);
    for (let run = 0; run < 40; run++) {
      const clock = new Clock();
      const heard = new Map<string, string[]>();
      const online = createOnlineTracker({
        store: new MemoryStore({ now: clock.read }),
        roomThreshold: 30,
        hidden: (u: { hidden?: boolean }) => u.hidden === true,
        onRoom: (event) => {
          const [who, text] = toldOf(event);
          heard.set(who, [...(heard.get(who) ?? []), text]);
        },
      });
      const model = new RoomModel(30_000);
      const hidden = new Set<number>();
      const tabsOf = new Map<number, string[]>();
      // What each page last heard of its tab, and echoes back: a lapsed one must not bring its claim back.
      const echoes = new Map<string, TabClaim>();
      for (let step = 0; step < 150; step++) {
        const user = 1 + Math.floor(rng.next() * 5);
        const roll = rng.next();
        const tabs = tabsOf.get(user) ?? [];
        tabsOf.set(user, tabs);
        const where = `seed ${seed}, run ${run}, step ${step}`;
        const profile: Record<string, string | boolean> = hidden.has(user) ? { name: `User ${user}`, hidden: true } : { name: `User ${user}` };
        model.catchUp(clock.now);
        if (roll < 0.25 || tabs.length === 0) {
          // A new page view: here() mints its tab.
          const mode = rng.chance(0.4) ? 'editing' : 'viewing';
          const view = await online.here(request({ id: user, name: `User ${user}`, hidden: hidden.has(user) }) as never, 'r', { mode });
          tabs.push(view.tab);
          echoes.set(view.tab, view.self!);
          model.beat(user, view.tab, mode, false, hidden.has(user), clock.now);
          model.settle(clock.now, new Map());
        } else if (roll < 0.55) {
          const tab = rng.pick(tabs);
          const mode = rng.chance(0.5) ? 'editing' : 'viewing';
          const takeover = mode === 'editing' && rng.chance(0.2);
          const away = rng.chance(0.3);
          const touched = await online.store.roomTouch!(
            { room: 'r', tab, key: String(user), id: user, profile, mode, takeover, away, known: echoes.get(tab) },
            { seesHidden: false, self: String(user) },
          );
          echoes.set(tab, touched.self!);
          model.beat(user, tab, mode, takeover, hidden.has(user), clock.now, away);
          model.settle(clock.now, new Map());
        } else if (roll < 0.65) {
          const tab = tabs.splice(Math.floor(rng.next() * tabs.length), 1)[0];
          await online.store.roomLeave!('r', String(user), tab);
          model.leave(user, tab);
          model.settle(clock.now, new Map([[user, 'left']]));
        } else if (roll < 0.72) {
          if (hidden.has(user)) hidden.delete(user);
          else hidden.add(user);
          continue;
        } else {
          // Now and then past a visible tab's window (30 s), or a background tab's (150 s).
          clock.now += rng.chance(0.85) ? rng.between(1, 20_000) : rng.between(20_000, 160_000);
          // Half the time nobody reads after it: the next write finds what time changed (told first, at its moment).
          if (rng.chance(0.5)) continue;
        }
        const self = 1 + Math.floor(rng.next() * 5);
        const view = await online.store.roomView!('r', { seesHidden: false, self: String(self) });
        expect(seen(view), `${where}: user ${self}'s view`).to.deep.equal(model.expected(clock.now, { staff: false, self }));
        expect(view.count, where).to.equal(view.entries.length);
        const staff = await online.store.roomView!('r', { seesHidden: true });
        expect(seen(staff), `${where}: staff's view`).to.deep.equal(model.expected(clock.now, { staff: true, self: -1 }));
        // The read told what time changed by now; the hooks run a turn of the loop after it.
        model.catchUp(clock.now);
        await hooksRun();
        expect(Object.fromEntries(heard), `${where}: onRoom`).to.deep.equal(Object.fromEntries(model.told));
      }
      await online.close();
    }
  });

  it('lapse, other claims, first returns: the returning tab sees who edits now; a background tab keeps its lock for 5 × the threshold', async () => {
    const clock = new Clock();
    const online = createOnlineTracker({ store: new MemoryStore({ now: clock.read }), roomThreshold: 30 });
    const touch = (user: number, tab: string, known: TabClaim | undefined, options: { away?: boolean; takeover?: boolean } = {}) =>
      online.store.roomTouch!(
        { room: 'r', tab, key: String(user), id: user, profile: { name: `User ${user}` }, mode: 'editing', takeover: options.takeover === true, away: options.away, known },
        { seesHidden: false, self: String(user) },
      );
    const ada = await online.here(request({ id: 1, name: 'Ada' }) as never, 'r', { mode: 'editing' });
    // Ada's page goes to the background and beats once a minute: she keeps the lock for 150 s after a beat.
    let adaKnows = (await touch(1, ada.tab, ada.self, { away: true })).self;
    for (let i = 0; i < 2; i++) {
      clock.now += 60_000;
      adaKnows = (await touch(1, ada.tab, adaKnows, { away: true })).self;
    }
    clock.now += 140_000;
    const grace = await online.here(request({ id: 2, name: 'Grace' }) as never, 'r', { mode: 'editing' });
    expect(grace.lock?.id, 'still Ada’s, 140 s after her background tab last beat').to.equal(1);
    expect(grace.entries.map((e) => [e.id, e.away === true])).to.deep.equal([
      [1, true],
      [2, false],
    ]);
    // Ada's tab lapses (a visible tab 30 s without a beat: offline, asleep); Grace, still here, then holds the lock.
    adaKnows = (await touch(1, ada.tab, adaKnows)).self;
    clock.now += 31_000;
    let graceKnows = (await touch(2, grace.tab, grace.self)).self;
    expect(graceKnows?.claim).to.equal(clock.now);
    clock.now += 5000;
    graceKnows = (await touch(2, grace.tab, graceKnows)).self;
    // Ada's page comes back with her signed, earlier, lapsed claim: it does not outrank Grace's.
    const back = await touch(1, ada.tab, adaKnows);
    expect(back.lock?.id).to.equal(2);
    expect(back.self?.claim, 'Ada no longer claims').to.equal(0);
    // She may take over like anyone else.
    const took = await touch(1, ada.tab, back.self, { takeover: true });
    expect(took.lock?.tab).to.equal(ada.tab);
    await online.close();
  });

  it('bounds: a full room drops its least recently active viewer, never the lock holder; a user keeps at most 20 tabs in a room', async () => {
    const clock = new Clock();
    const online = createOnlineTracker({ store: new MemoryStore({ now: clock.read }), maxRoomMembers: 3 });
    const editor = await online.here(request({ id: 1, name: 'Ada' }) as never, 'r', { mode: 'editing' });
    for (let id = 2; id <= 6; id++) {
      clock.now += 1000;
      await online.here(request({ id, name: `User ${id}` }) as never, 'r');
    }
    const view = await online.store.roomView!('r', { seesHidden: true });
    expect(view.entries.map((e) => e.id)).to.deep.equal([1, 5, 6]);
    expect(view.lock?.tab).to.equal(editor.tab);
    const many = createOnlineTracker({ store: new MemoryStore({ now: clock.read }) });
    for (let i = 0; i < 25; i++) await many.here(request({ id: 7, name: 'Tabby' }) as never, 'r');
    expect((await many.store.roomView!('r', { seesHidden: true })).entries[0].tabs).to.equal(20);
    await online.close();
    await many.close();
  });

  it('at the smallest bounds (1 room of 1 tab), no flood of rooms, tabs or page views drops the lock holder', async () => {
    const seed = modelSeed();
    console.log(`      model seed: ${seed} (replay with MODEL_SEED=${seed})`);
    const rng = new Rng(seed);
    const clock = new Clock();
    const online = createOnlineTracker({ store: new MemoryStore({ now: clock.read }), maxRooms: 1, maxRoomMembers: 1 });
    const ada = await online.here(request({ id: 1, name: 'Ada' }) as never, 'order:1', { mode: 'editing' });
    let known = ada.self;
    for (let step = 0; step < 2000; step++) {
      const room = rng.chance(0.3) ? 'order:1' : `article:${Math.floor(rng.next() * 500)}`;
      const user = 2 + Math.floor(rng.next() * 50);
      // Viewers and would-be editors (no takeover: that one is a person's choice) on many rooms.
      await online.here(request({ id: user, name: `User ${user}` }) as never, room, { mode: rng.chance(0.3) ? 'editing' : 'viewing' });
      if (step % 100 === 0) {
        clock.now += 10_000; // Ada's page beats every 10 s
        known = (
          await online.store.roomTouch!({ room: 'order:1', tab: ada.tab, key: '1', id: 1, profile: { name: 'Ada' }, mode: 'editing', takeover: false, known }, { seesHidden: true })
        ).self;
      }
      const view = await online.store.roomView!('order:1', { seesHidden: true });
      expect(view.lock?.tab, `seed ${seed}, step ${step}`).to.equal(ada.tab);
    }
    await online.close();
  });

  it('past maxRooms, only rooms nobody is in any more are dropped: a flood of page views cannot empty a room someone edits', async () => {
    const clock = new Clock();
    const online = createOnlineTracker({ store: new MemoryStore({ now: clock.read }), maxRooms: 3 });
    const editor = await online.here(request({ id: 1, name: 'Ada' }) as never, 'order:1', { mode: 'editing' });
    for (let i = 0; i < 50; i++) await online.here(request({ id: 2, name: 'Eve' }) as never, `article:${i}`);
    const view = await online.store.roomView!('order:1', { seesHidden: true });
    expect(view.entries.map((e) => e.id)).to.deep.equal([1]);
    expect(view.lock?.tab).to.equal(editor.tab);
    await online.close();
  });

  it('signing out (forget) takes the user out of every room at once', async () => {
    const online = createOnlineTracker();
    await online.here(request({ id: 1, name: 'Ada' }) as never, 'a', { mode: 'editing' });
    await online.here(request({ id: 1, name: 'Ada' }) as never, 'b');
    await online.here(request({ id: 2, name: 'Grace' }) as never, 'a');
    await online.forget(1);
    const a = await online.store.roomView!('a', { seesHidden: true });
    expect(a.entries.map((e) => e.id)).to.deep.equal([2]);
    expect(a.lock).to.equal(null);
    expect((await online.store.roomView!('b', { seesHidden: true })).count).to.equal(0);
    await online.close();
  });

  it('rejects a room that is not a name, a mode that is not one, and bad room options, naming the fix', async () => {
    const online = createOnlineTracker();
    for (const room of ['', 'x'.repeat(201), 'a\nb', 42]) {
      await online.here(request({ id: 1, name: 'Ada' }) as never, room as never).then(
        () => expect.fail(`accepted ${JSON.stringify(room)}`),
        (error: { code?: string }) => expect(error.code).to.equal('ERR_ONLINE_NOW_ROOM'),
      );
    }
    await online.here(request({ id: 1, name: 'Ada' }) as never, 'r', { mode: 'owning' as never }).then(
      () => expect.fail('accepted mode owning'),
      (error: { code?: string; message: string }) => expect(error.message).to.match(/'viewing' or 'editing'/),
    );
    expect(() => createOnlineTracker({ roomThreshold: 0 })).to.throw(TypeError, /roomThreshold/);
    expect(() => createOnlineTracker({ maxRooms: 1.5 })).to.throw(TypeError, /maxRooms/);
    expect(() => createOnlineTracker({ maxRoomMembers: 0 })).to.throw(TypeError, /maxRoomMembers/);
    expect(() => createOnlineTracker({ secret: '' })).to.throw(TypeError, /secret/);
    await online.close();
  });
});

describe('onRoom (memory store): sign-outs, evictions, rooms occupied before it', () => {
  const viewer = (user: number) => ({ seesHidden: false, self: String(user) });
  const touch = (online: ReturnType<typeof createOnlineTracker>, user: number, tab: string, mode: 'viewing' | 'editing' = 'viewing') =>
    online.store.roomTouch!({ room: 'r', tab, key: String(user), id: user, profile: { name: `User ${user}` }, mode, takeover: false }, viewer(user));
  const tab = (n: number): string => `tab-${String(n).padStart(12, '0')}`;

  it('signing out leaves every room as left (the lock given up first); a tab dropped for maxRoomMembers leaves as evicted', async () => {
    const clock = new Clock();
    const heard: string[] = [];
    const online = createOnlineTracker({
      store: new MemoryStore({ now: clock.read }),
      maxRoomMembers: 2,
      onRoom: (event) => void heard.push(`${toldOf(event)[1]} ${toldOf(event)[0]}`),
    });
    await touch(online, 1, tab(1), 'editing');
    clock.now += 1000;
    await touch(online, 2, tab(2));
    clock.now += 1000;
    // A third tab in a room of 2: the least recently active that claims nothing (user 2's) is dropped.
    await touch(online, 3, tab(3));
    await hooksRun();
    const t0 = 1_700_000_000_000;
    expect(heard).to.deep.equal([`join@${t0} 1`, `lock 1@${t0} lock`, `join@${t0 + 1000} 2`, `leave@${t0 + 2000} evicted 2`, `join@${t0 + 2000} 3`]);
    heard.length = 0;
    clock.now += 1000;
    await online.forget(1);
    await hooksRun();
    expect(heard).to.deep.equal([`unlock 1@${t0 + 3000} lock`, `leave@${t0 + 3000} left 1`]);
    await online.close();
  });

  it('an invisible user is told too, their entry marked hidden: true (the app filters them before showing others)', async () => {
    const events: RoomEvent[] = [];
    const online = createOnlineTracker({ store: new MemoryStore({ now: new Clock().read }), onRoom: (event) => void events.push(event) });
    await online.store.roomTouch!(
      { room: 'r', tab: tab(1), key: '1', id: 1, profile: { name: 'Ada', hidden: true }, mode: 'viewing', takeover: false },
      { seesHidden: false, self: '1' },
    );
    await hooksRun();
    expect(events.map((e) => [e.type, e.user.id, e.user.name, e.user.hidden])).to.deep.equal([['join', 1, 'Ada', true]]);
    await online.close();
  });

  it('a room occupied before a tracker with onRoom attached takes who is there as they are: newcomers and every leaving are told', async () => {
    const clock = new Clock();
    const store = new MemoryStore({ now: clock.read });
    const quiet = createOnlineTracker({ store });
    await touch(quiet, 1, tab(1), 'editing');
    const heard: string[] = [];
    const hooked = createOnlineTracker({ store, onRoom: (event) => void heard.push(`${toldOf(event)[1]} ${toldOf(event)[0]}`) });
    clock.now += 1000;
    await touch(hooked, 2, tab(2));
    await touch(hooked, 1, tab(1), 'editing');
    await hooksRun();
    const t0 = 1_700_000_000_000;
    expect(heard, 'user 1 and their lock were there before').to.deep.equal([`join@${t0 + 1000} 2`]);
    // User 1's tab stops beating: it lapses 30 s after its last heartbeat, lock and all, at that moment.
    clock.now += 20_000;
    await touch(hooked, 2, tab(2));
    clock.now += 20_000;
    await hooked.store.roomView!('r', viewer(2));
    await hooksRun();
    expect(heard).to.deep.equal([`join@${t0 + 1000} 2`, `unlock 1@${t0 + 31_000} lock`, `leave@${t0 + 31_000} expired 1`]);
    await hooked.close();
    await quiet.close();
  });
});

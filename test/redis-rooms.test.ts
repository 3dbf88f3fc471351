import { expect } from 'chai';
import express from 'express';
import { RedisStore, createOnlineTracker, type OnlineTracker, type RoomView } from 'express-online-now';
import { RedisServer, REDIS_SERVER, connect, uniquePrefix, type TestClient } from './helpers/redis';
import { modelSeed, Rng } from './helpers/model';
import { requireBinary } from './helpers/requirements';
import { postFromPage } from './helpers/browser';
import { listen } from './helpers/server';
import { synced } from './helpers/stores';
import { eventually, sleep } from './helpers/wait';

interface Tab {
  user: number;
  mode: 'viewing' | 'editing';
  /** Order of its lock claim (0: none): steps are made one after another here, so order is time order. */
  claim: number;
  /** Takeovers before the claim. */
  gen: number;
  /** Order of its ask for the lock (0: not asking). */
  ask: number;
  /** Order of its last decline (0: none): a holder's declines every ask made before it. */
  declined: number;
  /** The tab it handed the lock over to, while it holds ('' for none). */
  grant: string;
}

const STAFF = { seesHidden: true } as const;
const request = (id: number) => ({ headers: {}, session: { user: { id, name: `User ${id}` } }, res: { locals: {} } });

/** Users with their tab count and mode, in any order, the lock holder's user/tab, and the ask the holder is shown. */
function shape(view: RoomView): string {
  const users = view.entries.map((e) => `${String(e.id)}:${e.tabs}:${e.mode}`).sort();
  const q = view.request;
  const request = q === null || q === undefined ? 'none' : `${String((q as { id?: unknown }).id)}/${q.tab}${q.declined ? ' declined' : ''}${q.granted ? ' granted' : ''}`;
  return `${users.join(',')} lock=${view.lock === null ? 'none' : `${String(view.lock.id)}/${String(view.lock.tab)}`} request=${request}`;
}

describe('RedisStore rooms: tabs and the editing lock across processes, through Redis restarts, against a model', function () {
  this.timeout(120_000);
  let server: RedisServer;
  const opened: { close(): Promise<unknown> }[] = [];

  before(async function () {
    requireBinary(this, REDIS_SERVER, 'apt-get install -y redis-server');
    server = await RedisServer.start();
  });
  after(async () => {
    await server?.stop();
  });
  afterEach(async () => {
    for (const thing of opened.splice(0).reverse()) await thing.close();
  });

  async function processes(n: number, prefix: string, roomThreshold = 60): Promise<{ online: OnlineTracker; store: RedisStore; client: TestClient }[]> {
    const made = [];
    for (let i = 0; i < n; i++) {
      const client = await connect(i % 2 === 0 ? 'node-redis' : 'ioredis', server);
      opened.push(client);
      const store = new RedisStore({ client: client.client, prefix, syncInterval: 50 });
      const online = createOnlineTracker({ store, roomThreshold });
      opened.push(online);
      made.push({ online, store, client });
    }
    return made;
  }

  it('random page views, heartbeats, takeovers, asks, declines, hand-overs and leaves on random processes, and Redis restarts: every process shows the model', async () => {
    const seed = modelSeed();
    console.log(`      model seed: ${seed} (replay with MODEL_SEED=${seed})`);
    const rng = new Rng(seed);
    // Tabs never expire here (the model has no expiry): a room threshold far longer than a slow run.
    const procs = await processes(3, uniquePrefix(), 3600);
    const tabs = new Map<string, Tab>();
    let order = 0;
    // How often the model showed an ask, a declined one and a hand-over: what this seed covered.
    const shown = { 'request=\\d': 0, ' declined': 0, ' granted': 0 };
    let handedOver = 0;
    // The most takeovers, then the earliest claim (claims here are made one after another, so never tied).
    const holder = (): string | undefined => {
      let best: [string, Tab] | undefined;
      for (const entry of tabs) {
        const [, t] = entry;
        if (t.mode !== 'editing' || t.claim === 0) continue;
        if (best === undefined || t.gen > best[1].gen || (t.gen === best[1].gen && t.claim < best[1].claim)) best = entry;
      }
      return best?.[0];
    };
    const expected = (): string => {
      const users = new Map<number, { tabs: number; mode: string }>();
      for (const t of tabs.values()) {
        const u = users.get(t.user) ?? { tabs: 0, mode: 'viewing' };
        u.tabs++;
        if (t.mode === 'editing') u.mode = 'editing';
        users.set(t.user, u);
      }
      const h = holder();
      return `${[...users]
        .map(([id, u]) => `${id}:${u.tabs}:${u.mode}`)
        .sort()
        .join(',')} lock=${h === undefined ? 'none' : `${tabs.get(h)!.user}/${h}`} request=${shownAsk(h)}`;
    };
    // The ask the holder is shown: one not yet declined before any declined one, then the earliest.
    const firstAsk = (held: Tab, h: string): [string, Tab] | undefined => {
      const rank = (t: Tab): number => (t.ask > held.declined ? 0 : 1);
      let first: [string, Tab] | undefined;
      for (const [tab, t] of tabs) {
        if (t.ask === 0 || tab === h) continue;
        if (first === undefined || rank(t) < rank(first[1]) || (rank(t) === rank(first[1]) && t.ask < first[1].ask)) first = [tab, t];
      }
      return first;
    };
    const shownAsk = (h: string | undefined): string => {
      const held = h === undefined ? undefined : tabs.get(h);
      const first = held === undefined ? undefined : firstAsk(held, h!);
      if (held === undefined || first === undefined) return 'none';
      return `${first[1].user}/${first[0]}${first[1].ask <= held.declined ? ' declined' : ''}${held.grant === first[0] ? ' granted' : ''}`;
    };
    for (let step = 0; step < 100; step++) {
      const p = rng.pick(procs);
      const roll = rng.next();
      const user = 1 + Math.floor(rng.next() * 4);
      const where = `seed ${seed}, step ${step}`;
      if (roll < 0.3 || tabs.size === 0) {
        const mode = rng.chance(0.4) ? 'editing' : 'viewing';
        const view = await p.online.here(request(user) as never, 'order:1', { mode });
        tabs.set(view.tab, { user, mode, claim: mode === 'editing' && holder() === undefined ? ++order : 0, gen: 0, ask: 0, declined: 0, grant: '' });
      } else if (roll < 0.65) {
        // What else the page says: an ask (a new one, or still asking), a decline, or a hand-over to another tab;
        // an answer mostly from the holder's page, a hand-over mostly to the ask it is shown.
        const extra = rng.pick(['none', 'none', 'ask new', 'ask', 'decline', 'grant'] as const);
        const h0 = holder();
        const answering = (extra === 'decline' || extra === 'grant') && h0 !== undefined && rng.chance(0.7);
        // The tab handed the lock to, told so, often beats next as an editor (and takes it).
        const handedTo = h0 === undefined ? '' : tabs.get(h0)!.grant;
        const taking = !answering && tabs.has(handedTo) && rng.chance(0.5);
        const [tab, t] = answering ? [h0, tabs.get(h0)!] : taking ? [handedTo, tabs.get(handedTo)!] : rng.pick([...tabs]);
        const mode = answering || taking || rng.chance(0.5) ? 'editing' : 'viewing';
        const takeover = mode === 'editing' && rng.chance(0.3);
        const others = [...tabs.keys()].filter((k) => k !== tab);
        const asking = answering ? firstAsk(t, tab)?.[0] : undefined;
        const grant = extra !== 'grant' || others.length === 0 ? undefined : asking !== undefined && rng.chance(0.7) ? asking : rng.pick(others);
        const ask = extra === 'ask new' ? ('new' as const) : extra === 'ask' ? true : undefined;
        const decline = extra === 'decline' ? true : undefined;
        await p.store.roomTouch({ room: 'order:1', tab, key: String(t.user), id: t.user, profile: { name: `User ${t.user}` }, mode, takeover, ask, decline, grant }, STAFF);
        const h = holder();
        let claim = 0;
        let gen = 0;
        if (mode === 'editing') {
          const top = Math.max(0, ...[...tabs.values()].map((x) => (x.claim === 0 ? 0 : x.gen)));
          if (h === tab) [claim, gen] = [t.claim, t.gen];
          // A takeover, or the tab its holder handed the lock to: above every claim.
          else if (takeover || (h !== undefined && tabs.get(h)!.grant === tab)) {
            [claim, gen] = [++order, top + 1];
            if (!takeover) handedOver++;
          } else if (h === undefined) claim = ++order;
        }
        const holds = claim !== 0 && claim === t.claim;
        tabs.set(tab, {
          user: t.user,
          mode,
          claim,
          gen,
          // An ask is made by a tab that claims nothing; one still asking keeps its time; any other beat ends it.
          ask: ask !== undefined && claim === 0 ? (ask === 'new' || t.ask === 0 ? ++order : t.ask) : 0,
          declined: decline === true ? ++order : t.declined,
          // A hand-over stands while its tab holds the same claim.
          grant: holds ? (grant ?? t.grant) : '',
        });
      } else if (roll < 0.85) {
        const [tab, t] = rng.pick([...tabs]);
        await p.store.roomLeave('order:1', String(t.user), tab);
        tabs.delete(tab);
      } else if (roll < 0.9) {
        // Redis loses everything: each process writes its replica back.
        await server.restart();
      } else {
        await sleep(rng.between(0, 120)); // a random pause is one of the model's steps: time passing is the subject
      }
      const want = expected();
      for (const kind of ['request=\\d', ' declined', ' granted'] as const) if (new RegExp(kind).test(want)) shown[kind]++;
      // Each step waits for every process: the next claim is decided on an up-to-date replica, as the model assumes.
      await eventually(async () => {
        for (const [i, q] of procs.entries()) expect(shape(await q.store.roomView('order:1', STAFF)), `${where}, process ${i}`).to.equal(want);
      }, 8000);
      // And every process has the step's write, what the view does not show too (a hand-over before its tab asks).
      await synced(...procs);
    }
    console.log(`      steps showing an ask: ${shown['request=\\d']}, a declined one: ${shown[' declined']}, a hand-over: ${shown[' granted']}; hand-overs taken: ${handedOver}`);
  });

  it('two editors on two processes claim at once: every process settles on the same one holder, the first to claim', async () => {
    for (let round = 0; round < 5; round++) {
      const [a, b] = await processes(2, uniquePrefix());
      const [ta, tb] = await Promise.all([a.online.here(request(1) as never, 'doc', { mode: 'editing' }), b.online.here(request(2) as never, 'doc', { mode: 'editing' })]);
      let holders: string[] = [];
      await eventually(async () => {
        holders = [];
        for (const q of [a, b]) {
          const lock = (await q.store.roomView('doc', STAFF)).lock;
          holders.push(String(lock?.tab));
        }
        expect(holders[0]).to.equal(holders[1]);
      });
      expect([ta.tab, tb.tab]).to.include(holders[0]);
      for (const thing of opened.splice(0).reverse()) await thing.close();
    }
  });

  it('a takeover on a process that has not yet seen the holder still takes the lock, on every process', async () => {
    const [a, b] = await processes(2, uniquePrefix());
    await a.online.here(request(1) as never, 'doc', { mode: 'editing' });
    const taker = await b.online.here(request(2) as never, 'doc', { mode: 'editing', takeover: true });
    await eventually(async () => {
      for (const q of [a, b]) expect((await q.store.roomView('doc', STAFF)).lock?.tab).to.equal(taker.tab);
    });
  });

  /** Two processes (node-redis, ioredis) at the default syncInterval, each up to a second behind the other; or at the intervals given. */
  const slow = async (
    prefix: string,
    { syncIntervals = [1000, 1000], trackerOptions = {} }: { syncIntervals?: [number, number]; trackerOptions?: Partial<Parameters<typeof createOnlineTracker>[0]> } = {},
  ): Promise<{ online: OnlineTracker; store: RedisStore }[]> => {
    const made = [];
    for (const [i, kind] of (['node-redis', 'ioredis'] as const).entries()) {
      const client = await connect(kind, server);
      opened.push(client);
      const store = new RedisStore({ client: client.client, prefix, syncInterval: syncIntervals[i] });
      const online = createOnlineTracker({ store, ...trackerOptions });
      opened.push(online);
      made.push({ online, store });
    }
    return made;
  };

  it('a heartbeat that lands on a process not yet synced keeps its tab’s claim (the page echoes it): after a takeover, and for the first editor', async () => {
    const beat = (p: { store: RedisStore }, user: number, room: string, tab: string, self: unknown) =>
      p.store.roomTouch({ room, tab, key: String(user), id: user, profile: { name: `User ${user}` }, mode: 'editing', takeover: false, known: self as never }, STAFF);
    {
      const [p1, p2] = await slow(uniquePrefix());
      const ada = await p1.online.here(request(1) as never, 'doc', { mode: 'editing' });
      await eventually(async () => expect((await p2.store.roomView('doc', STAFF)).lock?.tab).to.equal(ada.tab)); // both know Ada holds it
      const bob = await p1.online.here(request(2) as never, 'doc', { mode: 'editing', takeover: true });
      await sleep(100); // the order is the subject: the beat comes after the takeover on two processes' estimates of Redis's clock
      await beat(p2, 2, 'doc', bob.tab, bob.self);
      await eventually(async () => {
        for (const p of [p1, p2]) expect((await p.store.roomView('doc', STAFF)).lock?.tab, 'after the takeover').to.equal(bob.tab);
      }, 4000);
    }
    {
      const [p1, p2] = await slow(uniquePrefix());
      const ada = await p1.online.here(request(1) as never, 'doc', { mode: 'editing' });
      await sleep(20); // the order is the subject: Ada's claim comes first on two processes' estimates of Redis's clock
      await p2.online.here(request(2) as never, 'doc', { mode: 'editing' });
      await beat(p2, 1, 'doc', ada.tab, ada.self);
      await eventually(async () => {
        for (const p of [p1, p2]) expect((await p.store.roomView('doc', STAFF)).lock?.tab, 'the first editor').to.equal(ada.tab);
      }, 4000);
    }
  });

  it('a heartbeat that lands on a process not yet synced keeps its tab’s hand-over and decline (the page echoes them too)', async () => {
    type Extra = { ask?: 'new' | true; decline?: true; grant?: string };
    const beat = (p: { store: RedisStore }, user: number, tab: string, self: unknown, mode: 'editing' | 'viewing', extra: Extra = {}) =>
      p.store.roomTouch({ room: 'doc', tab, key: String(user), id: user, profile: { name: `User ${user}` }, mode, takeover: false, known: self as never, ...extra }, STAFF);
    for (const answer of ['hand over', 'decline'] as const) {
      const [p1, p2] = await slow(uniquePrefix());
      const ada = await p1.online.here(request(1) as never, 'doc', { mode: 'editing' });
      const bob = await p1.online.here(request(2) as never, 'doc');
      const asked = await beat(p1, 2, bob.tab, bob.self, 'editing', { ask: 'new' });
      await synced(p1, p2);
      // Ada answers on p1; her page's next heartbeat lands on p2, which has not synced that answer yet.
      const answered = await beat(p1, 1, ada.tab, ada.self, 'editing', answer === 'hand over' ? { grant: bob.tab } : { decline: true });
      await sleep(100); // the order is the subject: the heartbeat comes after the answer on two processes' estimates of Redis's clock
      await beat(p2, 1, ada.tab, answered.self, 'editing');
      await synced(p1, p2);
      if (answer === 'decline') {
        for (const [i, p] of [p1, p2].entries()) expect((await p.store.roomView('doc', STAFF)).request?.declined, `declined, on process ${i}`).to.equal(true);
        continue;
      }
      // Bob's page, told the lock is his, beats asking: it takes the lock, on every process.
      await beat(p1, 2, bob.tab, asked.self, 'editing', { ask: true });
      await eventually(async () => {
        for (const [i, p] of [p1, p2].entries()) expect((await p.store.roomView('doc', STAFF)).lock?.tab, `handed over, on process ${i}`).to.equal(bob.tab);
      }, 4000);
    }
  });

  it('a holder’s page that saw its lock released asks again (recheck): its heartbeat, on a process not yet synced, is answered as Redis has the room', async () => {
    // p2 syncs only when this test asks (confirm) or a lock change does: until then its replica stays as it was.
    const [p1, p2] = await slow(uniquePrefix(), {
      syncIntervals: [1000, 60_000],
      trackerOptions: { roomThreshold: 300, secret: 'rooms test', canReleaseLocks: () => true },
    });
    // p2's heartbeat route, for Ada's page (the session's user set by hand).
    const app = express();
    app.use((req, _res, next) => {
      (req as unknown as { session: unknown }).session = { user: { id: 1, name: 'User 1' } };
      next();
    });
    app.use(p2.online.client());
    const http = await listen(app);
    opened.push(http);
    const page = request(1);
    const ada = await p1.online.here(page as never, 'order:1', { mode: 'editing' });
    // The tab's record as the page has it (signed, in its script tag), which its heartbeats echo.
    const claim = (page.res.locals as { onlineHereSelf?: unknown }).onlineHereSelf;
    await p2.store.confirm();
    expect((await p2.store.roomView('order:1', STAFF)).lock?.tab, 'p2, synced').to.equal(ada.tab);
    // Staff release it on p1 (in Redis before release() returns); the page's stream shows it gone, and the page asks.
    expect(await p1.online.release(request(9) as never, 'order:1')).to.equal(true);
    expect((await p2.store.roomView('order:1', STAFF)).lock?.tab, 'p2, a sync behind').to.equal(ada.tab);
    const res = await postFromPage(http.base, '/online-now/beat', { room: 'order:1', tab: ada.tab, mode: 'editing', claim, recheck: true });
    expect(res.status).to.equal(200);
    expect(((await res.json()) as { lock: { tab?: string } | null }).lock, 'the lock, as the reply shows it').to.equal(null);
  });

  it('lapse, other claims, first returns, across three processes: a background tab keeps the lock for 5 × the threshold; a lapsed one comes back to who edits now', async () => {
    const procs = await processes(3, uniquePrefix(), 1);
    const beat = (p: { store: RedisStore }, user: number, tab: string, known: unknown, away = false) =>
      p.store.roomTouch({ room: 'doc', tab, key: String(user), id: user, profile: { name: `User ${user}` }, mode: 'editing', takeover: false, away, known: known as never }, STAFF);
    const lockOnEvery = (tab: string, why: string) =>
      eventually(async () => {
        for (const [i, p] of procs.entries()) expect((await p.store.roomView('doc', STAFF)).lock?.tab, `${why}, process ${i}`).to.equal(tab);
      }, 3000);
    const ada = await procs[0].online.here(request(1) as never, 'doc', { mode: 'editing' });
    // Ada's page goes to the background: one beat marked away, then silence past the 1 s window (not the 5 s one).
    let adaKnows = (await beat(procs[1], 1, ada.tab, ada.self, true)).self;
    await sleep(1500); // silence past the 1 s window is the subject; it shows in nothing (the lock stays), and Redis's clock cannot be set
    const grace = await procs[2].online.here(request(2) as never, 'doc', { mode: 'editing' });
    await lockOnEvery(ada.tab, 'a background editor keeps the lock');
    // Back in front, then offline past the 1 s window: Grace's next beat takes the free lock.
    adaKnows = (await beat(procs[0], 1, ada.tab, adaKnows)).self;
    await eventually(async () => expect((await procs[2].store.roomView('doc', STAFF)).entries.map((e) => e.name)).not.to.include('User 1')); // her tab has lapsed
    await beat(procs[2], 2, grace.tab, grace.self);
    await lockOnEvery(grace.tab, 'Ada lapsed, Grace claimed');
    // Ada's page returns on another process with its earlier, signed, lapsed claim: it does not outrank Grace's.
    const back = await beat(procs[1], 1, ada.tab, adaKnows);
    expect(back.self?.claim, 'Ada claims nothing').to.equal(0);
    await synced(...procs);
    await lockOnEvery(grace.tab, 'Ada came back');
  });

  it('at the smallest bounds (1 room of 1 tab), a flood of page views on other processes never takes the lock from its holder', async () => {
    const procs: { online: OnlineTracker; store: RedisStore }[] = [];
    const prefix = uniquePrefix();
    for (let i = 0; i < 2; i++) {
      const client = await connect(i === 0 ? 'node-redis' : 'ioredis', server);
      opened.push(client);
      const store = new RedisStore({ client: client.client, prefix, syncInterval: 50 });
      const online = createOnlineTracker({ store, maxRooms: 1, maxRoomMembers: 1 });
      opened.push(online);
      procs.push({ online, store });
    }
    const ada = await procs[0].online.here(request(1) as never, 'order:1', { mode: 'editing' });
    await eventually(async () => expect((await procs[1].store.roomView('order:1', STAFF)).lock?.tab).to.equal(ada.tab));
    for (let i = 0; i < 200; i++) {
      await procs[i % 2].online.here(request(2 + (i % 7)) as never, i % 3 === 0 ? 'order:1' : `article:${i}`, { mode: i % 5 === 0 ? 'editing' : 'viewing' });
      if (i % 20 === 0) await synced(...procs); // a sync or two
    }
    await synced(...procs);
    for (const [i, p] of procs.entries()) expect((await p.store.roomView('order:1', STAFF)).lock?.tab, `process ${i}`).to.equal(ada.tab);
  });

  it('refuses a room threshold that a sync interval would make flicker, naming the fix', async () => {
    const client = await connect('node-redis', server);
    opened.push(client);
    const store = new RedisStore({ client: client.client, prefix: uniquePrefix(), syncInterval: 1000 });
    // Fine without rooms (an app may sync slowly); refused when rooms are used.
    const online = createOnlineTracker({ store, roomThreshold: 2, secret: 'shared' });
    opened.push(online);
    expect(() => online.client()).to.throw(TypeError, /roomThreshold \(2000 ms\).*\{ syncInterval: 500 \}/);
    await online.here({ headers: {}, session: {} } as never, 'r').then(
      () => expect.fail('here() accepted'),
      (error: { code?: string }) => expect(error.code).to.equal('ERR_ONLINE_NOW_SYNCINTERVAL'),
    );
    expect(() => createOnlineTracker({ store: new RedisStore({ client: client.client, prefix: uniquePrefix() }) }).client()).to.throw(TypeError, /secret/);
  });

  it('a tab that stops beating leaves every process after the room threshold; a leave, at once', async () => {
    const [a, b] = await processes(2, uniquePrefix(), 2);
    const gone = await a.online.here(request(1) as never, 'r', { mode: 'editing' });
    const stays = await a.online.here(request(2) as never, 'r');
    await eventually(async () => expect((await b.store.roomView('r', STAFF)).count).to.equal(2));
    await b.store.roomLeave('r', '2', stays.tab);
    await eventually(async () => expect((await a.store.roomView('r', STAFF)).count).to.equal(1), 1000);
    expect((await a.store.roomView('r', STAFF)).lock?.tab).to.equal(gone.tab);
    // The room threshold (2 s) passes on Redis's clock, which a test cannot set.
    await eventually(async () => {
      for (const q of [a, b]) {
        const view = await q.store.roomView('r', STAFF);
        expect(view.count).to.equal(0);
        expect(view.lock).to.equal(null);
      }
    });
    // Redis let them go too: a new process reads an empty room.
    const [c] = await processes(1, a.store.prefix, 2);
    expect((await c.store.roomView('r', STAFF)).count).to.equal(0);
  });

  it('a new process reads the rooms whole on its first sync, lock and all', async () => {
    const prefix = uniquePrefix();
    const [a] = await processes(1, prefix);
    const editor = await a.online.here(request(1) as never, 'order:7', { mode: 'editing' });
    await a.online.here(request(2) as never, 'order:7');
    const admin = await connect('node-redis', server);
    opened.push(admin);
    await eventually(async () => expect(await admin.command('ZCARD', `{${prefix}}:rooms:seen`)).to.equal(2)); // a has written both tabs
    const [fresh] = await processes(1, prefix);
    const view = await fresh.store.roomView('order:7', STAFF);
    expect(view.entries.map((e) => e.name)).to.deep.equal(['User 1', 'User 2']);
    expect(view.lock).to.include({ tab: editor.tab, name: 'User 1' });
  });
});

// Editing safely together (issue #24), over real HTTP on the demo app (memory store):
// the write guard, "changed while you were looking", asking for the lock, staff
// release and lock badges, as two admins' browsers (cookie jars) see them.
import { expect } from 'chai';
import { createRequire } from 'node:module';
import { CookieBrowser } from './helpers/browser';
import { listen, type Listening } from './helpers/server';
import { SseStream } from './helpers/sse';
import type { RoomPayload } from 'express-online-now';

const require = createRequire(__filename);
const { createDemoApp } = require('../views-examples/server.js') as { createDemoApp: (o: object) => { app: never; online: import('express-online-now').OnlineTracker } };

/** A heartbeat's reply, as JSON carries it. */
type Payload = RoomPayload & { readonly self?: { readonly claim: number } };

interface Page {
  readonly tab: string;
  readonly claim: unknown;
  readonly html: string;
}

/** A person signed in to the demo: pages, heartbeats and saves with their session. */
class Admin extends CookieBrowser {
  static async as(base: string, id: number): Promise<Admin> {
    const admin = new Admin(base);
    expect((await admin.request('POST', '/login', { id: String(id) })).status).to.equal(303);
    return admin;
  }

  async open(path: string): Promise<Page> {
    const res = await this.request('GET', path);
    const html = await res.text();
    const tab = /data-tab="([^"]+)"/.exec(html)?.[1] ?? '';
    const claim = /data-claim="([^"]+)"/.exec(html)?.[1];
    return { tab, claim: claim === undefined ? undefined : JSON.parse(claim.replace(/&quot;/g, '"')), html };
  }

  /** A heartbeat as the client script sends it; its reply (the room as a payload). */
  async beat(page: Page, body: Record<string, unknown>): Promise<Payload> {
    const res = await this.send('/online-now/beat', JSON.stringify({ tab: page.tab, room: 'order:123', mode: 'editing', claim: page.claim, ...body }), 'text/plain');
    expect(res.status).to.equal(200);
    const state = (await res.json()) as Payload;
    if (state.self !== undefined) (page as { claim: unknown }).claim = state.self;
    return state;
  }

  send(path: string, body: string, type: string, accept = 'application/json'): Promise<Response> {
    return fetch(new URL(path, this.base), { method: 'POST', headers: { cookie: this.cookieHeader, 'content-type': type, accept }, body });
  }

  save(order: number, note: string, accept = 'application/json'): Promise<Response> {
    return this.send(`/orders/${order}`, new URLSearchParams({ note }).toString(), 'application/x-www-form-urlencoded', accept);
  }

  stream(query: string): Promise<SseStream> {
    return SseStream.open(`${this.base}/online-now/events?${query}`, { cookie: this.cookieHeader });
  }
}

describe('editing safely together (memory store, over HTTP)', function () {
  let server: Listening;
  let online: import('express-online-now').OnlineTracker;
  const streams: SseStream[] = [];

  beforeEach(async () => {
    const demo = createDemoApp({ sessionSecret: 'editing together', tracker: { askWait: '1s', askGrace: '1s', roomThreshold: 30 } });
    online = demo.online;
    server = await listen(demo.app);
  });
  afterEach(async () => {
    for (const s of streams.splice(0)) s.close();
    await server.close();
    await online.close();
  });

  it('a save from anyone but the holder is refused with the holder’s name (423, JSON and HTML); the holder’s goes through', async () => {
    const ada = await Admin.as(server.base, 1);
    const grace = await Admin.as(server.base, 2);
    await ada.open('/orders/123?edit=1');
    await grace.open('/orders/123?edit=1');

    const refused = await grace.save(123, 'mine');
    expect(refused.status).to.equal(423);
    const body = (await refused.json()) as { error: string; message: string; lock: { name: string } };
    expect(body).to.include({ error: 'lock-held' });
    expect(body.message).to.match(/^Not saved: Ada Lovelace is editing this order \(since .+\)\.$/);
    expect(body.lock.name).to.equal('Ada Lovelace');

    const page = await grace.save(123, 'mine', 'text/html');
    expect(page.status).to.equal(423);
    expect(await page.text()).to.match(/<p class="online-refused" role="alert">Not saved: Ada Lovelace is editing this order/);

    const saved = await ada.save(123, 'shipped on Monday');
    expect(saved.status).to.equal(200);
    expect((await ada.open('/orders/123')).html).to.include('shipped on Monday');
    // Nobody holds order 124: nobody writes it.
    const free = await ada.save(124, 'x');
    expect(free.status).to.equal(423);
    expect((await free.json()) as { error: string; message: string }).to.deep.include({ error: 'lock-free', message: 'Not saved: open this order for editing first.' });
  });

  it('a save tells every other page of the order at once, with who and when, but not the saver’s own', async () => {
    const ada = await Admin.as(server.base, 1);
    const grace = await Admin.as(server.base, 2);
    await ada.open('/orders/123?edit=1');
    await grace.open('/orders/123');
    const graceStream = await grace.stream('rooms=order:123&html=1');
    const adaStream = await ada.stream('rooms=order:123');
    streams.push(graceStream, adaStream);
    await graceStream.next('here');
    await adaStream.next('here');

    const before = Date.now();
    expect((await ada.save(123, 'paid')).status).to.equal(200);
    const changed = await graceStream.next<{ room: string; saved: { name: string; at: string; mine: boolean }; html: string }>('changed', () => true, 2000);
    expect(changed.room).to.equal('order:123');
    expect(changed.saved.name).to.equal('Ada Lovelace');
    expect(Date.parse(changed.saved.at)).to.be.within(before - 1000, Date.now() + 1000);
    expect(changed.html).to.match(
      /^<p class="online-changed" role="status">Ada Lovelace saved this order <time datetime="[^"]+">(now|\d+ seconds? ago)<\/time> — <a href="" data-online-reload>reload<\/a><\/p>$/,
    );
    // The same fragment for htmx's sse-swap.
    expect(await graceStream.next<string>('html:changed:order:123', () => true, 2000)).to.equal(changed.html);
    // Ada's own stream moved on (the room's state), without a notice of her own save.
    await adaStream.next<{ saved: { name: string } | null }>('here', (h) => h.saved !== null, 2000);
    expect(adaStream.events.some((e) => e.event === 'changed')).to.equal(false);
  });

  it('ask → decline keeps the lock; ask → hand over passes it to the asker, whose page takes it at its next beat', async () => {
    const ada = await Admin.as(server.base, 1);
    const grace = await Admin.as(server.base, 2);
    const adaPage = await ada.open('/orders/123?edit=1');
    const gracePage = await grace.open('/orders/123');

    let asked = await grace.beat(gracePage, { ask: true });
    expect(asked.lock?.name).to.equal('Ada Lovelace');
    expect(asked.html.requestMine).to.match(/You asked Ada Lovelace to hand over/);
    let holder = await ada.beat(adaPage, {});
    expect(holder.request).to.include({ name: 'Grace Hopper', tab: gracePage.tab, declined: false, granted: false });
    expect(holder.html.request).to.match(/Grace Hopper asks to edit .*data-online-handover>Hand over.*data-online-decline>Decline/);

    holder = await ada.beat(adaPage, { decline: true });
    expect(holder.request?.declined).to.equal(true);
    asked = await grace.beat(gracePage, { ask: true });
    expect(asked.request?.declined).to.equal(true);
    expect(asked.html.requestMine).to.equal('<p class="online-request" data-declined>Ada Lovelace declined to hand over.</p>');
    expect(asked.lock?.name).to.equal('Ada Lovelace');
    expect((await grace.save(123, 'x')).status).to.equal(423);

    // Asked again (a click: 'new'), and accepted this time.
    expect((await grace.beat(gracePage, { ask: 'new' })).request?.declined).to.equal(false);
    holder = await ada.beat(adaPage, { handover: true });
    expect(holder.request?.granted).to.equal(true);
    expect(holder.lock?.name).to.equal('Ada Lovelace'); // until the asker's page takes it
    const taken = await grace.beat(gracePage, { ask: true });
    expect(taken.lock).to.include({ name: 'Grace Hopper', tab: gracePage.tab });
    expect((await ada.beat(adaPage, {})).lock?.name).to.equal('Grace Hopper');
    expect((await grace.save(123, 'mine now')).status).to.equal(200);
    expect((await ada.save(123, 'too late')).status).to.equal(423);
  });

  it('an ask its holder leaves unanswered while away passes the lock after askWait + askGrace; the holder’s page was told when', async () => {
    const ada = await Admin.as(server.base, 1);
    const grace = await Admin.as(server.base, 2);
    const adaPage = await ada.open('/orders/123?edit=1');
    const gracePage = await grace.open('/orders/123');
    // Ada's page is in the background.
    await ada.beat(adaPage, { away: true });
    const asked = await grace.beat(gracePage, { ask: true });
    const holder = await ada.beat(adaPage, { away: true });
    expect(holder.lock?.away).to.equal(true);
    // When the lock passes, on the server's clock, and the grace the page has to save before.
    expect(holder.handOverAt).to.equal(Date.parse(String(asked.request?.since)) + 2000);
    expect(holder.grace).to.equal(1000);
    expect((await grace.beat(gracePage, { ask: true })).lock?.name).to.equal('Ada Lovelace');
    await new Promise((resolve) => setTimeout(resolve, Math.max(0, (holder.handOverAt ?? 0) - holder.now) + 50));
    expect((await grace.beat(gracePage, { ask: true })).lock?.name).to.equal('Grace Hopper');

    // A holder whose page is visible keeps the lock, however long the ask waits.
    const alan = await Admin.as(server.base, 3);
    const alanPage = await alan.open('/orders/123');
    await alan.beat(alanPage, { ask: true });
    const visible = await grace.beat(gracePage, {});
    expect(visible.request?.name).to.equal('Alan Turing');
    expect(visible.handOverAt).to.equal(null);
  });

  it('staff release a lock: its holder’s page is told, and its heartbeat does not take it back; a member may not release', async () => {
    const ada = await Admin.as(server.base, 1);
    const grace = await Admin.as(server.base, 2);
    const alan = await Admin.as(server.base, 3);
    const gracePage = await grace.open('/orders/123?edit=1');
    expect((await alan.request('POST', '/orders/123/release')).status).to.equal(403);
    expect((await grace.beat(gracePage, {})).lock?.name).to.equal('Grace Hopper');

    const locks = await online.locks();
    expect(locks.map((l) => [l.room, l.lock?.name])).to.deep.equal([['order:123', 'Grace Hopper']]);
    expect(locks[0].lock?.since).to.be.instanceOf(Date);

    expect((await ada.request('POST', '/orders/123/release')).status).to.equal(303);
    // The page's next heartbeat (still editing) is answered with a free lock: the script switches it to viewing.
    const after = await grace.beat(gracePage, {});
    expect(after.lock).to.equal(null);
    expect(after.self?.claim).to.equal(0);
    expect((await grace.beat(gracePage, { mode: 'viewing' })).lock).to.equal(null);
    expect((await grace.save(123, 'x')).status).to.equal(423);
    expect(await online.locks()).to.deep.equal([]);
    // Editing again is a new page (or the page's Edit): it claims the free lock.
    await grace.open('/orders/123?edit=1');
    expect((await grace.save(123, 'back')).status).to.equal(200);
  });

  it('a list of 50 orders shows each one’s lock badge from one call, and a stream keeps them live for staff only', async () => {
    const ada = await Admin.as(server.base, 1);
    const grace = await Admin.as(server.base, 2);
    const alan = await Admin.as(server.base, 3);
    await grace.open('/orders/130?edit=1');
    const list = await (await ada.request('GET', '/orders')).text();
    const badges = [...list.matchAll(/data-testid="badge-(\d+)"><span data-online-lock-badge="order:\d+">(.*?)<\/span><\/td>/g)];
    expect(badges).to.have.length(50);
    expect(badges.filter(([, , html]) => html !== '').map(([, id, html]) => [id, html])).to.deep.equal([
      [
        '130',
        '<span class="online-lock-badge" role="img" aria-label="Grace Hopper is editing" title="Editing since ' +
          /title="Editing since ([^"]+)"/.exec(list)![1] +
          '">✎ Grace Hopper</span>',
      ],
    ]);

    const rooms = encodeURIComponent(Array.from({ length: 50 }, (_, i) => `order:${123 + i}`).join('\n'));
    const staff = await ada.stream(`locks=${rooms}`);
    const member = await alan.stream(`locks=${rooms}`);
    streams.push(staff, member);
    const first = await staff.next<{ room: string; html: string }>('badge', (b) => b.room === 'order:130');
    expect(first.html).to.include('✎ Grace Hopper');
    expect(staff.events.filter((e) => e.event === 'badge')).to.have.length(50);
    await ada.open('/orders/140?edit=1');
    const taken = await staff.next<{ room: string; html: string; lock: { name: string } | null }>('badge', (b) => b.room === 'order:140' && b.lock !== null, 2000);
    expect(taken.lock?.name).to.equal('Ada Lovelace');
    expect(taken.html).to.include('✎ Ada Lovelace');
    await member.next('count');
    expect(member.events.some((e) => e.event === 'badge')).to.equal(false);
  });
});

describe('editing safely together: misconfiguration fails at startup, naming the fix', () => {
  it('requireLock(room), its options, and the tracker’s ask and release options', async () => {
    const { createOnlineTracker, OnlineNowConfigError } = await import('express-online-now');
    const online = createOnlineTracker();
    const fails = (fn: () => unknown, code: string, message: RegExp): void => {
      expect(fn).to.throw(OnlineNowConfigError, message).with.property('code', code);
    };
    try {
      fails(() => online.requireLock(''), 'ERR_ONLINE_NOW_ROOM', /requireLock\(room\) takes a room name \(such as "order:123"\) or a function of the request/);
      fails(() => online.requireLock('order:1', { onRefused: 'page' as never }), 'ERR_ONLINE_NOW_ONREFUSED', /onRefused.*\(req, res, refusal\) => void/);
      fails(() => online.requireLock('order:1', { onRefuse: () => undefined } as never), 'ERR_ONLINE_NOW_UNKNOWN_OPTION', /onRefuse/);
      fails(() => createOnlineTracker({ askWait: '1 minute' as never }), 'ERR_ONLINE_NOW_ASKWAIT', /askWait/);
      fails(() => createOnlineTracker({ askGrace: 0 }), 'ERR_ONLINE_NOW_ASKGRACE', /askGrace/);
      fails(() => createOnlineTracker({ askHandOver: true as never }), 'ERR_ONLINE_NOW_ASKHANDOVER', /\(lock\) => boolean/);
      fails(() => createOnlineTracker({ canReleaseLocks: 'Admin' as never }), 'ERR_ONLINE_NOW_CANRELEASELOCKS', /\(req\) => boolean/);
      fails(() => online.events({ canListLocks: 'Admin' as never }), 'ERR_ONLINE_NOW_CANLISTLOCKS', /\(req\) => boolean/);
      // A room function that gives no room name is the app's bug: the request fails with the reason, not a refusal.
      const errors: unknown[] = [];
      online.requireLock(() => '')({ headers: {} } as never, {} as never, (error?: unknown) => errors.push(error));
      expect(errors[0])
        .to.be.instanceOf(OnlineNowConfigError)
        .with.property('message')
        .that.matches(/the function gave "", not a room name/);
      const rejected = await online.changed({ headers: {} } as never, '').then(
        () => undefined,
        (error: unknown) => error,
      );
      expect(rejected)
        .to.be.instanceOf(OnlineNowConfigError)
        .with.property('message')
        .that.matches(/changed\(req, room\) takes a room name/);
    } finally {
      await online.close();
    }
  });

  it('onRefused answers a refused write the app’s own way, with the refusal', async () => {
    const { createOnlineTracker } = await import('express-online-now');
    const online = createOnlineTracker({ getUser: () => ({ id: 7, name: 'Grace' }) });
    try {
      const answered = await new Promise<{ status: number; error: string; message: string }>((resolve) => {
        online.requireLock('order:1', { onRefused: (_req, _res, refusal) => resolve(refusal) })({ headers: {} } as never, {} as never, () =>
          resolve({ status: 0, error: 'passed', message: '' }),
        );
      });
      expect(answered).to.deep.include({ status: 423, error: 'lock-free', message: 'Not saved: open this order for editing first.' });
    } finally {
      await online.close();
    }
  });
});

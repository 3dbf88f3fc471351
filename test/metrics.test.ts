// tracker.metrics() scraped by a real Prometheus (Debian's `prometheus`, started
// here on a free port with its own config and data dir), read back through its
// HTTP API and compared with what a page shows.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import express from 'express';
import { expect } from 'chai';
import { MeterProvider, MetricReader } from '@opentelemetry/sdk-metrics';
import { RedisStore, createOnlineTracker, type OnlineTracker } from 'express-online-now';
import { presenceApp, type LocalsJson } from './helpers/app';
import { BROWSER_AGENT, CookieBrowser } from './helpers/browser';
import { REDIS_SERVER, RedisServer, connect, freePort, uniquePrefix } from './helpers/redis';
import { requireBinary } from './helpers/requirements';
import { listen, type Listening } from './helpers/server';
import { eventually } from './helpers/wait';

const PROMETHEUS = '/usr/bin/prometheus';

async function startPrometheus(target: string): Promise<{ base: string; child: ChildProcess }> {
  const dir = mkdtempSync(path.join(tmpdir(), 'online-now-prometheus-'));
  const config = path.join(dir, 'prometheus.yml');
  writeFileSync(config, `global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: app\n    metrics_path: /metrics\n    static_configs:\n      - targets: ['${target}']\n`);
  const port = await freePort();
  const child = spawn(PROMETHEUS, [`--config.file=${config}`, `--storage.tsdb.path=${path.join(dir, 'data')}`, `--web.listen-address=127.0.0.1:${port}`], { stdio: 'ignore' });
  return { base: `http://127.0.0.1:${port}`, child };
}

/** A PromQL query's value per `kind` label (or '' without one), as Prometheus has it now. */
async function query(base: string, promql: string): Promise<Record<string, number>> {
  const res = await fetch(`${base}/api/v1/query?query=${encodeURIComponent(promql)}`);
  const body = (await res.json()) as { data: { result: { metric: Record<string, string>; value: [number, string] }[] } };
  return Object.fromEntries(body.data.result.map((r) => [r.metric.kind ?? '', Number(r.value[1])]));
}

describe('metrics: presence as Prometheus scrapes it', function () {
  this.timeout(60_000);
  let online: OnlineTracker;
  let server: Listening;
  let prometheus: { base: string; child: ChildProcess } | undefined;

  before(async function () {
    requireBinary(this, PROMETHEUS, 'apt-get install -y prometheus');
    // A scraper is nobody online: Prometheus's requests skip presence (its agent is on no crawler list, so each scrape would be a new guest).
    const made = presenceApp(express, { trackGuests: true, hidden: (user) => (user as { id: number }).id === 3, canSeeHidden: () => true, skip: (req) => req.path === '/metrics' });
    online = made.online;
    made.app.get('/metrics', async (_req, res) => {
      res.type('text/plain; version=0.0.4').send(await online.metrics());
    });
    made.app.get('/online-now/events', online.events());
    server = await listen(made.app);
    prometheus = await startPrometheus(new URL(server.base).host);
  });

  after(async () => {
    prometheus?.child.kill('SIGKILL');
    await online?.close();
    await server?.close();
  });

  it('the gauges a real Prometheus scrapes equal the counts the page shows, and follow a logout', async () => {
    const people = [1, 2, 3].map(() => new CookieBrowser(server.base));
    for (const [i, person] of people.entries()) await person.post('/login', { id: String(i + 1) });
    const guest = new CookieBrowser(server.base);
    await guest.post('/guest');
    await fetch(`${server.base}/locals`, { headers: { 'user-agent': 'Googlebot/2.1 (+http://www.google.com/bot.html)' } });
    const stream = await fetch(`${server.base}/online-now/events`, { headers: { 'user-agent': BROWSER_AGENT, accept: 'text/event-stream', cookie: guest.cookieHeader } });
    const page = await people[0].json<LocalsJson>('/locals');
    expect([page.onlineCount, page.onlineHidden, page.onlineGuests, page.onlineBots]).to.deep.equal([2, 1, 1, 1]);

    const text = await (await fetch(`${server.base}/metrics`)).text();
    expect(text).to.include('# TYPE online_now_users gauge').and.include('online_now_users{kind="member"} 2').and.include('online_now_event_streams 1');
    // Without `status` on, no status series at all (not zeros that would read as nobody active).
    expect(text).not.to.include('online_now_users_by_status');
    // Labels are the four kinds, never a user: the series stay the same whoever is online.
    expect([...text.matchAll(/^online_now_users\{(.*)\}/gm)].map((m) => m[1])).to.deep.equal(['kind="member"', 'kind="hidden"', 'kind="guest"', 'kind="bot"']);

    await eventually(async () => expect(await query(prometheus!.base, 'online_now_users')).to.deep.equal({ member: 2, hidden: 1, guest: 1, bot: 1 }), 30_000);
    expect(await query(prometheus!.base, 'online_now_record')).to.deep.equal({ '': page.onlineRecord.count });
    expect(await query(prometheus!.base, 'online_now_event_streams')).to.deep.equal({ '': 1 });

    await people[1].post('/logout');
    const after = await people[0].json<LocalsJson>('/locals');
    await eventually(async () => expect((await query(prometheus!.base, 'online_now_users')).member).to.equal(after.onlineCount), 30_000);
    await stream.body?.cancel();
  });

  it('counts the rooms’ editing locks held and the asks waiting, as locks() lists them', async () => {
    const page = (id: number) => ({ headers: {}, session: { user: { id, name: `User ${id}` } }, res: { locals: {} } }) as never;
    await eventually(async () => expect(await query(prometheus!.base, 'online_now_room_locks')).to.deep.equal({ '': 0 }), 30_000);
    const ada = await online.here(page(1), 'order:1', { mode: 'editing' });
    await online.here(page(2), 'order:2', { mode: 'editing' });
    const bob = await online.here(page(4), 'order:1');
    // Bob asks Ada for order 1, as his page's heartbeat does.
    await online.store.roomTouch!(
      { room: 'order:1', tab: bob.tab, key: '4', id: 4, profile: { name: 'User 4' }, mode: 'editing', takeover: false, ask: 'new' },
      { seesHidden: true },
    );
    expect((await online.locks()).map((l) => [l.room, l.request !== null])).to.have.deep.members([
      ['order:1', true],
      ['order:2', false],
    ]);
    await eventually(async () => {
      expect(await query(prometheus!.base, 'online_now_room_locks')).to.deep.equal({ '': 2 });
      expect(await query(prometheus!.base, 'online_now_room_lock_asks')).to.deep.equal({ '': 1 });
    }, 30_000);
    // Ada declines: a lock still held, no ask waiting.
    await online.store.roomTouch!(
      { room: 'order:1', tab: ada.tab, key: '1', id: 1, profile: { name: 'User 1' }, mode: 'editing', takeover: false, known: ada.self, decline: true },
      { seesHidden: true },
    );
    await eventually(async () => expect(await query(prometheus!.base, 'online_now_room_lock_asks')).to.deep.equal({ '': 0 }), 30_000);
    expect(await query(prometheus!.base, 'online_now_room_locks')).to.deep.equal({ '': 2 });
  });
});

describe('metrics: a RedisStore’s syncs', () => {
  it('counts answered syncs in a histogram, failed ones apart, and how long since Redis last answered', async function () {
    requireBinary(this, REDIS_SERVER, 'apt-get install -y redis-server');
    const redis = await RedisServer.start();
    const connection = await connect('node-redis', redis);
    const online = createOnlineTracker({ store: new RedisStore({ client: connection.client, prefix: uniquePrefix(), syncInterval: 100 }), onError: () => undefined });
    try {
      await online.touch(1);
      const value = async (name: string): Promise<number> => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(await online.metrics())?.[1]);
      await eventually(async () => expect(await value('online_now_sync_duration_seconds_count')).to.be.greaterThan(2));
      expect(await value('online_now_sync_failures_total')).to.equal(0);
      expect(await value('online_now_sync_age_seconds')).to.be.lessThan(5);
      await redis.stop();
      await eventually(async () => expect(await value('online_now_sync_failures_total')).to.be.greaterThan(0));
      const answered = await value('online_now_sync_duration_seconds_count');
      await eventually(async () => expect(await value('online_now_sync_age_seconds')).to.be.greaterThan(0.5));
      expect(await value('online_now_sync_duration_seconds_count'), 'failed syncs are not counted as answered').to.equal(answered);
    } finally {
      await online.close();
      await connection.close();
      await redis.stop();
    }
  });
});

describe('metrics: OpenTelemetry, through the real SDK', () => {
  /** A reader the test collects from when it wants (a periodic exporter would be the same collection on a timer). */
  class PullReader extends MetricReader {
    protected onForceFlush(): Promise<void> {
      return Promise.resolve();
    }
    protected onShutdown(): Promise<void> {
      return Promise.resolve();
    }
  }

  /** Every data point collected now, as `name{attributes}` → value. */
  async function collect(reader: MetricReader): Promise<Record<string, number>> {
    const { resourceMetrics, errors } = await reader.collect();
    expect(errors).to.deep.equal([]);
    const points: Record<string, number> = {};
    for (const scope of resourceMetrics.scopeMetrics)
      for (const metric of scope.metrics)
        for (const point of metric.dataPoints as { attributes: Record<string, unknown>; value: unknown }[]) {
          const labels = Object.entries(point.attributes).map(([k, v]) => `${k}=${String(v)}`);
          points[`${metric.descriptor.name}${labels.length > 0 ? `{${labels.join(',')}}` : ''}`] = point.value as number;
        }
    return points;
  }

  it('observe(meter) gives the same figures as metrics(), read at each collection, until stopped', async () => {
    const reader = new PullReader();
    const provider = new MeterProvider({ readers: [reader] });
    const online = createOnlineTracker({ trackGuests: true, hidden: (user: { id: number }) => user.id === 3 });
    try {
      expect(() => online.observe({} as never)).to.throw(/observe\(meter\) takes an OpenTelemetry Meter/);
      const stop = online.observe(provider.getMeter('forum'));
      for (const id of [1, 2, 3]) await online.touch({ id });
      await online.here({ headers: {}, session: { user: { id: 1 } }, res: { locals: {} } } as never, 'order:1', { mode: 'editing' });
      const counts = await online.counts();
      expect(await collect(reader)).to.deep.equal({
        'online_now.users{kind=member}': counts.users,
        'online_now.users{kind=hidden}': counts.hidden,
        'online_now.users{kind=guest}': counts.guests,
        'online_now.users{kind=bot}': counts.bots,
        'online_now.record': online.record().count,
        'online_now.record.timestamp': online.record().at.getTime() / 1000,
        'online_now.event_streams': 0,
        'online_now.room_locks': 1,
        'online_now.room_lock_asks': 0,
      });
      expect(counts).to.deep.include({ users: 2, hidden: 1 });
      // Read at each collection: a logout shows in the next one.
      await online.forget(2);
      expect((await collect(reader))['online_now.users{kind=member}']).to.equal(1);
      // Stopped: no more reads (the SDK keeps a cumulative stream's last points, so the logout below does not show).
      stop();
      await online.forget(1);
      expect((await collect(reader))['online_now.users{kind=member}']).to.equal(1);
    } finally {
      await online.close();
      await provider.shutdown();
    }
  });
});

import { expect } from 'chai';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import session from 'express-session';
import { createOnlineTracker, type OnlineTracker } from 'express-online-now';
import { freePort } from './helpers/redis';
import { requireBinary } from './helpers/requirements';
import { listen, type Listening } from './helpers/server';

const require = createRequire(__filename);
const express = require('express') as typeof import('express');
const NGINX = '/usr/sbin/nginx';

interface Raw {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

/** A request as a browser on plain HTTP sends it: to nginx on 127.0.0.1, for the name the browser asked for (no Sec-Fetch-Site). */
function send(port: number, method: string, target: string, headers: Record<string, string>, body?: string): Promise<Raw> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, method, path: target, headers: { host: `localhost:${port}`, ...headers } }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        text += chunk;
        // A stream's first bytes are enough: the status is what counts.
        if (res.headers['content-type']?.startsWith('text/event-stream')) res.destroy();
      });
      const done = (): void => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: text });
      res.on('end', done);
      res.on('close', done);
    });
    req.on('error', reject);
    req.end(body);
  });
}

/** The app behind the proxy: sign-in, one order page (a room), the heartbeat and the stream. */
function app(online: OnlineTracker, trustProxy: boolean, origins?: string[]): ReturnType<typeof express> {
  const a = express();
  if (trustProxy) a.set('trust proxy', 'loopback');
  a.use(session({ secret: 'proxies', resave: false, saveUninitialized: false }));
  a.use(online.client({ origins }));
  a.get('/online-now/events', online.events({ origins }));
  a.use(online.middleware());
  a.post('/login', (req, res) => {
    (req.session as unknown as { user: unknown }).user = { id: 1, name: 'Ada' };
    res.sendStatus(204);
  });
  a.get('/order', async (req, res) => {
    const here = await online.here(req, 'order:1', { mode: 'editing' });
    res.json({ tab: here.tab });
  });
  return a;
}

/** The proxy setups an admin meets: what nginx sends as Host, and whether it says where the request came from. */
const SETUPS = [
  { name: 'default Host (the upstream address)', host: '', forwarded: false, trust: false, ok: false },
  { name: 'Host $host (no port)', host: 'proxy_set_header Host $host;', forwarded: false, trust: false, ok: false },
  { name: 'Host $http_host', host: 'proxy_set_header Host $http_host;', forwarded: false, trust: false, ok: true },
  { name: 'default Host, trust proxy, no X-Forwarded-Host', host: '', forwarded: false, trust: true, ok: false },
  { name: 'default Host, trust proxy, X-Forwarded-Host $http_host', host: '', forwarded: true, trust: true, ok: true },
  { name: 'Host $host, trust proxy, X-Forwarded-Host $http_host', host: 'proxy_set_header Host $host;', forwarded: true, trust: true, ok: true },
  { name: 'Host $http_host, trust proxy, X-Forwarded-Host $http_host', host: 'proxy_set_header Host $http_host;', forwarded: true, trust: true, ok: true },
  { name: 'X-Forwarded-Host $http_host without trust proxy', host: '', forwarded: true, trust: false, ok: false },
] as const;

describe('the same-origin check through a real nginx (plain HTTP, a non-default port)', function () {
  this.timeout(60_000);
  let dir: string;
  let nginx: ChildProcess | undefined;
  const trackers: OnlineTracker[] = [];
  const servers: Listening[] = [];
  const reported: Record<string, string[]> = { trusting: [], plain: [], listed: [] };
  const ports: number[] = [];
  let listedPort = 0;

  before(async function () {
    requireBinary(this, NGINX, 'apt-get install -y nginx');
    dir = mkdtempSync(path.join(os.tmpdir(), 'online-now-nginx-'));
    const upstream: Record<string, number> = {};
    for (const kind of ['trusting', 'plain', 'listed'] as const) {
      const online = createOnlineTracker({ onError: (error) => reported[kind].push(`${(error as { code?: string }).code}: ${error.message}`) });
      trackers.push(online);
      listedPort = kind === 'listed' ? await freePort() : listedPort;
      const server = await listen(app(online, kind === 'trusting', kind === 'listed' ? [`http://localhost:${listedPort}`] : undefined) as never);
      servers.push(server);
      upstream[kind] = Number(new URL(server.base).port);
    }
    const blocks: string[] = [];
    for (const setup of SETUPS) {
      const port = await freePort();
      ports.push(port);
      blocks.push(
        `server { listen 127.0.0.1:${port}; location / { proxy_pass http://127.0.0.1:${upstream[setup.trust ? 'trusting' : 'plain']}; ${setup.host} ${setup.forwarded ? 'proxy_set_header X-Forwarded-Host $http_host;' : ''} proxy_buffering off; } }`,
      );
    }
    // Listing the origin fixes the default Host without touching nginx.
    blocks.push(`server { listen 127.0.0.1:${listedPort}; location / { proxy_pass http://127.0.0.1:${upstream.listed}; proxy_buffering off; } }`);
    const conf = path.join(dir, 'nginx.conf');
    writeFileSync(
      conf,
      `daemon off; master_process off; worker_processes 1; pid ${dir}/nginx.pid; error_log ${dir}/error.log;
events { worker_connections 256; }
http { access_log off; client_body_temp_path ${dir}/body; proxy_temp_path ${dir}/proxy; fastcgi_temp_path ${dir}/fastcgi; uwsgi_temp_path ${dir}/uwsgi; scgi_temp_path ${dir}/scgi;
${blocks.join('\n')}
}`,
    );
    nginx = spawn(NGINX, ['-p', dir, '-c', conf], { stdio: ['ignore', 'ignore', 'pipe'] });
    let errors = '';
    nginx.stderr!.on('data', (chunk: Buffer) => (errors += chunk.toString()));
    // Up when every port answers.
    const deadline = Date.now() + 10_000;
    for (const port of [...ports, listedPort]) {
      for (;;) {
        try {
          await send(port, 'GET', '/online-now/client.js', {});
          break;
        } catch (error) {
          if (Date.now() > deadline || nginx.exitCode !== null) throw new Error(`nginx did not start: ${errors} ${String(error)}`);
          await new Promise((resolve) => setTimeout(resolve, 50));
        }
      }
    }
  });

  after(async () => {
    if (nginx !== undefined && nginx.exitCode === null) {
      const exited = new Promise((resolve) => nginx!.once('exit', resolve));
      nginx.kill('SIGKILL');
      await exited;
    }
    for (const t of trackers) await t.close();
    for (const s of servers) await s.close();
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  });

  /** Signs in through the proxy, opens the order page, beats as a browser page of that origin does, and opens the stream. */
  async function visit(port: number): Promise<{ beat: number; events: number }> {
    const login = await send(port, 'POST', '/login', { origin: `http://localhost:${port}` });
    const cookie = String(login.headers['set-cookie']).split(';')[0];
    const page = await send(port, 'GET', '/order', { cookie });
    const { tab } = JSON.parse(page.body) as { tab: string };
    const headers = { cookie, origin: `http://localhost:${port}`, 'content-type': 'text/plain;charset=UTF-8' };
    const beat = await send(port, 'POST', '/online-now/beat', headers, JSON.stringify({ tab, room: 'order:1', mode: 'editing' }));
    // EventSource sends Origin on a same-origin request only in some browsers; the check must hold when it does.
    const events = await send(port, 'GET', '/online-now/events?rooms=order%3A1', { cookie, origin: `http://localhost:${port}`, accept: 'text/event-stream' });
    return { beat: beat.status, events: events.status };
  }

  SETUPS.forEach((setup, i) => {
    it(`${setup.name}: ${setup.ok ? 'heartbeats and the stream are served' : 'refused as cross-site, and reported once with the fix'}`, async () => {
      const expected = setup.ok ? 200 : 403;
      for (let n = 0; n < 2; n++) expect(await visit(ports[i])).to.deep.equal({ beat: expected, events: expected });
      if (setup.ok) return;
      const reports = reported[setup.trust ? 'trusting' : 'plain'];
      expect(reports, 'reported once per tracker, however many refusals').to.have.length(1);
      expect(reports[0]).to.match(/^ERR_ONLINE_NOW_PROXY_HOST: .*refused live requests from http:\/\/localhost:\d+ as cross-site/);
      expect(reports[0]).to.contain('proxy_set_header Host $http_host;');
      expect(reports[0]).to.contain("app.set('trust proxy'");
      expect(reports[0]).to.contain("client({ origins: ['http://localhost:");
    });
  });

  it('client({ origins }) and events({ origins }) let a listed origin through a proxy that rewrites Host', async () => {
    expect(await visit(listedPort)).to.deep.equal({ beat: 200, events: 200 });
    expect(reported.listed).to.deep.equal([]);
    // Another site still is not.
    expect(await send(listedPort, 'POST', '/online-now/beat', { origin: 'http://evil.example' }, '{}')).to.have.property('status', 403);
    expect(() => createOnlineTracker().client({ origins: ['https://example.com/'] })).to.throw(TypeError, /ERR_ONLINE_NOW_ORIGINS|origins such as/);
    expect(() => createOnlineTracker().events({ origins: ['example.com'] })).to.throw(TypeError, /origins such as/);
  });
});

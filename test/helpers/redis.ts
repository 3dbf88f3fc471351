// A real redis-server on a free loopback port, without persistence, started and
// stopped by the tests; and the two client libraries, connected to it.
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { createClient } from 'redis';
import { Redis as IORedis } from 'ioredis';
import type { RedisClientLike } from 'express-online-now';

export const REDIS_SERVER = '/usr/bin/redis-server';

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.listen(0, '127.0.0.1', () => {
      const { port } = probe.address() as { port: number };
      probe.close(() => resolve(port));
    });
    probe.on('error', reject);
  });
}

const running = new Set<ChildProcess>();
process.on('exit', () => {
  for (const child of running) child.kill('SIGKILL');
});

/**
 * Starts redis-server with `args` (in the foreground; without persistence unless
 * `args` turn it on) and resolves once it accepts connections; killed when the test process exits.
 */
export function spawnRedis(args: readonly string[], label: string): Promise<ChildProcess> {
  const child = spawn(REDIS_SERVER, ['--save', '', '--appendonly', 'no', '--daemonize', 'no', '--dir', tmpdir(), ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  running.add(child);
  child.on('exit', () => running.delete(child));
  return new Promise((resolve, reject) => {
    let output = '';
    const timer = setTimeout(() => reject(new Error(`${label} did not start: ${output}`)), 10_000);
    child.stdout!.on('data', (chunk: Buffer) => {
      output += chunk.toString();
      if (output.includes('Ready to accept connections')) {
        clearTimeout(timer);
        resolve(child);
      }
    });
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`${label} exited (${code}): ${output}`));
    });
  });
}

export class RedisServer {
  private child: ChildProcess | undefined;

  private constructor(
    readonly port: number,
    private readonly extraArgs: readonly string[],
  ) {}

  /** `extraArgs` go to every launch, restarts included (e.g. `--dir` and `--dbfilename` to reload a snapshot). */
  static async start(port?: number, extraArgs: readonly string[] = []): Promise<RedisServer> {
    const server = new RedisServer(port ?? (await freePort()), extraArgs);
    await server.launch();
    return server;
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  private async launch(): Promise<void> {
    this.child = await spawnRedis(['--port', String(this.port), '--bind', '127.0.0.1', ...this.extraArgs], 'redis-server');
  }

  /** SIGSTOP: the server hangs with its connections open, as an overloaded or frozen one does. */
  pause(): void {
    this.child?.kill('SIGSTOP');
  }

  resume(): void {
    this.child?.kill('SIGCONT');
  }

  /** SIGKILL and wait for the exit: connections drop, and the data (no persistence) is gone. */
  async kill(): Promise<void> {
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGCONT');
    child.kill('SIGKILL');
    await exited;
  }

  /** A new, empty server on the same port. */
  async restart(): Promise<void> {
    await this.kill();
    await this.launch();
  }

  async stop(): Promise<void> {
    await this.kill();
  }
}

let shared: Promise<RedisServer> | undefined;

/** One server for the suites that only need a working Redis; each test uses its own prefix. */
export function sharedRedis(): Promise<RedisServer> {
  shared ??= RedisServer.start();
  return shared;
}

export async function stopSharedRedis(): Promise<void> {
  if (shared !== undefined) await (await shared).stop();
  shared = undefined;
}

export type ClientKind = 'node-redis' | 'ioredis';
export const clientKinds: readonly ClientKind[] = ['node-redis', 'ioredis'];

export interface TestClient {
  readonly client: RedisClientLike;
  /** Plain commands for the test's own checks. */
  command(...args: string[]): Promise<unknown>;
  close(): Promise<void>;
}

export async function connect(kind: ClientKind, server: RedisServer): Promise<TestClient> {
  if (kind === 'node-redis') {
    const client = createClient({
      url: server.url,
      socket: { reconnectStrategy: (retries: number) => Math.min(50 * (retries + 1), 300), connectTimeout: 2000 },
    });
    client.on('error', () => undefined); // reconnects are expected in the outage tests
    await client.connect();
    return {
      client,
      command: (...args) => client.sendCommand(args),
      close: async () => {
        // quit() on a client whose server is gone (or whose link a test cut) would wait for ever: a second, then it is dropped.
        if (client.isReady) await Promise.race([client.quit().catch(() => undefined), new Promise((resolve) => setTimeout(resolve, 1000))]);
        if (client.isOpen) client.destroy();
      },
    };
  }
  const client = new IORedis(server.port, '127.0.0.1', {
    retryStrategy: (times: number) => Math.min(50 * times, 300),
    maxRetriesPerRequest: 1,
  });
  client.on('error', () => undefined);
  await new Promise<void>((resolve, reject) => {
    client.once('ready', resolve);
    client.once('end', () => reject(new Error('ioredis could not connect')));
  });
  return {
    client,
    command: (...args: string[]) => client.call(args[0], ...args.slice(1)),
    close: async () => {
      if (client.status === 'ready') await client.quit().catch(() => undefined);
      client.disconnect();
    },
  };
}

let prefixes = 0;
/** A key prefix no other test uses. */
export function uniquePrefix(): string {
  prefixes += 1;
  return `test-${process.pid}-${prefixes}`;
}

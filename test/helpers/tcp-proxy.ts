// A TCP proxy on loopback between one app process (or one client) and
// redis-server, for the faults a network gives: replies held back for a while
// (a slow link, a GC pause on the far side), a partition (nothing gets through
// until it heals), connections reset, and a new target (a failover to a replica).
import { createServer, connect, type Server, type Socket } from 'node:net';

export class TcpProxy {
  private readonly sockets = new Set<Socket>();
  private delayMs = 0;
  private held = false;
  private readonly waiting: (() => void)[] = [];

  private constructor(
    private readonly server: Server,
    readonly port: number,
    private target: number,
  ) {}

  /** Listens on a free loopback port and forwards each connection to `targetPort`. */
  static async start(targetPort: number): Promise<TcpProxy> {
    const server = createServer();
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', resolve);
    });
    const proxy = new TcpProxy(server, (server.address() as { port: number }).port, targetPort);
    // Connections arrive from I/O callbacks: none before this line runs.
    server.on('connection', (client) => proxy.accept(client));
    return proxy;
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  /** Every reply from now on reaches the client `ms` late (0: at once). */
  delayReplies(ms: number): void {
    this.delayMs = ms;
  }

  /** A partition: nothing passes either way (connections stay open) until `heal()`. */
  partition(): void {
    this.held = true;
  }

  heal(): void {
    this.held = false;
    for (const release of this.waiting.splice(0)) release();
  }

  /** Every open connection is reset, as a dropped link or a failover does. */
  reset(): void {
    for (const socket of this.sockets) socket.destroy();
    this.sockets.clear();
  }

  /** New connections go to `port` (a promoted replica); open ones are reset. */
  retarget(port: number): void {
    this.target = port;
    this.reset();
  }

  async close(): Promise<void> {
    this.heal();
    this.reset();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private accept(client: Socket): void {
    const upstream = connect(this.target, '127.0.0.1');
    this.sockets.add(client);
    this.sockets.add(upstream);
    const close = (): void => {
      client.destroy();
      upstream.destroy();
      this.sockets.delete(client);
      this.sockets.delete(upstream);
    };
    client.on('error', close).on('close', close);
    upstream.on('error', close).on('close', close);
    // Data is passed on in order, each chunk after the one before it, held while partitioned.
    this.pipe(client, upstream, false);
    this.pipe(upstream, client, true);
  }

  private pipe(from: Socket, to: Socket, replies: boolean): void {
    let chain = Promise.resolve();
    from.on('data', (chunk: Buffer) => {
      const arrived = Date.now();
      chain = chain.then(async () => {
        // The delay is read as it stands now: lowering it lets what it holds go.
        for (let wait = arrived + (replies ? this.delayMs : 0) - Date.now(); wait > 0; wait = arrived + (replies ? this.delayMs : 0) - Date.now()) {
          await new Promise((resolve) => setTimeout(resolve, Math.min(wait, 50)));
        }
        while (this.held) await new Promise<void>((resolve) => this.waiting.push(resolve));
        if (!to.destroyed) to.write(chunk);
      });
    });
  }
}

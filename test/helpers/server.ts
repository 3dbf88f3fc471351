import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import { createRequire } from 'node:module';

const require = createRequire(__filename);

/** Every HTTP suite runs once per supported Express major. */
export const expressVersions = [
  { name: 'Express 5', express: require('express') as typeof import('express') },
  { name: 'Express 4', express: require('express4') as typeof import('express') },
] as const;

export interface Listening {
  readonly base: string;
  close(): Promise<void>;
}

/** Listens on a loopback port: a free one, or `port` (a server started again where the last one was). */
export function listen(app: (req: never, res: never) => void, port = 0): Promise<Listening> {
  return new Promise((resolve, reject) => {
    const server: Server = (app as unknown as { listen: (port: number, host: string, cb: () => void) => Server }).listen(port, '127.0.0.1', () => {
      const { port } = server.address() as AddressInfo;
      resolve({
        base: `http://127.0.0.1:${port}`,
        close: () =>
          new Promise<void>((done) => {
            server.closeAllConnections();
            server.close(() => done());
          }),
      });
    });
    server.on('error', reject);
  });
}

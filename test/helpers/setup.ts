// Root hooks: any unhandled rejection or uncaught exception during a test fails it,
// so a promise that presence code forgot to handle cannot pass unnoticed.
const escaped: unknown[] = [];
process.on('unhandledRejection', (reason) => escaped.push(reason));

import { stopSharedRedis } from './redis';

export const mochaHooks = {
  async afterAll(): Promise<void> {
    await stopSharedRedis();
  },
  afterEach(): void {
    if (escaped.length > 0) {
      const first = escaped.splice(0);
      throw new Error(`unhandled rejection during this test: ${String(first[0])}`);
    }
  },
};

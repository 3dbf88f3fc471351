import { expect } from 'chai';
import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

describe('types in a strict Express app', () => {
  // test/fixtures/types/express-types.ts: Express's Request in skip/getUser/locale, the app's user type
  // flowing into getId and profile, OnlineNowProfile typing onlineNow, and @ts-expect-error lines that must stay errors.
  it('compile as the fixture expects, with skipLibCheck off', async function () {
    this.timeout(60_000);
    const tsc = require.resolve('typescript/bin/tsc');
    const result = await run(process.execPath, [tsc, '-p', path.join(__dirname, 'fixtures', 'types', 'tsconfig.json')]).then(
      () => 'ok',
      (err: { stdout?: string }) => err.stdout ?? String(err),
    );
    expect(result).to.equal('ok');
  });
});

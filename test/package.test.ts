import { expect } from 'chai';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import path from 'node:path';

const run = promisify(execFile);
const fixtures = path.join(__dirname, 'fixtures', 'consumer');

// These consumers import the built package by its name (dist/, through package.json "exports").
/** What both the CommonJS and the ES module consumer print when the package works. */
const works = {
  count: 2,
  ids: ['2', 1],
  exports: ['function', 'function', 'function', 'function', 'function'],
  configError: 'ERR_ONLINE_NOW_MAX',
};

async function consumer(file: string): Promise<unknown> {
  const { stdout } = await run(process.execPath, [path.join(fixtures, file)]);
  return JSON.parse(stdout);
}

describe('the built package, as consumers load it', () => {
  it('works from CommonJS require()', async () => {
    expect(await consumer('cjs.cjs')).to.deep.equal(works);
  });

  it('works from an ES module import, sharing one instance with require()', async () => {
    expect(await consumer('esm.mjs')).to.deep.equal({ ...works, sameInstance: true });
  });

  it('type-checks a TypeScript consumer (ESM and CJS), and rejects wrong options at compile time', async function () {
    this.timeout(60_000);
    const tsc = require.resolve('typescript/bin/tsc');
    const result = await run(process.execPath, [tsc, '-p', path.join(fixtures, 'tsconfig.json')]).then(
      () => 'ok',
      (err: { stdout?: string }) => err.stdout ?? String(err),
    );
    expect(result).to.equal('ok');
  });
});

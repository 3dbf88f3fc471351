import { expect } from 'chai';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import path from 'node:path';

const run = promisify(execFile);
const fixtures = path.join(__dirname, 'fixtures', 'consumer');

// These consumers import the built package by its name (dist/, through package.json "exports").
describe('the built package, as consumers load it', () => {
  it('works from CommonJS require()', async () => {
    const { stdout } = await run(process.execPath, [path.join(fixtures, 'cjs.cjs')]);
    expect(JSON.parse(stdout)).to.deep.equal({
      count: 2,
      ids: ['2', 1],
      exports: ['function', 'function', 'function', 'function', 'function'],
      configError: 'ERR_ONLINE_NOW_MAX',
    });
  });

  it('works from an ES module import, sharing one instance with require()', async () => {
    const { stdout } = await run(process.execPath, [path.join(fixtures, 'esm.mjs')]);
    expect(JSON.parse(stdout)).to.deep.equal({
      count: 2,
      ids: ['2', 1],
      exports: ['function', 'function', 'function', 'function', 'function'],
      configError: 'ERR_ONLINE_NOW_MAX',
      sameInstance: true,
    });
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

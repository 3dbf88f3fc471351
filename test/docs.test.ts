import { expect } from 'chai';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import ts from 'typescript';
import * as runtime from 'express-online-now';
import { ERROR_CODES } from '../lib/errors';

// The README is part of the API: its table of error codes and its list of exports
// are checked against the code and against the published declaration files.
const root = path.join(__dirname, '..');
const readme = readFileSync(path.join(root, 'README.md'), 'utf8');

function section(heading: string): string {
  const start = readme.indexOf(`\n## ${heading}\n`);
  if (start === -1) throw new Error(`README has no "## ${heading}" section`);
  const end = readme.indexOf('\n## ', start + 1);
  return readme.slice(start, end === -1 ? undefined : end);
}

/** Names exported by a published declaration file, as a TypeScript consumer sees them. */
function declaredExports(file: string): string[] {
  const program = ts.createProgram([file], { module: ts.ModuleKind.Node16, moduleResolution: ts.ModuleResolutionKind.Node16, strict: true });
  const checker = program.getTypeChecker();
  const source = program.getSourceFile(file)!;
  return checker.getExportsOfModule(checker.getSymbolAtLocation(source)!).map((s) => s.getName()).sort();
}

describe('the README matches the code', () => {
  it('lists every error code, with the meaning the code gives it, and no other', () => {
    const rows = [...section('Error codes').matchAll(/^\| `(ERR_[A-Z_]+)` \| (.+) \|$/gm)].map((m) => [m[1], m[2]]);
    expect(Object.fromEntries(rows)).to.deep.equal(ERROR_CODES);
  });

  it('lists exactly what the published types export, from both module systems', () => {
    const listed = [...section('Exports').matchAll(/`([A-Za-z]+)`/g)].map((m) => m[1]).sort();
    expect(declaredExports(path.join(root, 'dist', 'index.d.ts'))).to.deep.equal(listed);
    expect(declaredExports(path.join(root, 'dist', 'index.d.mts'))).to.deep.equal(listed);
  });

  it('lists every runtime export, and the published types export nothing marked internal', () => {
    const listed = section('Exports').split('; and the types')[0];
    const values = [...listed.matchAll(/`([A-Za-z]+)`/g)].map((m) => m[1]).sort();
    expect(Object.keys(runtime).filter((name) => name !== 'default').sort()).to.deep.equal(values);
    const declarations = ['index.d.ts', 'tracker.d.ts', 'middleware.d.ts'].map((f) => readFileSync(path.join(root, 'dist', f), 'utf8'));
    for (const text of declarations) expect(text).not.to.match(/@internal/);
    // The tracker's internals are #private: the published class shows none of them.
    expect(declarations[1]).not.to.match(/getUser|profileOf|keyFor|identify|reporter/);
  });
});

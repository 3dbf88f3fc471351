import { expect } from 'chai';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import ts from 'typescript';
import * as runtime from 'express-online-now';
import { ERROR_CODES } from '../lib/core/errors';

// The documentation is part of the API: the table of error codes and the list of
// exports are checked against the code and against the published declaration
// files, and every relative link of the README and the guides leads to a file.
const root = path.join(__dirname, '..');

function section(page: string, heading: string): string {
  const text = readFileSync(path.join(root, page), 'utf8');
  const start = text.indexOf(`\n## ${heading}\n`);
  if (start === -1) throw new Error(`${page} has no "## ${heading}" section`);
  const end = text.indexOf('\n## ', start + 1);
  return text.slice(start, end === -1 ? undefined : end);
}

/** The README and every guide. */
const pages = [
  'README.md',
  ...readdirSync(path.join(root, 'docs'))
    .filter((f) => f.endsWith('.md'))
    .map((f) => `docs/${f}`),
];

/** Markdown links `[text](target)` outside code blocks and inline code, with their line. */
function linksOf(text: string): { target: string; line: number }[] {
  const links: { target: string; line: number }[] = [];
  let fenced = false;
  for (const [index, line] of text.split('\n').entries()) {
    if (/^(`{3,}|~{3,})/.test(line)) fenced = !fenced;
    if (fenced) continue;
    for (const match of line.replace(/`[^`]*`/g, (code) => (code.includes('](') ? '' : code)).matchAll(/\]\(([^)\s]+)\)/g)) {
      links.push({ target: match[1], line: index + 1 });
    }
  }
  return links;
}

/** Names exported by a published declaration file, as a TypeScript consumer sees them. */
function declaredExports(file: string): string[] {
  const program = ts.createProgram([file], { module: ts.ModuleKind.Node16, moduleResolution: ts.ModuleResolutionKind.Node16, strict: true });
  const checker = program.getTypeChecker();
  const source = program.getSourceFile(file)!;
  return checker
    .getExportsOfModule(checker.getSymbolAtLocation(source)!)
    .map((s) => s.getName())
    .sort();
}

describe('the documentation matches the code', () => {
  it('lists every error code, with the meaning the code gives it, and no other', () => {
    const rows = [...section('docs/error-codes.md', 'Codes').matchAll(/^\| `(ERR_[A-Z_]+)` \| (.+) \|$/gm)].map((m) => [m[1], m[2]]);
    expect(Object.fromEntries(rows)).to.deep.equal(ERROR_CODES);
  });

  it('lists exactly what the published types export, from both module systems', () => {
    const listed = [...section('docs/reference.md', 'Exports').matchAll(/`([A-Za-z]+)`/g)].map((m) => m[1]).sort();
    expect(declaredExports(path.join(root, 'dist', 'index.d.ts'))).to.deep.equal(listed);
    expect(declaredExports(path.join(root, 'dist', 'index.d.mts'))).to.deep.equal(listed);
  });

  it('lists every runtime export, and the published types export nothing marked internal', () => {
    const listed = section('docs/reference.md', 'Exports').split('; and the types')[0];
    const values = [...listed.matchAll(/`([A-Za-z]+)`/g)].map((m) => m[1]).sort();
    expect(
      Object.keys(runtime)
        .filter((name) => name !== 'default')
        .sort(),
    ).to.deep.equal(values);
    const declarations = ['index.d.ts', 'tracker.d.ts', path.join('express', 'middleware.d.ts')].map((f) => readFileSync(path.join(root, 'dist', f), 'utf8'));
    for (const text of declarations) expect(text).not.to.match(/@internal/);
    // The tracker's internals are #private: the published class shows none of them.
    expect(declarations[1]).not.to.match(/getUser|profileOf|keyFor|identify|reporter/);
  });
});

describe('links in the README and the guides', () => {
  it('finds the guides and their links (the check below has something to check)', () => {
    expect(pages.length).to.be.greaterThan(8);
    expect(linksOf(readFileSync(path.join(root, 'README.md'), 'utf8')).map((l) => l.target)).to.include('docs/privacy.md');
    expect(linksOf('see [a](b.md) and `[c](d.md)` and\n```\n[e](f.md)\n```\n[g](h.md#x)').map((l) => l.target)).to.deep.equal(['b.md', 'h.md#x']);
  });

  for (const page of pages) {
    it(`${page}: every relative link leads to a file or folder that exists, and every #anchor to a heading`, () => {
      const broken: string[] = [];
      for (const { target, line } of linksOf(readFileSync(path.join(root, page), 'utf8'))) {
        if (/^[a-z]+:/i.test(target)) continue; // https:, mailto:
        const [file, anchor] = target.split('#');
        const full = file === '' ? path.join(root, page) : path.resolve(path.dirname(path.join(root, page)), file);
        if (!existsSync(full)) broken.push(`${page}:${line}: ${target} (no such file)`);
        else if (anchor !== undefined && full.endsWith('.md') && !anchorsOf(readFileSync(full, 'utf8')).includes(anchor)) {
          broken.push(`${page}:${line}: ${target} (no heading makes #${anchor})`);
        }
      }
      expect(broken).to.deep.equal([]);
    });
  }
});

/** GitHub's anchors for a page's headings: lower case, punctuation dropped, spaces to hyphens. */
function anchorsOf(text: string): string[] {
  return [...text.matchAll(/^#{1,6} (.+)$/gm)].map((m) =>
    m[1]
      .toLowerCase()
      .replace(/[^\p{L}\p{N} _-]/gu, '')
      .replace(/ /g, '-'),
  );
}

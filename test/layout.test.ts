// The tree as docs/precision-and-design.md's "Project layout" describes it: every
// file of lib/ listed (and nothing listed that is gone), one folder per layer,
// each layer importing only from the layers below it, and no import cycle.
import { readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { expect } from 'chai';

const root = path.join(import.meta.dirname, '..');
const LAYERS = ['core', 'stores', 'templates', 'express', 'live'] as const;

function filesUnder(dir: string): string[] {
  return readdirSync(path.join(root, dir), { withFileTypes: true }).flatMap((d) =>
    d.isDirectory() ? filesUnder(`${dir}/${d.name}`) : /\.(ts|js)$/.test(d.name) ? [`${dir}/${d.name}`] : [],
  );
}

/** A file's layer, by its folder: the root of lib/ (tracker, index) is above them all. */
function rank(file: string): number {
  const folder = file.split('/')[1];
  const i = LAYERS.indexOf(folder as (typeof LAYERS)[number]);
  return i === -1 ? LAYERS.length : i;
}

/** lib/ files each file imports (relative imports, types included). */
function importGraph(files: readonly string[]): Map<string, string[]> {
  const graph = new Map<string, string[]>();
  for (const file of files) {
    const text = readFileSync(path.join(root, file), 'utf8');
    const targets = [...text.matchAll(/from '(\.{1,2}\/[^']+)'/g)].map((m) => {
      const base = path.posix.normalize(path.posix.join(path.posix.dirname(file), m[1]));
      return files.find((f) => f === `${base}.ts` || f === base || f === `${base}/index.ts`) ?? `${base} (missing)`;
    });
    graph.set(file, targets);
  }
  return graph;
}

function cycleIn(graph: Map<string, string[]>): string[] | undefined {
  const state = new Map<string, 'open' | 'done'>();
  const stack: string[] = [];
  const visit = (file: string): string[] | undefined => {
    if (state.get(file) === 'done') return undefined;
    if (state.get(file) === 'open') return [...stack.slice(stack.indexOf(file)), file];
    state.set(file, 'open');
    stack.push(file);
    for (const next of graph.get(file) ?? []) {
      const cycle = visit(next);
      if (cycle !== undefined) return cycle;
    }
    stack.pop();
    state.set(file, 'done');
    return undefined;
  };
  for (const file of graph.keys()) {
    const cycle = visit(file);
    if (cycle !== undefined) return cycle;
  }
  return undefined;
}

describe('the project layout', () => {
  const files = filesUnder('lib').sort();
  const graph = importGraph(files);

  it('lists every file of lib/ in the layout table, and no file that is not there', () => {
    const text = readFileSync(path.join(root, 'docs', 'precision-and-design.md'), 'utf8');
    const table = text.slice(text.indexOf('## Project layout'));
    const listed = [...new Set([...table.matchAll(/`(lib\/[^`]+\.(?:ts|js))`/g)].map((m) => m[1]))].sort();
    expect(files.length).to.be.greaterThan(25);
    expect(listed).to.deep.equal(files);
  });

  it('has a folder per layer, and no file imports from a layer above its own', () => {
    for (const layer of LAYERS)
      expect(
        files.some((f) => f.startsWith(`lib/${layer}/`)),
        layer,
      ).to.equal(true);
    const upward = [...graph].flatMap(([file, targets]) => targets.filter((t) => rank(t) > rank(file)).map((t) => `${file} → ${t}`));
    expect(upward).to.deep.equal([]);
  });

  it('resolves every import, with no cycle', () => {
    expect([...graph.values()].flat().filter((t) => t.endsWith('(missing)'))).to.deep.equal([]);
    expect(cycleIn(graph)).to.equal(undefined);
    // The check finds a cycle when there is one.
    expect(
      cycleIn(
        new Map([
          ['a', ['b']],
          ['b', ['c']],
          ['c', ['a']],
        ]),
      ),
    ).to.deep.equal(['a', 'b', 'c', 'a']);
  });
});

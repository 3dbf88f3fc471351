// README.md's code blocks come from runnable files in examples/: this checks that
// each marked block equals its source, and with --write rewrites the blocks from
// the sources.
//
//   node scripts/readme-examples.mjs            check; exit 1 with a diff when they differ
//   node scripts/readme-examples.mjs --write    rewrite README.md's marked blocks
//   node scripts/readme-examples.mjs --readme other.md   check another file (tests use this)
//
// A block is marked by an HTML comment on the line just before its opening fence:
//
//   <!-- example: examples/minimal.cjs -->          the whole file
//   <!-- example: examples/nunjucks.cjs#setup -->   the region named "setup"
//
// A region is the lines between a "#region NAME" line and the next "#endregion"
// line, each written as a comment of the file's language (the marker lines
// themselves are left out, here and in whole-file blocks):
//
//   JavaScript, TypeScript   // #region setup        // #endregion
//   Nunjucks                 {# #region intro #}     {# #endregion #}
//   Handlebars               {{!-- #region x --}}    {{!-- #endregion --}}
//   EJS                      <%# #region x %>        <%# #endregion %>
//
// Every other block must be a shell command (sh, bash, shell) or appear in
// FRAGMENTS below, by its exact text.
import { readFileSync, writeFileSync, existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

/** Languages whose blocks need no source: commands to type, not programs. */
const SHELL = new Set(['sh', 'bash', 'shell', 'console']);

/** Blocks allowed without a source, by exact text. Keep this empty or nearly so: prefer a region. */
const FRAGMENTS = new Set([]);

/** Which fence languages fit which source files. */
const LANGUAGES = {
  '.js': ['js', 'javascript'],
  '.cjs': ['js', 'javascript'],
  '.mjs': ['js', 'javascript'],
  '.ts': ['ts', 'typescript'],
  '.njk': ['nunjucks', 'njk', 'jinja', 'html'],
  '.hbs': ['handlebars', 'hbs', 'html'],
  '.ejs': ['ejs', 'html'],
};

const MARKER = /^<!--\s*example:\s*(\S+?)\s*-->\s*$/;
const REGION = /^\s*(?:\/\/|\/\*|\{#|\{\{!--|\{\{!|<%#|<!--)\s*#region\s+([\w.-]+)/;
const END_REGION = /^\s*(?:\/\/|\/\*|\{#|\{\{!--|\{\{!|<%#|<!--)\s*#endregion\b/;

class Problem extends Error {}

/** The lines of `file` in region `name` (all of them when name is undefined), marker lines left out. */
export function extract(text, name, file = '(source)') {
  const lines = text.replace(/\r\n/g, '\n').replace(/\n$/, '').split('\n');
  const open = [];
  const seen = new Set();
  const out = [];
  let found = name === undefined;
  for (const [index, line] of lines.entries()) {
    const start = REGION.exec(line);
    if (start) {
      if (seen.has(start[1])) throw new Problem(`${file}:${index + 1}: region "${start[1]}" is opened twice`);
      seen.add(start[1]);
      open.push(start[1]);
      if (start[1] === name) found = true;
      continue;
    }
    if (END_REGION.test(line)) {
      if (open.length === 0) throw new Problem(`${file}:${index + 1}: #endregion without #region`);
      open.pop();
      continue;
    }
    if (name === undefined || open.includes(name)) out.push(line);
  }
  if (open.length > 0) throw new Problem(`${file}: region "${open.at(-1)}" is never closed (#endregion)`);
  if (!found) throw new Problem(`${file} has no region "${name}" (regions: ${[...seen].join(', ') || 'none'})`);
  if (out.length === 0) throw new Problem(`${file}${name ? `#${name}` : ''} is empty`);
  return out.join('\n');
}

/** README's fenced blocks, with the marker line before each, if any. */
export function blocks(readme) {
  const lines = readme.split('\n');
  const found = [];
  for (let i = 0; i < lines.length; i++) {
    const fence = /^(`{3,}|~{3,})\s*([\w+-]*)\s*$/.exec(lines[i]);
    if (!fence) continue;
    const close = lines.findIndex((line, j) => j > i && line.startsWith(fence[1]) && line.trim() === fence[1]);
    if (close === -1) throw new Problem(`README line ${i + 1}: a code block that never closes`);
    const marker = i > 0 ? MARKER.exec(lines[i - 1]) : null;
    found.push({ line: i + 1, lang: fence[2], body: lines.slice(i + 1, close).join('\n'), start: i + 1, end: close, source: marker?.[1] });
    i = close;
  }
  return { lines, found };
}

/** The text a marked block must hold. */
function sourceText(source) {
  const [file, region] = source.split('#');
  const full = path.resolve(root, file);
  if (!full.startsWith(root + path.sep) || !existsSync(full)) throw new Problem(`no such file: ${file}`);
  return extract(readFileSync(full, 'utf8'), region, file);
}

/** A line diff (longest common subsequence): "-" README, "+" source. */
function diff(actual, expected) {
  const a = actual.split('\n');
  const b = expected.split('\n');
  const lcs = Array.from({ length: a.length + 1 }, () => new Array(b.length + 1).fill(0));
  for (let i = a.length - 1; i >= 0; i--) {
    for (let j = b.length - 1; j >= 0; j--) lcs[i][j] = a[i] === b[j] ? lcs[i + 1][j + 1] + 1 : Math.max(lcs[i + 1][j], lcs[i][j + 1]);
  }
  const out = [];
  let i = 0;
  let j = 0;
  while (i < a.length || j < b.length) {
    if (i < a.length && j < b.length && a[i] === b[j]) {
      out.push(`    ${a[i]}`);
      i++;
      j++;
    } else if (j < b.length && (i === a.length || lcs[i][j + 1] >= lcs[i + 1][j])) out.push(`  + ${b[j++]}`);
    else out.push(`  - ${a[i++]}`);
  }
  return out.join('\n');
}

function main(argv) {
  const write = argv.includes('--write');
  const readmeArg = argv.indexOf('--readme');
  const readmePath = readmeArg === -1 ? path.join(root, 'README.md') : path.resolve(argv[readmeArg + 1]);
  const readme = readFileSync(readmePath, 'utf8');
  const { lines, found } = blocks(readme);
  const problems = [];
  const replacements = [];
  let checked = 0;
  for (const block of found) {
    const where = `${path.relative(process.cwd(), readmePath)}:${block.line}`;
    if (block.source === undefined) {
      if (SHELL.has(block.lang) || FRAGMENTS.has(block.body)) continue;
      problems.push(
        `${where}: a \`\`\`${block.lang} block with no source. Put <!-- example: examples/FILE#REGION --> on the line before it, or make it a shell command.`,
      );
      continue;
    }
    try {
      const expected = sourceText(block.source);
      const ext = path.extname(block.source.split('#')[0]);
      const fits = LANGUAGES[ext];
      if (fits && !fits.includes(block.lang)) problems.push(`${where}: a \`\`\`${block.lang} block shows ${block.source}; use \`\`\`${fits[0]}`);
      checked++;
      if (block.body === expected) continue;
      if (write) replacements.push({ block, expected });
      else problems.push(`${where}: the block differs from ${block.source} ("-" README, "+" source; --write copies the source in):\n${diff(block.body, expected)}`);
    } catch (error) {
      if (!(error instanceof Problem)) throw error;
      problems.push(`${where}: ${error.message}`);
    }
  }
  if (write && replacements.length > 0) {
    // From the last block up, so earlier line numbers stay valid.
    for (const { block, expected } of replacements.reverse()) lines.splice(block.start, block.end - block.start, ...expected.split('\n'));
    writeFileSync(readmePath, lines.join('\n'));
    console.log(`rewrote ${replacements.length} block(s) of ${path.relative(process.cwd(), readmePath)} from their sources`);
  }
  if (problems.length > 0) {
    console.error(problems.join('\n\n'));
    console.error(`\n${problems.length} problem(s) in ${path.relative(process.cwd(), readmePath)}'s code blocks.`);
    return 1;
  }
  console.log(`${path.relative(process.cwd(), readmePath) || readmePath}: ${checked} code block(s) match their examples/ sources.`);
  return 0;
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) process.exitCode = main(process.argv.slice(2));

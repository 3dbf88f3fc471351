// The README and every guide in docs/ are read as a reader reads them: each
// page's code blocks, pasted in the order the page shows them, must make apps
// that run. This script assembles them; examples/ holds what it makes (one
// folder per page), and test/examples.test.ts assembles the pages afresh and
// runs every app over HTTP.
//
//   node scripts/readme-examples.mjs            check that examples/ is what the pages make; exit 1 with a diff if not
//   node scripts/readme-examples.mjs --write    rewrite examples/ from the pages
//   node scripts/readme-examples.mjs --page other.md   assemble one page only, to check it (tests use this)
//
// A program or template block names its file on its first line, as a comment
// the reader sees, and either starts that file or continues it:
//
//   // app.js: …                      starts app.js (a whole file; a page starts each file once)
//   // app.js, continued: …           appends to app.js, which a block above on the same page started
//   {# views/home.njk #}              Nunjucks;  {{!-- views/home.hbs --}} Handlebars;  <%# views/home.ejs %> EJS
//
// Appending is all a page may do to a file: so a block that continues an app
// adds routes after the ones above it (Express takes routes added after
// app.listen()). Shell blocks (sh, bash, shell, console), nginx configuration and text blocks are
// commands and output, not files.
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

/** Languages whose blocks are not files: commands to type and what they print. */
const NOT_FILES = new Set(['sh', 'bash', 'shell', 'console', 'text', 'nginx']);

/** Which fence languages fit which files. */
const LANGUAGES = {
  '.js': ['js', 'javascript'],
  '.cjs': ['js', 'javascript'],
  '.mjs': ['js', 'javascript'],
  '.ts': ['ts', 'typescript'],
  '.njk': ['nunjucks', 'njk', 'jinja'],
  '.hbs': ['handlebars', 'hbs'],
  '.ejs': ['ejs'],
};

/** The first line of a file block: a comment naming the file, and ", continued" when it appends. */
const NAMES_FILE = /^(?:\/\/|\{#|\{\{!--|<%#)\s+([\w][\w./-]*\.(?:js|cjs|mjs|ts|njk|hbs|ejs))(, continued)?(?=$|[\s:;,.])/;

export class Problem extends Error {}

/** A page's fenced blocks, in order, with their line numbers. */
export function blocks(text, page = '(page)') {
  const lines = text.split('\n');
  const found = [];
  for (let i = 0; i < lines.length; i++) {
    const fence = /^(`{3,}|~{3,})\s*([\w+-]*)\s*$/.exec(lines[i]);
    if (!fence) continue;
    const close = lines.findIndex((line, j) => j > i && line.trim() === fence[1]);
    if (close === -1) throw new Problem(`${page}:${i + 1}: a code block that never closes`);
    found.push({ line: i + 1, lang: fence[2], body: lines.slice(i + 1, close).join('\n') });
    i = close;
  }
  return found;
}

/** The folder of examples/ a page's files go to: `readme` for the README, else the guide's name. */
export function folderOf(page) {
  return page === 'README.md' ? 'readme' : path.basename(page, '.md');
}

/**
 * The files a page makes, pasted in its order: Map of file name → text.
 * Problems (a block naming no file, continuing one not started, starting one twice) are collected in `problems`.
 */
export function assemble(text, page, problems = []) {
  const files = new Map();
  for (const block of blocks(text, page)) {
    if (NOT_FILES.has(block.lang)) continue;
    const where = `${page}:${block.line}`;
    const named = NAMES_FILE.exec(block.body.split('\n')[0]);
    if (!named) {
      problems.push(
        `${where}: a \`\`\`${block.lang} block that names no file. Start it with a comment naming its file ("// app.js: …", or "// app.js, continued: …" to add to one above), or make it a shell or text block.`,
      );
      continue;
    }
    const [, file, continued] = named;
    const fits = LANGUAGES[path.extname(file)];
    if (!fits.includes(block.lang)) problems.push(`${where}: a \`\`\`${block.lang} block for ${file}; use \`\`\`${fits[0]}`);
    if (path.normalize(file).startsWith('..') || path.isAbsolute(file)) problems.push(`${where}: ${file} is outside the app's folder`);
    if (continued && !files.has(file)) {
      problems.push(`${where}: continues ${file}, which no block above it on this page starts`);
      continue;
    }
    if (!continued && files.has(file)) {
      problems.push(`${where}: starts ${file} again; a page starts each file once (continue it with "${file}, continued")`);
      continue;
    }
    files.set(file, continued ? `${files.get(file)}\n${block.body}\n` : `${block.body}\n`);
  }
  return files;
}

/** The README and every guide, as paths from the root. */
export function pages() {
  const docs = existsSync(path.join(root, 'docs'))
    ? readdirSync(path.join(root, 'docs'))
        .filter((f) => f.endsWith('.md'))
        .sort()
    : [];
  return ['README.md', ...docs.map((f) => `docs/${f}`)];
}

/** Every page's files, as examples/ holds them: Map of path under examples/ → text. */
export function assembleAll(problems = []) {
  const all = new Map();
  for (const page of pages()) {
    for (const [file, text] of assemble(readFileSync(path.join(root, page), 'utf8'), page, problems)) all.set(`${folderOf(page)}/${file}`, text);
  }
  return all;
}

function filesUnder(dir) {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((entry) => entry.isFile())
    .map((entry) =>
      path
        .relative(dir, path.join(entry.parentPath ?? entry.path, entry.name))
        .split(path.sep)
        .join('/'),
    )
    .sort();
}

/** A line diff (longest common subsequence): "-" examples/, "+" the pages. */
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
      i++;
      j++;
    } else if (j < b.length && (i === a.length || lcs[i][j + 1] >= lcs[i + 1][j])) out.push(`  + ${b[j++]}`);
    else out.push(`  - ${a[i++]}`);
  }
  return out.join('\n');
}

function main(argv) {
  const problems = [];
  const pageArg = argv.indexOf('--page');
  if (pageArg !== -1) {
    const page = argv[pageArg + 1];
    const files = assemble(readFileSync(page, 'utf8'), page, problems);
    if (problems.length > 0) {
      console.error(problems.join('\n'));
      return 1;
    }
    console.log(`${page}: ${files.size} file(s): ${[...files.keys()].join(', ')}`);
    return 0;
  }
  const made = assembleAll(problems);
  const dir = path.join(root, 'examples');
  const present = filesUnder(dir);
  if (argv.includes('--write') && problems.length === 0) {
    for (const file of present) if (!made.has(file)) rmSync(path.join(dir, file));
    for (const [file, text] of made) {
      mkdirSync(path.dirname(path.join(dir, file)), { recursive: true });
      writeFileSync(path.join(dir, file), text);
    }
    console.log(`wrote ${made.size} file(s) to examples/ from ${pages().length} page(s)`);
    return 0;
  }
  for (const file of present) if (!made.has(file)) problems.push(`examples/${file}: no page makes this file (npm run examples:write removes it)`);
  for (const [file, text] of made) {
    const full = path.join(dir, file);
    if (!existsSync(full)) problems.push(`examples/${file}: missing; the pages make it (npm run examples:write)`);
    else if (readFileSync(full, 'utf8') !== text)
      problems.push(`examples/${file} differs from what its page makes ("-" examples/, "+" the page):\n${diff(readFileSync(full, 'utf8'), text)}`);
  }
  if (problems.length > 0) {
    console.error(problems.join('\n\n'));
    console.error(`\n${problems.length} problem(s).`);
    return 1;
  }
  console.log(`${pages().length} page(s) make the ${made.size} file(s) of examples/.`);
  return 0;
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) process.exitCode = main(process.argv.slice(2));

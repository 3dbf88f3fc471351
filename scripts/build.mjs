// Builds dist/: CommonJS + declarations from tsc, then a thin ES module
// wrapper that re-exports the same CommonJS instance (one module state, no
// dual-package hazard) for `import { … } from 'express-online-now'`. Last, the
// browser client lib/live/browser/online-now.js is minified into dist/live/browser/.
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import { transform } from 'esbuild';

const root = new URL('../', import.meta.url);
rmSync(new URL('dist', root), { recursive: true, force: true });
execFileSync(process.execPath, [fileURLToPath(new URL('node_modules/typescript/bin/tsc', root)), '-p', 'tsconfig.json'], {
  cwd: root,
  stdio: 'inherit',
});

const names = Object.keys(createRequire(import.meta.url)('../dist/index.js'))
  .filter((n) => n !== '__esModule')
  .sort();
writeFileSync(new URL('dist/index.mjs', root), `import cjs from './index.js';\n\nexport const { ${names.join(', ')} } = cjs;\n`);
writeFileSync(new URL('dist/index.d.mts', root), "export * from './index.js';\n");
console.log(`built dist/ (exports: ${names.join(', ')})`);

// The client is sent to every page view: its gzip size is a budget (3.25 KB since status added its input signal), and going over fails the build.
const CLIENT_GZIP_BUDGET = 3328;
const client = await transform(readFileSync(new URL('lib/live/browser/online-now.js', root), 'utf8'), {
  loader: 'js',
  minify: true,
  target: 'es2019',
  legalComments: 'none',
});
mkdirSync(new URL('dist/live/browser', root), { recursive: true });
writeFileSync(new URL('dist/live/browser/online-now.min.js', root), client.code);
const gzipped = gzipSync(client.code, { level: 9 }).length;
console.log(`built dist/live/browser/online-now.min.js (${Buffer.byteLength(client.code)} bytes minified, ${gzipped} gzip)`);
if (gzipped >= CLIENT_GZIP_BUDGET) {
  console.error(`dist/live/browser/online-now.min.js: ${gzipped} bytes gzip, over the ${CLIENT_GZIP_BUDGET}-byte budget`);
  process.exit(1);
}

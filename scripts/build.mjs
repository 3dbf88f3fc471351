// Builds dist/: CommonJS + declarations from tsc, then a thin ES module
// wrapper that re-exports the same CommonJS instance (one module state, no
// dual-package hazard) for `import { … } from 'express-online-now'`.
import { execFileSync } from 'node:child_process';
import { rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

const root = new URL('../', import.meta.url);
rmSync(new URL('dist', root), { recursive: true, force: true });
execFileSync(process.execPath, [fileURLToPath(new URL('node_modules/typescript/bin/tsc', root)), '-p', 'tsconfig.json'], {
  cwd: root,
  stdio: 'inherit',
});

const names = Object.keys(createRequire(import.meta.url)('../dist/index.js')).filter((n) => n !== '__esModule').sort();
writeFileSync(
  new URL('dist/index.mjs', root),
  `import cjs from './index.js';\n\nexport const { ${names.join(', ')} } = cjs;\n`,
);
writeFileSync(new URL('dist/index.d.mts', root), "export * from './index.js';\n");
console.log(`built dist/ (exports: ${names.join(', ')})`);

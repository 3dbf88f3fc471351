// Lint: the recommended rules, type-aware for lib/ (floating promises are bugs here:
// presence must never leave a rejection unhandled).
import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import globals from 'globals';

export default tseslint.config(
  { ignores: ['dist/', 'node_modules/', 'bench/results.json', '.assembled-*/'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { ignoreRestSiblings: true, argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
    },
  },
  {
    files: ['lib/**/*.ts'],
    extends: [...tseslint.configs.recommendedTypeChecked],
    languageOptions: { parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname } },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-explicit-any': 'error',
    },
  },
  {
    files: ['**/*.cjs', 'views-examples/**/*.js', 'examples/**/*.js', 'examples/**/*.mjs', 'bench/**/*.mjs', 'scripts/**/*.mjs', 'test/fixtures/**/*.mjs'],
    languageOptions: { globals: globals.node },
    rules: { '@typescript-eslint/no-require-imports': 'off' },
  },
  {
    // The client script (and the demo's page script) run in the browser as classic scripts.
    files: ['lib/live/browser/**/*.js', 'views-examples/public/**/*.js'],
    languageOptions: { sourceType: 'script', globals: globals.browser },
  },
);

// @ts-check
import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import { builtinModules } from 'node:module';

const nodeBuiltins = [...builtinModules, ...builtinModules.map((m) => `node:${m}`)];

/**
 * The layers: an import that climbs out of a folder may reach only the folders listed for it.
 * `api`, `activities`, `worker`, `cli` → `services` → `db`, `protocol`; `agent` and `web` →
 * `protocol` only; `workflows` → nothing with I/O (its own block below). test/unit/lint-rules
 * proves each rule bites.
 */
const TOP = [
  'api',
  'services',
  'workflows',
  'activities',
  'worker',
  'db',
  'protocol',
  'agent',
  'cli',
  'config',
  'web',
  'scripts',
  'test',
];
function layer(files, allowed, why, extra = {}) {
  const banned = TOP.filter((t) => !allowed.includes(t) && !files.some((f) => f.startsWith(`${t}/`)));
  return {
    files,
    ...extra,
    rules: {
      'no-restricted-imports': [
        'error',
        {
          ...(extra.paths ? { paths: extra.paths } : {}),
          patterns: [{ regex: `^(\\.\\./)+(${banned.join('|')})(/|$)`, message: why }, ...(extra.patterns ?? [])],
        },
      ],
      ...(extra.rules ?? {}),
    },
  };
}

export default tseslint.config(
  {
    ignores: [
      'node_modules/**',
      'dist/**',
      '.data/**',
      '.tools/**',
      'web/dist/**',
      'coverage/**',
      '**/*.js',
      '**/*.mjs',
      '**/*.cjs',
    ],
  },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: { parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname } },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': ['error', { checksVoidReturn: { arguments: false } }],
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/require-await': 'off',
      '@typescript-eslint/no-unsafe-assignment': 'off',
      '@typescript-eslint/no-unsafe-member-access': 'off',
      '@typescript-eslint/no-unsafe-argument': 'off',
      '@typescript-eslint/no-unsafe-call': 'off',
      '@typescript-eslint/no-unsafe-return': 'off',
      '@typescript-eslint/restrict-template-expressions': 'off',
      '@typescript-eslint/only-throw-error': 'off',
    },
  },
  {
    // Workflow code is replayed: it must be deterministic and free of I/O.
    files: ['workflows/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          paths: [
            ...nodeBuiltins.map((name) => ({ name, message: 'Workflows are deterministic: no Node built-ins.' })),
            { name: 'pg', message: 'Workflows do no I/O: call an activity.' },
            { name: 'axios', message: 'Workflows do no I/O: call an activity.' },
            { name: 'undici', message: 'Workflows do no I/O: call an activity.' },
            { name: 'node-fetch', message: 'Workflows do no I/O: call an activity.' },
            { name: 'got', message: 'Workflows do no I/O: call an activity.' },
          ],
          patterns: [
            {
              group: [
                '**/activities',
                '**/activities/**',
                '**/db',
                '**/db/**',
                '**/api',
                '**/api/**',
                '**/services',
                '**/services/**',
                '**/worker',
                '**/worker/**',
              ],
              allowTypeImports: true,
              message: 'Workflows may only import types from activities/, and nothing from db/ or api/.',
            },
            { group: ['pg/**', 'pg-*', 'axios/**', 'undici/**'], message: 'Workflows do no I/O.' },
          ],
        },
      ],
      'no-restricted-globals': [
        'error',
        { name: 'fetch', message: 'Workflows do no I/O.' },
        { name: 'setInterval', message: 'Use workflow timers.' },
        { name: 'process', message: 'Workflows must not read the environment.' },
      ],
    },
  },
  layer(
    ['services/**/*.ts'],
    ['db', 'protocol', 'workflows', 'config'],
    'services/ hold the rules: they import db/, protocol/, workflow definitions and config types, never api/, activities/, worker/ or cli/.',
  ),
  layer(
    ['api/**/*.ts'],
    ['services', 'protocol', 'config'],
    'api/ holds routes, schemas and auth over services/: no SQL (db/), no activities, worker or CLI.',
  ),
  layer(
    ['worker/**/*.ts'],
    ['services', 'activities', 'workflows', 'protocol', 'config'],
    'worker/ wires Temporal to activities and services: no SQL (db/), no api/, cli/ or web/.',
  ),
  layer(
    ['activities/**/*.ts'],
    ['services', 'protocol'],
    'activities/ are thin: each calls a service (no SQL, no api/, no worker or CLI).',
  ),
  layer(
    ['db/**/*.ts'],
    ['protocol', 'config'],
    'db/ holds the SQL and imports nothing above it (protocol/ for shared names only).',
  ),
  layer(
    ['protocol/**/*.ts'],
    [],
    'protocol/ is the contract shared with the agent and the browser: it imports nothing of the project.',
  ),
  // web/ has folders named like the top level (web/src/api.ts): count the climb to the root instead.
  ...[
    ['web/src/*.ts', 2],
    ['web/src/*/*.ts', 3],
  ].map(([glob, depth]) => ({
    files: [glob],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            {
              regex: `^(\\.\\./){${depth}}(?!protocol/)`,
              message:
                'web/ imports only protocol/ (views, lists, canonical JSON): the browser never reaches server code.',
            },
          ],
        },
      ],
    },
  })),
  {
    // The agent ships alone to customer machines: it may import protocol/ and npm packages, never server code.
    files: ['agent/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          paths: [
            { name: 'pg', message: 'The agent talks to the control plane only, over HTTPS.' },
            { name: 'fastify', message: 'The agent opens no listening socket.' },
          ],
          patterns: [
            {
              regex: '^(\\.\\./)+(api|services|db|activities|worker|workflows|cli|config|scripts|test|web)(/|$)',
              message: 'agent/ imports only protocol/ and npm packages (never server code).',
            },
            {
              group: ['@temporalio/*', 'pg-*', '@fastify/*'],
              message: 'The agent depends on protocol/ and its own npm packages only.',
            },
          ],
        },
      ],
      'no-restricted-properties': [
        'error',
        {
          object: 'process',
          property: 'env',
          message: 'The agent is configured by its CLI and the files under its prefix, not the environment.',
        },
      ],
    },
  },
);

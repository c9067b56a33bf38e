'use strict';
/** Jest runs TypeScript through @swc/jest; `tsc --noEmit` (npm run check) is the type gate. */
module.exports = {
  testEnvironment: 'node',
  roots: ['<rootDir>/test'],
  testMatch: ['**/*.test.ts'],
  transform: {
    '^.+\\.(t|j)s$': [
      '@swc/jest',
      { jsc: { parser: { syntax: 'typescript' }, target: 'es2022' }, module: { type: 'commonjs' } },
    ],
  },
  // cookie@2 (light-my-request's, behind fastify.inject) ships ESM only. Node itself can require() it,
  // but Jest loads modules through its own vm-based require, which cannot unless Node runs with
  // --experimental-vm-modules; so swc compiles it to CommonJS.
  transformIgnorePatterns: ['/node_modules/(?!(cookie|qr)/)'],
  globalSetup: '<rootDir>/test/support/global-setup.ts',
  globalTeardown: '<rootDir>/test/support/global-teardown.ts',
  testTimeout: 60000,
  maxWorkers: 2,
  watchman: false,
};

#!/usr/bin/env node
'use strict';
/**
 * Runs Jest with a JSON report and ends with one plain line `N passed, N failed`, so the count of
 * tests that ran is visible to CI. Extra arguments go to Jest (e.g. a path filter).
 */
const { spawnSync } = require('node:child_process');
const { mkdirSync, readFileSync, rmSync } = require('node:fs');
const path = require('node:path');

const root = path.resolve(__dirname, '..');
const report = path.join(root, '.data', 'jest-results.json');
mkdirSync(path.dirname(report), { recursive: true });
rmSync(report, { force: true });

const jest = require.resolve('jest/bin/jest');
const r = spawnSync(process.execPath, [jest, '--json', `--outputFile=${report}`, ...process.argv.slice(2)], {
  cwd: root,
  stdio: 'inherit',
});

let passed = 0;
let failed = 0;
try {
  const results = JSON.parse(readFileSync(report, 'utf8'));
  passed = results.numPassedTests;
  failed = results.numFailedTests + (results.numRuntimeErrorTestSuites || 0);
} catch {
  failed = Math.max(failed, 1);
}
console.log(`${passed} passed, ${failed} failed`);
process.exit(r.status === 0 && failed === 0 && passed > 0 ? 0 : 1);

#!/usr/bin/env node
'use strict';
/**
 * `npm test` (`node scripts/test.js --check-first`) and `npm run test:only`: on a Node older than the
 * project's floor, re-runs itself under the pinned Node 24 (scripts/node-runtime.js); with
 * `--check-first`, runs `npm run check` under that Node; then runs Jest with a JSON report and ends
 * with one plain line `node-vX.Y.Z: N passed, N failed` naming the Node that ran the tests, so the
 * count of tests that ran is visible to CI. Other arguments go to Jest (e.g. a path filter).
 *
 * `node scripts/test.js --summary` prints that closing line again from the last run's report.
 */
const { spawnSync } = require('node:child_process');
const { mkdirSync, readFileSync, rmSync, writeFileSync } = require('node:fs');
const path = require('node:path');

const root = path.resolve(__dirname, '..');
const report = path.join(root, '.data', 'jest-results.json');

/** The closing line; `node` is the version of the Node that ran Jest (recorded in the report). */
function closingLine(passed, failed, node) {
  return `node-${node}: ${passed} passed, ${failed} failed`;
}

/** Counts from the Jest report; a missing or unreadable report counts as one failure. */
function summarize() {
  try {
    const results = JSON.parse(readFileSync(report, 'utf8'));
    const failed = results.numFailedTests + (results.numRuntimeErrorTestSuites || 0);
    return { passed: results.numPassedTests, failed, node: results.nodeVersion || process.version, results };
  } catch {
    return { passed: 0, failed: 1, node: process.version, results: null };
  }
}

/** `npm run check` with the npm that started us (if any), under this Node. */
function runCheck() {
  const npmCli = process.env.npm_execpath;
  const r =
    npmCli && /\.[cm]?js$/.test(npmCli)
      ? spawnSync(process.execPath, [npmCli, 'run', 'check'], { cwd: root, stdio: 'inherit' })
      : spawnSync('npm', ['run', 'check'], { cwd: root, stdio: 'inherit' });
  return r.status === 0;
}

function main(args) {
  mkdirSync(path.dirname(report), { recursive: true });
  rmSync(report, { force: true });
  if (args[0] === '--check-first') {
    args = args.slice(1);
    if (!runCheck()) {
      console.log(closingLine(0, 1, process.version));
      process.exit(1);
    }
  }

  const jest = require.resolve('jest/bin/jest');
  const r = spawnSync(process.execPath, [jest, '--json', `--outputFile=${report}`, ...args], {
    cwd: root,
    stdio: 'inherit',
  });

  const { passed, failed, results } = summarize();
  if (results) writeFileSync(report, JSON.stringify({ ...results, nodeVersion: process.version }));
  console.log(closingLine(passed, failed, process.version));
  process.exit(r.status === 0 && failed === 0 && passed > 0 ? 0 : 1);
}

if (process.argv[2] === '--summary') {
  const { passed, failed, node } = summarize();
  console.log(closingLine(passed, failed, node));
} else if (!require('./node-runtime').reexecIfTooOld()) {
  main(process.argv.slice(2));
}

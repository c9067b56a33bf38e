#!/usr/bin/env node
'use strict';
/**
 * `npm start`: bootstraps the dev stack. Plain JavaScript, because it runs before dependencies are
 * installed: on a Node older than the project's floor it re-runs itself under the pinned Node 24
 * (scripts/node-runtime.js), (re)installs dependencies when node_modules is missing or older than
 * package-lock.json, then hands over to the TypeScript orchestrator in scripts/dev-stack.ts.
 */
const { spawnSync } = require('node:child_process');
const { createHash } = require('node:crypto');
const { existsSync, readFileSync, statSync, writeFileSync } = require('node:fs');
const path = require('node:path');

const { reexecIfTooOld } = require('./node-runtime');

const root = path.resolve(__dirname, '..');

function ensureDependencies() {
  const lock = path.join(root, 'package-lock.json');
  // npm writes node_modules/.package-lock.json on every install; our stamp records which lock
  // file that install was for, so a changed lock (git pull) triggers a fresh `npm ci`.
  const hidden = path.join(root, 'node_modules', '.package-lock.json');
  const stamp = path.join(root, 'node_modules', '.agentina-deps');
  const want = createHash('sha256').update(readFileSync(lock)).digest('hex');
  if (existsSync(hidden)) {
    const have = existsSync(stamp) ? readFileSync(stamp, 'utf8').trim() : '';
    if (have === want || statSync(hidden).mtimeMs >= statSync(lock).mtimeMs) {
      if (have !== want) writeFileSync(stamp, `${want}\n`);
      return;
    }
  }
  console.log(
    existsSync(path.join(root, 'node_modules'))
      ? 'Dependencies changed: running npm ci…'
      : 'Installing dependencies (npm ci)…',
  );
  const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
  const r = spawnSync(npm, ['ci', '--no-audit', '--no-fund'], { cwd: root, stdio: 'inherit' });
  if (r.status !== 0) {
    console.error('npm ci failed; see the output above.');
    process.exit(1);
  }
  writeFileSync(stamp, `${want}\n`);
}

module.exports = { ensureDependencies };

if (require.main === module && !reexecIfTooOld()) {
  ensureDependencies();
  require('tsx/cjs');
  const { main } = require('./dev-stack.ts');
  main().catch((err) => {
    console.error(`\nnpm start failed: ${err && err.message ? err.message : err}`);
    process.exit(1);
  });
}

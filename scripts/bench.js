#!/usr/bin/env node
'use strict';
/**
 * `npm run bench:<name>` → runs test/bench/<name>.ts. Each benchmark provisions what it needs the
 * way `npm test` does (test/support/stack.ts, honouring DATABASE_URL), stops all it started, and
 * prints one JSON object of its figures as its last line. It also records that line, with its
 * options and date, in docs/figures/<name>.json (unless AGENTINA_BENCH_RECORD=0), from which
 * `npm run figures` regenerates the figures table (scripts/figures.js). On a Node older than the
 * project's floor it re-runs itself under the pinned Node 24 (scripts/node-runtime.js) first.
 */
const path = require('node:path');
const { existsSync, mkdirSync, writeFileSync } = require('node:fs');
const { loadavg } = require('node:os');
const { reexecIfTooOld } = require('./node-runtime');

const name = process.argv[2];
const file = name && path.join(__dirname, '..', 'test', 'bench', `${name}.ts`);
if (!file || !existsSync(file)) {
  console.error(`usage: node scripts/bench.js <name>   (no benchmark ${name ?? ''} in test/bench/)`);
  process.exit(2);
}
if (!reexecIfTooOld()) {
  require('tsx/cjs');
  const { main } = require(file);
  main(process.argv.slice(3)).then(
    (figures) => {
      if (process.env.AGENTINA_BENCH_RECORD !== '0') {
        const dir = path.join(__dirname, '..', 'docs', 'figures');
        mkdirSync(dir, { recursive: true });
        const record = {
          bench: name,
          args: process.argv.slice(3),
          measuredAt: new Date().toISOString(),
          // The machine's 1-minute load average as the run ended: these machines are shared.
          loadAvg1m: Math.round(loadavg()[0] * 10) / 10,
          figures,
        };
        writeFileSync(path.join(dir, `${name}.json`), `${JSON.stringify(record, null, 2)}\n`);
      }
      console.log(JSON.stringify(figures));
      process.exit(0);
    },
    (err) => {
      console.error(err && err.stack ? err.stack : err);
      process.exit(1);
    },
  );
}

#!/usr/bin/env node
'use strict';
// The on-prem agent. Runs the TypeScript sources through tsx with its on-disk cache off, so the
// agent writes nothing outside its --prefix (tsx would otherwise cache under the temp directory).
process.env.TSX_DISABLE_CACHE = '1';
require('tsx/cjs');
const { main } = require('../agent/cli.ts');

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err) => {
    console.error(`agentina-agent: ${err && err.message ? err.message : err}`);
    process.exitCode = 1;
  },
);

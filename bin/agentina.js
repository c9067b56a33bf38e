#!/usr/bin/env node
'use strict';
// Runs the TypeScript sources directly (tsx's CommonJS hook), so a checkout needs no build step.
require('tsx/cjs');
const { main } = require('../cli/index.ts');

main(process.argv.slice(2)).then(
  (code) => {
    if (code !== undefined) process.exitCode = code;
  },
  (err) => {
    console.error(err);
    process.exitCode = 1;
  },
);

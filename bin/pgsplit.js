#!/usr/bin/env node
// The compiled entry point: dist/ is built by the prepare script (npm ci in a checkout) and by prepack (npm pack).
import { main } from '../dist/src/cli/main.js';

main(process.argv.slice(2)).then(
  (code) => {
    if (code !== null) process.exitCode = code;
  },
  (err) => {
    process.stderr.write(`pgsplit: ${err && err.stack ? err.stack : err}\n`);
    process.exitCode = 1;
  },
);

#!/usr/bin/env node
// The installed `wndc` command: runs the compiled CLI from dist/ (built by `npm install` / `npm run build`).
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const main = new URL('../dist/cli/main.js', import.meta.url);
if (!existsSync(fileURLToPath(main))) {
  process.stderr.write('wndc: the CLI is not built yet; run `npm run build` in the wndc folder\n');
  process.exit(3);
}
const { runCli, processIO } = await import(main.href);
process.exitCode = await runCli(process.argv.slice(2), processIO());

// Entry point for running the CLI from sources (`npm run wndc -- ...`); the installed bin uses dist/.
import { processIO, runCli } from './main.js';

process.exitCode = await runCli(process.argv.slice(2), processIO());

#!/usr/bin/env node
// Builds wndc's MPI addon (native-mpi/src/mpi_addon.cpp) into build/wndc_mpi.node with the system
// C++ compiler. Plain Node, no dependencies: it runs at `npm install` (the `prepare` script).
//
//   node scripts/build-mpi.mjs                  build (fails when no C++ compiler is found)
//   node scripts/build-mpi.mjs --if-available   say why and succeed when there is no compiler
//
// The addon does not link MPI: it dlopens Open MPI's libmpi.so.40 when a distributed run starts
// (docs/distributed.md says why), so it builds on machines without MPI and needs no mpi.h.
// A compile error exits non-zero even with --if-available, so CI's `npm ci` fails on a broken build.

import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const SOURCE = join(ROOT, 'native-mpi', 'src', 'mpi_addon.cpp');
const BUILD_DIR = join(ROOT, 'build');
const ADDON = join(BUILD_DIR, 'wndc_mpi.node');
const BUILD_INFO = join(BUILD_DIR, 'wndc_mpi.json');
const NAPI_VERSION = 8;

class BuildError extends Error {}

function parseArguments(argv) {
  const options = { ifAvailable: false };
  for (const argument of argv) {
    if (argument === '--if-available') options.ifAvailable = true;
    else throw new BuildError(`unknown argument ${argument} (expected --if-available)`);
  }
  return options;
}

/** CXX, else the first of g++, c++ and clang++ that answers --version. */
function findCompiler(env = process.env) {
  const candidates = env.CXX ? [env.CXX] : ['g++', 'c++', 'clang++'];
  for (const candidate of candidates) {
    const result = spawnSync(candidate, ['--version'], { encoding: 'utf8' });
    if (result.status === 0) return { path: candidate, version: (result.stdout ?? '').split('\n')[0] ?? '' };
  }
  return { path: undefined, looked: candidates.join(', ') };
}

/** The node-api-headers package (a devDependency), else the headers installed next to node itself. */
function findNodeApiHeaders() {
  try {
    const folder = join(dirname(createRequire(import.meta.url).resolve('node-api-headers/package.json')), 'include');
    if (existsSync(join(folder, 'node_api.h'))) return folder;
  } catch {
    // not installed: try node's own headers
  }
  const nodeInclude = join(dirname(dirname(process.execPath)), 'include', 'node');
  if (existsSync(join(nodeInclude, 'node_api.h'))) return nodeInclude;
  throw new BuildError('cannot find the Node-API headers (node_api.h); run `npm install` to get node-api-headers');
}

function build(options) {
  const started = performance.now();
  const compiler = findCompiler();
  if (!compiler.path) {
    const why = `no C++ compiler (looked for ${compiler.looked}; set CXX)`;
    if (options.ifAvailable) {
      console.log(`wndc: the MPI addon is not built: ${why}; multi-process CPU training needs it (npm run build:mpi)`);
      return;
    }
    throw new BuildError(why);
  }
  const flags = ['-std=c++17', '-O2', '-fPIC', '-shared', '-fvisibility=hidden', '-Wall', '-Wextra', `-DNAPI_VERSION=${NAPI_VERSION}`, '-DNODE_GYP_MODULE_NAME=wndc_mpi', '-I', findNodeApiHeaders()];
  const stamp = JSON.stringify({ compiler: compiler.path, version: compiler.version, flags, node: process.version });
  if (existsSync(ADDON) && existsSync(BUILD_INFO) && statSync(ADDON).mtimeMs > statSync(SOURCE).mtimeMs) {
    const info = JSON.parse(readFileSync(BUILD_INFO, 'utf8'));
    if (info.stamp === stamp) {
      console.log(`wndc: ${relative(ROOT, ADDON)} is up to date`);
      return;
    }
  }
  mkdirSync(BUILD_DIR, { recursive: true });
  // Compile to a temporary name and rename, so a failed build never leaves a broken addon behind.
  const temporary = `${ADDON}.tmp`;
  const result = spawnSync(compiler.path, [...flags, relative(ROOT, SOURCE), '-o', temporary, '-ldl'], { cwd: ROOT, encoding: 'utf8' });
  const output = `${result.stdout ?? ''}${result.stderr ?? ''}`.trim();
  if (result.status !== 0) {
    rmSync(temporary, { force: true });
    throw new BuildError(`compiling ${relative(ROOT, SOURCE)} failed (exit ${result.status ?? result.signal}):\n${output}`);
  }
  renameSync(temporary, ADDON);
  writeFileSync(BUILD_INFO, `${JSON.stringify({ stamp, builtAt: new Date().toISOString(), node: process.version, napiVersion: NAPI_VERSION, platform: `${process.platform}-${process.arch}` }, null, 2)}\n`);
  console.log(`wndc: built ${relative(ROOT, ADDON)} with ${compiler.version} in ${((performance.now() - started) / 1000).toFixed(1)} s${output ? `\n${output}` : ''}`);
}

try {
  build(parseArguments(process.argv.slice(2)));
} catch (error) {
  if (!(error instanceof BuildError)) throw error;
  console.error(`wndc: building the MPI addon failed: ${error.message}`);
  process.exitCode = 1;
}

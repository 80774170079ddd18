#!/usr/bin/env node
// Builds wndc's CUDA addon: compiles every .cu and .cpp under native/src with nvcc (in parallel,
// skipping objects that are up to date) into build/obj, links build/wndc_cuda.node, and writes
// build/wndc_cuda.json. Plain Node, no dependencies: it runs at `npm install` (the `prepare` script).
//
//   node scripts/build-native.mjs                  build (fails when nvcc is missing)
//   node scripts/build-native.mjs --if-available   say why and succeed when nvcc is missing (install)
//   node scripts/build-native.mjs --arch sm_90     one architecture, for quick builds
//
// cuBLASLt and NCCL are not linked: the addon declares them (native/src/*_api.h) and dlopens them at
// run time, so the build needs only nvcc and cudart (linked statically, nvcc's default). Where NCCL's
// device headers are found (nccl_device.h, NCCL 2.28+: NCCL_INCLUDE_DIR, CUDA_INCLUDE_DIRS, the CUDA
// toolkit's include folder), native/src/nccl_peer.cu is built with them: the peers' rows of data
// parallelism over NVLink then work with NCCL 2.28 too, not only with 2.29+ (see nccl_peer.h).
// A compile error exits non-zero even with --if-available, so CI's `npm ci` fails on a broken build.

import { spawn, spawnSync } from 'node:child_process';
import { accessSync, constants, existsSync, mkdirSync, readFileSync, readdirSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { availableParallelism } from 'node:os';
import { delimiter, dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const SOURCE_DIR = join(ROOT, 'native', 'src');
const BUILD_DIR = join(ROOT, 'build');
const OBJECT_DIR = join(BUILD_DIR, 'obj');
const GENERATED_DIR = join(BUILD_DIR, 'generated');
const ADDON = join(BUILD_DIR, 'wndc_cuda.node');
const BUILD_INFO = join(BUILD_DIR, 'wndc_cuda.json');
const DEFAULT_ARCHITECTURES = ['sm_80', 'sm_90'];
const NAPI_VERSION = 8;
const SOURCE_EXTENSIONS = ['.cu', '.cpp'];
const HEADER_EXTENSIONS = ['.h', '.hpp', '.cuh', '.inl'];

class BuildError extends Error {}

function parseArguments(argv) {
  const options = { ifAvailable: false, architectures: DEFAULT_ARCHITECTURES };
  for (let i = 0; i < argv.length; i++) {
    const argument = argv[i];
    if (argument === '--if-available') options.ifAvailable = true;
    else if (argument === '--arch') {
      const value = argv[++i];
      if (value === undefined || !/^sm_\d+[a-z]?(,sm_\d+[a-z]?)*$/.test(value)) throw new BuildError('--arch takes sm_XX[,sm_YY...], e.g. --arch sm_90');
      options.architectures = value.split(',');
    } else throw new BuildError(`unknown argument ${argument} (expected --if-available or --arch sm_XX)`);
  }
  return options;
}

function isExecutable(file) {
  try {
    accessSync(file, constants.X_OK);
    return statSync(file).isFile();
  } catch {
    return false;
  }
}

/**
 * nvcc from NVCC, CUDA_HOME/bin, PATH, then /usr/local/cuda/bin; { path } or { looked } (the places
 * searched). runtime/engine/cuda/load-addon.ts searches the same way for its messages.
 */
export function findNvcc(env = process.env) {
  const places = [];
  if (env.NVCC) places.push(env.NVCC);
  if (env.CUDA_HOME) places.push(join(env.CUDA_HOME, 'bin', 'nvcc'));
  for (const folder of (env.PATH ?? '').split(delimiter)) if (folder) places.push(join(folder, 'nvcc'));
  places.push('/usr/local/cuda/bin/nvcc');
  const path = places.find(isExecutable);
  const looked = ['NVCC', 'CUDA_HOME/bin', 'PATH', '/usr/local/cuda/bin'].join(', ');
  return path ? { path, looked } : { path: undefined, looked };
}

function nvccVersion(nvcc) {
  const result = spawnSync(nvcc, ['--version'], { encoding: 'utf8' });
  const match = /release [\d.]+, V([\d.]+)/.exec(result.stdout ?? '');
  if (!match?.[1]) throw new BuildError(`${nvcc} --version did not report a version:\n${result.stdout ?? ''}${result.stderr ?? ''}`);
  return match[1];
}

/** The folder holding NCCL's device headers (nccl_device.h next to nccl.h), or undefined. */
export function findNcclDeviceHeaders(env = process.env) {
  const folders = [env.NCCL_INCLUDE_DIR, ...(env.CUDA_INCLUDE_DIRS ?? '').split(delimiter), '/usr/local/cuda/include', '/usr/include'];
  return folders.find((folder) => folder && existsSync(join(folder, 'nccl_device.h')) && existsSync(join(folder, 'nccl.h')));
}

/** The node-api-headers package (a devDependency), else the headers installed next to node itself. */
function findNodeApiHeaders() {
  const tried = [];
  try {
    const folder = join(dirname(createRequire(import.meta.url).resolve('node-api-headers/package.json')), 'include');
    if (existsSync(join(folder, 'node_api.h'))) return folder;
    tried.push(folder);
  } catch {
    tried.push('the node-api-headers package (not installed)');
  }
  const nodeInclude = join(dirname(dirname(process.execPath)), 'include', 'node');
  if (existsSync(join(nodeInclude, 'node_api.h'))) return nodeInclude;
  tried.push(nodeInclude);
  throw new BuildError(`cannot find the Node-API headers (node_api.h); looked in ${tried.join(' and ')}; run \`npm install\` to get node-api-headers`);
}

function filesUnder(folder, extensions) {
  if (!existsSync(folder)) return [];
  const files = [];
  for (const entry of readdirSync(folder, { withFileTypes: true })) {
    const path = join(folder, entry.name);
    if (entry.isDirectory()) files.push(...filesUnder(path, extensions));
    else if (extensions.some((extension) => entry.name.endsWith(extension))) files.push(path);
  }
  return files.sort();
}

const mtime = (file) => statSync(file).mtimeMs;

/** Writes `text` only when it differs, so an unchanged generated header does not force a rebuild. */
function writeIfChanged(file, text) {
  if (existsSync(file) && readFileSync(file, 'utf8') === text) return;
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, text);
}

function gencodeFlags(architectures) {
  const flags = architectures.flatMap((sm) => ['-gencode', `arch=compute_${sm.slice(3)},code=${sm}`]);
  // PTX of the newest architecture lets newer GPUs JIT-compile the kernels.
  const newest = architectures.at(-1);
  if (newest) flags.push('-gencode', `arch=compute_${newest.slice(3)},code=compute_${newest.slice(3)}`);
  return flags;
}

/** Runs one command; resolves with its combined output, rejects with a BuildError holding it. */
function run(command, args, label) {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (chunk) => (output += chunk));
    child.stderr.on('data', (chunk) => (output += chunk));
    child.on('error', (error) => reject(new BuildError(`${label}: cannot run ${command}: ${error.message}`)));
    child.on('close', (code) => (code === 0 ? resolve(output) : reject(new BuildError(`${label} failed (exit ${code}):\n${output}`))));
  });
}

/** Runs `tasks` (functions returning promises) `jobs` at a time; stops starting new ones after a failure. */
async function inParallel(tasks, jobs) {
  const failures = [];
  let next = 0;
  async function worker() {
    while (next < tasks.length && failures.length === 0) {
      const task = tasks[next++];
      try {
        await task();
      } catch (error) {
        failures.push(error);
      }
    }
  }
  await Promise.all(Array.from({ length: Math.min(jobs, tasks.length) }, worker));
  if (failures.length > 0) throw failures[0];
}

const seconds = (start) => `${((performance.now() - start) / 1000).toFixed(1)} s`;

async function build(options) {
  const started = performance.now();
  const nvcc = findNvcc();
  if (!nvcc.path) {
    const why = `nvcc not found (looked in ${nvcc.looked})`;
    if (options.ifAvailable) {
      console.log(`wndc: the CUDA engine is not built: ${why}; install the CUDA toolkit and run \`npm run build:cuda\` to build it`);
      return;
    }
    throw new BuildError(`${why}; install the CUDA toolkit (12 or 13) or set NVCC to its nvcc`);
  }
  const version = nvccVersion(nvcc.path);
  const sources = filesUnder(SOURCE_DIR, SOURCE_EXTENSIONS);
  if (sources.length === 0) throw new BuildError(`no .cu or .cpp sources in ${relative(ROOT, SOURCE_DIR)}`);
  const packageVersion = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')).version;
  const architectures = [...options.architectures, `compute_${options.architectures.at(-1)?.slice(3)}`];

  // Build facts the addon reports (buildInfo); a header, so that changing them recompiles.
  writeIfChanged(
    join(GENERATED_DIR, 'wndc_build_info.h'),
    '// Generated by scripts/build-native.mjs; do not edit.\n#pragma once\n' +
      `#define WNDC_ADDON_VERSION ${JSON.stringify(packageVersion)}\n` +
      `#define WNDC_ARCHITECTURES ${JSON.stringify(architectures.join(','))}\n`,
  );
  const ncclDeviceHeaders = findNcclDeviceHeaders();
  // Only nccl_peer.cu sees NCCL's headers: the rest of the addon declares NCCL itself (nccl_api.h).
  const flagsFor = (source) =>
    ncclDeviceHeaders !== undefined && source.endsWith('nccl_peer.cu') ? [...flags, '-I', ncclDeviceHeaders, '-DWNDC_NCCL_DEVICE_API=1'] : flags;
  const flags = [
    '-std=c++17', '-O3', '--fmad=false',
    '-Xcompiler', '-fPIC,-fvisibility=hidden',
    ...gencodeFlags(options.architectures),
    '-I', relative(ROOT, SOURCE_DIR), '-I', relative(ROOT, GENERATED_DIR), '-I', findNodeApiHeaders(),
    `-DNAPI_VERSION=${NAPI_VERSION}`,
  ];

  // Simple staleness rule: any header newer than an object, or different flags, rebuilds everything.
  const flagsStamp = join(OBJECT_DIR, 'flags.json');
  // Whether nccl_peer.cu holds the device API: known when it compiles now, else as the last build said.
  let deviceApiBuilt = (() => {
    try {
      return JSON.parse(readFileSync(BUILD_INFO, 'utf8')).ncclDeviceApi === true;
    } catch {
      return false;
    }
  })();
  const stampText = JSON.stringify({ nvcc: nvcc.path, version, flags, ncclDeviceHeaders: ncclDeviceHeaders ?? null });
  const sameFlags = existsSync(flagsStamp) && readFileSync(flagsStamp, 'utf8') === stampText;
  const headers = [...filesUnder(SOURCE_DIR, HEADER_EXTENSIONS), ...filesUnder(GENERATED_DIR, HEADER_EXTENSIONS)];
  const newestHeader = Math.max(0, ...headers.map(mtime));
  const objectOf = (source) => join(OBJECT_DIR, `${relative(SOURCE_DIR, source)}.o`);
  const stale = sources.filter((source) => {
    const object = objectOf(source);
    return !sameFlags || !existsSync(object) || mtime(object) <= Math.max(mtime(source), newestHeader);
  });

  const jobs = availableParallelism();
  console.log(`wndc: building the CUDA addon with nvcc ${version} (${nvcc.path}) for ${options.architectures.join(', ')}; ${stale.length} of ${sources.length} sources to compile, ${jobs} at a time`);
  console.log(ncclDeviceHeaders !== undefined
    ? `  NCCL's device headers: ${ncclDeviceHeaders} (the peers' rows work with that NCCL release)`
    : "  NCCL's device headers (nccl_device.h) not found: the peers' rows need NCCL 2.29+ at run time (set CUDA_INCLUDE_DIRS to build with them)");
  if (!sameFlags) rmSync(flagsStamp, { force: true });
  await inParallel(
    stale.map((source) => async () => {
      const object = objectOf(source);
      const name = relative(ROOT, source);
      const start = performance.now();
      console.log(`  compile ${name}`);
      mkdirSync(dirname(object), { recursive: true });
      let output;
      try {
        output = await run(nvcc.path, [...flagsFor(source), '-c', name, '-o', `${object}.tmp`], `compiling ${name}`);
        if (source.endsWith('nccl_peer.cu')) deviceApiBuilt = ncclDeviceHeaders !== undefined;
      } catch (error) {
        // NCCL's headers are not wndc's: should they not build here, the addon goes without them
        // (the peers' rows then need NCCL 2.29+ at run time) rather than not at all.
        if (!(error instanceof BuildError) || flagsFor(source) === flags) throw error;
        console.log(`  ${name} did not build with NCCL's device headers; building it without them:\n${error.message.split('\n').slice(0, 6).join('\n')}`);
        output = await run(nvcc.path, [...flags, '-c', name, '-o', `${object}.tmp`], `compiling ${name}`);
        deviceApiBuilt = false;
      }
      renameSync(`${object}.tmp`, object);
      console.log(`  compiled ${name} (${seconds(start)})${output.trim() ? `\n${output.trimEnd()}` : ''}`);
    }),
    jobs,
  );
  mkdirSync(OBJECT_DIR, { recursive: true });
  writeFileSync(flagsStamp, stampText);

  const objects = sources.map(objectOf);
  const upToDate = stale.length === 0 && existsSync(ADDON) && objects.every((object) => mtime(object) <= mtime(ADDON));
  if (upToDate) {
    console.log(`wndc: ${relative(ROOT, ADDON)} is up to date (${seconds(started)})`);
    return;
  }
  // Link to a temporary name and rename, so a failed link never leaves a broken addon behind.
  const temporary = `${ADDON}.tmp`;
  const start = performance.now();
  console.log(`  link ${relative(ROOT, ADDON)}`);
  await run(
    nvcc.path,
    ['-shared', '-o', temporary, ...objects.map((o) => relative(ROOT, o)),
      // Keep the static cudart's symbols private to the addon (other native modules may bring their own).
      '-Xlinker', '--exclude-libs,ALL', '-ldl', '-lpthread'],
    'linking build/wndc_cuda.node',
  );
  renameSync(temporary, ADDON);
  writeFileSync(
    BUILD_INFO,
    `${JSON.stringify({
      version: packageVersion,
      architectures,
      builtAt: new Date().toISOString(),
      nvcc: version,
      node: process.version,
      napiVersion: NAPI_VERSION,
      platform: `${process.platform}-${process.arch}`,
      ncclDeviceHeaders: ncclDeviceHeaders ?? null,
      ncclDeviceApi: deviceApiBuilt,
    }, null, 2)}\n`,
  );
  console.log(`  linked (${seconds(start)})`);
  console.log(`wndc: built ${relative(ROOT, ADDON)} in ${seconds(started)}`);
}

const invokedDirectly = process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1];
if (invokedDirectly) {
  try {
    await build(parseArguments(process.argv.slice(2)));
  } catch (error) {
    if (!(error instanceof BuildError)) throw error;
    console.error(`wndc: building the CUDA addon failed: ${error.message}`);
    process.exitCode = 1;
  }
}

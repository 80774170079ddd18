// Finds and loads wndc's CUDA addon (build/wndc_cuda.node, built by scripts/build-native.mjs) and
// turns every reason it cannot run into a CudaUnavailableError that says what is missing and how to
// fix it: the addon not built (no nvcc), built for another Node.js, no NVIDIA driver or GPU, or no
// cuBLASLt. Works from the sources (runtime/engine/cuda/) and from dist/ (dist/runtime/engine/cuda/).

import { accessSync, constants, existsSync, readFileSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { delimiter, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { NativeAddon, NativeDevice } from './addon-api.js';

/** The CUDA engine cannot run here; the message names what is missing and the fix. */
export class CudaUnavailableError extends Error {
  override name = 'CudaUnavailableError';
}

/** The package root: the nearest folder above this module whose package.json is wndc's. */
export function packageRoot(start: string = dirname(fileURLToPath(import.meta.url))): string {
  for (let folder = start; ; folder = dirname(folder)) {
    const manifest = join(folder, 'package.json');
    if (existsSync(manifest) && (JSON.parse(readFileSync(manifest, 'utf8')) as { name?: string }).name === 'wndc') return folder;
    if (dirname(folder) === folder) throw new Error(`internal: no wndc package.json above ${start}`);
  }
}

export function addonPath(root: string = packageRoot()): string {
  return join(root, 'build', 'wndc_cuda.node');
}

function isExecutable(file: string): boolean {
  try {
    accessSync(file, constants.X_OK);
    return statSync(file).isFile();
  } catch {
    return false;
  }
}

/** nvcc the way scripts/build-native.mjs finds it: NVCC, CUDA_HOME/bin, PATH, /usr/local/cuda/bin. */
export function findNvcc(env: NodeJS.ProcessEnv = process.env): string | undefined {
  const places = [
    ...(env.NVCC ? [env.NVCC] : []),
    ...(env.CUDA_HOME ? [join(env.CUDA_HOME, 'bin', 'nvcc')] : []),
    ...(env.PATH ?? '').split(delimiter).filter((folder) => folder !== '').map((folder) => join(folder, 'nvcc')),
    '/usr/local/cuda/bin/nvcc',
  ];
  return places.find(isExecutable);
}

const NVCC_PLACES = 'NVCC, CUDA_HOME/bin, PATH and /usr/local/cuda/bin';

/** What wndc_cuda.json (written next to the addon) says about the build, for messages. */
function builtWith(file: string): string {
  try {
    const info = JSON.parse(readFileSync(join(dirname(file), 'wndc_cuda.json'), 'utf8')) as { node?: string; platform?: string };
    return ` (it was built with Node.js ${info.node ?? '?'} on ${info.platform ?? '?'}; this is Node.js ${process.version} on ${process.platform}-${process.arch})`;
  } catch {
    return '';
  }
}

function notBuilt(file: string): CudaUnavailableError {
  const nvcc = findNvcc();
  const fix = nvcc
    ? `nvcc is at ${nvcc}: run \`npm run build:cuda\``
    : `nvcc was not found (looked in ${NVCC_PLACES}): install the CUDA toolkit (12 or 13), then run \`npm run build:cuda\``;
  return new CudaUnavailableError(`the CUDA engine's addon is not built (no ${file}); ${fix}`);
}

/** Why require() rejected the addon, in the user's terms. */
function loadFailure(file: string, error: Error): CudaUnavailableError {
  const own = `${file}: `;
  const message = error.message.startsWith(own) ? error.message.slice(own.length) : error.message;
  // glibc says "cannot open shared object file" about an existing file built for another CPU; the
  // same words about another file name a missing dependency, which is the generic case below.
  const foreign =
    /NODE_MODULE_VERSION|wrong ELF class|invalid ELF header|GLIBC_|GLIBCXX_|undefined symbol: (napi|node_api)_/.test(message) ||
    (error.message.startsWith(own) && message.startsWith('cannot open shared object file'));
  if (foreign) {
    return new CudaUnavailableError(`${file} was built for another Node.js or platform${builtWith(file)}: rebuild it with \`npm run build:cuda\` (${message})`);
  }
  return new CudaUnavailableError(`cannot load ${file}: ${message}; rebuild it with \`npm run build:cuda\``);
}

let cached: NativeAddon | undefined;

/**
 * The addon (build/wndc_cuda.node of this package unless `file` is given), loaded once; throws
 * CudaUnavailableError when it is missing or cannot be loaded.
 */
export function loadCudaAddon(file?: string): NativeAddon {
  if (file === undefined && cached) return cached;
  const path = file ?? addonPath();
  if (!existsSync(path)) throw notBuilt(path);
  let addon: NativeAddon;
  try {
    addon = createRequire(import.meta.url)(path) as NativeAddon;
  } catch (e) {
    throw loadFailure(path, e as Error);
  }
  if (file === undefined) cached = addon;
  return addon;
}

export type CudaAvailability = { ok: true; addon: NativeAddon; devices: NativeDevice[]; cublasLt: string } | { ok: false; reason: string };

/**
 * Whether the CUDA engine can run here: the addon loads, a GPU is visible and cuBLASLt loads.
 * Never throws for those; `reason` is the CudaUnavailableError's message (tests pass it to t.skip).
 */
export function cudaAvailability(): CudaAvailability {
  let addon: NativeAddon;
  try {
    addon = loadCudaAddon();
  } catch (e) {
    if (e instanceof CudaUnavailableError) return { ok: false, reason: e.message };
    throw e;
  }
  let devices: NativeDevice[];
  try {
    devices = addon.devices();
  } catch (e) {
    return { ok: false, reason: `no usable GPU: ${(e as Error).message}` };
  }
  try {
    const { cublasLt } = addon.loadLibraries({ nccl: false });
    return { ok: true, addon, devices, cublasLt };
  } catch (e) {
    return { ok: false, reason: `cuBLASLt not found: ${(e as Error).message}` };
  }
}

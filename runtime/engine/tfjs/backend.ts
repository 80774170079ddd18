// Which TensorFlow.js backend runs the reference engine, and loading it. By default the fastest
// one that loads: libtensorflow through `@tensorflow/tfjs-node-gpu` or `@tensorflow/tfjs-node`
// (optional dependencies: they ship native binaries and often do not install), else the
// WebAssembly backend (XNNPACK kernels, SIMD), else the plain-JavaScript CPU backend.
// `--engine tfjs-wasm` and the like pick one and fail if it does not load.

import * as tfcore from '@tensorflow/tfjs-core';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

export type Tf = typeof tfcore;

export type TfjsBackendName = 'tfjs-node-gpu' | 'tfjs-node' | 'wasm' | 'cpu';
export type TfjsBackendChoice = 'auto' | TfjsBackendName;

/** The order `auto` tries. */
export const BACKEND_PREFERENCE: readonly TfjsBackendName[] = ['tfjs-node-gpu', 'tfjs-node', 'wasm', 'cpu'];

/** `--engine` values of the TensorFlow.js engine and the backend each asks for. */
export const TFJS_ENGINE_NAMES: Readonly<Record<string, TfjsBackendChoice>> = {
  tfjs: 'auto',
  'tfjs-node-gpu': 'tfjs-node-gpu',
  'tfjs-node': 'tfjs-node',
  'tfjs-wasm': 'wasm',
  'tfjs-cpu': 'cpu',
};

export interface LoadedBackend {
  name: TfjsBackendName;
  /** The tfjs namespace whose ops run on this backend (tfjs-node brings its own copy of tfjs). */
  tf: Tf;
  /** tfjs's name of the backend: `tensorflow`, `wasm` or `cpu`. */
  tfName: string;
  /** For EngineCapabilities.device, e.g. `CPU (tfjs wasm, 1 thread, SIMD)`. */
  device: string;
  /** Why each backend tried before this one was passed over. */
  skipped: { name: TfjsBackendName; reason: string }[];
}

/** The chosen backend could not be loaded: says why and what to install or choose instead. */
export class BackendUnavailableError extends Error {
  constructor(
    readonly backend: TfjsBackendName,
    readonly reason: string,
  ) {
    super(`the TensorFlow.js backend \`${backend}\` is not available: ${reason}${HINTS[backend]}`);
  }
}

const HINTS: Record<TfjsBackendName, string> = {
  'tfjs-node-gpu': '; install it with `npm install @tensorflow/tfjs-node-gpu` (needs CUDA 11.2 and cuDNN 8.1), or use `--engine tfjs`',
  'tfjs-node': '; install it with `npm install @tensorflow/tfjs-node`, or use `--engine tfjs`',
  wasm: '; use `--engine tfjs-cpu`',
  cpu: '',
};

/** Dynamic import, replaceable in tests to stand in for packages that are (not) installed. */
export type ModuleImporter = (specifier: string) => Promise<unknown>;

const defaultImporter: ModuleImporter = (specifier) => import(specifier);

export interface LoadOptions {
  importer?: ModuleImporter;
}

/** Loads `choice` (or, for `auto`, the first backend that loads) and makes it tfjs's backend. */
export async function loadBackend(choice: TfjsBackendChoice = 'auto', options: LoadOptions = {}): Promise<LoadedBackend> {
  const importer = options.importer ?? defaultImporter;
  const candidates = choice === 'auto' ? BACKEND_PREFERENCE : [choice];
  const skipped: LoadedBackend['skipped'] = [];
  for (const name of candidates) {
    let loaded: Awaited<ReturnType<Loader>>;
    try {
      loaded = await LOADERS[name](importer);
    } catch (error) {
      const reason = describeLoadError(error, PACKAGES[name]);
      if (choice !== 'auto') throw new BackendUnavailableError(name, reason);
      skipped.push({ name, reason });
      continue;
    }
    await registerGradients(loaded.tf, importer);
    return { ...loaded, name, skipped };
  }
  throw new Error(`internal: no TensorFlow.js backend loaded (${skipped.map((s) => `${s.name}: ${s.reason}`).join('; ')})`);
}

/**
 * tfjs-core's CommonJS build, the one Node loads, registers no gradient functions, and its
 * `dist/register_all_gradients.js` is an ES module for bundlers that Node cannot load
 * (extensionless imports). tfjs-layers' Node build carries the same gradient configs and
 * registers them in tfjs's global registry on import; @tensorflow/tfjs (and so tfjs-node) does
 * it through tfjs-layers too.
 */
async function registerGradients(tf: Tf, importer: ModuleImporter): Promise<void> {
  if (tf.getGradient('Add') !== undefined) return;
  try {
    await importer('@tensorflow/tfjs-layers');
  } catch (error) {
    throw new Error(`tfjs has no gradient functions: @tensorflow/tfjs-layers, which registers them, could not be loaded (${describeLoadError(error, '@tensorflow/tfjs-layers')})`);
  }
  if (tf.getGradient('Add') === undefined) throw new Error('internal: @tensorflow/tfjs-layers loaded but registered no gradient functions');
}

const PACKAGES: Record<TfjsBackendName, string> = {
  'tfjs-node-gpu': '@tensorflow/tfjs-node-gpu',
  'tfjs-node': '@tensorflow/tfjs-node',
  wasm: '@tensorflow/tfjs-backend-wasm',
  cpu: '@tensorflow/tfjs-backend-cpu',
};

type Loader = (importer: ModuleImporter) => Promise<{ tf: Tf; tfName: string; device: string }>;

const LOADERS: Record<TfjsBackendName, Loader> = {
  'tfjs-node-gpu': (importer) => loadNode(importer, PACKAGES['tfjs-node-gpu'], 'GPU'),
  'tfjs-node': (importer) => loadNode(importer, PACKAGES['tfjs-node'], 'CPU'),
  wasm: loadWasm,
  cpu: async (importer) => {
    await importer(PACKAGES.cpu);
    await activate(tfcore, 'cpu');
    return { tf: tfcore, tfName: 'cpu', device: 'CPU (tfjs cpu, plain JavaScript)' };
  },
};

/**
 * tfjs-node registers the `tensorflow` backend (libtensorflow) in the tfjs it depends on; when npm
 * did not dedupe that tfjs with ours, ops must come from the package's own namespace, which
 * re-exports the whole tfjs API.
 */
async function loadNode(importer: ModuleImporter, specifier: string, kind: 'CPU' | 'GPU'): Promise<{ tf: Tf; tfName: string; device: string }> {
  const module = (await importer(specifier)) as Partial<Tf> & { default?: Partial<Tf> };
  const tf = (typeof module.setBackend === 'function' ? module : module.default) as Tf | undefined;
  if (tf === undefined || typeof tf.setBackend !== 'function') throw new Error(`${specifier} does not export the tfjs API`);
  await activate(tf, 'tensorflow');
  return { tf, tfName: 'tensorflow', device: `${kind} (${specifier.slice('@tensorflow/'.length)}, libtensorflow)` };
}

async function loadWasm(importer: ModuleImporter): Promise<{ tf: Tf; tfName: string; device: string }> {
  const restoreListeners = keepProcessListeners();
  try {
    return await initWasm(importer);
  } finally {
    restoreListeners();
  }
}

async function initWasm(importer: ModuleImporter): Promise<{ tf: Tf; tfName: string; device: string }> {
  const wasm = (await importer(PACKAGES.wasm)) as typeof import('@tensorflow/tfjs-backend-wasm');
  // Under Node the .wasm binaries are read from the file system. Without a path, Emscripten reads
  // them beside its glue code (dist/wasm-out/), which works until the package is bundled; name
  // the package's dist/ folder explicitly, as a plain path with a trailing slash (a file: URL
  // works too).
  wasm.setWasmPaths(wasmDistFolder());
  await activate(tfcore, 'wasm');
  const simd = (await tfcore.env().getAsync('WASM_HAS_SIMD_SUPPORT')) === true;
  const threads = wasm.getThreadsCount();
  return { tf: tfcore, tfName: 'wasm', device: `CPU (tfjs wasm, ${threads} thread${threads === 1 ? '' : 's'}${simd ? ', SIMD' : ''})` };
}

/**
 * The Emscripten runtime of the wasm backend adds process-wide `uncaughtException` and
 * `unhandledRejection` handlers that rethrow (so an unhandled rejection kills the process, with
 * the whole minified module printed as context). Returns a function that removes the handlers
 * added since this call, leaving Node's own behaviour in place.
 */
function keepProcessListeners(): () => void {
  const events = ['uncaughtException', 'unhandledRejection'];
  const listeners = (event: string) => process.listeners(event as 'uncaughtException') as ((...args: unknown[]) => void)[];
  const before = events.map((event) => new Set(listeners(event)));
  return () =>
    events.forEach((event, i) => {
      for (const listener of listeners(event)) if (!before[i]!.has(listener)) process.removeListener(event, listener);
    });
}

export function wasmDistFolder(): string {
  const require = createRequire(import.meta.url);
  return join(dirname(require.resolve('@tensorflow/tfjs-backend-wasm/package.json')), 'dist') + '/';
}

/** Makes `backend` tfjs's current backend (tfjs has one at a time, process-wide). */
export async function activate(tf: Tf, backend: string): Promise<void> {
  // setBackend answers false (and logs) when the backend's initialisation fails.
  if (!(await tf.setBackend(backend))) throw new Error(`tfjs could not initialise its \`${backend}\` backend`);
  await tf.ready();
}

/** A short reason: "not installed" when `specifier` itself is missing, else the error's first line. */
export function describeLoadError(error: unknown, specifier: string): string {
  const code = (error as { code?: unknown } | null)?.code;
  const message = error instanceof Error ? error.message : String(error);
  // A package that is there but misses one of its own dependencies is not "not installed".
  if ((code === 'ERR_MODULE_NOT_FOUND' || code === 'MODULE_NOT_FOUND') && message.includes(`'${specifier}'`)) return 'not installed';
  return message.split('\n')[0] ?? message;
}

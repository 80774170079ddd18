// The CUDA addon's build and run-time loading, on machines without a GPU or cuBLASLt (CI, dev):
// the addon is built at install wherever nvcc exists, loads, reports its build, and turns a missing
// driver, GPU or library into an Error that says what is missing. cuBLASLt and NCCL lookup is
// exercised with stand-in libraries compiled here (they export the right names and nothing else).

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { addonPath, cudaAvailability, CudaUnavailableError, findNvcc, loadCudaAddon, packageRoot } from '../runtime/engine/cuda/load-addon.js';

const root = packageRoot();
const nvcc = findNvcc();
const noNvcc = nvcc ? false : 'nvcc not found (NVCC, CUDA_HOME/bin, PATH, /usr/local/cuda/bin): the CUDA addon is not built on this machine';
const hasCc = spawnSync('cc', ['--version']).status === 0;
const noLibraryTests = noNvcc || (hasCc ? false : 'no C compiler (`cc`) to build the stand-in libraries');
const scratch = mkdtempSync(join(tmpdir(), 'wndc-cuda-build-'));
after(() => rmSync(scratch, { recursive: true, force: true }));

/** The names of an X-macro function list in a native header, e.g. WNDC_CUBLASLT_FUNCTIONS. */
function declaredFunctions(header: string, list: string): string[] {
  const text = readFileSync(join(root, 'native', 'src', header), 'utf8');
  const start = text.indexOf(`#define ${list}(X)`);
  assert.ok(start >= 0, `${list} in ${header}`);
  const lines: string[] = [];
  for (const line of text.slice(start).split('\n')) {
    lines.push(line);
    if (!line.trimEnd().endsWith('\\')) break;
  }
  return [...lines.join('\n').matchAll(/X\((\w+)\)/g)].map((m) => m[1]!);
}

const CUBLASLT_FUNCTIONS = declaredFunctions('cublaslt_api.h', 'WNDC_CUBLASLT_FUNCTIONS');
const NCCL_FUNCTIONS = declaredFunctions('nccl_api.h', 'WNDC_NCCL_FUNCTIONS');

/** A shared library exporting `functions` (all return 0, except cublasLtGetVersion which returns `version`). */
function standIn(file: string, functions: string[], version = 0): string {
  const source = `${file}.c`;
  const body = functions
    .map((name) => (name === 'cublasLtGetVersion' ? `unsigned long ${name}(void) { return ${version}UL; }` : `int ${name}(void) { return 0; }`))
    .join('\n');
  writeFileSync(source, `${body}\n`);
  const result = spawnSync('cc', ['-shared', '-fPIC', '-o', file, source], { encoding: 'utf8' });
  assert.equal(result.status, 0, result.stderr);
  return file;
}

function folder(name: string): string {
  const path = join(scratch, name);
  mkdirSync(path, { recursive: true });
  return path;
}

type LoadOutcome = { result: { cublasLt: string; nccl: string | null } } | { error: string };

/** addon.loadLibraries in a fresh process (the addon keeps what it loaded), with only `env` set. */
function loadLibraries(env: Record<string, string>, nccl: boolean): LoadOutcome {
  const script = `
    const addon = require(process.argv[1]);
    try { process.stdout.write(JSON.stringify({ result: addon.loadLibraries({ nccl: process.argv[2] === 'nccl' }) })); }
    catch (e) { process.stdout.write(JSON.stringify({ error: e.message })); }`;
  const child = spawnSync(process.execPath, ['-e', script, addonPath(), nccl ? 'nccl' : 'no'], {
    encoding: 'utf8',
    env: { PATH: process.env.PATH ?? '', ...env },
  });
  assert.equal(child.status, 0, `the child process failed (a crash, not an exception):\n${child.stderr}`);
  return JSON.parse(child.stdout) as LoadOutcome;
}

/** The "  <place>: <why>" lines of a load error, as [place, why]. */
function attempts(message: string): [string, string][] {
  return message
    .split('\n')
    .filter((line) => line.startsWith('  '))
    .map((line) => {
      const at = line.indexOf(': ');
      return [line.slice(2, at), line.slice(at + 2)];
    });
}

const NOT_FOUND = 'cannot open shared object file: No such file or directory';

test('the addon is built at install, loads and reports its build', { skip: noNvcc }, () => {
  const addon = loadCudaAddon();
  const release = /release (\d+)\.(\d+)/.exec(spawnSync(nvcc!, ['--version'], { encoding: 'utf8' }).stdout)!;
  const packageVersion = (JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string }).version;
  const { architectures, ...build } = addon.buildInfo();
  assert.deepEqual(architectures, ['sm_80', 'sm_90', 'compute_90'], `the addon is built for ${architectures.join(', ')} only (a quick \`--arch\` build?): run \`npm run build:cuda\``);
  assert.deepEqual(build, { version: packageVersion, cudaRuntime: Number(release[1]) * 1000 + Number(release[2]) * 10 });
  const info = JSON.parse(readFileSync(join(root, 'build', 'wndc_cuda.json'), 'utf8')) as { version: string; architectures: string[]; napiVersion: number };
  assert.equal(info.version, packageVersion);
  assert.deepEqual(info.architectures, ['sm_80', 'sm_90', 'compute_90']);
  assert.equal(info.napiVersion, 8);
  assert.equal(loadCudaAddon(), addon, 'loaded once');
});

test('devices() without a GPU throws an Error naming the missing driver or device', { skip: noNvcc }, (t) => {
  const addon = loadCudaAddon();
  let devices;
  try {
    devices = addon.devices();
  } catch (e) {
    assert.ok(e instanceof Error);
    assert.match(e.message, /^devices: (no NVIDIA driver is installed, or it is older than CUDA \d+\.\d+ needs \(check `nvidia-smi`\) \(cudaGetDeviceCount: cudaErrorInsufficientDriver: |the NVIDIA driver sees no CUDA-capable GPU \(check `nvidia-smi` and CUDA_VISIBLE_DEVICES\) \(cudaGetDeviceCount: cudaErrorNoDevice: )/);
    const availability = cudaAvailability();
    assert.deepEqual(availability, { ok: false, reason: `no usable GPU: ${e.message}` });
    return;
  }
  t.skip(`this machine has a GPU (${devices.map((d) => d.name).join(', ')})`);
});

test('loadLibraries without cuBLASLt throws naming every file it tried, in search order', { skip: noNvcc }, (t) => {
  const [a, b, c] = [folder('empty-a'), folder('empty-b'), folder('empty-c')];
  const outcome = loadLibraries({ CUDA_LIB_DIRS: `${a}:${b}/`, LD_LIBRARY_PATH: `${c}:${a}` }, false);
  if ('result' in outcome) return t.skip(`cuBLASLt is installed here (${outcome.result.cublasLt})`);
  const sonames = ['libcublasLt.so.13', 'libcublasLt.so.12', 'libcublasLt.so'];
  const inFolders = (...folders: string[]) => folders.flatMap((f) => sonames.map((s) => `${f}/${s}`));
  assert.deepEqual(
    attempts(outcome.error).map(([place]) => place),
    [
      ...inFolders(a, b, c),
      ...sonames.map((s) => `${s} (system loader)`),
      ...inFolders('/usr/local/cuda/lib64', '/usr/local/cuda/targets/x86_64-linux/lib', '/usr/lib/x86_64-linux-gnu'),
    ],
  );
  assert.deepEqual(attempts(outcome.error).slice(0, 3).map(([, why]) => why), [NOT_FOUND, NOT_FOUND, NOT_FOUND]);
  const lines = outcome.error.split('\n');
  assert.equal(lines[0], 'loadLibraries: cannot load cuBLASLt (libcublasLt.so.13, libcublasLt.so.12 or libcublasLt.so); tried:');
  assert.equal(
    lines.at(-1),
    'fix: set CUDA_LIB_DIRS to the folder that holds libcublasLt.so.13 (folders separated by `:`; the CUDA toolkit keeps it in /usr/local/cuda/lib64, PyTorch\'s pip install in site-packages/nvidia/cublas/lib), or WNDC_CUBLASLT to the library file itself',
  );
});

test('loadLibraries names the functions a cuBLASLt stand-in lacks', { skip: noLibraryTests }, () => {
  const file = standIn(join(folder('partial'), 'libcublasLt.so.12'), ['cublasLtGetVersion', 'cublasLtMatmul'], 120000);
  const outcome = loadLibraries({ WNDC_CUBLASLT: file }, false);
  const missing = CUBLASLT_FUNCTIONS.filter((name) => name !== 'cublasLtGetVersion' && name !== 'cublasLtMatmul');
  assert.deepEqual(outcome, {
    error:
      'loadLibraries: cannot load cuBLASLt (libcublasLt.so.13, libcublasLt.so.12 or libcublasLt.so); tried:\n' +
      `  WNDC_CUBLASLT=${file}: loaded, but it lacks ${missing.join(', ')}\n` +
      'fix: point WNDC_CUBLASLT at a usable cuBLASLt library, or unset it to search CUDA_LIB_DIRS, LD_LIBRARY_PATH and the standard folders',
  });
});

test('loadLibraries rejects a cuBLASLt older than 12.0', { skip: noLibraryTests }, () => {
  const file = standIn(join(folder('old'), 'libcublasLt.so'), CUBLASLT_FUNCTIONS, 110802);
  const outcome = loadLibraries({ WNDC_CUBLASLT: file }, false);
  assert.ok('error' in outcome);
  assert.deepEqual(attempts(outcome.error), [[`WNDC_CUBLASLT=${file}`, 'cuBLASLt 11.8.2 is too old (wndc needs 12.0.0 or newer)']]);
});

test('loadLibraries loads cuBLASLt from CUDA_LIB_DIRS, and NCCL only when asked', { skip: noLibraryTests }, () => {
  const dir = folder('complete');
  const cublasLt = standIn(join(dir, 'libcublasLt.so.13'), CUBLASLT_FUNCTIONS, 130100);
  const nccl = standIn(join(dir, 'libnccl.so.2'), NCCL_FUNCTIONS);
  const env = { CUDA_LIB_DIRS: `${folder('empty-a')}:${dir}` };
  assert.deepEqual(loadLibraries(env, false), { result: { cublasLt, nccl: null } });
  assert.deepEqual(loadLibraries(env, true), { result: { cublasLt, nccl } });
});

test('loadLibraries with NCCL asked for but not found says where it looked', { skip: noLibraryTests }, () => {
  const cublasLt = standIn(join(folder('lt-only'), 'libcublasLt.so.12'), CUBLASLT_FUNCTIONS, 120403);
  const missing = join(scratch, 'nowhere', 'libnccl.so.2');
  assert.deepEqual(loadLibraries({ WNDC_CUBLASLT: cublasLt, WNDC_NCCL: missing }, true), {
    error:
      'loadLibraries: cannot load NCCL (libnccl.so.2 or libnccl.so); tried:\n' +
      `  WNDC_NCCL=${missing}: ${NOT_FOUND}\n` +
      'fix: point WNDC_NCCL at a usable NCCL library, or unset it to search CUDA_LIB_DIRS, LD_LIBRARY_PATH and the standard folders',
  });
});

test('loadCudaAddon says how to build a missing addon', { skip: noNvcc }, () => {
  const absent = join(scratch, 'absent', 'wndc_cuda.node');
  assert.throws(() => loadCudaAddon(absent), (e: unknown) => {
    assert.ok(e instanceof CudaUnavailableError);
    assert.equal(e.message, `the CUDA engine's addon is not built (no ${absent}); nvcc is at ${nvcc}: run \`npm run build:cuda\``);
    return true;
  });
});

test('loadCudaAddon tells an addon built for another platform from a damaged one', { skip: noLibraryTests }, () => {
  const dir = folder('foreign');
  const library = readFileSync(standIn(join(dir, 'library.so'), ['wndc_nothing']));
  library[4] = 1; // EI_CLASS: a 32-bit ELF
  const foreign = join(dir, 'wndc_cuda.node');
  writeFileSync(foreign, library);
  assert.throws(() => loadCudaAddon(foreign), {
    name: 'CudaUnavailableError',
    message: `${foreign} was built for another Node.js or platform: rebuild it with \`npm run build:cuda\` (wrong ELF class: ELFCLASS32)`,
  });
  const damaged = join(folder('damaged'), 'wndc_cuda.node');
  writeFileSync(damaged, 'not an ELF file');
  assert.throws(() => loadCudaAddon(damaged), {
    name: 'CudaUnavailableError',
    message: `cannot load ${damaged}: file too short; rebuild it with \`npm run build:cuda\``,
  });
});

// scripts/build-native.mjs: where it finds NCCL's device headers, which decide whether the addon's
// nccl_peer.cu is built with NCCL 2.28's device API (the peers' rows of data parallelism) or says
// why not. Plain file lookups: no nvcc needed.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { REPO } from './support/paths.js';

const scratch = mkdtempSync(join(tmpdir(), 'wndc-build-native-'));
after(() => rmSync(scratch, { recursive: true, force: true }));

/** A folder holding the named (empty) headers. */
function headers(name: string, files: string[]): string {
  const folder = join(scratch, name);
  mkdirSync(folder, { recursive: true });
  for (const file of files) writeFileSync(join(folder, file), '');
  return folder;
}

/** findNcclDeviceHeaders(env) in a child process (importing the script does not build). */
function find(env: Record<string, string>): string | null {
  const script = `import(${JSON.stringify(join(REPO, 'scripts', 'build-native.mjs'))}).then((m) => process.stdout.write(JSON.stringify(m.findNcclDeviceHeaders(JSON.parse(process.argv[1])) ?? null)))`;
  const child = spawnSync(process.execPath, ['-e', script, JSON.stringify(env)], { encoding: 'utf8' });
  assert.equal(child.status, 0, child.stderr);
  return JSON.parse(child.stdout) as string | null;
}

// What the machine itself has in the standard folders (the last places searched).
const system = ['/usr/local/cuda/include', '/usr/include'].find((f) => existsSync(join(f, 'nccl_device.h')) && existsSync(join(f, 'nccl.h'))) ?? null;

test('NCCL device headers: the first folder of CUDA_INCLUDE_DIRS with both nccl_device.h and nccl.h', () => {
  const cu = headers('cu13', ['cuda_runtime.h']);
  const half = headers('device-only', ['nccl_device.h']);
  const nccl = headers('nccl', ['nccl.h', 'nccl_device.h']);
  assert.equal(find({ CUDA_INCLUDE_DIRS: [cu, half, nccl].join(':') }), nccl);
});

test('NCCL device headers: NCCL_INCLUDE_DIR comes first; nothing found anywhere is undefined (no device API)', () => {
  const mine = headers('mine', ['nccl.h', 'nccl_device.h']);
  const other = headers('other', ['nccl.h', 'nccl_device.h']);
  assert.equal(find({ NCCL_INCLUDE_DIR: mine, CUDA_INCLUDE_DIRS: other }), mine);
  assert.equal(find({ CUDA_INCLUDE_DIRS: headers('old-nccl', ['nccl.h']) }), system);
});

// Data-parallel training on the CPU (docs/distributed.md): two ranks under Open MPI against one
// process. Skips, saying why, where mpirun or the MPI addon is missing.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { childArguments, describeFailure } from '../cli/launch.js';
import { runCli } from '../cli/main.js';
import { loadLatestCheckpoint } from '../runtime/checkpoint.js';
import { CollectiveError } from '../runtime/distributed/collective.js';
import { rendezvous } from '../runtime/distributed/rendezvous.js';
import { launchEnvironment } from '../runtime/distributed/world.js';
import { BatchReader } from '../runtime/data/batches.js';
import { openShards } from '../runtime/data/shards.js';
import { mpiAddonPath } from '../runtime/distributed/mpi.js';
import { withEnv } from './support/env.js';
import { REPO } from './support/paths.js';

process.env.WNDC_CACHE_DIR = mkdtempSync(join(tmpdir(), 'wndc-dist-cache-'));

const mpirun = spawnSync('mpirun', ['--version'], { encoding: 'utf8' }).status === 0;
const skip = !mpirun ? 'mpirun (Open MPI) is not installed: apt-get install openmpi-bin' : !existsSync(mpiAddonPath()) ? 'the MPI addon is not built: npm run build:mpi' : false;

async function wndc(args: string[], env: Record<string, string> = {}): Promise<{ code: number; stdout: string; stderr: string; seconds: number }> {
  let stdout = '';
  let stderr = '';
  const started = performance.now();
  const code = await withEnv(env, () => runCli(args, { stdout: (s) => (stdout += s), stderr: (s) => (stderr += s), cwd: REPO, color: false }));
  return { code, stdout, stderr, seconds: (performance.now() - started) / 1000 };
}

// The quick start (dropout 0.1, FTRL and Adagrad, a crossed table sent sparsely, small ones densely).
const SPEC = 'examples/quickstart/quickstart.wnd';
const COMMON = ['--synthetic_rows', '4000', '--global_batch_size', '256', '--engine', 'tfjs-wasm', '--rank-timeout', '20'];

/**
 * fp32 tolerance: both runs round every operation to float32 but sum in different orders (each
 * rank sums its half of the batch, then the halves are added; weights local/global multiply once
 * more), a few units of 6e-8 per step for values of order 1; after 14 steps the parameters agree to
 * about 1e-7 (measured ~3e-8 at most). A missing rank's gradient, a wrong weight or an unsliced
 * dropout mask moves them by 1e-3 or more.
 */
function assertClose(a: Float32Array, b: Float32Array, name: string): void {
  assert.equal(a.length, b.length, name);
  for (let i = 0; i < a.length; i++) {
    const tolerance = 1e-5 * Math.max(1, Math.abs(b[i]!));
    assert.ok(Math.abs(a[i]! - b[i]!) <= tolerance, `${name}[${i}]: ${a[i]} vs ${b[i]}`);
  }
}

function tensors(dir: string): Map<string, Float32Array> {
  const ckpt = loadLatestCheckpoint(dir);
  assert.ok(ckpt !== undefined, `no checkpoint in ${dir}`);
  return new Map(ckpt.tensors.map((t) => [t.name, t.data]));
}

function tmpFiles(dir: string): string[] {
  return readdirSync(dir).filter((n) => n.endsWith('.tmp'));
}

test('2 ranks with global batch B give the weights and exact metrics of 1 process with batch B', { skip }, async () => {
  const single = mkdtempSync(join(tmpdir(), 'wndc-dist-1-'));
  const double = mkdtempSync(join(tmpdir(), 'wndc-dist-2-'));
  const one = await wndc(['run', SPEC, '--model_dir', single, '--epochs', '1', ...COMMON]);
  assert.equal(one.code, 0, one.stderr);
  const signalListeners = () => (['SIGINT', 'SIGTERM', 'SIGHUP'] as const).map((s) => process.listenerCount(s));
  const listening = signalListeners();
  const two = await wndc(['run', SPEC, '--model_dir', double, '--epochs', '1', '--workers', '2', ...COMMON]);
  assert.equal(two.code, 0, two.stderr);
  assert.match(two.stderr, / x 2 ranks \(mpi\)/);
  assert.deepEqual(signalListeners(), listening, 'the launcher removed its signal handlers');
  const a = tensors(single);
  const b = tensors(double);
  assert.deepEqual([...b.keys()], [...a.keys()]);
  for (const [name, data] of a) assertClose(b.get(name)!, data, name);
  assert.equal(JSON.parse(two.stdout).steps, 14);

  // Distributed evaluation of one checkpoint: exactly the single-process metrics.
  const evalOne = await wndc(['run', SPEC, '--model_dir', double, '--evaluate', ...COMMON]);
  const evalTwo = await wndc(['run', SPEC, '--model_dir', double, '--evaluate', '--workers', '2', ...COMMON]);
  assert.equal(evalTwo.code, 0, evalTwo.stderr);
  assert.deepEqual(JSON.parse(evalTwo.stdout), JSON.parse(evalOne.stdout));
});

test('a run of 2 ranks resumes on 1 (and the reverse) with the weights of an uninterrupted run', { skip }, async () => {
  const straight = mkdtempSync(join(tmpdir(), 'wndc-dist-straight-'));
  const mixed = mkdtempSync(join(tmpdir(), 'wndc-dist-mixed-'));
  assert.equal((await wndc(['run', SPEC, '--model_dir', straight, '--epochs', '2', ...COMMON])).code, 0);
  const first = await wndc(['run', SPEC, '--model_dir', mixed, '--epochs', '1', '--workers', '2', ...COMMON]);
  assert.equal(first.code, 0, first.stderr);
  const second = await wndc(['run', SPEC, '--model_dir', mixed, '--epochs', '2', ...COMMON]);
  assert.equal(second.code, 0, second.stderr);
  assert.match(second.stderr, /resumed from step 14/);
  const a = tensors(straight);
  for (const [name, data] of tensors(mixed)) assertClose(data, a.get(name)!, name);
});

test('MPI collective: all-reduce, all-gather, broadcast of the model over another seed, exact metric merge', { skip }, () => {
  const r = spawnSync('mpirun', ['-np', '2', '--oversubscribe', '--bind-to', 'none', ...(process.getuid?.() === 0 ? ['--allow-run-as-root'] : []), process.execPath, '--import', 'tsx', 'test/support/distributed-rank.ts'], { cwd: REPO, encoding: 'utf8', timeout: 60_000 });
  assert.equal(r.status, 0, r.stderr);
  assert.deepEqual(JSON.parse(r.stdout), {
    size: 2,
    sum32: [3, 0.5],
    sum64: [3e-17, 1],
    gathered: [[10], [11, 11]],
    text: 'from rank 0',
    position: { step: 42 },
    statesEqual: true,
    rows: 8,
    merged: [0.71875, 0.628883332846471],
    single: [0.71875, 0.628883332846471],
  });
});

test('a rank that dies ends the job at once, naming it, with nothing half-written', { skip }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'wndc-dist-die-'));
  const r = await wndc(['run', SPEC, '--model_dir', dir, '--epochs', '1', '--workers', '2', ...COMMON], { WNDC_FAULT: '1:3:exit' });
  assert.equal(r.code, 3);
  assert.match(r.stderr, /wndc: rank 1 \(pid \d+ on [^)]+\) died .*; the job was stopped\n/);
  assert.ok(r.seconds < 20, `took ${r.seconds} s`);
  assert.deepEqual(tmpFiles(dir), []);
  assert.equal(loadLatestCheckpoint(dir), undefined);
});

test('a rank that hangs ends the job within --rank-timeout, naming it', { skip }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'wndc-dist-hang-'));
  const args = ['run', SPEC, '--model_dir', dir, '--epochs', '1', '--workers', '2', ...COMMON, '--rank-timeout', '4'];
  const r = await wndc(args, { WNDC_FAULT: '1:3:hang' });
  assert.equal(r.code, 3);
  assert.match(r.stderr, /wndc: rank 1 \(pid \d+ on [^)]+\) stopped responding: no heartbeat for 4 s .*; the job was stopped\n/);
  assert.ok(r.seconds < 30, `took ${r.seconds} s`);
  assert.deepEqual(tmpFiles(dir), []);
});

test('a failed rank logs the message alone where it explains itself (collectives, GPU failures), the stack for an internal error', () => {
  assert.equal(describeFailure(new CollectiveError('rank 1: collective #2 (barrier) did not finish within 3 s')), 'rank 1: collective #2 (barrier) did not finish within 3 s');
  const gpu = Object.assign(new Error('modelSynchronize: rank 0 of 2 waited 5 s for training step on the GPU: the other rank (rank 1) died or hangs'), { code: 'WNDC_CUDA' });
  assert.equal(describeFailure(gpu), gpu.message);
  const internal = new TypeError('x is undefined');
  assert.equal(describeFailure(internal), internal.stack);
  assert.match(describeFailure(internal), /\n +at /);
  assert.equal(describeFailure('a string'), 'a string');
});

test('each rank reads its share of every global batch, the shares together the single-rank batch', async () => {
  const data = join(process.env.WNDC_CACHE_DIR!, 'shards');
  const made = await wndc(['synth', SPEC, '--rows', '1000', '--out', data, '--format', 'shards']);
  assert.equal(made.code, 0, made.stderr);
  const shards = openShards(join(data, 'train'));
  const labels = (rank: number, worldSize: number) => {
    const reader = new BatchReader(shards, { batchSize: 128, seed: 3, rank, worldSize });
    return [...reader.batches(1)].map((b) => Array.from(b.group.subarray(0, b.size)));
  };
  const whole = labels(0, 1);
  const [r0, r1] = [labels(0, 2), labels(1, 2)];
  assert.equal(r0.length, whole.length);
  whole.forEach((batch, i) => assert.deepEqual([...r0[i]!, ...r1[i]!], batch));
});

test('the environment rendezvous gives every rank every payload, in rank order', async () => {
  const port = 20000 + Math.floor(Math.random() * 20000);
  const payload = (r: number) => new TextEncoder().encode(`id-${r}`);
  const results = await Promise.all([2, 0, 1].map((rank) => rendezvous({ rank, size: 3, host: '127.0.0.1', port, payload: payload(rank), timeoutMs: 10_000 })));
  for (const all of results) assert.deepEqual(all.map((p) => new TextDecoder().decode(p)), ['id-0', 'id-1', 'id-2']);
  await assert.rejects(rendezvous({ rank: 0, size: 2, host: '127.0.0.1', port: port + 1, payload: payload(0), timeoutMs: 300 }), /rank 1 did not reach the rendezvous at 127\.0\.0\.1:\d+ within 0\.3 s/);
});

test('launch modes: the environment says which rank this is; mpirun without --hvd is refused', () => {
  assert.deepEqual(launchEnvironment(false, {}), { mode: 'single' });
  assert.deepEqual(launchEnvironment(true, { OMPI_COMM_WORLD_RANK: '1', OMPI_COMM_WORLD_SIZE: '4', OMPI_COMM_WORLD_LOCAL_RANK: '1' }), { mode: 'mpi', rank: 1, size: 4, localRank: 1, source: 'Open MPI' });
  assert.deepEqual(launchEnvironment(true, { PMI_RANK: '2', PMI_SIZE: '3' }), { mode: 'mpi', rank: 2, size: 3, localRank: 2, source: 'PMI' });
  assert.deepEqual(launchEnvironment(false, { WNDC_RANK: '1', WNDC_WORLD_SIZE: '2', WNDC_MASTER_ADDR: 'h0', WNDC_MASTER_PORT: '29500' }), { mode: 'env', rank: 1, size: 2, localRank: 1, masterAddr: 'h0', masterPort: 29500 });
  assert.throws(() => launchEnvironment(false, { OMPI_COMM_WORLD_RANK: '0', OMPI_COMM_WORLD_SIZE: '2' }), /this process is rank 0 of 2 started by mpirun: add --hvd/);
  assert.throws(() => launchEnvironment(true, {}), /--hvd reads the rank from the MPI launcher/);
  assert.throws(() => launchEnvironment(false, { WNDC_RANK: '2', WNDC_WORLD_SIZE: '2', WNDC_MASTER_ADDR: 'h', WNDC_MASTER_PORT: '1' }), /WNDC_RANK=2 is not below WNDC_WORLD_SIZE=2/);
  assert.deepEqual(childArguments(['run', 's.wnd', '--workers', '2', '--epochs', '1', '--gpus=4']), ['run', 's.wnd', '--epochs', '1']);
});

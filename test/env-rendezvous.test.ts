// Ranks a scheduler starts itself (docs/distributed.md, "Launch modes"): WNDC_RANK, WNDC_WORLD_SIZE,
// WNDC_MASTER_ADDR, WNDC_MASTER_PORT, WNDC_LOCAL_RANK. GPU ranks run their host-side collectives
// over NCCL (runtime/distributed/nccl.ts); CPU ranks are told to use MPI.
//
// Here (CI, no GPU): the CLI's messages, and NcclCollective's rendezvous protocol and operation
// queue over a fake addon. On a machine with two GPUs (skipped elsewhere, saying why):
//   node --import tsx --test test/env-rendezvous.test.ts
// runs the NCCL operations across two processes, the timeout, two env-started ranks training the
// quick start against one GPU, and one of them dying inside training.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { freePort } from '../cli/launch.js';
import { loadLatestCheckpoint } from '../runtime/checkpoint.js';
import { CollectiveError } from '../runtime/distributed/collective.js';
import type { OperationEvent } from '../runtime/distributed/mpi.js';
import { NcclCollective, NcclUnavailableError } from '../runtime/distributed/nccl.js';
import type { NativeAddon, NativeDevice, NativeHostCollective } from '../runtime/engine/cuda/addon-api.js';
import { cudaAvailability } from '../runtime/engine/cuda/load-addon.js';
import { FakeAddonBase } from './support/fake-addon.js';
import { REPO } from './support/paths.js';

const SPEC = 'examples/quickstart/quickstart.wnd';
const CACHE = mkdtempSync(join(tmpdir(), 'wndc-env-cache-'));


interface Exit {
  code: number | null;
  stdout: string;
  stderr: string;
  seconds: number;
}

function rankEnv(rank: number, size: number, port: number): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, WNDC_CACHE_DIR: CACHE, WNDC_RANK: String(rank), WNDC_WORLD_SIZE: String(size), WNDC_MASTER_ADDR: '127.0.0.1', WNDC_MASTER_PORT: String(port), WNDC_LOCAL_RANK: String(rank) };
  delete env.WNDC_CONTROL;
  return env;
}

function start(args: string[], env: NodeJS.ProcessEnv, limitMs = 240_000): { child: ChildProcess; done: Promise<Exit> } {
  const started = performance.now();
  const child = spawn(process.execPath, ['--import', 'tsx', ...args], { cwd: REPO, env });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d) => (stdout += d));
  child.stderr!.on('data', (d) => (stderr += d));
  const timer = setTimeout(() => child.kill('SIGKILL'), limitMs);
  const done = new Promise<Exit>((resolve) =>
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr, seconds: (performance.now() - started) / 1000 });
    }),
  );
  return { child, done };
}

/** `wndc ARGS` as ranks 0 .. size - 1 of an environment-rendezvous job. */
async function ranks(size: number, args: string[]): Promise<Exit[]> {
  const port = await freePort();
  return Promise.all(Array.from({ length: size }, (_, rank) => start(['cli/wndc.ts', ...args], rankEnv(rank, size, port)).done));
}

// --- CPU: the messages (CI). ---

const CPU_MESSAGE = 'ranks started through WNDC_RANK/WNDC_MASTER_ADDR need `--engine cuda` (their host-side collectives run over NCCL); CPU ranks all-reduce with MPI: start them with `mpirun -np N wndc run ... --hvd` or `--workers N`';

test('CPU ranks started by the environment are told to use MPI, with exit code 3 and nothing in model_dir', async () => {
  for (const engine of [['--engine', 'tfjs'], []]) {
    const dir = mkdtempSync(join(tmpdir(), 'wndc-env-cpu-'));
    const [r0, r1] = await ranks(2, ['run', SPEC, '--model_dir', join(dir, 'model'), '--synthetic_rows', '500', '--rank-timeout', '20', ...engine]);
    assert.equal(r0!.code, 3, r0!.stderr);
    assert.equal(r1!.code, 3, r1!.stderr);
    assert.equal(r0!.stderr, `wndc: ${CPU_MESSAGE}\n`);
    assert.equal(r1!.stderr, `[rank 1] wndc: ${CPU_MESSAGE}\n`);
    assert.equal(r0!.stdout + r1!.stdout, '');
    assert.deepEqual(readdirSync(dir), []);
  }
});

test('GPU ranks where the CUDA engine cannot run: one line each saying what is missing, no stack, exit code 3', async (t) => {
  const availability = cudaAvailability();
  if (availability.ok) return t.skip(`this machine has a GPU (${availability.devices[0]?.name}): the two-GPU tests below cover it`);
  const dir = mkdtempSync(join(tmpdir(), 'wndc-env-nogpu-'));
  const [r0, r1] = await ranks(2, ['run', SPEC, '--model_dir', join(dir, 'model'), '--engine', 'cuda', '--rank-timeout', '20']);
  // Both fail before NCCL; they still meet at the rendezvous, so neither waits for the timeout.
  for (const [rank, r] of [r0!, r1!].entries()) {
    assert.equal(r.code, 3, r.stderr);
    assert.match(r.stderr, new RegExp(`^${rank === 0 ? '' : '\\[rank 1\\] '}wndc: --engine cuda cannot run here: (no usable GPU: |the CUDA engine's addon is not built|cannot load |\\S+ was built for another)[^\\n]*\\n$`));
    assert.doesNotMatch(r.stderr, /\n\s+at /);
    assert.ok(r.seconds < 15, `rank ${rank} took ${r.seconds} s`);
  }
  assert.deepEqual(readdirSync(dir), []);
});

// --- NcclCollective over a fake addon: the rendezvous protocol and the operation queue (CI). ---

const DEVICES: NativeDevice[] = [0, 1].map((index) => ({ index, name: 'Fake GPU', computeCapability: [9, 0], totalMemory: 1 << 30 }));

/** The ranks' side of every fake operation: the n-th call of each rank meets the n-th call of the others. */
class FakeHub {
  private readonly calls = new Map<number, { inputs: Uint8Array[]; settle: ((inputs: Uint8Array[]) => void)[] }>();
  readonly ids: Uint8Array[] = [];
  constructor(readonly size: number) {}

  meet(seq: number, rank: number, input: Uint8Array): Promise<Uint8Array[]> {
    let call = this.calls.get(seq);
    if (call === undefined) this.calls.set(seq, (call = { inputs: new Array<Uint8Array>(this.size), settle: [] }));
    call.inputs[rank] = input.slice();
    return new Promise((resolve) => {
      call.settle.push(resolve);
      if (call.settle.length === this.size) for (const settle of call.settle) settle(call.inputs);
    });
  }
}

class FakeHostCollective implements NativeHostCollective {
  private seq = 0;
  destroyed = false;
  constructor(
    private readonly hub: FakeHub,
    readonly rank: number,
    readonly size: number,
    readonly device: number,
    private readonly failAt: number,
  ) {}

  private async meet(input: Uint8Array): Promise<Uint8Array[]> {
    const seq = ++this.seq;
    if (seq === this.failAt) throw Object.assign(new Error(`allReduceSum: ncclAllReduce of an all-reduce of 2 float32 (rank ${this.rank} of ${this.size}) did not finish within 1 s`), { code: 'WNDC_CUDA' });
    return this.hub.meet(seq, this.rank, input);
  }

  async allReduceSum(buffer: Float32Array | Float64Array): Promise<void> {
    const inputs = await this.meet(new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.byteLength));
    const Type = buffer instanceof Float32Array ? Float32Array : Float64Array;
    const parts = inputs.map((bytes) => new Type(bytes.slice().buffer));
    buffer.forEach((_, i) => (buffer[i] = parts.reduce((sum, p) => sum + p[i]!, 0)));
  }

  async broadcast(buffer: ArrayBufferView, root: number): Promise<void> {
    const inputs = await this.meet(new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.byteLength));
    new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.byteLength).set(inputs[root]!);
  }

  allGather(bytes: Uint8Array): Promise<Uint8Array[]> {
    return this.meet(bytes);
  }

  async barrier(): Promise<void> {
    await this.meet(new Uint8Array(0));
  }

  destroy(): void {
    this.destroyed = true;
  }

  abort(): void {}
}

class FakeAddon extends FakeAddonBase implements NativeAddon {
  readonly created: { id: number[]; rank: number; size: number; device: number; timeoutSeconds: number }[] = [];
  collective: FakeHostCollective | null = null;
  constructor(
    private readonly hub: FakeHub,
    devicesOrError: NativeDevice[] | Error = DEVICES,
    private readonly failAt = 0,
  ) {
    super(devicesOrError);
  }
  loadLibraries() {
    return { cublasLt: '/fake/libcublasLt.so.13', nccl: '/fake/libnccl.so.2' };
  }
  createModel(): never {
    throw new Error('not in this test');
  }
  ncclUniqueId(): Uint8Array {
    return Uint8Array.from({ length: 128 }, (_, i) => (i * 7) % 256);
  }
  createHostCollective(id: Uint8Array, rank: number, size: number, device: number, timeoutSeconds: number): NativeHostCollective {
    this.created.push({ id: Array.from(id), rank, size, device, timeoutSeconds });
    return (this.collective = new FakeHostCollective(this.hub, rank, size, device, this.failAt));
  }
}

test('NcclCollective: rank 0 hands NCCL\'s id to every rank through the rendezvous; operations run in order, named to the launcher', async () => {
  const hub = new FakeHub(2);
  const port = await freePort();
  const addons = [new FakeAddon(hub), new FakeAddon(hub)];
  const events: string[] = [];
  const open = (rank: number) =>
    NcclCollective.open({ rank, size: 2, localRank: 1 - rank, masterAddr: '127.0.0.1', masterPort: port, timeoutSeconds: 9, addon: addons[rank]!, onOperation: (e: OperationEvent) => rank === 1 && events.push(`${e.phase} #${e.seq} ${e.op}`) });
  const [c0, c1] = await Promise.all([open(0), open(1)]);
  const id = Array.from(addons[0]!.ncclUniqueId());
  assert.deepEqual(addons.map((a) => a.created), [[{ id, rank: 0, size: 2, device: 1, timeoutSeconds: 9 }], [{ id, rank: 1, size: 2, device: 0, timeoutSeconds: 9 }]]);
  assert.equal(c1!.backend, 'nccl');
  assert.deepEqual([c0!.rank, c0!.size, c1!.rank, c1!.size], [0, 2, 1, 2]);

  const run = async (c: NcclCollective) => {
    const sum = await c.allReduceSum(new Float64Array([c.rank + 1, 10 * c.rank]));
    const parts = await c.allGather(new Uint8Array(c.rank + 2).fill(c.rank));
    const root = await c.broadcast(new Int16Array(c.rank === 1 ? [-3, 4] : [0, 0]), 1);
    await c.barrier();
    await c.close();
    return { sum: Array.from(sum), parts: parts.map((p) => Array.from(p)), root: Array.from(root) };
  };
  const results = await Promise.all([run(c0!), run(c1!)]);
  for (const r of results) assert.deepEqual(r, { sum: [3, 10], parts: [[0, 0], [1, 1, 1]], root: [-3, 4] });
  assert.ok(addons.every((a) => a.collective!.destroyed));
  assert.deepEqual(events, [
    'enter #1 joining the NCCL job', 'leave #1 joining the NCCL job',
    'enter #2 all-reduce of 2 float64', 'leave #2 all-reduce of 2 float64',
    'enter #3 all-gather of 3 bytes', 'leave #3 all-gather of 3 bytes',
    'enter #4 broadcast of 4 bytes from rank 1', 'leave #4 broadcast of 4 bytes from rank 1',
    'enter #5 barrier', 'leave #5 barrier',
  ]);
});

test('NcclCollective: a failed operation (a timeout in the addon) fails every later one with the same error', async () => {
  const hub = new FakeHub(2);
  const port = await freePort();
  // The second operation after the join (call #3 of the fake) fails on both ranks.
  const open = (rank: number) => NcclCollective.open({ rank, size: 2, localRank: rank, masterAddr: '127.0.0.1', masterPort: port, timeoutSeconds: 1, addon: new FakeAddon(hub, DEVICES, 3) });
  const [c0, c1] = await Promise.all([open(0), open(1)]);
  await Promise.all([c0!.allReduceSum(new Float32Array(2)), c1!.allReduceSum(new Float32Array(2))]);
  const expected = 'rank 0: collective #3 (all-reduce of 2 float32) failed: allReduceSum: ncclAllReduce of an all-reduce of 2 float32 (rank 0 of 2) did not finish within 1 s';
  await assert.rejects(c0!.allReduceSum(new Float32Array(2)), (e: Error) => e instanceof CollectiveError && e.message === expected);
  await assert.rejects(c0!.barrier(), (e: Error) => e instanceof CollectiveError && e.message === expected);
});

test('NcclCollective: a rank without a GPU stops every rank at the rendezvous, saying which and why', async () => {
  const hub = new FakeHub(2);
  const port = await freePort();
  const missing = new Error('devices: the NVIDIA driver sees no CUDA-capable GPU (check `nvidia-smi` and CUDA_VISIBLE_DEVICES)');
  const addons = [new FakeAddon(hub), new FakeAddon(hub, missing)];
  const outcomes = await Promise.allSettled([0, 1].map((rank) => NcclCollective.open({ rank, size: 2, localRank: rank, masterAddr: '127.0.0.1', masterPort: port, timeoutSeconds: 5, addon: addons[rank]! })));
  const reason = 'no usable GPU: devices: the NVIDIA driver sees no CUDA-capable GPU (check `nvidia-smi` and CUDA_VISIBLE_DEVICES)';
  assert.ok(outcomes[0]!.status === 'rejected' && outcomes[0]!.reason instanceof CollectiveError);
  assert.equal((outcomes[0] as PromiseRejectedResult).reason.message, `rank 1 cannot take part: ${reason}`);
  assert.ok(outcomes[1]!.status === 'rejected' && outcomes[1]!.reason instanceof NcclUnavailableError);
  assert.equal((outcomes[1] as PromiseRejectedResult).reason.message, reason);
  assert.deepEqual(addons.map((a) => a.created.length), [0, 0]);

  // WNDC_LOCAL_RANK naming a GPU that is not there.
  const port2 = await freePort();
  const outcomes2 = await Promise.allSettled([0, 1].map((rank) => NcclCollective.open({ rank, size: 2, localRank: rank * 3, masterAddr: '127.0.0.1', masterPort: port2, timeoutSeconds: 5, addon: new FakeAddon(new FakeHub(2)) })));
  assert.equal((outcomes2[1] as PromiseRejectedResult).reason.message, 'no GPU 3 for local rank 3 (WNDC_LOCAL_RANK): the visible GPUs are 0 (Fake GPU), 1 (Fake GPU)');
  assert.equal((outcomes2[0] as PromiseRejectedResult).reason.message, 'rank 1 cannot take part: no GPU 3 for local rank 3 (WNDC_LOCAL_RANK): the visible GPUs are 0 (Fake GPU), 1 (Fake GPU)');
});

// --- Two GPUs: the real NCCL collective, its timeout, and training (skipped elsewhere). ---

function twoGpus(): string | null {
  const availability = cudaAvailability();
  if (!availability.ok) return availability.reason;
  if (availability.devices.length < 2) return `one GPU here (${availability.devices[0]?.name}); the test needs two`;
  return null;
}

test('two GPU processes: NCCL all-reduce (float32, float64), all-gather of different lengths, broadcast, barrier', async (t) => {
  const skip = twoGpus();
  if (skip !== null) return t.skip(skip);
  const port = await freePort();
  const runs = await Promise.all([0, 1].map((rank) => start(['test/support/nccl-rank.ts', 'ops', '60'], rankEnv(rank, 2, port), 120_000).done));
  runs.forEach((r, rank) => assert.equal(r.code, 0, `rank ${rank} failed:\n${r.stdout}${r.stderr}`));
  for (const [rank, r] of runs.entries()) {
    assert.deepEqual(JSON.parse(r.stdout), {
      rank,
      size: 2,
      backend: 'nccl',
      sum32: [3, 0.5, -1],
      sum64: [3e-17, 1, 2 ** 41 + 1],
      gathered: [[10], [11, 11]],
      empty: [0, 0],
      broadcast: [7, -8, 9],
      text: 'from rank 0',
      large: [3, 3, true],
    });
  }
});

test('two GPU processes: an operation one rank never joins fails on the other within the timeout, naming it', async (t) => {
  const skip = twoGpus();
  if (skip !== null) return t.skip(skip);
  const port = await freePort();
  const rank1 = start(['test/support/nccl-rank.ts', 'timeout', '3'], rankEnv(1, 2, port), 120_000);
  const rank0 = await start(['test/support/nccl-rank.ts', 'timeout', '3'], rankEnv(0, 2, port), 120_000).done;
  rank1.child.kill('SIGKILL');
  await rank1.done;
  assert.equal(rank0.code, 0, rank0.stderr);
  const [first, second] = rank0.stdout.trim().split('\n').map((line) => JSON.parse(line) as { error?: string; seconds?: number; after?: string });
  const expected = 'rank 0: collective #2 (all-reduce of 4 float32) failed: allReduceSum: ncclAllReduce of an all-reduce of 4 float32 (rank 0 of 2) did not finish within 3 s: another rank has died, hangs or never called it; the communicator was aborted';
  assert.equal(first!.error, expected);
  // The timeout, plus polling and the abort: well under twice it.
  assert.ok(first!.seconds! >= 3 && first!.seconds! < 6, `took ${first!.seconds} s`);
  assert.equal(second!.after, expected);
});

test('two GPU processes started by the environment train the quick start as one GPU does with the same global batch', async (t) => {
  const skip = twoGpus();
  if (skip !== null) return t.skip(skip);
  const dir = mkdtempSync(join(tmpdir(), 'wndc-env-train-'));
  // 1,000 synthetic rows (about 900 train): a few global batches of 256 (each rank 128 rows), then the evaluation.
  const common = ['run', SPEC, '--engine', 'cuda', '--no-tf32', '--synthetic_rows', '1000', '--global_batch_size', '256', '--epochs', '1', '--rank-timeout', '60'];
  const [r0, r1] = await ranks(2, [...common, '--model_dir', join(dir, 'two')]);
  assert.equal(r0!.code, 0, `rank 0:\n${r0!.stderr}`);
  assert.equal(r1!.code, 0, `rank 1:\n${r1!.stderr}`);
  assert.match(r0!.stderr, /on .+ x 2 ranks \(nccl\)/);
  const single = await start(['cli/wndc.ts', ...common, '--model_dir', join(dir, 'one')], { ...process.env, WNDC_CACHE_DIR: CACHE }).done;
  assert.equal(single.code, 0, single.stderr);
  const two = JSON.parse(r0!.stdout.trim().split('\n').at(-1)!) as Record<string, number>;
  const one = JSON.parse(single.stdout.trim().split('\n').at(-1)!) as Record<string, number>;
  assert.equal(two.steps, one.steps);
  // Tolerance: as test/cuda-distributed.test.ts (1e-5 after 4 steps, strict fp32), widened to 1e-4 for
  // the last partial batch and the evaluation's scores; a missing rank's gradient moves them by 1e-3 or more.
  for (const metric of ['auc', 'logloss', 'map@12']) assert.ok(Math.abs(two[metric]! - one[metric]!) <= 1e-4, `${metric}: ${two[metric]} vs ${one[metric]}`);
  const tensors = (d: string) => new Map(loadLatestCheckpoint(d)!.tensors.map((x) => [x.name, x.data]));
  const [a, b] = [tensors(join(dir, 'two')), tensors(join(dir, 'one'))];
  assert.deepEqual([...a.keys()], [...b.keys()]);
  for (const [name, data] of a) {
    const expected = b.get(name)!;
    let worst = 0;
    data.forEach((v, i) => (worst = Math.max(worst, Math.abs(v - expected[i]!) / Math.max(1, Math.abs(expected[i]!)))));
    assert.ok(worst <= 1e-4, `${name}: relative difference ${worst}`);
  }
});

test('two GPU processes started by the environment: a rank that dies inside training stops the other within --rank-timeout, naming it, with nothing half-written', async (t) => {
  const skip = twoGpus();
  if (skip !== null) return t.skip(skip);
  const dir = mkdtempSync(join(tmpdir(), 'wndc-env-die-'));
  const args = ['cli/wndc.ts', 'run', SPEC, '--engine', 'cuda', '--no-tf32', '--synthetic_rows', '1000', '--global_batch_size', '256', '--epochs', '1', '--rank-timeout', '5', '--model_dir', dir];
  const port = await freePort();
  // Rank 1 is killed (SIGKILL) as it reaches step 2; rank 0 is then inside that step's NCCL calls,
  // on the model's own communicator, with no launcher to stop it.
  const env = (rank: number): NodeJS.ProcessEnv => ({ ...rankEnv(rank, 2, port), WNDC_FAULT: '1:2:exit' });
  const [r0, r1] = await Promise.all([0, 1].map((rank) => start(args, env(rank), 120_000).done));
  assert.equal(r1!.code, null, `rank 1 was to be killed:\n${r1!.stderr}`);
  assert.equal(r0!.code, 3, r0!.stderr);
  // Either the timeout or NCCL's own report of the lost peer, whichever comes first; no stack.
  assert.match(r0!.stderr, /wndc: rank 0 failed: .*(rank 0 of 2 waited 5 s for .*: the other rank \(rank 1\) died or hangs|rank 0 of 2, waiting for .*: NCCL failed .*another rank died)/);
  assert.doesNotMatch(r0!.stderr, /\n\s+at /);
  assert.deepEqual(readdirSync(dir).filter((f) => f.includes('.tmp')), []);
  assert.equal(loadLatestCheckpoint(dir), undefined);
});

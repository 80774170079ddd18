// The CUDA engine (runtime/engine/cuda/engine.ts).
//
// 1. Its TypeScript side against a recording stand-in for the native addon: initial values and
//    slots uploaded as the tfjs engine builds them, names and indices mapped back, per-step
//    scalars, dropout masks, capacities. Runs everywhere.
// 2. The trainer's read-ahead for engines that copy the batch on call. Runs everywhere.
// 3. Parity with the tfjs engine on a GPU: every optimizer, dropout, batch norm, every activation,
//    and the mixed-precision modes. Skipped, saying why, where cudaAvailability() is not ok.
//
// On a GPU machine: `npm run build:cuda`, then `node --import tsx --test test/cuda-engine.test.ts`.

import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runCli } from '../cli/main.js';
import { cudaBenchmark, DeviceOrders, runCommand } from '../cli/run.js';
import { compileSource } from '../compiler/compile.js';
import type { ModelIR } from '../compiler/ir.js';
import type { Batch } from '../runtime/data/contracts.js';
import { openShards } from '../runtime/data/shards.js';
import type { NativeAddon, NativeBatch, NativeDevice, NativeGradients, NativeModel, NativePlan, NativeStepScalars, TableExchange } from '../runtime/engine/cuda/addon-api.js';
import { CudaEngine, type CudaEngineOptions } from '../runtime/engine/cuda/engine.js';
import { cudaAvailability, CudaUnavailableError } from '../runtime/engine/cuda/load-addon.js';
import type { Engine, Gradients, LearningRates, NamedTensor, StepResult } from '../runtime/engine/engine.js';
import { parameterSpecs, RandomStream } from '../runtime/engine/init.js';
import { TfjsEngine } from '../runtime/engine/tfjs/engine.js';
import { dropoutMask } from '../runtime/engine/tfjs/model.js';
import { adamStepSize } from '../runtime/optim/index.js';
import { trainModel } from '../runtime/train/trainer.js';
import { withEnv } from './support/env.js';
import { FakeAddonBase } from './support/fake-addon.js';
import { REPO } from './support/paths.js';
import { writeRandomShards } from './support/random-shards.js';
import { randomBatch } from './support/random-batch.js';

function compile(source: string): ModelIR {
  const result = compileSource(source, 'test.wnd', 'wnd');
  assert.deepEqual(result.diagnostics.filter((d) => d.severity === 'error').map((d) => `${d.code} ${d.message}`), []);
  return result.ir!;
}

// ------------------------------------------------------------------------------------------------
// The test model: a wide part (hashed, identity, a weighted bag, an indicator's source, a numeric),
// a tower over a hashed id's embedding, a weighted bag combined by mean and another by sqrtn, an
// indicator and two numerics, two hidden layers. Placeholders pick the optimizer and the tower.

interface Variant {
  optimizer: string;
  activation?: string;
  dropout?: number;
  batchNorm?: boolean;
  hiddenUnits?: string;
  /** max_len of the `tag` bag (default 4). */
  tagLength?: number;
}

function spec(v: Variant): string {
  return `
model parity
input {
  clicked: int @label
  w: float = 1 @weight
  user: string = ""
  item: int = 0
  tags: list<int> = []
  tag_scores: list<float> = []
  genres: list<int> = []
  genre_scores: list<float> = []
  hour: int = 0
  x: float = 0
  y: float = 0
}
features {
  user_id = hashed(user, buckets: 50)
  item_id = identity(item, buckets: 40)
  tag = multi_hot(tags, max_len: ${v.tagLength ?? 4}, buckets: 30)
  tag_w = weighted(tag, weights: tag_scores)
  genre = multi_hot(genres, max_len: 3, buckets: 12)
  genre_w = weighted(genre, weights: genre_scores)
  hour_of_day = identity(hour, buckets: 24)
  xs = numeric(x)
  ys = numeric(y)
}
wide {
  features: [user_id, item_id, tag_w, hour_of_day, xs]
  optimizer: ${v.optimizer}
}
deep {
  features: [
    embedding(user_id, dim: 8),
    embedding(tag_w, dim: 6, combiner: mean),
    xs,
    embedding(genre_w, dim: 5, combiner: sqrtn),
    indicator(hour_of_day),
    ys,
  ]
  hidden_units: ${v.hiddenUnits ?? '[16, 8]'}
  activation: ${v.activation ?? 'relu'}
  dropout: ${v.dropout ?? 0}
  batch_norm: ${v.batchNorm ?? false}
  optimizer: ${v.optimizer}
}
train {
  batch_size: 64
  seed: 11
}
`;
}

// ------------------------------------------------------------------------------------------------
// 1. The TypeScript side against a recording addon.

const FAKE_DEVICE: NativeDevice = { index: 0, name: 'Recording GPU', computeCapability: [9, 0], totalMemory: 80e9 };

/** Stores tensors on the host, records every call, and returns made-up gradients that show where each value came from. */
class RecordingModel implements NativeModel {
  readonly tensors = new Map<string, Float32Array>();
  readonly batches: { size: number; ids: Int32Array; label: Float32Array }[] = [];
  readonly steps: { step: number; scalars: NativeStepScalars; masks: Float32Array[] | null }[] = [];
  readonly gradientCalls: { step: number; masks: Float32Array[] | null }[] = [];
  readonly selected: [number, number][] = [];
  readonly orders: Int32Array[] = [];
  /** Whether profiling was on at each trainStep. */
  readonly profiledSteps: boolean[] = [];
  datasetRows = 0;
  profiling = false;
  disposed = false;

  constructor(
    readonly plan: NativePlan,
    readonly device: number,
  ) {}

  setTensor(parameter: number, slot: number, data: Float32Array): void {
    const p = this.plan.parameters[parameter]!;
    assert.ok(slot >= -1 && slot < p.slots, `slot ${slot} of ${p.name}`);
    assert.equal(data.length, p.size, `setTensor(${p.name})`);
    this.tensors.set(`${parameter}/${slot}`, Float32Array.from(data));
  }
  getTensor(parameter: number, slot: number): Float32Array {
    return Float32Array.from(this.tensors.get(`${parameter}/${slot}`)!);
  }
  setBatch(batch: NativeBatch, size: number): void {
    const width = this.plan.layout.idsWidth;
    this.batches.push({ size, ids: Int32Array.from(batch.ids.subarray(0, size * width)), label: Float32Array.from(batch.label.subarray(0, size)) });
  }
  setDataset(_batch: NativeBatch, rows: number): number {
    this.datasetRows = rows;
    return rows * 100;
  }
  setOrder(order: Int32Array): void {
    this.orders.push(Int32Array.from(order));
  }
  selectRows(start: number, size: number): void {
    this.selected.push([start, size]);
  }
  /** Half of each label of the current batch. */
  predict(): Float32Array {
    return this.batches.at(-1)!.label.map((y) => y / 2);
  }
  /** Dense gradient of parameter i: all i; tables (listed last first): rows [1, 3] full of the table's index. */
  gradients(step: number, masks: Float32Array[] | null): NativeGradients {
    this.gradientCalls.push({ step, masks });
    const params = this.plan.parameters.map((p, i) => ({ p, i }));
    return {
      loss: 0.75,
      dense: params.filter(({ p }) => p.kind === 1).map(({ p, i }) => new Float32Array(p.size).fill(i)),
      sparse: params
        .filter(({ p }) => p.kind === 0)
        .reverse()
        .map(({ p, i }) => ({ parameter: i, rows: Int32Array.of(1, 3), values: new Float32Array(2 * p.dim).fill(i) })),
    };
  }
  trainStep(step: number, scalars: NativeStepScalars, masks: Float32Array[] | null): void {
    this.steps.push({ step, scalars, masks });
    this.profiledSteps.push(this.profiling);
  }
  async synchronize(): Promise<void> {
    await new Promise((resolve) => setImmediate(resolve));
  }
  lastLoss(): number {
    return 0.25;
  }
  skippedSteps(): number {
    return 0;
  }
  lossScale(): number {
    return 1;
  }
  memory() {
    return { used: 1, peak: 2, free: 3, total: 4, items: [] };
  }
  setProfiling(on: boolean): void {
    this.profiling = on;
  }
  phaseTimes() {
    return { forward: 1 };
  }
  /** The data-parallel calls, in order. */
  readonly world: string[] = [];
  joinWorld(id: Uint8Array, rank: number, size: number, timeoutSeconds: number): void {
    this.world.push(`join ${id.length} bytes as ${rank}/${size}${timeoutSeconds > 0 ? `, waits for the others at most ${timeoutSeconds} s` : ''}`);
  }
  broadcastState(root: number): void {
    this.world.push(`broadcast from ${root}`);
  }
  exchangePlan(): TableExchange[] {
    return [];
  }
  dispose(): void {
    this.disposed = true;
  }
}

class RecordingAddon extends FakeAddonBase implements NativeAddon {
  readonly models: RecordingModel[] = [];
  constructor(devicesOrError: NativeDevice[] | Error = [FAKE_DEVICE]) {
    super(devicesOrError);
  }
  loadLibraries() {
    return { cublasLt: '/fake/libcublasLt.so.13', nccl: null };
  }
  createModel(plan: NativePlan, device: number): RecordingModel {
    const model = new RecordingModel(plan, device);
    this.models.push(model);
    return model;
  }
  ncclUniqueId(): Uint8Array {
    return new Uint8Array(128).fill(7);
  }
}

async function recorded(ir: ModelIR, options: CudaEngineOptions = {}, seed = 5): Promise<{ engine: CudaEngine; model: RecordingModel; addon: RecordingAddon }> {
  const addon = new RecordingAddon();
  const engine = await CudaEngine.create({ ...options, addon });
  await engine.build(ir, seed);
  return { engine, model: addon.models.at(-1)!, addon };
}

const tfjsPromise = TfjsEngine.create({ backend: 'cpu' });

function sameBits(a: Float32Array, b: Float32Array, what: string): void {
  assert.equal(a.length, b.length, `${what}: length`);
  const ua = new Uint32Array(a.buffer, a.byteOffset, a.length);
  const ub = new Uint32Array(b.buffer, b.byteOffset, b.length);
  for (let i = 0; i < ua.length; i++) if (ua[i] !== ub[i]) assert.fail(`${what}[${i}]: ${a[i]} is not bit-identical to ${b[i]}`);
}

function assertSameState(actual: NamedTensor[], expected: NamedTensor[], what: string): void {
  assert.deepEqual(
    actual.map((t) => [t.name, t.shape]),
    expected.map((t) => [t.name, t.shape]),
    `${what}: names and shapes`,
  );
  actual.forEach((t, i) => sameBits(t.data, expected[i]!.data, `${what} ${t.name}`));
}

test('build uploads the initial values and optimizer slots of the tfjs engine, bit for bit, and state() lists them in its order', async () => {
  for (const optimizer of ['ftrl(learning_rate: 0.1, initial_accumulator_value: 0.3)', 'adam(learning_rate: 0.01)', 'sgd(learning_rate: 0.1)', 'sgd(learning_rate: 0.1, momentum: 0.5)']) {
    const ir = compile(spec({ optimizer, batchNorm: true }));
    const { engine, model } = await recorded(ir, {}, 9);
    const tfjs = await tfjsPromise;
    await tfjs.build(ir, 9);
    assertSameState(await engine.state(), await tfjs.state(), optimizer);
    assert.equal(model.device, 0);
  }
});

test('the plan: tf32 by default, fp32 when strict, the IR mixed precision otherwise; capacity from the batch sizes', async () => {
  const ir = compile(spec({ optimizer: 'adagrad(learning_rate: 0.1)' }));
  ir.train.evalBatchSize = 100;
  assert.deepEqual([(await recorded(ir)).model.plan.precision, (await recorded(ir)).model.plan.batchCapacity], ['tf32', 100]);
  assert.equal((await recorded(ir, { strictFp32: true })).model.plan.precision, 'fp32');
  assert.equal((await recorded(ir, { batchCapacity: 7 })).model.plan.batchCapacity, 7);
  ir.train.mixedPrecision = 'fp16';
  const { engine, model } = await recorded(ir, { strictFp32: true, lossScale: { initial: 8, growthInterval: 3 } });
  assert.deepEqual([model.plan.precision, model.plan.lossScale], ['fp16', { initial: 8, growthInterval: 3 }]);
  assert.equal(engine.precision, 'fp16');
  assert.deepEqual(engine.capabilities, { mixedPrecision: ['bf16', 'fp16'], device: 'Recording GPU' });
});

test('create: a missing GPU or driver is a CudaUnavailableError saying so', async () => {
  await assert.rejects(CudaEngine.create({ addon: new RecordingAddon(), device: 2 }), (e: Error) => {
    assert.ok(e instanceof CudaUnavailableError);
    assert.equal(e.message, 'no GPU 2: the visible GPUs are 0 (Recording GPU)');
    return true;
  });
  await assert.rejects(CudaEngine.create({ addon: new RecordingAddon(new Error('devices: no NVIDIA driver')) }), (e: Error) => {
    assert.ok(e instanceof CudaUnavailableError);
    assert.equal(e.message, 'no usable GPU: devices: no NVIDIA driver');
    return true;
  });
});

test('gradients map parameter indices back to names: dense in parameter order, tables by name with their width', async () => {
  const ir = compile(spec({ optimizer: 'adagrad(learning_rate: 0.1)', batchNorm: true }));
  const { engine, model } = await recorded(ir);
  const specs = parameterSpecs(ir);
  const g = await engine.gradients(randomBatch(ir, 6, 1), 4);
  assert.equal(g.loss, 0.75);
  const dense = specs.map((s, i) => ({ s, i })).filter(({ s }) => s.role === 'dense');
  assert.deepEqual(
    g.dense.map((t) => [t.name, t.shape, t.data[0], t.data.length]),
    dense.map(({ s, i }) => [s.name, s.shape, i, s.shape.reduce((a, b) => a * b, 1)]),
  );
  const tables = specs.map((s, i) => ({ s, i })).filter(({ s }) => s.role === 'table');
  assert.deepEqual(
    g.sparse.map((t) => [t.name, t.dim, [...t.rows], t.values[0], t.values.length]),
    tables.map(({ s, i }) => [s.name, s.shape[1], [1, 3], i, 2 * s.shape[1]!]),
  );
  assert.deepEqual(model.gradientCalls.map((c) => [c.step, c.masks]), [[4, null]]);
  assert.equal(model.batches[0]!.size, 6);
  // An empty batch: zero dense gradients, no tables, without asking the device.
  const empty = await engine.gradients({ ...randomBatch(ir, 1, 2), size: 0 }, 0);
  assert.deepEqual([empty.loss, empty.sparse, empty.dense.every((t) => t.data.every((v) => v === 0))], [0, [], true]);
  assert.equal(model.gradientCalls.length, 1);
});

test('trainStep uploads the batch before it returns, passes each part its rate and Adam its step size, and reports the loss', async () => {
  const ir = compile(spec({ optimizer: 'adam(learning_rate: 0.01, beta1: 0.8, beta2: 0.95)' }));
  ir.wide.optimizer = { kind: 'ftrl', learningRate: 0.1, learningRatePower: -0.5, initialAccumulatorValue: 0.1, l1: 0, l2: 0, l2Shrinkage: 0 };
  const { engine, model } = await recorded(ir);
  const batch = randomBatch(ir, 8, 3);
  const labels = Float32Array.from(batch.label.subarray(0, 8));
  const pending = engine.trainStep(batch, 3, { wide: 0.2, deep: 0.013 });
  assert.equal(model.batches.length, 1, 'setBatch ran before trainStep returned');
  assert.equal(model.steps.length, 1, 'the step was enqueued before trainStep returned');
  batch.label.fill(7); // the trainer refills the batch while the step runs
  assert.deepEqual(await pending, { loss: 0.25, skippedSteps: 0 });
  assert.deepEqual(model.batches[0]!.label, labels);
  const f = Math.fround;
  const t = 4;
  const expectedStep = f((f(0.013) * Math.sqrt(1 - Math.pow(f(0.95), t))) / (1 - Math.pow(f(0.8), t)));
  assert.deepEqual(model.steps, [{ step: 3, scalars: { lrWide: 0.2, lrDeep: 0.013, adamStepWide: 0, adamStepDeep: expectedStep }, masks: null }]);
  assert.equal(expectedStep, adamStepSize(f(0.013), f(0.8), f(0.95), 3));
  await assert.rejects(engine.trainStep(batch, 1.5, { wide: 0.2, deep: 0.01 }), /optimizer step 1.5/);
  await assert.rejects(engine.trainStep(batch, 0, { wide: 0, deep: 0.01 }), /ftrl needs a learning rate > 0/);
});

test('exactDropout: the masks are the tfjs engine\'s draws of `dropout/<step>`, hidden layers in order; otherwise the addon draws', async () => {
  const ir = compile(spec({ optimizer: 'sgd(learning_rate: 0.1)', dropout: 0.3 }));
  const exact = await recorded(ir, { exactDropout: true }, 21);
  await exact.engine.trainStep(randomBatch(ir, 5, 1), 2, { wide: 0.1, deep: 0.1 });
  await exact.engine.gradients(randomBatch(ir, 5, 1), 7);
  const stream = (step: number) => new RandomStream(21, `dropout/${step}`);
  const expected = (step: number) => {
    const s = stream(step);
    return [dropoutMask(s, 5 * 16, 0.3), dropoutMask(s, 5 * 8, 0.3)];
  };
  assert.deepEqual(exact.model.steps[0]!.masks, expected(2));
  assert.deepEqual(exact.model.gradientCalls[0]!.masks, expected(7));
  assert.ok(expected(2)[0]!.some((v) => v === 0) && expected(2)[0]!.some((v) => v === Math.fround(1 / 0.7)));
  // A rank's slice of a global batch of 12 rows: rows 5..9 of the global masks, layer by layer.
  await exact.engine.trainStep(randomBatch(ir, 5, 1), 3, { wide: 0.1, deep: 0.1 }, { offset: 5, total: 12 });
  const global = stream(3);
  const [first, second] = [dropoutMask(global, 12 * 16, 0.3), dropoutMask(global, 12 * 8, 0.3)];
  assert.deepEqual(exact.model.steps[1]!.masks, [first.subarray(5 * 16, 10 * 16), second.subarray(5 * 8, 10 * 8)]);
  const own = await recorded(ir);
  await own.engine.trainStep(randomBatch(ir, 5, 1), 2, { wide: 0.1, deep: 0.1 });
  assert.equal(own.model.steps[0]!.masks, null);
});

test('a training batch above the capacity is refused; predict splits a larger batch into pieces', async () => {
  const ir = compile(spec({ optimizer: 'sgd(learning_rate: 0.1)' }));
  const { engine, model } = await recorded(ir, { batchCapacity: 4 });
  const batch = randomBatch(ir, 10, 4);
  await assert.rejects(engine.trainStep(batch, 0, { wide: 0.1, deep: 0.1 }), {
    message: 'a training batch of 10 rows is larger than the 4 rows the CUDA engine was built for; build it with a larger `batchCapacity`',
  });
  await assert.rejects(engine.gradients(batch, 0), /a training batch of 10 rows/);
  const p = await engine.predict(batch);
  assert.deepEqual(p, batch.label.subarray(0, 10).map((y) => y / 2));
  assert.deepEqual(
    model.batches.map((b) => b.size),
    [4, 4, 2],
  );
  assert.deepEqual(model.batches[2]!.ids, batch.ids.subarray(8 * ir.layout.idsWidth, 10 * ir.layout.idsWidth));
  assert.deepEqual(await engine.predict({ ...batch, size: 0 }), new Float32Array(0));
});

test('loadState takes what state() gives and refuses other states with the tfjs engine\'s messages', async () => {
  const ir = compile(spec({ optimizer: 'ftrl(learning_rate: 0.1)' }));
  const { engine } = await recorded(ir);
  const tfjs = await tfjsPromise;
  await tfjs.build(ir, 5);
  const state = await engine.state();
  state.forEach((t, i) => t.data.fill(i));
  await engine.loadState(state);
  assertSameState(await engine.state(), state, 'restored');
  const variants: NamedTensor[][] = [
    state.slice(1),
    [...state, { name: 'deep/extra', shape: [1], data: new Float32Array(1) }],
    state.map((t, i) => (i === 3 ? { ...t, shape: [...t.shape, 1] } : t)),
    state.map((t, i) => (i === 2 ? { ...t, data: new Float32Array(t.data.length + 1) } : t)),
  ];
  for (const bad of variants) {
    const tfjsError = await tfjs.loadState(bad).then(
      () => assert.fail('tfjs accepted a bad state'),
      (e: Error) => e.message,
    );
    await assert.rejects(engine.loadState(bad), { message: tfjsError });
  }
});

test('the device dataset: preload, a checked row order, steps on rows of it', async () => {
  const ir = compile(spec({ optimizer: 'sgd(learning_rate: 0.1)' }));
  const { engine, model } = await recorded(ir);
  assert.throws(() => engine.setOrder(Int32Array.of(0)), /setOrder before preload/);
  const rows = randomBatch(ir, 20, 8, 20);
  assert.equal(engine.preload({ batch: rows, rows: 20 }), 2000);
  assert.throws(() => engine.setOrder(Int32Array.of(0, 20)), /row 20 of the order is outside the device dataset of 20 rows/);
  engine.setOrder(Int32Array.of(3, 1, 2, 0, 19));
  await assert.rejects(engine.trainPreloaded(4, 2, 0, { wide: 0.1, deep: 0.1 }), /rows \[4, 6\) outside the order of 5 rows/);
  assert.deepEqual(await engine.trainPreloaded(1, 4, 0, { wide: 0.1, deep: 0.1 }), { loss: 0.25, skippedSteps: 0 });
  assert.deepEqual(model.selected, [[1, 4]]);
  assert.deepEqual([model.datasetRows, model.orders.map((o) => [...o])], [20, [[3, 1, 2, 0, 19]]]);
  engine.setProfiling(true);
  assert.deepEqual([model.profiling, engine.phaseTimes(), engine.memory().peak], [true, { forward: 1 }, 2]);
});

test('build again replaces the model (the old one is freed); dispose frees it', async () => {
  const ir = compile(spec({ optimizer: 'sgd(learning_rate: 0.1)' }));
  const { engine, addon } = await recorded(ir);
  await engine.build(ir, 1);
  assert.deepEqual(
    addon.models.map((m) => m.disposed),
    [true, false],
  );
  engine.dispose();
  assert.equal(addon.models[1]!.disposed, true);
  await assert.rejects(engine.state(), /used before build/);
});

// ------------------------------------------------------------------------------------------------
// 2. The trainer reads the next batch while a step runs, for engines that copy the batch on call,
// and trains on the same batches in the same order as without read-ahead.

interface SeenStep {
  step: number;
  size: number;
  ids: Int32Array;
  /** Whether the batch object held other rows by the time the step finished. */
  refilledDuringStep: boolean;
}

class FakeEngine implements Engine {
  readonly name = 'fake';
  readonly capabilities = { mixedPrecision: [] as const, device: 'nothing' };
  readonly seen: SeenStep[] = [];
  constructor(
    readonly copiesBatchOnCall: boolean,
    private readonly idsWidth: number,
  ) {}
  async build(): Promise<void> {}
  async predict(batch: Batch): Promise<Float32Array> {
    return new Float32Array(batch.size);
  }
  async gradients(): Promise<Gradients> {
    return { loss: 0, dense: [], sparse: [] };
  }
  trainStep(batch: Batch, step: number, _lr: LearningRates): Promise<StepResult> {
    const ids = Int32Array.from(batch.ids.subarray(0, batch.size * this.idsWidth));
    const size = batch.size;
    return new Promise((resolve) =>
      setImmediate(() => {
        const now = batch.ids.subarray(0, batch.size * this.idsWidth);
        this.seen.push({ step, size, ids, refilledDuringStep: batch.size !== size || now.some((v, i) => v !== ids[i]) });
        resolve({ loss: 0.5, skippedSteps: 0 });
      }),
    );
  }
  async state(): Promise<NamedTensor[]> {
    return [];
  }
  async loadState(): Promise<void> {}
  dispose(): void {}
}

test('the trainer reads ahead only for engines that copy the batch on call, and feeds both the same batches', async () => {
  const ir = compile(spec({ optimizer: 'sgd(learning_rate: 0.1)' }));
  ir.train.batchSize = 16;
  ir.train.epochs = 2;
  const dir = mkdtempSync(join(tmpdir(), 'wndc-readahead-'));
  writeRandomShards(dir, ir, { rows: 100, rowsPerShard: 30 });
  const runs: FakeEngine[] = [];
  for (const copies of [false, true]) {
    const engine = new FakeEngine(copies, ir.layout.idsWidth);
    const summary = await trainModel({ ir, engine, train: openShards(dir), wndcVersion: 'test' });
    assert.equal(summary.steps, 14); // 6 full batches and one of 4 rows, twice
    runs.push(engine);
  }
  const [plain, ahead] = runs as [FakeEngine, FakeEngine];
  assert.deepEqual(
    ahead.seen.map((s) => [s.step, s.size, s.ids]),
    plain.seen.map((s) => [s.step, s.size, s.ids]),
  );
  assert.deepEqual(
    plain.seen.map((s) => s.refilledDuringStep),
    Array<boolean>(14).fill(false),
  );
  // Every step but the last of an epoch overlapped the reading of the next batch.
  assert.deepEqual(
    ahead.seen.map((s) => s.refilledDuringStep),
    [0, 1].flatMap(() => [true, true, true, true, true, true, false]),
  );
});

// ------------------------------------------------------------------------------------------------
// The command line.

const availability = cudaAvailability();

async function wndc(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const code = await runCli(args, { stdout: (s) => (stdout += s), stderr: (s) => (stderr += s), cwd: REPO, color: false });
  return { code, stdout, stderr };
}

test('--engine cuda where it cannot run: one line saying why, exit 3', async (t) => {
  if (availability.ok) return t.skip('the CUDA engine runs here');
  const r = await wndc(['run', 'examples/quickstart/quickstart.wnd', '--engine', 'cuda']);
  assert.equal(r.code, 3);
  assert.equal(r.stderr, `wndc: --engine cuda cannot run here: ${availability.reason}; \`--engine tfjs\` trains on the CPU\n`);
  assert.equal(r.stdout, '');
});

test('the CUDA benchmark flags are checked before anything loads', async () => {
  const io = { stdout: () => undefined, stderr: () => undefined, cwd: REPO, color: false };
  const run = (flags: Parameters<typeof runCommand>[1]) => runCommand('examples/quickstart/quickstart.wnd', flags, io);
  await assert.rejects(run({ benchmark: true, engine: 'cuda', benchmarkSource: 'gpu' }), { message: '--benchmark-source takes device or disk, not "gpu"' });
  await assert.rejects(run({ engine: 'cuda', benchmarkSource: 'disk' }), { message: '--benchmark-source goes with --benchmark' });
  await assert.rejects(run({ benchmark: true, engine: 'tfjs', benchmarkSource: 'device' }), { message: '--benchmark-source device preloads the data on the GPU: it needs --engine cuda' });
  await assert.rejects(run({ benchmark: true, engine: 'tfjs', profile: true }), { message: '--profile times the phases of CUDA steps: it goes with --benchmark and --engine cuda' });
});

test('--benchmark on the CUDA engine, device source: the rows preloaded, a fresh permutation each epoch, profiling over the measured steps', async () => {
  const ir = compile(spec({ optimizer: 'sgd(learning_rate: 0.1)' }));
  ir.train.batchSize = 16;
  const dir = mkdtempSync(join(tmpdir(), 'wndc-cuda-bench-'));
  writeRandomShards(dir, ir, { rows: 40, rowsPerShard: 15 });
  const { engine, addon } = await recorded(ir);
  let out = '';
  const io = { stdout: (s: string) => (out += s), stderr: () => undefined, cwd: REPO, color: false };
  assert.equal(await cudaBenchmark(ir, engine, openShards(dir), { benchmarkSteps: '3', benchmarkWarmupSteps: '2', profile: true }, io), 0);
  assert.equal(addon.models.length, 2, 'the benchmark builds its own model');
  const bench = addon.models[1]!;
  // 40 rows make 2 batches of 16 an epoch: 5 steps read epochs 0, 0, 1, 1, 2, from one order set once.
  assert.equal(bench.datasetRows, 40);
  assert.deepEqual(bench.selected, [[0, 16], [16, 16], [32, 16], [48, 16], [64, 16]]);
  assert.equal(bench.orders.length, 1);
  const order = bench.orders[0]!;
  assert.equal(order.length, 80);
  const epochs = [order.subarray(0, 32), order.subarray(32, 64), order.subarray(64, 80)];
  for (const rows of epochs) assert.equal(new Set(rows).size, rows.length, 'no row twice within an epoch');
  for (const row of order) assert.ok(row >= 0 && row < 40);
  assert.notDeepEqual([...epochs[0]!], [...epochs[1]!]);
  assert.deepEqual(bench.profiledSteps, [false, false, true, true, true]);
  const result = JSON.parse(out) as Record<string, unknown>;
  assert.equal(typeof result.examplesPerSecond, 'number');
  assert.equal(typeof result.stepMilliseconds, 'number');
  assert.equal(typeof result.hostQueueMilliseconds, 'number');
  delete result.examplesPerSecond;
  delete result.stepMilliseconds;
  delete result.hostQueueMilliseconds;
  assert.deepEqual(result, {
    model: 'parity',
    engine: 'cuda',
    device: 'Recording GPU',
    gpu: 'Recording GPU',
    precision: 'tf32',
    source: 'device',
    batchSize: 16,
    measuredSteps: 3,
    warmupSteps: 2,
    peakDeviceMemoryBytes: 2,
    datasetBytes: 4000,
    phaseMilliseconds: { forward: 1 },
  });
});

test('--benchmark on the CUDA engine, disk source: batches streamed from the shards; fp16 reports its skipped steps', async () => {
  const ir = compile(spec({ optimizer: 'sgd(learning_rate: 0.1)' }));
  ir.train.batchSize = 16;
  ir.train.mixedPrecision = 'fp16';
  const dir = mkdtempSync(join(tmpdir(), 'wndc-cuda-bench-'));
  writeRandomShards(dir, ir, { rows: 40 });
  const { engine, addon } = await recorded(ir);
  let out = '';
  const io = { stdout: (s: string) => (out += s), stderr: () => undefined, cwd: REPO, color: false };
  assert.equal(await cudaBenchmark(ir, engine, openShards(dir), { benchmarkSource: 'disk', benchmarkSteps: '3', benchmarkWarmupSteps: '1' }, io), 0);
  const model = addon.models.at(-1)!;
  assert.deepEqual(
    model.batches.map((b) => b.size),
    [16, 16, 16, 16],
  );
  assert.deepEqual(
    model.steps.map((s) => s.step),
    [0, 1, 2, 3],
  );
  const result = JSON.parse(out) as Record<string, unknown>;
  assert.deepEqual([result.source, result.precision, result.measuredSteps, result.skippedSteps, result.lossScale, 'datasetBytes' in result], ['disk', 'fp16', 3, 0, 1, false]);
  // Fewer rows than a batch: the disk source cannot make one; the device source repeats rows.
  const small = mkdtempSync(join(tmpdir(), 'wndc-cuda-bench-'));
  writeRandomShards(small, ir, { rows: 10 });
  await assert.rejects(cudaBenchmark(ir, engine, openShards(small), { benchmarkSource: 'disk' }, io), { message: 'the data has 10 rows, fewer than one batch of 16 (give --synthetic_rows 16 or more)' });
  const orders = new DeviceOrders(10, 16, 3);
  assert.equal(orders.batchesPerEpoch, 1);
  const order = orders.epoch(0);
  assert.equal(order.length, 20);
  for (const half of [order.subarray(0, 10), order.subarray(10)]) assert.deepEqual([...half].sort((a, b) => a - b), Array.from({ length: 10 }, (_, i) => i));
});

test('data parallelism: joinWorld joins and takes rank 0\'s state; a step with a slice passes the global rows and its offset', async () => {
  const ir = compile(spec({ optimizer: 'sgd(learning_rate: 0.1)' }));
  const { engine, model } = await recorded(ir);
  const id = engine.newJobId();
  assert.equal(id.length, 128);
  engine.joinWorld(id, 1, 2);
  assert.deepEqual(model.world, ['join 128 bytes as 1/2', 'broadcast from 0']);
  const batch = randomBatch(ir, 8, 3);
  await engine.trainStep(batch, 0, { wide: 0.1, deep: 0.1 }, { offset: 8, total: 16 });
  assert.equal(model.steps.at(-1)!.scalars.globalRows, 16);
  assert.equal(model.steps.at(-1)!.scalars.rowOffset, 8);
  await engine.trainStep(batch, 1, { wide: 0.1, deep: 0.1 });
  assert.equal(model.steps.at(-1)!.scalars.globalRows, undefined, 'no slice: the batch is the whole global batch');
});

test('data parallelism: joinCollective gives the model the collective\'s timeout for its waits on the other ranks', async () => {
  const ir = compile(spec({ optimizer: 'sgd(learning_rate: 0.1)' }));
  // Rank 1 of 2: the job id comes from rank 0 through the collective (its length, then its bytes).
  const id = new Uint8Array(128).fill(7);
  const collective = {
    rank: 1,
    size: 2,
    backend: 'fake',
    timeoutSeconds: 42,
    async broadcast<T extends ArrayBufferView>(buffer: T): Promise<T> {
      if (buffer instanceof Float64Array) buffer[0] = id.length;
      else new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.byteLength).set(id);
      return buffer;
    },
    allReduceSum: async <T,>(b: T) => b,
    allGather: async (b: Uint8Array) => [b],
    barrier: async () => {},
    close: async () => {},
    abort: () => {},
  };
  const { engine, model } = await recorded(ir);
  await engine.joinCollective(collective);
  assert.deepEqual(model.world, ['join 128 bytes as 1/2, waits for the others at most 42 s', 'broadcast from 0']);
  const untimed = await recorded(ir);
  await untimed.engine.joinCollective({ ...collective, timeoutSeconds: undefined });
  assert.deepEqual(untimed.model.world, ['join 128 bytes as 1/2', 'broadcast from 0']);
});

// ------------------------------------------------------------------------------------------------
// 3. Parity with the tfjs engine on a GPU (strict fp32, the tfjs engine's dropout masks).
//
// Tolerance: |cuda - tfjs| <= 1e-5 * max(1, |tfjs|), element by element. Both engines round every
// operation to float32 (unit roundoff u = 6e-8) but sum in different orders (blocked and parallel
// reductions on the GPU, sequential loops in tfjs). Two orders of an n-term sum differ by at most
// about n * u * sum|terms|; here n <= 64 (the rows of a batch; the widest layer input is 45) and
// the terms are O(1), so a few 1e-6 at worst and far less in practice: the tfjs wasm and cpu
// backends, which also sum in different orders, differ by at most 9e-7 on these very tests. 1e-5
// keeps a margin and still catches a wrong term (a missing id, an unpruned weight, a wrong
// combiner moves values by 1e-2 or more). Values below 1 are compared absolutely: a sum that
// cancels to near 0 has no meaningful relative error.

const TOLERANCE = 1e-5;

function assertClose(actual: ArrayLike<number>, expected: ArrayLike<number>, what: string): void {
  assert.equal(actual.length, expected.length, `${what}: length`);
  let worst = 0;
  let at = -1;
  for (let i = 0; i < expected.length; i++) {
    const excess = Math.abs(actual[i]! - expected[i]!) / Math.max(1, Math.abs(expected[i]!));
    if (!(excess <= worst)) {
      worst = excess;
      at = i;
    }
  }
  assert.ok(worst <= TOLERANCE, `${what}[${at}]: cuda ${actual[at]}, tfjs ${expected[at]} (relative difference ${worst.toExponential(2)} > ${TOLERANCE})`);
}

function assertGradientsClose(cuda: Gradients, tfjs: Gradients, what: string): void {
  assertClose([cuda.loss], [tfjs.loss], `${what} loss`);
  assert.deepEqual(
    cuda.dense.map((t) => [t.name, t.shape]),
    tfjs.dense.map((t) => [t.name, t.shape]),
  );
  cuda.dense.forEach((t, i) => assertClose(t.data, tfjs.dense[i]!.data, `${what} ${t.name}`));
  const byName = (g: Gradients) => new Map(g.sparse.map((s) => [s.name, s]));
  const [c, r] = [byName(cuda), byName(tfjs)];
  assert.deepEqual([...c.keys()].sort(), [...r.keys()].sort(), `${what}: tables touched`);
  for (const [name, expected] of r) {
    const actual = c.get(name)!;
    assert.equal(actual.dim, expected.dim, `${what} ${name} dim`);
    assert.deepEqual(actual.rows, expected.rows, `${what} ${name} rows`);
    assertClose(actual.values, expected.values, `${what} ${name}`);
  }
}

function assertStateClose(cuda: NamedTensor[], tfjs: NamedTensor[], what: string): void {
  assert.deepEqual(
    cuda.map((t) => [t.name, t.shape]),
    tfjs.map((t) => [t.name, t.shape]),
  );
  cuda.forEach((t, i) => assertClose(t.data, tfjs[i]!.data, `${what} ${t.name}`));
}

/** Skips the test, with cudaAvailability()'s reason, where no GPU can run the engine. */
function onGpu(t: TestContext): NativeAddon | null {
  if (!availability.ok) {
    t.skip(`no CUDA here: ${availability.reason}`);
    return null;
  }
  return availability.addon;
}

async function enginePair(addon: NativeAddon, ir: ModelIR, seed: number, options: CudaEngineOptions = {}): Promise<{ cuda: CudaEngine; tfjs: TfjsEngine }> {
  const cuda = await CudaEngine.create({ addon, strictFp32: true, exactDropout: true, ...options });
  await cuda.build(ir, seed);
  const tfjs = await TfjsEngine.create({ backend: 'cpu' });
  await tfjs.build(ir, seed);
  return { cuda, tfjs };
}

const OPTIMIZERS: Record<string, string> = {
  ftrl: 'ftrl(learning_rate: 0.1, l1: 0.001, l2: 0.01, l2_shrinkage: 0.001)',
  'ftrl (learning_rate_power -0.7)': 'ftrl(learning_rate: 0.1, learning_rate_power: -0.7)',
  proximal_adagrad: 'proximal_adagrad(learning_rate: 0.1, l1: 0.001, l2: 0.01)',
  adagrad: 'adagrad(learning_rate: 0.1)',
  adam: 'adam(learning_rate: 0.01)',
  sgd: 'sgd(learning_rate: 0.1)',
  'sgd with momentum': 'sgd(learning_rate: 0.1, momentum: 0.9)',
  'sgd with nesterov momentum': 'sgd(learning_rate: 0.1, momentum: 0.9, nesterov: true)',
};

for (const [label, optimizer] of Object.entries(OPTIMIZERS)) {
  test(`GPU parity, ${label}: initial state bit for bit, predict, gradients, and every parameter and slot after 5 steps`, async (t) => {
    const addon = onGpu(t);
    if (addon === null) return;
    const ir = compile(spec({ optimizer }));
    const { cuda, tfjs } = await enginePair(addon, ir, 17);
    try {
      assertSameState(await cuda.state(), await tfjs.state(), 'initial state');
      const batch = randomBatch(ir, 64, 1);
      assertClose(await cuda.predict(batch), await tfjs.predict(batch), 'predict');
      assertGradientsClose(await cuda.gradients(batch, 0), await tfjs.gradients(batch, 0), 'gradients');
      const lr = { wide: ir.wide.optimizer.learningRate, deep: ir.deep.optimizer.learningRate };
      for (let step = 0; step < 5; step++) {
        const b = randomBatch(ir, 64, 100 + step);
        const [c, r] = [await cuda.trainStep(b, step, lr), await tfjs.trainStep(b, step, lr)];
        assertClose([c.loss], [r.loss], `step ${step} loss`);
        assert.equal(c.skippedSteps, 0);
      }
      assertStateClose(await cuda.state(), await tfjs.state(), 'after 5 steps');
    } finally {
      cuda.dispose();
      tfjs.dispose();
    }
  });
}

/**
 * predict, gradients and `steps` training steps against the tfjs engine (the first step profiled),
 * then every parameter and slot; gives the profiled step's phase names (they show its schedule).
 */
async function parityRun(addon: NativeAddon, ir: ModelIR, seed: number, steps: number): Promise<string[]> {
  const { cuda, tfjs } = await enginePair(addon, ir, seed);
  try {
    const batch = randomBatch(ir, 64, 2);
    assertClose(await cuda.predict(batch), await tfjs.predict(batch), 'predict');
    assertGradientsClose(await cuda.gradients(batch, 0), await tfjs.gradients(batch, 0), 'gradients');
    const lr: LearningRates = { wide: ir.wide.optimizer.learningRate, deep: ir.deep.optimizer.learningRate };
    let names: string[] = [];
    for (let step = 0; step < steps; step++) {
      const b = randomBatch(ir, 64, 200 + step);
      cuda.setProfiling(step === 0);
      const [c, r] = [await cuda.trainStep(b, step, lr), await tfjs.trainStep(b, step, lr)];
      if (step === 0) names = Object.keys(cuda.phaseTimes());
      assertClose([c.loss], [r.loss], `step ${step} loss`);
    }
    assertStateClose(await cuda.state(), await tfjs.state(), `after ${steps} steps`);
    return names;
  } finally {
    cuda.dispose();
    tfjs.dispose();
  }
}

// With WNDC_CUDA_FUSED_EPILOGUES=1, hidden layers of a multiple of 128 ReLU units without dropout or
// batch norm that feed another hidden layer run their ReLU in cuBLASLt's epilogues (RELU_AUX_BIAS
// forward, DRELU_BGRAD backward): layers 0 and 1 here.
test('GPU parity, fused ReLU epilogues (hidden [256, 128, 128]): predict, gradients, and every parameter and slot after 5 steps', async (t) => {
  const addon = onGpu(t);
  if (addon === null) return;
  const ir = compile(spec({ optimizer: 'adagrad(learning_rate: 0.05)', hiddenUnits: '[256, 128, 128]' }));
  const names = await withEnv({ WNDC_CUDA_FUSED_EPILOGUES: '1' }, () => parityRun(addon, ir, 23, 5));
  for (const layer of [1, 2]) assert.ok(names.includes(`layer ${layer} input gradient (fused ReLU and bias gradient)`), `layer ${layer} fused: ${names.join(', ')}`);
});

// One GPU runs the kernel-gradient products on a stream of their own beside the backward chain
// (each layer keeps its own dP); WNDC_CUDA_PRODUCTS_BESIDE=0 runs them inline. Both must give the
// tfjs engine's numbers, with and without the fused epilogues (which write the layer below's dP).
for (const [label, vars, beside] of [
  ['beside the chain (default)', { WNDC_CUDA_PRODUCTS_BESIDE: undefined }, true],
  ['inline (WNDC_CUDA_PRODUCTS_BESIDE=0)', { WNDC_CUDA_PRODUCTS_BESIDE: '0' }, false],
  ['beside the chain, fused epilogues', { WNDC_CUDA_PRODUCTS_BESIDE: undefined, WNDC_CUDA_FUSED_EPILOGUES: '1' }, true],
] as const) {
  test(`GPU parity, kernel-gradient products ${label}: predict, gradients, and every parameter and slot after 4 steps`, async (t) => {
    const addon = onGpu(t);
    if (addon === null) return;
    const ir = compile(spec({ optimizer: 'proximal_adagrad(learning_rate: 0.1, l1: 0.001, l2: 0.01)', hiddenUnits: '[256, 128, 128]' }));
    const names = await withEnv(vars, () => parityRun(addon, ir, 31, 4));
    assert.equal(names.includes('kernel gradients (beside the chain)'), beside, names.join(', '));
    assert.equal(names.includes('layer 0 kernel gradient'), !beside, names.join(', '));
  });
}

// The lookup kernels keep a row's first 128 ids in registers and read the rest from memory.
test('GPU parity, a bag of up to 140 ids (a row wider than the 128 ids held in registers): predict, gradients, and the state after 3 steps', async (t) => {
  const addon = onGpu(t);
  if (addon === null) return;
  const ir = compile(spec({ optimizer: 'adagrad(learning_rate: 0.05)', tagLength: 140 }));
  assert.ok(ir.layout.idsWidth > 128, `ids width ${ir.layout.idsWidth}`);
  const { cuda, tfjs } = await enginePair(addon, ir, 29);
  try {
    const batch = randomBatch(ir, 64, 4);
    assertClose(await cuda.predict(batch), await tfjs.predict(batch), 'predict');
    assertGradientsClose(await cuda.gradients(batch, 0), await tfjs.gradients(batch, 0), 'gradients');
    const lr = { wide: ir.wide.optimizer.learningRate, deep: ir.deep.optimizer.learningRate };
    for (let step = 0; step < 3; step++) {
      const b = randomBatch(ir, 64, 300 + step);
      const [c, r] = [await cuda.trainStep(b, step, lr), await tfjs.trainStep(b, step, lr)];
      assertClose([c.loss], [r.loss], `step ${step} loss`);
    }
    assertStateClose(await cuda.state(), await tfjs.state(), 'after 3 steps');
  } finally {
    cuda.dispose();
    tfjs.dispose();
  }
});

for (const activation of ['relu', 'tanh', 'sigmoid', 'gelu']) {
  test(`GPU parity, ${activation} with dropout 0.3 (the tfjs engine's masks) and batch norm: gradients, and the moving averages after 2 steps`, async (t) => {
    const addon = onGpu(t);
    if (addon === null) return;
    const ir = compile(spec({ optimizer: 'adagrad(learning_rate: 0.05)', activation, dropout: 0.3, batchNorm: true }));
    const { cuda, tfjs } = await enginePair(addon, ir, 23);
    try {
      const batch = randomBatch(ir, 64, 2);
      assertClose(await cuda.predict(batch), await tfjs.predict(batch), 'predict');
      assertGradientsClose(await cuda.gradients(batch, 3), await tfjs.gradients(batch, 3), 'gradients');
      const lr = { wide: 0.05, deep: 0.05 };
      for (let step = 0; step < 2; step++) {
        const b = randomBatch(ir, 64, 200 + step);
        assertClose([(await cuda.trainStep(b, step, lr)).loss], [(await tfjs.trainStep(b, step, lr)).loss], `step ${step} loss`);
      }
      assertStateClose(await cuda.state(), await tfjs.state(), 'after 2 steps');
    } finally {
      cuda.dispose();
      tfjs.dispose();
    }
  });
}

test('GPU: the addon\'s own dropout masks are seeded by the step: the same step gives the same gradients, another step others', async (t) => {
  const addon = onGpu(t);
  if (addon === null) return;
  const ir = compile(spec({ optimizer: 'sgd(learning_rate: 0.1)', dropout: 0.3 }));
  const cuda = await CudaEngine.create({ addon, strictFp32: true });
  try {
    await cuda.build(ir, 3);
    const batch = randomBatch(ir, 64, 4);
    const [a, b] = [await cuda.gradients(batch, 0), await cuda.gradients(batch, 0)];
    assert.deepEqual(a.dense[0]!.data, b.dense[0]!.data, 'the same step draws the same masks');
    const c = await cuda.gradients(batch, 1);
    assert.notDeepEqual(a.dense[0]!.data, c.dense[0]!.data, 'another step draws other masks');
    assert.ok(Number.isFinite(a.loss));
  } finally {
    cuda.dispose();
  }
});

test('GPU: a batch past the capacity is refused, predict of a larger batch is split', async (t) => {
  const addon = onGpu(t);
  if (addon === null) return;
  const ir = compile(spec({ optimizer: 'adagrad(learning_rate: 0.1)' }));
  const { cuda, tfjs } = await enginePair(addon, ir, 5, { batchCapacity: 32 });
  try {
    const batch = randomBatch(ir, 80, 6);
    await assert.rejects(cuda.trainStep(batch, 0, { wide: 0.1, deep: 0.1 }), /a training batch of 80 rows is larger than the 32 rows/);
    assertClose(await cuda.predict(batch), await tfjs.predict(batch), 'predict in pieces');
  } finally {
    cuda.dispose();
    tfjs.dispose();
  }
});

test('GPU: checkpoints move between the engines (state of one loads into the other)', async (t) => {
  const addon = onGpu(t);
  if (addon === null) return;
  const ir = compile(spec({ optimizer: 'adam(learning_rate: 0.01)', batchNorm: true }));
  const { cuda, tfjs } = await enginePair(addon, ir, 8);
  try {
    const lr = { wide: 0.01, deep: 0.01 };
    for (let step = 0; step < 3; step++) await tfjs.trainStep(randomBatch(ir, 64, 300 + step), step, lr);
    const trained = await tfjs.state();
    await cuda.loadState(trained);
    assertSameState(await cuda.state(), trained, 'loaded into cuda');
    const b = randomBatch(ir, 64, 400);
    assertClose(await cuda.predict(b), await tfjs.predict(b), 'predict after loading');
  } finally {
    cuda.dispose();
    tfjs.dispose();
  }
});

for (const precision of ['bf16', 'fp16'] as const) {
  test(`GPU ${precision}: steps run with finite losses close to fp32's`, async (t) => {
    const addon = onGpu(t);
    if (addon === null) return;
    const ir = compile(spec({ optimizer: 'adagrad(learning_rate: 0.05)', batchNorm: true }));
    const reference = await CudaEngine.create({ addon, strictFp32: true });
    const mixed = await CudaEngine.create({ addon });
    try {
      await reference.build(ir, 4);
      const amp = structuredClone(ir);
      amp.train.mixedPrecision = precision;
      await mixed.build(amp, 4);
      assert.equal(mixed.precision, precision);
      const lr = { wide: 0.05, deep: 0.05 };
      for (let step = 0; step < 5; step++) {
        const b = randomBatch(ir, 64, 500 + step);
        const [r, m] = [await reference.trainStep(b, step, lr), await mixed.trainStep(b, step, lr)];
        assert.ok(Number.isFinite(m.loss), `step ${step}: loss ${m.loss}`);
        // 8 (bf16) or 11 (fp16) significant bits in the products, fp32 accumulation: a loss of
        // about 0.7 moves by well under 5%, while a wrong scale or cast is off by far more.
        assert.ok(Math.abs(m.loss - r.loss) <= 0.05 * r.loss, `step ${step}: ${precision} loss ${m.loss}, fp32 ${r.loss}`);
      }
    } finally {
      reference.dispose();
      mixed.dispose();
    }
  });
}

test('GPU fp16: steps whose scaled gradients overflow are skipped, counted, and leave the weights as they were', async (t) => {
  const addon = onGpu(t);
  if (addon === null) return;
  const ir = compile(spec({ optimizer: 'sgd(learning_rate: 0.1)' }));
  ir.train.mixedPrecision = 'fp16';
  // 2^40 times gradients of order 1e-2 is far past fp16's largest value, 65504.
  const cuda = await CudaEngine.create({ addon, lossScale: { initial: 2 ** 40, growthInterval: 2000 } });
  try {
    await cuda.build(ir, 6);
    const before = await cuda.state();
    const first = await cuda.trainStep(randomBatch(ir, 64, 7), 0, { wide: 0.1, deep: 0.1 });
    assert.equal(first.skippedSteps, 1);
    assert.equal(cuda.skippedSteps(), 1);
    assert.ok(cuda.lossScale() < 2 ** 40, `the scale shrinks after a skipped step: ${cuda.lossScale()}`);
    assertSameState(await cuda.state(), before, 'after a skipped step');
    // The scale halves on every skip (or as the addon shrinks it): it comes back into range and steps apply again.
    let applied = false;
    for (let step = 1; step < 60 && !applied; step++) {
      const skipped = cuda.skippedSteps();
      const result = await cuda.trainStep(randomBatch(ir, 64, 7 + step), step, { wide: 0.1, deep: 0.1 });
      assert.ok(Number.isFinite(result.loss), `step ${step}: loss ${result.loss}`);
      applied = result.skippedSteps === skipped;
    }
    assert.ok(applied, `every step skipped; the scale is ${cuda.lossScale()}`);
  } finally {
    cuda.dispose();
  }
});

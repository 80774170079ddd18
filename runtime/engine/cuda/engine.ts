// The CUDA engine: wndc's native addon (native/src, build/wndc_cuda.node) behind the engine
// interface. The addon owns the device memory and runs every kernel; this side plans the model
// (plan.ts), uploads the seeded initial values of init.ts so one seed gives one starting model on
// every engine, and maps the addon's parameter indices back to the engine's parameter names.
//
// Batches: `trainStep` copies the batch (setBatch, into pinned memory) before it returns its
// promise, so the caller may refill the batch while the device runs the step (the trainer does).
// Dropout: the addon draws its own masks (counter-based, not the tfjs engine's draws) unless
// `exactDropout` is set; then the masks are drawn here from the same RandomStream as the tfjs
// engine and uploaded, which parity tests need.

import type { ModelIR, OptimizerIR } from '../../../compiler/ir.js';
import type { Batch } from '../../data/contracts.js';
import type { ShardSet } from '../../data/shards.js';
import { adamStepSize, slotLayout, type SlotSpec } from '../../optim/index.js';
import { broadcastBytes, type Collective } from '../../distributed/collective.js';
import type { BatchSlice, Engine, EngineCapabilities, Gradients, LearningRates, NamedTensor, StepResult } from '../engine.js';
import { checkState, type StateTarget } from '../state-check.js';
import { initialValue, parameterSpecs, RandomStream, type ParameterSpec } from '../init.js';
import { dropoutMask } from '../tfjs/model.js';
import type { NativeAddon, NativeBatch, NativeDevice, NativeMemory, NativeModel, NativePhaseTimes, NativePlan, NativePrecision, NativeStepScalars, TableExchange } from './addon-api.js';
import { CudaUnavailableError, loadCudaAddon } from './load-addon.js';
import { nativePlan, nativePrecision } from './plan.js';

export interface CudaEngineOptions {
  /** The GPU's index among the visible devices (default 0). */
  device?: number;
  /** fp32 matrix products without TF32 tensor cores (`--no-tf32`); only when the IR's mixed precision is `off`. */
  strictFp32?: boolean;
  /** Draw dropout masks on the host exactly as the tfjs engine does (slower; parity tests). */
  exactDropout?: boolean;
  /** The largest batch a training call may pass (default: the larger of the IR's batch sizes); predict splits larger batches. */
  batchCapacity?: number;
  /** fp16 dynamic loss scaling's start and growth interval (default TF's 2^15 and 2000). */
  lossScale?: { initial: number; growthInterval: number };
  /** An addon already loaded (e.g. `cudaAvailability().addon`); default `loadCudaAddon()`. */
  addon?: NativeAddon;
}

interface Built {
  ir: ModelIR;
  seed: number;
  specs: ParameterSpec[];
  plan: NativePlan;
  model: NativeModel;
  /** Each parameter's optimizer slots, by parameter index (none for statistics). */
  slots: SlotSpec[][];
  /** Indices of the densely trained parameters, in order: NativeGradients.dense follows it. */
  dense: number[];
  /** Rows of the device dataset (`preload`), and the length of the row order set on it. */
  datasetRows: number;
  orderLength: number;
}

export class CudaEngine implements Engine {
  readonly name = 'cuda';
  readonly capabilities: EngineCapabilities;
  /** The trainer may refill a batch as soon as `trainStep` has returned its promise. */
  readonly copiesBatchOnCall = true;
  /** The cuBLASLt library loaded (its path). */
  readonly cublasLt: string;
  private built: Built | null = null;

  /**
   * Loads the addon and cuBLASLt and picks the GPU; throws CudaUnavailableError, saying what is
   * missing, when the addon, the driver, a GPU or cuBLASLt cannot be had.
   */
  static async create(options: CudaEngineOptions = {}): Promise<CudaEngine> {
    const addon = options.addon ?? loadCudaAddon();
    const index = options.device ?? 0;
    // The same reasons, in the same words, as cudaAvailability() gives.
    let devices: NativeDevice[];
    try {
      devices = addon.devices();
    } catch (e) {
      throw new CudaUnavailableError(`no usable GPU: ${(e as Error).message}`);
    }
    let cublasLt: string;
    try {
      cublasLt = addon.loadLibraries({ nccl: false }).cublasLt;
    } catch (e) {
      throw new CudaUnavailableError(`cuBLASLt not found: ${(e as Error).message}`);
    }
    const device = devices.find((d) => d.index === index);
    if (device === undefined) throw new CudaUnavailableError(`no GPU ${index}: ${devices.length === 0 ? 'no GPU is visible' : `the visible GPUs are ${devices.map((d) => `${d.index} (${d.name})`).join(', ')}`}`);
    return new CudaEngine(addon, device, cublasLt, options);
  }

  private constructor(
    private readonly addon: NativeAddon,
    readonly device: NativeDevice,
    cublasLt: string,
    private readonly options: CudaEngineOptions,
  ) {
    this.capabilities = { mixedPrecision: ['bf16', 'fp16'], device: device.name };
    this.cublasLt = cublasLt;
  }

  /** The precision the built model runs in (`tf32` unless strict fp32 or mixed precision was asked). */
  get precision(): NativePrecision {
    return this.model().plan.precision;
  }

  async build(ir: ModelIR, seed: number): Promise<void> {
    this.dispose();
    const specs = parameterSpecs(ir);
    const batchCapacity = this.options.batchCapacity ?? Math.max(ir.train.batchSize, ir.train.evalBatchSize);
    const plan = nativePlan(ir, {
      precision: nativePrecision(ir.train.mixedPrecision, this.options.strictFp32 ?? false),
      batchCapacity,
      seed,
      ...(this.options.lossScale ? { lossScale: this.options.lossScale } : {}),
    });
    const model = this.addon.createModel(plan, this.device.index);
    const optimizerOf = (spec: ParameterSpec): OptimizerIR => (spec.part === 'wide' ? ir.wide.optimizer : ir.deep.optimizer);
    const slots = specs.map((spec) => (spec.role === 'statistic' ? [] : slotLayout(optimizerOf(spec))));
    try {
      specs.forEach((spec, i) => {
        const value = initialValue(spec, seed);
        model.setTensor(i, -1, value);
        slots[i]!.forEach((slot, j) => model.setTensor(i, j, value.fill(slot.init)));
      });
    } catch (e) {
      model.dispose();
      throw e;
    }
    const dense = specs.flatMap((s, i) => (s.role === 'dense' ? [i] : []));
    this.built = { ir, seed, specs, plan, model, slots, dense, datasetRows: 0, orderLength: 0 };
  }

  async predict(batch: Batch): Promise<Float32Array> {
    const m = this.model();
    const out = new Float32Array(batch.size);
    // Rows are independent in inference: a batch larger than the capacity goes in pieces.
    const capacity = m.plan.batchCapacity;
    for (let start = 0; start < batch.size; start += capacity) {
      const size = Math.min(capacity, batch.size - start);
      m.model.setBatch(start === 0 ? batch : rowsOf(batch, m.plan.layout, start, size), size);
      out.set(m.model.predict().subarray(0, size), start);
    }
    return out;
  }

  async gradients(batch: Batch, step: number): Promise<Gradients> {
    const m = this.model();
    checkStep(step);
    if (batch.size === 0) {
      return { loss: 0, dense: m.dense.map((i) => ({ name: m.specs[i]!.name, shape: [...m.specs[i]!.shape], data: new Float32Array(m.plan.parameters[i]!.size) })), sparse: [] };
    }
    this.checkCapacity(m, batch.size);
    m.model.setBatch(batch, batch.size);
    const g = m.model.gradients(step, this.masks(m, batch.size, step));
    if (g.dense.length !== m.dense.length) throw new Error(`internal: the addon returned ${g.dense.length} dense gradients for ${m.dense.length} dense parameters`);
    return {
      loss: g.loss,
      dense: m.dense.map((i, k) => ({ name: m.specs[i]!.name, shape: [...m.specs[i]!.shape], data: g.dense[k]! })),
      sparse: [...g.sparse]
        .sort((a, b) => a.parameter - b.parameter)
        .map((s) => {
          const spec = m.specs[s.parameter] ?? fail(`sparse gradient of parameter ${s.parameter}`);
          return { name: spec.name, rows: s.rows, values: s.values, dim: m.plan.parameters[s.parameter]!.dim };
        }),
    };
  }

  /** Uploads the batch before the first `await`, so the caller may refill it while the step runs. */

  /**
   * With `slice` (after joinWorld): this rank's rows of a global batch; the step sums gradients and
   * loss over the ranks, so every rank applies the update one process would with the whole batch.
   */
  async trainStep(batch: Batch, step: number, lr: LearningRates, slice?: BatchSlice): Promise<StepResult> {
    const m = this.model();
    this.checkCapacity(m, batch.size);
    const scalars = { ...this.scalars(m, step, lr), ...(slice ? { globalRows: slice.total, rowOffset: slice.offset } : {}) };
    m.model.setBatch(batch, batch.size);
    m.model.trainStep(step, scalars, this.masks(m, batch.size, step, slice));
    return this.finishStep(m);
  }

  // --- The device dataset: the fast path when the data fits in device memory. ---

  /** Uploads every row of `data` (shards, or arrays of `rows` rows) to the device; returns the bytes it took. */
  preload(data: ShardSet | { batch: NativeBatch; rows: number }): number {
    const m = this.model();
    const { batch, rows } = 'batch' in data ? data : concatShards(data, m.plan.layout);
    const bytes = m.model.setDataset(batch, rows);
    m.datasetRows = rows;
    m.orderLength = 0;
    return bytes;
  }

  /** The row order of the device dataset (e.g. a fresh permutation per epoch); rows may repeat. */
  setOrder(order: Int32Array): void {
    const m = this.model();
    if (m.datasetRows === 0) throw new Error('internal: setOrder before preload()');
    for (const row of order) if (!(row >= 0 && row < m.datasetRows)) throw new Error(`internal: row ${row} of the order is outside the device dataset of ${m.datasetRows} rows`);
    m.model.setOrder(order);
    m.orderLength = order.length;
  }

  /** One training step on rows order[start .. start + size) of the device dataset. */
  async trainPreloaded(start: number, size: number, step: number, lr: LearningRates): Promise<StepResult> {
    this.enqueuePreloaded(start, size, step, lr);
    return this.finishStep(this.model());
  }

  /**
   * Enqueues that step and returns at once, so the host can queue the next while the GPU runs
   * (benchmarks); `synchronize` waits for every step enqueued and gives the last one's loss.
   */
  enqueuePreloaded(start: number, size: number, step: number, lr: LearningRates, slice?: BatchSlice): void {
    const m = this.model();
    if (!(Number.isInteger(start) && start >= 0 && size >= 1 && start + size <= m.orderLength)) throw new Error(`internal: rows [${start}, ${start + size}) outside the order of ${m.orderLength} rows`);
    this.checkCapacity(m, size);
    const scalars = { ...this.scalars(m, step, lr), ...(slice ? { globalRows: slice.total, rowOffset: slice.offset } : {}) };
    m.model.selectRows(start, size);
    m.model.trainStep(step, scalars, this.masks(m, size, step, slice));
  }

  async synchronize(): Promise<StepResult> {
    return this.finishStep(this.model());
  }

  // --- Data parallelism over NCCL. ---

  /** A new job id for `joinWorld` (rank 0 makes it and hands it to the other ranks). */
  newJobId(): Uint8Array {
    try {
      return this.addon.ncclUniqueId();
    } catch (e) {
      throw new CudaUnavailableError(`NCCL not found: ${(e as Error).message}`);
    }
  }

  /**
   * Makes the built model rank `rank` of a data-parallel job of `size` GPUs (NCCL), then gives every
   * rank rank 0's parameters and optimizer state. Every rank must call it, with the same id. With
   * `timeoutSeconds` > 0, a step that waits that long for the other ranks fails (see addon-api.ts).
   */
  joinWorld(id: Uint8Array, rank: number, size: number, timeoutSeconds = 0): void {
    const m = this.model();
    m.model.joinWorld(id, rank, size, timeoutSeconds);
    m.model.broadcastState(0);
  }

  /**
   * Joins the ranks of `collective` over NCCL (rank 0 makes the job id, the host collective carries
   * it): afterwards `trainStep(batch, step, lr, slice)` sums gradients and loss over the ranks.
   */
  async joinCollective(collective: Collective): Promise<void> {
    const id = await broadcastBytes(collective, collective.rank === 0 ? this.newJobId() : null, 0);
    // The steps wait for the other ranks as long as the collective's own operations may.
    this.joinWorld(id, collective.rank, collective.size, collective.timeoutSeconds ?? 0);
  }

  /** How each table's gradients travel between ranks (after joinWorld). */
  exchangePlan(): TableExchange[] {
    return this.model().model.exchangePlan();
  }

  // --- Device facts for the benchmark. ---

  memory(): NativeMemory {
    return this.model().model.memory();
  }

  setProfiling(on: boolean): void {
    this.model().model.setProfiling(on);
  }

  /** Mean milliseconds per step in each phase, since profiling was turned on. */
  phaseTimes(): NativePhaseTimes {
    return this.model().model.phaseTimes();
  }

  /** fp16: steps skipped for Inf/NaN gradients since build, and the current loss scale. */
  skippedSteps(): number {
    return this.model().model.skippedSteps();
  }

  lossScale(): number {
    return this.model().model.lossScale();
  }

  async state(): Promise<NamedTensor[]> {
    const m = this.model();
    const out: NamedTensor[] = [];
    m.specs.forEach((spec, i) => {
      out.push({ name: spec.name, shape: [...spec.shape], data: m.model.getTensor(i, -1) });
      m.slots[i]!.forEach((slot, j) => out.push({ name: `${spec.name}/${slot.name}`, shape: [...spec.shape], data: m.model.getTensor(i, j) }));
    });
    return out;
  }

  async loadState(tensors: readonly NamedTensor[]): Promise<void> {
    const m = this.model();
    // The same names, order and messages as the tfjs engine's loadState (checkpoints move between engines).
    const targets = new Map<string, StateTarget & { parameter: number; slot: number }>();
    m.specs.forEach((spec, i) => {
      const size = m.plan.parameters[i]!.size;
      targets.set(spec.name, { shape: spec.shape, size, parameter: i, slot: -1 });
      m.slots[i]!.forEach((slot, j) => targets.set(`${spec.name}/${slot.name}`, { shape: spec.shape, size, parameter: i, slot: j }));
    });
    const given = checkState(m.ir.model, targets, tensors);
    for (const [name, target] of targets) m.model.setTensor(target.parameter, target.slot, given.get(name)!.data);
  }

  dispose(): void {
    this.built?.model.dispose();
    this.built = null;
  }

  private model(): Built {
    if (this.built === null) throw new Error('internal: the engine is used before build()');
    return this.built;
  }

  private checkCapacity(m: Built, size: number): void {
    if (size > m.plan.batchCapacity) {
      throw new Error(`a training batch of ${size} rows is larger than the ${m.plan.batchCapacity} rows the CUDA engine was built for; build it with a larger \`batchCapacity\``);
    }
  }

  /** Waits for the step on the device; its loss and the fp16 skip count. */
  private async finishStep(m: Built): Promise<StepResult> {
    await m.model.synchronize();
    return { loss: m.model.lastLoss(), skippedSteps: m.model.skippedSteps() };
  }

  /** Learning rates and Adam's step sizes, as runtime/optim computes them (float32 hyperparameters). */
  private scalars(m: Built, step: number, lr: LearningRates): NativeStepScalars {
    checkStep(step);
    const adamStep = (ir: OptimizerIR, rate: number): number => (ir.kind === 'adam' ? adamStepSize(Math.fround(rate), Math.fround(ir.beta1), Math.fround(ir.beta2), step) : 0);
    const wide = checkRate(m.ir.wide.optimizer, lr.wide);
    const deep = checkRate(m.ir.deep.optimizer, lr.deep);
    return { lrWide: wide, lrDeep: deep, adamStepWide: adamStep(m.ir.wide.optimizer, wide), adamStepDeep: adamStep(m.ir.deep.optimizer, deep) };
  }

  /** exactDropout: the tfjs engine's masks (RandomStream `dropout/<step>`, hidden layers in order); else null, the addon draws. */
  /**
   * exactDropout: the tfjs engine's masks of step `step`; with `slice`, this rank's rows of the
   * global batch's masks (drawn for all `slice.total` rows, layer after layer, as one process would).
   */
  private masks(m: Built, size: number, step: number, slice?: BatchSlice): Float32Array[] | null {
    const rate = m.plan.deep.dropout;
    if (!this.options.exactDropout || rate <= 0) return null;
    const stream = new RandomStream(m.seed, `dropout/${step}`);
    const rows = slice?.total ?? size;
    const offset = slice?.offset ?? 0;
    return m.plan.deep.layers
      .filter((l) => l.hidden)
      .map((l) => dropoutMask(stream, rows * l.units, rate).subarray(offset * l.units, (offset + size) * l.units));
  }
}

/** Rows [start, start + size) of a batch, as views. */
function rowsOf(batch: NativeBatch, layout: NativePlan['layout'], start: number, size: number): NativeBatch {
  const cut = <T extends Int32Array | Float32Array>(a: T, width: number): T => a.subarray(start * width, (start + size) * width) as T;
  return {
    ids: cut(batch.ids, layout.idsWidth),
    lengths: cut(batch.lengths, layout.lengthsWidth),
    weights: cut(batch.weights, layout.weightsWidth),
    numeric: cut(batch.numeric, layout.numericWidth),
    label: cut(batch.label, 1),
    weight: cut(batch.weight, 1),
  };
}

/** Every row of a shard set as one host batch (example weights 1 without a weight column, as BatchReader). */
function concatShards(shards: ShardSet, layout: NativePlan['layout']): { batch: NativeBatch; rows: number } {
  const rows = shards.rows;
  const batch: NativeBatch = {
    ids: new Int32Array(rows * layout.idsWidth),
    lengths: new Int32Array(rows * layout.lengthsWidth),
    weights: new Float32Array(rows * layout.weightsWidth),
    numeric: new Float32Array(rows * layout.numericWidth),
    label: new Float32Array(rows),
    weight: new Float32Array(rows).fill(1),
  };
  let at = 0;
  for (let s = 0; s < shards.shardCount; s++) {
    const shard = shards.load(s);
    batch.ids.set(shard.ids, at * layout.idsWidth);
    batch.lengths.set(shard.lengths, at * layout.lengthsWidth);
    batch.weights.set(shard.weights, at * layout.weightsWidth);
    batch.numeric.set(shard.numeric, at * layout.numericWidth);
    batch.label.set(shard.label, at);
    if (shard.weight !== null) batch.weight.set(shard.weight, at);
    at += shard.rows;
  }
  if (at !== rows) throw new Error(`internal: the shards hold ${at} rows, the manifest says ${rows}`);
  return { batch, rows };
}

/** runtime/optim's checks of what the trainer passes: a bad rate or step is a wndc bug. */
function checkRate(ir: OptimizerIR, lr: number): number {
  if (!Number.isFinite(lr) || lr < 0) throw new Error(`internal: learning rate ${lr} is not a finite number >= 0`);
  if (ir.kind === 'ftrl' && Math.fround(lr) === 0) throw new Error('internal: ftrl needs a learning rate > 0 (it divides by it), got 0 from the schedule');
  return lr;
}

function checkStep(step: number): void {
  if (!Number.isInteger(step) || step < 0) throw new Error(`internal: optimizer step ${step} is not a non-negative integer`);
}


function fail(what: string): never {
  throw new Error(`internal: ${what}`);
}

// The reference engine: the IR-driven Wide & Deep model on TensorFlow.js. Parameters and optimizer
// slots live on the host as Float32Arrays (the checkpointed state, and what runtime/optim
// updates); each call uploads the dense parameters and the table rows the batch reads, runs the
// forward pass (and tfjs autodiff for gradients), and reads the results back.

import type { Tensor } from '@tensorflow/tfjs-core';
import type { ModelIR } from '../../../compiler/ir.js';
import type { Batch } from '../../data/contracts.js';
import { createOptimizer, type Optimizer } from '../../optim/index.js';
import { UnsupportedPrecisionError, type BatchSlice, type Engine, type EngineCapabilities, type Gradients, type LearningRates, type NamedTensor, type StepResult } from '../engine.js';
import { checkState, type StateTarget } from '../state-check.js';
import { initialValue, parameterSpecs, RandomStream, type ParameterSpec } from '../init.js';
import { activate, loadBackend, type LoadedBackend, type LoadOptions, type TfjsBackendChoice } from './backend.js';
import { RowGradientAccumulator } from './lookups.js';
import { BATCH_NORM_MOMENTUM, forward, loss, planModel, prepareBatch, type ForwardInputs, type ModelPlan, type PreparedBatch } from './model.js';

export interface TfjsEngineOptions extends LoadOptions {
  /** The backend (`--engine tfjs-cpu` asks for `cpu`); `auto` takes the fastest that loads. */
  backend?: TfjsBackendChoice;
}

interface Built {
  ir: ModelIR;
  seed: number;
  plan: ModelPlan;
  specs: ParameterSpec[];
  values: Map<string, Float32Array>;
  /** Optimizer slots of every trained parameter, in the optimizer's slot order. */
  slots: Map<string, Float32Array[]>;
  optimizers: { wide: Optimizer; deep: Optimizer };
  /** Reused from step to step: it keeps an id -> position index per table. */
  rowGradients: RowGradientAccumulator;
}

export class TfjsEngine implements Engine {
  readonly name = 'tfjs';
  readonly capabilities: EngineCapabilities;
  private built: Built | null = null;

  /** Loads the backend (see backend.ts) and returns an engine running on it. */
  static async create(options: TfjsEngineOptions = {}): Promise<TfjsEngine> {
    return new TfjsEngine(await loadBackend(options.backend ?? 'auto', options));
  }

  private constructor(readonly backend: LoadedBackend) {
    this.capabilities = { mixedPrecision: [], device: backend.device };
  }

  async build(ir: ModelIR, seed: number): Promise<void> {
    if (ir.train.mixedPrecision !== 'off') throw new UnsupportedPrecisionError(this.name, ir.train.mixedPrecision);
    const specs = parameterSpecs(ir);
    const optimizers = { wide: createOptimizer(ir.wide.optimizer), deep: createOptimizer(ir.deep.optimizer) };
    const values = new Map<string, Float32Array>();
    const slots = new Map<string, Float32Array[]>();
    for (const spec of specs) {
      const value = initialValue(spec, seed);
      values.set(spec.name, value);
      if (spec.role !== 'statistic') slots.set(spec.name, optimizers[spec.part].createSlots(value.length));
    }
    this.built = { ir, seed, plan: planModel(ir), specs, values, slots, optimizers, rowGradients: new RowGradientAccumulator() };
  }

  async predict(batch: Batch): Promise<Float32Array> {
    const m = this.model();
    await this.useBackend();
    if (batch.size === 0) return new Float32Array(0);
    const prepared = prepareBatch(m.plan, batch, m.values);
    const { tf } = this.backend;
    let p = new Float32Array(0);
    // Results leave tf.tidy through variables: tidy walks whatever it returns, element by element.
    tf.tidy(() => {
      const inputs = this.constantInputs(m, prepared);
      p = Float32Array.from(tf.sigmoid(forward(tf, m.plan, prepared, inputs, { training: false })).dataSync());
    });
    return p;
  }

  async gradients(batch: Batch, step: number, slice?: BatchSlice): Promise<Gradients> {
    await this.useBackend();
    return this.compute(this.model(), batch, step, slice);
  }

  async trainStep(batch: Batch, step: number, lr: LearningRates): Promise<StepResult> {
    const m = this.model();
    await this.useBackend();
    const computed = this.compute(m, batch, step);
    this.apply(m, computed, step, lr);
    return { loss: computed.loss, skippedSteps: 0 };
  }

  async applyGradients(grads: Gradients, step: number, lr: LearningRates): Promise<void> {
    this.apply(this.model(), grads, step, lr);
  }

  async state(): Promise<NamedTensor[]> {
    const m = this.model();
    const out: NamedTensor[] = [];
    for (const spec of m.specs) {
      out.push({ name: spec.name, shape: [...spec.shape], data: Float32Array.from(m.values.get(spec.name)!) });
      const slotSpecs = m.optimizers[spec.part].slots;
      m.slots.get(spec.name)?.forEach((slot, i) => out.push({ name: `${spec.name}/${slotSpecs[i]!.name}`, shape: [...spec.shape], data: Float32Array.from(slot) }));
    }
    return out;
  }

  async loadState(tensors: readonly NamedTensor[]): Promise<void> {
    const m = this.model();
    const targets = new Map<string, StateTarget & { data: Float32Array }>();
    for (const spec of m.specs) {
      const value = m.values.get(spec.name)!;
      targets.set(spec.name, { shape: spec.shape, size: value.length, data: value });
      const slotSpecs = m.optimizers[spec.part].slots;
      m.slots.get(spec.name)?.forEach((slot, i) => targets.set(`${spec.name}/${slotSpecs[i]!.name}`, { shape: spec.shape, size: slot.length, data: slot }));
    }
    const given = checkState(m.ir.model, targets, tensors);
    for (const [name, target] of targets) target.data.set(given.get(name)!.data);
  }

  dispose(): void {
    this.built = null;
  }

  /** Each part's optimizer on the gradients, then the batch-norm moving averages. */
  private apply(m: Built, grads: Gradients, step: number, lr: LearningRates): void {
    const partOf = new Map(m.specs.map((s) => [s.name, s.part]));
    const part = (name: string) => {
      const p = partOf.get(name);
      if (p === undefined || !m.slots.has(name)) throw new Error(`internal: a gradient for \`${name}\`, which the model does not train`);
      return p;
    };
    for (const grad of grads.dense) {
      const p = part(grad.name);
      m.optimizers[p].applyDense(m.values.get(grad.name)!, grad.data, m.slots.get(grad.name)!, lr[p], step);
    }
    for (const grad of grads.sparse) {
      const p = part(grad.name);
      m.optimizers[p].applySparse(m.values.get(grad.name)!, grad.dim, grad.rows, grad.values, m.slots.get(grad.name)!, lr[p], step);
    }
    for (const statistic of grads.statistics ?? []) {
      const average = m.values.get(statistic.name);
      if (average === undefined) throw new Error(`internal: a batch statistic for \`${statistic.name}\`, which the model does not have`);
      movingAverage(average, statistic.data);
    }
  }

  /** tfjs runs one backend at a time: another engine (or test) may have switched it. */
  private async useBackend(): Promise<void> {
    if (this.backend.tf.getBackend() !== this.backend.tfName) await activate(this.backend.tf, this.backend.tfName);
  }

  private model(): Built {
    if (this.built === null) throw new Error('internal: the engine is used before build()');
    return this.built;
  }

  /** Every parameter as a tfjs constant, for inference. */
  private constantInputs(m: Built, prepared: PreparedBatch): ForwardInputs {
    const { tf } = this.backend;
    const cache = new Map<string, Tensor>();
    const shapes = new Map(m.specs.map((s) => [s.name, s.shape]));
    return {
      param: (name) => {
        let t = cache.get(name);
        if (t === undefined) {
          t = tf.tensor(m.values.get(name)!, shapes.get(name)!);
          cache.set(name, t);
        }
        return t;
      },
      wideRows: prepared.wide === null ? null : tf.tensor2d(prepared.wide.rows, [prepared.size, prepared.wide.slots]),
      embeddingRows: prepared.embeddings.map((g) => tf.tensor3d(g.rows, [g.size, g.slots, g.dim])),
    };
  }

  /** Loss, gradients and batch moments with dropout on; parameters unchanged. */
  private compute(m: Built, batch: Batch, step: number, slice?: BatchSlice): Gradients {
    const trained = m.specs.filter((s) => s.role === 'dense');
    const moments = new Map<string, { mean: Float32Array; variance: Float32Array }>();
    if (batch.size === 0) {
      return { loss: 0, dense: trained.map((s) => ({ name: s.name, shape: [...s.shape], data: new Float32Array(m.values.get(s.name)!.length) })), sparse: [], statistics: [] };
    }
    const prepared = prepareBatch(m.plan, batch, m.values);
    const { tf } = this.backend;
    const dropoutStream = m.plan.dropout > 0 ? dropoutDraws(m.seed, step, batch.size, slice, m.plan.layers.filter((l) => l.hidden).map((l) => l.units)) : null;
    let value = 0;
    let grads: Float32Array[] = [];
    tf.tidy(() => {
      const constants = this.constantInputs(m, prepared);
      const leaves = [...trained.map((s) => constants.param(s.name)), ...(constants.wideRows === null ? [] : [constants.wideRows]), ...constants.embeddingRows];
      const f = (...xs: Tensor[]) => {
        const byName = new Map(trained.map((s, i) => [s.name, xs[i]!]));
        let next = trained.length;
        const inputs: ForwardInputs = {
          param: (name) => byName.get(name) ?? constants.param(name),
          wideRows: constants.wideRows === null ? null : xs[next++]!,
          embeddingRows: constants.embeddingRows.map(() => xs[next++]!),
        };
        const mode = { training: true as const, dropoutStream, onMoments: (layer: string, mean: Float32Array, variance: Float32Array) => moments.set(layer, { mean, variance }) };
        return loss(tf, forward(tf, m.plan, prepared, inputs, mode), prepared.labels, prepared.weights);
      };
      const result = tf.valueAndGrads(f)(leaves);
      value = result.value.dataSync()[0]!;
      grads = result.grads.map((g) => g.dataSync() as Float32Array);
    });
    const dense = trained.map((s, i) => ({ name: s.name, shape: [...s.shape], data: grads[i]! }));
    let next = trained.length;
    if (prepared.wide !== null) m.rowGradients.add(prepared.wide, grads[next++]!);
    for (const group of prepared.embeddings) m.rowGradients.add(group, grads[next++]!);
    const statistics: NamedTensor[] = [];
    for (const [layer, { mean, variance }] of moments) {
      statistics.push({ name: `${layer}/moving_mean`, shape: [mean.length], data: mean });
      statistics.push({ name: `${layer}/moving_variance`, shape: [variance.length], data: variance });
    }
    return { loss: value, dense, sparse: m.rowGradients.finish(), statistics };
  }
}

/**
 * The dropout stream of `step`. For a slice of a global batch (data-parallel training), the
 * uniforms of the slice's rows within each layer's `total x units` mask: the draws before the
 * slice and after it are skipped, so the ranks together drop exactly the units one process would.
 */
function dropoutDraws(seed: number, step: number, size: number, slice: BatchSlice | undefined, units: number[]): RandomStream {
  const stream = new RandomStream(seed, `dropout/${step}`);
  if (slice === undefined || (slice.offset === 0 && slice.total === size)) return stream;
  if (slice.offset < 0 || slice.offset + size > slice.total) throw new Error(`internal: rows [${slice.offset}, ${slice.offset + size}) are not in a batch of ${slice.total}`);
  return new SlicedStream(stream, units.map((u) => ({ before: slice.offset * u, take: size * u, after: (slice.total - slice.offset - size) * u })));
}

/** A RandomStream that skips draws around each layer's part, as `dropoutDraws` says. */
class SlicedStream extends RandomStream {
  private layer = 0;
  private taken = 0;
  private skippedBefore = false;

  constructor(
    private readonly source: RandomStream,
    private readonly parts: { before: number; take: number; after: number }[],
  ) {
    super(0, 'unused');
  }

  override uniform(): number {
    const part = this.parts[this.layer];
    if (part === undefined) throw new Error('internal: more dropout draws than the layers have');
    if (!this.skippedBefore) {
      for (let i = 0; i < part.before; i++) this.source.nextUint32();
      this.skippedBefore = true;
    }
    const u = this.source.uniform();
    if (++this.taken === part.take) {
      for (let i = 0; i < part.after; i++) this.source.nextUint32();
      this.layer++;
      this.taken = 0;
      this.skippedBefore = false;
    }
    return u;
  }
}

/** TF's assign_moving_average: average -= (average - value) * (1 - momentum), in float32. */
function movingAverage(average: Float32Array, value: Float32Array): void {
  const rate = Math.fround(1 - BATCH_NORM_MOMENTUM);
  for (let i = 0; i < average.length; i++) average[i] = Math.fround(average[i]! - Math.fround(Math.fround(average[i]! - value[i]!) * rate));
}


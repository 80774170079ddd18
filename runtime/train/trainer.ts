// The training loop, engine-agnostic: batches from shards, the spec's learning-rate schedules, one
// engine step per batch, evaluation every `evalEvery` epochs, metrics appended to
// model_dir/metrics.jsonl, checkpoints after each evaluation, and resumption from the latest one
// with the same result as an uninterrupted run (the batch order is a pure function of seed and epoch).
//
// Data-parallel (a Collective of several ranks, docs/distributed.md): every rank reads its share of
// each global batch, computes gradients, the gradients are summed over the ranks
// (runtime/distributed/gradients.ts) and every rank applies the same update. Rank 0 initialises
// (or restores) the model and broadcasts it, and alone writes model_dir.

import { appendFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from '../../compiler/fs.js';
import type { ModelIR } from '../../compiler/ir.js';
import { describeMismatch, loadLatestCheckpoint, saveCheckpoint, type CheckpointMeta } from '../checkpoint.js';
import { BatchReader } from '../data/batches.js';
import type { Batch } from '../data/contracts.js';
import type { ShardSet } from '../data/shards.js';
import { specHash } from '../data/spec-hash.js';
import { UnsupportedDistributedError, type Engine, type LearningRates } from '../engine/engine.js';
import { createMetricAccumulator, metricName, type MetricAccumulator } from '../metrics/index.js';
import { learningRateAt } from '../optim/schedules.js';
import { LocalCollective, type Collective } from '../distributed/collective.js';
import { GradientLayout, reduceGradients } from '../distributed/gradients.js';
import { reduceMetrics } from '../distributed/metrics.js';
import { broadcastModel } from '../distributed/state.js';
import { injectedFault } from '../distributed/fault.js';

export interface TrainOptions {
  ir: ModelIR;
  engine: Engine;
  train: ShardSet;
  valid?: ShardSet;
  /** Checkpoints and metrics.jsonl go here; absent: nothing is written. */
  modelDir?: string;
  keepCheckpoints?: number;
  wndcVersion: string;
  /** The run's settings (model, engine, data, start time...): written to model_dir/run.json when training starts, for `wndc report`. */
  runInfo?: Record<string, unknown>;
  /** Called after every step, for progress lines. */
  onStep?: (p: StepProgress) => void;
  /** Called after every evaluation. */
  onEval?: (e: EvalResult) => void;
  /** The ranks training together (default: this process alone). Only rank 0 writes model_dir. */
  collective?: Collective;
}

export interface StepProgress {
  step: number;
  epoch: number;
  batchInEpoch: number;
  batchesPerEpoch: number;
  loss: number;
  examplesPerSecond: number;
}

export interface EvalResult {
  step: number;
  epoch: number;
  rows: number;
  metrics: Record<string, number>;
}

export interface TrainSummary {
  steps: number;
  resumedFrom: number | null;
  lastEval: EvalResult | null;
}

/** A run that cannot go on (NaN loss, incompatible checkpoint): the message says what and what to do. */
export class TrainingError extends Error {}

export async function trainModel(o: TrainOptions): Promise<TrainSummary> {
  const { ir, engine } = o;
  const collective = o.collective ?? new LocalCollective();
  const distributed = collective.size > 1;
  const writer = collective.rank === 0;
  const modelDir = writer ? o.modelDir : undefined;
  if (distributed && engine.applyGradients === undefined && engine.joinCollective === undefined) throw new UnsupportedDistributedError(`the ${engine.name} engine cannot train data-parallel`);
  if (ir.train.batchSize % collective.size !== 0) {
    throw new TrainingError(`the global batch of ${ir.train.batchSize} rows does not split evenly over ${collective.size} ranks; give --global_batch_size a multiple of ${collective.size}, or --per_rank_batch_size`);
  }
  const hash = specHash(ir);
  await engine.build(ir, ir.train.seed);
  const reader = new BatchReader(o.train, {
    batchSize: ir.train.batchSize,
    seed: ir.train.seed,
    lastBatch: ir.train.lastBatch,
    rank: collective.rank,
    worldSize: collective.size,
    ...(ir.train.shuffleBuffer === null ? {} : { shuffleBuffer: ir.train.shuffleBuffer }),
  });
  const batchesPerEpoch = reader.batchCount();
  if (batchesPerEpoch === 0) throw new TrainingError(`the training data has ${o.train.rows} rows, fewer than one batch of ${ir.train.batchSize} (last_batch: drop)`);

  let position = { step: 0, startEpoch: 0, skipBatches: 0, resumedFrom: null as number | null };
  if (modelDir !== undefined) {
    mkdirSync(modelDir, { recursive: true });
    if (o.runInfo !== undefined) writeFileAtomic(join(modelDir, 'run.json'), `${JSON.stringify(o.runInfo, null, 2)}\n`);
    const ckpt = loadLatestCheckpoint(modelDir);
    if (ckpt !== undefined) {
      // Training settings may change between runs (more epochs, another rate); the model's tensors may not.
      const problems = describeMismatch(await engine.state(), ckpt.tensors);
      if (problems.length > 0) {
        throw new TrainingError(`${ckpt.path} was written for another version of the spec:\n  ${problems.join('\n  ')}\nuse a new --model_dir, or delete the old checkpoints to start over`);
      }
      await engine.loadState(ckpt.tensors);
      // The global batch order does not depend on the number of ranks: a checkpoint resumes on any.
      position = { step: ckpt.meta.step, startEpoch: ckpt.meta.epoch, skipBatches: Math.round(ckpt.meta.epochRows / ir.train.batchSize), resumedFrom: ckpt.meta.step };
    }
  }
  if (distributed && engine.joinCollective !== undefined) await engine.joinCollective(collective);
  if (distributed) position = await broadcastModel(collective, engine, position);
  let { step, skipBatches } = position;
  const { startEpoch, resumedFrom } = position;

  const meta = (epoch: number, epochRows: number): CheckpointMeta => ({ model: ir.model, specHash: hash, step, epoch, epochRows, wndcVersion: o.wndcVersion });
  const log = (record: Record<string, unknown>) => {
    if (modelDir !== undefined) appendFileSync(join(modelDir, 'metrics.jsonl'), `${JSON.stringify({ time: new Date().toISOString(), ...record })}\n`);
  };
  let lastEval: EvalResult | null = null;
  const pipelined = !distributed && copiesBatchOnCall(engine);
  const parallel = distributed ? new ParallelStep(ir, engine, collective, o.train.rows) : null;
  const fault = injectedFault(collective.rank);
  const started = performance.now();
  let examples = 0;
  for (let epoch = startEpoch; epoch < ir.train.epochs; epoch++) {
    let batchInEpoch = 0;
    let lossSum = 0;
    let lossRows = 0;
    const batches = reader.batches(epoch);
    let next = batches.next();
    for (; !next.done && batchInEpoch < skipBatches; batchInEpoch++) next = batches.next();
    while (!next.done) {
      const batch = next.value;
      // The reader refills this one Batch object: read what is needed before the next batch.
      const lr = {
        wide: learningRateAt(ir.wide.optimizer.learningRate, ir.wide.schedule, step, batchesPerEpoch),
        deep: learningRateAt(ir.deep.optimizer.learningRate, ir.deep.schedule, step, batchesPerEpoch),
      };
      fault?.atStep(step);
      let loss: number;
      let size: number;
      if (parallel !== null) {
        ({ loss, rows: size } = await parallel.step(batch, batchInEpoch, step, lr));
        next = batches.next();
      } else {
        size = batch.size;
        const pending = engine.trainStep(batch, step, lr);
        if (pipelined) {
          try {
            next = batches.next();
          } catch (e) {
            await pending.catch(() => undefined); // the step's own failure matters less than the data's
            throw e;
          }
        }
        loss = (await pending).loss;
        if (!pipelined) next = batches.next();
      }
      if (!Number.isFinite(loss)) {
        throw new TrainingError(
          `the loss became ${loss} at step ${step} (epoch ${epoch + 1}); the last good checkpoint is kept${o.modelDir === undefined ? '' : ` in ${o.modelDir}`}\nlower the learning rates, add a warm-up, or check the data for extreme values`,
        );
      }
      step++;
      batchInEpoch++;
      examples += size;
      lossSum += loss * size;
      lossRows += size;
      o.onStep?.({ step, epoch, batchInEpoch, batchesPerEpoch, loss, examplesPerSecond: examples / ((performance.now() - started) / 1000) });
    }
    skipBatches = 0;
    log({ step, epoch: epoch + 1, split: 'train', loss: lossSum / Math.max(1, lossRows) });
    const isLast = epoch + 1 === ir.train.epochs;
    if (o.valid !== undefined && ((epoch + 1) % ir.train.evalEvery === 0 || isLast)) {
      lastEval = { step, epoch: epoch + 1, ...(await evaluate(ir, engine, o.valid, collective)) };
      log({ step, epoch: epoch + 1, split: 'valid', rows: lastEval.rows, ...lastEval.metrics });
      o.onEval?.(lastEval);
    }
    if (modelDir !== undefined) saveCheckpoint(modelDir, meta(epoch + 1, 0), await engine.state(), o.keepCheckpoints ?? 3);
  }
  // Rank 0's checkpoint may read the other ranks' GPU memory (the CUDA engine keeps a table row's
  // optimizer slots on the rank that updates it): no rank leaves, and frees it, before it is written.
  if (distributed) await collective.barrier();
  return { steps: step, resumedFrom, lastEval };
}

/**
 * One data-parallel step: this rank's gradients over its rows of the global batch (dropout drawn
 * for those rows of the global masks), summed over the ranks, then applied. Returns the global
 * batch's mean loss and its rows.
 */
class ParallelStep {
  private readonly layout: GradientLayout;
  private readonly fullBatches: number;

  constructor(
    private readonly ir: ModelIR,
    private readonly engine: Engine,
    private readonly collective: Collective,
    private readonly rows: number,
  ) {
    this.layout = new GradientLayout(ir);
    this.fullBatches = Math.floor(rows / ir.train.batchSize);
  }

  async step(batch: Batch, batchInEpoch: number, step: number, lr: LearningRates): Promise<{ loss: number; rows: number }> {
    const { rank, size: world } = this.collective;
    const global = this.ir.train.batchSize;
    // As BatchReader splits them: full batches in equal parts, the last partial one by floor(r * rest / world).
    const total = batchInEpoch < this.fullBatches ? global : this.rows - this.fullBatches * global;
    const offset = batchInEpoch < this.fullBatches ? rank * (global / world) : Math.floor((rank * total) / world);
    const localRows = batch.size;
    if (this.engine.joinCollective !== undefined) {
      // The engine sums gradients and loss over the ranks itself (NCCL on the GPUs).
      const result = await this.engine.trainStep(batch, step, lr, { offset, total });
      return { loss: result.loss, rows: total };
    }
    const grads = await this.engine.gradients(batch, step, { offset, total });
    const reduced = await reduceGradients(this.collective, this.layout, grads, localRows, total);
    await this.engine.applyGradients!(reduced, step, lr);
    return { loss: reduced.loss, rows: total };
  }
}

/**
 * Whether `engine.trainStep` has copied the batch by the time it returns its promise (the CUDA
 * engine uploads it first, then runs the step on the device): the trainer then reads the next
 * batch while the step runs. The tfjs engine reads the batch later, so it gets one batch at a time.
 */
function copiesBatchOnCall(engine: Engine): boolean {
  return engine.copiesBatchOnCall === true;
}

/**
 * Every metric of the spec over `data`, groups whole (grouped batches when the model has a group
 * column). With several ranks each reads its share of the batches and the exact metric states are
 * merged: every rank gets the single-process result.
 */
export async function evaluate(ir: ModelIR, engine: Engine, data: ShardSet, collective: Collective = new LocalCollective()): Promise<{ rows: number; metrics: Record<string, number> }> {
  const grouped = data.hasGroup && data.manifest.groupsContiguous;
  const world = collective.size;
  // Each rank's batches hold at most eval_batch_size / ranks rows (rounded up), whole groups.
  const batchSize = Math.ceil(ir.train.evalBatchSize / world) * world;
  const reader = new BatchReader(data, { batchSize, shuffle: false, grouped, lastBatch: 'keep', rank: collective.rank, worldSize: world });
  const metrics = (ir.train.metrics.length > 0 ? ir.train.metrics : [{ kind: 'auc' as const }, { kind: 'logloss' as const }]).filter((m) => m.kind !== 'map' || grouped);
  const create = (): MetricAccumulator[] => metrics.map((m) => createMetricAccumulator(m));
  const accumulators = create();
  let rows = 0;
  for (const batch of reader.batches(0)) {
    const scores = await engine.predict(batch);
    for (const acc of accumulators) acc.add(batch.label, scores, batch.size, { ...(data.hasWeight ? { weights: batch.weight } : {}), ...(data.hasGroup ? { groups: batch.group } : {}) });
    rows += batch.size;
  }
  for (const acc of accumulators) acc.finish();
  const reduced = await reduceMetrics(collective, accumulators, rows, create);
  const out: Record<string, number> = {};
  metrics.forEach((m, i) => (out[metricName(m)] = reduced.merged[i]!.result()));
  return { rows: reduced.rows, metrics: out };
}

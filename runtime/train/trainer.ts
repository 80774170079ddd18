// The training loop, engine-agnostic: batches from shards, the spec's learning-rate schedules, one
// engine step per batch, evaluation every `evalEvery` epochs, metrics appended to
// model_dir/metrics.jsonl, checkpoints after each evaluation, and resumption from the latest one
// with the same result as an uninterrupted run (the batch order is a pure function of seed and epoch).

import { appendFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from '../../compiler/fs.js';
import type { ModelIR } from '../../compiler/ir.js';
import { describeMismatch, loadLatestCheckpoint, saveCheckpoint, type CheckpointMeta } from '../checkpoint.js';
import { BatchReader } from '../data/batches.js';
import type { ShardSet } from '../data/shards.js';
import { specHash } from '../data/spec-hash.js';
import type { Engine } from '../engine/engine.js';
import { createMetricAccumulator, metricName } from '../metrics/index.js';
import { learningRateAt } from '../optim/schedules.js';

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
  const hash = specHash(ir);
  await engine.build(ir, ir.train.seed);
  const reader = new BatchReader(o.train, { batchSize: ir.train.batchSize, seed: ir.train.seed, lastBatch: ir.train.lastBatch, ...(ir.train.shuffleBuffer === null ? {} : { shuffleBuffer: ir.train.shuffleBuffer }) });
  const batchesPerEpoch = reader.batchCount();
  if (batchesPerEpoch === 0) throw new TrainingError(`the training data has ${o.train.rows} rows, fewer than one batch of ${ir.train.batchSize} (last_batch: drop)`);

  let step = 0;
  let startEpoch = 0;
  let skipBatches = 0;
  let resumedFrom: number | null = null;
  if (o.modelDir !== undefined) {
    mkdirSync(o.modelDir, { recursive: true });
    if (o.runInfo !== undefined) writeFileAtomic(join(o.modelDir, 'run.json'), `${JSON.stringify(o.runInfo, null, 2)}\n`);
    const ckpt = loadLatestCheckpoint(o.modelDir);
    if (ckpt !== undefined) {
      // Training settings may change between runs (more epochs, another rate); the model's tensors may not.
      const problems = describeMismatch(await engine.state(), ckpt.tensors);
      if (problems.length > 0) {
        throw new TrainingError(`${ckpt.path} was written for another version of the spec:\n  ${problems.join('\n  ')}\nuse a new --model_dir, or delete the old checkpoints to start over`);
      }
      await engine.loadState(ckpt.tensors);
      step = ckpt.meta.step;
      startEpoch = ckpt.meta.epoch;
      skipBatches = Math.round(ckpt.meta.epochRows / ir.train.batchSize);
      resumedFrom = step;
    }
  }

  const meta = (epoch: number, epochRows: number): CheckpointMeta => ({ model: ir.model, specHash: hash, step, epoch, epochRows, wndcVersion: o.wndcVersion });
  const log = (record: Record<string, unknown>) => {
    if (o.modelDir !== undefined) appendFileSync(join(o.modelDir, 'metrics.jsonl'), `${JSON.stringify({ time: new Date().toISOString(), ...record })}\n`);
  };
  let lastEval: EvalResult | null = null;
  const pipelined = copiesBatchOnCall(engine);
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
      const size = batch.size;
      const lr = {
        wide: learningRateAt(ir.wide.optimizer.learningRate, ir.wide.schedule, step, batchesPerEpoch),
        deep: learningRateAt(ir.deep.optimizer.learningRate, ir.deep.schedule, step, batchesPerEpoch),
      };
      const pending = engine.trainStep(batch, step, lr);
      if (pipelined) {
        try {
          next = batches.next();
        } catch (e) {
          await pending.catch(() => undefined); // the step's own failure matters less than the data's
          throw e;
        }
      }
      const result = await pending;
      if (!pipelined) next = batches.next();
      if (!Number.isFinite(result.loss)) {
        throw new TrainingError(
          `the loss became ${result.loss} at step ${step} (epoch ${epoch + 1}); the last good checkpoint is kept${o.modelDir === undefined ? '' : ` in ${o.modelDir}`}\nlower the learning rates, add a warm-up, or check the data for extreme values`,
        );
      }
      step++;
      batchInEpoch++;
      examples += size;
      lossSum += result.loss * size;
      lossRows += size;
      o.onStep?.({ step, epoch, batchInEpoch, batchesPerEpoch, loss: result.loss, examplesPerSecond: examples / ((performance.now() - started) / 1000) });
    }
    skipBatches = 0;
    log({ step, epoch: epoch + 1, split: 'train', loss: lossSum / Math.max(1, lossRows) });
    const isLast = epoch + 1 === ir.train.epochs;
    if (o.valid !== undefined && ((epoch + 1) % ir.train.evalEvery === 0 || isLast)) {
      lastEval = { step, epoch: epoch + 1, ...(await evaluate(ir, engine, o.valid)) };
      log({ step, epoch: epoch + 1, split: 'valid', rows: lastEval.rows, ...lastEval.metrics });
      o.onEval?.(lastEval);
    }
    if (o.modelDir !== undefined) saveCheckpoint(o.modelDir, meta(epoch + 1, 0), await engine.state(), o.keepCheckpoints ?? 3);
  }
  return { steps: step, resumedFrom, lastEval };
}

/**
 * Whether `engine.trainStep` has copied the batch by the time it returns its promise (the CUDA
 * engine uploads it first, then runs the step on the device): the trainer then reads the next
 * batch while the step runs. The tfjs engine reads the batch later, so it gets one batch at a time.
 */
function copiesBatchOnCall(engine: Engine): boolean {
  return engine.copiesBatchOnCall === true;
}

/** Every metric of the spec over `data`, groups whole (grouped batches when the model has a group column). */
export async function evaluate(ir: ModelIR, engine: Engine, data: ShardSet): Promise<{ rows: number; metrics: Record<string, number> }> {
  const grouped = data.hasGroup && data.manifest.groupsContiguous;
  const reader = new BatchReader(data, { batchSize: ir.train.evalBatchSize, shuffle: false, grouped, lastBatch: 'keep' });
  const metrics = ir.train.metrics.length > 0 ? ir.train.metrics : [{ kind: 'auc' as const }, { kind: 'logloss' as const }];
  const accumulators = metrics.filter((m) => m.kind !== 'map' || grouped).map((m) => ({ name: metricName(m), acc: createMetricAccumulator(m) }));
  let rows = 0;
  for (const batch of reader.batches(0)) {
    const scores = await engine.predict(batch);
    for (const { acc } of accumulators) acc.add(batch.label, scores, batch.size, { ...(data.hasWeight ? { weights: batch.weight } : {}), ...(data.hasGroup ? { groups: batch.group } : {}) });
    rows += batch.size;
  }
  const out: Record<string, number> = {};
  for (const { name, acc } of accumulators) {
    acc.finish();
    out[name] = acc.result();
  }
  return { rows, metrics: out };
}

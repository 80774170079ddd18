// The Wide & Deep model read from the IR (no per-model code) and its forward pass in tfjs:
//   wide logit = bias + sum over categorical features of their table rows (summed over a bag,
//                times the ids' weights) + wide/numeric . numeric values
//   deep input = concat, in ir.deep.inputs order, of embeddings (combined bags), indicators and
//                numeric values; then per hidden layer activation(x W + b), dropout in training,
//                batch norm when enabled (TF's DNNLinearCombinedClassifier order); a 1-unit logit
//   p          = sigmoid(wide logit + deep logit)
//   loss       = sum(w_i * bce_i) / n, bce from logits: max(z, 0) - z y + log(1 + exp(-|z|))
// The batch is prepared on the host first (lookups.ts): tables are read there, and the forward
// pass takes the gathered rows as inputs, so gradients flow to them and not to whole tables.

import type { GradSaveFunc, Tensor, Tensor1D, Tensor2D } from '@tensorflow/tfjs-core';
import type { FeatureIR, ModelIR } from '../../../compiler/ir.js';
import type { Batch } from '../../data/contracts.js';
import type { RandomStream } from '../init.js';
import type { Tf } from './backend.js';
import { columns, gatherRows, indicatorColumns, type BatchWidths, type GatheredRows, type IdSlots, type Lookup } from './lookups.js';

/** TF1 `layers.BatchNormalization` as the DNN estimator builds it. */
export const BATCH_NORM_MOMENTUM = 0.999;
export const BATCH_NORM_EPSILON = 0.001;

type Span = { offset: number; width: number };

type DeepPiece =
  | { kind: 'embedding'; group: number; width: number }
  | { kind: 'indicator'; slots: IdSlots; buckets: number }
  | { kind: 'numeric'; spans: Span[]; width: number };

export interface LayerPlan {
  name: string;
  units: number;
  activation: 'relu' | 'tanh' | 'sigmoid' | 'gelu' | 'linear';
  hidden: boolean;
  batchNorm: boolean;
}

/** What the forward pass needs of the IR, resolved once. */
export interface ModelPlan {
  widths: BatchWidths;
  numericStride: number;
  hasWide: boolean;
  /** Every categorical wide feature, all of width 1, looked up together. */
  wideLookups: Lookup[];
  wideNumeric: Span[];
  /** One group per embedding input of the tower, in input order. */
  embeddings: Lookup[][];
  deepPieces: DeepPiece[];
  layers: LayerPlan[];
  dropout: number;
  weighted: boolean;
}

export function planModel(ir: ModelIR): ModelPlan {
  const features = new Map(ir.features.map((f) => [f.name, f]));
  const idSlots = new Map(ir.layout.ids.map((s) => [s.feature, s]));
  const numericSlots = new Map(ir.layout.numeric.map((s) => [s.feature, s]));
  const tableRows = new Map(ir.tables.map((t) => [t.name, t]));
  const feature = (name: string): FeatureIR => features.get(name) ?? fail(`feature \`${name}\` not in the IR`);
  const slotsOf = (name: string): IdSlots => idSlots.get(name) ?? fail(`feature \`${name}\` not in the layout`);
  const numericSpan = (name: string): Span => {
    const f = feature(name);
    const slot = numericSlots.get(name) ?? fail(`numeric feature \`${name}\` not in the layout`);
    return { offset: slot.offset, width: f.output.type === 'dense' ? f.output.width : 1 };
  };
  const lookup = (name: string, table: string, combiner: Lookup['combiner'], source: string): Lookup => {
    const t = tableRows.get(table) ?? fail(`table \`${table}\` not in the IR`);
    return { feature: name, slots: slotsOf(source), table, rows: t.rows, dim: t.dim, combiner };
  };

  const wideTable = (name: string): string => ir.tables.find((t) => t.part === 'wide' && t.name !== 'wide/numeric' && t.features.includes(name))?.name ?? fail(`no wide table for \`${name}\``);
  const wideLookups = ir.wide.features.filter((name) => feature(name).output.type === 'categorical').map((name) => lookup(name, wideTable(name), 'sum', name));
  const embeddings: Lookup[][] = [];
  const deepPieces: DeepPiece[] = [];
  for (const input of ir.deep.inputs) {
    const f = feature(input.feature);
    if (f.kind === 'embedding') {
      deepPieces.push({ kind: 'embedding', group: embeddings.length, width: input.width });
      embeddings.push([lookup(f.name, f.table, f.combiner, f.feature)]);
    } else if (f.kind === 'indicator') {
      const source = feature(f.feature).output;
      deepPieces.push({ kind: 'indicator', slots: slotsOf(f.feature), buckets: source.type === 'categorical' ? source.buckets : fail(`indicator of dense \`${f.feature}\``) });
    } else {
      const span = numericSpan(f.name);
      const last = deepPieces[deepPieces.length - 1];
      // Adjacent numeric inputs become one block: fewer tensors to concatenate.
      if (last?.kind === 'numeric') {
        last.spans.push(span);
        last.width += span.width;
      } else deepPieces.push({ kind: 'numeric', spans: [span], width: span.width });
    }
  }
  const hiddenCount = ir.deep.hiddenUnits.length;
  return {
    widths: { ids: ir.layout.idsWidth, lengths: ir.layout.lengthsWidth, weights: ir.layout.weightsWidth },
    numericStride: ir.layout.numericWidth,
    hasWide: ir.wide.features.length > 0,
    wideLookups,
    wideNumeric: ir.wide.numericFeatures.map(numericSpan),
    embeddings,
    deepPieces,
    layers: ir.deep.layers.map((l, i) => ({ name: l.name, units: l.units, activation: l.activation, hidden: i < hiddenCount, batchNorm: ir.deep.batchNorm && i < hiddenCount })),
    dropout: ir.deep.dropout,
    weighted: ir.roles.weight !== null,
  };
}

function fail(what: string): never {
  throw new Error(`internal: ${what}`);
}

/** A batch read on the host: gathered table rows and the dense inputs, first `size` rows. */
export interface PreparedBatch {
  size: number;
  wide: GatheredRows | null;
  wideNumeric: Float32Array | null;
  embeddings: GatheredRows[];
  /** Per deep piece: its values for indicators and numerics, null for embeddings. */
  deepConstants: (Float32Array | null)[];
  labels: Float32Array;
  /** Example weights, null when the model has no weight column. */
  weights: Float32Array | null;
}

export function prepareBatch(plan: ModelPlan, batch: Batch, tables: ReadonlyMap<string, Float32Array>): PreparedBatch {
  const size = batch.size;
  return {
    size,
    wide: plan.wideLookups.length > 0 ? gatherRows(batch, plan.widths, plan.wideLookups, tables) : null,
    wideNumeric: plan.wideNumeric.length > 0 ? columns(batch.numeric, plan.numericStride, size, plan.wideNumeric) : null,
    embeddings: plan.embeddings.map((group) => gatherRows(batch, plan.widths, group, tables)),
    deepConstants: plan.deepPieces.map((piece) => {
      if (piece.kind === 'indicator') return indicatorColumns(batch, plan.widths, piece.slots, piece.buckets);
      if (piece.kind === 'numeric') return columns(batch.numeric, plan.numericStride, size, piece.spans);
      return null;
    }),
    labels: batch.label.subarray(0, size),
    weights: plan.weighted ? batch.weight.subarray(0, size) : null,
  };
}

/** The tensors a forward pass reads: parameters by name and the gathered rows. */
export interface ForwardInputs {
  param(name: string): Tensor;
  /** size x slots (the wide rows have width 1). */
  wideRows: Tensor | null;
  /** Per embedding group: size x slots x dim. */
  embeddingRows: Tensor[];
}

export type ForwardMode =
  | { training: false }
  | {
      training: true;
      /** Draws the dropout masks; null when dropout is off. */
      dropoutStream: RandomStream | null;
      /** Receives each batch-normalised layer's batch mean and variance. */
      onMoments?: (layer: string, mean: Float32Array, variance: Float32Array) => void;
    };

/** Logits (size) of a prepared batch. */
export function forward(tf: Tf, plan: ModelPlan, batch: PreparedBatch, inputs: ForwardInputs, mode: ForwardMode): Tensor1D {
  const size = batch.size;
  let logits: Tensor1D | null = null;
  const add = (t: Tensor1D) => (logits = logits === null ? t : tf.add<Tensor1D>(logits, t));

  if (plan.hasWide) {
    add(tf.broadcastTo(inputs.param('wide/bias'), [size]) as Tensor1D);
    if (batch.wide !== null && inputs.wideRows !== null) {
      const rows = inputs.wideRows;
      const weighted = batch.wide.coefficients === null ? rows : tf.mul(rows, tf.tensor2d(batch.wide.coefficients, [size, batch.wide.slots]));
      add(tf.sum(weighted, 1) as Tensor1D);
    }
    if (batch.wideNumeric !== null) {
      const x = tf.tensor2d(batch.wideNumeric, [size, plan.wideNumeric.length]);
      add(tf.reshape(matMul(tf, x, inputs.param('wide/numeric') as Tensor2D), [size]));
    }
  }

  if (plan.layers.length > 0) {
    const pieces = plan.deepPieces.map((piece, i): Tensor2D => {
      if (piece.kind !== 'embedding') return tf.tensor2d(batch.deepConstants[i]!, [size, piece.kind === 'indicator' ? piece.buckets : piece.width]);
      return combine(tf, batch.embeddings[piece.group]!, inputs.embeddingRows[piece.group]!);
    });
    let x: Tensor2D = pieces.length === 1 ? pieces[0]! : tf.concat(pieces, 1);
    for (const layer of plan.layers) x = dense(tf, layer, x, inputs, mode, plan.dropout);
    add(tf.reshape(x, [size]));
  }
  return logits ?? fail('a model with neither a wide nor a deep part');
}

/** The combined vectors (size x dim) of an embedding group from its gathered rows. */
function combine(tf: Tf, gathered: GatheredRows, rows: Tensor): Tensor2D {
  const { size, slots, dim, coefficients } = gathered;
  if (coefficients === null && slots === 1) return tf.reshape(rows, [size, dim]);
  const weighted = coefficients === null ? rows : tf.mul(rows, tf.tensor3d(coefficients, [size, slots, 1]));
  return tf.sum(weighted, 1) as Tensor2D;
}

function dense(tf: Tf, layer: LayerPlan, x: Tensor2D, inputs: ForwardInputs, mode: ForwardMode, dropout: number): Tensor2D {
  const kernel = inputs.param(`${layer.name}/kernel`) as Tensor2D;
  const bias = inputs.param(`${layer.name}/bias`);
  let y = activate(tf, layer.activation, tf.add(matMul(tf, x, kernel), bias));
  if (!layer.hidden) return y;
  if (mode.training && mode.dropoutStream !== null && dropout > 0) y = tf.mul(y, tf.tensor2d(dropoutMask(mode.dropoutStream, y.shape[0] * layer.units, dropout), y.shape));
  if (layer.batchNorm) y = batchNorm(tf, layer, y, inputs, mode);
  return y;
}

function activate(tf: Tf, activation: LayerPlan['activation'], x: Tensor2D): Tensor2D {
  if (activation === 'linear') return x;
  if (activation === 'relu') return tf.relu(x);
  if (activation === 'tanh') return tf.tanh(x);
  if (activation === 'sigmoid') return tf.sigmoid(x);
  // Exact GELU, x * Phi(x), as tf.nn.gelu(approximate=False) and Keras's 'gelu'.
  return tf.mul(tf.mul(x, 0.5), tf.add(tf.erf(tf.mul(x, Math.SQRT1_2)), 1));
}

type MatMul = (x: Tensor2D, w: Tensor2D) => Tensor2D;
const matMuls = new WeakMap<Tf, MatMul>();

/**
 * x . w whose gradients multiply by explicitly transposed operands: tfjs's own gradient uses
 * matMul's transposeA/transposeB, which the wasm backend runs 10 to 40 times slower than a plain
 * product (measured: 0.3 GFLOPS against 11 for 512 x 1024 x 1024), while a transpose is cheap.
 */
function matMul(tf: Tf, x: Tensor2D, w: Tensor2D): Tensor2D {
  let product = matMuls.get(tf);
  if (product === undefined) {
    product = tf.customGrad((...args: (Tensor | GradSaveFunc)[]) => {
      const [a, b, save] = args as [Tensor2D, Tensor2D, GradSaveFunc];
      save([a, b]);
      return {
        value: tf.matMul(a, b),
        gradFunc: (dy: Tensor, saved: Tensor[]) => [tf.matMul(dy as Tensor2D, tf.transpose(saved[1]!) as Tensor2D), tf.matMul(tf.transpose(saved[0]!) as Tensor2D, dy as Tensor2D)],
      };
    }) as MatMul;
    matMuls.set(tf, product);
  }
  return product(x, w);
}

/** Inverted dropout: keep with probability 1 - rate (u >= rate, as TF), scale kept values by 1 / (1 - rate). */
export function dropoutMask(stream: RandomStream, n: number, rate: number): Float32Array {
  const mask = new Float32Array(n);
  const keep = Math.fround(1 / (1 - rate));
  for (let i = 0; i < n; i++) mask[i] = stream.uniform() >= rate ? keep : 0;
  return mask;
}

function batchNorm(tf: Tf, layer: LayerPlan, y: Tensor2D, inputs: ForwardInputs, mode: ForwardMode): Tensor2D {
  const gamma = inputs.param(`${layer.name}/gamma`);
  const beta = inputs.param(`${layer.name}/beta`);
  let mean: Tensor;
  let variance: Tensor;
  if (mode.training) {
    const moments = tf.moments(y, 0);
    mean = moments.mean;
    variance = moments.variance;
    mode.onMoments?.(layer.name, mean.dataSync() as Float32Array, variance.dataSync() as Float32Array);
  } else {
    mean = inputs.param(`${layer.name}/moving_mean`);
    variance = inputs.param(`${layer.name}/moving_variance`);
  }
  // Written out rather than tf.batchNorm, so that gradients flow through the batch moments.
  const normalised = tf.mul(tf.sub(y, mean), tf.rsqrt(tf.add(variance, BATCH_NORM_EPSILON)));
  return tf.add(tf.mul(normalised, gamma), beta) as Tensor2D;
}

/** sum(w_i * bce(z_i, y_i)) / n, TF's SUM_OVER_BATCH_SIZE reduction of the weighted losses. */
export function loss(tf: Tf, logits: Tensor1D, labels: Float32Array, weights: Float32Array | null): Tensor {
  const n = logits.shape[0];
  const y = tf.tensor1d(labels);
  const perExample = tf.add(tf.sub(tf.relu(logits), tf.mul(logits, y)), tf.log1p(tf.exp(tf.neg(tf.abs(logits)))));
  const weighted = weights === null ? perExample : tf.mul(perExample, tf.tensor1d(weights));
  return tf.div(tf.sum(weighted), n);
}

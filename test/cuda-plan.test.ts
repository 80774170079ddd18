// The CUDA engine's plan (runtime/engine/cuda/plan.ts): the IR flattened into parameter indices,
// batch columns and layer shapes for the native addon. Pure TypeScript: runs everywhere.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { compileSource } from '../compiler/compile.js';
import type { ModelIR } from '../compiler/ir.js';
import { parameterSpecs } from '../runtime/engine/init.js';
import { ACTIVATIONS, COMBINERS, OPTIMIZER_KINDS, PARAMETER_KINDS, PARTS, type NativeLookup, type NativePlan } from '../runtime/engine/cuda/addon-api.js';
import { DEFAULT_LOSS_SCALE, nativeOptimizer, nativePlan, nativePrecision } from '../runtime/engine/cuda/plan.js';
import { REPO } from './support/paths.js';

function compileFile(path: string): ModelIR {
  const result = compileSource(readFileSync(join(REPO, path), 'utf8'), path, 'wnd');
  assert.deepEqual(result.diagnostics.filter((d) => d.severity === 'error').map((d) => `${d.code} ${d.message}`), []);
  return result.ir!;
}

function compile(source: string): ModelIR {
  const result = compileSource(source, 'test.wnd', 'wnd');
  assert.deepEqual(result.diagnostics.filter((d) => d.severity === 'error').map((d) => `${d.code} ${d.message}`), []);
  return result.ir!;
}

const { table, dense, statistic } = PARAMETER_KINDS;
const { wide, deep } = PARTS;

/** A lookup with the defaults of a single-valued, unweighted feature. */
function lookupOf(fields: Partial<NativeLookup> & Pick<NativeLookup, 'table' | 'idOffset'>): NativeLookup {
  return { width: 1, lengthSlot: -1, weightOffset: -1, combiner: COMBINERS.sum, outOffset: -1, ...fields };
}

const NO_BATCH_NORM = { gamma: -1, beta: -1, movingMean: -1, movingVariance: -1 };

test('quickstart: parameters, wide lookups, deep pieces and layers of the example', () => {
  const ir = compileFile('examples/quickstart/quickstart.wnd');
  const plan = nativePlan(ir, { precision: 'tf32', batchCapacity: 512 });
  assert.equal(plan.precision, 'tf32');
  assert.equal(plan.batchCapacity, 512);
  assert.deepEqual(plan.lossScale, { initial: 32768, growthInterval: 2000 });
  assert.deepEqual(plan.layout, { idsWidth: 9, lengthsWidth: 1, weightsWidth: 0, numericWidth: 1 });
  assert.equal(plan.weighted, false);
  // FTRL keeps accum and linear (2 slots), Adagrad accum (1).
  assert.deepEqual(
    plan.parameters.map((p) => [p.name, p.size, p.rows, p.dim, p.part, p.kind, p.slots]),
    [
      ['wide/features/user_id', 10000, 10000, 1, wide, table, 2],
      ['wide/features/item_id', 5000, 5000, 1, wide, table, 2],
      ['wide/features/hour_of_day', 24, 24, 1, wide, table, 2],
      ['wide/features/tag_bag', 1000, 1000, 1, wide, table, 2],
      ['wide/features/price_band', 4, 4, 1, wide, table, 2],
      ['wide/features/user_x_item', 100000, 100000, 1, wide, table, 2],
      ['wide/numeric', 1, 1, 1, wide, dense, 2],
      ['deep/embeddings/user_id_embedding', 160000, 10000, 16, deep, table, 1],
      ['deep/embeddings/item_id_embedding', 80000, 5000, 16, deep, table, 1],
      ['deep/embeddings/tag_bag_embedding', 8000, 1000, 8, deep, table, 1],
      ['wide/bias', 1, 1, 1, wide, dense, 2],
      ['deep/layers/dense_0/kernel', 65 * 64, 65 * 64, 1, deep, dense, 1],
      ['deep/layers/dense_0/bias', 64, 64, 1, deep, dense, 1],
      ['deep/layers/dense_1/kernel', 64 * 32, 64 * 32, 1, deep, dense, 1],
      ['deep/layers/dense_1/bias', 32, 32, 1, deep, dense, 1],
      ['deep/layers/logit/kernel', 32, 32, 1, deep, dense, 1],
      ['deep/layers/logit/bias', 1, 1, 1, deep, dense, 1],
    ],
  );
  assert.deepEqual(plan.optimizers, [
    { kind: OPTIMIZER_KINDS.ftrl, l1: 0, l2: 0, l2Shrinkage: 0, learningRatePower: -0.5, epsilon: 0, beta1: 0, beta2: 0, momentum: 0, nesterov: false },
    { kind: OPTIMIZER_KINDS.adagrad, l1: 0, l2: 0, l2Shrinkage: 0, learningRatePower: 0, epsilon: Math.fround(1e-7), beta1: 0, beta2: 0, momentum: 0, nesterov: false },
  ]);
  assert.deepEqual(plan.wide, {
    bias: 10,
    numeric: 6,
    numericColumns: [0],
    // Every categorical wide feature sums its bag (tag_bag's own combiner is mean).
    lookups: [
      lookupOf({ table: 0, idOffset: 0 }),
      lookupOf({ table: 1, idOffset: 1 }),
      lookupOf({ table: 2, idOffset: 2 }),
      lookupOf({ table: 3, idOffset: 3, width: 4, lengthSlot: 0 }),
      lookupOf({ table: 4, idOffset: 7 }),
      lookupOf({ table: 5, idOffset: 8 }),
    ],
  });
  assert.equal(plan.deep.inputWidth, 65);
  assert.deepEqual(plan.deep.pieces, [
    { kind: 'embedding', lookup: lookupOf({ table: 7, idOffset: 0, combiner: COMBINERS.mean, outOffset: 0 }) },
    { kind: 'embedding', lookup: lookupOf({ table: 8, idOffset: 1, combiner: COMBINERS.mean, outOffset: 16 }) },
    { kind: 'embedding', lookup: lookupOf({ table: 9, idOffset: 3, width: 4, lengthSlot: 0, combiner: COMBINERS.mean, outOffset: 32 }) },
    { kind: 'indicator', idOffset: 2, width: 1, lengthSlot: -1, weightOffset: -1, buckets: 24, outOffset: 40 },
    { kind: 'numeric', sourceColumns: [0], outOffset: 64 },
  ]);
  assert.deepEqual(plan.deep.layers, [
    { kernel: 11, bias: 12, ...NO_BATCH_NORM, inputs: 65, units: 64, activation: ACTIVATIONS.relu, hidden: true },
    { kernel: 13, bias: 14, ...NO_BATCH_NORM, inputs: 64, units: 32, activation: ACTIVATIONS.relu, hidden: true },
    { kernel: 15, bias: 16, ...NO_BATCH_NORM, inputs: 32, units: 1, activation: ACTIVATIONS.linear, hidden: false },
  ]);
  assert.equal(plan.deep.dropout, 0.1);
  assert.deepEqual(plan.deep.batchNorm, { momentum: 0.999, epsilon: 0.001 });
});

// A weighted bag (sum in the wide part, sqrtn in the tower), a mean-combined bag, an indicator,
// numerics in both parts (ys before xs in the tower), batch norm and an example-weight column.
const SMALL = `
model small
input {
  clicked: int @label
  w: float = 1 @weight
  u: int = 0
  tags: list<int> = []
  scores: list<float> = []
  genres: list<int> = []
  x: float = 0
  y: float = 0
}
features {
  uid = identity(u, buckets: 7)
  tag = multi_hot(tags, max_len: 3, buckets: 11)
  tag_w = weighted(tag, weights: scores)
  genre = multi_hot(genres, max_len: 2, buckets: 5, combiner: mean)
  xs = numeric(x)
  ys = numeric(y)
}
wide {
  features: [uid, tag_w, xs]
  optimizer: ftrl(learning_rate: 0.1, l1: 0.01)
}
deep {
  features: [embedding(tag_w, dim: 3, combiner: sqrtn), ys, embedding(genre, dim: 2), indicator(uid), xs]
  hidden_units: [4, 2]
  batch_norm: true
  activation: tanh
  dropout: 0.25
  optimizer: adam(learning_rate: 0.01)
}
`;

test('a hand-written spec: weighted and mean bags, an indicator, numerics and batch norm', () => {
  const ir = compile(SMALL);
  const plan = nativePlan(ir, { precision: 'fp16', batchCapacity: 64, lossScale: { initial: 1024, growthInterval: 10 } });
  assert.equal(plan.precision, 'fp16');
  assert.deepEqual(plan.lossScale, { initial: 1024, growthInterval: 10 });
  // ids: uid at 0, tag at 1..3 (length slot 0), tag_w at 4..6 (length slot 1, weights 0..2), genre at 7..8 (length slot 2).
  assert.deepEqual(plan.layout, { idsWidth: 9, lengthsWidth: 3, weightsWidth: 3, numericWidth: 2 });
  assert.equal(plan.weighted, true);
  // Adam keeps m and v; the moving statistics have no optimizer slots.
  assert.deepEqual(
    plan.parameters.map((p) => [p.name, p.rows, p.dim, p.kind, p.slots]),
    [
      ['wide/features/uid', 7, 1, table, 2],
      ['wide/features/tag_w', 11, 1, table, 2],
      ['wide/numeric', 1, 1, dense, 2],
      ['deep/embeddings/tag_w_embedding', 11, 3, table, 2],
      ['deep/embeddings/genre_embedding', 5, 2, table, 2],
      ['wide/bias', 1, 1, dense, 2],
      ['deep/layers/dense_0/kernel', 56, 1, dense, 2],
      ['deep/layers/dense_0/bias', 4, 1, dense, 2],
      ['deep/layers/dense_0/gamma', 4, 1, dense, 2],
      ['deep/layers/dense_0/beta', 4, 1, dense, 2],
      ['deep/layers/dense_0/moving_mean', 4, 1, statistic, 0],
      ['deep/layers/dense_0/moving_variance', 4, 1, statistic, 0],
      ['deep/layers/dense_1/kernel', 8, 1, dense, 2],
      ['deep/layers/dense_1/bias', 2, 1, dense, 2],
      ['deep/layers/dense_1/gamma', 2, 1, dense, 2],
      ['deep/layers/dense_1/beta', 2, 1, dense, 2],
      ['deep/layers/dense_1/moving_mean', 2, 1, statistic, 0],
      ['deep/layers/dense_1/moving_variance', 2, 1, statistic, 0],
      ['deep/layers/logit/kernel', 2, 1, dense, 2],
      ['deep/layers/logit/bias', 1, 1, dense, 2],
    ],
  );
  assert.deepEqual(
    plan.parameters.map((p) => p.part),
    [wide, wide, wide, deep, deep, wide, ...Array<number>(14).fill(deep)],
  );
  assert.deepEqual(plan.optimizers, [
    { kind: OPTIMIZER_KINDS.ftrl, l1: Math.fround(0.01), l2: 0, l2Shrinkage: 0, learningRatePower: -0.5, epsilon: 0, beta1: 0, beta2: 0, momentum: 0, nesterov: false },
    { kind: OPTIMIZER_KINDS.adam, l1: 0, l2: 0, l2Shrinkage: 0, learningRatePower: 0, epsilon: Math.fround(1e-8), beta1: Math.fround(0.9), beta2: Math.fround(0.999), momentum: 0, nesterov: false },
  ]);
  assert.deepEqual(plan.wide, {
    bias: 5,
    numeric: 2,
    numericColumns: [0],
    lookups: [lookupOf({ table: 0, idOffset: 0 }), lookupOf({ table: 1, idOffset: 4, width: 3, lengthSlot: 1, weightOffset: 0 })],
  });
  assert.equal(plan.deep.inputWidth, 14);
  assert.deepEqual(plan.deep.pieces, [
    { kind: 'embedding', lookup: lookupOf({ table: 3, idOffset: 4, width: 3, lengthSlot: 1, weightOffset: 0, combiner: COMBINERS.sqrtn, outOffset: 0 }) },
    { kind: 'numeric', sourceColumns: [1], outOffset: 3 },
    { kind: 'embedding', lookup: lookupOf({ table: 4, idOffset: 7, width: 2, lengthSlot: 2, combiner: COMBINERS.mean, outOffset: 4 }) },
    { kind: 'indicator', idOffset: 0, width: 1, lengthSlot: -1, weightOffset: -1, buckets: 7, outOffset: 6 },
    { kind: 'numeric', sourceColumns: [0], outOffset: 13 },
  ]);
  assert.deepEqual(plan.deep.layers, [
    { kernel: 6, bias: 7, gamma: 8, beta: 9, movingMean: 10, movingVariance: 11, inputs: 14, units: 4, activation: ACTIVATIONS.tanh, hidden: true },
    { kernel: 12, bias: 13, gamma: 14, beta: 15, movingMean: 16, movingVariance: 17, inputs: 4, units: 2, activation: ACTIVATIONS.tanh, hidden: true },
    { kernel: 18, bias: 19, ...NO_BATCH_NORM, inputs: 2, units: 1, activation: ACTIVATIONS.linear, hidden: false },
  ]);
  assert.equal(plan.deep.dropout, 0.25);
});

test('a wide-only model has no layers or pieces; a deep-only model has no wide bias or numeric weights', () => {
  const wideOnly = nativePlan(compile('model w\ninput { c: int @label\n u: int = 0 }\nfeatures { uid = identity(u, buckets: 3) }\nwide { features: [uid]\n optimizer: ftrl(learning_rate: 0.1) }\n'), { precision: 'fp32', batchCapacity: 1 });
  assert.deepEqual(wideOnly.deep.layers, []);
  assert.deepEqual(wideOnly.deep.pieces, []);
  assert.deepEqual([wideOnly.wide.bias, wideOnly.wide.numeric], [1, -1]);
  const deepOnly = nativePlan(compile('model d\ninput { c: int @label\n x: float = 0 }\nfeatures { xs = numeric(x) }\ndeep { features: [xs]\n hidden_units: [2]\n optimizer: sgd(learning_rate: 0.1) }\n'), { precision: 'fp32', batchCapacity: 1 });
  assert.deepEqual([deepOnly.wide.bias, deepOnly.wide.numeric, deepOnly.wide.lookups.length, deepOnly.wide.numericColumns.length], [-1, -1, 0, 0]);
  assert.deepEqual(deepOnly.deep.pieces, [{ kind: 'numeric', sourceColumns: [0], outOffset: 0 }]);
});

test('every optimizer: its kind and float32-rounded hyperparameters, zeros where it has none', () => {
  const f = Math.fround;
  const none = { l1: 0, l2: 0, l2Shrinkage: 0, learningRatePower: 0, epsilon: 0, beta1: 0, beta2: 0, momentum: 0, nesterov: false };
  assert.deepEqual(nativeOptimizer({ kind: 'ftrl', learningRate: 0.1, learningRatePower: -0.7, initialAccumulatorValue: 0.1, l1: 0.3, l2: 0.2, l2Shrinkage: 0.1 }), {
    ...none,
    kind: OPTIMIZER_KINDS.ftrl,
    l1: f(0.3),
    l2: f(0.2),
    l2Shrinkage: f(0.1),
    learningRatePower: f(-0.7),
  });
  assert.deepEqual(nativeOptimizer({ kind: 'proximal_adagrad', learningRate: 0.1, initialAccumulatorValue: 0.1, l1: 0.3, l2: 0.2 }), { ...none, kind: OPTIMIZER_KINDS.proximal_adagrad, l1: f(0.3), l2: f(0.2) });
  assert.deepEqual(nativeOptimizer({ kind: 'adagrad', learningRate: 0.1, initialAccumulatorValue: 0.1, epsilon: 1e-7 }), { ...none, kind: OPTIMIZER_KINDS.adagrad, epsilon: f(1e-7) });
  assert.deepEqual(nativeOptimizer({ kind: 'adam', learningRate: 0.1, beta1: 0.8, beta2: 0.99, epsilon: 1e-6 }), { ...none, kind: OPTIMIZER_KINDS.adam, beta1: f(0.8), beta2: f(0.99), epsilon: f(1e-6) });
  assert.deepEqual(nativeOptimizer({ kind: 'sgd', learningRate: 0.1, momentum: 0.9, nesterov: true }), { ...none, kind: OPTIMIZER_KINDS.sgd, momentum: f(0.9), nesterov: true });
  assert.notEqual(f(0.3), 0.3); // the rounding above is observable
});

test('precision: off is tf32, or fp32 when strict; bf16 and fp16 pass through', () => {
  assert.equal(nativePrecision('off', false), 'tf32');
  assert.equal(nativePrecision('off', true), 'fp32');
  assert.equal(nativePrecision('bf16', true), 'bf16');
  assert.equal(nativePrecision('fp16', false), 'fp16');
  assert.deepEqual(DEFAULT_LOSS_SCALE, { initial: 2 ** 15, growthInterval: 2000 });
  assert.throws(() => nativePlan(compile(SMALL), { precision: 'fp32', batchCapacity: 0 }), /batch capacity 0/);
});

test('outbrain: deep pieces tile [0, inputWidth), lookups read tables, parameters follow parameterSpecs', () => {
  const ir = compileFile('examples/outbrain/outbrain.wnd');
  const plan: NativePlan = nativePlan(ir, { precision: 'bf16', batchCapacity: 131072 });
  const specs = parameterSpecs(ir);
  assert.deepEqual(
    plan.parameters.map((p) => [p.name, p.size]),
    specs.map((s) => [s.name, s.shape.reduce((a, b) => a * b, 1)]),
  );
  const widthOf = (piece: NativePlan['deep']['pieces'][number]): number =>
    piece.kind === 'embedding' ? plan.parameters[piece.lookup.table]!.dim : piece.kind === 'indicator' ? piece.buckets : piece.sourceColumns.length;
  const spans = plan.deep.pieces.map((p) => [p.kind === 'embedding' ? p.lookup.outOffset : p.outOffset, widthOf(p)] as const).sort((a, b) => a[0] - b[0]);
  let covered = 0;
  for (const [offset, width] of spans) {
    assert.equal(offset, covered, `a piece starts at ${offset}, the previous ones end at ${covered}`);
    covered += width;
  }
  assert.equal(covered, plan.deep.inputWidth);
  assert.equal(plan.deep.inputWidth, ir.deep.inputWidth);
  const lookups = [...plan.wide.lookups, ...plan.deep.pieces.flatMap((p) => (p.kind === 'embedding' ? [p.lookup] : []))];
  assert.ok(lookups.length > 0);
  for (const l of lookups) {
    assert.equal(plan.parameters[l.table]!.kind, table, `lookup of parameter ${l.table} (${plan.parameters[l.table]?.name})`);
    assert.ok(l.idOffset >= 0 && l.idOffset + l.width <= plan.layout.idsWidth);
    assert.ok(l.lengthSlot < plan.layout.lengthsWidth && (l.weightOffset === -1 || l.weightOffset + l.width <= plan.layout.weightsWidth));
  }
  for (const l of plan.wide.lookups) assert.equal(plan.parameters[l.table]!.part, wide);
  for (const column of [...plan.wide.numericColumns, ...plan.deep.pieces.flatMap((p) => (p.kind === 'numeric' ? p.sourceColumns : []))]) assert.ok(column >= 0 && column < plan.layout.numericWidth);
  assert.equal(plan.wide.numericColumns.length, plan.wide.numeric === -1 ? 0 : plan.parameters[plan.wide.numeric]!.size);
  // Layers chain: each takes the previous one's units; the last is the 1-unit logit.
  plan.deep.layers.forEach((layer, i) => {
    assert.equal(layer.inputs, i === 0 ? plan.deep.inputWidth : plan.deep.layers[i - 1]!.units);
    assert.equal(plan.parameters[layer.kernel]!.size, layer.inputs * layer.units);
    assert.equal(layer.hidden, i < plan.deep.layers.length - 1);
  });
  assert.equal(plan.deep.layers.at(-1)!.units, 1);
});

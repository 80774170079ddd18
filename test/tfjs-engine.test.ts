import { test } from 'node:test';
import assert from 'node:assert/strict';
import { compileSource } from '../compiler/compile.js';
import type { ModelIR } from '../compiler/ir.js';
import type { Batch } from '../runtime/data/contracts.js';
import { UnsupportedPrecisionError, type NamedTensor } from '../runtime/engine/engine.js';
import { fillInitial, initialParameters, parameterSpecs, RandomStream, TRUNCATED_NORMAL_STDDEV } from '../runtime/engine/init.js';
import { BackendUnavailableError, loadBackend, type ModuleImporter } from '../runtime/engine/tfjs/backend.js';
import { TfjsEngine } from '../runtime/engine/tfjs/engine.js';
import { indicatorColumns } from '../runtime/engine/tfjs/lookups.js';

// Every engine here runs on the wasm backend (the default on a CPU), created once.
const enginePromise = TfjsEngine.create({ backend: 'wasm' });

function compile(source: string): ModelIR {
  const result = compileSource(source, 'test.wnd', 'wnd');
  assert.deepEqual(result.diagnostics.filter((d) => d.severity === 'error').map((d) => `${d.code} ${d.message}`), []);
  return result.ir!;
}

async function engineFor(ir: ModelIR, seed = 1): Promise<TfjsEngine> {
  const engine = await enginePromise;
  await engine.build(ir, seed);
  return engine;
}

/** Fresh engines, for tests that need two models at once. */
async function newEngine(ir: ModelIR, seed = 1): Promise<TfjsEngine> {
  const engine = await TfjsEngine.create({ backend: 'wasm' });
  await engine.build(ir, seed);
  return engine;
}

interface Row {
  ids?: Record<string, number[]>;
  idWeights?: Record<string, number[]>;
  numeric?: Record<string, number>;
  label: number;
  weight?: number;
}

/** A batch in the IR's layout from readable rows; `capacity` adds rows past `size` full of junk. */
function batchOf(ir: ModelIR, rows: Row[], capacity = rows.length): Batch {
  const L = ir.layout;
  const batch: Batch = {
    size: rows.length,
    ids: new Int32Array(capacity * L.idsWidth).fill(9999),
    lengths: new Int32Array(capacity * L.lengthsWidth).fill(9999),
    weights: new Float32Array(capacity * L.weightsWidth).fill(NaN),
    numeric: new Float32Array(capacity * L.numericWidth).fill(NaN),
    label: new Float32Array(capacity).fill(NaN),
    group: new Float64Array(capacity),
    weight: new Float32Array(capacity).fill(NaN),
  };
  rows.forEach((row, b) => {
    for (const slot of L.ids) {
      const ids = row.ids?.[slot.feature] ?? [];
      if (slot.lengthSlot === null) assert.equal(ids.length, slot.width, `row ${b} \`${slot.feature}\` needs one id`);
      else batch.lengths[b * L.lengthsWidth + slot.lengthSlot] = ids.length;
      for (let k = 0; k < slot.width; k++) {
        batch.ids[b * L.idsWidth + slot.offset + k] = k < ids.length ? ids[k]! : 0;
        if (slot.weightOffset !== null) batch.weights[b * L.weightsWidth + slot.weightOffset + k] = row.idWeights?.[slot.feature]?.[k] ?? 0;
      }
    }
    for (const slot of L.numeric) batch.numeric[b * L.numericWidth + slot.offset] = row.numeric?.[slot.feature] ?? 0;
    batch.label[b] = row.label;
    batch.weight[b] = row.weight ?? 1;
  });
  return batch;
}

/** Sets every parameter to seeded values in [-0.5, 0.5), slots untouched. */
async function randomiseParameters(engine: TfjsEngine, ir: ModelIR, seed: number): Promise<Map<string, Float64Array>> {
  const names = new Set(parameterSpecs(ir).map((s) => s.name));
  const stream = new RandomStream(seed, 'test');
  const state = await engine.state();
  for (const t of state) if (names.has(t.name)) t.data.forEach((_, i) => (t.data[i] = stream.uniform() - 0.5));
  await engine.loadState(state);
  return new Map(state.filter((t) => names.has(t.name)).map((t) => [t.name, Float64Array.from(t.data)]));
}

const sigmoid = (z: number) => 1 / (1 + Math.exp(-z));
const bce = (z: number, y: number) => Math.max(z, 0) - z * y + Math.log1p(Math.exp(-Math.abs(z)));

function assertClose(actual: ArrayLike<number>, expected: ArrayLike<number>, tolerance: (e: number) => number, what: string): void {
  assert.equal(actual.length, expected.length, `${what}: length`);
  for (let i = 0; i < expected.length; i++) {
    const a = actual[i]!;
    const e = expected[i]!;
    assert.ok(Math.abs(a - e) <= tolerance(e), `${what}[${i}]: got ${a}, expected ${e}`);
  }
}

// ------------------------------------------------------------------------------------------------
// The wide & deep model of the gradient test, with a float64 reference forward pass written out.

const TINY = `
model tiny
input {
  clicked: int @label
  w: float = 1 @weight
  u: int = 0
  tags: list<int> = []
  x: float = 0
}
features {
  uid = identity(u, buckets: 4)
  tag = multi_hot(tags, max_len: 3, buckets: 5, combiner: mean)
  xs = numeric(x)
}
wide {
  features: [uid, tag, xs]
  optimizer: ftrl(learning_rate: 0.1)
}
deep {
  features: [embedding(uid, dim: 2), embedding(tag, dim: 2), indicator(uid), xs]
  hidden_units: [3]
  activation: tanh
  optimizer: adam(learning_rate: 0.01)
}
`;

const TINY_ROWS: Row[] = [
  { ids: { uid: [1], tag: [0, 2, 2] }, numeric: { xs: 0.5 }, label: 1, weight: 1 },
  { ids: { uid: [3], tag: [] }, numeric: { xs: -1.25 }, label: 0, weight: 2 },
  { ids: { uid: [1], tag: [4] }, numeric: { xs: 2 }, label: 0, weight: 0.5 },
  { ids: { uid: [0], tag: [2, 4] }, numeric: { xs: 0 }, label: 1, weight: 1 },
];

/** erf to 1.2e-7 (Numerical Recipes' erfc Chebyshev fit): float64 Math has none. */
function erf(x: number): number {
  const t = 1 / (1 + 0.5 * Math.abs(x));
  const poly = -x * x - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * (-0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277))))))));
  const erfc = t * Math.exp(poly);
  return x >= 0 ? 1 - erfc : erfc - 1;
}

const ACTIVATIONS: Record<string, (x: number) => number> = {
  tanh: Math.tanh,
  relu: (x) => Math.max(x, 0),
  sigmoid,
  gelu: (x) => 0.5 * x * (1 + erf(x / Math.SQRT2)),
};

/** The tiny model's logits in float64, straight from its definition. */
function tinyLogits(p: Map<string, Float64Array>, rows: Row[], activation = Math.tanh): number[] {
  const get = (name: string) => p.get(name)!;
  return rows.map((row) => {
    const u = row.ids!.uid![0]!;
    const tags = row.ids!.tag!;
    const x = row.numeric!.xs!;
    let wide = get('wide/bias')[0]! + get('wide/features/uid')[u]! + get('wide/numeric')[0]! * x;
    for (const t of tags) wide += get('wide/features/tag')[t]!;
    const eu = [0, 1].map((d) => get('deep/embeddings/uid_embedding')[u * 2 + d]!);
    const et = [0, 1].map((d) => (tags.length === 0 ? 0 : tags.reduce((s, t) => s + get('deep/embeddings/tag_embedding')[t * 2 + d]!, 0) / tags.length));
    const input = [...eu, ...et, ...[0, 1, 2, 3].map((k) => (k === u ? 1 : 0)), x];
    const kernel = get('deep/layers/dense_0/kernel');
    const hidden = [0, 1, 2].map((j) => activation(input.reduce((s, v, i) => s + v * kernel[i * 3 + j]!, get('deep/layers/dense_0/bias')[j]!)));
    const deep = hidden.reduce((s, h, j) => s + h * get('deep/layers/logit/kernel')[j]!, get('deep/layers/logit/bias')[0]!);
    return wide + deep;
  });
}

function tinyLoss(p: Map<string, Float64Array>, rows: Row[], activation = Math.tanh): number {
  const z = tinyLogits(p, rows, activation);
  return rows.reduce((s, row, i) => s + (row.weight ?? 1) * bce(z[i]!, row.label), 0) / rows.length;
}

/** Central finite differences of `lossOf` w.r.t. every entry of `p[name]`, in float64. */
function finiteDifferences(p: Map<string, Float64Array>, name: string, lossOf: (p: Map<string, Float64Array>) => number): Float64Array {
  const values = p.get(name)!;
  const out = new Float64Array(values.length);
  const h = 1e-6;
  for (let i = 0; i < values.length; i++) {
    const saved = values[i]!;
    values[i] = saved + h;
    const up = lossOf(p);
    values[i] = saved - h;
    const down = lossOf(p);
    values[i] = saved;
    out[i] = (up - down) / (2 * h);
  }
  return out;
}

// float32 autodiff against float64 differences of O(1) values: agreement to 1e-5 absolute plus
// 1e-4 relative is float32 rounding; a wrong term or factor is off by far more.
const GRADIENT_TOLERANCE = (e: number) => 1e-5 + 1e-4 * Math.abs(e);

test('predict gives sigmoid(wide + deep) of the hand-computed logits, rows past `size` ignored', async () => {
  const ir = compile(TINY);
  const engine = await engineFor(ir);
  const p = await randomiseParameters(engine, ir, 3);
  const batch = batchOf(ir, TINY_ROWS, 6);
  const predicted = await engine.predict(batch);
  assertClose(predicted, tinyLogits(p, TINY_ROWS).map(sigmoid), () => 1e-6, 'p');
});

test('predict on a hand-set state equals the hand-computed probability', async () => {
  const ir = compile(TINY);
  const engine = await engineFor(ir);
  const state = await engine.state();
  const set = (name: string, values: number[]) => state.find((t) => t.name === name)!.data.set(values);
  set('wide/bias', [0.25]);
  set('wide/features/uid', [0, 0.5, 0, 0]);
  set('wide/features/tag', [0.125, 0, -0.75, 0, 0]);
  set('wide/numeric', [2]);
  set('deep/embeddings/uid_embedding', [0, 0, 1, -1, 0, 0, 0, 0]);
  set('deep/embeddings/tag_embedding', [1, 0, 0, 0, 0, 3, 0, 0, 0, 0]);
  set('deep/layers/dense_0/kernel', new Array(27).fill(0).map((_, i) => (i === 0 || i === 10 ? 1 : 0))); // h0 = tanh(e_u[0]), h1 = tanh(e_tag[1])
  set('deep/layers/dense_0/bias', [0, 0, 0]);
  set('deep/layers/logit/kernel', [1, 2, 0]);
  set('deep/layers/logit/bias', [-0.5]);
  await engine.loadState(state);
  const [p] = await engine.predict(batchOf(ir, [TINY_ROWS[0]!]));
  // wide: 0.25 + 0.5 + (0.125 - 0.75 - 0.75) + 2 * 0.5 = 0.375; tag bag mean: [(1 + 0 + 0) / 3, (0 + 3 + 3) / 3] = [1/3, 2]
  const logit = 0.375 + Math.tanh(1) + 2 * Math.tanh(2) - 0.5;
  assert.ok(Math.abs(p! - sigmoid(logit)) < 1e-6, `got ${p}, expected ${sigmoid(logit)}`);
});

test('gradients equal float64 finite differences; tables get coalesced rows of the ids seen only', async () => {
  const ir = compile(TINY);
  const engine = await engineFor(ir);
  const p = await randomiseParameters(engine, ir, 5);
  const grads = await engine.gradients(batchOf(ir, TINY_ROWS), 0);
  assert.ok(Math.abs(grads.loss - tinyLoss(p, TINY_ROWS)) < 1e-6, `loss ${grads.loss} vs ${tinyLoss(p, TINY_ROWS)}`);
  const lossOf = (q: Map<string, Float64Array>) => tinyLoss(q, TINY_ROWS);

  assert.deepEqual(
    grads.dense.map((d) => d.name),
    ['wide/numeric', 'wide/bias', 'deep/layers/dense_0/kernel', 'deep/layers/dense_0/bias', 'deep/layers/logit/kernel', 'deep/layers/logit/bias'],
  );
  for (const d of grads.dense) assertClose(d.data, finiteDifferences(p, d.name, lossOf), GRADIENT_TOLERANCE, d.name);

  // ids seen: uid {0, 1, 3}; tag {0, 2, 4} (2 twice in row 0 and again in row 3: one row, summed).
  assert.deepEqual(
    grads.sparse.map((s) => [s.name, Array.from(s.rows), s.dim]),
    [
      ['wide/features/uid', [0, 1, 3], 1],
      ['wide/features/tag', [0, 2, 4], 1],
      ['deep/embeddings/uid_embedding', [0, 1, 3], 2],
      ['deep/embeddings/tag_embedding', [0, 2, 4], 2],
    ],
  );
  for (const s of grads.sparse) {
    const full = finiteDifferences(p, s.name, lossOf);
    const touched = Array.from(s.rows).flatMap((row) => Array.from(full.subarray(row * s.dim, (row + 1) * s.dim)));
    assertClose(s.values, touched, GRADIENT_TOLERANCE, s.name);
    const untouched = full.filter((_, i) => !s.rows.includes(Math.floor(i / s.dim)));
    assert.ok(untouched.every((g) => g === 0), `${s.name}: rows not in the batch have no gradient`);
  }
});

test('every activation: probabilities and tower gradients equal the float64 reference', async () => {
  for (const [name, activation] of Object.entries(ACTIVATIONS)) {
    const ir = compile(TINY.replace('activation: tanh', `activation: ${name}`));
    const engine = await engineFor(ir);
    const p = await randomiseParameters(engine, ir, 21);
    const batch = batchOf(ir, TINY_ROWS);
    assertClose(await engine.predict(batch), tinyLogits(p, TINY_ROWS, activation).map(sigmoid), () => 1e-6, `${name} p`);
    const kernel = (await engine.gradients(batch, 0)).dense.find((d) => d.name === 'deep/layers/dense_0/kernel')!;
    assertClose(kernel.data, finiteDifferences(p, kernel.name, (q) => tinyLoss(q, TINY_ROWS, activation)), GRADIENT_TOLERANCE, `${name} kernel`);
  }
});

test('gradients leave the parameters unchanged; trainStep applies each part its optimizer and rate', async () => {
  const source = TINY.replace('ftrl(learning_rate: 0.1)', 'sgd(learning_rate: 0.1)').replace('adam(learning_rate: 0.01)', 'sgd(learning_rate: 0.01)');
  const ir = compile(source);
  const engine = await engineFor(ir);
  await randomiseParameters(engine, ir, 9);
  const before = new Map((await engine.state()).map((t) => [t.name, t.data]));
  const batch = batchOf(ir, TINY_ROWS);
  const grads = await engine.gradients(batch, 0);
  assert.deepEqual(new Map((await engine.state()).map((t) => [t.name, t.data])), before);

  await engine.trainStep(batch, 0, { wide: 0.5, deep: 0.25 });
  const after = new Map((await engine.state()).map((t) => [t.name, t.data]));
  const rate = (name: string) => Math.fround(name.startsWith('wide/') ? 0.5 : 0.25);
  for (const d of grads.dense) {
    const expected = before.get(d.name)!.map((w, i) => Math.fround(w - Math.fround(d.data[i]! * rate(d.name))));
    assert.deepEqual(after.get(d.name), expected, d.name);
  }
  for (const s of grads.sparse) {
    const expected = Float32Array.from(before.get(s.name)!);
    s.rows.forEach((row, r) => {
      for (let j = 0; j < s.dim; j++) expected[row * s.dim + j] = Math.fround(expected[row * s.dim + j]! - Math.fround(s.values[r * s.dim + j]! * rate(s.name)));
    });
    assert.deepEqual(after.get(s.name), expected, s.name);
  }
});

// ------------------------------------------------------------------------------------------------
// Bags: a tower that passes the combined vector through, logit = 1 * e0 - 2 * e1.

function bagModel(embedding: string): string {
  return `
model bags
input {
  clicked: int @label
  tags: list<int> = []
  scores: list<float> = []
}
features {
  tag = multi_hot(tags, max_len: 4, buckets: 6)
  tag_w = weighted(tag, weights: scores)
}
deep {
  features: [${embedding}]
  hidden_units: [4]
  optimizer: sgd(learning_rate: 0.1)
}
`;
}

const TABLE = [
  [1, 0],
  [0, 1],
  [2, 2],
  [-1, 3],
  [0.5, -0.5],
  [4, 4],
];

async function bagProbabilities(embedding: string, rows: Row[]): Promise<Float32Array> {
  const ir = compile(bagModel(embedding));
  const engine = await engineFor(ir);
  const state = await engine.state();
  const set = (name: string, values: number[]) => state.find((t) => t.name === name)!.data.set(values);
  set(ir.tables[0]!.name, TABLE.flat());
  // relu(e0) - relu(-e0) = e0: units 0, 1 carry e0, units 2, 3 carry e1.
  set('deep/layers/dense_0/kernel', [1, -1, 0, 0, 0, 0, 1, -1]);
  set('deep/layers/dense_0/bias', [0, 0, 0, 0]);
  set('deep/layers/logit/kernel', [1, -1, -2, 2]);
  set('deep/layers/logit/bias', [0]);
  await engine.loadState(state);
  return engine.predict(batchOf(ir, rows));
}

const logitOf = (e: number[]) => e[0]! - 2 * e[1]!;

test('bags combine their valid ids by sum, mean and sqrtn; an empty bag gives zeros', async () => {
  const rows: Row[] = [{ ids: { tag: [0, 2, 2] }, label: 0 }, { ids: { tag: [] }, label: 0 }, { ids: { tag: [3] }, label: 0 }];
  const sum = [
    [1 + 2 + 2, 0 + 2 + 2],
    [0, 0],
    [-1, 3],
  ];
  const cases: [string, number[]][] = [
    ['sum', [1, 1, 1]],
    ['mean', [1 / 3, 1, 1]],
    ['sqrtn', [1 / Math.sqrt(3), 1, 1]],
  ];
  for (const [combiner, scale] of cases) {
    const p = await bagProbabilities(`embedding(tag, dim: 2, combiner: ${combiner})`, rows);
    assertClose(p, sum.map((e, i) => sigmoid(logitOf(e) * scale[i]!)), () => 1e-6, combiner);
  }
});

test('weighted bags weight each id; ids with a weight <= 0 are dropped, as TF does', async () => {
  const rows: Row[] = [
    { ids: { tag: [0, 2, 5], tag_w: [0, 2, 5] }, idWeights: { tag_w: [0.5, 2, 1] }, label: 0 },
    { ids: { tag: [1, 4, 3], tag_w: [1, 4, 3] }, idWeights: { tag_w: [3, 0, -1] }, label: 0 },
  ];
  // row 0: 0.5 * [1, 0] + 2 * [2, 2] + 1 * [4, 4] = [8.5, 8]; weights 3.5, squares 5.25
  // row 1: only id 1 with weight 3: [0, 3]; weights 3, squares 9
  const cases: [string, number[][]][] = [
    ['sum', [[8.5, 8], [0, 3]]],
    ['mean', [[8.5 / 3.5, 8 / 3.5], [0, 1]]],
    ['sqrtn', [[8.5 / Math.sqrt(5.25), 8 / Math.sqrt(5.25)], [0, 1]]],
  ];
  for (const [combiner, vectors] of cases) {
    const p = await bagProbabilities(`embedding(tag_w, dim: 2, combiner: ${combiner})`, rows);
    assertClose(p, vectors.map((e) => sigmoid(logitOf(e))), () => 1e-6, combiner);
  }
});

test('indicators count ids, or sum their weights for a weighted feature', () => {
  const ir = compile(bagModel('embedding(tag_w, dim: 2)'));
  const slot = ir.layout.ids.find((s) => s.feature === 'tag_w')!;
  const batch = batchOf(ir, [{ ids: { tag: [1, 3, 1], tag_w: [1, 3, 1] }, idWeights: { tag_w: [0.5, 2, 0.25] }, label: 0 }]);
  const widths = { ids: ir.layout.idsWidth, lengths: ir.layout.lengthsWidth, weights: ir.layout.weightsWidth };
  assert.deepEqual(Array.from(indicatorColumns(batch, widths, slot, 6)), [0, 0.75, 0, 2, 0, 0]);
  const plain = ir.layout.ids.find((s) => s.feature === 'tag')!;
  assert.deepEqual(Array.from(indicatorColumns(batch, widths, plain, 6)), [0, 2, 0, 1, 0, 0]);
});

test('a linear model: weighted bags sum their weighted wide weights, non-positive weights dropped', async () => {
  const ir = compile(`
model linear
input {
  clicked: int @label
  tags: list<int> = []
  scores: list<float> = []
}
features {
  tag = multi_hot(tags, max_len: 3, buckets: 4)
  tag_w = weighted(tag, weights: scores)
}
wide {
  features: [tag_w]
  optimizer: sgd(learning_rate: 1)
}
`);
  const engine = await engineFor(ir);
  const state = await engine.state();
  state.find((t) => t.name === 'wide/features/tag_w')!.data.set([1, -2, 0.5, 4]);
  state.find((t) => t.name === 'wide/bias')!.data.set([0.25]);
  await engine.loadState(state);
  const rows: Row[] = [
    { ids: { tag: [0, 2, 3], tag_w: [0, 2, 3] }, idWeights: { tag_w: [2, 1, -1] }, label: 1 },
    { ids: { tag: [], tag_w: [] }, label: 0 },
  ];
  const batch = batchOf(ir, rows);
  const logits = [0.25 + 2 * 1 + 1 * 0.5, 0.25];
  assertClose(await engine.predict(batch), logits.map(sigmoid), () => 1e-6, 'p');
  // d loss / d w_id = sum over rows of weight_id * (p - y) / n; id 3 (weight -1) is not touched.
  const grads = await engine.gradients(batch, 0);
  const residual = (sigmoid(logits[0]!) - 1) / 2;
  assert.deepEqual(grads.sparse.map((g) => [g.name, Array.from(g.rows)]), [['wide/features/tag_w', [0, 2]]]);
  assertClose(grads.sparse[0]!.values, [2 * residual, residual], () => 1e-6, 'wide gradient');
  assertClose(grads.dense.find((d) => d.name === 'wide/bias')!.data, [residual + sigmoid(0.25) / 2], () => 1e-6, 'bias gradient');
});

// ------------------------------------------------------------------------------------------------
// Batch norm and dropout.

const NORMED = `
model normed
input {
  clicked: int @label
  x: float = 0
}
features {
  xs = numeric(x)
}
deep {
  features: [xs]
  hidden_units: [2]
  activation: tanh
  batch_norm: true
  optimizer: sgd(learning_rate: 0.1)
}
`;

const NORMED_ROWS: Row[] = [0.5, -1, 2, 0.25].map((x, i) => ({ numeric: { xs: x }, label: i % 2 }));

/** Training-mode loss of the batch-normalised model in float64 (batch moments, biased variance, eps 1e-3). */
function normedLoss(p: Map<string, Float64Array>, rows: Row[]): number {
  const get = (name: string) => p.get(name)!;
  const h = rows.map((row) => [0, 1].map((j) => Math.tanh(row.numeric!.xs! * get('deep/layers/dense_0/kernel')[j]! + get('deep/layers/dense_0/bias')[j]!)));
  const mean = [0, 1].map((j) => h.reduce((s, v) => s + v[j]!, 0) / h.length);
  const variance = [0, 1].map((j) => h.reduce((s, v) => s + (v[j]! - mean[j]!) ** 2, 0) / h.length);
  return (
    rows.reduce((s, row, i) => {
      const normed = [0, 1].map((j) => ((h[i]![j]! - mean[j]!) / Math.sqrt(variance[j]! + 1e-3)) * get('deep/layers/dense_0/gamma')[j]! + get('deep/layers/dense_0/beta')[j]!);
      const z = normed.reduce((t, v, j) => t + v * get('deep/layers/logit/kernel')[j]!, get('deep/layers/logit/bias')[0]!);
      return s + bce(z, row.label);
    }, 0) / rows.length
  );
}

test('batch norm: gradients through the batch moments equal finite differences; trainStep moves the moving averages', async () => {
  const ir = compile(NORMED);
  assert.deepEqual(
    parameterSpecs(ir).map((s) => `${s.name} ${s.role}`),
    [
      'deep/layers/dense_0/kernel dense',
      'deep/layers/dense_0/bias dense',
      'deep/layers/dense_0/gamma dense',
      'deep/layers/dense_0/beta dense',
      'deep/layers/dense_0/moving_mean statistic',
      'deep/layers/dense_0/moving_variance statistic',
      'deep/layers/logit/kernel dense',
      'deep/layers/logit/bias dense',
    ],
  );
  const engine = await engineFor(ir);
  const p = await randomiseParameters(engine, ir, 11);
  const batch = batchOf(ir, NORMED_ROWS);
  const grads = await engine.gradients(batch, 0);
  assert.ok(Math.abs(grads.loss - normedLoss(p, NORMED_ROWS)) < 1e-6);
  for (const d of grads.dense) assertClose(d.data, finiteDifferences(p, d.name, (q) => normedLoss(q, NORMED_ROWS)), GRADIENT_TOLERANCE, d.name);

  // The moments of tanh(x * k + b) over the batch, then TF's moving average with momentum 0.999.
  const h = NORMED_ROWS.map((row) => [0, 1].map((j) => Math.tanh(row.numeric!.xs! * p.get('deep/layers/dense_0/kernel')![j]! + p.get('deep/layers/dense_0/bias')![j]!)));
  const mean = [0, 1].map((j) => h.reduce((s, v) => s + v[j]!, 0) / h.length);
  const variance = [0, 1].map((j) => h.reduce((s, v) => s + (v[j]! - mean[j]!) ** 2, 0) / h.length);
  const movingBefore = [p.get('deep/layers/dense_0/moving_mean')!, p.get('deep/layers/dense_0/moving_variance')!];
  await engine.trainStep(batch, 0, { wide: 0, deep: 0.1 });
  const state = new Map((await engine.state()).map((t) => [t.name, t.data]));
  assertClose(state.get('deep/layers/dense_0/moving_mean')!, [0, 1].map((j) => movingBefore[0]![j]! + (mean[j]! - movingBefore[0]![j]!) * 0.001), () => 1e-7, 'moving_mean');
  assertClose(state.get('deep/layers/dense_0/moving_variance')!, [0, 1].map((j) => movingBefore[1]![j]! + (variance[j]! - movingBefore[1]![j]!) * 0.001), () => 1e-7, 'moving_variance');
});

test('dropout is seeded by the step: same step, same gradients; another step, others; predict has none', async () => {
  const ir = compile(TINY.replace('activation: tanh', 'activation: tanh\n  dropout: 0.5'));
  const engine = await engineFor(ir);
  const p = await randomiseParameters(engine, ir, 13);
  const batch = batchOf(ir, TINY_ROWS);
  const kernel = (g: Awaited<ReturnType<TfjsEngine['gradients']>>) => g.dense.find((d) => d.name === 'deep/layers/dense_0/kernel')!.data;
  const first = await engine.gradients(batch, 4);
  assert.deepEqual(kernel(await engine.gradients(batch, 4)), kernel(first));
  assert.notDeepEqual(kernel(await engine.gradients(batch, 5)), kernel(first));
  assertClose(await engine.predict(batch), tinyLogits(p, TINY_ROWS).map(sigmoid), () => 1e-6, 'p');
});

// ------------------------------------------------------------------------------------------------
// Seeds, state, precision.

async function trainThreeSteps(ir: ModelIR, seed: number): Promise<NamedTensor[]> {
  const engine = await engineFor(ir, seed);
  const batch = batchOf(ir, TINY_ROWS);
  for (let step = 0; step < 3; step++) await engine.trainStep(batch, step, { wide: 0.1, deep: 0.01 });
  return engine.state();
}

test('one seed gives a bit-identical state after 3 steps, another seed a different one', async () => {
  const ir = compile(TINY.replace('activation: tanh', 'activation: tanh\n  dropout: 0.25'));
  const a = await trainThreeSteps(ir, 42);
  const b = await trainThreeSteps(ir, 42);
  assert.deepEqual(b, a);
  const c = await trainThreeSteps(ir, 43);
  assert.deepEqual(c.map((t) => t.name), a.map((t) => t.name));
  const differing = c.filter((t, i) => !t.data.every((v, j) => Object.is(v, a[i]!.data[j]))).map((t) => t.name);
  assert.ok(differing.includes('deep/embeddings/uid_embedding') && differing.includes('deep/layers/dense_0/kernel'), `differing: ${differing.join(', ')}`);
});

test('state names every parameter and optimizer slot; loadState restores it into another engine', async () => {
  const ir = compile(TINY);
  const a = await newEngine(ir, 1);
  const batch = batchOf(ir, TINY_ROWS);
  for (let step = 0; step < 2; step++) await a.trainStep(batch, step, { wide: 0.1, deep: 0.01 });
  const saved = await a.state();
  assert.deepEqual(
    saved.map((t) => `${t.name} [${t.shape.join(', ')}]`),
    [
      'wide/features/uid [4, 1]',
      'wide/features/uid/accum [4, 1]',
      'wide/features/uid/linear [4, 1]',
      'wide/features/tag [5, 1]',
      'wide/features/tag/accum [5, 1]',
      'wide/features/tag/linear [5, 1]',
      'wide/numeric [1, 1]',
      'wide/numeric/accum [1, 1]',
      'wide/numeric/linear [1, 1]',
      'deep/embeddings/uid_embedding [4, 2]',
      'deep/embeddings/uid_embedding/m [4, 2]',
      'deep/embeddings/uid_embedding/v [4, 2]',
      'deep/embeddings/tag_embedding [5, 2]',
      'deep/embeddings/tag_embedding/m [5, 2]',
      'deep/embeddings/tag_embedding/v [5, 2]',
      'wide/bias [1]',
      'wide/bias/accum [1]',
      'wide/bias/linear [1]',
      'deep/layers/dense_0/kernel [9, 3]',
      'deep/layers/dense_0/kernel/m [9, 3]',
      'deep/layers/dense_0/kernel/v [9, 3]',
      'deep/layers/dense_0/bias [3]',
      'deep/layers/dense_0/bias/m [3]',
      'deep/layers/dense_0/bias/v [3]',
      'deep/layers/logit/kernel [3, 1]',
      'deep/layers/logit/kernel/m [3, 1]',
      'deep/layers/logit/kernel/v [3, 1]',
      'deep/layers/logit/bias [1]',
      'deep/layers/logit/bias/m [1]',
      'deep/layers/logit/bias/v [1]',
    ],
  );
  const b = await newEngine(ir, 2);
  await b.loadState(saved);
  assert.deepEqual(await b.state(), saved);
  assert.deepEqual(await b.predict(batch), await a.predict(batch));
  // The next step continues identically from the restored state.
  await a.trainStep(batch, 2, { wide: 0.1, deep: 0.01 });
  await b.trainStep(batch, 2, { wide: 0.1, deep: 0.01 });
  assert.deepEqual(await b.state(), await a.state());

  await assert.rejects(b.loadState(saved.slice(1)), { message: 'the state does not fit the model `tiny`: missing `wide/features/uid`' });
  const reshaped = saved.map((t) => (t.name === 'wide/bias' ? { ...t, shape: [2], data: new Float32Array(2) } : t));
  await assert.rejects(b.loadState(reshaped), { message: "the state's `wide/bias` has shape [2], the model's [1]" });
  a.dispose();
  b.dispose();
});

test('mixed precision is refused with UnsupportedPrecisionError', async () => {
  const ir = compile(TINY + 'train {\n  mixed_precision: bf16\n}\n');
  const engine = await enginePromise;
  assert.deepEqual(engine.capabilities.mixedPrecision, []);
  await assert.rejects(engine.build(ir, 1), (error: unknown) => {
    assert.ok(error instanceof UnsupportedPrecisionError);
    assert.equal(error.message, 'the tfjs engine cannot train in mixed precision (bf16); use `--engine cuda` on an NVIDIA GPU, or drop `--amp`');
    return true;
  });
});

// ------------------------------------------------------------------------------------------------
// Initialisers.

test('initial values are a pure function of seed and parameter name', () => {
  const ir = compile(TINY);
  const a = initialParameters(ir, 7);
  assert.deepEqual(initialParameters(ir, 7), a);
  const b = initialParameters(ir, 8);
  assert.notDeepEqual(b.find((t) => t.name === 'deep/embeddings/uid_embedding'), a.find((t) => t.name === 'deep/embeddings/uid_embedding'));
  // Wide weights and biases start at zero, as TF's linear model and Dense layers.
  for (const t of a.filter((t) => t.name.startsWith('wide/') || t.name.endsWith('/bias'))) assert.ok(t.data.every((v) => v === 0), t.name);
  // The stream is xoshiro128** seeded through splitmix32: pinned, since the CUDA engine's initial weights come from here.
  const stream = new RandomStream(7, 'deep/layers/dense_0/kernel');
  assert.deepEqual([stream.nextUint32(), stream.nextUint32(), stream.nextUint32()], PINNED_UINT32);
});

const PINNED_UINT32 = [638109739, 3366743923, 3550022617];

function stats(values: Float32Array): { mean: number; std: number; min: number; max: number } {
  let sum = 0;
  let squares = 0;
  let min = Infinity;
  let max = -Infinity;
  for (const v of values) {
    sum += v;
    squares += v * v;
    min = Math.min(min, v);
    max = Math.max(max, v);
  }
  const mean = sum / values.length;
  return { mean, std: Math.sqrt(squares / values.length - mean * mean), min, max };
}

test('initializers draw from their distributions: bounds exact, moments within 2% on 200000 draws', () => {
  const n = 200_000;
  const fans = { fanIn: 300, fanOut: 100 };
  const draw = (init: Parameters<typeof fillInitial>[1]) => stats(fillInitial(new Float32Array(n), init, fans, new RandomStream(1, 'x')));
  const near = (actual: number, expected: number, what: string) => assert.ok(Math.abs(actual - expected) <= 0.02 * Math.abs(expected) + 0.002, `${what}: ${actual} vs ${expected}`);

  const constant = draw({ kind: 'constant', value: 0.5 });
  assert.deepEqual([constant.min, constant.max], [0.5, 0.5]);

  const normal = draw({ kind: 'normal', mean: 1, stddev: 2 });
  near(normal.mean, 1, 'normal mean');
  near(normal.std, 2, 'normal std');

  const truncated = draw({ kind: 'truncated_normal', mean: 1, stddev: 2 });
  assert.ok(truncated.min >= -3 && truncated.max <= 5, 'truncated normal stays within 2 stddev');
  near(truncated.std, 2 * TRUNCATED_NORMAL_STDDEV, 'truncated normal std');

  const uniform = draw({ kind: 'uniform', min: -0.25, max: 0.75 });
  assert.ok(uniform.min >= -0.25 && uniform.max < 0.75);
  near(uniform.mean, 0.25, 'uniform mean');

  const limit = Math.sqrt(6 / 400);
  const glorotUniform = draw({ kind: 'glorot_uniform' });
  assert.ok(glorotUniform.min >= -limit && glorotUniform.max < limit);
  near(glorotUniform.std, limit / Math.sqrt(3), 'glorot uniform std');

  // TF's GlorotNormal: the values drawn (after truncation) have stddev sqrt(2 / (fan_in + fan_out)).
  const glorotNormal = draw({ kind: 'glorot_normal' });
  near(glorotNormal.std, Math.sqrt(2 / 400), 'glorot normal std');
  assert.ok(glorotNormal.max <= (2 * Math.sqrt(2 / 400)) / TRUNCATED_NORMAL_STDDEV);
});

// ------------------------------------------------------------------------------------------------
// Backends.

/** Stands in for a machine where the named packages are not installed (or fail to load). */
function importerWithout(failures: Record<string, Error>): ModuleImporter {
  return (specifier) => (specifier in failures ? Promise.reject(failures[specifier]) : import(specifier));
}

function notInstalled(specifier: string): Error {
  return Object.assign(new Error(`Cannot find package '${specifier}' imported from /app/x.js`), { code: 'ERR_MODULE_NOT_FOUND' });
}

test('auto picks the first backend that loads and says why the others were passed over', async () => {
  const loaded = await loadBackend('auto', {
    importer: importerWithout({
      '@tensorflow/tfjs-node-gpu': notInstalled('@tensorflow/tfjs-node-gpu'),
      // installed, but one of its own dependencies is missing: not "not installed"
      '@tensorflow/tfjs-node': Object.assign(new Error("Cannot find module '@mapbox/node-pre-gyp'\nRequire stack:\n- /app/node_modules/@tensorflow/tfjs-node/dist/index.js"), { code: 'MODULE_NOT_FOUND' }),
    }),
  });
  assert.equal(loaded.name, 'wasm');
  assert.equal(loaded.device, 'CPU (tfjs wasm, 1 thread, SIMD)');
  assert.deepEqual(loaded.skipped, [
    { name: 'tfjs-node-gpu', reason: 'not installed' },
    { name: 'tfjs-node', reason: "Cannot find module '@mapbox/node-pre-gyp'" },
  ]);
});

test('a backend asked for by name that does not load is an error saying why and naming the fix', async () => {
  await assert.rejects(loadBackend('tfjs-node', { importer: importerWithout({ '@tensorflow/tfjs-node': notInstalled('@tensorflow/tfjs-node') }) }), (error: unknown) => {
    assert.ok(error instanceof BackendUnavailableError);
    assert.equal(error.message, 'the TensorFlow.js backend `tfjs-node` is not available: not installed; install it with `npm install @tensorflow/tfjs-node`, or use `--engine tfjs`');
    return true;
  });
  const broken = { '@tensorflow/tfjs-node': new Error('libtensorflow.so.2: cannot open shared object file: No such file or directory\n    at Module._extensions..node') };
  await assert.rejects(loadBackend('tfjs-node', { importer: importerWithout(broken) }), {
    message: 'the TensorFlow.js backend `tfjs-node` is not available: libtensorflow.so.2: cannot open shared object file: No such file or directory; install it with `npm install @tensorflow/tfjs-node`, or use `--engine tfjs`',
  });
});

test('the cpu backend computes what the wasm backend computes', async () => {
  const ir = compile(TINY);
  const wasm = await newEngine(ir, 3);
  const cpu = await TfjsEngine.create({ backend: 'cpu' });
  await cpu.build(ir, 3);
  assert.equal(cpu.capabilities.device, 'CPU (tfjs cpu, plain JavaScript)');
  const batch = batchOf(ir, TINY_ROWS);
  assertClose(await cpu.predict(batch), await wasm.predict(batch), () => 1e-6, 'p');
  // The engines switch tfjs back to their own backend on each call.
  assertClose(await wasm.predict(batch), await cpu.predict(batch), () => 1e-6, 'p');
  assert.equal(wasm.backend.tf.getBackend(), 'cpu');
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { OptimizerIR } from '../compiler/ir.js';
import { adamStepSize, coalesceRows, createOptimizer, slotLayout } from '../runtime/optim/index.js';

// The optimizers compute in float32 and the expectations below are written in decimal arithmetic
// (float64), so values are compared to 1e-6 relative: a few float32 roundings, far below any
// mistake in a formula. Zeros the rules produce exactly (FTRL's l1) are compared exactly.
function assertClose(actual: ArrayLike<number>, expected: readonly number[], what: string): void {
  assert.equal(actual.length, expected.length, `${what}: length`);
  for (let i = 0; i < expected.length; i++) {
    const a = actual[i]!;
    const e = expected[i]!;
    assert.ok(Math.abs(a - e) <= 1e-6 * Math.abs(e) + 1e-12, `${what}[${i}]: got ${a}, expected ${e}`);
  }
}

/** Runs dense steps from the given weights (and slot overrides), one `{g, lr}` per step. */
function runDense(ir: OptimizerIR, w0: readonly number[], steps: readonly { g: readonly number[]; lr?: number }[], firstStep = 0) {
  const optimizer = createOptimizer(ir);
  const param = Float32Array.from(w0);
  const slots = optimizer.createSlots(param.length);
  const history: number[][] = [];
  steps.forEach((s, i) => {
    optimizer.applyDense(param, Float32Array.from(s.g), slots, s.lr ?? ir.learningRate, firstStep + i);
    history.push(Array.from(param));
  });
  return { param, slots, history };
}

const FTRL: OptimizerIR = { kind: 'ftrl', learningRate: 0.5, learningRatePower: -0.5, initialAccumulatorValue: 16, l1: 4, l2: 0.25, l2Shrinkage: 0.125 };

test('slot layouts follow TensorFlow: names, counts and initial values', () => {
  assert.deepEqual(slotLayout(FTRL), [
    { name: 'accum', init: 16 },
    { name: 'linear', init: 0 },
  ]);
  assert.deepEqual(slotLayout({ kind: 'proximal_adagrad', learningRate: 1, initialAccumulatorValue: 0.1, l1: 0, l2: 0 }), [{ name: 'accum', init: 0.1 }]);
  assert.deepEqual(slotLayout({ kind: 'adagrad', learningRate: 1, initialAccumulatorValue: 0.2, epsilon: 1e-7 }), [{ name: 'accum', init: 0.2 }]);
  assert.deepEqual(slotLayout({ kind: 'adam', learningRate: 1, beta1: 0.9, beta2: 0.999, epsilon: 1e-8 }), [
    { name: 'm', init: 0 },
    { name: 'v', init: 0 },
  ]);
  assert.deepEqual(slotLayout({ kind: 'sgd', learningRate: 1, momentum: 0.9, nesterov: false }), [{ name: 'momentum', init: 0 }]);
  assert.deepEqual(slotLayout({ kind: 'sgd', learningRate: 1, momentum: 0, nesterov: false }), []);
  const slots = createOptimizer(FTRL).createSlots(3);
  assert.deepEqual(slots.map((s) => Array.from(s)), [
    [16, 16, 16],
    [0, 0, 0],
  ]);
});

test('ftrl: three steps by hand, l1 zeroing a weight, then l2 shrinkage moving it without a gradient', () => {
  // lr 0.5, power -0.5 (sqrt), n starts at 16 (sqrt 4), l1 4, l2 0.25 (2 * l2 = 0.5), shrinkage 0.125.
  // Weight A starts at 0.5, weight B at -1.
  const { slots, history } = runDense(FTRL, [0.5, -1], [{ g: [3, -3] }, { g: [12, -12] }, { g: [0, 0] }]);
  // Step 1, A: g_s = 3 + 2 * 0.125 * 0.5 = 3.125; n = 16 + 9 = 25; sigma = (5 - 4) / 0.5 = 2;
  //   z = 0 + 3.125 - 2 * 0.5 = 2.125; |z| <= l1 = 4, so w = 0.
  // Step 1, B: g_s = -3 + 0.25 * -1 = -3.25; n = 25; z = -3.25 - 2 * -1 = -1.25; |z| <= 4, so w = 0.
  assert.deepEqual(history[0], [0, 0]);
  // Step 2, A: g_s = 12 + 0; n = 25 + 144 = 169; sigma = (13 - 5) / 0.5 = 16; z = 2.125 + 12 - 16 * 0 = 14.125;
  //   quadratic = 13 / 0.5 + 0.5 = 26.5; w = (sign(z) * 4 - z) / quadratic = (4 - 14.125) / 26.5.
  // Step 2, B: z = -1.25 - 12 = -13.25; w = (-4 + 13.25) / 26.5.
  const a2 = (4 - 14.125) / 26.5;
  const b2 = (-4 + 13.25) / 26.5;
  assertClose(history[1]!, [a2, b2], 'step 2');
  // Step 3, g = 0: n and sigma stay (sigma = 0), but g_s = 2 * 0.125 * w is not zero:
  //   z_A = 14.125 + 0.25 * a2, z_B = -13.25 + 0.25 * b2; quadratic stays 26.5.
  const zA = 14.125 + 0.25 * a2;
  const zB = -13.25 + 0.25 * b2;
  assertClose(history[2]!, [(4 - zA) / 26.5, (-4 - zB) / 26.5], 'step 3');
  assertClose(slots[0]!, [169, 169], 'accum');
  assertClose(slots[1]!, [zA, zB], 'linear');
});

test('ftrl: the accumulator takes the raw gradient, not the one with shrinkage', () => {
  const { slots } = runDense({ ...FTRL, l2Shrinkage: 10 }, [1], [{ g: [3] }]);
  // g_s = 3 + 2 * 10 * 1 = 23 enters z, but n = 16 + 3^2.
  assertClose(slots[0]!, [25], 'accum');
  assertClose(slots[1]!, [23 - ((5 - 4) / 0.5) * 1], 'linear');
});

test('ftrl: other learning-rate powers use n^-power', () => {
  // power 0: n^0 = 1, so sigma = 0 and w = -lr * z; without regularisation that is SGD from 0.
  const fixed: OptimizerIR = { kind: 'ftrl', learningRate: 0.5, learningRatePower: 0, initialAccumulatorValue: 0.1, l1: 0, l2: 0, l2Shrinkage: 0 };
  assertClose(runDense(fixed, [0], [{ g: [2] }, { g: [-1] }]).history.flat(), [-0.5 * 2, -0.5 * (2 - 1)], 'power 0');
  // power -1, lr 1, n from 1: g = 1 gives n = 2; sigma = (2 - 1) / 1; z = 1 - 1 * 0.5 = 0.5;
  //   quadratic = 2 / 1; w = -0.5 / 2.
  const linear: OptimizerIR = { kind: 'ftrl', learningRate: 1, learningRatePower: -1, initialAccumulatorValue: 1, l1: 0, l2: 0, l2Shrinkage: 0 };
  assertClose(runDense(linear, [0.5], [{ g: [1] }]).param, [-0.25], 'power -1');
});

test('proximal_adagrad: three steps by hand with l1 and l2, l1 zeroing a weight', () => {
  const ir: OptimizerIR = { kind: 'proximal_adagrad', learningRate: 1, initialAccumulatorValue: 7, l1: 0.25, l2: 0.5 };
  const { history, slots } = runDense(ir, [1, 0.8], [{ g: [3, 3] }, { g: [3, 3] }, { g: [-12, -12] }]);
  // Step 1: n = 7 + 9 = 16; a = 1 / 4 = 0.25; shrink by a * l1 = 0.0625, divide by 1 + a * l2 = 1.125.
  //   A: v = 1 - 0.25 * 3 = 0.25;   w = (0.25 - 0.0625) / 1.125 = 1/6.
  //   B: v = 0.8 - 0.75 = 0.05 <= 0.0625, so w = 0.
  assertClose(history[0]!, [0.1875 / 1.125, 0], 'step 1');
  assert.equal(history[0]![1], 0);
  // Step 2: n = 25; a = 0.2; shrink 0.05; divide by 1.1.
  //   A: v = 1/6 - 0.6 (negative); w = -(0.6 - 1/6 - 0.05) / 1.1.   B: v = -0.6; w = -(0.6 - 0.05) / 1.1 = -0.5.
  const a2 = -(0.6 - 1 / 6 - 0.05) / 1.1;
  assertClose(history[1]!, [a2, -0.5], 'step 2');
  // Step 3: n = 25 + 144 = 169; a = 1/13; shrink 0.25/13; divide by 1 + 0.5/13.
  //   A: v = a2 + 12/13;  B: v = -0.5 + 12/13 (both positive).
  const a3 = (a2 + 12 / 13 - 0.25 / 13) / (1 + 0.5 / 13);
  assertClose(history[2]!, [a3, (-0.5 + 12 / 13 - 0.25 / 13) / (1 + 0.5 / 13)], 'step 3');
  assertClose(slots[0]!, [169, 169], 'accum');
});

test('proximal_adagrad: a weight shrunk to zero is +0, as the sgn of TF gives, also from -0', () => {
  const ir: OptimizerIR = { kind: 'proximal_adagrad', learningRate: 1, initialAccumulatorValue: 1, l1: 0.5, l2: 0 };
  // w = -0, g = 0: v = -0 - 0 = -0; sign(v) is 0 in TF, so w = 0 * max(0 - 0.5, 0) / 1 = +0.
  const { param } = runDense(ir, [-0], [{ g: [0] }]);
  assert.ok(Object.is(param[0], 0), `got ${Object.is(param[0], -0) ? '-0' : param[0]}`);
});

test('adagrad: three steps by hand, epsilon added to sqrt(n) as in Keras', () => {
  const ir: OptimizerIR = { kind: 'adagrad', learningRate: 0.5, initialAccumulatorValue: 7, epsilon: 0.5 };
  const { history, slots } = runDense(ir, [1], [{ g: [3] }, { g: [3] }, { g: [-12] }]);
  // n: 7 + 9 = 16, + 9 = 25, + 144 = 169; w -= lr * g / (sqrt(n) + 0.5).
  const w1 = 1 - (0.5 * 3) / (4 + 0.5);
  const w2 = w1 - (0.5 * 3) / (5 + 0.5);
  const w3 = w2 - (0.5 * -12) / (13 + 0.5);
  assertClose(history.flat(), [w1, w2, w3], 'weights');
  assertClose(slots[0]!, [169], 'accum');
});

test('adam: three steps by hand, bias correction in the step size, epsilon outside the sqrt', () => {
  const ir: OptimizerIR = { kind: 'adam', learningRate: 0.1, beta1: 0.5, beta2: 0.75, epsilon: 0.25 };
  const { history, slots } = runDense(ir, [1], [{ g: [2] }, { g: [-2] }, { g: [4] }]);
  // t = 1: lr_t = 0.1 * sqrt(1 - 0.75) / (1 - 0.5) = 0.1; m = (2 - 0) * 0.5 = 1; v = (4 - 0) * 0.25 = 1;
  //   w = 1 - 0.1 * 1 / (1 + 0.25) = 0.92.
  // t = 2: lr_t = 0.1 * sqrt(1 - 0.5625) / (1 - 0.25); m = 1 + (-2 - 1) * 0.5 = -0.5; v = 1 + (4 - 1) * 0.25 = 1.75.
  // t = 3: lr_t = 0.1 * sqrt(1 - 0.421875) / (1 - 0.125); m = -0.5 + (4 + 0.5) * 0.5 = 1.75;
  //   v = 1.75 + (16 - 1.75) * 0.25 = 5.3125.
  const w2 = 0.92 - ((0.1 * Math.sqrt(0.4375)) / 0.75) * (-0.5 / (Math.sqrt(1.75) + 0.25));
  const w3 = w2 - ((0.1 * Math.sqrt(0.578125)) / 0.875) * (1.75 / (Math.sqrt(5.3125) + 0.25));
  assertClose(history.flat(), [0.92, w2, w3], 'weights');
  assertClose(slots[0]!, [1.75], 'm');
  assertClose(slots[1]!, [5.3125], 'v');
});

test('adam: the bias correction counts the global step from 1 at step 0', () => {
  assert.equal(adamStepSize(0.1, 0.5, 0.75, 0), Math.fround(0.1));
  // A first update at global step 9 is corrected with t = 10, not t = 1.
  const ir: OptimizerIR = { kind: 'adam', learningRate: 0.1, beta1: 0.5, beta2: 0.75, epsilon: 0.25 };
  const late = runDense(ir, [1], [{ g: [2] }], 9);
  const lrT = (0.1 * Math.sqrt(1 - 0.75 ** 10)) / (1 - 0.5 ** 10);
  assertClose(late.param, [1 - (lrT * 1) / (1 + 0.25)], 'weight');
});

test('sgd: plain gradient descent keeps no state', () => {
  const ir: OptimizerIR = { kind: 'sgd', learningRate: 0.5, momentum: 0, nesterov: false };
  const { history, slots } = runDense(ir, [1], [{ g: [2] }, { g: [-3], lr: 0.25 }]);
  assertClose(history.flat(), [1 - 0.5 * 2, 0 + 0.25 * 3], 'weights');
  assert.equal(slots.length, 0);
});

test('sgd: momentum accumulates gradients and applies the current rate (TF1 MomentumOptimizer)', () => {
  const ir: OptimizerIR = { kind: 'sgd', learningRate: 0.5, momentum: 0.5, nesterov: false };
  const { history, slots } = runDense(ir, [1], [{ g: [2] }, { g: [2] }, { g: [0], lr: 0.25 }]);
  // a = 2, w = 1 - 0.5 * 2 = 0; a = 0.5 * 2 + 2 = 3, w = 0 - 0.5 * 3 = -1.5;
  // the rate drops to 0.25: a = 1.5, w = -1.5 - 0.25 * 1.5 = -1.875 (Keras's velocity form would give -2.25).
  assertClose(history.flat(), [0, -1.5, -1.875], 'weights');
  assertClose(slots[0]!, [1.5], 'accumulator');
});

test('sgd: nesterov momentum looks ahead by momentum * accumulator', () => {
  const ir: OptimizerIR = { kind: 'sgd', learningRate: 0.5, momentum: 0.5, nesterov: true };
  const { history } = runDense(ir, [1], [{ g: [2] }, { g: [2] }]);
  // a = 2, w = 1 - (0.5 * 2 + 0.5 * 0.5 * 2) = -0.5; a = 3, w = -0.5 - (0.5 * 2 + 0.5 * 0.5 * 3) = -2.25.
  assertClose(history.flat(), [-0.5, -2.25], 'weights');
});

// ---------------------------------------------------------------------------------------------
// Sparse row updates.

const EVERY_KIND: readonly OptimizerIR[] = [
  FTRL,
  { kind: 'ftrl', learningRate: 0.3, learningRatePower: -0.7, initialAccumulatorValue: 0.1, l1: 0.01, l2: 0.02, l2Shrinkage: 0.03 },
  { kind: 'proximal_adagrad', learningRate: 0.2, initialAccumulatorValue: 0.1, l1: 0.01, l2: 0.05 },
  { kind: 'adagrad', learningRate: 0.2, initialAccumulatorValue: 0.1, epsilon: 1e-7 },
  { kind: 'adam', learningRate: 0.01, beta1: 0.9, beta2: 0.999, epsilon: 1e-8 },
  { kind: 'sgd', learningRate: 0.1, momentum: 0, nesterov: false },
  { kind: 'sgd', learningRate: 0.1, momentum: 0.9, nesterov: false },
  { kind: 'sgd', learningRate: 0.1, momentum: 0.9, nesterov: true },
];

function rowsOf(array: Float32Array, dim: number, rows: readonly number[]): Float32Array {
  const out = new Float32Array(rows.length * dim);
  rows.forEach((row, i) => out.set(array.subarray(row * dim, (row + 1) * dim), i * dim));
  return out;
}

test('sparse updates equal dense updates of the touched rows, bit for bit, and leave other rows alone', () => {
  const dim = 3;
  const tableRows = 5;
  const updates = [
    { rows: [3, 0], step: 0, lr: 0.5 },
    { rows: [1, 3], step: 1, lr: 0.25 },
    { rows: [4], step: 5, lr: 0.125 },
  ];
  for (const ir of EVERY_KIND) {
    const optimizer = createOptimizer(ir);
    const table = Float32Array.from({ length: tableRows * dim }, (_, i) => Math.sin(i + 1) / 2);
    const slots = optimizer.createSlots(table.length);
    for (const { rows, step, lr } of updates) {
      const grads = Float32Array.from({ length: rows.length * dim }, (_, i) => Math.cos(3 * i + step) * 2);
      // Expected: the touched rows (weights and slots) updated as a dense array of their own.
      const denseParam = rowsOf(table, dim, rows);
      const denseSlots = slots.map((s) => rowsOf(s, dim, rows));
      optimizer.applyDense(denseParam, grads, denseSlots, lr, step);
      const before = [table, ...slots].map((a) => Float32Array.from(a));

      optimizer.applySparse(table, dim, Int32Array.from(rows), grads, slots, lr, step);

      assert.deepEqual(rowsOf(table, dim, rows), denseParam, `${ir.kind} weights at step ${step}`);
      slots.forEach((s, i) => assert.deepEqual(rowsOf(s, dim, rows), denseSlots[i], `${ir.kind} slot ${i} at step ${step}`));
      const untouched = [0, 1, 2, 3, 4].filter((r) => !rows.includes(r));
      [table, ...slots].forEach((a, i) =>
        assert.deepEqual(rowsOf(a, dim, untouched), rowsOf(before[i]!, dim, untouched), `${ir.kind} untouched rows of array ${i}`),
      );
      assert.notDeepEqual(rowsOf(table, dim, rows), rowsOf(before[0]!, dim, rows), `${ir.kind} touched rows changed`);
    }
  }
});

test('sparse adam is lazy: rows not in the batch keep their moments, unlike a dense update with zero gradients', () => {
  const ir: OptimizerIR = { kind: 'adam', learningRate: 0.1, beta1: 0.5, beta2: 0.75, epsilon: 0.25 };
  const optimizer = createOptimizer(ir);
  const table = new Float32Array([1, 1]);
  const slots = optimizer.createSlots(2);
  optimizer.applySparse(table, 1, Int32Array.of(0, 1), Float32Array.of(2, 2), slots, 0.1, 0);
  // Step 1 touches only row 0; row 1 keeps w = 0.92, m = 1, v = 1.
  optimizer.applySparse(table, 1, Int32Array.of(0), Float32Array.of(-2), slots, 0.1, 1);
  assertClose([table[1]!, slots[0]![1]!, slots[1]![1]!], [0.92, 1, 1], 'row 1');
  // TF1's dense-equivalent sparse Adam would have moved row 1: m = 0.5, v = 0.75 and w changed.
  const dense = { param: Float32Array.of(0.92), slots: [Float32Array.of(1), Float32Array.of(1)] };
  optimizer.applyDense(dense.param, Float32Array.of(0), dense.slots, 0.1, 1);
  assertClose([dense.slots[0]![0]!, dense.slots[1]![0]!], [0.5, 0.75], 'dense moments');
  assert.notEqual(dense.param[0], table[1]);
});

test('coalesceRows sums the rows of repeated ids, ids in order of first occurrence', () => {
  const ids = Int32Array.of(5, 2, 5, 7, 2, 5);
  const grads = Float32Array.of(1, 10, 2, 20, 3, 30, 4, 40, 5, 50, 6, 60);
  const { rows, grads: summed } = coalesceRows(ids, grads, 2);
  assert.deepEqual(Array.from(rows), [5, 2, 7]);
  assert.deepEqual(Array.from(summed), [1 + 3 + 6, 10 + 30 + 60, 2 + 5, 20 + 50, 4, 40]);
  const empty = coalesceRows(new Int32Array(0), new Float32Array(0), 4);
  assert.equal(empty.rows.length, 0);
  assert.equal(empty.grads.length, 0);
});

test('a coalesced sparse update equals the dense update with the summed gradient', () => {
  const ir: OptimizerIR = { kind: 'adagrad', learningRate: 0.5, initialAccumulatorValue: 7, epsilon: 0.5 };
  const optimizer = createOptimizer(ir);
  const table = new Float32Array([1, 1, 1]);
  const slots = optimizer.createSlots(3);
  // Row 1 looked up twice (gradients 1 and 2), row 2 once (gradient 3).
  const { rows, grads } = coalesceRows(Int32Array.of(1, 2, 1), Float32Array.of(1, 3, 2), 1);
  optimizer.applySparse(table, 1, rows, grads, slots, 0.5, 0);
  // Both rows see g = 3: n = 16, w = 1 - 0.5 * 3 / 4.5; row 0 is untouched.
  assertClose(table, [1, 1 - 1.5 / 4.5, 1 - 1.5 / 4.5], 'weights');
  assertClose(slots[0]!, [7, 16, 16], 'accum');
});

test('engine mistakes are internal errors: duplicate or out-of-range rows, wrong shapes, bad steps', () => {
  const optimizer = createOptimizer({ kind: 'adagrad', learningRate: 0.1, initialAccumulatorValue: 0.1, epsilon: 1e-7 });
  const table = new Float32Array(4);
  const slots = optimizer.createSlots(4);
  assert.throws(
    () => optimizer.applySparse(table, 2, Int32Array.of(1, 1), new Float32Array(4), slots, 0.1, 0),
    /^Error: internal: row 1 given twice to a sparse update; coalesce the rows first$/,
  );
  assert.throws(() => optimizer.applySparse(table, 2, Int32Array.of(2), new Float32Array(2), slots, 0.1, 0), /^Error: internal: row 2 outside a table of 2 rows$/);
  assert.throws(() => optimizer.applySparse(table, 3, Int32Array.of(0), new Float32Array(3), slots, 0.1, 0), /not made of rows of width 3/);
  assert.throws(() => optimizer.applySparse(table, 2, Int32Array.of(0), new Float32Array(3), slots, 0.1, 0), /3 gradient values for 1 rows of width 2/);
  assert.throws(() => optimizer.applyDense(table, new Float32Array(3), slots, 0.1, 0), /gradient of length 3 for 4 weights/);
  assert.throws(() => optimizer.applyDense(table, new Float32Array(4), [], 0.1, 0), /0 slot arrays given, the optimizer keeps 1/);
  assert.throws(() => optimizer.applyDense(table, new Float32Array(4), [new Float32Array(3)], 0.1, 0), /slot `accum` has 3 values for 4 weights/);
  assert.throws(() => optimizer.applyDense(table, new Float32Array(4), slots, 0.1, -1), /step -1 is not a non-negative integer/);
  assert.throws(() => optimizer.applyDense(table, new Float32Array(4), slots, Number.NaN, 0), /learning rate NaN is not a finite number >= 0/);
  const ftrl = createOptimizer(FTRL);
  assert.throws(() => ftrl.applyDense(table, new Float32Array(4), ftrl.createSlots(4), 0, 0), /ftrl needs a learning rate > 0/);
  assert.throws(() => coalesceRows(Int32Array.of(1), new Float32Array(3), 2), /3 gradient values for 1 rows of width 2/);
});

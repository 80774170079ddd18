import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { DecayIR, ScheduleIR } from '../compiler/ir.js';
import { decayedRate, learningRateAt, warmupStepCount } from '../runtime/optim/index.js';

function schedule(decay: DecayIR, warmup: { steps?: number; epochs?: number } = {}): ScheduleIR {
  return { warmupSteps: warmup.steps ?? 0, warmupEpochs: warmup.epochs ?? 0, decay };
}

/** Rates are float64 formulas; 1e-12 relative absorbs only the order of operations. */
function assertRate(actual: number, expected: number, what: string): void {
  assert.ok(Math.abs(actual - expected) <= 1e-12 * Math.abs(expected), `${what}: got ${actual}, expected ${expected}`);
}

const NONE: DecayIR = { kind: 'none' };

test('without warm-up or decay the rate is constant', () => {
  for (const t of [0, 1, 1000]) assert.equal(learningRateAt(0.05, schedule(NONE), t, 10), 0.05);
});

test('linear warm-up: lr * (t + 1) / W for t < W, reaching lr at the last warm-up step', () => {
  const s = schedule(NONE, { steps: 4 });
  assert.deepEqual(
    [0, 1, 2, 3, 4, 100].map((t) => learningRateAt(0.1, s, t, 10)),
    [(0.1 * 1) / 4, (0.1 * 2) / 4, (0.1 * 3) / 4, (0.1 * 4) / 4, 0.1, 0.1],
  );
});

test('warm-up in epochs: ceil(epochs * steps per epoch), exact products not pushed up by float error', () => {
  assert.equal(warmupStepCount(schedule(NONE, { epochs: 0.5 }), 7), 4); // 3.5 -> 4
  assert.equal(warmupStepCount(schedule(NONE, { epochs: 0.25 }), 10), 3); // 2.5 -> 3
  assert.equal(warmupStepCount(schedule(NONE, { epochs: 2 }), 10), 20);
  assert.equal(1.1 * 50, 55.00000000000001);
  assert.equal(warmupStepCount(schedule(NONE, { epochs: 1.1 }), 50), 55);
  assert.equal(warmupStepCount(schedule(NONE, { epochs: 1e-6 }), 10), 1); // 0.00001 -> 1
  assert.equal(warmupStepCount(schedule(NONE, { epochs: 1e-13 }), 2), 1); // within error of 0, still one step
  assert.equal(warmupStepCount(schedule(NONE, { steps: 6 }), 10), 6);
  assert.equal(warmupStepCount(schedule(NONE), 10), 0);
  // 0.5 epoch of 7 steps: 4 warm-up steps at lr/4, 2lr/4, 3lr/4, lr.
  assert.equal(learningRateAt(0.2, schedule(NONE, { epochs: 0.5 }), 0, 7), 0.05);
});

test('exponential decay: lr * rate^(s / steps), floored exponent with staircase', () => {
  const smooth: DecayIR = { kind: 'exponential', rate: 0.5, steps: 10, staircase: false };
  assert.equal(decayedRate(1, smooth, 0), 1);
  assertRate(decayedRate(1, smooth, 5), Math.SQRT1_2, 's = 5');
  assert.equal(decayedRate(1, smooth, 20), 0.25);
  assertRate(decayedRate(2, smooth, 15), 2 * 0.5 ** 1.5, 's = 15');
  const stairs: DecayIR = { ...smooth, staircase: true };
  assert.deepEqual([0, 9, 10, 19, 20].map((s) => decayedRate(1, stairs, s)), [1, 1, 0.5, 0.5, 0.25]);
});

test('decay counts from the end of the warm-up', () => {
  const s = schedule({ kind: 'exponential', rate: 0.5, steps: 10, staircase: true }, { steps: 4 });
  // t = 3 is the last warm-up step (lr); t = 4 is decay step 0; t = 14 is decay step 10.
  assert.deepEqual([3, 4, 13, 14].map((t) => learningRateAt(1, s, t, 10)), [1, 1, 1, 0.5]);
});

test('cosine decay: lr * ((1 - alpha) * (1 + cos(pi * min(s, steps) / steps)) / 2 + alpha)', () => {
  const cosine: DecayIR = { kind: 'cosine', steps: 100, alpha: 0.1 };
  assert.equal(decayedRate(2, cosine, 0), 2);
  assertRate(decayedRate(2, cosine, 25), 2 * (0.9 * ((1 + Math.SQRT1_2) / 2) + 0.1), 's = 25');
  assertRate(decayedRate(2, cosine, 50), 2 * (0.9 * 0.5 + 0.1), 's = 50');
  assertRate(decayedRate(2, cosine, 100), 0.2, 's = 100');
  assertRate(decayedRate(2, cosine, 150), 0.2, 's = 150, held at alpha * lr');
  assert.equal(decayedRate(2, { kind: 'cosine', steps: 100, alpha: 0 }, 100), 0);
});

test('polynomial decay: (lr - end) * (1 - min(s, steps) / steps)^power + end', () => {
  const square: DecayIR = { kind: 'polynomial', steps: 10, endLearningRate: 0.1, power: 2 };
  assert.equal(decayedRate(1, square, 0), 1);
  assertRate(decayedRate(1, square, 5), 0.9 * 0.25 + 0.1, 's = 5');
  assertRate(decayedRate(1, square, 10), 0.1, 's = 10');
  assertRate(decayedRate(1, square, 20), 0.1, 's = 20, held at the end rate');
  const linear: DecayIR = { kind: 'polynomial', steps: 10, endLearningRate: 0.1, power: 1 };
  assertRate(decayedRate(1, linear, 4), 0.9 * 0.6 + 0.1, 'power 1, s = 4');
});

test('warm-up then cosine over a whole schedule', () => {
  const s = schedule({ kind: 'cosine', steps: 4, alpha: 0 }, { steps: 2 });
  const rates = [0, 1, 2, 3, 4, 5, 6, 7].map((t) => learningRateAt(1, s, t, 100));
  const expected = [0.5, 1, 1, (1 + Math.SQRT1_2) / 2, 0.5, (1 - Math.SQRT1_2) / 2, 0, 0];
  rates.forEach((r, i) => assert.ok(Math.abs(r - expected[i]!) <= 1e-12, `t = ${i}: got ${r}, expected ${expected[i]}`));
});

test('engine mistakes are internal errors', () => {
  assert.throws(() => learningRateAt(1, schedule(NONE), -1, 10), /^Error: internal: schedule step -1 is not a non-negative integer$/);
  assert.throws(() => warmupStepCount(schedule(NONE, { epochs: 1 }), 0), /^Error: internal: 0 steps per epoch$/);
  assert.throws(() => warmupStepCount(schedule(NONE, { steps: 1, epochs: 1 }), 10), /both warmupSteps and warmupEpochs/);
});

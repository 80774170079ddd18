// Evaluation metrics against hand-computed values, and exact merging across a split of the data.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { deserialize, serialize } from 'node:v8';
import {
  AucAccumulator,
  ExactSum,
  LoglossAccumulator,
  MapAtKAccumulator,
  createMetricAccumulator,
  metricName,
  type MetricAccumulator,
  type MetricExtras,
  type MetricState,
} from '../runtime/metrics/index.js';
import { seededRandom } from './support/random.js';

const f32 = (values: number[]): Float32Array => Float32Array.from(values);

function auc(labels: number[], scores: number[], weights?: number[]): number {
  const acc = new AucAccumulator();
  acc.add(f32(labels), f32(scores), labels.length, weights ? { weights: f32(weights) } : {});
  acc.finish();
  return acc.result();
}

function logloss(labels: number[], scores: number[], weights?: number[]): number {
  const acc = new LoglossAccumulator();
  acc.add(f32(labels), f32(scores), labels.length, weights ? { weights: f32(weights) } : {});
  acc.finish();
  return acc.result();
}

function mapAtK(k: number, labels: number[], scores: number[], groups: number[]): number {
  const acc = new MapAtKAccumulator(k);
  acc.add(f32(labels), f32(scores), labels.length, { groups: Float64Array.from(groups) });
  acc.finish();
  return acc.result();
}

// ---------------------------------------------------------------------------------------------
// exact sums

test('exact sum: the correctly rounded total, whatever the order', () => {
  const sum = (values: number[]): number => {
    const s = new ExactSum();
    for (const v of values) s.add(v);
    return s.value();
  };
  assert.equal(sum([1e16, 1, -1e16]), 1);
  assert.equal(sum([-1e16, 1e16, 1]), 1);
  // Ten doubles 0.1 sum to 1.00000000000000005551..., which rounds to 1 (a naive loop gives 0.9999999999999999).
  assert.equal(sum(Array.from({ length: 10 }, () => 0.1)), 1);
  // 1 + 2^-53 is a tie, rounded to even (1); a further 2^-106 puts it above the tie.
  assert.equal(sum([1, 2 ** -53]), 1);
  assert.equal(sum([1, 2 ** -53, 2 ** -106]), 1 + 2 ** -52);
  assert.equal(sum([2 ** -106, 2 ** -53, 1]), 1 + 2 ** -52);
  // Numbers below 2^-992 take another path and still count exactly.
  assert.equal(sum([2 ** -1000, 2 ** -1000, -(2 ** -999)]), 0);
  assert.equal(sum([2 ** -1000, 3 * 2 ** -1000]), 2 ** -998);
  assert.equal(sum([]), 0);
  assert.ok(Number.isNaN(sum([1, NaN, 2])));
  assert.equal(sum([1, Infinity]), Infinity);
});

test('exact sum: more than a million additions carry between bins exactly', () => {
  const s = new ExactSum();
  for (let i = 0; i < (1 << 21) + 5; i++) s.add(4294967295.75);
  assert.equal(s.value(), 4294967295.75 * ((1 << 21) + 5));
});

test('exact sum: merging the states of parts equals one sum', () => {
  const random = seededRandom(11);
  const values = Array.from({ length: 5000 }, () => (random() - 0.3) * 10 ** Math.floor(random() * 40 - 20));
  const whole = new ExactSum();
  for (const v of values) whole.add(v);
  const parts = [new ExactSum(), new ExactSum(), new ExactSum()];
  values.forEach((v, i) => parts[i % 3]!.add(v));
  const merged = new ExactSum();
  for (const part of [parts[2]!, parts[0]!, parts[1]!]) merged.merge(part.state());
  assert.equal(merged.value(), whole.value());
  const reversed = new ExactSum();
  for (const v of values.slice().reverse()) reversed.add(v);
  assert.equal(reversed.value(), whole.value());
});

// ---------------------------------------------------------------------------------------------
// logloss

test('logloss: mean binary cross-entropy', () => {
  const p = [Math.fround(0.8), Math.fround(0.4), Math.fround(0.3)];
  assert.equal(logloss([1, 0, 0], p), (-Math.log(p[0]!) - Math.log(1 - p[1]!) - Math.log(1 - p[2]!)) / 3);
});

test('logloss: probabilities are clipped to [1e-7, 1 - 1e-7]', () => {
  assert.equal(logloss([1], [0]), -Math.log(1e-7));
  assert.equal(logloss([0], [1]), -Math.log(1 - (1 - 1e-7)));
  assert.equal(logloss([1], [1]), -Math.log(1 - 1e-7));
  assert.equal(Number(logloss([1], [0]).toFixed(6)), 16.118096);
});

test('logloss: weighted mean and soft labels', () => {
  const p = [Math.fround(0.8), Math.fround(0.4)];
  const l1 = -Math.log(p[0]!);
  const l2 = -Math.log(1 - p[1]!);
  assert.equal(logloss([1, 0], [0.8, 0.4], [3, 1]), (3 * l1 + l2) / 4);
  // A zero weight removes the row.
  assert.equal(logloss([1, 0, 1], [0.8, 0.4, 0.1], [3, 1, 0]), (3 * l1 + l2) / 4);
  assert.equal(logloss([0.25], [0.5]), -Math.log(0.5));
  assert.equal(logloss([0.25], [0.8]), -(0.25 * Math.log(p[0]!) + 0.75 * Math.log(1 - p[0]!)));
});

test('logloss: no weight seen is NaN; a NaN score makes it NaN; a negative weight is refused', () => {
  assert.ok(Number.isNaN(logloss([], [])));
  assert.ok(Number.isNaN(logloss([1], [0.5], [0])));
  assert.ok(Number.isNaN(logloss([1, 0], [NaN, 0.5])));
  assert.throws(() => logloss([1], [0.5], [-1]), /example weight -1 at row 0 is not a finite number >= 0/);
  assert.throws(() => new LoglossAccumulator().add(f32([1]), f32([0.5]), 2), /batch size 2 exceeds an array of length 1/);
});

// ---------------------------------------------------------------------------------------------
// auc

test('auc: the Mann-Whitney statistic', () => {
  // Pairs (positive, negative): 0.35 beats 0.1 only, 0.8 beats both: 3 of 4.
  assert.equal(auc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]), 0.75);
  assert.equal(auc([0, 1, 0, 1], [0.1, 0.9, 0.2, 0.8]), 1);
  assert.equal(auc([1, 0], [0.1, 0.9]), 0);
  // Any nonzero label is positive.
  assert.equal(auc([0, 0, 2, 1], [0.1, 0.4, 0.35, 0.8]), 0.75);
});

test('auc: a tie between a positive and a negative counts 1/2', () => {
  // Positives 0.5, 0.7; negatives 0.5, 0.3: pairs 1/2 + 1 + 1 + 1 = 3.5 of 4.
  assert.equal(auc([1, 1, 0, 0], [0.5, 0.7, 0.5, 0.3]), 0.875);
  // Ties within one class do not matter.
  assert.equal(auc([1, 1, 0, 0], [0.7, 0.7, 0.3, 0.3]), 1);
  // All scores equal: every pair is a tie.
  assert.equal(auc([1, 0, 0, 1, 0], [0.5, 0.5, 0.5, 0.5, 0.5]), 0.5);
  // -0 and +0 are the same score.
  assert.equal(auc([1, 0], [-0, 0]), 0.5);
});

test('auc: one class only, no rows or a NaN score give NaN', () => {
  assert.ok(Number.isNaN(auc([1, 1], [0.2, 0.4])));
  assert.ok(Number.isNaN(auc([0, 0], [0.2, 0.4])));
  assert.ok(Number.isNaN(auc([], [])));
  assert.ok(Number.isNaN(auc([1, 0], [NaN, 0.4])));
  assert.ok(Number.isNaN(auc([1, 0], [0.9, 0.4], [0, 1])), 'the only positive has weight 0');
});

test('auc: weighted pairs count the product of their weights', () => {
  // Positives 0.8 (w 2), 0.4 (w 1); negatives 0.5 (w 3), 0.4 (w 1).
  // 0.8 > 0.5: 6; 0.8 > 0.4: 2; 0.4 < 0.5: 0; 0.4 = 0.4: 1/2. U = 8.5 of 3 * 4.
  assert.equal(auc([1, 1, 0, 0], [0.8, 0.4, 0.5, 0.4], [2, 1, 3, 1]), 8.5 / 12);
  // Integer weights are repeated rows.
  assert.equal(auc([1, 1, 1, 0, 0, 0, 0], [0.8, 0.8, 0.4, 0.5, 0.5, 0.5, 0.4]), 8.5 / 12);
  // Zero-weight rows are ignored, and weights of 1 change nothing.
  assert.equal(auc([1, 1, 0, 0, 0], [0.8, 0.4, 0.5, 0.4, 0.9], [2, 1, 3, 1, 0]), 8.5 / 12);
  assert.equal(auc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8], [1, 1, 1, 1]), 0.75);
  assert.throws(() => auc([1], [0.5], [Infinity]), /example weight Infinity at row 0/);
});

test('auc: equals the pairwise definition on random data with many ties', () => {
  const random = seededRandom(5);
  for (const weighted of [false, true]) {
    const n = 700;
    const labels = Array.from({ length: n }, () => (random() < 0.3 ? 1 : 0));
    const scores = labels.map((y) => Math.round((random() + 0.3 * y) * 20) / 20 - 0.2); // 0.05 steps, some negative
    const weights = weighted ? labels.map(() => Math.floor(random() * 4) / 2) : undefined;
    let u = 0;
    let wp = 0;
    let wn = 0;
    const w = (i: number): number => weights?.[i] ?? 1;
    const s = Array.from(f32(scores));
    for (let i = 0; i < n; i++) {
      if (labels[i] === 1) wp += w(i);
      else wn += w(i);
      if (labels[i] !== 1) continue;
      for (let j = 0; j < n; j++) {
        if (labels[j] === 1) continue;
        u += w(i) * w(j) * (s[i]! > s[j]! ? 1 : s[i] === s[j] ? 0.5 : 0);
      }
    }
    // Halves and half-integer weights keep every sum exact, so equality is exact.
    assert.equal(auc(labels, scores, weights), u / (wp * wn), weighted ? 'weighted' : 'unweighted');
  }
});

test('auc: the weights of tied scores sum the same in any row order', () => {
  // 2^30 + 2^-23 is a rounding tie in doubles: adding the small weights one at a time to the big
  // one loses them, adding them first does not. Rows of score 0.5 are summed in one order always.
  const tiny = 2 ** -23;
  const rows = (order: number[]): number => {
    const labels = [1, 1, 1, 1, 1, 1, 0];
    const scores = [0.5, 0.5, 0.5, 0.5, 0.5, 0.9, 0.7];
    const weights = [2 ** 30, tiny, tiny, tiny, tiny, 1, 1];
    return auc(order.map((i) => labels[i]!), order.map((i) => scores[i]!), order.map((i) => weights[i]!));
  };
  const forward = rows([0, 1, 2, 3, 4, 5, 6]);
  assert.equal(rows([1, 2, 3, 4, 0, 5, 6]), forward);
  assert.equal(rows([6, 5, 4, 3, 2, 1, 0]), forward);
  assert.equal(forward, 1 / (2 ** 30 + 4 * tiny + 1));
});

test('auc: an unweighted add after a weighted one weighs its rows 1', () => {
  const acc = new AucAccumulator();
  acc.add(f32([1, 0]), f32([0.8, 0.5]), 2, { weights: f32([2, 3]) });
  acc.add(f32([1, 0]), f32([0.4, 0.4]), 2);
  assert.equal(acc.result(), 8.5 / 12);
});

// ---------------------------------------------------------------------------------------------
// map@k

test('map@k: one click per group scores 1 / rank, 0 past k', () => {
  // Click ranked second of three.
  assert.equal(mapAtK(12, [0, 1, 0], [0.9, 0.5, 0.1], [7, 7, 7]), 1 / 2);
  // Two groups: rank 1 and rank 3 -> (1 + 1/3) / 2.
  assert.equal(mapAtK(12, [1, 0, 0, 0, 1], [0.9, 0.5, 0.3, 0.2, 0.1], [1, 1, 2, 2, 2]), (1 + 1 / 3) / 2);
  // k = 2 cuts the rank-3 click off.
  assert.equal(mapAtK(2, [1, 0, 0, 0, 1], [0.9, 0.5, 0.3, 0.2, 0.1], [1, 1, 2, 2, 2]), 1 / 2);
  assert.equal(mapAtK(3, [0, 0, 0, 1], [0.9, 0.5, 0.3, 0.2], [1, 1, 1, 1]), 0);
});

test('map@k: among equal scores the earlier row ranks higher, as tf.math.top_k', () => {
  assert.equal(mapAtK(12, [1, 0, 0], [0.5, 0.5, 0.5], [1, 1, 1]), 1);
  assert.equal(mapAtK(12, [0, 1, 0], [0.5, 0.5, 0.5], [1, 1, 1]), 1 / 2);
  assert.equal(mapAtK(12, [0, 0, 1], [0.5, 0.5, 0.5], [1, 1, 1]), 1 / 3);
  // The click ties the first row and is after it: rank 2, then k = 1 gives 0.
  assert.equal(mapAtK(1, [0, 1, 0], [0.7, 0.7, 0.2], [1, 1, 1]), 0);
  // A row with a higher score still ranks above, wherever it is.
  assert.equal(mapAtK(12, [1, 0, 0], [0.5, 0.5, 0.9], [1, 1, 1]), 1 / 2);
});

test('map@k: several clicks average precision@rank over min(k, clicks)', () => {
  // Clicks at ranks 1 and 3: (1/1 + 2/3) / 2.
  assert.equal(mapAtK(12, [1, 0, 1, 0], [0.9, 0.8, 0.7, 0.1], [1, 1, 1, 1]), (1 + 2 / 3) / 2);
  // k = 2 keeps rank 1 only, divided by min(2, 2).
  assert.equal(mapAtK(2, [1, 0, 1, 0], [0.9, 0.8, 0.7, 0.1], [1, 1, 1, 1]), 1 / 2);
  // k = 1: precision@1 over min(1, 2).
  assert.equal(mapAtK(1, [1, 0, 1, 0], [0.9, 0.8, 0.7, 0.1], [1, 1, 1, 1]), 1);
  // Ties with several clicks: rows 1 and 3 tie with row 0 at 0.5 -> order 0, 1, 3, then 2: clicks at ranks 2, 3.
  assert.equal(mapAtK(12, [0, 1, 0, 1], [0.5, 0.5, 0.1, 0.5], [1, 1, 1, 1]), (1 / 2 + 2 / 3) / 2);
});

test('map@k: groups without a click are skipped and counted', () => {
  const acc = new MapAtKAccumulator(12);
  acc.add(f32([0, 0, 0, 1, 0, 0]), f32([0.9, 0.1, 0.3, 0.2, 0.5, 0.4]), 6, { groups: Float64Array.from([1, 1, 2, 2, 3, 3]) });
  acc.finish();
  assert.equal(acc.result(), 1 / 2);
  assert.deepEqual(acc.counts(), { groups: 1, groupsWithoutClick: 2 });
  const none = new MapAtKAccumulator(12);
  none.add(f32([0]), f32([0.5]), 1, { groups: Float64Array.from([1]) });
  none.finish();
  assert.ok(Number.isNaN(none.result()));
});

test('map@k: a group continuing into the next batches is held until it ends', () => {
  const labels = [0, 1, 0, 0, 0, 1, 0, 0, 1, 0];
  const scores = [0.4, 0.3, 0.9, 0.2, 0.6, 0.5, 0.1, 0.3, 0.2, 0.8];
  const groups = [1, 1, 1, 2, 2, 2, 2, 2, 3, 3];
  // group 1: click 0.3 after 0.9, 0.4 -> 1/3; group 2: click 0.5 after 0.6 -> 1/2; group 3: after 0.8 -> 1/2.
  const expected = (1 / 3 + 1 / 2 + 1 / 2) / 3;
  for (const cuts of [[], [1], [2, 4], [3], [4, 5, 6, 7], [1, 2, 3, 4, 5, 6, 7, 8, 9], [8], [9]]) {
    const acc = new MapAtKAccumulator(12);
    const bounds = [0, ...cuts, labels.length];
    for (let b = 0; b + 1 < bounds.length; b++) {
      const [from, to] = [bounds[b]!, bounds[b + 1]!];
      acc.add(f32(labels.slice(from, to)), f32(scores.slice(from, to)), to - from, {
        groups: Float64Array.from(groups.slice(from, to)),
      });
    }
    acc.add(f32([]), f32([]), 0, { groups: new Float64Array(0) });
    acc.finish();
    assert.equal(acc.result(), expected, `cut at ${cuts.join(', ')}`);
    assert.deepEqual(acc.counts(), { groups: 3, groupsWithoutClick: 0 });
  }
});

test('map@k: rows past `size` are ignored, also when holding a group', () => {
  const acc = new MapAtKAccumulator(12);
  acc.add(f32([0, 1, 1]), f32([0.9, 0.1, 0.99]), 2, { groups: Float64Array.from([1, 1, 1]) });
  acc.add(f32([0, 9]), f32([0.05, 0.5]), 1, { groups: Float64Array.from([1, 1]) });
  acc.finish();
  assert.equal(acc.result(), 1 / 2);
});

test('map@k: misuse is an internal error', () => {
  const acc = new MapAtKAccumulator(12);
  acc.add(f32([1]), f32([0.5]), 1, { groups: Float64Array.from([1]) });
  assert.throws(() => acc.result(), /map@12: call finish\(\) before result\(\): the last group is still open/);
  assert.throws(() => acc.state(), /call finish\(\) before state\(\)/);
  assert.throws(() => acc.add(f32([1]), f32([0.5]), 1), /map@k needs the group id of each row/);
  assert.throws(() => acc.add(f32([1]), f32([0.5]), 1, { groups: Float64Array.from([NaN]) }), /group id at row 0 is NaN/);
  assert.throws(() => new MapAtKAccumulator(0), /integer k >= 1/);
  acc.finish();
  assert.throws(() => acc.merge(new MapAtKAccumulator(3).state()), /cannot merge a map@3 state into map@12/);
  assert.throws(() => acc.merge(new AucAccumulator().state()), /cannot merge a `auc` metric state into `map`/);
});

// ---------------------------------------------------------------------------------------------
// merging across processes

interface Data {
  labels: Float32Array;
  scores: Float32Array;
  weights: Float32Array;
  groups: Float64Array;
}

/** Random rows in groups of 1 to 15 rows, about one click per group, scores with ties. */
function randomData(seed: number, rows: number): Data {
  const random = seededRandom(seed);
  const data: Data = {
    labels: new Float32Array(rows),
    scores: new Float32Array(rows),
    weights: new Float32Array(rows),
    groups: new Float64Array(rows),
  };
  let group = 1000;
  let left = 0;
  for (let i = 0; i < rows; i++) {
    if (left === 0) {
      group += 1 + Math.floor(random() * 3);
      left = 1 + Math.floor(random() * 15);
    }
    left--;
    data.groups[i] = group;
    data.labels[i] = random() < 0.15 ? 1 : 0;
    data.scores[i] = random() < 0.2 ? 0.5 : random() * 0.8 + 0.2 * data.labels[i]!;
    data.weights[i] = random() < 0.1 ? 0 : random() * 3;
  }
  return data;
}

function feed(acc: MetricAccumulator, data: Data, from: number, to: number, batch: number, weighted: boolean): void {
  for (let at = from; at < to; at += batch) {
    const end = Math.min(to, at + batch);
    const extras: MetricExtras = { groups: data.groups.subarray(at, end) };
    if (weighted) extras.weights = data.weights.subarray(at, end);
    acc.add(data.labels.subarray(at, end), data.scores.subarray(at, end), end - at, extras);
  }
  acc.finish();
}

/** Cut points that never split a group. */
function groupCuts(data: Data, wanted: number[]): number[] {
  return wanted.map((at) => {
    let cut = at;
    while (cut > 0 && cut < data.groups.length && data.groups[cut] === data.groups[cut - 1]) cut++;
    return cut;
  });
}

test('merging the states of a split equals one process, for every metric, split and order', () => {
  const rows = 20000;
  const data = randomData(42, rows);
  const metrics = [{ kind: 'logloss' }, { kind: 'auc' }, { kind: 'map', k: 12 }, { kind: 'map', k: 3 }] as const;
  for (const metric of metrics) {
    for (const weighted of metric.kind === 'map' ? [false] : [false, true]) {
      const single = createMetricAccumulator(metric);
      feed(single, data, 0, rows, 512, weighted);
      const expected = single.result();
      assert.ok(Number.isFinite(expected));
      for (const [parts, batch] of [[[rows / 2], 512], [[1, 777, 5000, 13001], 100], [[3333, 6666], 4096]] as const) {
        const cuts = [0, ...groupCuts(data, [...parts]), rows];
        const states: MetricState[] = [];
        for (let p = 0; p + 1 < cuts.length; p++) {
          const acc = createMetricAccumulator(metric);
          feed(acc, data, cuts[p]!, cuts[p + 1]!, batch, weighted);
          // Through a byte transport, as between processes.
          states.push(deserialize(serialize(acc.state())) as MetricState);
        }
        for (const order of [states, states.slice().reverse()]) {
          const merged = createMetricAccumulator(metric);
          for (const state of order) merged.merge(state);
          assert.equal(
            merged.result(),
            expected,
            `${metricName(metric)}${weighted ? ' weighted' : ''} split at ${cuts.join(', ')}`,
          );
        }
      }
    }
  }
});

test('a merged accumulator keeps accepting rows', () => {
  const data = randomData(7, 3000);
  const single = new AucAccumulator();
  feed(single, data, 0, 3000, 256, true);
  const first = new AucAccumulator();
  feed(first, data, 0, 1000, 256, false);
  const mixed = new AucAccumulator();
  mixed.merge(first.state()); // unweighted state, then weighted rows
  const rest = new AucAccumulator();
  feed(rest, data, 1000, 3000, 256, true);
  mixed.merge(rest.state());
  const reference = new AucAccumulator();
  feed(reference, data, 1000, 3000, 256, true);
  reference.merge(first.state());
  assert.equal(mixed.result(), reference.result());
  assert.notEqual(mixed.result(), single.result(), 'the first part counted unweighted');
});

test('createMetricAccumulator and metricName follow the spec metrics', () => {
  assert.ok(createMetricAccumulator({ kind: 'auc' }) instanceof AucAccumulator);
  assert.ok(createMetricAccumulator({ kind: 'logloss' }) instanceof LoglossAccumulator);
  const map = createMetricAccumulator({ kind: 'map', k: 12 });
  assert.ok(map instanceof MapAtKAccumulator && map.k === 12);
  assert.deepEqual([{ kind: 'auc' }, { kind: 'logloss' }, { kind: 'map', k: 12 }].map((m) => metricName(m as never)), [
    'auc',
    'logloss',
    'map@12',
  ]);
});

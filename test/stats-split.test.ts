// The statistics pass and the validation split of preprocessing, against hand-computed values.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { StatsAccumulator } from '../runtime/data/stats.js';
import { validationSplitter } from '../runtime/data/split.js';

test('statistics: min, max, mean and sample std of the present finite values only', () => {
  const acc = new StatsAccumulator([
    { feature: 'price_scaled', column: 'price', fields: ['min', 'max'] },
    { feature: 'age_z', column: 'age', fields: ['mean', 'std'] },
  ]);
  const rows = [{ price: 3, age: 20 }, { price: -1, age: 30 }, { price: null, age: 40 }, { age: NaN }, { price: 10 }];
  for (const r of rows) acc.add(r);
  // age: 20, 30, 40 -> mean 30, sample variance ((10^2 + 0 + 10^2) / 2) = 100 -> std 10
  assert.deepEqual(acc.result(), { price_scaled: { min: -1, max: 10 }, age_z: { mean: 30, std: 10 } });
});

test('statistics of a column never seen are neutral', () => {
  const acc = new StatsAccumulator([{ feature: 'f', column: 'x', fields: ['min', 'max', 'mean', 'std'] }]);
  acc.add({ y: 1 });
  assert.deepEqual(acc.result(), { f: { min: 0, max: 0, mean: 0, std: 1 } });
});

test('validation split: deterministic, close to the fraction, and whole groups', () => {
  const split = validationSplitter(0.2, 'display_id');
  const rows = Array.from({ length: 20000 }, (_, i) => ({ display_id: Math.floor(i / 5) }));
  const picks = rows.map((r, i) => split(r, i));
  assert.deepEqual(rows.map((r, i) => split(r, i)), picks, 'same answer twice');
  const share = picks.filter(Boolean).length / rows.length;
  assert.ok(share > 0.18 && share < 0.22, `validation share ${share}`);
  for (let g = 0; g < 4000; g++) {
    const members = picks.slice(g * 5, g * 5 + 5);
    assert.ok(members.every((m) => m === members[0]), `group ${g} is split`);
  }
});

test('validation split without groups uses the row position', () => {
  const split = validationSplitter(0.5, null);
  const picks = Array.from({ length: 1000 }, (_, i) => split({}, i));
  const share = picks.filter(Boolean).length / picks.length;
  assert.ok(share > 0.44 && share < 0.56, `share ${share}`);
  assert.equal(validationSplitter(0, null)({}, 7), false);
});

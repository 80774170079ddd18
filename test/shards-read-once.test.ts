// When every row fits in the shuffle buffer (the default when the shards fit in a quarter of RAM)
// a batch reader reads each shard file once and keeps it across epochs; with a smaller buffer it
// reads the windows of each epoch again (data larger than memory), in every order mode.

import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { BatchReader, type BatchReaderOptions } from '../runtime/data/batches.js';
import { openShards } from '../runtime/data/shards.js';
import { outbrainIr, writeRandomShards } from './support/random-shards.js';

/** Shard loads so far after each of `epochs` epochs read with `options`. */
function loadsOver(epochs: number, options: Omit<BatchReaderOptions, 'batchSize'>): number[] {
  const dir = mkdtempSync(join(tmpdir(), 'wndc-read-once-'));
  writeRandomShards(dir, outbrainIr(), { rows: 1000, rowsPerShard: 250 });
  const set = openShards(dir);
  let loads = 0;
  const load = set.load.bind(set);
  set.load = (index) => {
    loads++;
    return load(index);
  };
  const reader = new BatchReader(set, { batchSize: 128, ...options });
  const after: number[] = [];
  for (let epoch = 0; epoch < epochs; epoch++) {
    for (const _batch of reader.batches(epoch));
    after.push(loads);
  }
  return after;
}

test('shards that fit in the shuffle buffer are read once for all epochs', () => {
  assert.deepEqual(loadsOver(3, {}), [4, 4, 4]);
  assert.deepEqual(loadsOver(3, { shuffle: false }), [4, 4, 4]);
  assert.deepEqual(loadsOver(3, { shuffleBlock: 1 }), [4, 4, 4]);
  // Grouped batches read the group column once more, once, to find where batches start.
  assert.deepEqual(loadsOver(3, { shuffle: false, grouped: true }), [8, 8, 8]);
});

test('with a shuffle buffer smaller than the data, each epoch reads its windows again', () => {
  // Windows of one shard (250 rows): every epoch loads the four shards.
  assert.deepEqual(loadsOver(3, { shuffleBuffer: 250 }), [4, 8, 12]);
  assert.deepEqual(loadsOver(3, { shuffleBuffer: 250, shuffleBlock: 1 }), [4, 8, 12]);
});

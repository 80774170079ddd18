import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { benchDataCommand } from '../cli/bench-data.js';
import type { CliIO } from '../cli/io.js';
import type { EncodedLayoutIR } from '../compiler/ir.js';
import { createEncodedRow } from '../runtime/compiled-model.js';
import { BatchReader, DEFAULT_SHUFFLE_BLOCK, epochRandom, type BatchReaderOptions } from '../runtime/data/batches.js';
import type { Batch } from '../runtime/data/contracts.js';
import { openShards, ShardWriter, type ShardSet } from '../runtime/data/shards.js';
import { seededRandom } from './support/random.js';
import { outbrainIr, writeRandomShards } from './support/random-shards.js';

const layout: EncodedLayoutIR = {
  ids: [{ feature: 'row', offset: 0, width: 2, lengthSlot: 0, weightOffset: 0 }],
  idsWidth: 2,
  lengthsWidth: 1,
  weightsWidth: 2,
  numeric: [{ feature: 'x', offset: 0 }],
  numericWidth: 1,
};

/** Groups of random sizes 1..maxGroup in order; returns each row's group. */
function groupsOf(rows: number, maxGroup: number, seed: number): number[] {
  const random = seededRandom(seed);
  const groups: number[] = [];
  let g = 0;
  while (groups.length < rows) {
    g += 1;
    const size = 1 + Math.floor(random() * maxGroup);
    for (let k = 0; k < size && groups.length < rows; k++) groups.push(g);
  }
  return groups;
}

/** Row i carries i in every column, so a batch shows which rows it holds and that they agree. */
function writeNumbered(rows: number, rowsPerShard: number, options: { groups?: number[]; weight?: boolean } = {}): ShardSet {
  const dir = mkdtempSync(join(tmpdir(), 'wndc-batches-'));
  const hasGroup = options.groups !== undefined;
  const writer = new ShardWriter(dir, { model: 'numbered', specHash: 'c'.repeat(64), layout, hasGroup, hasWeight: options.weight ?? false }, { rowsPerShard });
  const row = createEncodedRow(layout);
  for (let i = 0; i < rows; i++) {
    row.ids.set([i, -i]);
    row.lengths[0] = i % 3;
    row.weights.set([i / 2, i]);
    row.numeric[0] = i * 4;
    row.label = i;
    row.group = options.groups?.[i] ?? 0;
    row.weight = i + 0.5;
    writer.append(row);
  }
  writer.finish();
  return openShards(dir);
}

/** The rows of one epoch, batch by batch, checking that every column of a row agrees. */
function epochRows(reader: BatchReader, epoch?: number): number[][] {
  const out: number[][] = [];
  let first: Batch | undefined;
  for (const batch of reader.batches(epoch)) {
    first ??= batch;
    assert.equal(batch, first, 'the same Batch object is refilled');
    const rows: number[] = [];
    for (let r = 0; r < batch.size; r++) {
      const i = batch.ids[2 * r] as number;
      assert.deepEqual(
        [batch.ids[2 * r + 1], batch.lengths[r], batch.weights[2 * r], batch.weights[2 * r + 1], batch.numeric[r], batch.label[r]],
        [-i | 0, i % 3, i / 2, i, i * 4, i],
      );
      if (reader.shards.hasWeight) assert.equal(batch.weight[r], i + 0.5);
      else assert.equal(batch.weight[r], 1);
      rows.push(i);
    }
    out.push(rows);
  }
  assert.equal(out.length, reader.batchCount());
  return out;
}

function sortedFlat(batches: number[][]): number[] {
  return batches.flat().sort((a, b) => a - b);
}

function range(n: number): number[] {
  return [...Array(n).keys()];
}

function cleanup(set: ShardSet): void {
  rmSync(set.dir, { recursive: true });
}

/** Fisher-Yates as docs/shards.md states it: for i from n-1 down to 1, swap a[i] and a[floor(draw * (i+1))]. */
function fisherYates<T>(a: T[], draw: () => number): void {
  for (let i = a.length - 1; i > 0; i--) {
    const j = Math.floor(draw() * (i + 1));
    [a[i], a[j]] = [a[j] as T, a[i] as T];
  }
}

/**
 * The shuffled epoch order written from docs/shards.md alone (another engine's view): the global
 * row at each position, for shards of `shardRows` rows.
 */
function documentedOrder(shardRows: number[], seed: number, epoch: number, buffer: number, block: number): number[] {
  const draw = epochRandom(seed, epoch);
  const total = shardRows.reduce((a, b) => a + b, 0);
  const firstRow = shardRows.map((_, s) => shardRows.slice(0, s).reduce((a, b) => a + b, 0));
  const windows: number[][] = [];
  if (buffer >= total) {
    windows.push(range(shardRows.length));
  } else {
    const shardOrder = range(shardRows.length);
    fisherYates(shardOrder, draw);
    for (const s of shardOrder) {
      const last = windows[windows.length - 1];
      const rows = (last ?? []).reduce((sum, t) => sum + (shardRows[t] as number), 0);
      if (last !== undefined && rows + (shardRows[s] as number) <= buffer) last.push(s);
      else windows.push([s]);
    }
  }
  const order: number[] = [];
  for (const window of windows) {
    const blocks: number[][] = [];
    for (const s of [...window].sort((a, b) => a - b)) {
      const rows = shardRows[s] as number;
      for (let r = 0; r < rows; r += block) blocks.push(range(Math.min(block, rows - r)).map((k) => (firstRow[s] as number) + r + k));
    }
    fisherYates(blocks, draw);
    order.push(...blocks.flat());
  }
  return order;
}

test('without shuffling, batches hold the rows in file order across shards; the last is kept', () => {
  const set = writeNumbered(21, 5, { weight: true });
  const batches = epochRows(new BatchReader(set, { batchSize: 8, shuffle: false }));
  assert.deepEqual(batches, [range(8), range(16).slice(8), range(21).slice(16)]);
  cleanup(set);
});

test('lastBatch: keep gives the partial batch, drop leaves it out', () => {
  const set = writeNumbered(21, 5);
  for (const shuffleBlock of [1, 2, undefined]) {
    const keep = epochRows(new BatchReader(set, { batchSize: 8, seed: 3, lastBatch: 'keep', ...(shuffleBlock === undefined ? {} : { shuffleBlock }) }));
    const drop = epochRows(new BatchReader(set, { batchSize: 8, seed: 3, lastBatch: 'drop', ...(shuffleBlock === undefined ? {} : { shuffleBlock }) }));
    assert.deepEqual(keep.map((b) => b.length), [8, 8, 5]);
    assert.deepEqual(drop.map((b) => b.length), [8, 8]);
    assert.deepEqual(drop, keep.slice(0, 2));
    assert.deepEqual(sortedFlat(keep), range(21));
  }
  const fileOrder = epochRows(new BatchReader(set, { batchSize: 8, shuffle: false, lastBatch: 'drop' }));
  assert.deepEqual(fileOrder, [range(8), range(16).slice(8)]);
  const even = writeNumbered(16, 5);
  assert.deepEqual(epochRows(new BatchReader(even, { batchSize: 8, lastBatch: 'keep' })).map((b) => b.length), [8, 8]);
  cleanup(set);
  cleanup(even);
});

test('the epoch random numbers are fixed: mulberry32 seeded from fmix32 of seed and epoch', () => {
  const draws = (seed: number, epoch: number): number[] => {
    const next = epochRandom(seed, epoch);
    return [next(), next(), next()].map((x) => x * 2 ** 32);
  };
  assert.deepEqual(draws(0, 0), [2990414398, 1755014010, 2043051769]);
  assert.deepEqual(draws(42, 3), [2211406166, 3706916852, 4152503187]);
});

for (const shuffleBuffer of [undefined, 7]) {
  for (const shuffleBlock of [1, 2, undefined]) {
    const how = `${shuffleBuffer === undefined ? 'over the whole dataset' : 'through a buffer of 7 rows'} in blocks of ${shuffleBlock ?? 'the default'}`;
    test(`shuffling ${how} is a seeded permutation, the same for the same seed and epoch, different across epochs`, () => {
      const set = writeNumbered(50, 3);
      const options: BatchReaderOptions = { batchSize: 8, seed: 42, ...(shuffleBuffer === undefined ? {} : { shuffleBuffer }), ...(shuffleBlock === undefined ? {} : { shuffleBlock }) };
      const a = epochRows(new BatchReader(set, options), 0);
      const again = epochRows(new BatchReader(set, options), 0);
      const next = epochRows(new BatchReader(set, options), 1);
      const otherSeed = epochRows(new BatchReader(set, { ...options, seed: 43 }), 0);
      assert.deepEqual(sortedFlat(a), range(50));
      assert.deepEqual(sortedFlat(next), range(50));
      assert.deepEqual(again, a);
      assert.notDeepEqual(next, a);
      assert.notDeepEqual(otherSeed, a);
      assert.notDeepEqual(a.flat(), range(50));
      // One reader reads any epoch on demand, as a fresh reader would.
      const reader = new BatchReader(set, options);
      epochRows(reader, 1);
      assert.deepEqual(epochRows(reader, 0), a);
      cleanup(set);
    });
  }
}

test('the shuffled order is exactly the one docs/shards.md describes, for any block and buffer', () => {
  // Shards of 10 rows and a last one of 7: blocks of 3 or 4 leave a short block in every shard.
  const set = writeNumbered(47, 10);
  const shardRows = [10, 10, 10, 10, 7];
  for (const shuffleBlock of [1, 3, 4, 64]) {
    for (const shuffleBuffer of [47, 20, 15, 1]) {
      for (const [seed, epoch] of [[0, 0], [7, 2]] as const) {
        const got = epochRows(new BatchReader(set, { batchSize: 6, seed, epoch, shuffleBuffer, shuffleBlock })).flat();
        const expected = documentedOrder(shardRows, seed, epoch, shuffleBuffer, shuffleBlock);
        assert.deepEqual(got, expected, `block ${shuffleBlock}, buffer ${shuffleBuffer}, seed ${seed}, epoch ${epoch}`);
        assert.deepEqual([...expected].sort((a, b) => a - b), range(47));
      }
    }
  }
  cleanup(set);
});

test('block shuffling permutes whole blocks: each block of a shard stays in file order, in one run', () => {
  const set = writeNumbered(100, 30);
  const flat = epochRows(new BatchReader(set, { batchSize: 16, seed: 5, shuffleBlock: 8 })).flat();
  // Blocks of shard s (rows 30s .. 30s+29) start at its rows 0, 8, 16, 24; the last is 6 rows (4 in shard 3).
  const runs: number[][] = [];
  for (const row of flat) {
    const last = runs[runs.length - 1];
    if ((row % 30) % 8 === 0) runs.push([row]);
    else if (last !== undefined && last[last.length - 1] === row - 1) last.push(row);
    else assert.fail(`row ${row} does not follow row ${row - 1}`);
  }
  const expected = [0, 1, 2, 3].flatMap((s) => [0, 8, 16, 24].filter((r) => 30 * s + r < 100).map((r) => [30 * s + r, Math.min(8, 30 - r, 100 - 30 * s - r)]));
  assert.deepEqual(
    runs.map((run) => [run[0], run.length]).sort((a, b) => (a[0] as number) - (b[0] as number)),
    expected,
  );
  assert.notDeepEqual(runs.map((run) => run[0]), expected.map((b) => b[0]), 'the blocks are shuffled');
  assert.equal(new BatchReader(set, { batchSize: 16 }).shuffleBlock, DEFAULT_SHUFFLE_BLOCK);
  cleanup(set);
});

test('blocks of 1 row shuffle rows: a Fisher-Yates of every row', () => {
  const set = writeNumbered(12, 5);
  const flat = epochRows(new BatchReader(set, { batchSize: 4, seed: 42, shuffleBlock: 1 })).flat();
  const expected = range(12);
  fisherYates(expected, epochRandom(42, 0));
  assert.deepEqual(flat, expected);
  // Fixed, so that a change of the documented order cannot pass unnoticed.
  assert.deepEqual(flat, [0, 11, 2, 10, 3, 1, 6, 8, 5, 4, 9, 7]);
  cleanup(set);
});

test('a buffer of 7 rows only mixes rows of whole shards taken together', () => {
  // Shards of 3 rows; a buffer of 7 holds two shards: each window's 6 rows stay together.
  const set = writeNumbered(48, 3);
  const flat = epochRows(new BatchReader(set, { batchSize: 6, seed: 1, shuffleBuffer: 7, shuffleBlock: 1 })).flat();
  for (let w = 0; w < 8; w++) {
    const shardsOfWindow = new Set(flat.slice(w * 6, w * 6 + 6).map((i) => Math.floor(i / 3)));
    assert.equal(shardsOfWindow.size, 2);
  }
  cleanup(set);
});

for (const [shuffleBuffer, shuffleBlock] of [[undefined, 1], [undefined, 2], [undefined, undefined], [3, 1], [3, 2], [9, 2]] as const) {
  test(`ranks share every batch: rank r gets rows [r*B/w, (r+1)*B/w) of the global batch (buffer ${shuffleBuffer ?? 'all'}, block ${shuffleBlock ?? 'default'})`, () => {
    const set = writeNumbered(45, 3);
    const extra = { ...(shuffleBuffer === undefined ? {} : { shuffleBuffer }), ...(shuffleBlock === undefined ? {} : { shuffleBlock }) };
    for (const lastBatch of ['keep', 'drop'] as const) {
      const global = epochRows(new BatchReader(set, { batchSize: 8, seed: 7, lastBatch, ...extra }), 2);
      const perRank = range(4).map((rank) => epochRows(new BatchReader(set, { batchSize: 8, seed: 7, lastBatch, rank, worldSize: 4, ...extra }), 2));
      for (const rank of range(4)) assert.equal(perRank[rank]?.length, global.length, 'every rank reads as many batches');
      global.forEach((rows, b) => {
        const parts = perRank.map((batches) => batches[b] ?? []);
        assert.deepEqual(parts.flat(), rows, `batch ${b} is the ranks' parts in rank order`);
        if (rows.length === 8) assert.deepEqual(parts.map((p) => p.length), [2, 2, 2, 2]);
      });
      // The partial batch of 5 rows: floor(r*5/4) .. floor((r+1)*5/4).
      if (lastBatch === 'keep') assert.deepEqual(perRank.map((batches) => batches[5]?.length), [1, 1, 1, 2]);
      assert.equal(new Set(perRank.flat(2)).size, lastBatch === 'keep' ? 45 : 40, 'disjoint and complete');
    }
    cleanup(set);
  });
}

test('grouped batches never split a group, cover every row once in order, and stay within the batch size', () => {
  const groups = groupsOf(300, 9, 5);
  const set = writeNumbered(300, 7, { groups });
  const batches = epochRows(new BatchReader(set, { batchSize: 16, grouped: true }));
  assert.deepEqual(batches.flat(), range(300));
  const seen = new Set<number>();
  for (const rows of batches) {
    assert.ok(rows.length <= 16);
    const inBatch = new Set(rows.map((i) => groups[i]));
    for (const g of inBatch) assert.ok(!seen.has(g as number), `group ${g} is split`);
    for (const g of inBatch) seen.add(g as number);
  }
  // Greedy: the next group would not have fitted in any batch but the last.
  batches.slice(0, -1).forEach((rows, b) => {
    const next = batches[b + 1]?.[0] as number;
    const nextGroupSize = groups.filter((g) => g === groups[next]).length;
    assert.ok(rows.length + nextGroupSize > 16);
  });
  cleanup(set);
});

test('a group larger than the batch size gets a batch of its own', () => {
  const groups = [1, 1, 2, 2, 2, 2, 2, 2, 3, 4, 4];
  const set = writeNumbered(groups.length, 4, { groups });
  const batches = epochRows(new BatchReader(set, { batchSize: 4, grouped: true }));
  assert.deepEqual(batches, [[0, 1], [2, 3, 4, 5, 6, 7], [8, 9, 10]]);
  cleanup(set);
});

test('grouped batches are dealt to ranks in turn, whole', () => {
  const groups = groupsOf(200, 6, 9);
  const set = writeNumbered(200, 11, { groups });
  const single = epochRows(new BatchReader(set, { batchSize: 10, grouped: true }));
  const ranks = range(3).map((rank) => epochRows(new BatchReader(set, { batchSize: 30, grouped: true, rank, worldSize: 3 })));
  ranks.forEach((batches, rank) => assert.deepEqual(batches, single.filter((_, b) => b % 3 === rank)));
  assert.deepEqual(sortedFlat(ranks.flat()), range(200));
  cleanup(set);
});

test('grouped reading needs a group column and contiguous groups; options are checked', () => {
  const plain = writeNumbered(10, 4);
  assert.throws(() => new BatchReader(plain, { batchSize: 4, grouped: true }), { message: 'model `numbered` has no group column, so its rows cannot be read in groups' });
  const scattered = writeNumbered(6, 4, { groups: [1, 2, 1, 3, 3, 3] });
  assert.throws(() => new BatchReader(scattered, { batchSize: 4, grouped: true }), /the rows of a group are not contiguous in these shards/);
  assert.throws(() => new BatchReader(plain, { batchSize: 6, worldSize: 4 }), { message: 'batch size 6 is not a multiple of the world size 4; every rank gets batch size / world size rows' });
  assert.throws(() => new BatchReader(plain, { batchSize: 8, worldSize: 4, rank: 4 }), { message: 'rank must be an integer in [0, 4), got 4' });
  assert.throws(() => new BatchReader(plain, { batchSize: 8, shuffleBlock: 0 }), { message: 'shuffle block must be a positive number of rows, got 0' });
  assert.throws(() => new BatchReader(plain, { batchSize: 8, shuffleBlock: 2.5 }), { message: 'shuffle block must be a positive number of rows, got 2.5' });
  cleanup(plain);
  cleanup(scattered);
});

test('bench-data prints rows/s, MB/s, the machine and the layout of Outbrain-shaped shards', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'wndc-bench-'));
  writeRandomShards(dir, outbrainIr(), { rows: 3000, rowsPerShard: 1024 });
  let stdout = '';
  const io: CliIO = { stdout: (t) => void (stdout += t), stderr: () => undefined, cwd: process.cwd(), color: false };
  const code = await benchDataCommand(dir, { batchSize: '512', epochs: '3' }, io);
  assert.equal(code, 0);
  const lines = stdout.split('\n');
  assert.match(lines[0] ?? '', /^shards: .* \(model `outbrain`, 3000 rows in 3 shards, [\d.]+ MB\)$/);
  assert.equal(lines[1], 'layout: ids 40 x int32, lengths 6 x int32, numeric 32 x float32, label float32, group float64 (324 bytes a row)');
  assert.match(lines[2] ?? '', /^machine: .+, \d+ cores, node v\d+\.\d+\.\d+; one thread reads$/);
  assert.equal(lines[3], 'batches: 512 rows, shuffled blocks of 64 rows (seed 0, buffer 3000 rows), 6 an epoch');
  assert.match(lines[4] ?? '', /^passes: 1 warm-up \+ 3 timed epochs \(label checksum \d+\)$/);
  assert.match(lines[5] ?? '', /^rows\/s: [\d.]+ M \(median; min [\d.]+ M, max [\d.]+ M\)$/);
  assert.match(lines[6] ?? '', /^MB\/s: [\d.]+$/);
  assert.match(lines[7] ?? '', /^rows per CPU second: [\d.]+ M$/);
  await assert.rejects(benchDataCommand(dir, { batchSize: 'many' }, io), { message: '--batch-size takes a positive integer, not "many"' });
  await assert.rejects(benchDataCommand(dir, { shuffleBlock: '0' }, io), { message: '--shuffle-block takes a positive integer, not "0"' });
  stdout = '';
  assert.equal(await benchDataCommand(dir, { batchSize: '1000', epochs: '1', shuffleBlock: '1', seed: '3' }, io), 0);
  assert.equal(stdout.split('\n')[3], 'batches: 1000 rows, shuffled rows (seed 3, buffer 3000 rows), 3 an epoch');
  stdout = '';
  assert.equal(await benchDataCommand(dir, { batchSize: '1000', epochs: '1', shuffle: false }, io), 0);
  assert.equal(stdout.split('\n')[3], 'batches: 1000 rows, in file order, 3 an epoch');
  await assert.rejects(benchDataCommand(join(dir, 'missing'), {}, io), { message: `${join(dir, 'missing')}: no such folder` });
  rmSync(dir, { recursive: true });
});

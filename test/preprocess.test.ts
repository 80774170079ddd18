// `wndc preprocess` end to end: real datasets encoded to the values worked out by hand, the same
// synthetic rows through CSV, Parquet and TFRecord giving identical shards, and bad data reported
// with file, row and column, or skipped and counted, with nothing half-written left behind.

import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { runCli } from '../cli/main.js';
import { compileSource } from '../compiler/compile.js';
import type { ModelIR } from '../compiler/ir.js';
import { openShards, type ShardData } from '../runtime/data/shards.js';
import { writeTfRecordFile } from '../runtime/data/sources/tfrecord.js';
import { synthSource, writeCsv, writeParquet } from '../runtime/data/synth.js';
import { hashBucket } from '../runtime/transforms.js';
import { REPO, SHARED_DATA } from './support/paths.js';

async function wndc(args: string[], cwd = REPO): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const code = await runCli(args, { stdout: (s) => (stdout += s), stderr: (s) => (stderr += s), cwd, color: false });
  return { code, stdout, stderr };
}

function tempDir(): string {
  return mkdtempSync(join(tmpdir(), 'wndc-pre-'));
}

function compileExample(name: string): ModelIR {
  const path = join(REPO, 'examples', name, `${name}.wnd`);
  const ir = compileSource(readFileSync(path, 'utf8'), path, 'wnd').ir;
  assert.ok(ir);
  return ir;
}

function shard(dir: string): ShardData {
  const set = openShards(dir);
  assert.equal(set.shardCount, 1);
  return set.load(0);
}

const criteo = join(SHARED_DATA, 'criteo_kaggle_tiny', 'train.tiny.csv');
const ipinyou = join(SHARED_DATA, 'ipinyou_2997', 'train.csv');

test('criteo: the first row of train.tiny.csv encodes to the values worked out by hand', { skip: existsSync(criteo) ? false : 'shared data absent' }, async () => {
  const out = tempDir();
  const r = await wndc(['preprocess', 'examples/criteo/criteo.wnd', '--data', criteo, '--out', out]);
  assert.equal(r.code, 0, r.stderr);
  const s = shard(join(out, 'train'));
  assert.equal(s.rows, 1999);
  const ir = compileExample('criteo');
  // Row 1: Label 0, I1 = 1, I2 = 1, I3 = 5, I12 empty; C1 = 68fd1e64, C2 = 80e26c9b.
  const numeric = (name: string) => s.numeric[ir.layout.numeric.find((n) => n.feature === name)!.offset]!;
  const id = (name: string) => s.ids[ir.layout.ids.find((n) => n.feature === name)!.offset]!;
  assert.equal(s.label[0], 0);
  assert.equal(numeric('I1'), 1); // log2(1 + 1)
  assert.equal(numeric('I3'), Math.fround(Math.log2(6))); // log2(1 + 5)
  assert.equal(numeric('I12'), 0); // missing: the default 0, log2(1 + 0)
  assert.equal(id('C1'), hashBucket('68fd1e64', 100000));
  assert.equal(id('C2'), hashBucket('80e26c9b', 100000));
  const manifest = JSON.parse(readFileSync(join(out, 'train', 'manifest.json'), 'utf8')) as { counters: Record<string, { missing: number }> };
  assert.equal(manifest.counters.I12!.missing, 1554);
});

test('ipinyou: identity and hashed features of the first row, and a group-free validation split', { skip: existsSync(ipinyou) ? false : 'shared data absent' }, async () => {
  const out = tempDir();
  const r = await wndc(['preprocess', 'examples/ipinyou/ipinyou.wnd', '--data', ipinyou, '--out', out, '--valid-fraction', '0.25']);
  assert.equal(r.code, 0, r.stderr);
  const train = openShards(join(out, 'train'));
  const valid = openShards(join(out, 'valid'));
  const lines = readFileSync(ipinyou, 'utf8').trim().split('\n').length - 1;
  assert.equal(train.rows + valid.rows, lines);
  assert.ok(valid.rows > lines * 0.2 && valid.rows < lines * 0.3, `${valid.rows} of ${lines}`);
  const ir = compileExample('ipinyou');
  const id = (s: ShardData, row: number, name: string) => {
    const slot = ir.layout.ids.find((n) => n.feature === name)!;
    return s.ids[row * ir.layout.idsWidth + slot.offset]!;
  };
  // The first data row: click 0, weekday 2, hour 18, useragent android_safari, city 53.
  const first = readFileSync(ipinyou, 'utf8').split('\n')[1]!.split(',');
  const inTrain = id(train.load(0), 0, 'hour') === 18 && train.load(0).label[0] === Number(first[0]);
  const s = inTrain ? train.load(0) : valid.load(0);
  assert.equal(id(s, 0, 'weekday'), 2);
  assert.equal(id(s, 0, 'hour'), 18);
  assert.equal(id(s, 0, 'useragent'), hashBucket('android_safari', 1000));
  assert.equal(id(s, 0, 'city'), hashBucket('53', 10000));
});

const movielens = join(SHARED_DATA, 'movielens_100k');

test('movielens: three files joined by DuckDB queries (--sql, --valid-sql), the first rating encoded as worked out by hand', { skip: existsSync(movielens) ? false : 'shared data absent' }, async () => {
  const out = tempDir();
  let stdout = '';
  let stderr = '';
  const io = { stdout: (t: string) => (stdout += t), stderr: (t: string) => (stderr += t), cwd: movielens, color: false };
  // The query's relative paths are read from the current folder, as DuckDB does.
  const previous = process.cwd();
  process.chdir(movielens);
  let code: number;
  try {
    const query = (name: string) => `@${join(REPO, 'examples/movielens', name)}`;
    code = await runCli(['preprocess', join(REPO, 'examples/movielens/movielens.wnd'), '--sql', query('train.sql'), '--valid-sql', query('valid.sql'), '--out', out], io);
  } finally {
    process.chdir(previous);
  }
  assert.equal(code, 0, stderr);
  assert.match(stdout, /^train: 79,619 rows/); // each user's latest 20% (rounded up) are held out
  assert.match(stdout, /\nvalid: 20,381 rows/);
  const s = shard(join(out, 'train'));
  const v = shard(join(out, 'valid'));
  assert.equal(s.label.reduce((a, b) => a + b, 0) + v.label.reduce((a, b) => a + b, 0), 55375); // ratings >= 4
  const ir = compileExample('movielens');
  const id = (name: string) => ir.layout.ids.find((n) => n.feature === name)!;
  // User 1's first rating (earliest timestamp, then lowest item): item 168, 5 stars; the user is 24,
  // M, a technician from 85711; the movie's only genre is Comedy.
  assert.equal(s.label[0], 1);
  assert.equal(s.group![0], 1);
  assert.equal(s.ids[id('item_id').offset], hashBucket(168, 100000));
  assert.equal(s.ids[id('age_band').offset], 1); // 18 <= 24 < 25
  assert.equal(s.ids[id('gender').offset], 0); // "M" is the vocabulary's first entry
  assert.equal(s.ids[id('occupation').offset], 19); // "technician"
  assert.equal(s.ids[id('zip_prefix').offset], hashBucket('857', 10000));
  assert.equal(s.ids[id('genres').offset], 5); // "Comedy"
  assert.equal(s.lengths[id('genres').lengthSlot!], 1);
});

test('the same synthetic rows through CSV, Parquet and TFRecord give identical shards', async () => {
  const ir = compileExample('outbrain');
  const dir = tempDir();
  const rows = 3000;
  await writeCsv(synthSource(ir, { rows, seed: 5 }), ir.columns, join(dir, 'rows.csv'));
  await writeParquet(synthSource(ir, { rows, seed: 5 }), ir.columns, join(dir, 'rows.parquet'));
  const all = [];
  for await (const chunk of synthSource(ir, { rows, seed: 5 }).chunks()) all.push(...chunk.rows);
  await writeTfRecordFile(join(dir, 'rows.tfrecord'), all, ir, 512);
  const results: ShardData[] = [];
  for (const file of ['rows.csv', 'rows.parquet', 'rows.tfrecord']) {
    const r = await wndc(['preprocess', 'examples/outbrain/outbrain.wnd', '--data', join(dir, file), '--out', join(dir, `out-${file}`)]);
    assert.equal(r.code, 0, `${file}: ${r.stderr}`);
    results.push(shard(join(dir, `out-${file}`, 'train')));
  }
  const [csv, parquet, tfrecord] = results;
  assert.equal(csv!.rows, rows);
  for (const other of [parquet!, tfrecord!]) {
    assert.deepEqual(other.ids, csv!.ids);
    assert.deepEqual(other.lengths, csv!.lengths);
    assert.deepEqual(other.label, csv!.label);
    assert.deepEqual(other.group, csv!.group);
  }
  assert.deepEqual(parquet!.numeric, csv!.numeric);
  // tf.train.Example keeps floats as float32, so TFRecord inputs are rounded before the transforms.
  for (let i = 0; i < csv!.numeric.length; i++) {
    assert.ok(Math.abs(tfrecord!.numeric[i]! - csv!.numeric[i]!) <= 1e-6 * Math.max(1, Math.abs(csv!.numeric[i]!)), `numeric ${i}`);
  }
  const manifests = ['rows.csv', 'rows.parquet'].map((f) => JSON.parse(readFileSync(join(dir, `out-${f}`, 'train', 'manifest.json'), 'utf8')) as { stats: unknown });
  assert.deepEqual(manifests[0]!.stats, manifests[1]!.stats);
});

const BAD_SPEC = `model bad
input {
  clicked: int @label
  item: int
  price: float = 0
}
features {
  item_id = identity(item, buckets: 100)
  price_n = numeric(price, norm: minmax)
}
wide {
  features: [item_id, price_n]
  optimizer: ftrl(learning_rate: 0.1)
}
`;

test('bad data stops the run naming file, row and column, and leaves no shards behind', async () => {
  const dir = tempDir();
  writeFileSync(join(dir, 'bad.wnd'), BAD_SPEC);
  writeFileSync(join(dir, 'rows.csv'), 'clicked,item,price\n1,5,2.5\n0,abc,1\n1,7,\n');
  const r = await wndc(['preprocess', 'bad.wnd', '--data', 'rows.csv', '--out', 'out'], dir);
  assert.equal(r.code, 3);
  assert.match(r.stderr, /^wndc: bad data: .*rows\.csv:2 column `item`: /m);
  assert.match(r.stderr, /--max-bad-rows/);
  assert.equal(existsSync(join(dir, 'out', 'train', 'manifest.json')), false);
  assert.deepEqual(readdirSync(join(dir, 'out', 'train')).filter((f) => f.includes('part-')), []);
});

test('--max-bad-rows skips and counts, and still fails past the limit', async () => {
  const dir = tempDir();
  writeFileSync(join(dir, 'bad.wnd'), BAD_SPEC);
  writeFileSync(join(dir, 'rows.csv'), 'clicked,item,price\n1,5,2.5\n0,abc,1\n1,7,\n0,x,1\n');
  const ok = await wndc(['preprocess', 'bad.wnd', '--data', 'rows.csv', '--out', 'out', '--max-bad-rows', '2'], dir);
  assert.equal(ok.code, 0, ok.stderr);
  assert.match(ok.stderr, /skipped 2 bad rows/);
  const s = shard(join(dir, 'out', 'train'));
  assert.equal(s.rows, 2);
  // price: min 2.5 is the only present value besides the missing one -> min = max = 2.5 -> 0
  assert.deepEqual([...s.ids], [5, 7]);
  const over = await wndc(['preprocess', 'bad.wnd', '--data', 'rows.csv', '--out', 'out2', '--max-bad-rows', '1'], dir);
  assert.equal(over.code, 3);
  assert.match(over.stderr, /more than 1 bad row \(--max-bad-rows 1\)/);
});

test('preprocess usage errors are one line, exit 2', async () => {
  for (const [args, message] of [
    [['preprocess', 'examples/quickstart/quickstart.wnd', '--data', 'x.csv', '--out', 'o', '--valid', 'y.csv', '--valid-fraction', '0.1'], 'wndc: give either --valid or --valid-fraction, not both\n'],
    [['preprocess', 'examples/quickstart/quickstart.wnd', '--data', 'x.csv', '--out', 'o', '--valid-fraction', '2'], 'wndc: --valid-fraction takes a number between 0 and 1, not "2"\n'],
    [['preprocess', 'examples/quickstart/quickstart.wnd', '--data', 'x.csv', '--out', 'o', '--format', 'xls'], 'wndc: --format takes one of csv, tsv, parquet, arrow, tfrecord, not "xls"\n'],
  ] as const) {
    const r = await wndc([...args]);
    assert.equal(r.code, 2, args.join(' '));
    assert.equal(r.stderr, message);
  }
});

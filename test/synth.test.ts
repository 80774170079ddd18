// The synthetic data generator: determinism, realistic shapes, a learnable ground truth that beats
// chance by the margins docs/synth.md states, and CSV/Parquet writers that DuckDB reads back.

import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import { DuckDBInstance } from '@duckdb/node-api';
import { synthCommand } from '../cli/synth.js';
import { UsageError } from '../cli/io.js';
import { compileSource } from '../compiler/compile.js';
import type { ColumnIR, ModelIR } from '../compiler/ir.js';
import type { RawChunk, RawRecord, RawSource } from '../runtime/data/contracts.js';
import {
  areaUnderCurve,
  chanceMeanAveragePrecision,
  COUNT_CAP,
  csvField,
  groundTruthReport,
  HASH_SPACE_FACTOR,
  meanAveragePrecision,
  SYNTH_FILE,
  synthSource,
  SynthGenerator,
  writeCsv,
  writeParquet,
  type SynthBatch,
} from '../runtime/data/synth.js';
import { REPO } from './support/paths.js';

function example(name: string): ModelIR {
  const path = join(REPO, 'examples', name, `${name}.wnd`);
  const result = compileSource(readFileSync(path, 'utf8'), path, 'wnd', { baseDir: dirname(path) });
  assert.ok(result.ir, `${name} compiles`);
  return result.ir;
}

const OUTBRAIN = example('outbrain');
const QUICKSTART = example('quickstart');

async function allRows(source: RawSource): Promise<{ rows: RawRecord[]; chunks: RawChunk[] }> {
  const chunks: RawChunk[] = [];
  for await (const chunk of source.chunks()) chunks.push(chunk);
  return { rows: chunks.flatMap((c) => c.rows), chunks };
}

/** Every batch of a generator, merged. */
function generate(ir: ModelIR, rows: number, seed: number): SynthBatch {
  const generator = new SynthGenerator(ir, { rows, seed });
  const all: SynthBatch = { rows: [], logits: new Float64Array(0), labels: new Uint8Array(0), groupSizes: [] };
  const logits: number[] = [];
  const labels: number[] = [];
  for (let batch = generator.next(4096); batch !== null; batch = generator.next(4096)) {
    all.rows.push(...batch.rows);
    logits.push(...batch.logits);
    labels.push(...batch.labels);
    all.groupSizes.push(...batch.groupSizes);
  }
  return { ...all, logits: Float64Array.from(logits), labels: Uint8Array.from(labels) };
}

function tempDir(): string {
  return mkdtempSync(join(tmpdir(), 'wndc-synth-'));
}


// --- determinism ---------------------------------------------------------------------------------

test('the same seed gives the same rows, whatever the chunk size; another seed other rows', async () => {
  for (const ir of [QUICKSTART, OUTBRAIN]) {
    const a = await allRows(synthSource(ir, { rows: 3000, seed: 42 }));
    const b = await allRows(synthSource(ir, { rows: 3000, seed: 42, chunkRows: 100 }));
    const c = await allRows(synthSource(ir, { rows: 3000, seed: 43 }));
    assert.equal(a.rows.length, 3000);
    assert.deepEqual(b.rows, a.rows);
    assert.equal(a.chunks.length, 1);
    assert.ok(b.chunks.length >= 30);
    assert.notDeepEqual(c.rows.slice(0, 20), a.rows.slice(0, 20));
    // Chunks number their rows like a file's, and a group never straddles two chunks.
    let next = 1;
    for (const chunk of b.chunks) {
      assert.equal(chunk.file, SYNTH_FILE);
      assert.equal(chunk.firstRow, next);
      assert.ok(chunk.rows.length <= 100);
      next += chunk.rows.length;
      const group = ir.roles.group!;
      const last = chunk.rows[chunk.rows.length - 1]![group];
      const following = b.rows[next - 1]?.[group];
      assert.notEqual(following, last);
    }
  }
});

test('rows are typed per column and hold every column of the spec', async () => {
  const { rows } = await allRows(synthSource(QUICKSTART, { rows: 50, seed: 1 }));
  for (const row of rows) {
    assert.deepEqual(Object.keys(row), QUICKSTART.columns.map((c) => c.name));
    assert.equal(typeof row.request_id, 'number');
    assert.ok(row.clicked === 0 || row.clicked === 1);
    assert.match(String(row.user), /^user_\d+$/);
    assert.ok(Array.isArray(row.tags) && row.tags.every((t) => typeof t === 'string' && /^tags_\d+$/.test(t)));
    assert.equal(typeof row.price, 'number');
  }
});

// --- shapes --------------------------------------------------------------------------------------

test('outbrain shapes: display groups of 2 to 12 with one click, Zipf-like ids in their spaces, bags and numerics in range', () => {
  const data = generate(OUTBRAIN, 20000, 1);
  assert.equal(data.rows.length, 20000);
  // Groups: contiguous, 2..12 rows, mean about 5.2, exactly one click each.
  let start = 0;
  const seen = new Set<unknown>();
  for (const size of data.groupSizes) {
    assert.ok(size >= 2 && size <= 12, `group size ${size}`);
    const id = data.rows[start]!.display_id;
    assert.ok(!seen.has(id), 'groups are contiguous');
    seen.add(id);
    let clicks = 0;
    for (let i = start; i < start + size; i++) {
      assert.equal(data.rows[i]!.display_id, id);
      clicks += data.rows[i]!.clicked as number;
      assert.equal(data.labels[i], data.rows[i]!.clicked);
    }
    assert.equal(clicks, 1);
    start += size;
  }
  assert.equal(start, 20000);
  const mean = 20000 / data.groupSizes.length;
  assert.ok(mean > 5 && mean < 5.4, `mean group size ${mean}`);
  const sizes = new Set(data.groupSizes);
  for (let s = 2; s <= 12; s++) assert.ok(sizes.has(s), `some group has ${s} rows`);
  const clickRate = data.groupSizes.length / 20000;
  assert.ok(clickRate > 0.185 && clickRate < 0.2, `click rate ${clickRate}`);

  for (const feature of OUTBRAIN.features) {
    if (!('column' in feature)) continue;
    const values = data.rows.map((r) => r[feature.column]);
    if (feature.kind === 'hashed') {
      const space = feature.output.type === 'categorical' ? feature.output.buckets * HASH_SPACE_FACTOR : 0;
      for (const v of values) assert.ok(Number.isInteger(v) && (v as number) >= 0 && (v as number) < space, `${feature.name} ${v}`);
      // Zipf-like: the most frequent value is common, yet many values occur.
      const counts = new Map<unknown, number>();
      for (const v of values) counts.set(v, (counts.get(v) ?? 0) + 1);
      const top = Math.max(...counts.values());
      assert.ok(top > 20000 * 0.05 && top < 20000 * 0.5, `${feature.name}: top value ${top} times`);
      assert.ok(counts.size > Math.min(space / 4, 200), `${feature.name}: ${counts.size} distinct values`);
    } else if (feature.kind === 'identity') {
      const buckets = feature.output.type === 'categorical' ? feature.output.buckets : 0;
      for (const v of values) assert.ok(Number.isInteger(v) && (v as number) >= 0 && (v as number) < buckets);
      assert.equal(new Set(values).size, buckets, `${feature.name} uses all of its ${buckets} ids`);
    } else if (feature.kind === 'multi_hot') {
      const maxLen = feature.output.type === 'categorical' ? feature.output.maxLen : 0;
      const lengths = new Set<number>();
      for (const v of values) {
        assert.ok(Array.isArray(v));
        assert.ok(v.length >= 1 && v.length <= maxLen, `${feature.name} length ${v.length}`);
        assert.equal(new Set(v).size, v.length, 'bag elements are distinct');
        lengths.add(v.length);
      }
      assert.equal(lengths.size, maxLen, `${feature.name} has bags of every length 1..${maxLen}`);
    } else if (feature.kind === 'numeric') {
      for (const v of values) {
        assert.equal(typeof v, 'number');
        const x = v as number;
        if (feature.norm === 'log_count_minmax') assert.ok(Number.isInteger(x) && x >= 0 && x <= COUNT_CAP, `${feature.name} ${x}`);
        else if (feature.norm === 'log_01scaled') assert.ok(x >= 1e-4 && x <= 1, `${feature.name} ${x}`);
        else assert.ok(x >= 0 && x <= 1, `${feature.name} ${x}`);
      }
      if (feature.norm === 'log_count_minmax') {
        const sorted = (values as number[]).slice().sort((a, b) => a - b);
        assert.ok(sorted[10000]! <= 10 && sorted[19990]! >= 100, `${feature.name}: heavy-tailed counts`);
      }
    }
  }
});

test('without a group column clicks are drawn at a rate of about 0.19; vocabularies get a small OOV share', () => {
  const criteo = generate(example('criteo'), 20000, 3);
  assert.deepEqual(criteo.groupSizes, []);
  const rate = criteo.labels.reduce((s, l) => s + l, 0) / 20000;
  assert.ok(rate > 0.175 && rate < 0.205, `click rate ${rate}`);
  assert.match(String(criteo.rows[0]!.C1), /^C1_\d+$/);

  const ipinyou = example('ipinyou');
  const rows = generate(ipinyou, 20000, 3).rows;
  const known = new Set(['FirstView', 'SecondView', 'OtherView', 'Na']);
  const oov = rows.filter((r) => !known.has(r.slotvisibility as string));
  for (const r of oov) assert.match(String(r.slotvisibility), /^slotvisibility_oov_\d+$/);
  assert.ok(oov.length > 200 && oov.length < 600, `${oov.length} OOV values in 20000`);
  for (const r of rows) assert.ok(Number.isInteger(r.hour) && (r.hour as number) >= 0 && (r.hour as number) < 24);
});

// --- the ground truth ----------------------------------------------------------------------------

test('metrics: AUC with ties, MAP@k and the MAP of a random order', () => {
  assert.equal(areaUnderCurve(Float64Array.from([0.1, 0.4, 0.35, 0.8]), Uint8Array.from([0, 0, 1, 1])), 0.75);
  assert.equal(areaUnderCurve(Float64Array.from([1, 1, 1, 1]), Uint8Array.from([0, 1, 0, 1])), 0.5);
  assert.equal(areaUnderCurve(Float64Array.from([1, 2]), Uint8Array.from([1, 1])), 0.5);
  // Group 1: the click ranked 2nd (AP 1/2); group 2: ranked 1st (AP 1); group 3: 3rd, beyond k = 2 (AP 0).
  const scores = Float64Array.from([0.9, 0.5, 0.1, 0.7, 0.2, 0.9, 0.8, 0.1]);
  const labels = Uint8Array.from([0, 1, 0, 1, 0, 0, 0, 1]);
  assert.equal(meanAveragePrecision(scores, labels, [3, 2, 3], 12), (1 / 2 + 1 + 1 / 3) / 3);
  assert.equal(meanAveragePrecision(scores, labels, [3, 2, 3], 2), (1 / 2 + 1 + 0) / 3);
  // A tie is ranked pessimistically: the click comes after the equal non-click.
  assert.equal(meanAveragePrecision(Float64Array.from([1, 1]), Uint8Array.from([1, 0]), [2], 12), 0.5);
  // Random order of one click among n: mean of 1/rank = H(n) / n.
  assert.equal(chanceMeanAveragePrecision(Uint8Array.from([1, 0, 0, 1, 0]), [2, 3], 12), ((1 + 1 / 2) / 2 + (1 + 1 / 2 + 1 / 3) / 3) / 2);
});

// The figures docs/synth.md quotes (20,000 rows, seed 1); chance is AUC 0.5 and the MAP@12 of a
// random order of the same groups.
const REFERENCE = [
  { model: 'outbrain', auc: 0.770, map: 0.721, chance: 0.471 },
  { model: 'quickstart', auc: 0.763, map: 0.711, chance: 0.469 },
  { model: 'movielens', auc: 0.737, map: 0.702, chance: 0.472 },
  { model: 'criteo', auc: 0.825, map: null, chance: null },
  { model: 'ipinyou', auc: 0.808, map: null, chance: null },
];

test('the ground truth beats chance by the margins docs/synth.md states, on 20,000 rows', async () => {
  const doc = readFileSync(join(REPO, 'docs', 'synth.md'), 'utf8');
  for (const expected of REFERENCE) {
    const report = await groundTruthReport(example(expected.model), { rows: 20000, seed: 1 });
    assert.equal(report.rows, 20000);
    assert.equal(report.auc.toFixed(3), expected.auc.toFixed(3), `${expected.model} auc`);
    assert.ok(report.auc > 0.7, `${expected.model}: AUC beats chance (0.5) by more than 0.2`);
    if (expected.map === null) {
      assert.equal(report.map, null);
    } else {
      assert.ok(report.map);
      assert.equal(report.map.k, 12);
      assert.equal(report.map.truth.toFixed(3), expected.map.toFixed(3), `${expected.model} map@12`);
      assert.equal(report.map.chance.toFixed(3), expected.chance!.toFixed(3), `${expected.model} chance map@12`);
      assert.ok(report.map.truth - report.map.chance > 0.2, `${expected.model}: MAP@12 beats chance by more than 0.2`);
    }
    const line = `| ${expected.model} | ${expected.auc.toFixed(3)} | ${expected.map === null ? '-' : expected.map.toFixed(3)} | ${expected.chance === null ? '-' : expected.chance.toFixed(3)} |`;
    assert.ok(doc.includes(line), `docs/synth.md lists ${line}`);
  }
});

test('the ground truth scores rows read back from a file like the rows it drew', async () => {
  const dir = tempDir();
  try {
    const source = synthSource(QUICKSTART, { rows: 500, seed: 9 });
    const generated = generate(QUICKSTART, 500, 9);
    await writeParquet(source, QUICKSTART.columns, join(dir, 'q.parquet'));
    const back = await readBack(`read_parquet('${join(dir, 'q.parquet')}')`);
    const truth = new SynthGenerator(QUICKSTART, { rows: 500, seed: 9 }).truth;
    back.forEach((row, i) => assert.equal(truth.logit(row), generated.logits[i]));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

// --- writers -------------------------------------------------------------------------------------

/** Rows of a DuckDB table expression as plain JavaScript values (bigints as numbers). */
async function readBack(from: string): Promise<RawRecord[]> {
  const instance = await DuckDBInstance.create(':memory:');
  try {
    const connection = await instance.connect();
    const reader = await connection.runAndReadAll(`SELECT * FROM ${from}`);
    const plain = (v: unknown): unknown => (typeof v === 'bigint' ? Number(v) : Array.isArray(v) ? v.map(plain) : v);
    const rows = reader.getRowObjectsJS().map((row) => Object.fromEntries(Object.entries(row).map(([k, v]) => [k, plain(v)])) as RawRecord);
    connection.closeSync();
    return rows;
  } finally {
    instance.closeSync();
  }
}

async function columnTypes(from: string): Promise<Record<string, string>> {
  const instance = await DuckDBInstance.create(':memory:');
  try {
    const connection = await instance.connect();
    const reader = await connection.runAndReadAll(`DESCRIBE SELECT * FROM ${from}`);
    const types = Object.fromEntries(reader.getRowObjectsJS().map((r) => [String(r.column_name), String(r.column_type)]));
    connection.closeSync();
    return types;
  } finally {
    instance.closeSync();
  }
}

test('CSV and Parquet files hold the synthesized rows; DuckDB reads back the same values', async () => {
  const dir = tempDir();
  try {
    for (const ir of [QUICKSTART, OUTBRAIN]) {
      const expected = (await allRows(synthSource(ir, { rows: 2000, seed: 5 }))).rows;
      const csv = join(dir, `${ir.model}.csv`);
      const parquet = join(dir, `${ir.model}.parquet`);
      const writtenCsv = await writeCsv(synthSource(ir, { rows: 2000, seed: 5 }), ir.columns, csv);
      const writtenParquet = await writeParquet(synthSource(ir, { rows: 2000, seed: 5 }), ir.columns, parquet);
      assert.deepEqual([writtenCsv.rows, writtenParquet.rows], [2000, 2000]);
      assert.ok(writtenCsv.bytes > 0 && writtenParquet.bytes > 0);

      // Parquet: typed columns, lists as LIST types, values equal.
      const types = await columnTypes(`read_parquet('${parquet}')`);
      assert.deepEqual(Object.keys(types), ir.columns.map((c) => c.name));
      for (const c of ir.columns) assert.equal(types[c.name], { int: 'BIGINT', float: 'DOUBLE', string: 'VARCHAR' }[c.type] + (c.list ? '[]' : ''));
      assert.deepEqual(await readBack(`read_parquet('${parquet}')`), expected);

      // CSV: a header of the column names; DuckDB parses each scalar to the same value and each list as a|b|c.
      const header = readFileSync(csv, 'utf8').split('\n', 1)[0];
      assert.equal(header, ir.columns.map((c) => c.name).join(','));
      const sqlType = (c: ColumnIR): string => (c.list ? 'VARCHAR' : { int: 'BIGINT', float: 'DOUBLE', string: 'VARCHAR' }[c.type]);
      const columns = ir.columns.map((c) => `'${c.name}': '${sqlType(c)}'`).join(', ');
      const fromCsv = await readBack(`read_csv('${csv}', header = true, auto_detect = false, columns = {${columns}})`);
      const asCsv = expected.map((row) => Object.fromEntries(ir.columns.map((c) => [c.name, c.list ? (row[c.name] as unknown[]).join('|') : row[c.name]])));
      assert.deepEqual(fromCsv, asCsv);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('CSV fields are quoted per RFC 4180, and Parquet keeps empty strings, empty lists and nulls apart', async () => {
  assert.equal(csvField('plain'), 'plain');
  assert.equal(csvField('a,b'), '"a,b"');
  assert.equal(csvField('say "hi"'), '"say ""hi"""');
  assert.equal(csvField('two\nlines'), '"two\nlines"');
  assert.equal(csvField(''), '""');
  assert.equal(csvField(null), '');
  assert.equal(csvField(undefined), '');
  assert.equal(csvField(0.1), '0.1');
  assert.equal(csvField(-12), '-12');
  assert.equal(csvField(true), 'true');
  assert.equal(csvField([1, 2, 3]), '1|2|3');
  assert.equal(csvField(['x,y', 'z']), '"x,y|z"');
  assert.equal(csvField([]), '""');
  assert.throws(() => csvField(['a|b']), /internal: list element "a\|b" contains the list separator `\|`/);

  const columns: ColumnIR[] = [
    { name: 'id', type: 'int', list: false, default: null },
    { name: 'text, "quoted"', type: 'string', list: false, default: '' },
    { name: 'bag', type: 'string', list: true, default: [] },
    { name: 'x', type: 'float', list: false, default: 0 },
  ];
  const rows: RawRecord[] = [
    { id: 1, 'text, "quoted"': 'a,b', bag: ['p', 'q r'], x: 0.1 },
    { id: 2, 'text, "quoted"': 'say "hi"\nbye', bag: [], x: -2.5e-7 },
    { id: 3, 'text, "quoted"': '', bag: null, x: null },
    { id: 4, 'text, "quoted"': null, bag: ['only'], x: 1e21 },
  ];
  const source: RawSource = {
    files: ['hostile'],
    format: 'arrow',
    async *chunks() {
      yield { file: 'hostile', firstRow: 1, rows };
    },
    async close() {},
  };
  const dir = tempDir();
  try {
    const path = join(dir, 'hostile.parquet');
    await writeParquet(source, columns, path);
    assert.deepEqual(await readBack(`read_parquet('${path}')`), rows);
    await writeCsv(source, columns, join(dir, 'hostile.csv'));
    assert.equal(
      readFileSync(join(dir, 'hostile.csv'), 'utf8'),
      'id,"text, ""quoted""",bag,x\n1,"a,b",p|q r,0.1\n2,"say ""hi""\nbye","",-2.5e-7\n3,"",,\n4,,only,1e+21\n',
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

// --- the command ---------------------------------------------------------------------------------

test('`synthCommand` writes <model>.csv or .parquet and reports the ground truth; bad flags are usage errors', async () => {
  const dir = tempDir();
  let stderr = '';
  const io = { stdout: () => undefined, stderr: (s: string) => (stderr += s), cwd: REPO, color: false };
  try {
    assert.equal(await synthCommand('examples/quickstart/quickstart.wnd', { rows: '1000', out: dir, format: 'parquet', seed: '3' }, io), 0);
    assert.equal((await readBack(`read_parquet('${join(dir, 'quickstart.parquet')}')`)).length, 1000);
    assert.match(stderr, /^wrote .*quickstart\.parquet: 1000 rows, [\d.]+ MB in [\d.]+ s \(seed 3\)\n/);
    assert.match(stderr, /\nground truth on the first 1000 rows: auc 0\.\d{3} \(chance 0\.500\), map@12 0\.\d{3} \(chance 0\.\d{3}\), click rate 0\.\d{3}\n$/);
    stderr = '';
    assert.equal(await synthCommand('examples/quickstart/quickstart.wnd', { rows: 200, out: dir }, io), 0);
    assert.match(stderr, /quickstart\.csv: 200 rows, .* \(seed 7\)/); // the spec's train.seed
    assert.equal(readFileSync(join(dir, 'quickstart.csv'), 'utf8').trimEnd().split('\n').length, 201);

    const usage = async (opts: Parameters<typeof synthCommand>[1], message: string): Promise<void> => {
      await assert.rejects(synthCommand('examples/quickstart/quickstart.wnd', opts, io), (e: unknown) => e instanceof UsageError && e.message === message && e.exitCode === 2);
    };
    await usage({ rows: '10', out: dir, format: 'xls' }, '--format takes `csv` or `parquet` or `shards`, not "xls"');
    await usage({ rows: '10', out: dir, validFraction: '0.1' }, '--valid-fraction applies to --format shards only');
    await usage({ rows: '0', out: dir }, '--rows takes a whole number of at least 1, not "0"');
    await usage({ rows: '1e3', out: dir }, '--rows takes a whole number of at least 1, not "1e3"');
    await usage({ rows: '10', out: dir, seed: '-1' }, '--seed takes a whole number, not "-1"');
    await usage({ out: dir }, '--rows is required: how many rows to synthesize');
    await usage({ rows: '10' }, '--out is required: the folder to write the rows to');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

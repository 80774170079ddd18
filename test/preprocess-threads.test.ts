// Preprocessing on worker threads gives the same bytes as on one thread: shards, manifest,
// counters and bad-row messages, with bad rows skipped under --max-bad-rows and the run stopped
// past it; and the typed fast path of the DuckDB sources gives the records converting every
// field's text gives, on synthetic edge cases and on the small real datasets.

import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { DuckDBInstance } from '@duckdb/node-api';
import { encodeToFolder } from '../cli/preprocess.js';
import { compileSource } from '../compiler/compile.js';
import type { ModelIR } from '../compiler/ir.js';
import type { RawRecord } from '../runtime/data/contracts.js';
import { TooManyBadRowsError } from '../runtime/data/preprocess.js';
import { plainNumber } from '../runtime/data/sources/block.js';
import { openRawSource, type SourceOptions } from '../runtime/data/sources/open.js';
import { synthSource, writeCsv, writeParquet } from '../runtime/data/synth.js';
import { REPO, SHARED_DATA } from './support/paths.js';

function compileFile(path: string): ModelIR {
  const { ir, diagnostics } = compileSource(readFileSync(path, 'utf8'), path, 'wnd', { baseDir: join(path, '..') });
  assert.ok(ir, diagnostics.map((d) => d.message).join('\n'));
  return ir;
}

const OUTBRAIN = compileFile(join(REPO, 'examples/outbrain/outbrain.wnd'));

function tempDir(): string {
  return mkdtempSync(join(tmpdir(), 'wndc-threads-'));
}

/** Every file of a preprocessed folder (train and valid), manifests without their `createdBy`. */
function folderBytes(dir: string): Map<string, string> {
  const files = new Map<string, string>();
  for (const split of ['train', 'valid']) {
    if (!existsSync(join(dir, split))) continue;
    for (const name of readdirSync(join(dir, split)).sort()) {
      const bytes = readFileSync(join(dir, split, name));
      files.set(`${split}/${name}`, name === 'manifest.json' ? JSON.stringify({ ...JSON.parse(bytes.toString('utf8')), createdBy: '' }) : bytes.toString('base64'));
    }
  }
  return files;
}

/** Preprocesses `data` with `threads` threads in blocks of 100 rows; the report, or the error's message. */
async function run(data: string, threads: number, options: { maxBadRows?: number; validFraction?: number; format?: 'csv' | 'parquet' } = {}) {
  const out = tempDir();
  const source = await openRawSource(data, OUTBRAIN, { chunkRows: 100, ...(options.format ? { format: options.format } : {}) });
  try {
    const report = await encodeToFolder(
      OUTBRAIN,
      { train: source, maxBadRows: options.maxBadRows ?? 0, threads, ...(options.validFraction ? { validFraction: options.validFraction } : {}) },
      join(out, 'o'),
      700,
    );
    return { report, files: folderBytes(join(out, 'o')), error: null };
  } catch (error) {
    assert.ok(error instanceof Error);
    return { report: null, files: folderBytes(join(out, 'o')), error: `${error.constructor.name}: ${error.message}` };
  } finally {
    await source.close();
  }
}

/** 2,000 synthetic Outbrain rows as CSV, with bad values, wrong field counts and missing values spread through them. */
async function badCsv(): Promise<string> {
  const dir = tempDir();
  const path = join(dir, 'rows.csv');
  await writeCsv(synthSource(OUTBRAIN, { rows: 2000, seed: 3 }), OUTBRAIN.columns, path);
  const lines = readFileSync(path, 'utf8').split('\n');
  const damage = (line: number, column: string, value: string) => {
    const fields = lines[line]!.split(',');
    fields[OUTBRAIN.columns.findIndex((c) => c.name === column)] = value;
    lines[line] = fields.join(',');
  };
  damage(150, 'ad_id', 'abc'); // a bad int
  damage(420, 'doc_id', ''); // a missing value without default: found when encoding
  lines[777] = lines[777]!.split(',').slice(0, 10).join(','); // too few fields
  damage(1203, 'doc_ad_topic_id', '1|x'); // a bad list element
  damage(1204, 'pop_ad_id', 'NaN');
  damage(1890, 'event_hour', '2.0'); // an int written otherwise: good
  damage(1891, 'pop_ad_id', ' 0.5'); // blanks: bad
  writeFileSync(path, lines.join('\n'));
  return path;
}

test('threaded preprocessing writes the same shards and manifest as one thread', async () => {
  const dir = tempDir();
  const csv = join(dir, 'rows.csv');
  await writeCsv(synthSource(OUTBRAIN, { rows: 2500, seed: 9 }), OUTBRAIN.columns, csv);
  const one = await run(csv, 1, { validFraction: 0.2 });
  const two = await run(csv, 2, { validFraction: 0.2 });
  const three = await run(csv, 3, { validFraction: 0.2 });
  assert.equal(one.error, null);
  assert.equal(one.report!.trainRows + one.report!.validRows, 2500);
  assert.ok(one.report!.validRows > 0);
  assert.ok([...one.files.keys()].filter((f) => f.startsWith('train/part-')).length >= 3, 'several shards');
  assert.deepEqual(two.files, one.files);
  assert.deepEqual(three.files, one.files);
  assert.deepEqual(two.report, one.report);
});

test('threaded preprocessing skips, counts and reports the same bad rows as one thread', async () => {
  const csv = await badCsv();
  const one = await run(csv, 1, { maxBadRows: 10 });
  const two = await run(csv, 2, { maxBadRows: 10 });
  assert.equal(one.error, null);
  assert.equal(one.report!.badRows, 6);
  assert.deepEqual(one.report!.badRowSamples, [
    `${csv}:150 column \`ad_id\`: expected an int, found \`abc\``,
    `${csv}:420 column \`doc_id\`: missing value, and the column has no default`,
    `${csv}:777: expected 56 fields, found 10`,
    `${csv}:1203 column \`doc_ad_topic_id\`: expected a list of int, found element \`x\``,
    `${csv}:1204 column \`pop_ad_id\`: expected a finite float, found \`NaN\``,
  ]);
  assert.equal(one.report!.trainRows, 1994);
  assert.deepEqual(two.report, one.report);
  assert.deepEqual(two.files, one.files);
});

test('past --max-bad-rows, or without it, threads stop at the same bad row as one thread', async () => {
  const csv = await badCsv();
  const expected = `TooManyBadRowsError: ${csv}:777: expected 56 fields, found 10\nmore than 2 bad rows (--max-bad-rows 2); fix the data or raise the limit`;
  for (const threads of [1, 2]) {
    const over = await run(csv, threads, { maxBadRows: 2 });
    assert.equal(over.error, expected, `threads ${threads}`);
    assert.deepEqual([...over.files.keys()], [], 'nothing written half-way');
    const none = await run(csv, threads);
    assert.equal(none.error, `DataError: ${csv}:150 column \`ad_id\`: expected an int, found \`abc\``);
  }
  assert.equal(TooManyBadRowsError.name, 'TooManyBadRowsError');
});

test('threaded preprocessing of Parquet and of a record source matches one thread', async () => {
  const dir = tempDir();
  const parquet = join(dir, 'rows.parquet');
  await writeParquet(synthSource(OUTBRAIN, { rows: 1500, seed: 4 }), OUTBRAIN.columns, parquet);
  const one = await run(parquet, 1);
  const two = await run(parquet, 2);
  assert.equal(one.error, null);
  assert.deepEqual(two.files, one.files);
  // synth yields records (no column blocks): they are encoded on the workers as they are.
  const encode = async (threads: number) => {
    const out = join(tempDir(), 'o');
    await encodeToFolder(OUTBRAIN, { train: synthSource(OUTBRAIN, { rows: 20000, seed: 4 }), validFraction: 0.1, maxBadRows: 0, threads }, out, 5000);
    return folderBytes(out);
  };
  assert.deepEqual(await encode(2), await encode(1));
});

/** Every record of `input`, read with the typed fast path or converting all text. */
async function records(input: string, ir: ModelIR, options: SourceOptions): Promise<RawRecord[]> {
  const source = await openRawSource(input, ir, options);
  const rows: RawRecord[] = [];
  const bad: string[] = [];
  try {
    for await (const chunk of source.chunks((e) => bad.push(e.message))) rows.push(...chunk.rows);
  } finally {
    await source.close();
  }
  return [...rows, { bad: bad.join('\n') }];
}

async function assertSameTyped(input: string, ir: ModelIR, options: SourceOptions = {}): Promise<number> {
  const typed = await records(input, ir, { ...options, typed: true });
  const text = await records(input, ir, { ...options, typed: false });
  assert.equal(typed.length, text.length);
  for (let i = 0; i < typed.length; i++) assert.deepStrictEqual(typed[i], text[i], `row ${i + 1} of ${input}`);
  return typed.length - 1;
}

const LISTS = compileSource(
  `model lists
input {
  clicked: int @label
  n: int = 0
  x: float = 0
  ids: list<int> = []
  xs: list<float> = []
}
features {
  n_id = identity(n, buckets: 5)
  ids = multi_hot(ids, max_len: 3, by: hash, buckets: 50)
}
wide {
  features: [n_id, ids]
  optimizer: ftrl(learning_rate: 0.1)
}
`,
  'lists.wnd',
  'wnd',
).ir!;

test('the typed fast path reads edge-case numbers exactly as converting their text', async () => {
  const forms = ['0', '-0', '+4', '007', '2.0', '1e3', '1.5', '-.5', '5.', '.', '1e', '1e-400', '1e999', '123456789012345', '1234567890123456', '9007199254740993', '0.1', '3.14159265358979323846', ' 1', '1 ', '1_0', '+-1', '0x10', 'NaN', 'inf', '1.5E+3', '4.9e-324', '2.2250738585072011e-308', '1e22', '1e23', '123456789012345e-22', 'abc'];
  const lists = ['1|2', '1||2', '1|', '|1', '[1, 2]', '1.5|2e3', '1| 2', 'x|1', '', '-0|+3'];
  const dir = tempDir();
  const path = join(dir, 'forms.csv');
  // One unusual field a row, so that every field is looked at.
  const body = [...forms.map((f) => `1,"${f}",0,,`), ...forms.map((f) => `1,0,"${f}",,`), ...lists.map((l) => `1,0,0,"${l}",`), ...lists.map((l) => `1,0,0,,"${l}"`)].join('\n');
  writeFileSync(path, `clicked,n,x,ids,xs\n${body}\n`);
  assert.ok((await assertSameTyped(path, LISTS)) > 40);
  // Parquet: integers, doubles and lists of them cast by DuckDB, the rest converted as before.
  const parquet = join(dir, 'forms.parquet');
  const instance = await DuckDBInstance.create(':memory:');
  const connection = await instance.connect();
  await connection.run(`COPY (SELECT * FROM (VALUES
      (1::BIGINT, 9007199254740993::BIGINT, 0.5::DOUBLE, [1, 2]::BIGINT[], [0.5, NULL]::DOUBLE[]),
      (0::BIGINT, -0::BIGINT, 'nan'::DOUBLE, [9007199254740993]::BIGINT[], []::DOUBLE[]),
      (1::BIGINT, 3::BIGINT, 1.5::DOUBLE, NULL, [1e300]::DOUBLE[]),
      (1::BIGINT, NULL, NULL, [3, NULL]::BIGINT[], NULL)
    ) AS t(clicked, n, x, ids, xs)) TO '${parquet}' (FORMAT parquet)`);
  await connection.run(`COPY (SELECT 1 AS clicked, 2.0::DOUBLE AS n, 1::INTEGER AS x, [1.0, 2.0]::DOUBLE[] AS ids, [1, 2]::INTEGER[] AS xs) TO '${join(dir, 'float-ints.parquet')}' (FORMAT parquet)`);
  connection.closeSync();
  instance.closeSync();
  assert.equal(await assertSameTyped(parquet, LISTS), 2); // the first row's n and the second row's x are bad in both
  assert.equal(await assertSameTyped(join(dir, 'float-ints.parquet'), LISTS), 1);
});

test('plain numbers are parsed from bytes as Number() parses their text', () => {
  const bytes = (text: string) => new TextEncoder().encode(text);
  const parse = (text: string, int = false) => plainNumber(bytes(text), 0, text.length, int);
  assert.equal(parse('0.1'), 0.1);
  assert.ok(Object.is(parse('-0'), -0));
  assert.equal(parse('1.5e-3'), 0.0015);
  assert.ok(Number.isNaN(parse('1.5', true)), 'an int with a fraction is left to the converter');
  assert.ok(Number.isNaN(parse('1234567890123456')), 'more than 15 digits are left to the converter');
  assert.ok(Number.isNaN(parse('1e23')), 'a power of ten above 10^22 is left to the converter');
  // Random decimals of up to 15 digits and exponents within the fast path.
  let seed = 7;
  const random = () => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32;
  for (let i = 0; i < 20000; i++) {
    const digits = String(Math.floor(random() * 10 ** (1 + Math.floor(random() * 15))));
    const point = Math.floor(random() * (digits.length + 1));
    const exponent = random() < 0.3 ? `e${Math.floor(random() * 30) - 15}` : '';
    const text = `${random() < 0.5 ? '-' : ''}${digits.slice(0, point)}.${digits.slice(point)}${exponent}`.replace(/^(-?)\.$/, '$10');
    const x = parse(text);
    if (!Number.isNaN(x)) assert.ok(Object.is(x, Number(text)), text);
  }
});

const criteo = join(SHARED_DATA, 'criteo_kaggle_tiny', 'train.tiny.csv');
const ipinyou = join(SHARED_DATA, 'ipinyou_2997', 'train.csv');

test('the typed fast path gives the same records as before on Criteo and iPinYou', { skip: existsSync(criteo) && existsSync(ipinyou) ? false : 'shared data absent' }, async () => {
  assert.equal(await assertSameTyped(criteo, compileFile(join(REPO, 'examples/criteo/criteo.wnd'))), 1999);
  assert.ok((await assertSameTyped(ipinyou, compileFile(join(REPO, 'examples/ipinyou/ipinyou.wnd')))) > 1000);
});

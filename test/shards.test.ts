import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { tableFromIPC } from 'apache-arrow';
import type { EncodedLayoutIR } from '../compiler/ir.js';
import { createEncodedRow } from '../runtime/compiled-model.js';
import type { ShardManifest } from '../runtime/data/contracts.js';
import { openShards, readManifest, ShardError, ShardWriter, shardSchemaOf, type ShardSchema } from '../runtime/data/shards.js';
import { canonicalJson, specHash } from '../runtime/data/spec-hash.js';
import { outbrainIr, writeRandomShards } from './support/random-shards.js';

function tempDir(): string {
  return mkdtempSync(join(tmpdir(), 'wndc-shards-'));
}

// One one-hot slot, one multi-hot slot of 2 with a length and weights; two numerics.
const layout: EncodedLayoutIR = {
  ids: [
    { feature: 'user', offset: 0, width: 1, lengthSlot: null, weightOffset: null },
    { feature: 'tags', offset: 1, width: 2, lengthSlot: 0, weightOffset: 0 },
  ],
  idsWidth: 3,
  lengthsWidth: 1,
  weightsWidth: 2,
  numeric: [
    { feature: 'price', offset: 0 },
    { feature: 'age', offset: 1 },
  ],
  numericWidth: 2,
};
const schema: ShardSchema = { model: 'tiny', specHash: 'a'.repeat(64), layout, hasGroup: true, hasWeight: true };

/** Row i: ids [i, 100+i, i%2===0 ? 200+i : 0], length 1 + (i%2===0), values exact in float32. */
function writeTiny(dir: string, rows: number, rowsPerShard: number, finish = true): ShardManifest | undefined {
  const writer = new ShardWriter(dir, schema, { rowsPerShard, split: 'valid', createdBy: 'test' });
  const row = createEncodedRow(layout);
  for (let i = 0; i < rows; i++) {
    const two = i % 2 === 0;
    row.ids.set([i, 100 + i, two ? 200 + i : 0]);
    row.lengths[0] = two ? 2 : 1;
    row.weights.set([0.5 + i, two ? 0.25 : 0]);
    row.numeric.set([i / 4, -i]);
    row.label = i % 3 === 0 ? 1 : 0;
    row.group = 1000 + Math.floor(i / 2);
    row.weight = 1 + i / 8;
    writer.append(row);
  }
  return finish ? writer.finish({ stats: { price: { mean: 1.5 } }, counters: { user: { oov: 2 } } }) : undefined;
}

test('rows written come back exactly, with lengths, weights, group and weight, across shards', () => {
  const dir = tempDir();
  const manifest = writeTiny(dir, 7, 3);
  assert.deepEqual(
    manifest?.shards.map((s) => [s.file, s.rows]),
    [
      ['part-00000.arrow', 3],
      ['part-00001.arrow', 3],
      ['part-00002.arrow', 1],
    ],
  );
  const set = openShards(dir, { specHash: schema.specHash });
  assert.equal(set.rows, 7);
  assert.equal(set.hasGroup, true);
  assert.equal(set.hasWeight, true);
  const ids: number[] = [];
  const lengths: number[] = [];
  const weights: number[] = [];
  const numeric: number[] = [];
  const label: number[] = [];
  const group: number[] = [];
  const weight: number[] = [];
  for (let s = 0; s < set.shardCount; s++) {
    const shard = set.load(s);
    ids.push(...shard.ids);
    lengths.push(...shard.lengths);
    weights.push(...shard.weights);
    numeric.push(...shard.numeric);
    label.push(...shard.label);
    group.push(...(shard.group ?? []));
    weight.push(...(shard.weight ?? []));
  }
  assert.deepEqual(ids, [0, 100, 200, 1, 101, 0, 2, 102, 202, 3, 103, 0, 4, 104, 204, 5, 105, 0, 6, 106, 206]);
  assert.deepEqual(lengths, [2, 1, 2, 1, 2, 1, 2]);
  assert.deepEqual(weights, [0.5, 0.25, 1.5, 0, 2.5, 0.25, 3.5, 0, 4.5, 0.25, 5.5, 0, 6.5, 0.25]);
  assert.deepEqual(numeric, [0, -0, 0.25, -1, 0.5, -2, 0.75, -3, 1, -4, 1.25, -5, 1.5, -6]);
  assert.deepEqual(label, [1, 0, 0, 1, 0, 0, 1]);
  assert.deepEqual(group, [1000, 1000, 1001, 1001, 1002, 1002, 1003]);
  assert.deepEqual(weight, [1, 1.125, 1.25, 1.375, 1.5, 1.625, 1.75]);
  const onDisk = readManifest(dir);
  assert.equal(onDisk.split, 'valid');
  assert.equal(onDisk.groupsContiguous, true);
  assert.deepEqual(onDisk.stats, { price: { mean: 1.5 } });
  assert.deepEqual(onDisk.counters, { user: { oov: 2 } });
  assert.equal(onDisk.createdBy, 'test');
  rmSync(dir, { recursive: true });
});

test('the shard schema is the documented one, and the manifest gives every column buffer offset', () => {
  const dir = tempDir();
  const ir = outbrainIr();
  writeRandomShards(dir, ir, { rows: 30, rowsPerShard: 16 });
  const manifest = readManifest(dir);
  const table = tableFromIPC(readFileSync(join(dir, 'part-00000.arrow')));
  assert.deepEqual(
    table.schema.fields.map((f) => `${f.name}: ${String(f.type)}${f.nullable ? '?' : ''}`),
    ['ids: FixedSizeList[40]<Int32>', 'lengths: FixedSizeList[6]<Int32>', 'numeric: FixedSizeList[32]<Float32>', 'label: Float32', 'group: Float64'],
  );
  assert.deepEqual(Object.fromEntries(table.schema.metadata), { 'wndc.model': 'outbrain', 'wndc.spec_hash': specHash(ir), 'wndc.format_version': '1' });
  assert.equal(manifest.specHash, specHash(ir));
  // A reader that maps the file finds each column's values at the offset the manifest gives.
  const shard = openShards(dir).load(1);
  const bytes = readFileSync(join(dir, 'part-00001.arrow'));
  const buffers = manifest.shards[1]?.buffers ?? {};
  assert.deepEqual(Object.keys(buffers), ['ids', 'lengths', 'numeric', 'label', 'group']);
  const at = (name: string): { offset: number; bytes: number } => buffers[name] ?? { offset: -1, bytes: -1 };
  assert.equal(at('ids').bytes, 14 * 40 * 4);
  for (const name of ['ids', 'lengths', 'numeric', 'label', 'group'] as const) assert.equal(at(name).offset % 8, 0, `${name} is 8-byte aligned`);
  const ids = new Int32Array(bytes.buffer.slice(bytes.byteOffset + at('ids').offset, bytes.byteOffset + at('ids').offset + at('ids').bytes));
  assert.deepEqual([...ids], [...shard.ids]);
  const group = new Float64Array(bytes.buffer.slice(bytes.byteOffset + at('group').offset, bytes.byteOffset + at('group').offset + at('group').bytes));
  assert.deepEqual([...group], [...(shard.group ?? [])]);
  rmSync(dir, { recursive: true });
});

test('loaded columns view the file bytes: no copy', () => {
  const dir = tempDir();
  writeTiny(dir, 5, 8);
  const shard = openShards(dir).load(0);
  assert.equal(shard.ids.buffer, shard.label.buffer);
  assert.equal(shard.ids.buffer, shard.group?.buffer);
  rmSync(dir, { recursive: true });
});

test('a writer that never finished leaves no manifest and readers refuse the folder', () => {
  const dir = tempDir();
  writeTiny(dir, 7, 3, false);
  assert.deepEqual(readdirSync(dir).sort(), ['part-00000.arrow', 'part-00001.arrow']);
  assert.throws(() => openShards(dir), {
    name: 'Error',
    message: `${dir}: incomplete shard folder: it has shards but no manifest.json, so the writer did not finish; run preprocess again`,
  });
  // A crash in the middle of a shard leaves only its hidden temporary.
  const crashed = tempDir();
  writeFileSync(join(crashed, '.part-00000.arrow.tmp'), 'half');
  assert.throws(() => openShards(crashed), ShardError);
  assert.throws(() => openShards(crashed), /incomplete shard folder/);
  rmSync(dir, { recursive: true });
  rmSync(crashed, { recursive: true });
});

test('finished shards leave no temporaries, and rewriting a folder first removes its manifest', () => {
  const dir = tempDir();
  writeTiny(dir, 7, 3);
  assert.deepEqual(readdirSync(dir).sort(), ['manifest.json', 'part-00000.arrow', 'part-00001.arrow', 'part-00002.arrow']);
  writeFileSync(join(dir, 'notes.txt'), 'mine');
  const writer = new ShardWriter(dir, schema, { rowsPerShard: 3 });
  assert.deepEqual(readdirSync(dir).sort(), ['notes.txt']);
  assert.throws(() => openShards(dir), /not a shard folder: no manifest\.json/);
  writer.append(createEncodedRow(layout));
  assert.equal(writer.finish().rows, 1);
  assert.deepEqual(readdirSync(dir).sort(), ['manifest.json', 'notes.txt', 'part-00000.arrow']);
  rmSync(dir, { recursive: true });
});

test('shards of another spec are refused with the model and both hashes', () => {
  const dir = tempDir();
  writeTiny(dir, 2, 3);
  const other = 'b'.repeat(64);
  assert.throws(() => openShards(dir, { specHash: other }), {
    message: `${dir}: these shards were encoded for another spec of model \`tiny\` (spec hash ${'a'.repeat(64)}, this spec has ${other}); run preprocess again with this spec`,
  });
  rmSync(dir, { recursive: true });
});

test('folders that are not shard folders are refused clearly', () => {
  const dir = tempDir();
  assert.throws(() => openShards(join(dir, 'nope')), { message: `${join(dir, 'nope')}: no such folder` });
  assert.throws(() => openShards(dir), { message: `${dir}: not a shard folder: no manifest.json` });
  writeFileSync(join(dir, 'manifest.json'), '{"format":"other"}');
  assert.throws(() => openShards(dir), { message: `${join(dir, 'manifest.json')}: not a wndc shard manifest (\`format\` is not "wndc-shards")` });
  rmSync(dir, { recursive: true });
});

test('a shard whose widths differ from the manifest layout is refused when loaded', () => {
  const dir = tempDir();
  writeTiny(dir, 4, 8);
  const path = join(dir, 'manifest.json');
  const manifest = JSON.parse(readFileSync(path, 'utf8')) as ShardManifest;
  manifest.layout.idsWidth = 4;
  writeFileSync(path, JSON.stringify(manifest));
  assert.throws(() => openShards(dir).load(0), { message: `${join(dir, 'part-00000.arrow')}: column \`ids\` has 3 values per row, the manifest layout says 4` });
  rmSync(dir, { recursive: true });
});

test('groupsContiguous is false when a group comes back after another', () => {
  const dir = tempDir();
  const writer = new ShardWriter(dir, schema, { rowsPerShard: 2 });
  const row = createEncodedRow(layout);
  for (const g of [5, 5, 9, 9, 3, 5]) {
    row.group = g;
    writer.append(row);
  }
  assert.equal(writer.finish().groupsContiguous, false);
  const sorted = new ShardWriter(dir, schema, { rowsPerShard: 2 });
  for (const g of [9, 9, 3, 5, 5, 7]) {
    row.group = g;
    sorted.append(row);
  }
  assert.equal(sorted.finish().groupsContiguous, true);
  rmSync(dir, { recursive: true });
});

test('the spec hash is sha256 of the canonical JSON of the encoding: keys sorted at every level, no spaces', () => {
  assert.equal(canonicalJson({ b: 1, a: [1, 'x', null, { d: true, c: 0.5 }], e: undefined }), '{"a":[1,"x",null,{"c":0.5,"d":true}],"b":1}');
  const ir = outbrainIr();
  const reordered = Object.fromEntries(Object.entries(ir).reverse()) as typeof ir;
  assert.equal(specHash(reordered), specHash(ir));
  const encoding = { irVersion: ir.irVersion, columns: ir.columns, roles: ir.roles, features: ir.features, layout: ir.layout };
  assert.equal(specHash(ir), createHash('sha256').update(canonicalJson(encoding)).digest('hex'));
  assert.match(specHash(ir), /^[0-9a-f]{64}$/);
  // What changes the encoded values changes the hash; training settings and the tower do not.
  assert.notEqual(specHash({ ...ir, roles: { ...ir.roles, group: null } }), specHash(ir));
  assert.equal(specHash({ ...ir, model: 'renamed', train: { ...ir.train, epochs: 1 } }), specHash(ir));
  assert.equal(shardSchemaOf(ir).specHash, specHash(ir));
});

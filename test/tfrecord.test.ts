import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { compileSource } from '../compiler/compile.js';
import type { ModelIR } from '../compiler/ir.js';
import { DataError, type RawChunk, type RawRecord } from '../runtime/data/contracts.js';
import { crc32c, maskCrc } from '../runtime/data/sources/crc32c.js';
import { openRawSource } from '../runtime/data/sources/open.js';
import { decodeExample, encodeExample, type FeatureValues } from '../runtime/data/sources/protobuf.js';
import { frameTfRecord, writeTfRecordFile } from '../runtime/data/sources/tfrecord.js';
import { REPO } from './support/paths.js';

const SPEC = join(REPO, 'test/fixtures/data/prebatched.wnd');
const IR: ModelIR = (() => {
  const { ir, diagnostics } = compileSource(readFileSync(SPEC, 'utf8'), SPEC, 'wnd', { baseDir: join(SPEC, '..') });
  assert.ok(ir, diagnostics.map((d) => d.message).join('\n'));
  return ir;
})();

const ascii = (text: string) => new TextEncoder().encode(text);

test('crc32c matches the published check values', () => {
  assert.equal(crc32c(ascii('123456789')), 0xe3069283); // the CRC catalogue's check value
  assert.equal(crc32c(new Uint8Array(32)), 0x8a9136aa); // RFC 3720 B.4: 32 bytes of zeros
  assert.equal(crc32c(new Uint8Array(32).fill(0xff)), 0x62a8ab43); // RFC 3720 B.4: 32 bytes of 0xff
  assert.equal(crc32c(Uint8Array.from({ length: 32 }, (_, i) => i)), 0x46dd794e); // RFC 3720 B.4: 0..31
  assert.equal(maskCrc(0), 0xa282ead8);
  assert.equal(maskCrc(0x12345678), ((((0x12345678 >>> 15) | (0x12345678 << 17)) >>> 0) + 0xa282ead8) >>> 0);
});

test('a TFRecord frame is length, masked length CRC, data, masked data CRC', () => {
  const framed = frameTfRecord(ascii('abc'));
  const view = new DataView(framed.buffer, framed.byteOffset, framed.byteLength);
  assert.equal(framed.length, 8 + 4 + 3 + 4);
  assert.equal(view.getUint32(0, true), 3);
  assert.equal(view.getUint32(4, true), 0);
  assert.equal(view.getUint32(8, true), maskCrc(crc32c(framed.subarray(0, 8))));
  assert.deepEqual([...framed.subarray(12, 15)], [97, 98, 99]);
  assert.equal(view.getUint32(15, true), maskCrc(crc32c(ascii('abc'))));
});

test('protobuf: a hand-encoded Example decodes, packed and unpacked', () => {
  // Example{features{feature{key:"a" value{int64_list{value:[1,-1,300]}}}}}, packed, written
  // byte by byte from the wire format: -1 is ten bytes of two's complement.
  const int64List = [0x0a, 13, 0x01, ...[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01], 0xac, 0x02];
  const feature = [0x1a, int64List.length, ...int64List];
  const entry = [0x0a, 1, 0x61, 0x12, feature.length, ...feature];
  const features = [0x0a, entry.length, ...entry];
  const example = Uint8Array.from([0x0a, features.length, ...features]);
  const decoded = decodeExample(example);
  assert.deepEqual([...decoded.keys()], ['a']);
  assert.equal(decoded.get('a')!.kind, 'int64');
  assert.deepEqual([...decoded.get('a')!.values], [1, -1, 300]);
  // The same list unpacked (one varint field each), and a float list unpacked (fixed32 fields).
  const loose = [0x08, 0x01, 0x08, 0xac, 0x02];
  const floats = [0x0d, 0x00, 0x00, 0x00, 0x3f, 0x0d, 0x00, 0x00, 0x80, 0x3e]; // 0.5, 0.25
  const entryOf = (key: number, kind: number, list: number[]) => {
    const f = [(kind << 3) | 2, list.length, ...list];
    const e = [0x0a, 1, key, 0x12, f.length, ...f];
    return [0x0a, e.length, ...e];
  };
  const body = [...entryOf(0x62, 3, loose), ...entryOf(0x63, 2, floats)];
  const decodedLoose = decodeExample(Uint8Array.from([0x0a, body.length, ...body]));
  assert.deepEqual([...decodedLoose.get('b')!.values], [1, 300]);
  assert.equal(decodedLoose.get('c')!.kind, 'float');
  assert.deepEqual([...decodedLoose.get('c')!.values], [0.5, 0.25]);
});

test('protobuf: encode then decode gives the features back', () => {
  const bytes = encodeExample([
    ['ids', { kind: 'int64', values: Float64Array.from([0, 127, 128, 2 ** 40, -5]) }],
    ['x', { kind: 'float', values: Float32Array.from([1.5, -2]) }],
    ['s', { kind: 'bytes', values: [ascii('hé'), new Uint8Array(0)] }],
  ]);
  const decoded = decodeExample(bytes);
  assert.deepEqual([...decoded.get('ids')!.values], [0, 127, 128, 2 ** 40, -5]);
  assert.deepEqual([...decoded.get('x')!.values], [1.5, -2]);
  const strings = decoded.get('s')!;
  assert.equal(strings.kind, 'bytes');
  assert.deepEqual(
    strings.kind === 'bytes' ? strings.values.map((v) => new TextDecoder().decode(v)) : [],
    ['hé', ''],
  );
});

/** Ten rows of the prebatched spec: lists of 0 to 3 ids, floats exact in float32. */
function sampleRows(): RawRecord[] {
  return Array.from({ length: 10 }, (_, i) => ({
    display_id: 100 + Math.floor(i / 3),
    clicked: i % 3 === 0 ? 1 : 0,
    ad_id: 5000 + i,
    doc_event_topic_id: Array.from({ length: i % 4 }, (_, k) => i * 10 + k),
    pop_ad_id: i / 8,
    platform: i % 2 === 0 ? 'mobile' : 'desktop',
  }));
}

async function readChunks(path: string, onBadRow?: (error: DataError) => void): Promise<RawChunk[]> {
  const source = await openRawSource(path, IR);
  const chunks: RawChunk[] = [];
  for await (const chunk of source.chunks(onBadRow)) chunks.push(chunk);
  await source.close();
  return chunks;
}

async function errorOf(path: string): Promise<string> {
  try {
    await readChunks(path);
  } catch (error) {
    assert.ok(error instanceof DataError, String(error));
    return error.message;
  }
  assert.fail('expected a DataError');
}

test('round trip: rows written in the prebatched layout read back identically', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'wndc-tfrecord-'));
  const path = join(dir, 'part-0.tfrecord');
  const rows = sampleRows();
  const written = await writeTfRecordFile(path, rows, IR, 4);
  assert.deepEqual({ rows: written.rows, records: written.records }, { rows: 10, records: 3 });
  assert.equal(existsSync(`${path}.tmp-${process.pid}`), false);
  const chunks = await readChunks(path);
  assert.deepEqual(chunks, [{ file: path, firstRow: 1, rows }]);
});

test('the reference layout: scalars one value a row, multi-hot rows x max_len padded with -1', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'wndc-tfrecord-'));
  const path = join(dir, 'one.tfrecord');
  await writeTfRecordFile(path, sampleRows().slice(0, 4), IR, 4096);
  const bytes = readFileSync(path);
  const length = bytes.readUInt32LE(0);
  assert.equal(bytes.length, 12 + length + 4);
  const example = decodeExample(bytes.subarray(12, 12 + length));
  assert.deepEqual([...example.keys()], ['display_id', 'clicked', 'ad_id', 'doc_event_topic_id', 'pop_ad_id', 'platform']);
  assert.deepEqual([...example.get('clicked')!.values], [1, 0, 0, 1]);
  assert.deepEqual([...example.get('doc_event_topic_id')!.values], [-1, -1, -1, 10, -1, -1, 20, 21, -1, 30, 31, 32]);
  assert.equal(example.get('pop_ad_id')!.kind, 'float');
  assert.equal(example.get('platform')!.kind, 'bytes');
});

test('corrupt records are reported with the file, the record and its first row', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'wndc-tfrecord-'));
  const path = join(dir, 'bad.tfrecord');
  await writeTfRecordFile(path, sampleRows(), IR, 4);
  const good = readFileSync(path);
  const first = 12 + good.readUInt32LE(0) + 4;
  const data = Buffer.from(good);
  data[first + 12 + 5]! ^= 0x01; // a bit of record 1's data
  writeFileSync(path, data);
  assert.equal(await errorOf(path), `${path}:5: corrupt TFRecord record 1 (byte ${first}): the data checksum does not match (the record is corrupt)`);
  const length = Buffer.from(good);
  length[first + 1]! ^= 0x01; // record 1's length
  writeFileSync(path, length);
  assert.equal(await errorOf(path), `${path}:5: corrupt TFRecord record 1 (byte ${first}): the length checksum does not match (corrupt or not a TFRecord file)`);
  writeFileSync(path, good.subarray(0, good.length - 3));
  assert.match(await errorOf(path), new RegExp(`^${path.replace(/[.]/g, '\\.')}:9: corrupt TFRecord record 2 \\(byte \\d+\\): the file ends inside the record \\(\\d+ data bytes expected\\)$`));
});

test('a feature of the wrong length or a missing column is a DataError', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'wndc-tfrecord-'));
  const write = (name: string, features: Parameters<typeof encodeExample>[0]) => {
    const path = join(dir, name);
    writeFileSync(path, frameTfRecord(encodeExample(features)));
    return path;
  };
  const ints = (...values: number[]): FeatureValues => ({ kind: 'int64', values: Float64Array.from(values) });
  const full = (overrides: Record<string, FeatureValues>): [string, FeatureValues][] =>
    Object.entries<FeatureValues>({
      display_id: ints(1, 1),
      clicked: ints(1, 0),
      ad_id: ints(7, 8),
      doc_event_topic_id: ints(1, 2, 3, 4, 5, 6),
      pop_ad_id: { kind: 'float', values: Float32Array.from([0.5, 0.25]) },
      platform: { kind: 'bytes', values: [ascii('a'), ascii('b')] },
      ...overrides,
    });
  const short = write('short.tfrecord', full({ ad_id: ints(7) }));
  assert.equal(await errorOf(short), `${short}:1 column \`ad_id\`: expected 2 values in record 0 (it holds 2 rows, the length of \`clicked\`), found 1`);
  const ragged = write('ragged.tfrecord', full({ doc_event_topic_id: ints(1, 2, 3) }));
  assert.equal(await errorOf(ragged), `${ragged}:1 column \`doc_event_topic_id\`: expected a multiple of 2 values in record 0 (it holds 2 rows, the length of \`clicked\`), found 3`);
  const nan = write('nan.tfrecord', full({ pop_ad_id: { kind: 'float', values: Float32Array.from([0.5, Number.NaN]) } }));
  assert.equal(await errorOf(nan), `${nan}:2 column \`pop_ad_id\`: expected a finite float, found \`NaN\``);
  const missing = write('missing.tfrecord', full({}).filter(([name]) => name !== 'clicked').concat([['label', ints(1, 0)]]));
  assert.equal(
    await errorOf(missing),
    `${missing} column \`clicked\`: missing from the file, whose columns are \`display_id\`, \`ad_id\`, \`doc_event_topic_id\`, \`pop_ad_id\`, \`platform\`, \`label\``,
  );
  const skipped: string[] = [];
  const chunks = await readChunks(nan, (error) => skipped.push(error.message));
  assert.deepEqual(skipped, [`${nan}:2 column \`pop_ad_id\`: expected a finite float, found \`NaN\``]);
  assert.deepEqual(
    chunks.map((c) => [c.firstRow, c.rows.length]),
    [[1, 1]],
  );
});

// TFRecord files in the reference recipe's prebatched layout: each record is one
// `tf.train.Example` holding a block of rows (4096 in the recipe). A scalar column is a list with
// one value per row; a list column (multi-hot) is rows x k values flattened row by row, k fixed
// per column, short lists padded with -1 (int), NaN (float) or empty bytes (string). The number
// of rows of a record is the length of the label column's list.
//
// Framing of each record: uint64 length, uint32 masked CRC-32C of those 8 bytes, the data,
// uint32 masked CRC-32C of the data (all little-endian). Both checksums are verified.

import { open, rename, unlink, type FileHandle } from 'node:fs/promises';
import type { ColumnIR, ModelIR } from '../../../compiler/ir.js';
import { DataError, type RawChunk, type RawRecord, type RawSource, type RawValue } from '../contracts.js';
import { ChunkBuilder, DEFAULT_CHUNK_ROWS } from './chunks.js';
import { missingColumnError } from './columns.js';
import { BAD, Converter } from './convert.js';
import { crc32c, maskCrc } from './crc32c.js';
import type { SourceOptions } from './options.js';
import { decodeUtf8 } from './utf8.js';
import { decodeExample, encodeExample, ProtobufError, type FeatureValues } from './protobuf.js';

export const REFERENCE_ROWS_PER_EXAMPLE = 4096;
/** Padding of short multi-hot lists, dropped on reading. */
export const INT_LIST_PADDING = -1;

/** One record of a TFRecord file, its checksums verified. */
export interface TfRecord {
  /** 0-based index of the record in the file. */
  index: number;
  /** Byte offset of the record's framing in the file. */
  offset: number;
  data: Uint8Array;
}

/** Why a record's framing is bad; the source reports it with the file and the first row it would hold. */
export class TfRecordCorruption extends Error {
  constructor(
    readonly record: number,
    readonly offset: number,
    readonly problem: string,
  ) {
    super(`record ${record} (byte ${offset}): ${problem}`);
  }
}

/** The records of an open file, read through a buffer of bounded size (one record plus 1 MiB). */
export async function* readTfRecords(handle: FileHandle): AsyncGenerator<TfRecord> {
  let buffer = Buffer.allocUnsafe(1 << 20);
  let start = 0; // first unread byte in `buffer`
  let end = 0; // end of the bytes read into `buffer`
  let fileOffset = 0; // file offset of buffer[start]
  let eof = false;
  /** Makes `n` bytes available from `start`; false at a clean end of file. */
  const fill = async (n: number): Promise<boolean> => {
    if (end - start >= n) return true;
    if (start > 0) {
      buffer.copy(buffer, 0, start, end);
      end -= start;
      start = 0;
    }
    if (n > buffer.length) {
      const grown = Buffer.allocUnsafe(Math.max(n, buffer.length * 2));
      buffer.copy(grown, 0, 0, end);
      buffer = grown;
    }
    while (end < n && !eof) {
      const { bytesRead } = await handle.read(buffer, end, buffer.length - end, null);
      if (bytesRead === 0) eof = true;
      end += bytesRead;
    }
    return end >= n;
  };
  for (let index = 0; ; index++) {
    if (!(await fill(12))) {
      if (end - start === 0) return;
      throw new TfRecordCorruption(index, fileOffset, `the file ends inside the record's length (${end - start} of 12 bytes)`);
    }
    const lengthCrc = maskCrc(crc32c(buffer, start, start + 8));
    if (lengthCrc !== buffer.readUInt32LE(start + 8)) throw new TfRecordCorruption(index, fileOffset, 'the length checksum does not match (corrupt or not a TFRecord file)');
    const length = buffer.readUInt32LE(start) + buffer.readUInt32LE(start + 4) * 4294967296;
    if (length > 2 ** 31) throw new TfRecordCorruption(index, fileOffset, `a record of ${length} bytes is too large`);
    if (!(await fill(12 + length + 4))) throw new TfRecordCorruption(index, fileOffset, `the file ends inside the record (${length} data bytes expected)`);
    const dataStart = start + 12;
    const dataCrc = maskCrc(crc32c(buffer, dataStart, dataStart + length));
    if (dataCrc !== buffer.readUInt32LE(dataStart + length)) throw new TfRecordCorruption(index, fileOffset, 'the data checksum does not match (the record is corrupt)');
    // A copy: the buffer is reused for the next record.
    yield { index, offset: fileOffset, data: Uint8Array.prototype.slice.call(buffer, dataStart, dataStart + length) };
    start += 12 + length + 4;
    fileOffset += 12 + length + 4;
  }
}

/** The framing of one record around `data`. */
export function frameTfRecord(data: Uint8Array): Uint8Array {
  const framed = Buffer.allocUnsafe(12 + data.length + 4);
  framed.writeUInt32LE(data.length >>> 0, 0);
  framed.writeUInt32LE(Math.floor(data.length / 4294967296), 4);
  framed.writeUInt32LE(maskCrc(crc32c(framed, 0, 8)), 8);
  framed.set(data, 12);
  framed.writeUInt32LE(maskCrc(crc32c(data)), 12 + data.length);
  return framed;
}

export class TfRecordSource implements RawSource {
  readonly format = 'tfrecord';
  private readonly converter = new Converter();

  constructor(
    readonly files: readonly string[],
    private readonly ir: ModelIR,
    private readonly options: SourceOptions,
  ) {}

  async *chunks(onBadRow?: (error: DataError) => void): AsyncGenerator<RawChunk> {
    for (const file of this.files) yield* this.fileChunks(file, onBadRow);
  }

  private async *fileChunks(file: string, onBadRow: ((error: DataError) => void) | undefined): AsyncGenerator<RawChunk> {
    const handle = await open(file, 'r');
    const builder = new ChunkBuilder(file, this.options.chunkRows ?? DEFAULT_CHUNK_ROWS);
    const label = this.ir.roles.label;
    const columns = this.ir.columns;
    const converter = this.converter;
    try {
      for await (const record of this.records(handle, file, builder)) {
        const recordRow = builder.rowNumber;
        let features: Map<string, FeatureValues>;
        try {
          features = decodeExample(record.data);
        } catch (error) {
          if (!(error instanceof ProtobufError)) throw error;
          throw new DataError({ file, row: recordRow }, null, `record ${record.index} is not a tf.train.Example: ${error.message}`);
        }
        const missing = columns.filter((c) => !features.has(c.name)).map((c) => c.name);
        if (missing.length > 0) {
          if (record.index === 0) throw missingColumnError(file, missing, [...features.keys()]);
          throw new DataError({ file, row: recordRow }, missing[0]!, `missing from record ${record.index}`);
        }
        const rows = features.get(label)!.values.length;
        const views = columns.map((column) => this.columnView(file, recordRow, record.index, column, features.get(column.name)!, rows, label));
        rowLoop: for (let r = 0; r < rows; r++) {
          const out: RawRecord = {};
          for (let j = 0; j < columns.length; j++) {
            const column = columns[j]!;
            const view = views[j]!;
            const value = column.list ? converter.value(listAt(view, r), column) : converter.value(scalarAt(view.values, r), column);
            if (value === BAD) {
              const full = builder.skip(new DataError({ file, row: builder.rowNumber }, column.name, converter.problem), onBadRow);
              if (full !== null) yield full;
              continue rowLoop;
            }
            out[column.name] = value;
          }
          const full = builder.add(out);
          if (full !== null) yield full;
        }
      }
    } finally {
      await handle.close();
    }
    const rest = builder.finish();
    if (rest !== null) yield rest;
  }

  private async *records(handle: FileHandle, file: string, builder: ChunkBuilder): AsyncGenerator<TfRecord> {
    try {
      yield* readTfRecords(handle);
    } catch (error) {
      if (!(error instanceof TfRecordCorruption)) throw error;
      throw new DataError({ file, row: builder.rowNumber }, null, `corrupt TFRecord ${error.message}`);
    }
  }

  /** A column of a record checked against the record's row count: `width` values per row. */
  private columnView(file: string, row: number, record: number, column: ColumnIR, feature: FeatureValues, rows: number, label: string): ColumnView {
    const length = feature.values.length;
    const width = rows === 0 ? 1 : length / rows;
    const fail = (expected: string) =>
      new DataError({ file, row }, column.name, `expected ${expected} in record ${record} (it holds ${rows} rows, the length of \`${label}\`), found ${length}`);
    if (column.list ? !Number.isInteger(width) : length !== rows) throw fail(column.list ? `a multiple of ${rows} values` : `${rows} values`);
    return { values: feature.kind === 'bytes' ? feature.values.map((b) => decodeUtf8(b)) : feature.values, width, kind: feature.kind };
  }

  async close(): Promise<void> {}
}

interface ColumnView {
  values: ArrayLike<number | string>;
  width: number;
  kind: FeatureValues['kind'];
}

function scalarAt(values: ArrayLike<number | string>, row: number): number | string {
  return values[row]!;
}

/** Row `row`'s list, padding dropped. */
function listAt(view: ColumnView, row: number): (number | string)[] {
  const out: (number | string)[] = [];
  for (let i = row * view.width, end = i + view.width; i < end; i++) {
    const value = view.values[i]!;
    if (isPadding(value, view.kind)) continue;
    out.push(value);
  }
  return out;
}

function isPadding(value: number | string, kind: FeatureValues['kind']): boolean {
  if (kind === 'bytes') return value === '';
  if (kind === 'float') return Number.isNaN(value);
  return value === INT_LIST_PADDING;
}

/**
 * Writes rows in the reference layout, `rowsPerExample` rows per record (the last one may hold
 * fewer). Used by tests and by `wndc synth`. The file appears complete or not at all: it is
 * written under a temporary name and renamed at the end.
 */
export class TfRecordWriter {
  private pending: RawRecord[] = [];
  private rows = 0;
  private records = 0;
  private bytes = 0;
  private readonly temporary: string;

  private constructor(
    private readonly path: string,
    private readonly handle: FileHandle,
    temporary: string,
    private readonly ir: ModelIR,
    private readonly rowsPerExample: number,
  ) {
    this.temporary = temporary;
  }

  static async create(path: string, ir: ModelIR, rowsPerExample = REFERENCE_ROWS_PER_EXAMPLE): Promise<TfRecordWriter> {
    if (!Number.isInteger(rowsPerExample) || rowsPerExample < 1) throw new Error(`internal: rowsPerExample must be a positive integer, got ${rowsPerExample}`);
    const temporary = `${path}.tmp-${process.pid}`;
    return new TfRecordWriter(path, await open(temporary, 'w'), temporary, ir, rowsPerExample);
  }

  async append(row: RawRecord): Promise<void> {
    this.pending.push(row);
    if (this.pending.length >= this.rowsPerExample) await this.flush();
  }

  /** Writes what is left, renames the file into place; returns what was written. */
  async close(): Promise<{ rows: number; records: number; bytes: number }> {
    await this.flush();
    await this.handle.close();
    await rename(this.temporary, this.path);
    return { rows: this.rows, records: this.records, bytes: this.bytes };
  }

  /** Drops the partial file. */
  async abort(): Promise<void> {
    await this.handle.close().catch(() => {});
    await unlink(this.temporary).catch(() => {});
  }

  private async flush(): Promise<void> {
    if (this.pending.length === 0) return;
    const rows = this.pending;
    this.pending = [];
    const features = this.ir.columns.map((column) => [column.name, encodeColumn(column, rows, listWidth(this.ir, column, rows))] as const);
    const framed = frameTfRecord(encodeExample(features));
    await this.handle.write(framed);
    this.rows += rows.length;
    this.records++;
    this.bytes += framed.length;
  }
}

export async function writeTfRecordFile(
  path: string,
  rows: Iterable<RawRecord> | AsyncIterable<RawRecord>,
  ir: ModelIR,
  rowsPerExample = REFERENCE_ROWS_PER_EXAMPLE,
): Promise<{ rows: number; records: number; bytes: number }> {
  const writer = await TfRecordWriter.create(path, ir, rowsPerExample);
  try {
    for await (const row of rows) await writer.append(row);
    return await writer.close();
  } catch (error) {
    await writer.abort();
    throw error;
  }
}

/** k of a list column: the largest max_len of the multi-hot features reading it, else the longest list. */
function listWidth(ir: ModelIR, column: ColumnIR, rows: readonly RawRecord[]): number {
  if (!column.list) return 1;
  let width = 0;
  for (const feature of ir.features) {
    if (feature.kind === 'multi_hot' && feature.column === column.name && feature.output.type === 'categorical') width = Math.max(width, feature.output.maxLen);
  }
  if (width > 0) return width;
  for (const row of rows) width = Math.max(width, listOf(row, column).length);
  return Math.max(width, 1);
}

function valueOf(row: RawRecord, column: ColumnIR): RawValue {
  const value = row[column.name];
  if (value !== undefined && value !== null) return value;
  if (column.default === null) throw new Error(`a row has no \`${column.name}\` and the column has no default: TFRecord cannot hold a missing value`);
  return column.default as RawValue;
}

function listOf(row: RawRecord, column: ColumnIR): readonly (number | string | null)[] {
  const value = valueOf(row, column);
  return Array.isArray(value) ? value : [value as number | string];
}

function encodeColumn(column: ColumnIR, rows: readonly RawRecord[], width: number): FeatureValues {
  const count = rows.length * width;
  if (column.type === 'string') {
    const values: Uint8Array[] = new Array(count);
    const encoder = new TextEncoder();
    const empty = new Uint8Array(0);
    rows.forEach((row, r) => {
      const items = column.list ? listOf(row, column) : [valueOf(row, column)];
      for (let k = 0; k < width; k++) {
        const item = items[k];
        values[r * width + k] = item === undefined || item === null ? empty : encoder.encode(String(item));
      }
    });
    return { kind: 'bytes', values };
  }
  const values = column.type === 'float' ? new Float32Array(count) : new Float64Array(count);
  const padding = column.type === 'float' ? Number.NaN : INT_LIST_PADDING;
  rows.forEach((row, r) => {
    const items = column.list ? listOf(row, column) : [valueOf(row, column)];
    for (let k = 0; k < width; k++) {
      const item = items[k];
      values[r * width + k] = item === undefined || item === null ? padding : Number(item);
    }
  });
  return column.type === 'float' ? { kind: 'float', values: values as Float32Array } : { kind: 'int64', values: values as Float64Array };
}

// Column blocks: a run of consecutive raw rows of one file as typed columns, the form DuckDB
// sources hand to the encoders. DuckDB parses and casts (on its own threads); a block holds the
// results in transferable buffers, so that encoding workers can take it without copying, and
// `decodeBlock` turns its rows into RawRecords with exactly the values and bad-row messages that
// converting the text field by field gives (runtime/data/sources/convert.ts).
//
// This file has no DuckDB import: worker threads load it.

import type { ColumnIR, ModelIR } from '../../../compiler/ir.js';
import { DataError, type RawChunk, type RawRecord } from '../contracts.js';
import { ChunkBuilder, recordFactory } from './chunks.js';
import { BAD, Converter, type Converted } from './convert.js';
import { decodeUtf8 } from './utf8.js';

/**
 * Values DuckDB did not cast on the typed fast path, to convert in JavaScript as Parquet values
 * are. Rows in ascending order. Rare: a float in an int column, a BIGINT beyond ±2^53, a bad value.
 */
export interface Fallback {
  mode: 'value';
  rows: Int32Array;
  values: unknown[];
}

/** Strings as DuckDB lays them out: 16 bytes a row (length, then inline text or a heap offset). */
export interface TextData {
  /** Per row: uint32 length, then the text inline when at most 12 bytes, else at uint32 offset 8 into `heap`. */
  records: Uint8Array;
  heap: Uint8Array;
  /** 1 where the field is present (not NULL). */
  present: Uint8Array;
}

export type BlockColumn =
  /** A scalar int or float cast by DuckDB. */
  | { kind: 'number'; values: Float64Array; present: Uint8Array; fallback: Fallback }
  /** A list of ints or floats cast by DuckDB: row r holds values[offsets[r] .. offsets[r + 1]). */
  | { kind: 'list'; offsets: Int32Array; values: Float64Array; present: Uint8Array; fallback: Fallback }
  /** Text converted in JavaScript; with `fast`, plain numbers are parsed from the bytes. */
  | { kind: 'text'; text: TextData; fast: boolean }
  /** Values of other types, converted in JavaScript as Parquet values. */
  | { kind: 'values'; values: unknown[] };

export interface ColumnBlock {
  kind: 'columns';
  file: string;
  /** 1-based number of the block's first row in `file`. */
  firstRow: number;
  rows: number;
  /** One per spec column, in the spec's order. */
  columns: BlockColumn[];
  /** CSV/TSV: per row, -1 when the row has `width` fields, else how many it has (`width + 1`: more). */
  fieldCounts: Int32Array | null;
  width: number;
}

/** What a column of a block looks like to DuckDB's query and to the block builder. */
export type ColumnKind = BlockColumn['kind'];

/** The buffers of a block, to transfer it to a worker thread. */
export function blockTransferList(block: ColumnBlock): ArrayBuffer[] {
  const buffers: ArrayBuffer[] = [];
  const add = (a: ArrayBufferView) => buffers.push(a.buffer as ArrayBuffer);
  for (const c of block.columns) {
    if (c.kind === 'number' || c.kind === 'list') {
      add(c.values);
      add(c.present);
      add(c.fallback.rows);
      if (c.kind === 'list') add(c.offsets);
    } else if (c.kind === 'text') {
      add(c.text.records);
      add(c.text.heap);
      add(c.text.present);
    }
  }
  if (block.fieldCounts !== null) add(block.fieldCounts);
  return [...new Set(buffers)];
}

/** The string of row `row` of a TextData. */
export function textAt(text: TextData, row: number): string {
  const [bytes, start, length] = textBytes(text, row);
  return decodeUtf8(bytes, start, length);
}

const spot: [Uint8Array, number, number] = [new Uint8Array(0), 0, 0];

/** Where the UTF-8 bytes of row `row` are: [bytes, start, length] (one tuple, reused). */
function textBytes(text: TextData, row: number): [Uint8Array, number, number] {
  const offset = row * 16;
  const r = text.records;
  const length = r[offset]! | (r[offset + 1]! << 8) | (r[offset + 2]! << 16) | (r[offset + 3]! << 24);
  if (length <= 12) {
    spot[0] = r;
    spot[1] = offset + 4;
  } else {
    spot[0] = text.heap;
    spot[1] = (r[offset + 8]! | (r[offset + 9]! << 8) | (r[offset + 10]! << 16) | (r[offset + 11]! << 24)) >>> 0;
  }
  spot[2] = length;
  return spot;
}

/** Exact powers of ten: 10^k is a double exactly for k <= 22. */
const POW10 = Array.from({ length: 23 }, (_, k) => 10 ** k);

/**
 * The number the ASCII text bytes[start, start + length) denotes, when it has the converter's
 * decimal form (`[+-]?(d+.?d*|.d+)([eE][+-]?d+)?`) and the value is computed exactly as
 * `Number(text)` computes it: at most 15 digits (an integer below 2^53) scaled by an exact power
 * of ten up to 10^22, one correctly rounded operation (Clinger's fast path). For an int, only
 * `[+-]?d{1,15}`. NaN otherwise: the caller converts the string instead, which accepts or rejects
 * it with the converter's message.
 */
export function plainNumber(bytes: Uint8Array, start: number, length: number, int: boolean): number {
  const end = start + length;
  let i = start;
  let negative = false;
  const first = bytes[i]!;
  if (first === 0x2d || first === 0x2b) {
    negative = first === 0x2d;
    i++;
  }
  let mantissa = 0;
  let digits = 0;
  let fraction = 0;
  for (; i < end; i++) {
    const d = bytes[i]! - 0x30;
    if (d < 0 || d > 9) break;
    mantissa = mantissa * 10 + d;
    digits++;
  }
  if (i < end && !int && bytes[i] === 0x2e /* . */) {
    i++;
    for (; i < end; i++) {
      const d = bytes[i]! - 0x30;
      if (d < 0 || d > 9) break;
      mantissa = mantissa * 10 + d;
      digits++;
      fraction++;
    }
  }
  if (digits === 0 || digits > 15) return NaN;
  let exponent = 0;
  if (i < end && !int && (bytes[i] === 0x65 || bytes[i] === 0x45) /* e E */) {
    i++;
    let negativeExponent = false;
    if (i < end && (bytes[i] === 0x2d || bytes[i] === 0x2b)) {
      negativeExponent = bytes[i] === 0x2d;
      i++;
    }
    let expDigits = 0;
    for (; i < end; i++) {
      const d = bytes[i]! - 0x30;
      if (d < 0 || d > 9) break;
      if (expDigits++ > 4) return NaN;
      exponent = exponent * 10 + d;
    }
    if (expDigits === 0) return NaN;
    if (negativeExponent) exponent = -exponent;
  }
  if (i !== end) return NaN;
  const scale = exponent - fraction;
  let value: number;
  if (scale === 0) value = mantissa;
  else if (scale > 0 && scale <= 22) value = mantissa * POW10[scale]!;
  else if (scale < 0 && scale >= -22) value = mantissa / POW10[-scale]!;
  else return NaN;
  return negative ? -value : value;
}

/** A list of plain numbers separated by the ASCII byte `separator`, or null when an element is not plain. */
function plainList(bytes: Uint8Array, start: number, length: number, separator: number, int: boolean): number[] | null {
  const list: number[] = [];
  const end = start + length;
  let from = start;
  for (let i = start; i <= end; i++) {
    if (i < end && bytes[i] !== separator) continue;
    if (i === from) return null; // an empty element: the converter says why it is bad
    const x = plainNumber(bytes, from, i - from, int);
    if (x !== x) return null;
    list.push(x);
    from = i + 1;
  }
  return list;
}

/** Where decoded rows go: good rows as records, bad rows with what was wrong. */
export interface DecodedRows {
  /** Row `index` of the block (0-based) holds `record`, valid until the next call. */
  row(index: number, record: RawRecord): void;
  /** Row `index` of the block is bad: `column` (null: the row as a whole) and the problem. */
  bad(index: number, column: string | null, problem: string): void;
}

/**
 * Decodes every row of `block` into records of the spec's `columns`, in order. Rows are checked
 * as the text path checks them: the field count first, then each column in spec order, the first
 * bad value making the row bad. With `reuse`, one record object is refilled for every row (the
 * encoders copy what they need); otherwise each row gets its own.
 */
export function decodeBlock(block: ColumnBlock, columns: readonly ColumnIR[], converter: Converter, out: DecodedRows, reuse: boolean): void {
  const keys = columns.map((c) => c.name);
  const readers = block.columns.map((c, j) => columnReader(c, columns[j]!, converter));
  const values: unknown[] = new Array(keys.length).fill(null);
  const make = recordFactory(keys);
  const fill = reuse ? recordFiller(keys) : null;
  const record = reuse ? make(values) : null;
  const counts = block.fieldCounts;
  const width = block.width;
  rows: for (let r = 0; r < block.rows; r++) {
    if (counts !== null && counts[r]! >= 0) {
      const found = counts[r]! > width ? `more than ${width}` : String(counts[r]);
      out.bad(r, null, `expected ${width} fields, found ${found}`);
      continue;
    }
    for (let j = 0; j < readers.length; j++) {
      const value = readers[j]!(r);
      if (value === BAD) {
        out.bad(r, keys[j]!, converter.problem);
        continue rows;
      }
      values[j] = value;
    }
    if (record !== null) {
      fill!(record, values);
      out.row(r, record);
    } else {
      out.row(r, make(values));
    }
  }
}

/** A column's value at a row, converted; rows are asked for in ascending order. */
type Reader = (row: number) => Converted;

function columnReader(c: BlockColumn, column: ColumnIR, converter: Converter): Reader {
  switch (c.kind) {
    case 'text': {
      const { text } = c;
      if (!c.fast || column.type === 'string') return (r) => (text.present[r] === 0 ? null : converter.text(textAt(text, r), column));
      const separator = converter.listSeparator.length === 1 ? converter.listSeparator.charCodeAt(0) : -1;
      const int = column.type === 'int';
      return (r) => {
        if (text.present[r] === 0) return null;
        const [bytes, start, length] = textBytes(text, r);
        if (length === 0) return null;
        if (!column.list) {
          const x = plainNumber(bytes, start, length, int);
          if (x === x) return x; // not NaN: a plain number
        } else if (separator >= 0 && separator < 0x80 && bytes[start] !== 0x5b /* [ */) {
          const list = plainList(bytes, start, length, separator, int);
          if (list !== null) return list;
        }
        return converter.text(textAt(text, r), column);
      };
    }
    case 'values':
      return (r) => converter.value(c.values[r], column);
    case 'number': {
      const { values, present } = c;
      const fallback = fallbackReader(c.fallback, column, converter);
      return (r) => {
        const f = fallback(r);
        if (f !== NONE) return f;
        return present[r] === 0 ? null : values[r]!;
      };
    }
    case 'list': {
      const { values, present, offsets } = c;
      const fallback = fallbackReader(c.fallback, column, converter);
      return (r) => {
        const f = fallback(r);
        if (f !== NONE) return f;
        if (present[r] === 0) return null;
        const start = offsets[r]!;
        const n = offsets[r + 1]! - start;
        const list: number[] = new Array(n);
        for (let k = 0; k < n; k++) list[k] = values[start + k]!;
        return list;
      };
    }
  }
}

const NONE: unique symbol = Symbol('no fallback');

/** The fallback value of a row, converted, or NONE when the row has none. */
function fallbackReader(fallback: Fallback, column: ColumnIR, converter: Converter): (row: number) => Converted | typeof NONE {
  const { rows, values } = fallback;
  let next = 0;
  return (r) => {
    while (next < rows.length && rows[next]! < r) next++;
    if (next >= rows.length || rows[next] !== r) return NONE;
    const value = values[next];
    return converter.value(value, column);
  };
}

/** A function refilling a record built by recordFactory: named stores, no allocation. */
function recordFiller(keys: readonly string[]): (record: RawRecord, values: readonly unknown[]) => void {
  const body = keys.map((key, i) => `r[${JSON.stringify(key)}] = v[${i}];`).join('\n');
  return new Function('r', 'v', body) as (record: RawRecord, values: readonly unknown[]) => void;
}

/**
 * The rows of column blocks as RawChunks of at most `chunkRows` rows: what `chunks()` of a
 * block-reading source yields. A bad row is thrown, or passed to `onBadRow` and skipped.
 */
export async function* recordChunks(
  blocks: AsyncIterable<ColumnBlock>,
  ir: ModelIR,
  converter: Converter,
  chunkRows: number,
  onBadRow: ((error: DataError) => void) | undefined,
): AsyncGenerator<RawChunk> {
  let builder: ChunkBuilder | null = null;
  for await (const block of blocks) {
    if (builder === null || builder.file !== block.file) {
      const rest = builder?.finish();
      if (rest) yield rest;
      builder = new ChunkBuilder(block.file, chunkRows);
    }
    const b = builder;
    const full: RawChunk[] = [];
    decodeBlock(
      block,
      ir.columns,
      converter,
      {
        row: (_, record) => {
          const chunk = b.add(record);
          if (chunk !== null) full.push(chunk);
        },
        bad: (_, column, problem) => {
          const chunk = b.skip(new DataError({ file: block.file, row: b.rowNumber }, column, problem), onBadRow);
          if (chunk !== null) full.push(chunk);
        },
      },
      false,
    );
    yield* full;
  }
  const rest = builder?.finish();
  if (rest) yield rest;
}

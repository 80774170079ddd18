// The contracts between the pieces of the data pipeline: raw sources (CSV/TSV, Parquet, Arrow IPC,
// TFRecord) yield raw rows; the compiled model encodes them; shard writers store encoded rows in
// the documented columnar format (docs/shards.md); batch readers serve fixed-size batches to the
// engines. Every piece is usable alone and is tested against these types.

import type { ModelIR } from '../../compiler/ir.js';

/** One raw row: column name -> value. Missing fields are absent or null. */
export type RawValue = number | string | boolean | null | readonly (number | string | null)[];
export type RawRecord = Record<string, RawValue | undefined>;

/**
 * Where a raw row came from, for error messages: file and 1-based row (data rows, header
 * excluded); row 0 means the file as a whole (a missing column, a corrupt header or schema).
 */
export interface RowOrigin {
  file: string;
  row: number;
}

/** A block of raw rows read from one file, in file order. */
export interface RawChunk {
  file: string;
  /** 1-based number of the first row of `rows` in `file`. */
  firstRow: number;
  rows: RawRecord[];
}

/** A readable collection of raw rows: one file, a glob or a directory, in one format. */
export interface RawSource {
  /** The files, in the order they are read. */
  readonly files: readonly string[];
  readonly format: RawFormat;
  /**
   * Reads every row once, in order, in chunks of bounded size (memory stays bounded). A row that
   * cannot be read (wrong type, wrong field count, ...) throws a DataError, unless `onBadRow` is
   * given: then it is passed there, skipped, and reading goes on (`--max-bad-rows`).
   */
  chunks(onBadRow?: (error: DataError) => void): AsyncIterable<RawChunk>;
  close(): Promise<void>;
}

export type RawFormat = 'csv' | 'tsv' | 'parquet' | 'arrow' | 'tfrecord';

/**
 * Bad data the user must fix: names the file, the row, the column and what was expected. With
 * `--max-bad-rows N` such rows are skipped and counted instead, up to N.
 */
export class DataError extends Error {
  constructor(
    readonly origin: RowOrigin,
    readonly column: string | null,
    readonly problem: string,
  ) {
    // Row 0 stands for the file as a whole (its header or schema): no row is named.
    super(`${origin.file}${origin.row > 0 ? `:${origin.row}` : ''}${column === null ? '' : ` column \`${column}\``}: ${problem}`);
  }
}

/** The shard manifest (`manifest.json` beside the shards); see docs/shards.md. */
export interface ShardManifest {
  format: 'wndc-shards';
  version: 1;
  model: string;
  /** sha256 of the IR's canonical JSON: shards encoded for another spec are refused. */
  specHash: string;
  layout: ModelIR['layout'];
  /** Numeric statistics the encoding used (raw column units), keyed by feature. */
  stats: Record<string, Record<string, number>>;
  split: 'train' | 'valid';
  rows: number;
  shards: {
    file: string;
    rows: number;
    bytes: number;
    /** Byte offset and length of each column's values in the file, for readers that mmap it. */
    buffers?: Record<string, { offset: number; bytes: number }>;
  }[];
  /** Whether rows of one group are contiguous (needed for grouped evaluation batches). */
  groupsContiguous: boolean;
  counters: Record<string, Record<string, number>>;
  createdBy: string;
}

/** Encoded rows as row-major matrices of the layout's widths (docs/shards.md). */
export interface EncodedColumns {
  ids: Int32Array;
  lengths: Int32Array;
  weights: Float32Array;
  numeric: Float32Array;
  label: Float32Array;
  group: Float64Array;
  weight: Float32Array;
}

/** A batch of encoded rows: `size` rows valid (the arrays may be longer). */
export interface Batch extends EncodedColumns {
  size: number;
}

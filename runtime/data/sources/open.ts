// Opening raw input: one file, a glob or a directory, in any of the formats wndc reads. Every
// source yields the spec's columns converted to their declared types (see docs/data-formats.md).

import type { ModelIR } from '../../../compiler/ir.js';
import type { RawSource } from '../contracts.js';
import { ArrowSource } from './arrow.js';
import { CsvSource } from './csv.js';
import { DuckDb } from './duckdb.js';
import { resolveInput } from './files.js';
import type { SourceOptions } from './options.js';
import { ParquetSource } from './parquet.js';
import { TfRecordSource } from './tfrecord.js';

export type { SourceOptions } from './options.js';

/**
 * The rows of `input` as the spec's columns. Which files, and their format, are settled here (a
 * DataError with row 0 when there are none or the format is unclear); bad rows surface while
 * reading, from `chunks()`.
 */
export async function openRawSource(input: string, ir: ModelIR, options: SourceOptions = {}): Promise<RawSource> {
  const { files, format } = resolveInput(input, options.format);
  switch (format) {
    case 'csv':
    case 'tsv':
      return new CsvSource(files, format, ir, options, await DuckDb.open());
    case 'parquet':
      return new ParquetSource(files, ir, options, await DuckDb.open());
    case 'arrow':
      return new ArrowSource(files, ir, options);
    case 'tfrecord':
      return new TfRecordSource(files, ir, options);
  }
}

// A DuckDB query as a raw source: joins, derived labels and renamed columns without a separate
// preparation step (e.g. MovieLens' three files into one row per rating). The query's columns are
// matched to the spec's by name and converted like Parquet values. Relative paths inside the query
// are read from the current folder.

import type { ModelIR } from '../../../compiler/ir.js';
import type { RawSource } from '../contracts.js';
import { DuckDb } from './duckdb.js';
import type { SourceOptions } from './options.js';
import { ParquetSource } from './parquet.js';

/** The name rows of a query report as their file in error messages. */
export const QUERY_ORIGIN = '<--sql query>';

export async function openSqlSource(query: string, ir: ModelIR, options: SourceOptions = {}): Promise<RawSource> {
  const body = query.trim().replace(/;\s*$/, '');
  return new ParquetSource([QUERY_ORIGIN], ir, options, await DuckDb.open(), () => `(${body})`);
}

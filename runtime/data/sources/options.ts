// What a user may say about raw input beyond its path (the `--format`, `--no-header`,
// `--columns`, `--delimiter` and `--list-separator` flags of `wndc preprocess`).

import type { RawFormat } from '../contracts.js';

export interface SourceOptions {
  /** Inferred from the file names when absent. */
  format?: RawFormat;
  /** CSV/TSV: the first row names the columns (default true). */
  header?: boolean;
  /** CSV/TSV without a header: the column names in file order (default: the spec's input order). */
  columns?: string[];
  /** CSV/TSV field delimiter: `,` for CSV and a tab for TSV unless given. */
  delimiter?: string;
  /** Separates list elements in a text field, as in `1|2|3` (default `|`). */
  listSeparator?: string;
  /** Rows per RawChunk, and per column block of the DuckDB sources (default 8192). */
  chunkRows?: number;
  /**
   * DuckDB sources: let DuckDB cast fields of plain form (default true). False converts every
   * field's text in JavaScript: the reference the typed path is tested against.
   */
  typed?: boolean;
}

// CSV and TSV through DuckDB. DuckDB splits records (RFC 4180 quoting for CSV, none for TSV) on
// its own threads and casts the fields of plain form to numbers (typed-columns.ts); the rest of
// the text is checked and converted in JavaScript, so that a bad value is reported with its file,
// row, column and what was expected. Rows come out as column blocks (block.ts).
//
// Field counts are checked without failing the whole query: the columns are read by position as
// c0..c{n-1} plus one spare c{n}, with null padding on and NULL spelt as a string no file holds
// (so an empty field reads as ''). A row with too few fields then has NULL in c{n-1}, a row with
// too many has text in c{n}.

import type { ModelIR } from '../../../compiler/ir.js';
import { DataError, type RawChunk, type RawFormat, type RawSource } from '../contracts.js';
import { recordChunks, type ColumnBlock } from './block.js';
import { BlockBuilder } from './block-builder.js';
import { DEFAULT_CHUNK_ROWS } from './chunks.js';
import { bindColumns } from './columns.js';
import { Converter } from './convert.js';
import { readHeader } from './csv-header.js';
import { DuckDb, duckDbProblem, sqlString } from './duckdb.js';
import type { SourceOptions } from './options.js';
import { textPlan, typedQuery, type ColumnPlan } from './typed-columns.js';

/** Read as NULL by DuckDB: a string no CSV field holds (a real empty field reads as ''). */
const NULL_TEXT = '\u0001wndc-null\u0001';

export class CsvSource implements RawSource {
  private readonly delimiter: string;
  private readonly quote: string | null;
  private readonly header: boolean;
  private readonly converter: Converter;

  constructor(
    readonly files: readonly string[],
    readonly format: RawFormat & ('csv' | 'tsv'),
    private readonly ir: ModelIR,
    private readonly options: SourceOptions,
    private readonly db: DuckDb,
  ) {
    this.delimiter = options.delimiter ?? (format === 'tsv' ? '\t' : ',');
    // TSV (IANA text/tab-separated-values) has no quoting: a `"` is an ordinary character.
    this.quote = format === 'tsv' ? null : '"';
    this.header = options.header ?? true;
    this.converter = new Converter(options.listSeparator ?? '|');
  }

  /** Separates list elements in text fields. */
  get listSeparator(): string {
    return this.converter.listSeparator;
  }

  async *chunks(onBadRow?: (error: DataError) => void): AsyncGenerator<RawChunk> {
    yield* recordChunks(this.blocks(), this.ir, this.converter, this.options.chunkRows ?? DEFAULT_CHUNK_ROWS, onBadRow);
  }

  /** Every row, in order, as column blocks: bad rows are found when the blocks are decoded. */
  async *blocks(): AsyncGenerator<ColumnBlock> {
    for (const file of this.files) yield* this.fileBlocks(file);
  }

  private async *fileBlocks(file: string): AsyncGenerator<ColumnBlock> {
    const names = await this.columnNames(file);
    if (names === null) return; // an empty file holds no rows
    const bound = bindColumns(file, names, this.ir);
    const width = names.length;
    const plans = bound.map((b) => textPlan(`c${b.index}`, this.options.typed ?? true));
    const builder = new BlockBuilder(file, plans, this.options.chunkRows ?? DEFAULT_CHUNK_ROWS, width);
    try {
      for await (const chunk of this.db.stream(this.query(file, width, plans))) yield* builder.add(chunk);
    } catch (error) {
      throw this.readError(file, error);
    }
    const rest = builder.finish();
    if (rest !== null) yield rest;
  }

  private async columnNames(file: string): Promise<string[] | null> {
    if (!this.header) return this.options.columns ?? this.ir.columns.map((c) => c.name);
    return readHeader(file, this.delimiter, this.quote);
  }

  private query(file: string, width: number, plans: readonly ColumnPlan[]): string {
    const columns = Array.from({ length: width + 1 }, (_, i) => `'c${i}': 'VARCHAR'`).join(', ');
    const count = Array.from({ length: width + 1 }, (_, i) => `(c${i} IS NOT NULL)::INTEGER`).join(' + ');
    const settings = [
      `header = ${this.header}`,
      'auto_detect = false',
      `columns = {${columns}}`,
      `delim = ${sqlString(this.delimiter)}`,
      `quote = ${sqlString(this.quote ?? '')}`,
      `escape = ${sqlString(this.quote ?? '')}`,
      'strict_mode = false',
      'null_padding = true',
      `nullstr = ${sqlString(NULL_TEXT)}`,
    ].join(', ');
    const fields = `CASE WHEN c${width - 1} IS NULL OR c${width} IS NOT NULL THEN ${count} END`;
    return typedQuery(plans, `read_csv(${sqlString(file)}, ${settings})`, [fields]);
  }

  /** A DuckDB failure (unterminated quote, unreadable file) as a DataError naming the line. */
  private readError(file: string, error: unknown): DataError {
    if (error instanceof DataError) return error;
    const message = error instanceof Error ? error.message : String(error);
    const line = /CSV Error on Line: (\d+)/.exec(message);
    if (line !== null) {
      const row = Number(line[1]) - (this.header ? 1 : 0);
      const reason = message.split('\n').find((text, i) => i > 0 && text.trim() !== '' && !text.startsWith('Original Line')) ?? 'malformed CSV';
      return new DataError({ file, row: Math.max(row, 1) }, null, `cannot split the row into fields: ${reason.trim().replace(/\.$/, '').toLowerCase()}`);
    }
    return new DataError({ file, row: 0 }, null, `cannot read the file: ${duckDbProblem(error)}`);
  }

  async close(): Promise<void> {
    this.db.close();
  }
}

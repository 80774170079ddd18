// Parquet through DuckDB: only the spec's columns are read, row group by row group, and every
// value obeys the same conversion as CSV text, so both give identical records. Numbers and
// lists of numbers are cast by DuckDB (typed-columns.ts); other values are converted in
// JavaScript. Rows come out as column blocks (block.ts).

import type { ModelIR } from '../../../compiler/ir.js';
import { DataError, type RawChunk, type RawFormat, type RawSource } from '../contracts.js';
import { recordChunks, type ColumnBlock } from './block.js';
import { BlockBuilder } from './block-builder.js';
import { DEFAULT_CHUNK_ROWS } from './chunks.js';
import { bindColumns } from './columns.js';
import { Converter } from './convert.js';
import { DuckDb, duckDbProblem, sqlName, sqlString } from './duckdb.js';
import type { SourceOptions } from './options.js';
import { typedQuery, valuePlan } from './typed-columns.js';

/** DuckDB types whose values come to JavaScript as numbers, bigints, text or booleans. */
const PLAIN_TYPE = /^(TINYINT|SMALLINT|INTEGER|BIGINT|UTINYINT|USMALLINT|UINTEGER|UBIGINT|FLOAT|DOUBLE|VARCHAR|BOOLEAN)(\[\])?$/;

/** What DuckDB reads for one input: a Parquet file, or (see sql.ts) a query's result. */
export type Relation = (file: string) => string;

const parquetRelation: Relation = (file) => `read_parquet(${sqlString(file)})`;

export class ParquetSource implements RawSource {
  readonly format: RawFormat = 'parquet';
  private readonly converter: Converter;

  constructor(
    readonly files: readonly string[],
    private readonly ir: ModelIR,
    private readonly options: SourceOptions,
    private readonly db: DuckDb,
    private readonly relation: Relation = parquetRelation,
  ) {
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
    const schema = await this.schema(file);
    const bound = bindColumns(
      file,
      schema.map((s) => s.name),
      this.ir,
    );
    if (bound.length === 0) return;
    const typed = this.options.typed ?? true;
    const plans = bound.map((b) => {
      const column = schema[b.index]!;
      return valuePlan(sqlName(column.name), selectExpression(column), column.type, b.column, typed);
    });
    const builder = new BlockBuilder(file, plans, this.options.chunkRows ?? DEFAULT_CHUNK_ROWS, -1);
    try {
      for await (const chunk of this.db.stream(typedQuery(plans, this.relation(file)))) yield* builder.add(chunk);
    } catch (error) {
      if (error instanceof DataError) throw error;
      throw new DataError({ file, row: builder.nextRowNumber }, null, `cannot read the file: ${duckDbProblem(error)}`);
    }
    const rest = builder.finish();
    if (rest !== null) yield rest;
  }

  private async schema(file: string): Promise<{ name: string; type: string }[]> {
    try {
      const reader = await this.db.connection.runAndReadAll(`DESCRIBE SELECT * FROM ${this.relation(file)}`);
      return reader.getRows().map((row) => ({ name: String(row[0]), type: String(row[1]) }));
    } catch (error) {
      throw new DataError({ file, row: 0 }, null, `cannot read ${this.relation === parquetRelation ? 'the file as Parquet' : 'the query'}: ${duckDbProblem(error)}`);
    }
  }

  async close(): Promise<void> {
    this.db.close();
  }
}

/** Decimals become doubles and other types (dates, timestamps) text, for the converter. */
function selectExpression(column: { name: string; type: string }): string {
  const name = sqlName(column.name);
  if (PLAIN_TYPE.test(column.type)) return name;
  const list = column.type.endsWith('[]');
  const target = column.type.startsWith('DECIMAL') ? 'DOUBLE' : 'VARCHAR';
  return `CAST(${name} AS ${target}${list ? '[]' : ''})`;
}

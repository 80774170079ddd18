// Parquet through DuckDB: only the spec's columns are read, row group by row group, and every
// value goes through the same conversion as CSV text, so both give identical records.

import { DuckDBListValue } from '@duckdb/node-api';
import type { ModelIR } from '../../../compiler/ir.js';
import { DataError, type RawChunk, type RawFormat, type RawSource } from '../contracts.js';
import { ChunkBuilder, DEFAULT_CHUNK_ROWS, recordFactory } from './chunks.js';
import { bindColumns } from './columns.js';
import { BAD, Converter } from './convert.js';
import { DuckDb, duckDbProblem, sqlName, sqlString, varcharColumn } from './duckdb.js';
import type { SourceOptions } from './options.js';

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

  async *chunks(onBadRow?: (error: DataError) => void): AsyncGenerator<RawChunk> {
    for (const file of this.files) yield* this.fileChunks(file, onBadRow);
  }

  private async *fileChunks(file: string, onBadRow: ((error: DataError) => void) | undefined): AsyncGenerator<RawChunk> {
    const schema = await this.schema(file);
    const bound = bindColumns(
      file,
      schema.map((s) => s.name),
      this.ir,
    );
    const builder = new ChunkBuilder(file, this.options.chunkRows ?? DEFAULT_CHUNK_ROWS);
    const converter = this.converter;
    const keys = bound.map((b) => b.column.name);
    const makeRecord = recordFactory(keys);
    const values: unknown[] = new Array(keys.length);
    const picked = bound.map((b) => selectExpression(schema[b.index]!)).join(', ');
    if (picked === '') return;
    let stream;
    try {
      stream = this.db.stream(`SELECT ${picked} FROM ${this.relation(file)}`);
    } catch (error) {
      throw new DataError({ file, row: 0 }, null, `cannot read the file: ${duckDbProblem(error)}`);
    }
    try {
      for await (const chunk of stream) {
        const vectors = bound.map((_, j) => chunk.getColumnVector(j));
        // Text columns through the fast reader; the others (numbers, lists) item by item.
        const texts = bound.map((b, j) => (schema[b.index]!.type === 'VARCHAR' ? varcharColumn(chunk, j) : null));
        const rowCount = chunk.rowCount;
        rows: for (let r = 0; r < rowCount; r++) {
          for (let j = 0; j < keys.length; j++) {
            const text = texts[j];
            let raw = text ? text[r]! : vectors[j]!.getItem(r);
            if (raw instanceof DuckDBListValue) raw = raw.items as never;
            const value = converter.value(raw, bound[j]!.column);
            if (value === BAD) {
              const full = builder.skip(new DataError({ file, row: builder.rowNumber }, keys[j]!, converter.problem), onBadRow);
              if (full !== null) yield full;
              continue rows;
            }
            values[j] = value;
          }
          const full = builder.add(makeRecord(values));
          if (full !== null) yield full;
        }
      }
    } catch (error) {
      if (error instanceof DataError) throw error;
      throw new DataError({ file, row: builder.rowNumber }, null, `cannot read the file: ${duckDbProblem(error)}`);
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

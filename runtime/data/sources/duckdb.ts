// A private in-memory DuckDB for one source: it parses CSV/TSV and Parquet with its own threads
// and streams results back in vectors of 2048 rows, so the file is never loaded whole.

import { DuckDBConnection, DuckDBInstance, type DuckDBDataChunk } from '@duckdb/node-api';
import duckdb from '@duckdb/node-bindings';
import { decodeUtf8 } from './utf8.js';

export class DuckDb {
  private constructor(
    private readonly instance: DuckDBInstance,
    readonly connection: DuckDBConnection,
  ) {}

  static async open(): Promise<DuckDb> {
    // Results in file order: row numbers in messages and the order of shards depend on it.
    const instance = await DuckDBInstance.create(':memory:', { preserve_insertion_order: 'true' });
    return new DuckDb(instance, await instance.connect());
  }

  /** The result of `sql`, a chunk at a time. */
  async *stream(sql: string): AsyncGenerator<DuckDBDataChunk> {
    const result = await this.connection.stream(sql);
    for (;;) {
      const chunk = await result.fetchChunk();
      if (chunk === null || chunk.rowCount === 0) return;
      yield chunk;
    }
  }

  close(): void {
    this.connection.closeSync();
    this.instance.closeSync();
  }
}

/** A SQL string literal. */
export function sqlString(text: string): string {
  return `'${text.replace(/'/g, "''")}'`;
}

/** A SQL identifier. */
export function sqlName(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

/** DuckDB's error text without its long list of reader settings: the first lines only. */
export function duckDbProblem(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  return message.split('\n').slice(0, 2).join('; ').trim();
}

/**
 * Column `column` of a VARCHAR result chunk as strings (null for NULL). This reads DuckDB's
 * string records (16 bytes each: length, then the text inline up to 12 bytes or a prefix and a
 * pointer) through @duckdb/node-bindings and decodes short ASCII text without TextDecoder: about
 * 4x faster than `DuckDBVarCharVector.getItem` on CSV-shaped data (measured, see
 * docs/data-formats.md).
 */
export function varcharColumn(chunk: DuckDBDataChunk, column: number): (string | null)[] {
  const rows = chunk.rowCount;
  const vector = duckdb.data_chunk_get_vector(chunk.chunk, column);
  const data = duckdb.vector_get_data(vector, rows * 16);
  const validity = duckdb.vector_get_validity(vector, Math.ceil(rows / 64) * 8);
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const out: (string | null)[] = new Array(rows);
  for (let i = 0; i < rows; i++) {
    if (validity !== null && (validity[i >> 3]! & (1 << (i & 7))) === 0) {
      out[i] = null;
      continue;
    }
    const offset = i * 16;
    const length = view.getUint32(offset, true);
    if (length <= 12) out[i] = decodeUtf8(data, offset + 4, length);
    else out[i] = decodeUtf8(duckdb.get_data_from_pointer(data.buffer as ArrayBuffer, data.byteOffset + offset + 8, length), 0, length);
  }
  return out;
}

// A private in-memory DuckDB for one source: it parses CSV/TSV and Parquet with its own threads
// and streams results back in vectors of 2048 rows, so the file is never loaded whole.

import { DuckDBConnection, DuckDBInstance, type DuckDBDataChunk } from '@duckdb/node-api';

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

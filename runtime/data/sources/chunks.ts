// Gathering converted rows into RawChunks of bounded size. Rows of a chunk are consecutive rows
// of the file (a consumer names row `firstRow + i`), so a skipped bad row ends the chunk.

import { DataError, type RawChunk, type RawRecord } from '../contracts.js';

export const DEFAULT_CHUNK_ROWS = 8192;

export class ChunkBuilder {
  /** 1-based number of the next row read from the file. */
  private next = 1;
  private rows: RawRecord[] = [];
  private firstRow = 1;

  constructor(
    readonly file: string,
    private readonly chunkRows: number,
  ) {}

  /** The number the row being read now will have. */
  get rowNumber(): number {
    return this.next;
  }

  /** Adds the current row; returns a full chunk to yield, if any. */
  add(record: RawRecord): RawChunk | null {
    this.rows.push(record);
    this.next++;
    return this.rows.length >= this.chunkRows ? this.take() : null;
  }

  /**
   * The current row is bad: it is thrown, or handed to `onBadRow` and skipped. Returns the rows
   * gathered before it as a chunk to yield, if any.
   */
  skip(error: DataError, onBadRow: ((error: DataError) => void) | undefined): RawChunk | null {
    if (onBadRow === undefined) throw error;
    onBadRow(error);
    const chunk = this.take();
    this.next++;
    this.firstRow = this.next;
    return chunk;
  }

  /** What is left at the end of the file. */
  finish(): RawChunk | null {
    return this.take();
  }

  private take(): RawChunk | null {
    if (this.rows.length === 0) {
      this.firstRow = this.next;
      return null;
    }
    const chunk: RawChunk = { file: this.file, firstRow: this.firstRow, rows: this.rows };
    this.rows = [];
    this.firstRow = this.next;
    return chunk;
  }
}

/**
 * A function building a record with exactly `keys`, in that order, from an array of values.
 * Records built by one object literal share one hidden class, which keeps reading them fast;
 * assigning 40 computed keys one by one would leave V8 with slow dictionary objects.
 */
export function recordFactory(keys: readonly string[]): (values: readonly unknown[]) => RawRecord {
  const members = keys.map((key, i) => `${JSON.stringify(key)}: v[${i}]`).join(', ');
  return new Function('v', `return { ${members} };`) as (values: readonly unknown[]) => RawRecord;
}

// Gathering DuckDB result chunks (2048 rows or fewer) into ColumnBlocks of a fixed number of rows.
// Typed vectors are copied in bulk (one memcpy per column and chunk); only strings longer than 12
// bytes, NULL masks and list offsets are walked row by row, and fallbacks (rare) item by item.

import { DuckDBListValue, type DuckDBDataChunk } from '@duckdb/node-api';
import duckdb from '@duckdb/node-bindings';
import type { BlockColumn, ColumnBlock } from './block.js';
import type { ColumnPlan } from './typed-columns.js';

type Vector = ReturnType<typeof duckdb.data_chunk_get_vector>;

/** A growable byte or double buffer. */
class Growable<T extends Uint8Array | Float64Array> {
  length = 0;
  constructor(
    public data: T,
    private readonly make: (n: number) => T,
  ) {}

  reserve(extra: number): T {
    if (this.length + extra > this.data.length) {
      const bigger = this.make(Math.max(this.data.length * 2, this.length + extra));
      bigger.set(this.data.subarray(0, this.length));
      this.data = bigger;
    }
    return this.data;
  }
}

interface Fill {
  plan: ColumnPlan;
  /** Index of the plan's first vector in a result chunk. */
  vector: number;
  values?: Float64Array;
  present: Uint8Array;
  offsets?: Int32Array;
  listValues?: Growable<Float64Array>;
  records?: Uint8Array;
  heap?: Growable<Uint8Array>;
  items?: unknown[];
  fallbackRows: number[];
  fallbackValues: unknown[];
}

export class BlockBuilder {
  private fills: Fill[] = [];
  private fieldCounts: Int32Array | null = null;
  private rows = 0;
  /** 1-based number of the next row read from the file. */
  private nextRow = 1;
  private firstRow = 1;
  private readonly fieldsVector: number;

  constructor(
    readonly file: string,
    private readonly plans: readonly ColumnPlan[],
    private readonly blockRows: number,
    /** CSV/TSV: the field count, after the plans' vectors; -1 when there is none. */
    private readonly width: number,
  ) {
    this.fieldsVector = plans.reduce((n, p) => n + (p.typed === undefined ? 1 : 2), 0);
    this.reset();
  }

  /** The number the next row read will have. */
  get nextRowNumber(): number {
    return this.nextRow;
  }

  private reset(): void {
    const n = this.blockRows;
    let vector = 0;
    this.fills = this.plans.map((plan) => {
      const fill: Fill = { plan, vector, present: new Uint8Array(n), fallbackRows: [], fallbackValues: [] };
      vector += plan.typed === undefined ? 1 : 2;
      if (plan.kind === 'number') fill.values = new Float64Array(n);
      if (plan.kind === 'list') {
        fill.offsets = new Int32Array(n + 1);
        fill.listValues = new Growable(new Float64Array(n * 2), (k) => new Float64Array(k));
      }
      if (plan.kind === 'text') {
        fill.records = new Uint8Array(n * 16);
        fill.heap = new Growable(new Uint8Array(1024), (k) => new Uint8Array(k));
      }
      if (plan.kind === 'values') fill.items = new Array(n);
      return fill;
    });
    this.fieldCounts = this.width >= 0 ? new Int32Array(n) : null;
    this.rows = 0;
    this.firstRow = this.nextRow;
  }

  /** Adds a result chunk; returns the blocks it completed. */
  add(chunk: DuckDBDataChunk): ColumnBlock[] {
    const done: ColumnBlock[] = [];
    const total = chunk.rowCount;
    let from = 0;
    while (from < total) {
      const count = Math.min(total - from, this.blockRows - this.rows);
      this.copy(chunk, from, count);
      from += count;
      if (this.rows === this.blockRows) done.push(this.take());
    }
    return done;
  }

  /** The rows left at the end, or null. */
  finish(): ColumnBlock | null {
    return this.rows === 0 ? null : this.take();
  }

  private take(): ColumnBlock {
    const rows = this.rows;
    const columns: BlockColumn[] = this.fills.map((f) => {
      const fallback = { mode: 'value' as const, rows: Int32Array.from(f.fallbackRows), values: f.fallbackValues };
      switch (f.plan.kind) {
        case 'number':
          return { kind: 'number', values: f.values!, present: f.present, fallback };
        case 'list':
          return { kind: 'list', offsets: f.offsets!, values: f.listValues!.data, present: f.present, fallback };
        case 'text':
          return { kind: 'text', text: { records: f.records!, heap: f.heap!.data, present: f.present }, fast: f.plan.fast ?? true };
        case 'values':
          return { kind: 'values', values: f.items!.slice(0, rows) };
      }
    });
    const block: ColumnBlock = { kind: 'columns', file: this.file, firstRow: this.firstRow, rows, columns, fieldCounts: this.fieldCounts, width: this.width };
    this.reset();
    return block;
  }

  /** Copies rows [from, from + count) of `chunk` to the block's rows [this.rows, ...). */
  private copy(chunk: DuckDBDataChunk, from: number, count: number): void {
    const at = this.rows;
    const total = chunk.rowCount;
    for (const f of this.fills) {
      const vector = duckdb.data_chunk_get_vector(chunk.chunk, f.vector);
      const validity = duckdb.vector_get_validity(vector, Math.ceil(total / 64) * 8);
      copyPresence(validity, from, count, f.present, at);
      switch (f.plan.kind) {
        case 'number': {
          const data = duckdb.vector_get_data(vector, total * 8);
          new Uint8Array(f.values!.buffer, at * 8, count * 8).set(data.subarray(from * 8, (from + count) * 8));
          break;
        }
        case 'list':
          copyList(vector, total, from, count, f, at);
          break;
        case 'text':
          copyText(vector, total, from, count, f, at);
          break;
        case 'values': {
          const items = chunk.getColumnVector(f.vector);
          for (let i = 0; i < count; i++) f.items![at + i] = plainValue(items.getItem(from + i));
          break;
        }
      }
      if (f.plan.typed !== undefined) this.copyFallbacks(chunk, f, from, count, at);
    }
    if (this.fieldCounts !== null) {
      const vector = duckdb.data_chunk_get_vector(chunk.chunk, this.fieldsVector);
      const validity = duckdb.vector_get_validity(vector, Math.ceil(total / 64) * 8);
      const data = duckdb.vector_get_data(vector, total * 4);
      const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
      for (let i = 0; i < count; i++) {
        const r = from + i;
        this.fieldCounts[at + i] = validity !== null && (validity[r >> 3]! & (1 << (r & 7))) === 0 ? -1 : view.getInt32(r * 4, true);
      }
    }
    this.rows += count;
    this.nextRow += count;
  }

  /** The rows of a fallback vector that are not NULL, with their value. */
  private copyFallbacks(chunk: DuckDBDataChunk, f: Fill, from: number, count: number, at: number): void {
    const index = f.vector + 1;
    const vector = duckdb.data_chunk_get_vector(chunk.chunk, index);
    const total = chunk.rowCount;
    const validity = duckdb.vector_get_validity(vector, Math.ceil(total / 64) * 8);
    let items: ReturnType<DuckDBDataChunk['getColumnVector']> | null = null;
    for (let i = 0; i < count; i++) {
      const r = from + i;
      if (validity !== null) {
        // Whole bytes of NULLs are skipped at once: fallbacks are rare.
        if ((r & 7) === 0 && validity[r >> 3] === 0 && i + 8 <= count) {
          i += 7;
          continue;
        }
        if ((validity[r >> 3]! & (1 << (r & 7))) === 0) continue;
      }
      items ??= chunk.getColumnVector(index);
      f.fallbackRows.push(at + i);
      f.fallbackValues.push(plainValue(items.getItem(r)));
    }
  }
}

/** present[at + i] = 1 when row from + i is not NULL. */
function copyPresence(validity: Uint8Array | null, from: number, count: number, present: Uint8Array, at: number): void {
  if (validity === null) {
    present.fill(1, at, at + count);
    return;
  }
  for (let i = 0; i < count; i++) {
    const r = from + i;
    present[at + i] = (validity[r >> 3]! >> (r & 7)) & 1;
  }
}

function copyList(vector: Vector, total: number, from: number, count: number, f: Fill, at: number): void {
  const entries = duckdb.vector_get_data(vector, total * 16);
  const view = new DataView(entries.buffer, entries.byteOffset, entries.byteLength);
  const child = duckdb.list_vector_get_child(vector);
  const size = duckdb.list_vector_get_size(vector);
  const childBytes = duckdb.vector_get_data(child, size * 8);
  const childValues =
    childBytes.byteOffset % 8 === 0 ? new Float64Array(childBytes.buffer, childBytes.byteOffset, size) : new Float64Array(childBytes.slice().buffer, 0, size);
  const offsets = f.offsets!;
  const out = f.listValues!;
  for (let i = 0; i < count; i++) {
    const r = from + i;
    let n = 0;
    if (f.present[at + i] === 1) {
      const start = view.getUint32(r * 16, true);
      n = view.getUint32(r * 16 + 8, true);
      const values = out.reserve(n);
      for (let k = 0; k < n; k++) values[out.length + k] = childValues[start + k]!;
      out.length += n;
    }
    offsets[at + i + 1] = offsets[at + i]! + n;
  }
}

function copyText(vector: Vector, total: number, from: number, count: number, f: Fill, at: number): void {
  const data = duckdb.vector_get_data(vector, total * 16);
  const records = f.records!;
  records.set(data.subarray(from * 16, (from + count) * 16), at * 16);
  // Records start at offset 0 of their own buffer: 32-bit words are aligned.
  const words = new Uint32Array(records.buffer, 0, records.length >> 2);
  const present = f.present;
  const heap = f.heap!;
  for (let i = 0; i < count; i++) {
    const word = (at + i) * 4;
    const length = words[word]!;
    if (length <= 12 || present[at + i] === 0) continue;
    const bytes = duckdb.get_data_from_pointer(data.buffer as ArrayBuffer, data.byteOffset + (from + i) * 16 + 8, length);
    heap.reserve(length).set(bytes, heap.length);
    words[word + 2] = heap.length;
    heap.length += length;
  }
}

/** A DuckDB value as the converter takes it: lists as arrays of their items. */
function plainValue(value: unknown): unknown {
  return value instanceof DuckDBListValue ? value.items : value;
}

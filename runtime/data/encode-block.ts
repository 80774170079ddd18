// One unit of preprocessing work, the same in a worker thread and on the main thread: a block of
// raw rows (a column block from a DuckDB source, or records from any other source) in, encoded
// rows, bad rows, counters and the split of each row out. Results are plain typed arrays, so
// that a worker can hand them back without copying; the main thread applies them in block order,
// which keeps the output identical whatever the number of threads.

import type { ModelIR } from '../../compiler/ir.js';
import type { EncodedRow } from '../compiled-model.js';
import { loadCompiledModel, type LoadedModel } from '../load-model.js';
import { hashValue, MissingColumnError } from '../transforms.js';
import type { EncodedColumns, RawRecord } from './contracts.js';
import { decodeBlock, type ColumnBlock } from './sources/block.js';
import { Converter } from './sources/convert.js';
import { SPLIT_SEED } from './split.js';
import type { NumericStatsValues } from './stats.js';

/** Rows a non-DuckDB source already read and converted. */
export interface RecordsBlock {
  kind: 'records';
  file: string;
  firstRow: number;
  rows: RawRecord[];
}

export type RawBlock = ColumnBlock | RecordsBlock;

/** Which split each row goes to: all to one, or by the hash of its group (else its position). */
export type SplitRule = { kind: 'train' } | { kind: 'valid' } | { kind: 'fraction'; fraction: number; group: string | null };

export type Task =
  | { kind: 'encode'; block: RawBlock; stats: NumericStatsValues; split: SplitRule; listSeparator: string }
  | { kind: 'stats'; block: ColumnBlock; listSeparator: string };

/** A row that could not be read or encoded: its 1-based row in the block's file. */
export interface BadRow {
  row: number;
  column: string | null;
  problem: string;
}

/** Plain counters, summable: `rows`, `roleDefaults`, then per IR feature its counts. */
export interface CounterValues {
  rows: number;
  roleDefaults: number;
  features: Record<string, number>[];
}

export interface EncodeResult extends EncodedColumns {
  kind: 'encode';
  /** Rows encoded. */
  rows: number;
  /** Per encoded row: 0 train, 1 validation, 2 decided by its position (no group value). */
  split: Uint8Array;
  /** Per encoded row: its index among the block's rows that were read (not bad when read). */
  positions: Int32Array;
  /** Rows read (the rows of the block less those bad when read). */
  read: number;
  bad: BadRow[];
  counters: CounterValues;
}

export interface StatsResult {
  kind: 'stats';
  /** Per statistics need, the value of each row read (NaN where missing or not a finite number). */
  values: Float64Array[];
}

export type TaskResult = EncodeResult | StatsResult;

/** The buffers of a result, to transfer it back from a worker. */
export function resultTransferList(result: TaskResult): ArrayBuffer[] {
  const arrays = result.kind === 'stats' ? result.values : [result.ids, result.lengths, result.weights, result.numeric, result.label, result.group, result.weight, result.split, result.positions];
  return [...new Set(arrays.map((a) => a.buffer as ArrayBuffer))];
}

/** Runs tasks for one model: what a worker thread holds. */
export class BlockEncoder {
  private readonly out: EncodedRow;

  private constructor(
    readonly ir: ModelIR,
    private readonly model: LoadedModel,
  ) {
    this.out = model.createEncodedRow();
  }

  static async create(ir: ModelIR): Promise<BlockEncoder> {
    return new BlockEncoder(ir, await loadCompiledModel(ir));
  }

  run(task: Task): TaskResult {
    return task.kind === 'stats' ? this.stats(task.block, task.listSeparator) : this.encode(task.block, task.stats, task.split, task.listSeparator);
  }

  /** Calls `each(record, position)` for every row read, in order; bad rows go to `bad`. */
  private read(block: RawBlock, listSeparator: string, bad: BadRow[], each: (record: RawRecord, position: number, row: number) => void): number {
    let position = 0;
    if (block.kind === 'records') {
      for (const record of block.rows) each(record, position, block.firstRow + position++);
      return position;
    }
    decodeBlock(
      block,
      this.ir.columns,
      new Converter(listSeparator),
      {
        row: (index, record) => each(record, position++, block.firstRow + index),
        bad: (index, column, problem) => bad.push({ row: block.firstRow + index, column, problem }),
      },
      true,
    );
    return position;
  }

  private stats(block: ColumnBlock, listSeparator: string): StatsResult {
    const needs = this.model.statsNeeded;
    const values = needs.map(() => new Float64Array(block.rows));
    const read = this.read(block, listSeparator, [], (record, position) => {
      for (let k = 0; k < needs.length; k++) {
        const v = record[needs[k]!.column];
        values[k]![position] = typeof v === 'number' && Number.isFinite(v) ? v : NaN;
      }
    });
    return { kind: 'stats', values: values.map((v) => v.slice(0, read)) };
  }

  private encode(block: RawBlock, stats: NumericStatsValues, split: SplitRule, listSeparator: string): EncodeResult {
    const { layout } = this.ir;
    const capacity = block.kind === 'records' ? block.rows.length : block.rows;
    const result: EncodeResult = {
      kind: 'encode',
      rows: 0,
      ids: new Int32Array(capacity * layout.idsWidth),
      lengths: new Int32Array(capacity * layout.lengthsWidth),
      weights: new Float32Array(capacity * layout.weightsWidth),
      numeric: new Float32Array(capacity * layout.numericWidth),
      label: new Float32Array(capacity),
      group: new Float64Array(capacity),
      weight: new Float32Array(capacity),
      split: new Uint8Array(capacity),
      positions: new Int32Array(capacity),
      read: 0,
      bad: [],
      counters: { rows: 0, roleDefaults: 0, features: [] },
    };
    const counters = this.model.createCounters();
    const out = this.out;
    const splitOf = splitDecider(split);
    const bad: BadRow[] = [];
    result.read = this.read(block, listSeparator, bad, (record, position, row) => {
      try {
        this.model.encodeRow(record, out, stats, counters);
      } catch (e) {
        if (!(e instanceof MissingColumnError)) throw e;
        bad.push({ row, column: e.column, problem: 'missing value, and the column has no default' });
        return;
      }
      const i = result.rows++;
      result.ids.set(out.ids, i * layout.idsWidth);
      if (layout.lengthsWidth > 0) result.lengths.set(out.lengths, i * layout.lengthsWidth);
      if (layout.weightsWidth > 0) result.weights.set(out.weights, i * layout.weightsWidth);
      if (layout.numericWidth > 0) result.numeric.set(out.numeric, i * layout.numericWidth);
      result.label[i] = out.label;
      result.group[i] = out.group;
      result.weight[i] = out.weight;
      result.split[i] = splitOf(record);
      result.positions[i] = position;
    });
    // Bad rows come in row order: those of reading and of encoding are found in one pass.
    result.bad = bad.sort((a, b) => a.row - b.row);
    result.counters = {
      rows: counters.rows,
      roleDefaults: counters.roleDefaults,
      features: counters.features.map((c) => {
        const plain: Record<string, number> = {};
        for (const [k, v] of Object.entries(c)) if (typeof v === 'number') plain[k] = v;
        return plain;
      }),
    };
    return result;
  }
}

/** 0 train, 1 validation, or 2 when only the row's position can decide (see split.ts). */
function splitDecider(rule: SplitRule): (record: RawRecord) => number {
  if (rule.kind === 'train') return () => 0;
  if (rule.kind === 'valid') return () => 1;
  const threshold = rule.fraction * 2 ** 32;
  const column = rule.group;
  return (record) => {
    const group = column === null ? undefined : record[column];
    if (typeof group !== 'number' && typeof group !== 'string') return 2;
    return hashValue(group, SPLIT_SEED) < threshold ? 1 : 0;
  };
}

/** The decision for a row decided by its position, as validationSplitter makes it. */
export function splitByPosition(fraction: number, position: number): boolean {
  return hashValue(position, SPLIT_SEED) < fraction * 2 ** 32;
}

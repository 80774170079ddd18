// `wndc preprocess`: raw rows -> the compiled transforms -> encoded shards, in two streaming passes
// (numeric statistics first when the spec leaves some to the data, then encoding). Bad rows stop
// the run with a message naming file, row and column, or are skipped and counted up to a limit.
// Blocks of rows are decoded and encoded on worker threads (encode-pool.ts) and applied here in
// source order: shards, manifest, counters and messages are the same for any number of threads.

import type { ModelIR } from '../../compiler/ir.js';
import { loadCompiledModel, type LoadedModel } from '../load-model.js';
import { DataError, type RawChunk, type RawSource } from './contracts.js';
import { splitByPosition, type BadRow, type CounterValues, type EncodeResult, type RawBlock, type SplitRule, type StatsResult, type Task, type TaskResult } from './encode-block.js';
import { defaultThreads, EncodePool } from './encode-pool.js';
import type { EncodedRows } from './shards.js';
import type { ColumnBlock } from './sources/block.js';
import { StatsAccumulator, type NumericStatsValues } from './stats.js';

/** Where encoded rows go: a shard writer, or a test's collector. */
export interface EncodedSink {
  /** Appends rows [from, to) of `rows`. */
  appendRows(rows: EncodedRows, from: number, to: number): void;
  /** Completes the output (manifest written last); returns the rows written. */
  finish(details: { stats: NumericStatsValues; counters: Record<string, Record<string, number>> }): Promise<number>;
  /** Removes what was written so far: nothing half-written stays behind. */
  abort(): Promise<void>;
}

export interface PreprocessInputs {
  train: RawSource;
  /** A separate validation source (`--valid IN2`), read after the statistics of `train`. */
  valid?: RawSource;
  /** Or a share of `train` split off by group (`--valid-fraction f`). */
  validFraction?: number;
  maxBadRows: number;
  /** Threads encoding rows (default: the available cores); 1 encodes on the main thread. */
  threads?: number;
}

export interface PreprocessSinks {
  train: EncodedSink;
  valid?: EncodedSink;
}

export interface PreprocessReport {
  trainRows: number;
  validRows: number;
  badRows: number;
  /** The first few skipped rows' messages, for the summary. */
  badRowSamples: string[];
  stats: NumericStatsValues;
  counters: Record<string, Record<string, number>>;
}

export class TooManyBadRowsError extends Error {
  constructor(
    readonly limit: number,
    readonly last: DataError,
  ) {
    super(`${last.message}\nmore than ${limit} bad row${limit === 1 ? '' : 's'} (--max-bad-rows ${limit}); fix the data or raise the limit`);
  }
}

/** Counts and samples skipped rows; throws once the limit is passed. */
class BadRows {
  count = 0;
  readonly samples: string[] = [];

  constructor(private readonly limit: number) {}

  skip(error: DataError): void {
    this.count++;
    if (this.samples.length < 5) this.samples.push(error.message);
    if (this.count > this.limit) throw new TooManyBadRowsError(this.limit, error);
  }
}

export async function preprocess(ir: ModelIR, inputs: PreprocessInputs, sinks: PreprocessSinks): Promise<PreprocessReport> {
  const pool = new EncodePool(ir, inputs.threads ?? defaultThreads());
  try {
    return await preprocessWith(pool, ir, inputs, sinks);
  } finally {
    await pool.close();
  }
}

async function preprocessWith(pool: EncodePool, ir: ModelIR, inputs: PreprocessInputs, sinks: PreprocessSinks): Promise<PreprocessReport> {
  const model = await loadCompiledModel(ir);
  const stats = await computeStats(pool, model, inputs.train);
  const bad = new BadRows(inputs.maxBadRows);
  const counters: CounterValues = { rows: 0, roleDefaults: 0, features: ir.features.map(() => ({})) };
  const fraction = inputs.validFraction ?? 0;
  const byFraction = fraction > 0;
  if ((byFraction || inputs.valid !== undefined) && sinks.valid === undefined) throw new Error('internal: validation rows need a validation sink');
  const rows = { train: 0, valid: 0 };
  /** Applies one block's result: its bad rows (with those the source reported before it), counters and rows. */
  const apply = (result: EncodeResult, item: SourceItem, readBefore: number): void => {
    for (const error of inOrder(item, result.bad)) {
      if (inputs.maxBadRows === 0) throw error;
      bad.skip(error);
    }
    addCounters(counters, result.counters);
    let start = 0;
    let current: 'train' | 'valid' = 'train';
    for (let i = 0; i <= result.rows; i++) {
      let split: 'train' | 'valid' = current;
      if (i < result.rows) {
        const code = result.split[i]!;
        split = code === 2 ? (splitByPosition(fraction, readBefore + result.positions[i]!) ? 'valid' : 'train') : code === 1 ? 'valid' : 'train';
        if (i === start) current = split;
      }
      if (i === result.rows || split !== current) {
        if (i > start) (current === 'valid' ? sinks.valid! : sinks.train).appendRows(result, start, i);
        rows[current] += i - start;
        start = i;
        current = split;
      }
    }
  };
  const encodeSource = async (source: RawSource, split: SplitRule) => {
    const listSeparator = listSeparatorOf(source);
    let readBefore = 0;
    await ordered(
      pool,
      source,
      (block) => ({ kind: 'encode', block, stats, split, listSeparator }),
      (result, item) => {
        const r = result as EncodeResult;
        apply(r, item, readBefore);
        readBefore += r.read;
      },
      (errors) => {
        for (const error of errors) {
          if (inputs.maxBadRows === 0) throw error;
          bad.skip(error);
        }
      },
    );
  };
  try {
    await encodeSource(inputs.train, byFraction ? { kind: 'fraction', fraction, group: ir.roles.group } : { kind: 'train' });
    if (inputs.valid !== undefined) await encodeSource(inputs.valid, { kind: 'valid' });
  } catch (e) {
    await Promise.all([sinks.train, sinks.valid].map((s) => s?.abort()));
    throw e;
  }
  const counterTable = countersTable(ir, counters);
  await sinks.train.finish({ stats, counters: counterTable });
  if (sinks.valid !== undefined) await sinks.valid.finish({ stats, counters: counterTable });
  return { trainRows: rows.train, validRows: rows.valid, badRows: bad.count, badRowSamples: bad.samples, stats, counters: counterTable };
}

/** A source that yields column blocks (the DuckDB sources); others yield RawChunks. */
interface BlockSource extends RawSource {
  blocks(): AsyncIterable<ColumnBlock>;
}

function hasBlocks(source: RawSource): source is BlockSource {
  return typeof (source as Partial<BlockSource>).blocks === 'function';
}

function listSeparatorOf(source: RawSource): string {
  return (source as { listSeparator?: string }).listSeparator ?? '|';
}

/** A block of rows, with the bad rows the source reported (record sources) since the last one. */
interface SourceItem {
  block: RawBlock;
  sourceErrors: DataError[];
}

/**
 * Reads `source` block by block, runs each block's task on the pool (up to `pool.depth` at a
 * time) and hands the results to `consume` in source order. Bad rows a record source reports
 * while reading are kept with the next block (and the last ones given to `rest`). When reading
 * fails, the blocks read before are consumed first, so that their bad rows are reported as a
 * single thread would have.
 */
async function ordered(
  pool: EncodePool,
  source: RawSource,
  task: (block: RawBlock) => Task,
  consume: (result: TaskResult, item: SourceItem) => void,
  rest: (errors: DataError[]) => void,
): Promise<void> {
  const inFlight: { item: SourceItem; result: Promise<TaskResult> }[] = [];
  let sourceErrors: DataError[] = [];
  const items: AsyncIterable<SourceItem> = hasBlocks(source)
    ? mapAsync(source.blocks(), (block) => ({ block, sourceErrors: [] }))
    : mapAsync(
        source.chunks((error) => sourceErrors.push(error)),
        (chunk: RawChunk) => {
          const item: SourceItem = { block: { kind: 'records', file: chunk.file, firstRow: chunk.firstRow, rows: chunk.rows }, sourceErrors };
          sourceErrors = [];
          return item;
        },
      );
  const consumeOldest = async () => {
    const next = inFlight.shift()!;
    consume(await next.result, next.item);
  };
  const iterator = items[Symbol.asyncIterator]();
  try {
    for (;;) {
      let next: IteratorResult<SourceItem>;
      try {
        next = await iterator.next();
      } catch (error) {
        // Reading failed: the blocks read before come first, as on one thread.
        while (inFlight.length > 0) await consumeOldest();
        throw error;
      }
      if (next.done === true) break;
      const result = pool.run(task(next.value.block));
      result.catch(() => {}); // awaited in order below; a failure is reported there
      inFlight.push({ item: next.value, result });
      if (inFlight.length >= pool.depth) await consumeOldest();
    }
    while (inFlight.length > 0) await consumeOldest();
    rest(sourceErrors);
  } finally {
    await iterator.return?.();
    // After a failure, let the tasks still running settle before the pool closes.
    await Promise.allSettled(inFlight.map((f) => f.result));
  }
}

async function* mapAsync<T, U>(items: AsyncIterable<T>, f: (item: T) => U): AsyncGenerator<U> {
  for await (const item of items) yield f(item);
}

/**
 * A block's bad rows in file order: those the source reported while reading (from earlier files
 * first), merged by row number with those found when decoding and encoding the block.
 */
function inOrder(item: SourceItem, bad: readonly BadRow[]): DataError[] {
  const file = item.block.file;
  const errors = bad.map((b) => new DataError({ file, row: b.row }, b.column, b.problem));
  if (item.sourceErrors.length === 0) return errors;
  const earlier = item.sourceErrors.filter((e) => e.origin.file !== file);
  const same = item.sourceErrors.filter((e) => e.origin.file === file);
  return [...earlier, ...[...same, ...errors].sort((a, b) => a.origin.row - b.origin.row)];
}

function addCounters(total: CounterValues, add: CounterValues): void {
  total.rows += add.rows;
  total.roleDefaults += add.roleDefaults;
  add.features.forEach((counts, i) => {
    const target = total.features[i]!;
    for (const [k, v] of Object.entries(counts)) target[k] = (target[k] ?? 0) + v;
  });
}

/**
 * The first pass: statistics of the training rows only (validation must not leak into
 * training). Column blocks are decoded on the pool; the running statistics are then updated on
 * this thread in row order, so the result does not depend on the number of threads.
 */
async function computeStats(pool: EncodePool, model: LoadedModel, source: RawSource): Promise<NumericStatsValues> {
  const acc = new StatsAccumulator(model.statsNeeded);
  if (acc.empty) return {};
  const listSeparator = listSeparatorOf(source);
  // Bad rows are reported by the encoding pass; here they are just left out.
  if (hasBlocks(source)) {
    await ordered(
      pool,
      source,
      (block) => ({ kind: 'stats', block: block as ColumnBlock, listSeparator }),
      (result) => acc.addColumns((result as StatsResult).values),
      () => {},
    );
  } else {
    for await (const chunk of source.chunks(() => {})) for (const row of chunk.rows) acc.add(row);
  }
  return acc.result();
}

/** Non-zero counters per feature (out-of-range ids, OOV values, truncated bags, defaults used). */
function countersTable(ir: ModelIR, counters: CounterValues): Record<string, Record<string, number>> {
  const table: Record<string, Record<string, number>> = {};
  ir.features.forEach((f, i) => {
    const c = counters.features[i];
    if (c === undefined) return;
    const nonZero = Object.fromEntries(Object.entries(c).filter(([, v]) => typeof v === 'number' && v > 0));
    if (Object.keys(nonZero).length > 0) table[f.name] = nonZero;
  });
  return table;
}

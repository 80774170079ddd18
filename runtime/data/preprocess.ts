// `wndc preprocess`: raw rows -> the compiled transforms -> encoded shards, in two streaming passes
// (numeric statistics first when the spec leaves some to the data, then encoding). Bad rows stop
// the run with a message naming file, row and column, or are skipped and counted up to a limit.

import type { ModelIR } from '../../compiler/ir.js';
import type { EncodedRow } from '../compiled-model.js';
import { loadCompiledModel, type LoadedModel } from '../load-model.js';
import { MissingColumnError } from '../transforms.js';
import { DataError, type RawChunk, type RawRecord, type RawSource } from './contracts.js';
import { validationSplitter, type Splitter } from './split.js';
import { StatsAccumulator, type NumericStatsValues } from './stats.js';

/** Where encoded rows go: a shard writer, or a test's collector. */
export interface EncodedSink {
  append(row: EncodedRow): void;
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
  const model = await loadCompiledModel(ir);
  const stats = await computeStats(model, inputs.train);
  const bad = new BadRows(inputs.maxBadRows);
  const counters = model.createCounters();
  const out = model.createEncodedRow();
  const splitter: Splitter | undefined = inputs.validFraction !== undefined && inputs.validFraction > 0 ? validationSplitter(inputs.validFraction, ir.roles.group) : undefined;
  if ((splitter !== undefined || inputs.valid !== undefined) && sinks.valid === undefined) throw new Error('internal: validation rows need a validation sink');
  const rows = { train: 0, valid: 0 };
  const onBadRow = inputs.maxBadRows > 0 ? (e: DataError) => bad.skip(e) : undefined;
  /** Encodes a chunk's rows, each into the split `splitOf` names; rows without a value for a column lacking a default are bad rows. */
  const encodeChunk = (chunk: RawChunk, splitOf: (row: RawRecord, index: number) => 'train' | 'valid', rowBase: number): void => {
    for (let i = 0; i < chunk.rows.length; i++) {
      const row = chunk.rows[i]!;
      try {
        model.encodeRow(row, out, stats, counters);
      } catch (e) {
        if (!(e instanceof MissingColumnError)) throw e;
        const error = new DataError({ file: chunk.file, row: chunk.firstRow + i }, e.column, 'missing value, and the column has no default');
        if (onBadRow === undefined) throw error;
        onBadRow(error);
        continue;
      }
      const split = splitOf(row, rowBase + i);
      (split === 'valid' ? sinks.valid! : sinks.train).append(out);
      rows[split]++;
    }
  };
  try {
    let seen = 0;
    for await (const chunk of inputs.train.chunks(onBadRow)) {
      encodeChunk(chunk, (row, index) => (splitter !== undefined && splitter(row, index) ? 'valid' : 'train'), seen);
      seen += chunk.rows.length;
    }
    if (inputs.valid !== undefined) {
      for await (const chunk of inputs.valid.chunks(onBadRow)) encodeChunk(chunk, () => 'valid', 0);
    }
  } catch (e) {
    await Promise.all([sinks.train, sinks.valid].map((s) => s?.abort()));
    throw e;
  }
  const counterTable = countersTable(ir, counters);
  await sinks.train.finish({ stats, counters: counterTable });
  if (sinks.valid !== undefined) await sinks.valid.finish({ stats, counters: counterTable });
  return { trainRows: rows.train, validRows: rows.valid, badRows: bad.count, badRowSamples: bad.samples, stats, counters: counterTable };
}

/** The first pass: statistics of the training rows only (validation must not leak into training). */
async function computeStats(model: LoadedModel, source: RawSource): Promise<NumericStatsValues> {
  const acc = new StatsAccumulator(model.statsNeeded);
  if (acc.empty) return {};
  // Bad rows are reported by the encoding pass; here they are just left out.
  for await (const chunk of source.chunks(() => {})) for (const row of chunk.rows) acc.add(row);
  return acc.result();
}

/** Non-zero counters per feature (out-of-range ids, OOV values, truncated bags, defaults used). */
function countersTable(ir: ModelIR, counters: ReturnType<LoadedModel['createCounters']>): Record<string, Record<string, number>> {
  const table: Record<string, Record<string, number>> = {};
  ir.features.forEach((f, i) => {
    const c = counters.features[i] as unknown as Record<string, number> | undefined;
    if (c === undefined) return;
    const nonZero = Object.fromEntries(Object.entries(c).filter(([, v]) => typeof v === 'number' && v > 0));
    if (Object.keys(nonZero).length > 0) table[f.name] = nonZero;
  });
  return table;
}

// What an emitted model module exports and the runtime consumes: the encoded-row buffers laid out
// by the IR, and the CompiledModel entry point (the IR plus a row encoder).

import type { EncodedLayoutIR, ModelIR } from '../compiler/ir.js';
import { createCounters, statFieldsOf, Vocabulary, type EncodeCounters, type StatField } from './transforms.js';

/**
 * One encoded example, reused from row to row. Vector widths and the offset of every feature in
 * them come from `ir.layout`: ids (int32, multi-valued features padded to max_len with the stored
 * count in `lengths`), per-id weights of weighted features, and normalised numeric values.
 */
export interface EncodedRow {
  readonly ids: Int32Array;
  readonly lengths: Int32Array;
  readonly weights: Float32Array;
  readonly numeric: Float32Array;
  label: number;
  /** The ranking group (request id); 0 when the model has no group column. */
  group: number;
  /** The example weight; 1 when the model has no weight column. */
  weight: number;
}

export function createEncodedRow(layout: EncodedLayoutIR): EncodedRow {
  return {
    ids: new Int32Array(layout.idsWidth),
    lengths: new Int32Array(layout.lengthsWidth),
    weights: new Float32Array(layout.weightsWidth),
    numeric: new Float32Array(layout.numericWidth),
    label: 0,
    group: 0,
    weight: 1,
  };
}

/** Data statistics a numeric feature needs and its spec does not fix. */
export interface StatsNeed {
  feature: string;
  column: string;
  fields: readonly StatField[];
}

/**
 * The statistics the data pipeline must compute, in raw column units, before rows can be
 * encoded: one entry per encoded numeric feature whose normalisation reads a statistic the IR
 * leaves unset. The emitted `NumericStats` interface has exactly these keys and fields.
 */
export function statsNeeded(ir: ModelIR): StatsNeed[] {
  const needs: StatsNeed[] = [];
  for (const slot of ir.layout.numeric) {
    const feature = ir.features.find((f) => f.name === slot.feature);
    if (feature?.kind !== 'numeric') continue;
    const fields = statFieldsOf(feature.norm).filter((field) => feature.stats[field] === undefined);
    if (fields.length > 0) needs.push({ feature: feature.name, column: feature.column, fields });
  }
  return needs;
}

/**
 * The vocabulary of `ir.features[featureIndex]` (a vocabulary feature or a multi-hot feature by
 * vocabulary). Emitted modules build theirs from the IR so that the values are written once.
 */
export function vocabularyOf(ir: ModelIR, featureIndex: number): Vocabulary {
  const feature = ir.features[featureIndex];
  if (feature?.kind === 'vocabulary') return new Vocabulary(feature.values, feature.oovBuckets);
  if (feature?.kind === 'multi_hot' && feature.mapping.by === 'vocabulary') return new Vocabulary(feature.mapping.values, feature.mapping.oovBuckets);
  throw new Error(`internal: IR feature ${featureIndex} has no vocabulary`);
}

/** The default export of an emitted module: what the runtime trains. */
export interface CompiledModel<Row, Stats> {
  readonly ir: ModelIR;
  readonly statsNeeded: readonly StatsNeed[];
  /**
   * Encodes `row` into `out`, overwriting every slot of the layout. Repaired data problems go to
   * `counters`; a missing field without a default throws MissingColumnError.
   */
  encodeRow(row: Row, out: EncodedRow, stats: Stats, counters: EncodeCounters): void;
  createEncodedRow(): EncodedRow;
  /** Counters with one entry per IR feature, for encodeRow. */
  createCounters(): EncodeCounters;
}

export function defineModel<Row, Stats>(
  ir: ModelIR,
  encodeRow: (row: Row, out: EncodedRow, stats: Stats, counters: EncodeCounters) => void,
): CompiledModel<Row, Stats> {
  const needs = statsNeeded(ir);
  return {
    ir,
    statsNeeded: needs,
    encodeRow,
    createEncodedRow: () => createEncodedRow(ir.layout),
    createCounters: () => createCounters(ir.features.map((f) => f.name)),
  };
}

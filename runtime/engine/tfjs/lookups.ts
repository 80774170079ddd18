// Table lookups done on the host: the rows a batch reads are copied out of the tables into one
// dense block per lookup group, with a coefficient per slot (the combiner and the id weights),
// and tfjs differentiates with respect to that block, never the whole table. The block's
// gradient is then summed per distinct id into TensorFlow's IndexedSlices form, so a 300000 x 128
// table costs only the rows the batch touched.
//
// The semantics are those of TF's safe_embedding_lookup_sparse, which both embedding columns and
// the linear model's categorical columns use: the valid ids of a row are the first `length`
// slots of its bag (one slot for a single-valued feature); with weights, ids whose weight is not
// positive are dropped; then
//   sum:   sum(w_i v_i)
//   mean:  sum(w_i v_i) / sum(w_i)
//   sqrtn: sum(w_i v_i) / sqrt(sum(w_i^2))
// and a row without valid ids gives zeros.

import type { Batch } from '../../data/contracts.js';
import type { SparseGradient } from '../engine.js';

export type Combiner = 'mean' | 'sum' | 'sqrtn';

/** Where a categorical feature's ids are stored in a batch (an entry of `ir.layout.ids`). */
export interface IdSlots {
  feature: string;
  offset: number;
  width: number;
  lengthSlot: number | null;
  weightOffset: number | null;
}

export interface BatchWidths {
  ids: number;
  lengths: number;
  weights: number;
}

/** One feature looked up in one table. */
export interface Lookup {
  /** The feature that reads the table (an embedding, or a wide feature), for messages. */
  feature: string;
  slots: IdSlots;
  table: string;
  rows: number;
  dim: number;
  combiner: Combiner;
}

/** The rows a batch reads for a group of lookups of one width: slots side by side. */
export interface GatheredRows {
  lookups: readonly Lookup[];
  /** Batch rows. */
  size: number;
  /** Slots per batch row: the sum of the lookups' widths. */
  slots: number;
  dim: number;
  /** size x slots x dim: the table row of each slot, zeros for an empty slot. */
  rows: Float32Array;
  /** size x slots: each slot's factor in its lookup's sum; null when every one is 1. */
  coefficients: Float32Array | null;
  /** size x slots: the id read at each slot, -1 where the slot is empty or its id dropped. */
  ids: Int32Array;
}

/** Whether every slot of `lookup` always has coefficient 1 (one unweighted id per row). */
function alwaysOne(lookup: Lookup): boolean {
  return lookup.slots.lengthSlot === null && lookup.slots.weightOffset === null && lookup.slots.width === 1;
}

/** Copies the rows that `lookups` (all of width `dim`) read for the first `batch.size` rows. */
export function gatherRows(batch: Batch, widths: BatchWidths, lookups: readonly Lookup[], tables: ReadonlyMap<string, Float32Array>): GatheredRows {
  const size = batch.size;
  const dim = lookups[0]?.dim ?? 1;
  const slots = lookups.reduce((s, l) => s + l.slots.width, 0);
  const rows = new Float32Array(size * slots * dim);
  const ids = new Int32Array(size * slots).fill(-1);
  const coefficients = lookups.every(alwaysOne) ? null : new Float32Array(size * slots);
  let start = 0;
  for (const lookup of lookups) {
    if (lookup.dim !== dim) throw new Error(`internal: lookups of widths ${dim} and ${lookup.dim} gathered together`);
    const table = tables.get(lookup.table);
    if (table === undefined) throw new Error(`internal: no table \`${lookup.table}\``);
    const { offset, width, lengthSlot, weightOffset } = lookup.slots;
    for (let b = 0; b < size; b++) {
      const count = lengthSlot === null ? width : Math.min(Math.max(batch.lengths[b * widths.lengths + lengthSlot]!, 0), width);
      let norm = 0;
      for (let j = 0; j < count; j++) {
        const id = batch.ids[b * widths.ids + offset + j]!;
        const weight = weightOffset === null ? 1 : batch.weights[b * widths.weights + weightOffset + j]!;
        if (!(weight > 0)) continue; // TF prunes non-positive weights before the lookup
        if (!(id >= 0 && id < lookup.rows)) {
          throw new Error(`batch row ${b}: id ${id} of \`${lookup.feature}\` is outside its table \`${lookup.table}\` of ${lookup.rows} rows`);
        }
        const slot = b * slots + start + j;
        ids[slot] = id;
        rows.set(table.subarray(id * dim, id * dim + dim), slot * dim);
        if (coefficients !== null) coefficients[slot] = weight;
        norm += lookup.combiner === 'mean' ? weight : lookup.combiner === 'sqrtn' ? weight * weight : 0;
      }
      if (coefficients !== null && norm > 0 && lookup.combiner !== 'sum') {
        const scale = lookup.combiner === 'mean' ? norm : Math.sqrt(norm);
        for (let j = 0; j < count; j++) coefficients[b * slots + start + j]! /= scale;
      }
    }
    start += width;
  }
  return { lookups, size, slots, dim, rows, coefficients, ids };
}

/**
 * Sums gradients of gathered rows per table and distinct id. `add` takes one group's gradient
 * (size x slots x dim, the layout of `rows`); `finish` returns one SparseGradient per table that
 * has a touched row, rows ascending. Several groups may feed one table (shared embeddings).
 */
export class RowGradientAccumulator {
  private readonly touched = new Map<string, { rows: number; dim: number; ids: number[]; parts: { group: GatheredRows; grad: Float32Array; start: number; width: number }[] }>();
  /** Per table: id -> position among its touched ids, -1 when untouched; reset by `finish`. */
  private readonly positions = new Map<string, Int32Array>();

  add(group: GatheredRows, grad: Float32Array): void {
    if (grad.length !== group.rows.length) throw new Error(`internal: gradient of ${grad.length} values for ${group.rows.length} gathered values`);
    let start = 0;
    for (const lookup of group.lookups) {
      let entry = this.touched.get(lookup.table);
      if (entry === undefined) {
        entry = { rows: lookup.rows, dim: lookup.dim, ids: [], parts: [] };
        this.touched.set(lookup.table, entry);
      }
      const position = this.positionsOf(lookup.table, lookup.rows);
      for (let b = 0; b < group.size; b++) {
        for (let j = 0; j < lookup.slots.width; j++) {
          const id = group.ids[b * group.slots + start + j]!;
          if (id >= 0 && position[id] === -1) {
            position[id] = entry.ids.length;
            entry.ids.push(id);
          }
        }
      }
      entry.parts.push({ group, grad, start, width: lookup.slots.width });
      start += lookup.slots.width;
    }
  }

  finish(): SparseGradient[] {
    const out: SparseGradient[] = [];
    for (const [name, entry] of this.touched) {
      const position = this.positions.get(name)!;
      const rows = Int32Array.from(entry.ids).sort();
      rows.forEach((id, k) => (position[id] = k));
      const dim = entry.dim;
      const values = new Float32Array(rows.length * dim);
      for (const { group, grad, start, width } of entry.parts) {
        for (let b = 0; b < group.size; b++) {
          for (let j = 0; j < width; j++) {
            const slot = b * group.slots + start + j;
            const id = group.ids[slot]!;
            if (id < 0) continue;
            const to = position[id]! * dim;
            const from = slot * dim;
            for (let d = 0; d < dim; d++) values[to + d]! += grad[from + d]!;
          }
        }
      }
      for (const id of rows) position[id] = -1;
      if (rows.length > 0) out.push({ name, rows, values, dim });
    }
    this.touched.clear();
    return out;
  }

  private positionsOf(table: string, rows: number): Int32Array {
    let position = this.positions.get(table);
    if (position === undefined) {
      position = new Int32Array(rows).fill(-1);
      this.positions.set(table, position);
    }
    return position;
  }
}

/**
 * One-hot (multi-hot) columns of a categorical feature for the first `batch.size` rows: size x
 * buckets, each position the count of its id in the row's bag, or the sum of its weights for a
 * weighted feature (TF's indicator_column; no pruning there).
 */
export function indicatorColumns(batch: Batch, widths: BatchWidths, slots: IdSlots, buckets: number): Float32Array {
  const out = new Float32Array(batch.size * buckets);
  for (let b = 0; b < batch.size; b++) {
    const count = slots.lengthSlot === null ? slots.width : Math.min(Math.max(batch.lengths[b * widths.lengths + slots.lengthSlot]!, 0), slots.width);
    for (let j = 0; j < count; j++) {
      const id = batch.ids[b * widths.ids + slots.offset + j]!;
      if (!(id >= 0 && id < buckets)) throw new Error(`batch row ${b}: id ${id} of \`${slots.feature}\` is outside [0, ${buckets})`);
      out[b * buckets + id]! += slots.weightOffset === null ? 1 : batch.weights[b * widths.weights + slots.weightOffset + j]!;
    }
  }
  return out;
}

/** Columns [offset, offset + width) of a row-major matrix with `stride` columns, first `size` rows. */
export function columns(matrix: Float32Array, stride: number, size: number, spans: readonly { offset: number; width: number }[]): Float32Array {
  const width = spans.reduce((s, span) => s + span.width, 0);
  const out = new Float32Array(size * width);
  for (let b = 0; b < size; b++) {
    let to = b * width;
    for (const span of spans) {
      out.set(matrix.subarray(b * stride + span.offset, b * stride + span.offset + span.width), to);
      to += span.width;
    }
  }
  return out;
}

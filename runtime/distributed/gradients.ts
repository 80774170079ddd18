// Summing one data-parallel step's gradients over the ranks, so that every rank applies the same
// update, the one a single process would apply to the whole global batch.
//
// Each rank's gradients are those of the mean loss over its own b rows; weighted by b / B (B the
// global batch's rows) and summed over the ranks they give the gradient of the mean over all B
// rows. What travels:
//   - one float32 all-reduce holding every dense gradient, the batch-norm statistics, and the
//     tables small enough to send whole (dense exchange, with a touched-row count per row, so the
//     union of the ranks' touched rows is known exactly);
//   - one all-gather of the touched rows and their gradient rows of the larger tables (sparse
//     exchange), summed per row in rank order on every rank;
//   - one float64 all-reduce of the loss.
// Which tables go which way depends only on their size (`exchangeOf`), so every rank lays out the
// buffers identically, whatever its batch touched.

import type { ModelIR } from '../../compiler/ir.js';
import type { Gradients, NamedTensor, SparseGradient } from '../engine/engine.js';
import { parameterSpecs } from '../engine/init.js';
import type { Collective } from './collective.js';

/**
 * A table whose whole gradient is at most this many bytes is all-reduced densely; larger ones
 * exchange only touched rows. 1 MiB all-reduces in well under a millisecond on NVLink and a few on
 * a network, while a sparse exchange of such a table would cost as much and gather rather than sum.
 */
export const DENSE_EXCHANGE_MAX_BYTES = 1 << 20;

export type Exchange = 'dense' | 'sparse';

/** How a table's gradient is summed over the ranks: by its size alone. */
export function exchangeOf(rows: number, dim: number): Exchange {
  return rows * dim * 4 <= DENSE_EXCHANGE_MAX_BYTES ? 'dense' : 'sparse';
}

interface Slot {
  name: string;
  shape: number[];
  offset: number;
  length: number;
}

interface TableSlot extends Slot {
  rows: number;
  dim: number;
  /** Dense exchange: the touched counts follow the gradient, `rows` floats from `countsOffset`. */
  countsOffset: number;
}

/** Where every gradient sits in the step's buffers: a pure function of the model. */
export class GradientLayout {
  readonly dense: Slot[] = [];
  /** Batch-norm statistics: the mean and the mean of squares (see `reduceGradients`). */
  readonly statistics: Slot[] = [];
  readonly denseTables: TableSlot[] = [];
  readonly sparseTables: { name: string; rows: number; dim: number }[] = [];
  /** Every table, in parameter order: the order the reduced sparse gradients are listed in. */
  readonly tables: string[] = [];
  readonly floats: number;

  constructor(ir: ModelIR) {
    let at = 0;
    for (const spec of parameterSpecs(ir)) {
      const length = spec.shape.reduce((a, b) => a * b, 1);
      if (spec.role === 'dense') {
        this.dense.push({ name: spec.name, shape: [...spec.shape], offset: at, length });
        at += length;
      } else if (spec.role === 'statistic') {
        this.statistics.push({ name: spec.name, shape: [...spec.shape], offset: at, length });
        at += length;
      } else {
        const [rows = 0, dim = 1] = spec.shape;
        this.tables.push(spec.name);
        if (exchangeOf(rows, dim) === 'dense') {
          this.denseTables.push({ name: spec.name, shape: [...spec.shape], offset: at, length, rows, dim, countsOffset: at + length });
          at += length + rows;
        } else {
          this.sparseTables.push({ name: spec.name, rows, dim });
        }
      }
    }
    this.floats = at;
  }
}

/**
 * The step's gradients summed over the ranks (the same bits on every rank): `grads` are this
 * rank's, of the mean loss over its `localRows`; `globalRows` is the global batch's row count.
 * The loss returned is the global batch's mean loss.
 */
export async function reduceGradients(collective: Collective, layout: GradientLayout, grads: Gradients, localRows: number, globalRows: number): Promise<Gradients> {
  const weight = globalRows === 0 ? 0 : localRows / globalRows;
  const buffer = new Float32Array(layout.floats);
  const byName = new Map(grads.dense.map((g) => [g.name, g]));
  for (const slot of layout.dense) {
    const g = byName.get(slot.name);
    if (g === undefined) continue; // an empty batch may leave a gradient out: it adds nothing
    if (g.data.length !== slot.length) throw new Error(`internal: the gradient of \`${slot.name}\` has ${g.data.length} values, the layout ${slot.length}`);
    scaleInto(buffer, slot.offset, g.data, weight);
  }
  // Batch-norm moments: the global mean is the weighted mean of the ranks' means, and the global
  // (biased) variance E[x^2] - mean^2, from the weighted mean of each rank's E[x^2] = var + mean^2.
  const statistics = new Map((grads.statistics ?? []).map((s) => [s.name, s]));
  for (const slot of layout.statistics) {
    const s = statistics.get(slot.name);
    if (s === undefined) continue;
    if (slot.name.endsWith('/moving_variance')) {
      const mean = statistics.get(slot.name.replace(/\/moving_variance$/, '/moving_mean'));
      if (mean === undefined) throw new Error(`internal: a batch variance without its mean for \`${slot.name}\``);
      for (let i = 0; i < slot.length; i++) buffer[slot.offset + i] = (s.data[i]! + mean.data[i]! * mean.data[i]!) * weight;
    } else {
      scaleInto(buffer, slot.offset, s.data, weight);
    }
  }
  const sparseByName = new Map(grads.sparse.map((g) => [g.name, g]));
  for (const table of layout.denseTables) {
    const g = sparseByName.get(table.name);
    if (g === undefined) continue;
    for (let k = 0; k < g.rows.length; k++) {
      const row = g.rows[k]!;
      const at = table.offset + row * table.dim;
      for (let j = 0; j < table.dim; j++) buffer[at + j] = g.values[k * table.dim + j]! * weight;
      buffer[table.countsOffset + row] = 1;
    }
  }

  const loss = new Float64Array([grads.loss * weight]);
  await collective.allReduceSum(buffer);
  await collective.allReduceSum(loss);
  const sparse = await exchangeSparse(collective, layout, sparseByName, weight);

  const out: Gradients = { loss: loss[0]!, dense: [], sparse: [], statistics: [] };
  for (const slot of layout.dense) out.dense.push({ name: slot.name, shape: slot.shape, data: buffer.slice(slot.offset, slot.offset + slot.length) });
  const reducedStatistics = new Map(layout.statistics.map((slot) => [slot.name, buffer.subarray(slot.offset, slot.offset + slot.length)]));
  for (const slot of layout.statistics) {
    const data = Float32Array.from(reducedStatistics.get(slot.name)!);
    if (slot.name.endsWith('/moving_variance')) {
      const mean = reducedStatistics.get(slot.name.replace(/\/moving_variance$/, '/moving_mean'))!;
      for (let i = 0; i < data.length; i++) data[i] = Math.max(0, data[i]! - mean[i]! * mean[i]!);
    }
    out.statistics!.push({ name: slot.name, shape: slot.shape, data } satisfies NamedTensor);
  }
  const merged = new Map<string, SparseGradient>();
  for (const table of layout.denseTables) {
    const touched: number[] = [];
    for (let row = 0; row < table.rows; row++) if (buffer[table.countsOffset + row]! > 0) touched.push(row);
    if (touched.length === 0) continue;
    const rows = Int32Array.from(touched);
    const values = new Float32Array(rows.length * table.dim);
    rows.forEach((row, k) => values.set(buffer.subarray(table.offset + row * table.dim, table.offset + (row + 1) * table.dim), k * table.dim));
    merged.set(table.name, { name: table.name, rows, values, dim: table.dim });
  }
  for (const g of sparse) merged.set(g.name, g);
  out.sparse = layout.tables.flatMap((name) => merged.get(name) ?? []);
  return out;
}

function scaleInto(buffer: Float32Array, offset: number, data: Float32Array, weight: number): void {
  if (weight === 1) buffer.set(data, offset);
  else for (let i = 0; i < data.length; i++) buffer[offset + i] = data[i]! * weight;
}

/**
 * The sparse exchange: every rank sends, per large table, its touched rows and their gradient rows
 * (weighted); every rank then sums the rows of all ranks, in rank order, over the union of rows.
 * Wire format per table, in layout order: int32 count, count int32 rows, count x dim float32 values.
 */
async function exchangeSparse(collective: Collective, layout: GradientLayout, local: Map<string, SparseGradient>, weight: number): Promise<SparseGradient[]> {
  if (layout.sparseTables.length === 0) return [];
  let words = 0;
  for (const table of layout.sparseTables) words += 1 + (local.get(table.name)?.rows.length ?? 0) * (1 + table.dim);
  const message = new ArrayBuffer(words * 4);
  const ints = new Int32Array(message);
  const floats = new Float32Array(message);
  let at = 0;
  for (const table of layout.sparseTables) {
    const g = local.get(table.name);
    const count = g?.rows.length ?? 0;
    ints[at++] = count;
    if (g === undefined) continue;
    ints.set(g.rows, at);
    at += count;
    for (let i = 0; i < count * table.dim; i++) floats[at + i] = g.values[i]! * weight;
    at += count * table.dim;
  }
  const parts = await collective.allGather(new Uint8Array(message));
  // Each rank's message, read table by table.
  const readers = parts.map((bytes) => {
    const copy = bytes.byteOffset % 4 === 0 ? bytes : bytes.slice();
    return { ints: new Int32Array(copy.buffer, copy.byteOffset, copy.byteLength / 4), floats: new Float32Array(copy.buffer, copy.byteOffset, copy.byteLength / 4), at: 0 };
  });
  const out: SparseGradient[] = [];
  for (const table of layout.sparseTables) {
    const pieces = readers.map((r) => {
      const count = r.ints[r.at++]!;
      const rows = r.ints.subarray(r.at, r.at + count);
      r.at += count;
      const values = r.floats.subarray(r.at, r.at + count * table.dim);
      r.at += count * table.dim;
      return { rows, values };
    });
    const total = pieces.reduce((n, p) => n + p.rows.length, 0);
    if (total === 0) continue;
    const all = new Int32Array(total);
    let k = 0;
    for (const p of pieces) {
      all.set(p.rows, k);
      k += p.rows.length;
    }
    all.sort();
    let unique = 0;
    for (let i = 0; i < all.length; i++) if (i === 0 || all[i] !== all[i - 1]) all[unique++] = all[i]!;
    const rows = all.slice(0, unique);
    const position = new Map<number, number>();
    rows.forEach((row, i) => position.set(row, i));
    const values = new Float32Array(unique * table.dim);
    for (const p of pieces) {
      for (let i = 0; i < p.rows.length; i++) {
        const to = position.get(p.rows[i]!)! * table.dim;
        for (let j = 0; j < table.dim; j++) values[to + j] = values[to + j]! + p.values[i * table.dim + j]!;
      }
    }
    out.push({ name: table.name, rows, values, dim: table.dim });
  }
  return out;
}

// Coalescing of a sparse gradient: an embedding or wide table looked up several times in a batch
// gets one gradient row per lookup, and a sparse update needs one row per distinct id. TensorFlow
// does the same before its SparseApply* kernels (tf.unique of the indices, then an unsorted
// segment sum of the gradient rows: Optimizer._deduplicate_indexed_slices).

/** A sparse gradient: unique row ids and one row of `dim` gradients per id, row-major. */
export interface SparseRows {
  rows: Int32Array;
  grads: Float32Array;
}

/**
 * Sums the gradient rows of equal ids. `grads` holds `ids.length` rows of `dim` values. The result
 * lists each id once, in the order of its first occurrence (as tf.unique does), with the sum of
 * its rows added up in float32 in the order they occur, so it is the same on every engine.
 */
export function coalesceRows(ids: Int32Array, grads: Float32Array, dim: number): SparseRows {
  if (!Number.isInteger(dim) || dim < 1) throw new Error(`internal: sparse gradient of row width ${dim}`);
  if (grads.length !== ids.length * dim) throw new Error(`internal: ${grads.length} gradient values for ${ids.length} rows of width ${dim}`);
  const slotOf = new Map<number, number>();
  const order: number[] = [];
  for (const id of ids) {
    if (!slotOf.has(id)) {
      slotOf.set(id, order.length);
      order.push(id);
    }
  }
  const summed = new Float32Array(order.length * dim);
  for (let i = 0; i < ids.length; i++) {
    const to = slotOf.get(ids[i]!)! * dim;
    const from = i * dim;
    // Float32Array stores round each partial sum to float32.
    for (let j = 0; j < dim; j++) summed[to + j] = summed[to + j]! + grads[from + j]!;
  }
  return { rows: Int32Array.from(order), grads: summed };
}

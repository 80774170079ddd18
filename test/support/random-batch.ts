// Random batches in a model's encoded layout, for engine tests (the CUDA engine's parity and
// data-parallel tests).
import type { ModelIR } from '../../compiler/ir.js';
import type { Batch } from '../../runtime/data/contracts.js';
import { seededRandom } from './random.js';

export /**
 * A batch of `size` rows in the IR's layout (capacity rows allocated, the rest junk that must not
 * be read): bags of random length, padded past their length with another valid id; id weights in
 * [-0.25, 1), so some ids are dropped for a non-positive weight; small id spaces, so ids repeat
 * within a batch and within a bag; numerics in [-1, 1); example weights in (0, 2].
 */
function randomBatch(ir: ModelIR, size: number, seed: number, capacity = size + 3): Batch {
  const random = seededRandom(seed);
  const L = ir.layout;
  const buckets = new Map(ir.features.map((f) => [f.name, f.output.type === 'categorical' ? f.output.buckets : 0]));
  const batch: Batch = {
    size,
    ids: new Int32Array(capacity * L.idsWidth),
    lengths: new Int32Array(capacity * L.lengthsWidth),
    weights: new Float32Array(capacity * L.weightsWidth),
    numeric: new Float32Array(capacity * L.numericWidth),
    label: new Float32Array(capacity),
    group: new Float64Array(capacity),
    weight: new Float32Array(capacity),
  };
  for (let b = 0; b < capacity; b++) {
    for (const slot of L.ids) {
      const n = buckets.get(slot.feature)!;
      const length = slot.lengthSlot === null ? slot.width : Math.floor(random() * (slot.width + 1));
      if (slot.lengthSlot !== null) batch.lengths[b * L.lengthsWidth + slot.lengthSlot] = length;
      for (let k = 0; k < slot.width; k++) {
        batch.ids[b * L.idsWidth + slot.offset + k] = k < length ? Math.floor(random() * n) : n - 1;
        if (slot.weightOffset !== null) batch.weights[b * L.weightsWidth + slot.weightOffset + k] = random() * 1.25 - 0.25;
      }
    }
    for (let k = 0; k < L.numericWidth; k++) batch.numeric[b * L.numericWidth + k] = random() * 2 - 1;
    batch.label[b] = random() < 0.4 ? 1 : 0;
    batch.weight[b] = 2 - random() * 2;
  }
  return batch;
}


/** Rows [start, start + size) of `batch`, as a batch of their own (copies). */
export function sliceBatch(ir: ModelIR, batch: Batch, start: number, size: number): Batch {
  const L = ir.layout;
  const rows = <A extends Int32Array | Float32Array | Float64Array>(a: A, width: number): A => a.slice(start * width, (start + size) * width) as A;
  return {
    size,
    ids: rows(batch.ids, L.idsWidth),
    lengths: rows(batch.lengths, L.lengthsWidth),
    weights: rows(batch.weights, L.weightsWidth),
    numeric: rows(batch.numeric, L.numericWidth),
    label: rows(batch.label, 1),
    group: rows(batch.group, 1),
    weight: rows(batch.weight, 1),
  };
}

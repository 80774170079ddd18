// The engine-independent training rules: optimizer updates, sparse-gradient coalescing and
// learning-rate schedules. Engines (TensorFlow.js, CUDA) reproduce these numbers.

export { adamStepSize, createOptimizer, slotLayout, type Optimizer, type SlotSpec } from './optimizers.js';
export { coalesceRows, type SparseRows } from './sparse-rows.js';
export { decayedRate, learningRateAt, warmupStepCount } from './schedules.js';

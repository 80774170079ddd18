// The engine interface: what the trainer asks of an engine, whatever runs it (TensorFlow.js on the
// CPU, wndc's CUDA addon on NVIDIA GPUs). It is deliberately small and batch-level, so that a GPU
// engine can fuse a whole step, and it exposes gradients so that every hand-written backward pass
// can be checked against TensorFlow.js autodiff.
//
// Parameters are named from the IR, in paths that cannot collide with feature names:
// `wide/features/<feature>` and `wide/numeric` tables (rows x 1), `wide/bias` (1),
// `deep/embeddings/<embedding>` or `deep/shared/<share>` tables (rows x dim) — always ir.tables[].name —
// and for each of ir.deep.layers (`deep/layers/dense_<i>`, `deep/layers/logit`): `<layer>/kernel`
// (inputs x units, row-major), `<layer>/bias` (units), and with batch norm
// `<layer>/gamma|beta|moving_mean|moving_variance`.

import type { ModelIR } from '../../compiler/ir.js';
import type { Batch } from '../data/contracts.js';

export interface NamedTensor {
  name: string;
  shape: number[];
  data: Float32Array;
}

/** Gradient of one table, as TensorFlow's IndexedSlices: unique rows and their gradient rows. */
export interface SparseGradient {
  name: string;
  /** Unique row ids, ascending. */
  rows: Int32Array;
  /** rows.length x dim, row-major. */
  values: Float32Array;
  dim: number;
}

export interface Gradients {
  /** Mean weighted binary cross-entropy of the batch. */
  loss: number;
  dense: NamedTensor[];
  sparse: SparseGradient[];
  /**
   * With batch norm: the batch's mean and variance of each normalised layer, named as the moving
   * average they feed (`<layer>/moving_mean`, `<layer>/moving_variance`); `applyGradients` moves
   * the averages towards them. Absent or empty without batch norm.
   */
  statistics?: NamedTensor[];
}

/**
 * Where a rank's batch sits in the global batch of a data-parallel step: rows
 * [offset, offset + size) of `total`. Dropout then draws the masks of exactly those rows of the
 * global batch, so N ranks drop the units one process would.
 */
export interface BatchSlice {
  offset: number;
  total: number;
}

export interface StepResult {
  loss: number;
  /** Steps skipped by dynamic loss scaling (fp16) since the engine started. */
  skippedSteps: number;
}

export interface LearningRates {
  wide: number;
  deep: number;
}

export interface EngineCapabilities {
  /** Mixed-precision modes this engine can run ('bf16', 'fp16'); empty when none. */
  mixedPrecision: readonly ('bf16' | 'fp16')[];
  /** Human-readable device, e.g. `CPU (tfjs wasm, 2 threads)` or `NVIDIA H100 80GB HBM3`. */
  device: string;
}

export interface Engine {
  readonly name: string;
  readonly capabilities: EngineCapabilities;
  /**
   * True when `trainStep` has copied its batch before its promise is returned (the CUDA engine
   * uploads it to pinned memory), so the caller may reuse the batch's arrays while the step runs.
   */
  readonly copiesBatchOnCall?: boolean;
  /** Creates the parameters and optimizer slots of `ir`, initialised from `seed` (bit-identical per seed on one engine). */
  build(ir: ModelIR, seed: number): Promise<void>;
  /** Sigmoid click probabilities of the batch's first `size` rows (dropout off). */
  predict(batch: Batch): Promise<Float32Array>;
  /** Loss and gradients of the batch (dropout on, seeded by `step`); parameters unchanged. */
  gradients(batch: Batch, step: number, slice?: BatchSlice): Promise<Gradients>;
  /**
   * The second half of `trainStep`: each part's optimizer applied to `grads` (dense and sparse, as
   * `gradients` returns them, possibly summed over ranks), then the batch-norm moving averages
   * moved towards `grads.statistics`. Data-parallel training calls `gradients`, all-reduces, then this.
   * An engine that cannot train data-parallel leaves it out or throws UnsupportedDistributedError.
   */
  applyGradients?(grads: Gradients, step: number, lr: LearningRates): Promise<void>;
  /**
   * For an engine that sums over the ranks itself (the CUDA engine, over NCCL): joins the ranks of
   * `collective`; the trainer then calls `trainStep(batch, step, lr, slice)` with this rank's slice
   * of the global batch instead of `gradients` + `applyGradients`.
   */
  joinCollective?(collective: import('../distributed/collective.js').Collective): Promise<void>;
  /** One training step: gradients, then each part's optimizer with its learning rate. */
  trainStep(batch: Batch, step: number, lr: LearningRates, slice?: BatchSlice): Promise<StepResult>;
  /** Every parameter and optimizer slot (slots named `<param>/<slot>`), for checkpoints and parity tests. */
  state(): Promise<NamedTensor[]>;
  /** Restores what `state()` returned; names and shapes must match. */
  loadState(tensors: readonly NamedTensor[]): Promise<void>;
  dispose(): void;
}

/** `--amp` on an engine that cannot do it: says which engine can. */
export class UnsupportedPrecisionError extends Error {
  constructor(engine: string, mode: string) {
    super(`the ${engine} engine cannot train in mixed precision (${mode}); use \`--engine cuda\` on an NVIDIA GPU, or drop \`--amp\``);
  }
}

/** Data-parallel training (several ranks) on an engine that cannot take part yet: says what can. */
export class UnsupportedDistributedError extends Error {
  override name = 'UnsupportedDistributedError';
}

// The contract between the CUDA engine's TypeScript side (engine.ts) and wndc's native addon
// (native/src, built into build/wndc_cuda.node by `npm run build:cuda`). The TypeScript side
// plans the model from the IR and flattens it into a `NativePlan` of numbers; the addon owns the
// device memory and runs every kernel. Nothing here depends on TensorFlow.js.
//
// Conventions: parameters are addressed by their index in `NativePlan.parameters` (the order of
// `parameterSpecs(ir)`); an optimizer slot by its index in the part's optimizer slot layout
// (`slotLayout` in runtime/optim); `-1` stands for "none" wherever an index may be absent. Every
// failure in the addon (CUDA, cuBLASLt, out of memory, a wrong argument) throws a JavaScript
// `Error` whose message names the operation; the addon never aborts the process.

/** The `code` of every Error the addon throws (or a promise of it rejects with). */
export const CUDA_ERROR_CODE = 'WNDC_CUDA';

export type NativePrecision = 'fp32' | 'tf32' | 'bf16' | 'fp16';

export const COMBINERS = { sum: 0, mean: 1, sqrtn: 2 } as const;
export const ACTIVATIONS = { linear: 0, relu: 1, tanh: 2, sigmoid: 3, gelu: 4 } as const;
export const PARTS = { wide: 0, deep: 1 } as const;
export const PARAMETER_KINDS = { table: 0, dense: 1, statistic: 2 } as const;
export const OPTIMIZER_KINDS = { ftrl: 0, proximal_adagrad: 1, adagrad: 2, adam: 3, sgd: 4 } as const;

export interface NativeParameter {
  name: string;
  /** Number of float32 values. */
  size: number;
  /** Rows x dim for tables; for other parameters rows = size, dim = 1. */
  rows: number;
  dim: number;
  part: (typeof PARTS)[keyof typeof PARTS];
  kind: (typeof PARAMETER_KINDS)[keyof typeof PARAMETER_KINDS];
  /** Optimizer slots the addon allocates (0 for statistics). */
  slots: number;
}

/** Hyperparameters of one part's optimizer, already rounded to float32 by the caller where TF does. */
export interface NativeOptimizer {
  kind: (typeof OPTIMIZER_KINDS)[keyof typeof OPTIMIZER_KINDS];
  l1: number;
  l2: number;
  l2Shrinkage: number;
  /** FTRL's learning_rate_power (e.g. -0.5). */
  learningRatePower: number;
  epsilon: number;
  beta1: number;
  beta2: number;
  momentum: number;
  nesterov: boolean;
}

/** One categorical feature read from one table (a wide feature, or an embedding input of the tower). */
export interface NativeLookup {
  /** Parameter index of the table. */
  table: number;
  /** Column of the batch's ids matrix where the feature's bag starts, and the bag's width. */
  idOffset: number;
  width: number;
  /** Column of the lengths matrix holding the bag's length, -1 when every slot is used. */
  lengthSlot: number;
  /** Column of the weights matrix where the ids' weights start, -1 when unweighted. */
  weightOffset: number;
  combiner: (typeof COMBINERS)[keyof typeof COMBINERS];
  /** Column of the deep input where the combined vector goes; -1 for a wide lookup. */
  outOffset: number;
}

export type NativePiece =
  | { kind: 'embedding'; lookup: NativeLookup }
  | { kind: 'indicator'; idOffset: number; width: number; lengthSlot: number; weightOffset: number; buckets: number; outOffset: number }
  /** Numeric values copied from the batch's numeric matrix: one source column per output column. */
  | { kind: 'numeric'; sourceColumns: number[]; outOffset: number };

export interface NativeLayer {
  /** Parameter indices; -1 where absent (batch norm off, or the logit layer). */
  kernel: number;
  bias: number;
  gamma: number;
  beta: number;
  movingMean: number;
  movingVariance: number;
  inputs: number;
  units: number;
  activation: (typeof ACTIVATIONS)[keyof typeof ACTIVATIONS];
  /** False for the final 1-unit logit layer. */
  hidden: boolean;
}

export interface NativePlan {
  precision: NativePrecision;
  /** fp16 only: dynamic loss scaling's starting scale and growth interval (TF's defaults: 2^15, 2000). */
  lossScale: { initial: number; growthInterval: number };
  /** The largest batch (rows) any call will pass. */
  batchCapacity: number;
  /** Seeds the addon's own dropout draws (counter-based on seed, step, layer, position); 0 when absent. */
  seed?: number;
  layout: { idsWidth: number; lengthsWidth: number; weightsWidth: number; numericWidth: number };
  /** Whether the loss reads the `@weight` column. */
  weighted: boolean;
  parameters: NativeParameter[];
  /** [wide, deep]. */
  optimizers: [NativeOptimizer, NativeOptimizer];
  wide: {
    /** `wide/bias` and `wide/numeric` parameter indices, -1 when absent. */
    bias: number;
    numeric: number;
    /** Source column (in the numeric matrix) of each `wide/numeric` weight, in order. */
    numericColumns: number[];
    lookups: NativeLookup[];
  };
  deep: {
    inputWidth: number;
    pieces: NativePiece[];
    /** Hidden layers, then the logit layer; empty when the model has no deep part. */
    layers: NativeLayer[];
    dropout: number;
    batchNorm: { momentum: number; epsilon: number };
  };
}

/** Host arrays of one batch, as in runtime/data/contracts.ts `Batch` (first `size` rows used). */
export interface NativeBatch {
  ids: Int32Array;
  lengths: Int32Array;
  weights: Float32Array;
  numeric: Float32Array;
  label: Float32Array;
  weight: Float32Array;
}

/** Per-step scalars: learning rates and Adam's step sizes (adamStepSize, host-computed). */
export interface NativeStepScalars {
  lrWide: number;
  lrDeep: number;
  adamStepWide: number;
  adamStepDeep: number;
  /** Data parallelism: the global batch's rows (the loss's divisor; default this batch's) and this rank's first row in it. */
  globalRows?: number;
  rowOffset?: number;
}

export interface NativeGradients {
  loss: number;
  /** One array per parameter of kind `dense`, in parameter order. */
  dense: Float32Array[];
  /** Tables the batch touched: distinct rows ascending, rows.length x dim values. */
  sparse: { parameter: number; rows: Int32Array; values: Float32Array }[];
}

export interface NativeMemory {
  /** Bytes the addon holds now, its peak, and the device's free and total memory. */
  used: number;
  peak: number;
  free: number;
  total: number;
  /** What holds the memory, largest first: parameters, optimizer slots, activations, dataset, workspace. */
  items: { name: string; bytes: number }[];
}

/** Mean milliseconds per training step in each phase, measured with CUDA events when profiling is on. */
export type NativePhaseTimes = Record<string, number>;

export interface NativeDevice {
  index: number;
  name: string;
  computeCapability: [number, number];
  totalMemory: number;
}

/** One table's way between the ranks of a data-parallel job (NativeModel.exchangePlan). */
export interface TableExchange {
  table: string;
  mode: 'dense' | 'rows' | 'peer';
  note?: string;
  /**
   * With mode peer, who updates a row: `replicated`, every rank every row; `split`, its owner
   * (rank row % ranks), reading the other ranks' gradients of it from their memory; `split-pushed`,
   * its owner, the other ranks having written their gradients of it into its memory.
   */
  rows?: 'replicated' | 'split' | 'split-pushed';
}

export interface NativeModel {
  /** Copies `data` into a parameter (slot -1) or one of its optimizer slots. */
  setTensor(parameter: number, slot: number, data: Float32Array): void;
  /** A copy of a parameter (slot -1) or optimizer slot. */
  getTensor(parameter: number, slot: number): Float32Array;

  /** Uploads a batch (through pinned memory, on the copy stream); later steps read it. */
  setBatch(batch: NativeBatch, size: number): void;
  /**
   * Uploads a whole dataset to the device, once; `selectRows` then makes steps read from it.
   * Returns the bytes it took.
   */
  setDataset(batch: NativeBatch, rows: number): number;
  /** Sets the row order of the device dataset (a permutation, or any row list), e.g. once per epoch. */
  setOrder(order: Int32Array): void;
  /** The next steps read rows order[start .. start + size) of the device dataset. */
  selectRows(start: number, size: number): void;

  /** Sigmoid probabilities of the current batch (dropout off). Waits for the device. */
  predict(): Float32Array;
  /**
   * Loss and gradients of the current batch, dropout on; `masks` (one per hidden layer, size x
   * units, values 0 or 1/(1-rate)) replace the addon's own dropout draws when given.
   */
  gradients(step: number, masks: Float32Array[] | null): NativeGradients;
  /** Enqueues one training step on the current batch; returns at once. */
  trainStep(step: number, scalars: NativeStepScalars, masks: Float32Array[] | null): void;
  /** Resolves when every step enqueued so far has finished on the device. */
  synchronize(): Promise<void>;
  /** The loss of the last finished step (call after `synchronize`). */
  lastLoss(): number;

  /** fp16: steps skipped for Inf/NaN gradients since the model was created, and the current scale. */
  skippedSteps(): number;
  lossScale(): number;

  memory(): NativeMemory;
  /** Turns per-phase timing on or off (it adds events to each step); `phaseTimes` reads the means. */
  setProfiling(on: boolean): void;
  phaseTimes(): NativePhaseTimes;

  /** Frees every device buffer; the model cannot be used afterwards. */
  dispose(): void;

  /**
   * Joins a data-parallel job over NCCL as `rank` of `size` (blocks until every rank has joined);
   * `id` is the `ncclUniqueId()` of rank 0, handed to the others. Later `trainStep`s sum the
   * gradients and the loss over the ranks before the optimizers. With `timeoutSeconds` > 0 a wait
   * for work that needs the other ranks gives up after that long: the communicator is aborted and
   * the call throws, saying which rank waited for what (0: wait for ever).
   */
  joinWorld(id: Uint8Array, rank: number, size: number, timeoutSeconds: number): void;
  /** Copies every parameter and optimizer slot of rank `root` to every rank. */
  broadcastState(root: number): void;
  /**
   * How each table's gradients travel: summed whole (`dense`), as the touched rows (`rows`: records
   * all-gathered, or the whole table when that is less, chosen per step from the all-gathered
   * counts), or read by each rank's tables' optimizer straight from the other ranks' memory
   * (`peer`: NCCL symmetric memory, where every rank reaches every other over NVLink). Tables of
   * 256 KiB or more go as rows or peer; `note` says why a `rows` table is not `peer`.
   */
  exchangePlan(): TableExchange[];
}

/**
 * The host-side collectives of GPU ranks over an NCCL communicator of their own
 * (native/src/host_collective.h; runtime/distributed/nccl.ts wraps it). Each operation copies its
 * input, runs on a worker thread and settles its promise; one at a time. An operation that the
 * other ranks do not join within the timeout given at creation rejects with an Error naming it, this
 * rank and the timeout, and the communicator is aborted: nothing but `abort` may follow.
 */
export interface NativeHostCollective {
  readonly rank: number;
  readonly size: number;
  /** The GPU whose memory and stream carry the operations. */
  readonly device: number;
  /** Sums `buffer` over the ranks, in place (ncclFloat32 / ncclFloat64). */
  allReduceSum(buffer: Float32Array | Float64Array): Promise<void>;
  /** Copies rank `root`'s bytes of `buffer` into every rank's (same length on every rank). */
  broadcast(buffer: ArrayBufferView, root: number): Promise<void>;
  /** Every rank's bytes, in rank order; the lengths may differ. */
  allGather(bytes: Uint8Array): Promise<Uint8Array[]>;
  barrier(): Promise<void>;
  /** Frees the communicator (without waiting for the other ranks); no operation may follow. */
  destroy(): void;
  /** Aborts the communicator unless an operation is running (that one is left to the process's exit). */
  abort(): void;
}

export interface NativeAddon {
  /** Addon build: version, CUDA runtime it was built with, architectures compiled. */
  buildInfo(): { version: string; cudaRuntime: number; architectures: string[] };
  /** The visible GPUs; throws with the reason when the driver or a device is missing. */
  devices(): NativeDevice[];
  /**
   * Finds and loads cuBLASLt (and, when asked, NCCL) at run time; returns the paths loaded, or
   * throws naming every place searched. Search order: `WNDC_CUBLASLT` / `WNDC_NCCL` (a file), the
   * directories of `CUDA_LIB_DIRS` (colon-separated), `LD_LIBRARY_PATH`, the system loader's
   * default path, then /usr/local/cuda/lib64 and /usr/local/cuda/targets/x86_64-linux/lib.
   */
  loadLibraries(options: { nccl: boolean }): { cublasLt: string; nccl: string | null };
  /** Builds a model on device `device` (loads cuBLASLt first if not yet loaded). */
  createModel(plan: NativePlan, device: number): NativeModel;
  /** A new NCCL job id (loads NCCL): rank 0 makes it, every rank passes it to `joinWorld`. */
  ncclUniqueId(): Uint8Array;
  /**
   * Joins the job `id` (rank 0's `ncclUniqueId()`) as `rank` of `size` on GPU `device` (loads NCCL);
   * returns at once: the first operation waits for every rank to join, under `timeoutSeconds` as
   * every later one. Absent from addons built before it (rebuild with `npm run build:cuda`).
   */
  createHostCollective?(id: Uint8Array, rank: number, size: number, device: number, timeoutSeconds: number): NativeHostCollective;
}

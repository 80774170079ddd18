// The model IR: a checked model with every default filled in, every name resolved and every size
// computed. It is plain JSON, versioned, and identical for the `.wnd` and YAML forms of one model.
// The runtime, the data pipeline and the emitted TypeScript module read only this.

export const IR_VERSION = 1;

export type ColumnType = 'int' | 'float' | 'string';
export type Literal = number | string | boolean;

export interface ColumnIR {
  name: string;
  type: ColumnType;
  list: boolean;
  /** Value used when the field is missing; null means a missing value is a data error. */
  default: Literal | Literal[] | null;
}

export interface RolesIR {
  label: string;
  group: string | null;
  weight: string | null;
  /** The item id printed with each prediction (`--predict`); not encoded. */
  item: string | null;
}

/** What a feature produces: ids into a table (categorical) or dense floats. */
export type FeatureOutput =
  | {
      type: 'categorical';
      /** Ids lie in [0, buckets). */
      buckets: number;
      /** True when a row holds a bag of ids (multi-hot, crosses of bags). */
      multivalent: boolean;
      /** Ids stored per row: 1 for single-valued features. */
      maxLen: number;
      combiner: 'mean' | 'sum' | 'sqrtn';
      /** True when ids carry weights (weighted categorical). */
      weighted: boolean;
    }
  | { type: 'dense'; width: number };

export type Normalisation = 'none' | 'minmax' | 'zscore' | 'log_01scaled' | 'log_count' | 'log_count_minmax';

export interface NumericStats {
  min?: number;
  max?: number;
  mean?: number;
  std?: number;
}

export type IdMapping =
  | { by: 'identity'; defaultId: number }
  | { by: 'hash' }
  | { by: 'vocabulary'; values: Literal[]; oovBuckets: number; file: string | null };

interface FeatureBase {
  name: string;
  output: FeatureOutput;
}

export type FeatureIR =
  | (FeatureBase & { kind: 'numeric'; column: string; norm: Normalisation; stats: NumericStats })
  | (FeatureBase & { kind: 'bucketized'; column: string; boundaries: number[] })
  | (FeatureBase & { kind: 'hashed'; column: string })
  | (FeatureBase & { kind: 'identity'; column: string; defaultId: number })
  | (FeatureBase & { kind: 'vocabulary'; column: string; values: Literal[]; oovBuckets: number; file: string | null })
  | (FeatureBase & { kind: 'multi_hot'; column: string; mapping: IdMapping })
  | (FeatureBase & { kind: 'crossed'; features: string[] })
  | (FeatureBase & { kind: 'weighted'; feature: string; weights: string })
  | (FeatureBase & { kind: 'embedding'; feature: string; table: string; combiner: 'mean' | 'sum' | 'sqrtn' })
  | (FeatureBase & { kind: 'indicator'; feature: string });

export type FeatureKind = FeatureIR['kind'];

export type InitializerIR =
  | { kind: 'zeros' }
  | { kind: 'constant'; value: number }
  | { kind: 'normal'; mean: number; stddev: number }
  | { kind: 'truncated_normal'; mean: number; stddev: number }
  | { kind: 'uniform'; min: number; max: number }
  | { kind: 'glorot_uniform' }
  | { kind: 'glorot_normal' };

export type OptimizerIR =
  | { kind: 'ftrl'; learningRate: number; learningRatePower: number; initialAccumulatorValue: number; l1: number; l2: number; l2Shrinkage: number }
  | { kind: 'proximal_adagrad'; learningRate: number; initialAccumulatorValue: number; l1: number; l2: number }
  | { kind: 'adagrad'; learningRate: number; initialAccumulatorValue: number; epsilon: number }
  | { kind: 'adam'; learningRate: number; beta1: number; beta2: number; epsilon: number }
  | { kind: 'sgd'; learningRate: number; momentum: number; nesterov: boolean };

export type DecayIR =
  | { kind: 'none' }
  | { kind: 'exponential'; rate: number; steps: number; staircase: boolean }
  | { kind: 'cosine'; steps: number; alpha: number }
  | { kind: 'polynomial'; steps: number; endLearningRate: number; power: number };

export interface ScheduleIR {
  /** Exactly one of warmupSteps / warmupEpochs is non-zero, or neither. */
  warmupSteps: number;
  warmupEpochs: number;
  decay: DecayIR;
}

/** One trainable embedding or wide-weight table. */
export interface TableIR {
  name: string;
  part: 'wide' | 'deep';
  rows: number;
  dim: number;
  /** Features that look ids up in it (several for a shared embedding). */
  features: string[];
  init: InitializerIR;
  parameters: number;
  /** fp32 weights plus the optimizer's slots. */
  bytes: number;
}

export interface WideIR {
  /** Categorical and numeric features, in the order written. */
  features: string[];
  combiner: 'sum';
  optimizer: OptimizerIR;
  schedule: ScheduleIR;
  /** One table per categorical feature: `wide/features/<feature>`; numerics share one weight vector `wide/numeric`. */
  tables: string[];
  numericFeatures: string[];
}

export interface DeepInputIR {
  /** An embedding, indicator or numeric feature. */
  feature: string;
  offset: number;
  width: number;
}

export interface DenseLayerIR {
  name: string;
  inputs: number;
  units: number;
  activation: 'relu' | 'tanh' | 'sigmoid' | 'gelu' | 'linear';
  parameters: number;
  /** Multiply-adds x 2, forward, per example. */
  flops: number;
}

export interface DeepIR {
  inputs: DeepInputIR[];
  inputWidth: number;
  hiddenUnits: number[];
  activation: 'relu' | 'tanh' | 'sigmoid' | 'gelu';
  dropout: number;
  batchNorm: boolean;
  init: InitializerIR;
  /** The hidden layers and the final 1-unit logit layer. */
  layers: DenseLayerIR[];
  optimizer: OptimizerIR;
  schedule: ScheduleIR;
}

export type MetricIR = { kind: 'auc' } | { kind: 'logloss' } | { kind: 'map'; k: number };

export interface TrainIR {
  batchSize: number;
  evalBatchSize: number;
  epochs: number;
  seed: number;
  mixedPrecision: 'off' | 'bf16' | 'fp16';
  metrics: MetricIR[];
  evalEvery: number;
  lastBatch: 'keep' | 'drop';
  shuffleBuffer: number | null;
  memoryBudgetBytes: number | null;
}

export interface HeadIR {
  loss: 'binary_crossentropy';
}

/**
 * Where each encoded feature lives in an encoded row (and in the columnar shards): categorical ids
 * in an int32 vector, multi-valued ones padded to maxLen with a length, weights and numerics in
 * float32 vectors. Only features read from columns or crosses are encoded; embeddings and
 * indicators are views the model computes.
 */
export interface EncodedLayoutIR {
  ids: { feature: string; offset: number; width: number; lengthSlot: number | null; weightOffset: number | null }[];
  idsWidth: number;
  lengthsWidth: number;
  weightsWidth: number;
  numeric: { feature: string; offset: number }[];
  numericWidth: number;
}

export interface SizesIR {
  /** Model features as the reference recipe counts them: every feature except embedding/indicator views. */
  features: number;
  deepInputWidth: number;
  parameters: { total: number; wide: number; embeddings: number; dense: number };
  /** fp32 embedding and wide tables. */
  tableBytes: number;
  /** Optimizer slots of the tables. */
  optimizerStateBytes: number;
  flopsPerExample: { forward: number; train: number };
}

export interface ModelIR {
  irVersion: typeof IR_VERSION;
  model: string;
  columns: ColumnIR[];
  roles: RolesIR;
  features: FeatureIR[];
  tables: TableIR[];
  wide: WideIR;
  deep: DeepIR;
  head: HeadIR;
  train: TrainIR;
  layout: EncodedLayoutIR;
  sizes: SizesIR;
}

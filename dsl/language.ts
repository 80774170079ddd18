// The wndc language as data: every section property, feature kind, optimizer, initializer and
// learning-rate decay, with its parameters, their types, defaults and one-line docs.
//
// One table drives the `.wnd` front end (naming positional arguments), the YAML JSON Schema
// (generated from it, see schema.ts), the checker's argument validation, the formatter's quoting and
// the language reference. Semantics that span several parameters or features live in the checker.

export type RefTarget = 'column' | 'feature' | 'share';

export type ParamType =
  | { kind: 'int'; min?: number; max?: number }
  | { kind: 'number'; min?: number; max?: number; exclusiveMin?: boolean; exclusiveMax?: boolean }
  | { kind: 'bool' }
  /** Free text, always printed quoted. */
  | { kind: 'string' }
  | { kind: 'enum'; values: readonly string[] }
  /** A name declared elsewhere in the model, printed bare. */
  | { kind: 'ref'; to: RefTarget }
  | { kind: 'list'; of: ParamType; minItems?: number }
  /** A call of one family, e.g. `ftrl(learning_rate: 0.2)`; a bare name means a call without arguments. */
  | { kind: 'call'; family: FamilyName; only?: readonly string[] }
  | { kind: 'oneOf'; options: readonly ParamType[] }
  /** A byte size: `16GiB`, `512MiB`, or a plain number of bytes. */
  | { kind: 'size' }
  /** `auc`, `logloss`, `map@12`. */
  | { kind: 'metric' }
  /** A number, string or boolean literal (column defaults, vocabulary entries). */
  | { kind: 'literal' };

export type JsonValue = number | string | boolean | null | JsonValue[] | { [key: string]: JsonValue };

export interface ParamSpec {
  name: string;
  type: ParamType;
  required?: boolean;
  /** The value used when the parameter is absent (absent and no default: the parameter is unset). */
  default?: JsonValue;
  /** `one`: may be written as the next positional argument; `rest`: takes all remaining positional arguments as a list. */
  positional?: 'one' | 'rest';
  doc: string;
}

export interface CallableSpec {
  name: string;
  doc: string;
  params: readonly ParamSpec[];
}

export type FamilyName = 'feature' | 'optimizer' | 'initializer' | 'decay';

const posInt: ParamType = { kind: 'int', min: 1 };
/** Ids are stored as int32 (shards, GPU tables), so an id space holds at most 2^31 - 1 ids. */
export const MAX_ID_SPACE = 2147483647;
const idSpace: ParamType = { kind: 'int', min: 1, max: MAX_ID_SPACE };
const nonNegative: ParamType = { kind: 'number', min: 0 };
const positive: ParamType = { kind: 'number', min: 0, exclusiveMin: true };
const learningRate: ParamSpec = { name: 'learning_rate', type: positive, required: true, doc: 'step size' };
const l1: ParamSpec = { name: 'l1', type: nonNegative, default: 0, doc: 'L1 regularisation strength' };
const l2: ParamSpec = { name: 'l2', type: nonNegative, default: 0, doc: 'L2 regularisation strength' };
const column: ParamSpec = { name: 'column', type: { kind: 'ref', to: 'column' }, required: true, positional: 'one', doc: 'the input column it reads' };
const feature: ParamSpec = { name: 'feature', type: { kind: 'ref', to: 'feature' }, required: true, positional: 'one', doc: 'the categorical feature it reads' };

export const NORMALISATIONS = ['none', 'minmax', 'zscore', 'log_01scaled', 'log_count', 'log_count_minmax'] as const;
export const COMBINERS = ['mean', 'sum', 'sqrtn'] as const;
export const ID_MAPPINGS = ['identity', 'hash', 'vocabulary'] as const;
export const ACTIVATIONS = ['relu', 'tanh', 'sigmoid', 'gelu'] as const;
export const PRECISIONS = ['off', 'bf16', 'fp16'] as const;
export const LAST_BATCH = ['keep', 'drop'] as const;
export const LOSSES = ['binary_crossentropy'] as const;
export const METRIC_NAMES = ['auc', 'logloss', 'map'] as const;

export const FEATURE_KINDS: readonly CallableSpec[] = [
  {
    name: 'numeric',
    doc: 'a float or int column as one dense value, optionally normalised',
    params: [
      column,
      { name: 'norm', type: { kind: 'enum', values: NORMALISATIONS }, default: 'none', doc: 'normalisation: none; minmax; zscore; log_01scaled = log2(1+1000x) then min-max; log_count = log2(1+x); log_count_minmax = log2(1+x) then min-max' },
      { name: 'min', type: { kind: 'number' }, doc: 'minimum for min-max scaling (computed from the data when absent)' },
      { name: 'max', type: { kind: 'number' }, doc: 'maximum for min-max scaling (computed from the data when absent)' },
      { name: 'mean', type: { kind: 'number' }, doc: 'mean for z-score (computed from the data when absent)' },
      { name: 'std', type: positive, doc: 'standard deviation for z-score (computed from the data when absent)' },
    ],
  },
  {
    name: 'bucketized',
    doc: 'a numeric column cut at boundaries into len(boundaries)+1 buckets',
    params: [column, { name: 'boundaries', type: { kind: 'list', of: { kind: 'number' }, minItems: 1 }, required: true, doc: 'strictly increasing cut points' }],
  },
  {
    name: 'hashed',
    doc: 'an int or string column hashed into a fixed number of buckets',
    params: [column, { name: 'buckets', type: idSpace, required: true, doc: 'number of hash buckets' }],
  },
  {
    name: 'identity',
    doc: 'an int column whose values are already ids in [0, buckets)',
    params: [
      column,
      { name: 'buckets', type: idSpace, required: true, doc: 'number of ids' },
      { name: 'default_id', type: { kind: 'int', min: 0 }, default: 0, doc: 'id given to values outside [0, buckets) (they are counted)' },
    ],
  },
  {
    name: 'vocabulary',
    doc: 'a string or int column mapped through a vocabulary; unseen values hash into out-of-vocabulary buckets',
    params: [
      column,
      { name: 'values', type: { kind: 'list', of: { kind: 'literal' }, minItems: 1 }, doc: 'the vocabulary, inline' },
      { name: 'file', type: { kind: 'string' }, doc: 'a vocabulary file, one value per line, relative to the spec' },
      { name: 'oov_buckets', type: idSpace, default: 1, doc: 'buckets for values not in the vocabulary' },
    ],
  },
  {
    name: 'multi_hot',
    doc: 'a list column as a bag of ids, padded to max_len',
    params: [
      column,
      { name: 'max_len', type: posInt, required: true, doc: 'longest list kept; longer lists are truncated (and counted)' },
      { name: 'combiner', type: { kind: 'enum', values: COMBINERS }, default: 'mean', doc: 'how an embedding reduces the bag' },
      { name: 'by', type: { kind: 'enum', values: ID_MAPPINGS }, doc: 'how values become ids: identity (int lists), hash (string lists) or vocabulary; inferred when absent' },
      { name: 'buckets', type: idSpace, doc: 'number of ids (identity) or hash buckets (hash)' },
      { name: 'values', type: { kind: 'list', of: { kind: 'literal' }, minItems: 1 }, doc: 'the vocabulary, inline (by: vocabulary)' },
      { name: 'file', type: { kind: 'string' }, doc: 'a vocabulary file (by: vocabulary)' },
      { name: 'oov_buckets', type: idSpace, default: 1, doc: 'out-of-vocabulary buckets (by: vocabulary)' },
      { name: 'default_id', type: { kind: 'int', min: 0 }, default: 0, doc: 'id for out-of-range values (by: identity)' },
    ],
  },
  {
    name: 'crossed',
    doc: 'two or more categorical features crossed and hashed into buckets',
    params: [
      { name: 'features', type: { kind: 'list', of: { kind: 'ref', to: 'feature' }, minItems: 2 }, required: true, positional: 'rest', doc: 'the categorical features crossed' },
      { name: 'buckets', type: idSpace, required: true, doc: 'number of hash buckets' },
      { name: 'max_len', type: posInt, doc: 'most crossed ids kept per row when bags are crossed (default: the product of the bags\' max_len, up to 256)' },
    ],
  },
  {
    name: 'weighted',
    doc: 'a categorical feature whose ids carry weights from a float column',
    params: [feature, { name: 'weights', type: { kind: 'ref', to: 'column' }, required: true, doc: 'the float column (list<float> for a multi-hot feature) of weights' }],
  },
  {
    name: 'embedding',
    doc: 'a dense vector per id of a categorical feature, for the deep part',
    params: [
      feature,
      { name: 'dim', type: posInt, required: true, doc: 'vector length' },
      { name: 'init', type: { kind: 'call', family: 'initializer' }, doc: 'initializer (default truncated_normal(stddev: 1/sqrt(dim)))' },
      { name: 'combiner', type: { kind: 'enum', values: COMBINERS }, doc: 'reduction of a multi-valued feature (default: the feature\'s own combiner)' },
      { name: 'share', type: { kind: 'ref', to: 'share' }, doc: 'embeddings with the same share name use one table' },
    ],
  },
  {
    name: 'indicator',
    doc: 'a one-hot (multi-hot for bags) vector of a categorical feature, for the deep part',
    params: [feature],
  },
];

export const OPTIMIZERS: readonly CallableSpec[] = [
  {
    name: 'ftrl',
    doc: 'follow-the-regularized-leader (TensorFlow FtrlOptimizer semantics)',
    params: [
      learningRate,
      { name: 'learning_rate_power', type: { kind: 'number', max: 0 }, default: -0.5, doc: 'power of the accumulator in the per-coordinate rate (<= 0)' },
      { name: 'initial_accumulator_value', type: nonNegative, default: 0.1, doc: 'starting accumulator' },
      l1,
      l2,
      { name: 'l2_shrinkage', type: nonNegative, default: 0, doc: 'L2 shrinkage regularisation' },
    ],
  },
  {
    name: 'proximal_adagrad',
    doc: 'Adagrad with proximal L1/L2 (TensorFlow ProximalAdagradOptimizer)',
    params: [learningRate, { name: 'initial_accumulator_value', type: positive, default: 0.1, doc: 'starting accumulator (> 0)' }, l1, l2],
  },
  {
    name: 'adagrad',
    doc: 'Adagrad',
    params: [
      learningRate,
      { name: 'initial_accumulator_value', type: nonNegative, default: 0.1, doc: 'starting accumulator' },
      { name: 'epsilon', type: positive, default: 1e-7, doc: 'added to the denominator' },
    ],
  },
  {
    name: 'adam',
    doc: 'Adam',
    params: [
      learningRate,
      { name: 'beta1', type: { kind: 'number', min: 0, max: 1, exclusiveMax: true }, default: 0.9, doc: 'first-moment decay' },
      { name: 'beta2', type: { kind: 'number', min: 0, max: 1, exclusiveMax: true }, default: 0.999, doc: 'second-moment decay' },
      { name: 'epsilon', type: positive, default: 1e-8, doc: 'added to the denominator' },
    ],
  },
  {
    name: 'sgd',
    doc: 'stochastic gradient descent, optionally with momentum',
    params: [
      learningRate,
      { name: 'momentum', type: { kind: 'number', min: 0, max: 1, exclusiveMax: true }, default: 0, doc: 'momentum' },
      { name: 'nesterov', type: { kind: 'bool' }, default: false, doc: 'Nesterov momentum' },
    ],
  },
];

export const INITIALIZERS: readonly CallableSpec[] = [
  { name: 'zeros', doc: 'all zeros', params: [] },
  { name: 'constant', doc: 'one value', params: [{ name: 'value', type: { kind: 'number' }, required: true, positional: 'one', doc: 'the value' }] },
  {
    name: 'normal',
    doc: 'normal distribution',
    params: [
      { name: 'mean', type: { kind: 'number' }, default: 0, doc: 'mean' },
      { name: 'stddev', type: positive, default: 1, doc: 'standard deviation' },
    ],
  },
  {
    name: 'truncated_normal',
    doc: 'normal distribution redrawn beyond two standard deviations',
    params: [
      { name: 'mean', type: { kind: 'number' }, default: 0, doc: 'mean' },
      { name: 'stddev', type: positive, default: 1, doc: 'standard deviation' },
    ],
  },
  {
    name: 'uniform',
    doc: 'uniform distribution on [min, max)',
    params: [
      { name: 'min', type: { kind: 'number' }, default: -0.05, doc: 'lower bound' },
      { name: 'max', type: { kind: 'number' }, default: 0.05, doc: 'upper bound' },
    ],
  },
  { name: 'glorot_uniform', doc: 'Glorot (Xavier) uniform', params: [] },
  { name: 'glorot_normal', doc: 'Glorot (Xavier) truncated normal', params: [] },
];

export const DECAYS: readonly CallableSpec[] = [
  { name: 'none', doc: 'constant learning rate', params: [] },
  {
    name: 'exponential',
    doc: 'lr * rate^(step / steps)',
    params: [
      { name: 'rate', type: { kind: 'number', min: 0, max: 1, exclusiveMin: true }, required: true, doc: 'decay factor per `steps` steps' },
      { name: 'steps', type: posInt, required: true, doc: 'steps per decay' },
      { name: 'staircase', type: { kind: 'bool' }, default: false, doc: 'decay in whole steps' },
    ],
  },
  {
    name: 'cosine',
    doc: 'cosine decay to alpha * lr over `steps` steps',
    params: [
      { name: 'steps', type: posInt, required: true, doc: 'length of the decay' },
      { name: 'alpha', type: { kind: 'number', min: 0, max: 1 }, default: 0, doc: 'final fraction of the learning rate' },
    ],
  },
  {
    name: 'polynomial',
    doc: 'polynomial decay to end_learning_rate over `steps` steps',
    params: [
      { name: 'steps', type: posInt, required: true, doc: 'length of the decay' },
      { name: 'end_learning_rate', type: nonNegative, default: 0.0001, doc: 'final learning rate' },
      { name: 'power', type: positive, default: 1, doc: 'polynomial power' },
    ],
  },
];

export const FAMILIES: Readonly<Record<FamilyName, readonly CallableSpec[]>> = {
  feature: FEATURE_KINDS,
  optimizer: OPTIMIZERS,
  initializer: INITIALIZERS,
  decay: DECAYS,
};

const schedule: readonly ParamSpec[] = [
  { name: 'warmup_steps', type: { kind: 'int', min: 0 }, doc: 'linear learning-rate warm-up over this many steps' },
  { name: 'warmup_epochs', type: nonNegative, doc: 'warm-up length in epochs (instead of warmup_steps)' },
  { name: 'decay', type: { kind: 'call', family: 'decay' }, default: 'none', doc: 'learning-rate decay after warm-up' },
];

/** A deep-tower input: a feature name, or an inline `embedding(...)` / `indicator(...)`. */
export const DEEP_ITEM: ParamType = {
  kind: 'oneOf',
  options: [
    { kind: 'ref', to: 'feature' },
    { kind: 'call', family: 'feature', only: ['embedding', 'indicator'] },
  ],
};

export const BLOCK_PROPS: Readonly<Record<'wide' | 'deep' | 'train' | 'head', readonly ParamSpec[]>> = {
  wide: [
    { name: 'features', type: { kind: 'list', of: { kind: 'ref', to: 'feature' }, minItems: 1 }, required: true, doc: 'categorical and numeric features of the linear part' },
    { name: 'combiner', type: { kind: 'enum', values: ['sum'] }, default: 'sum', doc: 'how multi-valued features are reduced (sum, as a linear model does)' },
    { name: 'optimizer', type: { kind: 'call', family: 'optimizer' }, required: true, doc: 'optimizer of the wide weights and the bias' },
    ...schedule,
  ],
  deep: [
    { name: 'features', type: { kind: 'list', of: DEEP_ITEM, minItems: 1 }, required: true, doc: 'embeddings, indicators and numeric features concatenated as the tower input' },
    { name: 'hidden_units', type: { kind: 'list', of: posInt, minItems: 1 }, required: true, doc: 'width of each hidden layer' },
    { name: 'activation', type: { kind: 'enum', values: ACTIVATIONS }, default: 'relu', doc: 'hidden-layer activation' },
    { name: 'dropout', type: { kind: 'number', min: 0, max: 1, exclusiveMax: true }, default: 0, doc: 'dropout rate after each hidden layer' },
    { name: 'batch_norm', type: { kind: 'bool' }, default: false, doc: 'batch normalisation after each hidden layer' },
    { name: 'init', type: { kind: 'call', family: 'initializer' }, default: 'glorot_uniform', doc: 'initializer of the dense weights' },
    { name: 'optimizer', type: { kind: 'call', family: 'optimizer' }, required: true, doc: 'optimizer of the tower and the embeddings' },
    ...schedule,
  ],
  train: [
    { name: 'batch_size', type: posInt, default: 1024, doc: 'global training batch size' },
    { name: 'eval_batch_size', type: posInt, doc: 'evaluation batch size (default: batch_size)' },
    { name: 'epochs', type: posInt, default: 1, doc: 'passes over the training data' },
    { name: 'seed', type: { kind: 'int', min: 0 }, default: 0, doc: 'seed of initialisation, shuffling and dropout' },
    { name: 'mixed_precision', type: { kind: 'enum', values: PRECISIONS }, default: 'off', doc: 'off, bf16, or fp16 with dynamic loss scaling' },
    { name: 'metrics', type: { kind: 'list', of: { kind: 'metric' } }, default: ['auc', 'logloss'], doc: 'auc, logloss, map@k (mean average precision at k over groups)' },
    { name: 'eval_every', type: posInt, default: 1, doc: 'evaluate every this many epochs' },
    { name: 'last_batch', type: { kind: 'enum', values: LAST_BATCH }, default: 'keep', doc: 'keep or drop the last partial training batch' },
    { name: 'shuffle_buffer', type: posInt, doc: 'rows in the shuffle buffer (default: the whole epoch when it fits)' },
    { name: 'memory_budget', type: { kind: 'size' }, doc: 'embedding tables with optimizer state must fit in this (e.g. 16GiB)' },
  ],
  head: [{ name: 'loss', type: { kind: 'enum', values: LOSSES }, default: 'binary_crossentropy', doc: 'the click-probability head\'s loss' }],
};

export const COLUMN_TYPES = ['int', 'float', 'string', 'list<int>', 'list<float>', 'list<string>'] as const;
export const COLUMN_ROLES = ['label', 'group', 'weight', 'item'] as const;

export function findCallable(family: FamilyName, name: string): CallableSpec | undefined {
  return FAMILIES[family].find((c) => c.name === name);
}

export const SIZE_UNITS: Readonly<Record<string, number>> = {
  B: 1,
  KB: 1e3,
  MB: 1e6,
  GB: 1e9,
  TB: 1e12,
  KiB: 2 ** 10,
  MiB: 2 ** 20,
  GiB: 2 ** 30,
  TiB: 2 ** 40,
};

/** `16GiB` -> bytes, or undefined when the text is not a size. */
export function parseSize(text: string): number | undefined {
  const m = /^(\d+(?:\.\d+)?)\s*([KMGT]i?B|B)$/.exec(text);
  if (!m) return undefined;
  const unit = SIZE_UNITS[m[2]!];
  return unit === undefined ? undefined : Math.round(Number(m[1]) * unit);
}

/** `map@12` -> {name: 'map', k: 12}; `auc` -> {name: 'auc'}. */
export function parseMetric(text: string): { name: string; k?: number } | undefined {
  const m = /^([a-z_]+)(?:@(\d+))?$/.exec(text);
  if (!m) return undefined;
  return m[2] === undefined ? { name: m[1]! } : { name: m[1]!, k: Number(m[2]) };
}

/** Names in the spec: plain identifiers, so they are safe in files, flags and generated code. */
export const NAME_PATTERN = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** Words the `.wnd` language reserves: they cannot name a model, column, feature or share group. */
export const RESERVED_NAMES: ReadonlySet<string> = new Set(['true', 'false']);

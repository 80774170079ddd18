// The model IR flattened into the numbers the native addon runs (addon-api.ts `NativePlan`): a
// pure function of the IR. Parameters are listed in `parameterSpecs(ir)` order, so a parameter's
// index here is its index everywhere (gradients, state, setTensor); lookups, deep pieces and
// layers refer to them by index and to the batch matrices by column.

import type { FeatureIR, ModelIR, OptimizerIR } from '../../../compiler/ir.js';
import { slotLayout } from '../../optim/index.js';
import { parameterSpecs, type ParameterSpec } from '../init.js';
import { BATCH_NORM_EPSILON, BATCH_NORM_MOMENTUM, planModel } from '../tfjs/model.js';
import type { IdSlots, Lookup } from '../tfjs/lookups.js';
import {
  ACTIVATIONS,
  COMBINERS,
  OPTIMIZER_KINDS,
  PARAMETER_KINDS,
  PARTS,
  type NativeLayer,
  type NativeLookup,
  type NativeOptimizer,
  type NativeParameter,
  type NativePiece,
  type NativePlan,
  type NativePrecision,
} from './addon-api.js';

/** TF's dynamic loss scaling defaults (LossScaleOptimizer): start at 2^15, double after 2000 good steps. */
export const DEFAULT_LOSS_SCALE = { initial: 32768, growthInterval: 2000 } as const;

export interface NativePlanOptions {
  precision: NativePrecision;
  /** The largest batch (rows) any call will pass. */
  batchCapacity: number;
  /** fp16 only; TF's defaults when absent. */
  lossScale?: { initial: number; growthInterval: number };
  /** Seeds the addon's own dropout draws (the train seed). */
  seed?: number;
}

/**
 * The precision the addon runs for the IR's `mixed_precision`: `off` is fp32 with TF32 tensor
 * cores for the matrix products, or strict fp32 when asked (`--no-tf32`).
 */
export function nativePrecision(mode: ModelIR['train']['mixedPrecision'], strictFp32: boolean): NativePrecision {
  if (mode === 'off') return strictFp32 ? 'fp32' : 'tf32';
  return mode;
}

export function nativePlan(ir: ModelIR, options: NativePlanOptions): NativePlan {
  if (!Number.isSafeInteger(options.batchCapacity) || options.batchCapacity < 1) throw new Error(`internal: batch capacity ${options.batchCapacity} is not a positive integer`);
  const specs = parameterSpecs(ir);
  const index = new Map(specs.map((s, i) => [s.name, i]));
  const indexOf = (name: string): number => index.get(name) ?? fail(`parameter \`${name}\` not in parameterSpecs`);
  const optionalIndex = (name: string): number => index.get(name) ?? -1;
  const features = new Map(ir.features.map((f) => [f.name, f]));
  const feature = (name: string): FeatureIR => features.get(name) ?? fail(`feature \`${name}\` not in the IR`);
  const idSlots = new Map(ir.layout.ids.map((s) => [s.feature, s]));
  const slotsOf = (name: string): IdSlots => idSlots.get(name) ?? fail(`feature \`${name}\` not in the layout`);
  const numericOffsets = new Map(ir.layout.numeric.map((s) => [s.feature, s.offset]));
  /** The numeric-matrix columns of a numeric feature, in order. */
  const numericColumns = (name: string): number[] => {
    const f = feature(name);
    const offset = numericOffsets.get(name) ?? fail(`numeric feature \`${name}\` not in the layout`);
    const width = f.output.type === 'dense' ? f.output.width : 1;
    return Array.from({ length: width }, (_, k) => offset + k);
  };
  const lookup = (slots: IdSlots, table: string, combiner: Lookup['combiner'], outOffset: number): NativeLookup => ({
    table: indexOf(table),
    idOffset: slots.offset,
    width: slots.width,
    lengthSlot: slots.lengthSlot ?? -1,
    weightOffset: slots.weightOffset ?? -1,
    combiner: COMBINERS[combiner],
    outOffset,
  });

  // The wide part as the reference engine resolves it (same tables, the wide combiner is sum).
  const reference = planModel(ir);
  const wideLookups = reference.wideLookups.map((l) => lookup(l.slots, l.table, 'sum', -1));

  const pieces: NativePiece[] = ir.deep.inputs.map((input): NativePiece => {
    const f = feature(input.feature);
    if (f.kind === 'embedding') return { kind: 'embedding', lookup: lookup(slotsOf(f.feature), f.table, f.combiner, input.offset) };
    if (f.kind === 'indicator') {
      const source = feature(f.feature).output;
      if (source.type !== 'categorical') fail(`indicator of dense \`${f.feature}\``);
      const slots = slotsOf(f.feature);
      return { kind: 'indicator', idOffset: slots.offset, width: slots.width, lengthSlot: slots.lengthSlot ?? -1, weightOffset: slots.weightOffset ?? -1, buckets: source.buckets, outOffset: input.offset };
    }
    return { kind: 'numeric', sourceColumns: numericColumns(f.name), outOffset: input.offset };
  });

  const hiddenCount = ir.deep.hiddenUnits.length;
  const layers = ir.deep.layers.map((l, i): NativeLayer => {
    const hidden = i < hiddenCount;
    const normed = hidden && ir.deep.batchNorm;
    return {
      kernel: indexOf(`${l.name}/kernel`),
      bias: indexOf(`${l.name}/bias`),
      gamma: normed ? indexOf(`${l.name}/gamma`) : -1,
      beta: normed ? indexOf(`${l.name}/beta`) : -1,
      movingMean: normed ? indexOf(`${l.name}/moving_mean`) : -1,
      movingVariance: normed ? indexOf(`${l.name}/moving_variance`) : -1,
      inputs: l.inputs,
      units: l.units,
      activation: ACTIVATIONS[l.activation],
      hidden,
    };
  });

  return {
    precision: options.precision,
    lossScale: { ...(options.lossScale ?? DEFAULT_LOSS_SCALE) },
    batchCapacity: options.batchCapacity,
    ...(options.seed !== undefined ? { seed: options.seed } : {}),
    layout: { idsWidth: ir.layout.idsWidth, lengthsWidth: ir.layout.lengthsWidth, weightsWidth: ir.layout.weightsWidth, numericWidth: ir.layout.numericWidth },
    weighted: ir.roles.weight !== null,
    parameters: specs.map((spec) => nativeParameter(spec, spec.part === 'wide' ? ir.wide.optimizer : ir.deep.optimizer)),
    optimizers: [nativeOptimizer(ir.wide.optimizer), nativeOptimizer(ir.deep.optimizer)],
    wide: {
      bias: optionalIndex('wide/bias'),
      numeric: optionalIndex('wide/numeric'),
      numericColumns: ir.wide.numericFeatures.flatMap(numericColumns),
      lookups: wideLookups,
    },
    deep: {
      inputWidth: ir.deep.inputWidth,
      pieces: layers.length > 0 ? pieces : [],
      layers,
      dropout: ir.deep.dropout,
      batchNorm: { momentum: BATCH_NORM_MOMENTUM, epsilon: BATCH_NORM_EPSILON },
    },
  };
}

function nativeParameter(spec: ParameterSpec, optimizer: OptimizerIR): NativeParameter {
  const size = spec.shape.reduce((a, b) => a * b, 1);
  const table = spec.role === 'table';
  return {
    name: spec.name,
    size,
    rows: table ? spec.shape[0]! : size,
    dim: table ? spec.shape[1]! : 1,
    part: PARTS[spec.part],
    kind: PARAMETER_KINDS[spec.role],
    slots: spec.role === 'statistic' ? 0 : slotLayout(optimizer).length,
  };
}

/** Hyperparameters rounded to float32 as runtime/optim does (TF casts them to the variable's dtype); 0 where the kind has none. */
export function nativeOptimizer(ir: OptimizerIR): NativeOptimizer {
  const f32 = Math.fround;
  const base: NativeOptimizer = { kind: OPTIMIZER_KINDS[ir.kind], l1: 0, l2: 0, l2Shrinkage: 0, learningRatePower: 0, epsilon: 0, beta1: 0, beta2: 0, momentum: 0, nesterov: false };
  switch (ir.kind) {
    case 'ftrl':
      return { ...base, l1: f32(ir.l1), l2: f32(ir.l2), l2Shrinkage: f32(ir.l2Shrinkage), learningRatePower: f32(ir.learningRatePower) };
    case 'proximal_adagrad':
      return { ...base, l1: f32(ir.l1), l2: f32(ir.l2) };
    case 'adagrad':
      return { ...base, epsilon: f32(ir.epsilon) };
    case 'adam':
      return { ...base, beta1: f32(ir.beta1), beta2: f32(ir.beta2), epsilon: f32(ir.epsilon) };
    case 'sgd':
      return { ...base, momentum: f32(ir.momentum), nesterov: ir.nesterov };
  }
}

function fail(what: string): never {
  throw new Error(`internal: ${what}`);
}

// Resolved calls (plain JSON from the value checker) turned into their typed IR forms.

import type { JsonValue } from '../../dsl/language.js';
import type { DecayIR, InitializerIR, OptimizerIR, ScheduleIR } from '../ir.js';

export function optimizerIR(v: JsonValue | undefined): OptimizerIR {
  const o = v as Record<string, JsonValue>;
  switch (o.kind) {
    case 'ftrl':
      return { kind: 'ftrl', learningRate: n(o.learning_rate), learningRatePower: n(o.learning_rate_power), initialAccumulatorValue: n(o.initial_accumulator_value), l1: n(o.l1), l2: n(o.l2), l2Shrinkage: n(o.l2_shrinkage) };
    case 'proximal_adagrad':
      return { kind: 'proximal_adagrad', learningRate: n(o.learning_rate), initialAccumulatorValue: n(o.initial_accumulator_value), l1: n(o.l1), l2: n(o.l2) };
    case 'adagrad':
      return { kind: 'adagrad', learningRate: n(o.learning_rate), initialAccumulatorValue: n(o.initial_accumulator_value), epsilon: n(o.epsilon) };
    case 'adam':
      return { kind: 'adam', learningRate: n(o.learning_rate), beta1: n(o.beta1), beta2: n(o.beta2), epsilon: n(o.epsilon) };
    case 'sgd':
      return { kind: 'sgd', learningRate: n(o.learning_rate), momentum: n(o.momentum), nesterov: o.nesterov === true };
    default:
      throw new Error(`internal: optimizer ${String(o.kind)} passed the checker without lowering`);
  }
}

export function initializerIR(v: JsonValue | undefined): InitializerIR {
  const o = v as Record<string, JsonValue>;
  switch (o.kind) {
    case 'zeros':
    case 'glorot_uniform':
    case 'glorot_normal':
      return { kind: o.kind };
    case 'constant':
      return { kind: 'constant', value: n(o.value) };
    case 'normal':
    case 'truncated_normal':
      return { kind: o.kind, mean: n(o.mean), stddev: n(o.stddev) };
    case 'uniform':
      return { kind: 'uniform', min: n(o.min), max: n(o.max) };
    default:
      throw new Error(`internal: initializer ${String(o.kind)} passed the checker without lowering`);
  }
}

export function scheduleIR(props: Record<string, JsonValue>): ScheduleIR {
  const d = props.decay as Record<string, JsonValue>;
  let decay: DecayIR;
  switch (d.kind) {
    case 'exponential':
      decay = { kind: 'exponential', rate: n(d.rate), steps: n(d.steps), staircase: d.staircase === true };
      break;
    case 'cosine':
      decay = { kind: 'cosine', steps: n(d.steps), alpha: n(d.alpha) };
      break;
    case 'polynomial':
      decay = { kind: 'polynomial', steps: n(d.steps), endLearningRate: n(d.end_learning_rate), power: n(d.power) };
      break;
    default:
      decay = { kind: 'none' };
  }
  return { warmupSteps: (props.warmup_steps as number | undefined) ?? 0, warmupEpochs: (props.warmup_epochs as number | undefined) ?? 0, decay };
}

function n(v: JsonValue | undefined): number {
  if (typeof v !== 'number') throw new Error('internal: a checked number is missing');
  return v;
}

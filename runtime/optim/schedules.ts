// Learning-rate schedules (ScheduleIR): the rate each optimizer step uses, as docs/language.md
// states it. With `lr` the optimizer's learning_rate, `t` the global step counted from 0 (the
// number of updates already applied, as the optimizers count it) and a warm-up of W steps:
//
//   t <  W:  rate = lr * (t + 1) / W              (the last warm-up step reaches lr)
//   t >= W:  rate = decay(lr, t - W)              (decay counts from the end of the warm-up)
//
// The decays are TensorFlow's tf.compat.v1.train.exponential_decay, cosine_decay and
// polynomial_decay (cycle=False), the same as the Keras ExponentialDecay, CosineDecay and
// PolynomialDecay schedules, evaluated at step s = t - W. Rates are computed in float64; the
// optimizers round them to float32 when they use them.

import type { DecayIR, ScheduleIR } from '../../compiler/ir.js';

/**
 * The warm-up length in steps: `warmupSteps`, or `ceil(warmupEpochs * stepsPerEpoch)`. A product
 * within floating-point error of a whole number counts as that number (1.1 epochs of 50 steps are 55
 * steps, although 1.1 * 50 is 55.00000000000001 in float64); a non-zero warm-up is at least 1 step.
 */
export function warmupStepCount(schedule: ScheduleIR, stepsPerEpoch: number): number {
  if (schedule.warmupSteps > 0 && schedule.warmupEpochs > 0) throw new Error('internal: schedule has both warmupSteps and warmupEpochs');
  if (schedule.warmupEpochs === 0) return schedule.warmupSteps;
  if (!Number.isInteger(stepsPerEpoch) || stepsPerEpoch < 1) throw new Error(`internal: ${stepsPerEpoch} steps per epoch`);
  const exact = schedule.warmupEpochs * stepsPerEpoch;
  const nearest = Math.round(exact);
  const steps = Math.abs(exact - nearest) <= 1e-12 * Math.max(1, exact) ? nearest : Math.ceil(exact);
  return Math.max(1, steps);
}

/** The learning rate of global step `step` (from 0) for an optimizer whose learning_rate is `lr`. */
export function learningRateAt(lr: number, schedule: ScheduleIR, step: number, stepsPerEpoch: number): number {
  if (!Number.isInteger(step) || step < 0) throw new Error(`internal: schedule step ${step} is not a non-negative integer`);
  const warmup = warmupStepCount(schedule, stepsPerEpoch);
  if (step < warmup) return (lr * (step + 1)) / warmup;
  return decayedRate(lr, schedule.decay, step - warmup);
}

/** `decay(lr, s)`: the rate `s` steps after the warm-up (s from 0). */
export function decayedRate(lr: number, decay: DecayIR, s: number): number {
  switch (decay.kind) {
    case 'none':
      return lr;
    case 'exponential': {
      // exponential_decay: lr * rate^(s / steps), the exponent floored with staircase.
      const periods = s / decay.steps;
      return lr * Math.pow(decay.rate, decay.staircase ? Math.floor(periods) : periods);
    }
    case 'cosine': {
      // cosine_decay: s capped at steps; lr * ((1 - alpha) * (1 + cos(pi * s / steps)) / 2 + alpha).
      const progress = Math.min(s, decay.steps) / decay.steps;
      const cosine = 0.5 * (1 + Math.cos(Math.PI * progress));
      return lr * ((1 - decay.alpha) * cosine + decay.alpha);
    }
    case 'polynomial': {
      // polynomial_decay without cycling: s capped at steps;
      // (lr - end) * (1 - s / steps)^power + end.
      const progress = Math.min(s, decay.steps) / decay.steps;
      return (lr - decay.endLearningRate) * Math.pow(1 - progress, decay.power) + decay.endLearningRate;
    }
  }
}

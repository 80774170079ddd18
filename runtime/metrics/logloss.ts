// logloss: the weighted mean binary cross-entropy of the predicted probabilities, summed exactly.

import {
  checkKind,
  checkSize,
  checkWeight,
  type MetricAccumulator,
  type MetricExtras,
  type MetricState,
} from './accumulator.js';
import { ExactSum, type ExactSumState } from './exact-sum.js';

/**
 * Probabilities are clipped to [EPSILON, 1 - EPSILON], in double precision, before the
 * logarithms. 1e-7 is the epsilon of TensorFlow's `log_loss` and Keras's `backend.epsilon()`;
 * docs/metrics.md says how their use of it differs.
 */
export const LOGLOSS_EPSILON = 1e-7;

export interface LoglossState {
  kind: 'logloss';
  /** Sum over rows of weight * loss. */
  loss: ExactSumState;
  /** Sum over rows of weight (the row count when unweighted). */
  weight: ExactSumState;
}

/** The binary cross-entropy of one row, in double precision. */
export function binaryCrossEntropy(label: number, probability: number): number {
  const p = Math.min(Math.max(probability, LOGLOSS_EPSILON), 1 - LOGLOSS_EPSILON);
  // Written per case so that a 0/1 label costs one logarithm and 0 * log(..) never appears.
  if (label === 1) return -Math.log(p);
  if (label === 0) return -Math.log(1 - p);
  return -(label * Math.log(p) + (1 - label) * Math.log(1 - p));
}

export class LoglossAccumulator implements MetricAccumulator {
  private readonly loss = new ExactSum();
  private readonly weight = new ExactSum();

  add(labels: Float32Array, scores: Float32Array, size: number, extras: MetricExtras = {}): void {
    const weights = extras.weights ?? null;
    checkSize(size, labels, scores, weights);
    if (weights === null) {
      for (let i = 0; i < size; i++) this.loss.add(binaryCrossEntropy(labels[i]!, scores[i]!));
      this.weight.add(size); // the weights are all 1: their sum is the row count, exactly
      return;
    }
    for (let i = 0; i < size; i++) {
      const w = weights[i]!;
      checkWeight(w, i);
      if (w === 0) continue;
      this.loss.add(w * binaryCrossEntropy(labels[i]!, scores[i]!));
      this.weight.add(w);
    }
  }

  finish(): void {}

  /** sum(weight * loss) / sum(weight); NaN when no weight was seen. */
  result(): number {
    const weight = this.weight.value();
    return weight === 0 ? NaN : this.loss.value() / weight;
  }

  state(): LoglossState {
    return { kind: 'logloss', loss: this.loss.state(), weight: this.weight.state() };
  }

  merge(other: MetricState): void {
    checkKind(other, 'logloss');
    this.loss.merge(other.loss);
    this.weight.merge(other.weight);
  }
}

// auc: the exact area under the ROC curve, i.e. the (weighted) Mann-Whitney statistic.
// Every score is kept (4 bytes, 8 with weights), split by class; the result sorts them by radix
// sort and walks both classes once, so it is O(n) after the copy and depends only on the
// multiset of (score, label, weight): any split of the data, merged in any order, gives the
// same number to the last bit.

import {
  checkKind,
  checkSize,
  checkWeight,
  isPositive,
  type MetricAccumulator,
  type MetricExtras,
  type MetricState,
} from './accumulator.js';
import { GrowableFloat32 } from './growable.js';
import { floatOrderKeys, radixSort } from './radix-sort.js';

export interface AucState {
  kind: 'auc';
  positiveScores: Float32Array;
  negativeScores: Float32Array;
  /** Weights of the positive rows, in the order of `positiveScores`; null when every weight is 1. */
  positiveWeights: Float32Array | null;
  negativeWeights: Float32Array | null;
  /** Rows of nonzero weight whose score was NaN: any makes the result NaN. */
  nanScores: number;
}

/** The scores (and weights) of one class. */
class ClassScores {
  readonly scores = new GrowableFloat32();
  weights: GrowableFloat32 | null = null;

  /** Switches to explicit weights, the rows so far having weight 1. */
  weighted(): GrowableFloat32 {
    if (this.weights === null) {
      this.weights = new GrowableFloat32(this.scores.data.length);
      this.weights.appendFill(1, this.scores.length);
    }
    return this.weights;
  }

  appendState(scores: Float32Array, weights: Float32Array | null): void {
    if (weights === null) this.weights?.appendFill(1, scores.length);
    else this.weighted().append(weights);
    this.scores.append(scores);
  }
}

export class AucAccumulator implements MetricAccumulator {
  private readonly positives = new ClassScores();
  private readonly negatives = new ClassScores();
  private nanScores = 0;

  add(labels: Float32Array, scores: Float32Array, size: number, extras: MetricExtras = {}): void {
    const weights = extras.weights ?? null;
    checkSize(size, labels, scores, weights);
    if (weights === null) this.addUnweighted(labels, scores, size);
    else this.addWeighted(labels, scores, weights, size);
  }

  private addUnweighted(labels: Float32Array, scores: Float32Array, size: number): void {
    if (this.positives.weights !== null) {
      // Already weighted (by an earlier add or merge): these rows weigh 1.
      this.addWeighted(labels, scores, new Float32Array(size).fill(1), size);
      return;
    }
    const pos = this.positives.scores;
    const neg = this.negatives.scores;
    pos.reserve(size);
    neg.reserve(size);
    const posData = pos.data;
    const negData = neg.data;
    let posLength = pos.length;
    let negLength = neg.length;
    for (let i = 0; i < size; i++) {
      const s = scores[i]!;
      if (s !== s) this.nanScores++;
      else if (isPositive(labels[i]!)) posData[posLength++] = s;
      else negData[negLength++] = s;
    }
    pos.length = posLength;
    neg.length = negLength;
  }

  private addWeighted(labels: Float32Array, scores: Float32Array, weights: Float32Array, size: number): void {
    const pos = this.positives.scores;
    const neg = this.negatives.scores;
    const posWeights = this.positives.weighted();
    const negWeights = this.negatives.weighted();
    pos.reserve(size);
    neg.reserve(size);
    posWeights.reserve(size);
    negWeights.reserve(size);
    for (let i = 0; i < size; i++) {
      const w = weights[i]!;
      checkWeight(w, i);
      if (w === 0) continue; // contributes nothing, and need not be kept
      const s = scores[i]!;
      if (s !== s) {
        this.nanScores++;
      } else if (isPositive(labels[i]!)) {
        pos.data[pos.length] = s;
        posWeights.data[pos.length++] = w;
      } else {
        neg.data[neg.length] = s;
        negWeights.data[neg.length++] = w;
      }
    }
    posWeights.length = pos.length;
    negWeights.length = neg.length;
  }

  finish(): void {}

  /**
   * The probability that a random positive scores above a random negative, ties counting 1/2,
   * with rows drawn in proportion to their weights. NaN when either class has no weight, or when
   * a score was NaN.
   */
  result(): number {
    if (this.nanScores > 0) return NaN;
    const pos = sortedClass(this.positives);
    const neg = sortedClass(this.negatives);
    return pos.weights === null && neg.weights === null
      ? countedAuc(pos.keys, neg.keys)
      : weightedAuc(pos.keys, pos.weights, neg.keys, neg.weights);
  }

  state(): AucState {
    return {
      kind: 'auc',
      positiveScores: this.positives.scores.snapshot(),
      negativeScores: this.negatives.scores.snapshot(),
      positiveWeights: this.positives.weights?.snapshot() ?? null,
      negativeWeights: this.negatives.weights?.snapshot() ?? null,
      nanScores: this.nanScores,
    };
  }

  merge(other: MetricState): void {
    checkKind(other, 'auc');
    if (other.positiveWeights !== null || other.negativeWeights !== null) {
      // Weighted on one side makes both classes weighted, so the merged state stays uniform.
      this.positives.weighted();
      this.negatives.weighted();
    }
    this.positives.appendState(other.positiveScores, other.positiveWeights);
    this.negatives.appendState(other.negativeScores, other.negativeWeights);
    this.nanScores += other.nanScores;
  }
}

interface SortedClass {
  keys: Uint32Array;
  weights: Float32Array | null;
}

/**
 * The class's order keys ascending, weights alongside. Within a run of equal scores the weights
 * are put in ascending order, so the sums over the run do not depend on the order rows came in.
 */
function sortedClass(cls: ClassScores): SortedClass {
  const keys = floatOrderKeys(cls.scores.view());
  if (cls.weights === null) {
    radixSort(keys, null);
    return { keys, weights: null };
  }
  const weightBits = new Uint32Array(cls.weights.snapshot().buffer);
  radixSort(keys, weightBits);
  const weights = new Float32Array(weightBits.buffer);
  for (let start = 0; start < keys.length; ) {
    let end = start + 1;
    while (end < keys.length && keys[end] === keys[start]) end++;
    if (end - start > 1) weights.subarray(start, end).sort();
    start = end;
  }
  return { keys, weights };
}

/**
 * Unweighted: U = sum over positives of (#negatives below + #negatives equal / 2), divided by
 * P * N. Every term is an integer or a half, so U is exact while P * N < 2^53.
 */
function countedAuc(pos: Uint32Array, neg: Uint32Array): number {
  if (pos.length === 0 || neg.length === 0) return NaN;
  let u = 0;
  let below = 0; // negatives with a key below the current positive key
  let i = 0;
  while (i < pos.length) {
    const key = pos[i]!;
    let end = i + 1;
    while (end < pos.length && pos[end] === key) end++;
    while (below < neg.length && neg[below]! < key) below++;
    let equalEnd = below;
    while (equalEnd < neg.length && neg[equalEnd] === key) equalEnd++;
    u += (end - i) * (below + (equalEnd - below) / 2);
    i = end;
  }
  return u / (pos.length * neg.length);
}

/**
 * Weighted: U = sum over pairs (positive i, negative j) of w_i * w_j * [s_i > s_j] + 1/2 [s_i = s_j],
 * divided by (sum of positive weights) * (sum of negative weights): the trapezoidal area under the
 * weighted ROC curve. Sums run in sorted order, so the rounding is the same for every split.
 */
function weightedAuc(
  pos: Uint32Array,
  posWeights: Float32Array | null,
  neg: Uint32Array,
  negWeights: Float32Array | null,
): number {
  const weightOf = (weights: Float32Array | null, i: number): number => (weights === null ? 1 : weights[i]!);
  let u = 0;
  let positiveTotal = 0;
  let below = 0; // weight of negatives with a key below the current one
  let j = 0;
  let i = 0;
  while (i < pos.length) {
    const key = pos[i]!;
    let positive = 0;
    for (; i < pos.length && pos[i] === key; i++) positive += weightOf(posWeights, i);
    for (; j < neg.length && neg[j]! < key; j++) below += weightOf(negWeights, j);
    let equal = 0;
    let k = j;
    for (; k < neg.length && neg[k] === key; k++) equal += weightOf(negWeights, k);
    u += positive * (below + equal / 2);
    positiveTotal += positive;
  }
  let negativeTotal = below;
  for (; j < neg.length; j++) negativeTotal += weightOf(negWeights, j);
  if (positiveTotal === 0 || negativeTotal === 0) return NaN;
  return u / (positiveTotal * negativeTotal);
}

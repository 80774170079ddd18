// What every metric accumulator offers, and the checks of the arrays it is given.

import type { AucState } from './auc.js';
import type { LoglossState } from './logloss.js';
import type { MapAtKState } from './map-at-k.js';

/** The per-row arrays besides labels and scores; each metric reads the ones it needs. */
export interface MetricExtras {
  /** Example weights (finite, >= 0); absent or null means every weight is 1. Ignored by map@k. */
  weights?: Float32Array | null;
  /** Group ids, rows of one group contiguous; required by map@k, ignored by the others. */
  groups?: Float64Array;
}

/**
 * The plain-data state of an accumulator: numbers, arrays and typed arrays, so it travels by
 * structured clone (worker `postMessage`, `v8.serialize`) or any byte transport. Merging the
 * states of the parts of a data set gives exactly the result of one accumulator over all of it.
 */
export type MetricState = LoglossState | AucState | MapAtKState;

export interface MetricAccumulator {
  /** Adds rows `0 .. size - 1` of the arrays. */
  add(labels: Float32Array, scores: Float32Array, size: number, extras?: MetricExtras): void;
  /** Ends the data: map@k closes the group still open. Call before `state()` and `result()`. */
  finish(): void;
  /** The metric over everything added and merged; NaN when it is undefined (see docs/metrics.md). */
  result(): number;
  state(): MetricState;
  /** Adds another accumulator's state (of the same metric) to this one. */
  merge(other: MetricState): void;
}

/** Throws when `size` does not fit the arrays: a bug of the caller, not of the data. */
export function checkSize(size: number, ...arrays: (ArrayLike<number> | null | undefined)[]): void {
  if (!Number.isInteger(size) || size < 0) throw new RangeError(`metric batch size ${size} is not a count`);
  for (const array of arrays) {
    if (array != null && array.length < size) {
      throw new RangeError(`metric batch size ${size} exceeds an array of length ${array.length}`);
    }
  }
}

/** Throws on a weight that is negative or not finite: it has no meaning as an example weight. */
export function checkWeight(weight: number, row: number): void {
  if (!(weight >= 0 && weight < Infinity)) {
    throw new RangeError(`example weight ${weight} at row ${row} is not a finite number >= 0`);
  }
}

/** A label counts as positive (a click) when it is nonzero, as TensorFlow's cast to bool does. */
export function isPositive(label: number): boolean {
  return label !== 0;
}

export function checkKind<K extends MetricState['kind']>(
  state: MetricState,
  kind: K,
): asserts state is Extract<MetricState, { kind: K }> {
  if (state.kind !== kind) throw new Error(`cannot merge a \`${state.kind}\` metric state into \`${kind}\``);
}

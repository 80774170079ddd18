// Evaluation metrics with exact, mergeable state (docs/metrics.md).

import type { MetricIR } from '../../compiler/ir.js';
import type { MetricAccumulator } from './accumulator.js';
import { AucAccumulator } from './auc.js';
import { LoglossAccumulator } from './logloss.js';
import { MapAtKAccumulator } from './map-at-k.js';

export type { MetricAccumulator, MetricExtras, MetricState } from './accumulator.js';
export { AucAccumulator, type AucState } from './auc.js';
export { LoglossAccumulator, LOGLOSS_EPSILON, binaryCrossEntropy, type LoglossState } from './logloss.js';
export { MapAtKAccumulator, averagePrecisionAtK, type MapAtKState } from './map-at-k.js';
export { ExactSum, type ExactSumState } from './exact-sum.js';

/** A fresh accumulator for a metric of the spec's `train.metrics`. */
export function createMetricAccumulator(metric: MetricIR): MetricAccumulator {
  switch (metric.kind) {
    case 'auc':
      return new AucAccumulator();
    case 'logloss':
      return new LoglossAccumulator();
    case 'map':
      return new MapAtKAccumulator(metric.k);
  }
}

/** The metric's name as written in a spec and printed in logs: `auc`, `logloss`, `map@12`. */
export function metricName(metric: MetricIR): string {
  return metric.kind === 'map' ? `map@${metric.k}` : metric.kind;
}

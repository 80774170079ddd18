// Evaluation metrics over the ranks: each rank accumulates its own batches (groups whole, so map@k
// is per group), then the accumulators' exact states (runtime/metrics: every score for AUC, exact
// sums for logloss and map@k) are gathered and merged in rank order. The merged result equals one
// process's over all rows to the last bit.

import { deserialize, serialize } from 'node:v8';
import type { MetricAccumulator, MetricState } from '../metrics/index.js';
import type { Collective } from './collective.js';

/** What a rank sends: its rows and each accumulator's state. */
interface RankMetrics {
  rows: number;
  states: MetricState[];
}

/**
 * Merges every rank's finished accumulators into fresh ones from `create` (one per accumulator, in
 * the same order); returns the total rows. Every rank gets the same results.
 */
export async function reduceMetrics(collective: Collective, local: readonly MetricAccumulator[], rows: number, create: () => MetricAccumulator[]): Promise<{ rows: number; merged: MetricAccumulator[] }> {
  if (collective.size === 1) return { rows, merged: [...local] };
  const mine: RankMetrics = { rows, states: local.map((acc) => acc.state()) };
  const parts = await collective.allGather(new Uint8Array(serialize(mine)));
  const merged = create();
  let total = 0;
  for (const part of parts) {
    const theirs = deserialize(part) as RankMetrics;
    total += theirs.rows;
    theirs.states.forEach((state, i) => merged[i]!.merge(state));
  }
  for (const acc of merged) acc.finish();
  return { rows: total, merged };
}

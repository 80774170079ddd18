// The statistics pass of preprocessing: min/max/mean/std of the numeric columns whose
// normalisation needs them and whose spec does not fix them, in raw column units (the transforms
// apply their log to min and max themselves). Streaming: O(features) memory whatever the data size.

import type { StatsNeed } from '../compiled-model.js';
import type { RawRecord } from './contracts.js';

interface Running {
  need: StatsNeed;
  count: number;
  min: number;
  max: number;
  /** Welford's running mean and sum of squared deviations: stable for long streams. */
  mean: number;
  m2: number;
}

export type NumericStatsValues = Record<string, Record<string, number>>;

export class StatsAccumulator {
  private readonly running: Running[];

  constructor(needs: readonly StatsNeed[]) {
    this.running = needs.map((need) => ({ need, count: 0, min: Infinity, max: -Infinity, mean: 0, m2: 0 }));
  }

  get empty(): boolean {
    return this.running.length === 0;
  }

  add(row: RawRecord): void {
    for (const r of this.running) {
      const v = row[r.need.column];
      if (typeof v !== 'number' || !Number.isFinite(v)) continue; // missing: the encoder applies the default
      r.count++;
      if (v < r.min) r.min = v;
      if (v > r.max) r.max = v;
      const delta = v - r.mean;
      r.mean += delta / r.count;
      r.m2 += delta * (v - r.mean);
    }
  }

  /**
   * Adds a run of rows given as one array per need (in the order of the needs), NaN where a
   * row has no finite value: the same running values as adding the rows one by one.
   */
  addColumns(columns: readonly Float64Array[]): void {
    this.running.forEach((r, k) => {
      const values = columns[k]!;
      for (let i = 0; i < values.length; i++) {
        const v = values[i]!;
        if (v !== v) continue;
        r.count++;
        if (v < r.min) r.min = v;
        if (v > r.max) r.max = v;
        const delta = v - r.mean;
        r.mean += delta / r.count;
        r.m2 += delta * (v - r.mean);
      }
    });
  }

  /** Per feature, exactly the fields it needs. A column never seen gets min = max = 0, mean 0, std 1. */
  result(): NumericStatsValues {
    const out: NumericStatsValues = {};
    for (const r of this.running) {
      const seen = r.count > 0;
      const all: Record<string, number> = {
        min: seen ? r.min : 0,
        max: seen ? r.max : 0,
        mean: seen ? r.mean : 0,
        std: r.count > 1 && r.m2 > 0 ? Math.sqrt(r.m2 / (r.count - 1)) : 1,
      };
      const fields: Record<string, number> = {};
      for (const f of r.need.fields) fields[f] = all[f]!;
      out[r.need.feature] = fields;
    }
    return out;
  }
}

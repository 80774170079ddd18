// Deterministic train/validation split for `--valid-fraction`: a row goes to validation when the
// hash of its key falls below the fraction. The key is the group (so a display's ads stay together
// and ranking metrics see whole groups) or, without a group column, the row's position.

import { hashValue } from '../transforms.js';
import type { RawRecord } from './contracts.js';

/** Seed of the split hash, distinct from the feature-hashing seed so ids and splits are independent. */
export const SPLIT_SEED = 0x5eed5;

export type Splitter = (row: RawRecord, rowIndex: number) => boolean;

export function validationSplitter(fraction: number, groupColumn: string | null): Splitter {
  if (!(fraction >= 0 && fraction < 1)) throw new RangeError(`internal: valid fraction ${fraction} outside [0, 1)`);
  const threshold = fraction * 2 ** 32;
  return (row, rowIndex) => {
    const group = groupColumn === null ? undefined : row[groupColumn];
    const key = typeof group === 'number' || typeof group === 'string' ? group : rowIndex;
    return hashValue(key, SPLIT_SEED) < threshold;
  };
}

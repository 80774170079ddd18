// Simple baselines a trained model must beat on real data (test/real-data.test.ts, the README's
// "Results on real data"), computed on the same encoded shards the model trains and validates on:
//
// - constant: every row scores the same (AUC 0.5 by definition; MAP@k is then the file order's);
// - frequency: the smoothed click rate of a row's value of one categorical feature, learned on
//   train. Given no feature, the best single-id feature is chosen on train alone, by 2-fold
//   cross-validation (rates from the even rows score the odd ones and back), so a feature that
//   merely memorises train (an IP address seen once) does not win.
//
// Hashed values are compared by bucket, as the model sees them. Run it alone as
//   node --import tsx test/support/baselines.ts SHARDS [--feature NAME] [--k 12]
// where SHARDS is a `wndc preprocess` output folder (train/ and valid/).

import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { openShards, type ShardSet } from '../../runtime/data/shards.js';
import { AucAccumulator, MapAtKAccumulator } from '../../runtime/metrics/index.js';

/** The rows of a shard set that a frequency baseline needs, concatenated. */
interface Rows {
  count: number;
  idsWidth: number;
  ids: Int32Array;
  label: Float32Array;
  group: Float64Array | null;
}

function loadRows(set: ShardSet): Rows {
  const width = set.manifest.layout.idsWidth;
  const ids = new Int32Array(set.rows * width);
  const label = new Float32Array(set.rows);
  const group = set.hasGroup ? new Float64Array(set.rows) : null;
  let at = 0;
  for (let s = 0; s < set.shardCount; s++) {
    const shard = set.load(s);
    ids.set(shard.ids, at * width);
    label.set(shard.label, at);
    if (group !== null && shard.group !== null) group.set(shard.group, at);
    at += shard.rows;
  }
  return { count: set.rows, idsWidth: width, ids, label, group };
}

export interface Scores {
  auc: number;
  /** MAP@k over the groups; absent when the data has no group column. */
  mapAtK?: number;
}

function score(rows: Rows, scores: Float32Array, k: number): Scores {
  const auc = new AucAccumulator();
  auc.add(rows.label, scores, rows.count);
  auc.finish();
  if (rows.group === null) return { auc: auc.result() };
  const map = new MapAtKAccumulator(k);
  map.add(rows.label, scores, rows.count, { groups: rows.group });
  map.finish();
  return { auc: auc.result(), mapAtK: map.result() };
}

/** A click-rate table for one id slot: bucket -> [clicks, rows], and the smoothed rate of a bucket. */
class RateTable {
  private readonly counts = new Map<number, [number, number]>();
  private clicks = 0;
  private rows = 0;

  constructor(private readonly smoothing: number) {}

  add(id: number, label: number): void {
    const c = this.counts.get(id) ?? [0, 0];
    c[0] += label;
    c[1] += 1;
    this.counts.set(id, c);
    this.clicks += label;
    this.rows += 1;
  }

  /** The bucket's click rate shrunk toward the overall rate by `smoothing` pseudo-rows; unseen buckets get the overall rate. */
  rate(id: number): number {
    const prior = this.rows === 0 ? 0 : this.clicks / this.rows;
    const c = this.counts.get(id);
    return c === undefined ? prior : (c[0] + this.smoothing * prior) / (c[1] + this.smoothing);
  }
}

/** The id slot of a single-valued categorical feature (multi-valued bags are left out). */
function slotOf(set: ShardSet, feature: string): number {
  const entry = set.manifest.layout.ids.find((e) => e.feature === feature);
  if (entry === undefined) throw new Error(`no categorical feature \`${feature}\` in ${set.dir}`);
  if (entry.width !== 1) throw new Error(`feature \`${feature}\` holds ${entry.width} ids per row; the frequency baseline takes single-valued features`);
  return entry.offset;
}

function rateScores(train: Rows, trainRows: (i: number) => boolean, target: Rows, targetRows: (i: number) => boolean, slot: number, smoothing: number, out: Float32Array): void {
  const table = new RateTable(smoothing);
  for (let i = 0; i < train.count; i++) if (trainRows(i)) table.add(train.ids[i * train.idsWidth + slot]!, train.label[i]!);
  for (let i = 0; i < target.count; i++) if (targetRows(i)) out[i] = table.rate(target.ids[i * target.idsWidth + slot]!);
}

/** Train AUC of a feature's click rates under 2-fold cross-validation (even rows vs odd rows). */
function crossValidatedAuc(train: Rows, slot: number, smoothing: number): number {
  const scores = new Float32Array(train.count);
  const even = (i: number) => i % 2 === 0;
  const odd = (i: number) => i % 2 === 1;
  rateScores(train, even, train, odd, slot, smoothing, scores);
  rateScores(train, odd, train, even, slot, smoothing, scores);
  return score({ ...train, group: null }, scores, 1).auc;
}

export interface BaselineReport {
  constant: Scores;
  frequency: Scores & { feature: string; trainCvAuc: number };
}

export interface BaselineOptions {
  /** The feature to rate by; default: the best single-valued feature by 2-fold AUC on train. */
  feature?: string;
  /** k of MAP@k (default 12). */
  k?: number;
  /** Pseudo-rows at the overall rate added to every value (default 10). */
  smoothing?: number;
}

/** Both baselines on a preprocessed folder's validation shards, learned from its train shards. */
export function baselines(trainSet: ShardSet, validSet: ShardSet, options: BaselineOptions = {}): BaselineReport {
  const k = options.k ?? 12;
  const smoothing = options.smoothing ?? 10;
  const train = loadRows(trainSet);
  const valid = loadRows(validSet);
  const candidates = options.feature !== undefined ? [options.feature] : trainSet.manifest.layout.ids.filter((e) => e.width === 1).map((e) => e.feature);
  let best = { feature: '', trainCvAuc: -Infinity };
  for (const feature of candidates) {
    const cv = crossValidatedAuc(train, slotOf(trainSet, feature), smoothing);
    if (cv > best.trainCvAuc) best = { feature, trainCvAuc: cv };
  }
  const scores = new Float32Array(valid.count);
  rateScores(train, () => true, valid, () => true, slotOf(trainSet, best.feature), smoothing, scores);
  return { constant: score(valid, new Float32Array(valid.count).fill(0.5), k), frequency: { ...score(valid, scores, k), ...best } };
}

/** `baselines` on `DIR/train` and `DIR/valid`. */
export function baselinesOf(dir: string, options: BaselineOptions = {}): BaselineReport {
  return baselines(openShards(join(dir, 'train')), openShards(join(dir, 'valid')), options);
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const [dir, ...rest] = process.argv.slice(2);
  if (dir === undefined) {
    process.stderr.write('usage: node --import tsx test/support/baselines.ts SHARDS [--feature NAME] [--k K]\n');
    process.exit(2);
  }
  const flag = (name: string) => {
    const i = rest.indexOf(name);
    return i < 0 ? undefined : rest[i + 1];
  };
  const feature = flag('--feature');
  const k = flag('--k');
  process.stdout.write(`${JSON.stringify(baselinesOf(dir, { ...(feature ? { feature } : {}), ...(k ? { k: Number(k) } : {}) }))}\n`);
}

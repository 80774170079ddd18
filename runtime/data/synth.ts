// Synthetic click logs for any model spec: raw rows shaped like real ones (Zipf-like id
// popularity, bags of realistic lengths, numerics in the ranges the normalisations expect, display
// groups with one click each) whose labels come from a hidden ground-truth model over the spec's
// own encoded features, so a model of exactly this spec can learn them. Everything is a pure
// function of the seed (own PRNG, no Math.random): same seed, same rows, on any machine.
// docs/synth.md describes the distributions and the ground truth's reference scores.

import { open, rename, rm, stat } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { DuckDBInstance } from '@duckdb/node-api';
import type { ColumnIR, FeatureIR, Literal, ModelIR } from '../../compiler/ir.js';
import {
  bucketize,
  createCounters,
  crossBags,
  crossId,
  hashBag,
  hashBucket,
  identityBag,
  identityId,
  log01,
  logCount,
  minMax,
  Vocabulary,
  vocabularyBag,
  zScore,
  type FeatureCounters,
} from '../transforms.js';
import type { RawChunk, RawRecord, RawSource, RawValue } from './contracts.js';
import { fmix32 } from '../mix.js';

export interface SynthOptions {
  rows: number;
  /** Any non-negative safe integer. */
  seed: number;
  /** Rows per chunk (default 65536); a chunk never splits a group, so it may hold up to 11 fewer. */
  chunkRows?: number;
  /** Standard deviation of the ground-truth logit over rows (default SIGNAL = 1.5). */
  signal?: number;
  /** Rows whose ground-truth scores are kept for `truth.report()` (default 1,000,000). */
  tallyRows?: number;
}

/** The file name chunks of a synthetic source report. */
export const SYNTH_FILE = '<synthetic>';
export const SIGNAL = 1.5;
/** Exponent of the Zipf-like popularity of ids and values. */
export const ZIPF_EXPONENT = 1.1;
/** A hashed column draws raw values from HASH_SPACE_FACTOR x buckets values, so ids collide as in real data. */
export const HASH_SPACE_FACTOR = 2;
/** Share of vocabulary values drawn from outside the vocabulary. */
export const OOV_SHARE = 0.02;
/** Click rate without a group column; with one, 1 / (mean group size) = 1 / 5.2. */
export const CLICK_RATE = 0.19;
export const MIN_GROUP = 2;
export const MAX_GROUP = 12;
/** Group size = MIN_GROUP + Poisson(GROUP_EXTRA_MEAN) cut at MAX_GROUP: mean about 5.2. */
const GROUP_EXTRA_MEAN = 3.2;
/** Counts: floor(COUNT_SCALE * Pareto(COUNT_ALPHA)), at most COUNT_CAP. */
const COUNT_SCALE = 10;
const COUNT_ALPHA = 1.5;
export const COUNT_CAP = 1_000_000;
/** Rows drawn (from a separate stream) to standardise numeric signals and set the click bias. */
const PILOT_ROWS = 4096;
const DEFAULT_CHUNK_ROWS = 65536;
/** Ranks a Zipf draws from its alias table; rarer ones come from the continuous law. */
const HEAD_RANKS = 65536;
const DEFAULT_TALLY_ROWS = 1_000_000;

// ---------------------------------------------------------------------------------------------
// Randomness: sfc32 (Chris Doty-Humphrey's small fast counter generator), 32-bit integer
// arithmetic only, so every engine gives the same stream.

export class Rng {
  /** a, b, c, d as int32: typed-array slots never box a number. */
  private readonly state = new Int32Array(4);

  /** `stream` picks an independent sequence for the same seed. */
  constructor(seed: number, stream: number) {
    this.state[0] = seed >>> 0;
    this.state[1] = Math.floor(seed / 2 ** 32) >>> 0;
    this.state[2] = stream >>> 0;
    this.state[3] = 1;
    for (let i = 0; i < 16; i++) this.uint32();
  }

  uint32(): number {
    const s = this.state;
    const a = s[0]!;
    const b = s[1]!;
    const c = s[2]!;
    const d = s[3]!;
    const t = (((a + b) | 0) + d) | 0;
    s[3] = (d + 1) | 0;
    s[0] = b ^ (b >>> 9);
    s[1] = (c + (c << 3)) | 0;
    s[2] = (((c << 21) | (c >>> 11)) + t) | 0;
    return t >>> 0;
  }

  /** Uniform in [0, 1). */
  float(): number {
    return this.uint32() * 2.3283064365386963e-10; // 2^-32
  }

  /** Uniform integer in [0, n). */
  below(n: number): number {
    return Math.floor(this.float() * n);
  }
}

/** fmix32 of MurmurHash3 over `key` mixed with `id`: a fixed pseudo-random uint32 per pair. */
function mix(key: number, id: number): number {
  return fmix32((Math.imul(id, 0x9e3779b1) ^ key) | 0);
}

/** Keeps 6 decimals: short CSV text that parses back to the same double. */
function round6(x: number): number {
  return Math.round(x * 1e6) / 1e6;
}

// ---------------------------------------------------------------------------------------------
// Distributions.

/**
 * Ranks 0..n-1 with P(rank r) proportional to (r+1)^-s. The first HEAD_RANKS ranks are drawn in
 * O(1) from an alias table (Walker), the rest from the continuous power law, floored: Math.pow
 * and Math.log cost tens of nanoseconds, and most draws land in the head.
 */
class Zipf {
  private static readonly cache = new Map<number, Zipf>();
  private readonly head: number;
  /** Probability of drawing from the head; 1 when n <= HEAD_RANKS. */
  private readonly headShare: number;
  private readonly keep: Float64Array;
  private readonly alias: Int32Array;
  /** Tail as the continuous law on [head + 0.5, n + 0.5): x = (tailA * u + tailB)^(1 / (1 - s)). */
  private readonly tailA: number;
  private readonly tailB: number;

  static of(n: number): Zipf {
    let zipf = Zipf.cache.get(n);
    if (zipf === undefined) {
      zipf = new Zipf(n);
      Zipf.cache.set(n, zipf);
    }
    return zipf;
  }

  private constructor(readonly n: number) {
    const s = ZIPF_EXPONENT;
    const head = Math.min(n, HEAD_RANKS);
    this.head = head;
    const weights = new Float64Array(head);
    let headMass = 0;
    for (let r = 0; r < head; r++) headMass += weights[r] = Math.pow(r + 1, -s);
    const lo = Math.pow(head + 0.5, 1 - s);
    const hi = Math.pow(n + 0.5, 1 - s);
    const tailMass = n > head ? (lo - hi) / (s - 1) : 0;
    this.headShare = headMass / (headMass + tailMass);
    this.tailA = hi - lo;
    this.tailB = lo;
    // Walker's alias method: split the head into `head` equal cells of at most two ranks each.
    this.keep = new Float64Array(head);
    this.alias = new Int32Array(head);
    const small: number[] = [];
    const large: number[] = [];
    for (let r = 0; r < head; r++) {
      this.keep[r] = (weights[r]! * head) / headMass;
      (this.keep[r]! < 1 ? small : large).push(r);
    }
    while (small.length > 0 && large.length > 0) {
      const less = small.pop()!;
      const more = large[large.length - 1]!;
      this.alias[less] = more;
      this.keep[more] = this.keep[more]! + this.keep[less]! - 1;
      if (this.keep[more]! < 1) small.push(large.pop()!);
    }
    for (const r of [...small, ...large]) {
      this.keep[r] = 1;
      this.alias[r] = r;
    }
  }

  draw(rng: Rng): number {
    if (this.headShare < 1 && rng.float() >= this.headShare) {
      const x = Math.exp(Math.log(this.tailA * rng.float() + this.tailB) / (1 - ZIPF_EXPONENT));
      const rank = Math.floor(x + 0.5) - 1;
      return rank < this.head ? this.head : rank < this.n ? rank : this.n - 1;
    }
    const cell = rng.below(this.head);
    return rng.float() < this.keep[cell]! ? cell : this.alias[cell]!;
  }
}

/** A fixed bijection of [0, n) (rank * multiplier + offset mod n), so popular ids are spread out. */
class Scramble {
  private readonly multiplier: number;
  private readonly offset: number;

  constructor(
    private readonly n: number,
    rng: Rng,
  ) {
    // Products must stay exact doubles; beyond 2^26 ids the identity map is used.
    if (n < 3 || n > 2 ** 26) {
      this.multiplier = 1;
      this.offset = 0;
      return;
    }
    let m = 1 + rng.below(n - 1);
    while (gcd(m, n) !== 1) m = m + 1 < n ? m + 1 : 1;
    this.multiplier = m;
    this.offset = rng.below(n);
  }

  apply(rank: number): number {
    return (rank * this.multiplier + this.offset) % this.n;
  }
}

function gcd(a: number, b: number): number {
  while (b !== 0) [a, b] = [b, a % b];
  return a;
}

function poissonCdf(mean: number, max: number): Float64Array {
  const cdf = new Float64Array(max + 1);
  let p = Math.exp(-mean);
  let sum = 0;
  for (let k = 0; k <= max; k++) {
    sum += p;
    cdf[k] = sum;
    p *= mean / (k + 1);
  }
  for (let k = 0; k <= max; k++) cdf[k] = cdf[k]! / sum;
  return cdf;
}

const GROUP_EXTRA_CDF = poissonCdf(GROUP_EXTRA_MEAN, MAX_GROUP - MIN_GROUP);

function drawGroupSize(rng: Rng): number {
  const u = rng.float();
  let extra = 0;
  while (extra < GROUP_EXTRA_CDF.length - 1 && u >= GROUP_EXTRA_CDF[extra]!) extra++;
  return MIN_GROUP + extra;
}

/** Non-negative integers with a heavy (Pareto) tail: median about 6, a few in the thousands. */
function drawCount(rng: Rng): number {
  const x = Math.floor(COUNT_SCALE * (Math.exp(-Math.log(1 - rng.float()) / COUNT_ALPHA) - 1));
  return x < COUNT_CAP ? x : COUNT_CAP;
}

// ---------------------------------------------------------------------------------------------
// Column plans: how the raw values of each column are drawn, chosen from the features reading it.

/** `row` holds the columns drawn before (all but the late ones); null for those. */
type Draw = (rng: Rng, row: RawRecord | null) => RawValue;

interface ColumnPlan {
  column: ColumnIR;
  /** What docs/synth.md calls the shape, for messages and tests. */
  shape: string;
  draw: Draw;
  /** Reads other columns of the row (a weights list as long as its bag): drawn after the rest. */
  late?: boolean;
}

/** Draws one value of a column (a scalar, or one element of a bag). */
type ElementDraw = (rng: Rng) => number | string;

/**
 * The values of a categorical column: ranks drawn from a Zipf law, spread over the id space by a
 * scramble, mapped to values (a prefix for strings, vocabulary entries), plus an OOV share. One
 * class with one draw method keeps every bag loop's call monomorphic.
 */
class Categories {
  constructor(
    private readonly zipf: Zipf,
    private readonly scramble: Scramble | null,
    /** Strings: prefix + rank (e.g. `user_123`); null for numbers. */
    private readonly prefix: string | null,
    private readonly entries: readonly (number | string)[] | null,
    private readonly oovShare: number,
    private readonly oovPrefix: string | null,
    private readonly firstUnused: number,
  ) {}

  draw(rng: Rng): number | string {
    if (this.oovShare > 0 && rng.float() < this.oovShare) {
      const k = rng.below(1000);
      return this.oovPrefix !== null ? this.oovPrefix + k : this.firstUnused + k;
    }
    let rank = this.zipf.draw(rng);
    if (this.scramble !== null) rank = this.scramble.apply(rank);
    if (this.entries !== null) return this.entries[rank]!;
    return this.prefix !== null ? this.prefix + rank : rank;
  }
}

function hashedCategories(column: ColumnIR, buckets: number): Categories {
  const prefix = column.type === 'string' ? `${column.name}_` : null;
  return new Categories(Zipf.of(Math.max(1, buckets * HASH_SPACE_FACTOR)), null, prefix, null, 0, null, 0);
}

function identityCategories(column: ColumnIR, buckets: number, rng: Rng): Categories {
  return new Categories(Zipf.of(buckets), new Scramble(buckets, rng), column.type === 'string' ? '' : null, null, 0, null, 0);
}

function vocabularyCategories(column: ColumnIR, values: readonly Literal[], rng: Rng): Categories {
  // Entries the column type can hold, as that type; numbers absent from the vocabulary are OOV.
  const entries: (number | string)[] = [];
  for (const value of values) {
    if (column.type === 'string') entries.push(String(value));
    else if (Number.isFinite(Number(value)) && String(value) !== '') entries.push(Number(value));
  }
  const numbers = entries.filter((e): e is number => typeof e === 'number');
  const firstUnused = numbers.length === 0 ? 0 : Math.floor(Math.max(...numbers)) + 1;
  const n = Math.max(1, entries.length);
  const oovPrefix = column.type === 'string' ? `${column.name}_oov_` : null;
  return new Categories(Zipf.of(n), new Scramble(n, rng), null, entries, entries.length === 0 ? 1 : OOV_SHARE, oovPrefix, firstUnused);
}

function categoriesOf(feature: FeatureIR, column: ColumnIR, rng: Rng): Categories | null {
  const buckets = feature.output.type === 'categorical' ? feature.output.buckets : 1;
  switch (feature.kind) {
    case 'hashed':
      return hashedCategories(column, buckets);
    case 'identity':
      return identityCategories(column, buckets, rng);
    case 'vocabulary':
      return vocabularyCategories(column, feature.values, rng);
    case 'multi_hot':
      if (feature.mapping.by === 'identity') return identityCategories(column, buckets, rng);
      if (feature.mapping.by === 'hash') return hashedCategories(column, buckets);
      return vocabularyCategories(column, feature.mapping.values, rng);
    default:
      return null;
  }
}

function categoricalDraw(column: ColumnIR, categories: Categories, maxLen: number): Draw {
  if (!column.list) return (rng) => categories.draw(rng);
  return (rng) => {
    const length = 1 + rng.below(maxLen);
    const bag: (number | string)[] = [];
    // Distinct values where the space allows; ten tries per slot keep tiny spaces from looping.
    for (let tries = 0; bag.length < length && tries < length * 10; tries++) {
      const value = categories.draw(rng);
      if (!bag.includes(value)) bag.push(value);
    }
    return bag;
  };
}

/** A bag of 1..maxLen elements (uniform length). */
function bagDraw(element: ElementDraw, maxLen: number): Draw {
  return (rng) => Array.from({ length: 1 + rng.below(maxLen) }, () => element(rng));
}

function scalarOrBag(column: ColumnIR, element: ElementDraw, maxLen: number): Draw {
  return column.list ? bagDraw(element, maxLen) : (rng) => element(rng);
}

/** Numerics by normalisation: counts for the log-count norms, [0, 1] (log-uniform for log_01scaled) otherwise. */
function numericDraw(column: ColumnIR, norm: string): { shape: string; element: ElementDraw } {
  if (norm === 'log_count' || norm === 'log_count_minmax') return { shape: 'count', element: drawCount };
  if (column.type === 'int') return { shape: 'int 0..100', element: (rng) => rng.below(101) };
  if (norm === 'log_01scaled') return { shape: 'log-uniform [1e-4, 1]', element: (rng) => round6(Math.exp(-4 * Math.LN10 * rng.float())) };
  return { shape: 'uniform [0, 1]', element: (rng) => round6(rng.float()) };
}

/** Values spread over every bucket: a bucket at random, then uniform inside it (outer ones as wide as their neighbour). */
function bucketizedDraw(column: ColumnIR, boundaries: readonly number[]): ElementDraw {
  const n = boundaries.length;
  const lo = (i: number): number => (i > 0 ? boundaries[i - 1]! : boundaries[0]! - (n > 1 ? boundaries[1]! - boundaries[0]! : 1));
  const hi = (i: number): number => (i < n ? boundaries[i]! : boundaries[n - 1]! + (n > 1 ? boundaries[n - 1]! - boundaries[n - 2]! : 1));
  return (rng) => {
    const bucket = rng.below(n + 1);
    const x = lo(bucket) + rng.float() * (hi(bucket) - lo(bucket));
    return column.type === 'int' ? Math.floor(x) : round6(x);
  };
}

function unusedDraw(column: ColumnIR): ElementDraw {
  if (column.type === 'float') return (rng) => round6(rng.float());
  const categories = hashedCategories(column, 500);
  return (rng) => categories.draw(rng);
}

/** What reads each column: the first feature by priority (categorical, numeric, bucketized). */
function planColumns(ir: ModelIR, rng: Rng): ColumnPlan[] {
  const readers = new Map<string, FeatureIR[]>();
  const weightSources = new Map<string, string | null>(); // weights column -> column of the weighted bag
  for (const feature of ir.features) {
    if ('column' in feature) readers.set(feature.column, [...(readers.get(feature.column) ?? []), feature]);
    if (feature.kind === 'weighted') weightSources.set(feature.weights, sourceColumn(ir, feature.feature));
  }
  const rank = (f: FeatureIR): number => (f.kind === 'numeric' ? 1 : f.kind === 'bucketized' ? 2 : 0);
  return ir.columns.map((column): ColumnPlan => {
    const { roles } = ir;
    if (column.name === roles.label) return { column, shape: 'label', draw: () => 0 }; // set per group or row later
    if (column.name === roles.weight) return { column, shape: 'weight 1', draw: () => (column.type === 'string' ? '1' : 1) };
    // The generator sets group values, one per group.
    if (column.name === roles.group) return { column, shape: 'group', draw: () => 0 };
    const feature = [...(readers.get(column.name) ?? [])].sort((x, y) => rank(x) - rank(y))[0];
    if (feature !== undefined) {
      const maxLen = feature.output.type === 'categorical' ? feature.output.maxLen : 3;
      const categories = categoriesOf(feature, column, rng);
      if (categories !== null) return { column, shape: feature.kind, draw: categoricalDraw(column, categories, maxLen) };
      if (feature.kind === 'numeric') {
        const numeric = numericDraw(column, feature.norm);
        return { column, shape: numeric.shape, draw: scalarOrBag(column, numeric.element, 3) };
      }
      if (feature.kind === 'bucketized') return { column, shape: 'bucketized', draw: scalarOrBag(column, bucketizedDraw(column, feature.boundaries), 3) };
    }
    if (weightSources.has(column.name)) {
      const source = weightSources.get(column.name) ?? null;
      const weight = (rng: Rng): number => round6(1 - rng.float()); // (0, 1]
      if (!column.list) return { column, shape: 'weights (0, 1]', draw: weight };
      return {
        column,
        shape: 'weights (0, 1]',
        late: true,
        draw: (rng, row) => {
          const bag = source === null || row === null ? null : row[source];
          const length = Array.isArray(bag) ? bag.length : 1;
          return Array.from({ length }, () => weight(rng));
        },
      };
    }
    return { column, shape: 'unused', draw: scalarOrBag(column, unusedDraw(column), 3) };
  });
}

/** The column a (weighted) feature's ids come from, following weighted features down. */
function sourceColumn(ir: ModelIR, featureName: string): string | null {
  const feature = ir.features.find((f) => f.name === featureName);
  if (feature === undefined) return null;
  if ('column' in feature) return feature.column;
  if (feature.kind === 'weighted') return sourceColumn(ir, feature.feature);
  return null;
}

// ---------------------------------------------------------------------------------------------
// The hidden ground truth: logit = sum over the encoded features (ir.layout) of a pseudo-random
// weight per (feature, id), combined over bags with the feature's combiner, plus a weight per
// standardised numeric feature. Ids are computed from raw values with runtime/transforms.ts, so
// the signal is exactly what a model of this spec sees.

interface IdScratch {
  ids: Int32Array;
  length: number;
  /** Per-id weights of a weighted feature; null when unweighted. */
  weights: Float64Array | null;
}

type IdStep = (row: RawRecord) => void;

interface CategoricalTerm {
  scratch: IdScratch;
  /** Seeds the pseudo-random weight of each id of the feature. */
  key: number;
  combiner: 'mean' | 'sum' | 'sqrtn';
}

interface NumericTerm {
  column: ColumnIR;
  normalise: (x: number) => number;
  weight: number;
  /** Standardisation of the normalised value, measured on pilot rows by `calibrate`. */
  mean: number;
  scale: number;
}

export class GroundTruth {
  /** Added to every logit; sets the click rate without groups (0 with groups: softmax ignores it). */
  bias = 0;
  private readonly steps: IdStep[] = [];
  private readonly categorical: CategoricalTerm[] = [];
  private readonly numeric: NumericTerm[] = [];
  private readonly scratch = new Map<string, IdScratch>();
  private readonly counters: FeatureCounters;
  /** Half-width of the uniform weights: each encoded feature's term has std about signal / sqrt(features). */
  private readonly amplitude: number;

  constructor(
    private readonly ir: ModelIR,
    seed: number,
    signal: number = SIGNAL,
  ) {
    this.counters = createCounters(['ground truth']).features[0]!;
    const encoded = ir.layout.ids.length + ir.layout.numeric.length;
    this.amplitude = (signal / Math.sqrt(Math.max(1, encoded))) * Math.sqrt(3); // uniform [-a, a] has std a/sqrt(3)
    const seedKey = mix(seed >>> 0, Math.floor(seed / 2 ** 32) >>> 0);
    for (const feature of this.dependencyOrder(ir.layout.ids.map((slot) => slot.feature))) this.steps.push(this.idStep(feature));
    for (const slot of ir.layout.ids) {
      const index = ir.features.findIndex((f) => f.name === slot.feature);
      const feature = ir.features[index]!;
      const combiner = feature.output.type === 'categorical' ? feature.output.combiner : 'sum';
      this.categorical.push({ scratch: this.scratch.get(feature.name)!, key: mix(seedKey, index + 1), combiner });
    }
    for (const slot of ir.layout.numeric) {
      const index = ir.features.findIndex((f) => f.name === slot.feature);
      const feature = ir.features[index];
      if (feature?.kind !== 'numeric') throw new Error(`internal: IR numeric layout lists ${JSON.stringify(slot.feature)}, not a numeric feature`);
      const weight = this.amplitude * (2 * (mix(seedKey, index + 1) / 4294967296) - 1);
      this.numeric.push({ column: this.columnOf(feature.column), normalise: nominalNormalisation(feature), weight, mean: 0, scale: 1 });
    }
  }

  /**
   * Standardises each numeric term on pilot rows (so a count's long tail cannot dominate) and,
   * given a click rate, sets the bias so that the mean click probability of the pilot is that rate.
   */
  calibrate(pilot: readonly RawRecord[], clickRate: number | null): void {
    for (const term of this.numeric) {
      let sum = 0;
      let squares = 0;
      for (const row of pilot) {
        const v = term.normalise(numberOf(row[term.column.name], term.column));
        sum += v;
        squares += v * v;
      }
      term.mean = sum / pilot.length;
      const std = Math.sqrt(Math.max(0, squares / pilot.length - term.mean * term.mean));
      term.scale = std > 1e-12 ? 1 / std : 0;
    }
    if (clickRate === null) return;
    const logits = pilot.map((row) => this.logitWithoutBias(row));
    let lo = -30;
    let hi = 30;
    for (let i = 0; i < 60; i++) {
      const mid = (lo + hi) / 2;
      let rate = 0;
      for (const l of logits) rate += sigmoid(l + mid);
      if (rate / logits.length < clickRate) lo = mid;
      else hi = mid;
    }
    this.bias = (lo + hi) / 2;
  }

  /** The ground-truth logit of a raw row (missing fields take their column default). */
  logit(row: RawRecord): number {
    return this.logitWithoutBias(row) + this.bias;
  }

  private logitWithoutBias(row: RawRecord): number {
    for (const step of this.steps) step(row);
    let sum = 0;
    for (const term of this.categorical) sum += categoricalTerm(term, this.amplitude);
    for (const term of this.numeric) {
      const v = term.normalise(numberOf(row[term.column.name], term.column));
      sum += term.weight * (v - term.mean) * term.scale;
    }
    return sum;
  }

  private columnOf(name: string): ColumnIR {
    const column = this.ir.columns.find((c) => c.name === name);
    if (column === undefined) throw new Error(`internal: IR feature reads unknown column ${JSON.stringify(name)}`);
    return column;
  }

  /** Features whose ids `names` need, inputs before the features that read them. */
  private dependencyOrder(names: readonly string[]): FeatureIR[] {
    const order: FeatureIR[] = [];
    const seen = new Set<string>();
    const visit = (name: string): void => {
      if (seen.has(name)) return;
      seen.add(name);
      const feature = this.ir.features.find((f) => f.name === name);
      if (feature === undefined) throw new Error(`internal: IR refers to unknown feature ${JSON.stringify(name)}`);
      if (feature.kind === 'crossed') feature.features.forEach(visit);
      if (feature.kind === 'weighted') visit(feature.feature);
      order.push(feature);
    };
    names.forEach(visit);
    return order;
  }

  private idStep(feature: FeatureIR): IdStep {
    if (feature.output.type !== 'categorical') throw new Error(`internal: IR feature ${JSON.stringify(feature.name)} has no ids`);
    const { buckets, maxLen } = feature.output;
    const scratch: IdScratch = { ids: new Int32Array(maxLen), length: 1, weights: null };
    this.scratch.set(feature.name, scratch);
    const c = this.counters;
    const ids = scratch.ids;
    switch (feature.kind) {
      case 'hashed': {
        const column = this.columnOf(feature.column);
        return (row) => {
          ids[0] = hashBucket(scalarOf(row[column.name], column), buckets);
        };
      }
      case 'identity': {
        const column = this.columnOf(feature.column);
        return (row) => {
          ids[0] = identityId(numberOf(row[column.name], column), buckets, feature.defaultId, c);
        };
      }
      case 'bucketized': {
        const column = this.columnOf(feature.column);
        return (row) => {
          ids[0] = bucketize(numberOf(row[column.name], column), feature.boundaries);
        };
      }
      case 'vocabulary': {
        const column = this.columnOf(feature.column);
        const vocabulary = new Vocabulary(feature.values, feature.oovBuckets);
        return (row) => {
          ids[0] = vocabulary.id(scalarOf(row[column.name], column), c);
        };
      }
      case 'multi_hot': {
        const column = this.columnOf(feature.column);
        const mapping = feature.mapping;
        const vocabulary = mapping.by === 'vocabulary' ? new Vocabulary(mapping.values, mapping.oovBuckets) : null;
        return (row) => {
          const bag = listOf(row[column.name], column);
          if (mapping.by === 'identity') scratch.length = identityBag(bag as number[], buckets, mapping.defaultId, ids, 0, maxLen, c);
          else if (vocabulary !== null) scratch.length = vocabularyBag(bag, vocabulary, ids, 0, maxLen, c);
          else scratch.length = hashBag(bag, buckets, ids, 0, maxLen, c);
        };
      }
      case 'crossed': {
        const inputs = feature.features.map((name) => this.scratch.get(name)!);
        const offsets: number[] = [];
        let width = 0;
        for (const input of inputs) {
          offsets.push(width);
          width += input.ids.length;
        }
        const gathered = new Int32Array(width);
        const lengths = new Int32Array(inputs.length);
        const single = inputs.every((input) => input.ids.length === 1) && !feature.output.multivalent;
        return () => {
          inputs.forEach((input, k) => {
            gathered.set(input.ids.subarray(0, input.length), offsets[k]!);
            lengths[k] = input.length;
          });
          if (single) ids[0] = crossId(gathered, 0, inputs.length, buckets);
          else scratch.length = crossBags(gathered, offsets, lengths, buckets, ids, 0, maxLen, c);
        };
      }
      case 'weighted': {
        const source = this.scratch.get(feature.feature)!;
        const column = this.columnOf(feature.weights);
        scratch.weights = new Float64Array(maxLen);
        const weights = scratch.weights;
        return (row) => {
          scratch.length = source.length;
          ids.set(source.ids.subarray(0, source.length));
          const raw = row[column.name];
          for (let i = 0; i < source.length; i++) {
            const w = Array.isArray(raw) ? raw[i] : i === 0 ? raw : undefined;
            weights[i] = typeof w === 'number' ? w : w === undefined || w === null ? 1 : Number(w);
          }
        };
      }
      case 'numeric':
      case 'embedding':
      case 'indicator':
        throw new Error(`internal: IR feature ${JSON.stringify(feature.name)} (${feature.kind}) has no ids to compute`);
    }
  }
}

function categoricalTerm(term: CategoricalTerm, amplitude: number): number {
  const { scratch, key, combiner } = term;
  let sum = 0;
  let weightSum = 0;
  let weightSquares = 0;
  for (let i = 0; i < scratch.length; i++) {
    const w = scratch.weights === null ? 1 : scratch.weights[i]!;
    sum += w * amplitude * (2 * (mix(key, scratch.ids[i]!) / 4294967296) - 1);
    weightSum += w;
    weightSquares += w * w;
  }
  if (combiner === 'sum') return sum;
  if (combiner === 'mean') return weightSum > 0 ? sum / weightSum : 0;
  return weightSquares > 0 ? sum / Math.sqrt(weightSquares) : 0;
}

/** The feature's normalisation with its IR statistics, or the synthetic ranges where the data decides them. */
function nominalNormalisation(feature: Extract<FeatureIR, { kind: 'numeric' }>): (x: number) => number {
  const counts = feature.norm === 'log_count' || feature.norm === 'log_count_minmax';
  const min = feature.stats.min ?? 0;
  const max = feature.stats.max ?? (counts ? COUNT_CAP : 1);
  switch (feature.norm) {
    case 'none':
      return (x) => x;
    case 'log_count':
      return logCount;
    case 'minmax':
      return (x) => minMax(x, min, max);
    case 'zscore': {
      const mean = feature.stats.mean ?? 0.5;
      const std = feature.stats.std ?? Math.sqrt(1 / 12);
      return (x) => zScore(x, mean, std);
    }
    case 'log_count_minmax': {
      const [lo, hi] = [logCount(min), logCount(max)];
      return (x) => minMax(logCount(x), lo, hi);
    }
    case 'log_01scaled': {
      const [lo, hi] = [log01(min), log01(max)];
      return (x) => minMax(log01(x), lo, hi);
    }
  }
}

function defaultScalar(column: ColumnIR): Literal {
  const d = column.default;
  if (d !== null && !Array.isArray(d)) return d;
  return column.type === 'string' ? '' : 0;
}

function scalarOf(value: RawValue | undefined, column: ColumnIR): string | number {
  const v = value === undefined || value === null || Array.isArray(value) ? defaultScalar(column) : value;
  return typeof v === 'boolean' ? Number(v) : (v as string | number);
}

function numberOf(value: RawValue | undefined, column: ColumnIR): number {
  return Number(scalarOf(value, column));
}

function listOf(value: RawValue | undefined, column: ColumnIR): readonly (string | number)[] {
  if (Array.isArray(value)) return value.filter((v): v is string | number => v !== null);
  return Array.isArray(column.default) ? (column.default.filter((v) => typeof v !== 'boolean') as (string | number)[]) : [];
}

function sigmoid(x: number): number {
  return 1 / (1 + Math.exp(-x));
}

// ---------------------------------------------------------------------------------------------
// The generator: rows group by group (or one by one without a group column), labels from the
// ground truth. Streams: 1 draws the rows, 2 the pilot rows, 3 the column plans' fixed choices.

/** Rows of one chunk with what the ground truth made of them. */
export interface SynthBatch {
  rows: RawRecord[];
  /** Ground-truth logit of each row (bias included). */
  logits: Float64Array;
  labels: Uint8Array;
  /** Sizes of the groups in `rows`, in order (empty without a group column). */
  groupSizes: number[];
}

export class SynthGenerator {
  readonly truth: GroundTruth;
  readonly plans: readonly ColumnPlan[];
  private readonly rng: Rng;
  private readonly labelColumn: ColumnIR;
  private readonly groupColumn: ColumnIR | null;
  private produced = 0;
  private groups = 0;
  /** A group size drawn but not yet generated because it did not fit the last chunk. */
  private pendingGroup = 0;
  private readonly rowDrawer: (rng: Rng) => RawRecord;

  constructor(
    ir: ModelIR,
    private readonly options: SynthOptions,
  ) {
    if (!Number.isSafeInteger(options.seed) || options.seed < 0) throw new Error(`internal: synth seed must be a non-negative safe integer, not ${options.seed}`);
    if (!Number.isSafeInteger(options.rows) || options.rows < 0) throw new Error(`internal: synth rows must be a non-negative safe integer, not ${options.rows}`);
    const plans = planColumns(ir, new Rng(options.seed, 3));
    this.plans = plans;
    this.rowDrawer = rowDrawer(plans);
    this.labelColumn = ir.columns.find((c) => c.name === ir.roles.label)!;
    this.groupColumn = ir.columns.find((c) => c.name === ir.roles.group) ?? null;
    this.truth = new GroundTruth(ir, options.seed, options.signal ?? SIGNAL);
    const pilotRng = new Rng(options.seed, 2);
    const pilot = Array.from({ length: PILOT_ROWS }, () => this.drawRow(pilotRng));
    this.truth.calibrate(pilot, this.groupColumn === null ? CLICK_RATE : null);
    this.rng = new Rng(options.seed, 1);
  }

  get done(): boolean {
    return this.produced >= this.options.rows;
  }

  /** The next rows: whole groups, at most `maxRows` (more only when one group is larger); null at the end. */
  next(maxRows: number): SynthBatch | null {
    const left = this.options.rows - this.produced;
    if (left <= 0) return null;
    const rows: RawRecord[] = [];
    const logits: number[] = [];
    const labels: number[] = [];
    const groupSizes: number[] = [];
    const rng = this.rng;
    if (this.groupColumn === null) {
      const count = Math.min(left, maxRows);
      for (let i = 0; i < count; i++) {
        const row = this.drawRow(rng);
        const logit = this.truth.logit(row);
        const label = rng.float() < sigmoid(logit) ? 1 : 0;
        row[this.labelColumn.name] = this.labelValue(label);
        rows.push(row);
        logits.push(logit);
        labels.push(label);
      }
    } else {
      while (this.produced + rows.length < this.options.rows) {
        const size = this.pendingGroup > 0 ? this.pendingGroup : this.groupSize(this.options.rows - this.produced - rows.length);
        if (rows.length > 0 && rows.length + size > maxRows) {
          this.pendingGroup = size;
          break;
        }
        this.pendingGroup = 0;
        this.drawGroup(size, rows, logits, labels);
        groupSizes.push(size);
      }
    }
    this.produced += rows.length;
    return { rows, logits: Float64Array.from(logits), labels: Uint8Array.from(labels), groupSizes };
  }

  /** A group size, cut so the rows end exactly at `options.rows` without leaving a group of one. */
  private groupSize(left: number): number {
    const size = drawGroupSize(this.rng);
    if (left <= MAX_GROUP) return left;
    return left - size < MIN_GROUP ? left - MIN_GROUP : size;
  }

  private drawGroup(size: number, rows: RawRecord[], logits: number[], labels: number[]): void {
    const group = this.groupColumn!;
    this.groups++;
    const groupValue = group.type === 'string' ? `${group.name}_${this.groups}` : this.groups;
    const first = rows.length;
    let max = -Infinity;
    for (let i = 0; i < size; i++) {
      const row = this.drawRow(this.rng);
      row[group.name] = groupValue;
      const logit = this.truth.logit(row);
      if (logit > max) max = logit;
      rows.push(row);
      logits.push(logit);
      labels.push(0);
    }
    // One click per group, to a row chosen with probability softmax(logits).
    let total = 0;
    for (let i = first; i < rows.length; i++) total += Math.exp(logits[i]! - max);
    let target = this.rng.float() * total;
    let clicked = rows.length - 1;
    for (let i = first; i < rows.length; i++) {
      target -= Math.exp(logits[i]! - max);
      if (target < 0) {
        clicked = i;
        break;
      }
    }
    labels[clicked] = 1;
    for (let i = first; i < rows.length; i++) rows[i]![this.labelColumn.name] = this.labelValue(labels[i]!);
  }

  private labelValue(label: number): RawValue {
    return this.labelColumn.type === 'string' ? String(label) : label;
  }

  private drawRow(rng: Rng): RawRecord {
    return this.rowDrawer(rng);
  }
}

/**
 * A function drawing one row, generated for the plans: an object literal with every column (one
 * fixed shape, fast properties) and one call site per column, so each stays monomorphic. Rows
 * built key by key fall into V8's slow dictionary mode past a dozen keys and run three times slower.
 */
function rowDrawer(plans: readonly ColumnPlan[]): (rng: Rng) => RawRecord {
  const early = plans.filter((p) => p.late !== true);
  const late = plans.filter((p) => p.late === true);
  const draw = (p: ColumnPlan): string => `d[${plans.indexOf(p)}](rng, null)`;
  const fields = plans.map((p) => `${JSON.stringify(p.column.name)}: ${p.late === true ? 'null' : `v${plans.indexOf(p)}`}`);
  const body = [
    ...early.map((p) => `const v${plans.indexOf(p)} = ${draw(p)};`),
    `const row = {${fields.join(', ')}};`,
    ...late.map((p) => `row[${JSON.stringify(p.column.name)}] = d[${plans.indexOf(p)}](rng, row);`),
    'return row;',
  ].join('\n');
  const make = new Function('d', `return function drawRow(rng) {\n${body}\n};`) as (draws: readonly Draw[]) => (rng: Rng) => RawRecord;
  return make(plans.map((p) => p.draw));
}

/** A synthetic RawSource: the rows of `SynthGenerator`, with their ground-truth scores tallied. */
export class SynthSource implements RawSource {
  readonly files = [SYNTH_FILE];
  // RawFormat names file formats only; synthetic rows are typed values, as an Arrow reader yields.
  readonly format = 'arrow' as const;
  /** Ground-truth scores of the rows read so far (up to `tallyRows`), for `report()`. */
  readonly tally: GroundTruthTally;

  constructor(
    private readonly ir: ModelIR,
    private readonly options: SynthOptions,
  ) {
    this.tally = new GroundTruthTally(options.tallyRows ?? DEFAULT_TALLY_ROWS, ir.roles.group !== null);
  }

  async *chunks(): AsyncIterable<RawChunk> {
    const generator = new SynthGenerator(this.ir, this.options);
    this.tally.reset();
    const chunkRows = Math.max(1, this.options.chunkRows ?? DEFAULT_CHUNK_ROWS);
    let firstRow = 1;
    for (let batch = generator.next(chunkRows); batch !== null; batch = generator.next(chunkRows)) {
      this.tally.add(batch);
      yield { file: SYNTH_FILE, firstRow, rows: batch.rows };
      firstRow += batch.rows.length;
    }
  }

  async close(): Promise<void> {}
}

export function synthSource(ir: ModelIR, options: SynthOptions): SynthSource {
  return new SynthSource(ir, options);
}

// ---------------------------------------------------------------------------------------------
// How well the ground truth itself ranks its rows (an upper reference for trained models) and
// what chance gets on the same rows.

export interface GroundTruthReport {
  rows: number;
  groups: number;
  clickRate: number;
  /** AUC of the ground-truth logits; chance is 0.5. */
  auc: number;
  /** MAP@k of the ground truth per group, and of a random order of the same groups; null without groups. */
  map: { k: number; truth: number; chance: number } | null;
}

export class GroundTruthTally {
  private logits: number[] = [];
  private labels: number[] = [];
  private groupSizes: number[] = [];
  private full = false;

  constructor(
    private readonly capacity: number,
    private readonly grouped: boolean,
  ) {}

  reset(): void {
    this.logits = [];
    this.labels = [];
    this.groupSizes = [];
    this.full = false;
  }

  add(batch: SynthBatch): void {
    if (this.full) return;
    if (!this.grouped) {
      const take = Math.min(batch.rows.length, this.capacity - this.logits.length);
      for (let i = 0; i < take; i++) {
        this.logits.push(batch.logits[i]!);
        this.labels.push(batch.labels[i]!);
      }
      this.full = this.logits.length >= this.capacity;
      return;
    }
    let row = 0;
    for (const size of batch.groupSizes) {
      if (this.logits.length + size > this.capacity) {
        this.full = true;
        return;
      }
      for (let i = row; i < row + size; i++) {
        this.logits.push(batch.logits[i]!);
        this.labels.push(batch.labels[i]!);
      }
      this.groupSizes.push(size);
      row += size;
    }
  }

  report(k = 12): GroundTruthReport {
    const scores = Float64Array.from(this.logits);
    const labels = Uint8Array.from(this.labels);
    let clicks = 0;
    for (const label of labels) clicks += label;
    return {
      rows: scores.length,
      groups: this.groupSizes.length,
      clickRate: scores.length === 0 ? 0 : clicks / scores.length,
      auc: areaUnderCurve(scores, labels),
      map: this.grouped ? { k, truth: meanAveragePrecision(scores, labels, this.groupSizes, k), chance: chanceMeanAveragePrecision(labels, this.groupSizes, k) } : null,
    };
  }
}

/** The ground truth's report on `rows` synthetic rows of `seed` (what docs/synth.md quotes). */
export async function groundTruthReport(ir: ModelIR, options: SynthOptions, k = mapK(ir)): Promise<GroundTruthReport> {
  const source = synthSource(ir, { ...options, tallyRows: options.tallyRows ?? options.rows });
  for await (const _chunk of source.chunks()) {
    // drawing the rows fills the tally
  }
  return source.tally.report(k);
}

/** The k of the spec's first map@k metric, else 12. */
export function mapK(ir: ModelIR): number {
  for (const metric of ir.train.metrics) if (metric.kind === 'map') return metric.k;
  return 12;
}

/** ROC AUC by the rank-sum formula, ties sharing their mean rank; 0.5 when one class is absent. */
export function areaUnderCurve(scores: Float64Array, labels: Uint8Array): number {
  const n = scores.length;
  const order = Uint32Array.from({ length: n }, (_, i) => i).sort((a, b) => scores[a]! - scores[b]!);
  let positives = 0;
  let positiveRanks = 0;
  for (let i = 0; i < n; ) {
    let j = i;
    while (j + 1 < n && scores[order[j + 1]!] === scores[order[i]!]) j++;
    const meanRank = (i + j) / 2 + 1;
    for (let t = i; t <= j; t++) {
      if (labels[order[t]!] === 1) {
        positives++;
        positiveRanks += meanRank;
      }
    }
    i = j + 1;
  }
  const negatives = n - positives;
  if (positives === 0 || negatives === 0) return 0.5;
  return (positiveRanks - (positives * (positives + 1)) / 2) / (positives * negatives);
}

/**
 * MAP@k over contiguous groups: per group, the mean over its clicked rows of precision at their
 * rank when within k (ties ranked pessimistically), divided by min(clicks, k); groups without a
 * click count 0.
 */
export function meanAveragePrecision(scores: Float64Array, labels: Uint8Array, groupSizes: readonly number[], k: number): number {
  let total = 0;
  let start = 0;
  for (const size of groupSizes) {
    const order = Array.from({ length: size }, (_, i) => start + i).sort((a, b) => scores[b]! - scores[a]! || labels[a]! - labels[b]!);
    let hits = 0;
    let precisionSum = 0;
    let clicks = 0;
    order.forEach((row, rank) => {
      if (labels[row] !== 1) return;
      clicks++;
      if (rank < k) {
        hits++;
        precisionSum += hits / (rank + 1);
      }
    });
    if (clicks > 0) total += precisionSum / Math.min(clicks, k);
    start += size;
  }
  return groupSizes.length === 0 ? 0 : total / groupSizes.length;
}

/** The expected MAP@k of a uniformly random order, for groups of one click: mean of H(min(n, k)) / n. */
export function chanceMeanAveragePrecision(labels: Uint8Array, groupSizes: readonly number[], k: number): number {
  let total = 0;
  let start = 0;
  for (const size of groupSizes) {
    let clicks = 0;
    for (let i = start; i < start + size; i++) clicks += labels[i]!;
    if (clicks > 1) throw new Error('internal: chance MAP is computed for groups of at most one click');
    if (clicks === 1) for (let rank = 1; rank <= Math.min(size, k); rank++) total += 1 / rank / size;
    start += size;
  }
  return groupSizes.length === 0 ? 0 : total / groupSizes.length;
}

// ---------------------------------------------------------------------------------------------
// Writers of raw rows, for any RawSource: CSV (RFC 4180) and Parquet (through DuckDB). Both write
// a temporary sibling and rename it when complete, so no half-written file is ever visible.

export interface WrittenFile {
  path: string;
  rows: number;
  bytes: number;
}

/** Characters that make a CSV field need quotes. */
const NEEDS_QUOTES = /[",\r\n]/;
export const LIST_SEPARATOR = '|';

function csvText(text: string): string {
  return NEEDS_QUOTES.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}

/**
 * One CSV field: numbers as String(x) (shortest text that reads back to the same double),
 * booleans as true/false, lists as `a|b|c`; null and absent values as an empty field, the empty
 * string and the empty list as `""`.
 */
export function csvField(value: RawValue | undefined): string {
  if (value === undefined || value === null) return '';
  if (typeof value === 'number') return String(value);
  if (typeof value === 'boolean') return value ? 'true' : 'false';
  if (typeof value === 'string') return value === '' ? '""' : csvText(value);
  if (value.length === 0) return '""';
  let text = '';
  for (let i = 0; i < value.length; i++) {
    const element = value[i];
    const part = element === null || element === undefined ? '' : String(element);
    if (part.includes(LIST_SEPARATOR)) throw new Error(`internal: list element ${JSON.stringify(part)} contains the list separator \`${LIST_SEPARATOR}\``);
    text += i === 0 ? part : LIST_SEPARATOR + part;
  }
  return text === '' ? '""' : csvText(text);
}

function temporarySibling(path: string, suffix = ''): string {
  return join(dirname(path), `.${basename(path)}.${process.pid}.${Date.now()}.tmp${suffix}`);
}

/** Writes every row of `source` to `path` as CSV with a header of the column names, in `columns` order. */
export async function writeCsv(source: RawSource, columns: readonly ColumnIR[], path: string): Promise<WrittenFile> {
  const temporary = temporarySibling(path);
  const file = await open(temporary, 'w');
  let rows = 0;
  try {
    await file.write(`${columns.map((c) => csvText(c.name)).join(',')}\n`);
    const names = columns.map((c) => c.name);
    for await (const chunk of source.chunks()) {
      const lines: string[] = [];
      for (const row of chunk.rows) {
        let line = '';
        for (let i = 0; i < names.length; i++) line += (i === 0 ? '' : ',') + csvField(row[names[i]!]);
        lines.push(line);
      }
      if (lines.length > 0) await file.write(`${lines.join('\n')}\n`);
      rows += chunk.rows.length;
    }
    await file.sync();
    await file.close();
    await rename(temporary, path);
  } catch (e) {
    await file.close().catch(() => undefined);
    await rm(temporary, { force: true });
    throw e;
  }
  return { path, rows, bytes: (await stat(path)).size };
}

const SQL_TYPES: Record<ColumnIR['type'], string> = { int: 'BIGINT', float: 'DOUBLE', string: 'VARCHAR' };

/** The Parquet type of a column: BIGINT, DOUBLE or VARCHAR, or a LIST of one. */
export function parquetType(column: ColumnIR): string {
  return `${SQL_TYPES[column.type]}${column.list ? '[]' : ''}`;
}

function sqlName(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

function sqlString(text: string): string {
  return `'${text.replace(/'/g, "''")}'`;
}

/** The SQL turning the CSV text of a column back into its typed value (see csvField). */
function fromCsvText(column: ColumnIR): string {
  const c = sqlName(column.name);
  const type = SQL_TYPES[column.type];
  if (column.list) return `CASE WHEN ${c} IS NULL THEN NULL WHEN ${c} = '' THEN []::${type}[] ELSE CAST(string_split(${c}, ${sqlString(LIST_SEPARATOR)}) AS ${type}[]) END`;
  return column.type === 'string' ? c : `CAST(${c} AS ${type})`;
}

/**
 * Writes every row of `source` to `path` as Parquet, columns typed by parquetType. The rows go
 * through a temporary CSV that DuckDB converts with its own threads and bounded memory.
 */
export async function writeParquet(source: RawSource, columns: readonly ColumnIR[], path: string): Promise<WrittenFile> {
  const csv = temporarySibling(path, '.csv');
  const temporary = temporarySibling(path);
  let instance: DuckDBInstance | null = null;
  try {
    const { rows } = await writeCsv(source, columns, csv);
    instance = await DuckDBInstance.create(':memory:', { preserve_insertion_order: 'true' });
    const connection = await instance.connect();
    const read = [
      `read_csv(${sqlString(csv)}`,
      'header = true',
      "delim = ','",
      `quote = '"'`,
      `escape = '"'`,
      'auto_detect = false',
      'allow_quoted_nulls = false',
      `columns = {${columns.map((c) => `${sqlString(c.name)}: 'VARCHAR'`).join(', ')}})`,
    ].join(', ');
    const select = columns.map((c) => `${fromCsvText(c)} AS ${sqlName(c.name)}`).join(', ');
    await connection.run(`COPY (SELECT ${select} FROM ${read}) TO ${sqlString(temporary)} (FORMAT parquet)`);
    connection.closeSync();
    await rename(temporary, path);
    return { path, rows, bytes: (await stat(path)).size };
  } finally {
    instance?.closeSync();
    await rm(csv, { force: true });
    await rm(temporary, { force: true });
  }
}

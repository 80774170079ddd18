// The feature transforms an emitted model module calls to encode one raw row. They are the
// contract between wndc, the data pipeline that writes encoded shards and the engines that read
// them, so every result is a pure function of its inputs, identical across runs, machines and
// JavaScript engines (integer arithmetic only, except the logarithms of numeric normalisation).
// docs/hashing.md states the rules precisely, with worked examples a test checks.
//
// Hot-path functions allocate nothing: strings are UTF-8 encoded by hand into one reusable buffer,
// crosses use module-level scratch arrays that only ever grow.

import type { Literal, Normalisation } from '../compiler/ir.js';

// ---------------------------------------------------------------------------------------------
// Counters: data problems the transforms repair, per feature, in an object the caller owns.

/** What encoding repaired for one feature; the pipeline reports these after a pass. */
export interface FeatureCounters {
  readonly feature: string;
  /** Identity ids outside [0, buckets) replaced by the default id. */
  outOfRange: number;
  /** Vocabulary lookups that missed and went to an out-of-vocabulary bucket. */
  oov: number;
  /** Bags (lists or crosses of lists) longer than max_len, cut to max_len; once per row. */
  truncated: number;
  /** Missing fields replaced by the column default. */
  missing: number;
}

export interface EncodeCounters {
  /** Rows encoded. */
  rows: number;
  /** Missing label, group or weight fields replaced by their column default. */
  roleDefaults: number;
  /** One entry per feature of the model IR, in IR order (index i counts `ir.features[i]`). */
  readonly features: readonly FeatureCounters[];
}

export function createCounters(featureNames: readonly string[]): EncodeCounters {
  return {
    rows: 0,
    roleDefaults: 0,
    features: featureNames.map((feature) => ({ feature, outOfRange: 0, oov: 0, truncated: 0, missing: 0 })),
  };
}

/** Thrown when a row lacks a column that has no default: a data error, not a wndc bug. */
export class MissingColumnError extends Error {
  constructor(readonly column: string) {
    super(`row has no value for column \`${column}\`, which has no default`);
    this.name = 'MissingColumnError';
  }
}

// ---------------------------------------------------------------------------------------------
// MurmurHash3 x86_32 (Austin Appleby, public domain), on 32-bit integer arithmetic.

/** Seed of every value hash: hashed features and bags, out-of-vocabulary buckets, text group ids. */
export const HASH_SEED = 0;
/** Seed of cross hashes: the 32-bit golden ratio, fixed forever (shards depend on it). */
export const CROSS_SEED = 0x9e3779b9;

const C1 = 0xcc9e2d51;
const C2 = 0x1b873593;

// The two hash loops below take the modulus they are reduced by and have the mixing steps written
// out, calling nothing but Math.imul: V8 keeps only 31-bit integers unboxed, so a 32-bit value
// returned from a call it does not inline (likely inside a large emitted encodeRow) would allocate
// a heap number per row. The exported hashes use the modulus 2^32.
const FULL_RANGE = 2 ** 32;

function bytesHashMod(bytes: Uint8Array, offset: number, length: number, seed: number, modulus: number): number {
  let h = seed | 0;
  let k = 0;
  const blocksEnd = offset + (length & ~3);
  for (let i = offset; i < blocksEnd; i += 4) {
    k = bytes[i]! | (bytes[i + 1]! << 8) | (bytes[i + 2]! << 16) | (bytes[i + 3]! << 24);
    k = Math.imul(k, C1);
    k = (k << 15) | (k >>> 17);
    h ^= Math.imul(k, C2);
    h = (h << 13) | (h >>> 19);
    h = (Math.imul(h, 5) + 0xe6546b64) | 0;
  }
  const tail = length & 3;
  if (tail > 0) {
    k = bytes[blocksEnd]!;
    if (tail > 1) k |= bytes[blocksEnd + 1]! << 8;
    if (tail > 2) k |= bytes[blocksEnd + 2]! << 16;
    k = Math.imul(k, C1);
    k = (k << 15) | (k >>> 17);
    h ^= Math.imul(k, C2);
  }
  h ^= length;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return (h >>> 0) % modulus;
}

/** The same over whole 4-byte blocks: each int32 is one little-endian block. */
function int32sHashMod(values: Int32Array, offset: number, count: number, seed: number, modulus: number): number {
  let h = seed | 0;
  let k = 0;
  for (let i = offset; i < offset + count; i++) {
    k = Math.imul(values[i]!, C1);
    k = (k << 15) | (k >>> 17);
    h ^= Math.imul(k, C2);
    h = (h << 13) | (h >>> 19);
    h = (Math.imul(h, 5) + 0xe6546b64) | 0;
  }
  h ^= count * 4;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return (h >>> 0) % modulus;
}

/** MurmurHash3 x86_32 of `bytes[offset, offset + length)`, as an unsigned 32-bit integer. */
export function murmur3Bytes(bytes: Uint8Array, offset: number, length: number, seed: number): number {
  return bytesHashMod(bytes, offset, length, seed, FULL_RANGE);
}

/**
 * MurmurHash3 x86_32 of the little-endian int32 bytes of `values[offset, offset + count)`. Each
 * int32 is exactly one 4-byte block, so no bytes are materialised.
 */
export function murmur3Int32s(values: Int32Array, offset: number, count: number, seed: number): number {
  return int32sHashMod(values, offset, count, seed, FULL_RANGE);
}

// ---------------------------------------------------------------------------------------------
// Values as bytes: strings as UTF-8, numbers as their canonical decimal text.

/** Reused for every string and number hashed; grows, never shrinks. */
let textBytes = new Uint8Array(256);

function reserveTextBytes(capacity: number): Uint8Array {
  if (textBytes.length < capacity) textBytes = new Uint8Array(Math.max(capacity, textBytes.length * 2));
  return textBytes;
}

/**
 * Writes the UTF-8 bytes of `text` into `out` and returns their count. A lone surrogate becomes
 * U+FFFD, as TextEncoder writes it. `out` needs room for 3 bytes per UTF-16 code unit.
 */
export function encodeUtf8Into(text: string, out: Uint8Array): number {
  let n = 0;
  for (let i = 0; i < text.length; i++) {
    let c = text.charCodeAt(i);
    if (c < 0x80) {
      out[n++] = c;
      continue;
    }
    if (c < 0x800) {
      out[n++] = 0xc0 | (c >> 6);
      out[n++] = 0x80 | (c & 0x3f);
      continue;
    }
    if (c >= 0xd800 && c <= 0xdfff) {
      const next = i + 1 < text.length ? text.charCodeAt(i + 1) : 0;
      if (c <= 0xdbff && next >= 0xdc00 && next <= 0xdfff) {
        const codePoint = 0x10000 + ((c - 0xd800) << 10) + (next - 0xdc00);
        out[n++] = 0xf0 | (codePoint >> 18);
        out[n++] = 0x80 | ((codePoint >> 12) & 0x3f);
        out[n++] = 0x80 | ((codePoint >> 6) & 0x3f);
        out[n++] = 0x80 | (codePoint & 0x3f);
        i++;
        continue;
      }
      c = 0xfffd;
    }
    out[n++] = 0xe0 | (c >> 12);
    out[n++] = 0x80 | ((c >> 6) & 0x3f);
    out[n++] = 0x80 | (c & 0x3f);
  }
  return n;
}

/** Writes the decimal digits of a safe integer (what String(n) gives; -0 as "0") into `out`. */
function encodeSafeIntegerInto(n: number, out: Uint8Array): number {
  if (n === 0) {
    out[0] = 0x30;
    return 1;
  }
  let length = 0;
  if (n < 0) {
    out[length++] = 0x2d; // '-'
    n = -n;
  }
  const firstDigit = length;
  while (n > 0) {
    const digit = n % 10;
    out[length++] = 0x30 + digit;
    n = (n - digit) / 10;
  }
  for (let i = firstDigit, j = length - 1; i < j; i++, j--) {
    const swap = out[i]!;
    out[i] = out[j]!;
    out[j] = swap;
  }
  return length;
}

/** MurmurHash3 x86_32 of the UTF-8 bytes of `text`. */
export function murmur3String(text: string, seed: number = HASH_SEED): number {
  return stringHashMod(text, seed, FULL_RANGE);
}

function stringHashMod(text: string, seed: number, modulus: number): number {
  const bytes = reserveTextBytes(text.length * 3);
  const length = encodeUtf8Into(text, bytes);
  return bytesHashMod(bytes, 0, length, seed, modulus);
}

function valueHashMod(value: string | number, seed: number, modulus: number): number {
  if (typeof value === 'string') return stringHashMod(value, seed, modulus);
  if (Number.isSafeInteger(value)) {
    const bytes = reserveTextBytes(24);
    const length = encodeSafeIntegerInto(value, bytes);
    return bytesHashMod(bytes, 0, length, seed, modulus);
  }
  return stringHashMod(String(value), seed, modulus); // fractions and huge numbers: rare, so allocating is fine
}

/**
 * The hash of a raw value: a string hashes its UTF-8 bytes, a number the UTF-8 bytes of its
 * canonical text String(value), so the CSV string "5" and the int 5 hash alike.
 */
export function hashValue(value: string | number, seed: number = HASH_SEED): number {
  return valueHashMod(value, seed, FULL_RANGE);
}

/** The id of a hashed value: hashValue(value) mod buckets. */
export function hashBucket(value: string | number, buckets: number): number {
  return valueHashMod(value, HASH_SEED, buckets);
}

/** Text group ids (request ids as strings) hash into [0, 2^30): integers V8 keeps unboxed. */
export const TEXT_GROUP_BUCKETS = 2 ** 30;

/** The number that stands for a text group id in an encoded row: hashBucket(text, 2^30). */
export function textGroupId(text: string): number {
  return valueHashMod(text, HASH_SEED, TEXT_GROUP_BUCKETS);
}

// ---------------------------------------------------------------------------------------------
// Single-valued categorical transforms.

/** An int that is already an id: itself when an integer in [0, buckets), else `defaultId` (counted). */
export function identityId(value: number, buckets: number, defaultId: number, counters: FeatureCounters): number {
  if (Number.isInteger(value) && value >= 0 && value < buckets) return value;
  counters.outOfRange++;
  return defaultId;
}

/**
 * The bucket of `value` among strictly increasing `boundaries` (TensorFlow semantics): bucket i
 * holds boundaries[i-1] <= x < boundaries[i], i.e. the count of boundaries <= x. NaN goes to the
 * last bucket, as TensorFlow's kernel (an upper_bound search, where every comparison with NaN fails).
 */
export function bucketize(value: number, boundaries: readonly number[]): number {
  if (value !== value) return boundaries.length;
  let lo = 0;
  let hi = boundaries.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (boundaries[mid]! <= value) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/**
 * A vocabulary, built once per model. A value matches an entry when their canonical texts agree
 * (String(x)), whatever the column type; the first of equal entries wins. Unseen values go to
 * `size + hashValue(value) mod oovBuckets`.
 */
export class Vocabulary {
  readonly size: number;
  private readonly byText = new Map<string, number>();
  /** The entries whose text is the canonical text of a number, keyed by that number. */
  private readonly byNumber = new Map<number, number>();

  constructor(
    values: readonly Literal[],
    readonly oovBuckets: number,
  ) {
    this.size = values.length;
    values.forEach((entry, id) => {
      const text = String(entry);
      if (!this.byText.has(text)) this.byText.set(text, id);
      const asNumber = Number(text);
      if (text !== '' && String(asNumber) === text && !this.byNumber.has(asNumber)) this.byNumber.set(asNumber, id);
    });
  }

  id(value: string | number, counters: FeatureCounters): number {
    const known = typeof value === 'number' ? this.byNumber.get(value) : this.byText.get(value);
    if (known !== undefined) return known;
    counters.oov++;
    return this.size + valueHashMod(value, HASH_SEED, this.oovBuckets);
  }
}

// ---------------------------------------------------------------------------------------------
// Bags: multi-valued ids written to out[offset, offset + maxLen), zero-padded; each returns the
// stored length. A bag longer than maxLen keeps its first maxLen ids and counts once as truncated.

function keptLength(length: number, maxLen: number, counters: FeatureCounters): number {
  if (length <= maxLen) return length;
  counters.truncated++;
  return maxLen;
}

function padIds(out: Int32Array, from: number, to: number): void {
  for (let i = from; i < to; i++) out[i] = 0;
}

export function hashBag(
  values: readonly (string | number)[],
  buckets: number,
  out: Int32Array,
  offset: number,
  maxLen: number,
  counters: FeatureCounters,
): number {
  const length = keptLength(values.length, maxLen, counters);
  for (let i = 0; i < length; i++) out[offset + i] = hashBucket(values[i]!, buckets);
  padIds(out, offset + length, offset + maxLen);
  return length;
}

export function identityBag(
  values: readonly number[],
  buckets: number,
  defaultId: number,
  out: Int32Array,
  offset: number,
  maxLen: number,
  counters: FeatureCounters,
): number {
  const length = keptLength(values.length, maxLen, counters);
  for (let i = 0; i < length; i++) out[offset + i] = identityId(values[i]!, buckets, defaultId, counters);
  padIds(out, offset + length, offset + maxLen);
  return length;
}

export function vocabularyBag(
  values: readonly (string | number)[],
  vocabulary: Vocabulary,
  out: Int32Array,
  offset: number,
  maxLen: number,
  counters: FeatureCounters,
): number {
  const length = keptLength(values.length, maxLen, counters);
  for (let i = 0; i < length; i++) out[offset + i] = vocabulary.id(values[i]!, counters);
  padIds(out, offset + length, offset + maxLen);
  return length;
}

/** Copies `count` ids (count <= width) and zero-pads to `width`; returns count. */
export function copyBag(source: Int32Array, sourceOffset: number, count: number, out: Int32Array, offset: number, width: number): number {
  for (let i = 0; i < count; i++) out[offset + i] = source[sourceOffset + i]!;
  padIds(out, offset + count, offset + width);
  return count;
}

/**
 * Weights of a weighted bag: position i gets weights[i] (1 when the weight list is shorter than
 * the bag, as if unweighted), positions from `count` to `width` get 0.
 */
export function bagWeights(weights: readonly number[], count: number, out: Float32Array, offset: number, width: number): void {
  for (let i = 0; i < count; i++) out[offset + i] = i < weights.length ? weights[i]! : 1;
  for (let i = count; i < width; i++) out[offset + i] = 0;
}

// ---------------------------------------------------------------------------------------------
// Crosses: murmur3 over the little-endian int32 bytes of the input ids, seeded with CROSS_SEED.

/** The cross id of the single ids `inputs[offset, offset + count)`. */
export function crossId(inputs: Int32Array, offset: number, count: number, buckets: number): number {
  return int32sHashMod(inputs, offset, count, CROSS_SEED, buckets);
}

let crossPosition = new Int32Array(8);
let crossTuple = new Int32Array(8);

/**
 * The cross of bags: input k is `inputs[offsets[k], offsets[k] + lengths[k])`. Writes the cross
 * ids of the cartesian product, first input outermost (the last input varies fastest), cut to
 * maxLen and zero-padded; an empty input gives an empty cross. Returns the stored length.
 */
export function crossBags(
  inputs: Int32Array,
  offsets: readonly number[],
  lengths: Int32Array,
  buckets: number,
  out: Int32Array,
  offset: number,
  maxLen: number,
  counters: FeatureCounters,
): number {
  const arity = offsets.length;
  if (crossPosition.length < arity) {
    crossPosition = new Int32Array(arity);
    crossTuple = new Int32Array(arity);
  }
  let product = 1;
  for (let k = 0; k < arity; k++) product *= lengths[k]!;
  const length = keptLength(product, maxLen, counters);
  crossPosition.fill(0, 0, arity);
  for (let j = 0; j < length; j++) {
    for (let k = 0; k < arity; k++) crossTuple[k] = inputs[offsets[k]! + crossPosition[k]!]!;
    out[offset + j] = int32sHashMod(crossTuple, 0, arity, CROSS_SEED, buckets);
    for (let k = arity - 1; k >= 0; k--) {
      const next = crossPosition[k]! + 1;
      if (next < lengths[k]!) {
        crossPosition[k] = next;
        break;
      }
      crossPosition[k] = 0;
    }
  }
  padIds(out, offset + length, offset + maxLen);
  return length;
}

// ---------------------------------------------------------------------------------------------
// Numeric normalisations. Statistics are always in raw column units; the log variants transform
// them with the same non-decreasing function as the value, which equals taking the min and max
// of the transformed values.

/** (x - min) / (max - min) clamped to [0, 1]; 0 when max <= min. */
export function minMax(x: number, min: number, max: number): number {
  return max > min ? Math.min(1, Math.max(0, (x - min) / (max - min))) : 0;
}

/** (x - mean) / std; 0 when std <= 0. */
export function zScore(x: number, mean: number, std: number): number {
  return std > 0 ? (x - mean) / std : 0;
}

/** log2(1 + x); counts below 0 are taken as 0 so the result stays finite (NaN stays NaN). */
export function logCount(x: number): number {
  return Math.log2(1 + Math.max(0, x));
}

/** log2(1 + 1000x), x below 0 taken as 0: the transform of log_01scaled before min-max. */
export function log01(x: number): number {
  return Math.log2(1 + 1000 * Math.max(0, x));
}

export function logCountMinMax(x: number, min: number, max: number): number {
  return minMax(logCount(x), logCount(min), logCount(max));
}

export function log01Scaled(x: number, min: number, max: number): number {
  return minMax(log01(x), log01(min), log01(max));
}

export type StatField = 'min' | 'max' | 'mean' | 'std';

/** The statistics a normalisation reads. */
export function statFieldsOf(norm: Normalisation): readonly StatField[] {
  switch (norm) {
    case 'none':
    case 'log_count':
      return [];
    case 'zscore':
      return ['mean', 'std'];
    case 'minmax':
    case 'log_01scaled':
    case 'log_count_minmax':
      return ['min', 'max'];
  }
}

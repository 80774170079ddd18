// Sorting float32 values in O(n): LSD radix sort over order-preserving 32-bit keys, optionally
// carrying a companion array along. It is what makes exact AUC over tens of millions of scores
// take well under a second, without comparator callbacks or one object per example.

const DIGIT_BITS = 11;
const BUCKETS = 1 << DIGIT_BITS;
const DIGIT_MASK = BUCKETS - 1;
const SHIFTS = [0, 11, 22] as const;

/**
 * Keys whose unsigned order is the numeric order of the float32 `values` (which must not be NaN):
 * negative numbers have all bits flipped, the others only the sign bit. -0 is keyed as +0, so
 * values that compare equal get equal keys.
 */
export function floatOrderKeys(values: Float32Array): Uint32Array {
  const bits = new Uint32Array(values.slice().buffer);
  for (let i = 0; i < bits.length; i++) {
    let b = bits[i]!;
    if (b === 0x80000000) b = 0;
    bits[i] = b & 0x80000000 ? ~b >>> 0 : (b | 0x80000000) >>> 0;
  }
  return bits;
}

/**
 * Sorts `keys` ascending in place, stably; `companion`, when given, is permuted alongside
 * (its values need not be integers: only their 32 bits move).
 */
export function radixSort(keys: Uint32Array, companion: Uint32Array | null): void {
  const n = keys.length;
  if (companion !== null && companion.length !== n) throw new Error('radixSort: companion length differs');
  if (n < 2) return;

  // A permutation does not change how many keys have each digit, so all histograms come from one read.
  const counts = SHIFTS.map(() => new Uint32Array(BUCKETS));
  const [low, middle, high] = counts as [Uint32Array, Uint32Array, Uint32Array];
  for (let i = 0; i < n; i++) {
    const key = keys[i]!;
    low[key & DIGIT_MASK]!++;
    middle[(key >>> 11) & DIGIT_MASK]!++;
    high[key >>> 22]!++;
  }

  let srcKeys: Uint32Array = keys;
  let dstKeys: Uint32Array = new Uint32Array(n);
  let srcCompanion: Uint32Array | null = companion;
  let dstCompanion: Uint32Array | null = companion === null ? null : new Uint32Array(n);
  const offsets = new Uint32Array(BUCKETS);
  for (let p = 0; p < SHIFTS.length; p++) {
    const shift = SHIFTS[p]!;
    const count = counts[p]!;
    if (count[(srcKeys[0]! >>> shift) & DIGIT_MASK] === n) continue; // every key has this digit
    let sum = 0;
    for (let d = 0; d < BUCKETS; d++) {
      offsets[d] = sum;
      sum += count[d]!;
    }
    if (srcCompanion !== null && dstCompanion !== null) {
      for (let i = 0; i < n; i++) {
        const key = srcKeys[i]!;
        const at = offsets[(key >>> shift) & DIGIT_MASK]!++;
        dstKeys[at] = key;
        dstCompanion[at] = srcCompanion[i]!;
      }
      const t = srcCompanion;
      srcCompanion = dstCompanion;
      dstCompanion = t;
    } else {
      for (let i = 0; i < n; i++) {
        const key = srcKeys[i]!;
        dstKeys[offsets[(key >>> shift) & DIGIT_MASK]!++] = key;
      }
    }
    const t = srcKeys;
    srcKeys = dstKeys;
    dstKeys = t;
  }
  if (srcKeys !== keys) keys.set(srcKeys);
  if (companion !== null && srcCompanion !== companion) companion.set(srcCompanion!);
}

// An exact, order-independent sum of doubles. Adding the same numbers in any order, or in parts
// whose states are merged later, gives the same result to the last bit: what lets metrics be
// reduced across processes exactly.
//
// Each number is cut at fixed binary positions (multiples of 2^32) into integer chunks that are
// added to fixed-point bins, so the running total is exact and each addition costs a few
// floating-point operations whatever the magnitudes (a "superaccumulator"). The total is rounded
// to a double once, correctly, through an expansion of non-overlapping doubles (Shewchuk's
// algorithm, the one behind Python's math.fsum).

/** The plain-data form of an ExactSum, as `state()` ships it between processes. */
export interface ExactSumState {
  /** Doubles whose exact (unrounded) sum is the exact total. */
  partials: number[];
  /** The ordinary sum of the non-finite values added (0 when there were none): NaN and ±Infinity propagate. */
  special: number;
}

const CHUNK = 2 ** 32;
/** Bin `b + BIN_OFFSET` counts units of 2^(32 b). Handled exponents need b in [-33, 31], plus carries. */
const BIN_OFFSET = 40;
const BIN_COUNT = 80;
/** Numbers below 2^-992 (never metric values) skip the bins, whose scale factors stop there. */
const SMALLEST_BINNED_EXPONENT = -992;
/** Each addition adds less than 2^32 to a bin; normalising this often keeps bins below 2^53. */
const ADDS_BETWEEN_CARRIES = 1 << 20;

/** SCALE[b + BIN_OFFSET] = 2^(-32 b); UNIT[b + BIN_OFFSET] = 2^(32 b). */
const SCALE = Float64Array.from({ length: BIN_COUNT }, (_, i) => 2 ** (-32 * (i - BIN_OFFSET)));
const UNIT = Float64Array.from({ length: BIN_COUNT }, (_, i) => 2 ** (32 * (i - BIN_OFFSET)));

const scratch = new Float64Array(1);
const scratchWords = new Uint32Array(scratch.buffer);
if (new Uint8Array(new Uint32Array([1]).buffer)[0] !== 1) {
  throw new Error('exact-sum: a little-endian platform is assumed');
}

/** The binary exponent e of a finite nonzero double, 2^e <= |x| < 2^(e+1) (subnormals: -1023). */
function exponentOf(x: number): number {
  scratch[0] = x;
  return ((scratchWords[1]! >>> 20) & 0x7ff) - 1023;
}

export class ExactSum {
  private readonly bins = new Float64Array(BIN_COUNT);
  private addsSinceCarry = 0;
  /** Numbers too small for the bins, kept as an expansion. */
  private readonly tiny = new Expansion();
  private special = 0;

  add(x: number): void {
    if (x === 0) return;
    if (!Number.isFinite(x)) {
      this.special += x;
      return;
    }
    const e = exponentOf(x);
    if (e < SMALLEST_BINNED_EXPONENT) {
      this.tiny.add(x);
      return;
    }
    // Peel 32-bit integer chunks off x from its top bin down; every step is exact, and the 53
    // bits of the significand end within three bins.
    let bin = (e >> 5) + BIN_OFFSET;
    let rest = x * SCALE[bin]!;
    const bins = this.bins;
    while (rest !== 0) {
      const chunk = Math.trunc(rest);
      bins[bin] = bins[bin]! + chunk;
      rest = (rest - chunk) * CHUNK;
      bin--;
    }
    if (++this.addsSinceCarry === ADDS_BETWEEN_CARRIES) this.carry();
  }

  /** The exact total, correctly rounded to a double (ties to even). */
  value(): number {
    return this.special !== 0 ? this.special : this.expansion().value(); // NaN !== 0 too
  }

  state(): ExactSumState {
    return { partials: this.expansion().partials(), special: this.special };
  }

  merge(other: ExactSumState): void {
    for (const p of other.partials) this.add(p);
    if (other.special !== 0) this.special += other.special;
  }

  /** Moves each bin's multiples of 2^32 into the next bin up, leaving bins in [0, 2^32). */
  private carry(): void {
    const bins = this.bins;
    for (let i = 0; i < BIN_COUNT - 1; i++) {
      const over = Math.floor(bins[i]! / CHUNK);
      if (over !== 0) {
        bins[i] = bins[i]! - over * CHUNK;
        bins[i + 1] = bins[i + 1]! + over;
      }
    }
    this.addsSinceCarry = 0;
  }

  /** The exact total as an expansion: each bin times its unit is a double, exactly. */
  private expansion(): Expansion {
    this.carry();
    const total = new Expansion();
    for (const p of this.tiny.partials()) total.add(p);
    for (let i = 0; i < BIN_COUNT; i++) {
      const count = this.bins[i]!;
      if (count !== 0) total.add(count * UNIT[i]!);
    }
    return total;
  }
}

/**
 * A sum kept exactly as non-overlapping doubles of increasing magnitude (Shewchuk's
 * grow-expansion). Exact for any finite inputs, but each addition walks every partial, so it
 * only serves the few numbers of a conversion.
 */
class Expansion {
  private readonly terms: number[] = [];

  add(value: number): void {
    const terms = this.terms;
    let x = value;
    let kept = 0;
    for (let i = 0; i < terms.length; i++) {
      let y = terms[i]!;
      if (Math.abs(x) < Math.abs(y)) [x, y] = [y, x];
      // hi + lo === x + y exactly (two-sum with |x| >= |y|).
      const hi = x + y;
      const lo = y - (hi - x);
      if (lo !== 0) terms[kept++] = lo;
      x = hi;
    }
    terms[kept] = x;
    terms.length = kept + 1;
  }

  partials(): number[] {
    return this.terms.filter((t) => t !== 0);
  }

  /** The exact sum rounded once to the nearest double. */
  value(): number {
    const terms = this.terms;
    let n = terms.length;
    if (n === 0) return 0;
    let hi = terms[--n]!;
    let lo = 0;
    // Add terms from the largest down while the sum stays exact.
    while (n > 0) {
      const x = hi;
      const y = terms[--n]!;
      hi = x + y;
      lo = y - (hi - x);
      if (lo !== 0) break;
    }
    // `hi + lo` is exact, and the addition rounded a tie to even; when the terms further down
    // push the true value past that tie in the direction of `lo`, round the other way.
    if (n > 0) {
      const below = terms[n - 1]!;
      if ((lo < 0 && below < 0) || (lo > 0 && below > 0)) {
        const twice = lo * 2;
        const candidate = hi + twice;
        if (candidate - hi === twice) hi = candidate;
      }
    }
    return hi;
  }
}

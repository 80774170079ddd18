// Append-only typed arrays that double their capacity: per-example metric state without one JS
// object per example.

export class GrowableFloat32 {
  data: Float32Array;
  length = 0;

  constructor(capacity = 1024) {
    this.data = new Float32Array(capacity);
  }

  /** Makes room for `extra` more values; afterwards `data[length .. length + extra)` may be written. */
  reserve(extra: number): void {
    const needed = this.length + extra;
    if (needed <= this.data.length) return;
    let capacity = Math.max(this.data.length * 2, 1024);
    while (capacity < needed) capacity *= 2;
    const grown = new Float32Array(capacity);
    grown.set(this.data.subarray(0, this.length));
    this.data = grown;
  }

  append(values: ArrayLike<number>): void {
    this.reserve(values.length);
    this.data.set(values, this.length);
    this.length += values.length;
  }

  appendFill(value: number, count: number): void {
    this.reserve(count);
    this.data.fill(value, this.length, this.length + count);
    this.length += count;
  }

  /** A copy of the values held. */
  snapshot(): Float32Array {
    return this.data.slice(0, this.length);
  }

  /** A view of the values held; valid until the next append. */
  view(): Float32Array {
    return this.data.subarray(0, this.length);
  }

  clear(): void {
    this.length = 0;
  }
}

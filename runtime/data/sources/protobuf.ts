// A minimal protocol-buffers codec for `tf.train.Example`, the only message TFRecord files of
// the reference recipe hold (tensorflow/core/example/{example,feature}.proto):
//
//   Example  { Features features = 1; }
//   Features { map<string, Feature> feature = 1; }      // entries: key = 1, value = 2
//   Feature  { oneof kind { BytesList bytes_list = 1; FloatList float_list = 2; Int64List int64_list = 3; } }
//   BytesList { repeated bytes value = 1; }  FloatList { repeated float value = 1 [packed]; }
//   Int64List { repeated int64 value = 1 [packed]; }
//
// Wire format (protobuf.dev/programming-guides/encoding): each field is a varint key
// (number << 3 | wire type) then its value: 0 varint, 1 fixed 64 bits, 2 length-delimited,
// 5 fixed 32 bits. Repeated numbers may come packed (one length-delimited run) or one by one;
// both are read. Unknown fields are skipped. A dependency (protobufjs) would bring a schema
// compiler for three tiny messages, so this codec is written out here.

export type FeatureValues =
  | { kind: 'int64'; values: Float64Array }
  | { kind: 'float'; values: Float32Array }
  | { kind: 'bytes'; values: Uint8Array[] };

/** Malformed protobuf bytes; the TFRecord reader turns it into a DataError naming the record. */
export class ProtobufError extends Error {}

const WIRE_VARINT = 0;
const WIRE_FIXED64 = 1;
const WIRE_LENGTH = 2;
const WIRE_FIXED32 = 5;

class Reader {
  pos: number;
  constructor(
    readonly bytes: Uint8Array,
    start: number,
    readonly end: number,
  ) {
    this.pos = start;
  }

  get done(): boolean {
    return this.pos >= this.end;
  }

  byte(): number {
    if (this.pos >= this.end) throw new ProtobufError('truncated message');
    return this.bytes[this.pos++]!;
  }

  /** A varint up to 32 bits (keys, lengths). */
  varint32(): number {
    let result = 0;
    for (let shift = 0; shift < 35; shift += 7) {
      const b = this.byte();
      result += (b & 0x7f) * 2 ** shift;
      if (b < 0x80) return result;
    }
    // Lengths and keys never exceed 32 bits; read the rest of a 64-bit varint and refuse it.
    throw new ProtobufError('varint too long');
  }

  /** A 64-bit varint as a signed int64, exact within ±2^53. */
  int64(): number {
    let lo = 0;
    let hi = 0;
    let b = 0;
    for (let shift = 0; shift < 28; shift += 7) {
      b = this.byte();
      lo |= (b & 0x7f) << shift;
      if (b < 0x80) return lo >>> 0;
    }
    b = this.byte();
    lo |= (b & 0x0f) << 28;
    hi = (b & 0x7f) >> 4;
    if (b >= 0x80) {
      for (let shift = 3; ; shift += 7) {
        if (shift > 31) throw new ProtobufError('varint too long');
        b = this.byte();
        hi |= (b & 0x7f) << shift;
        if (b < 0x80) break;
      }
    }
    lo >>>= 0;
    hi >>>= 0;
    if (hi < 0x80000000) return hi * 4294967296 + lo;
    // Two's complement: -(~value + 1).
    const negLo = (~lo + 1) >>> 0;
    const negHi = (~hi + (negLo === 0 ? 1 : 0)) >>> 0;
    return -(negHi * 4294967296 + negLo);
  }

  skip(wire: number): void {
    if (wire === WIRE_VARINT) this.int64();
    else if (wire === WIRE_FIXED64) this.advance(8);
    else if (wire === WIRE_LENGTH) this.advance(this.varint32());
    else if (wire === WIRE_FIXED32) this.advance(4);
    else throw new ProtobufError(`unknown wire type ${wire}`);
  }

  advance(n: number): void {
    if (this.pos + n > this.end) throw new ProtobufError('truncated message');
    this.pos += n;
  }

  /** The bounds of a length-delimited value; the reader moves past it. */
  delimited(): [number, number] {
    const length = this.varint32();
    const start = this.pos;
    this.advance(length);
    return [start, start + length];
  }
}

const utf8 = new TextDecoder('utf-8', { fatal: false });

export function decodeExample(bytes: Uint8Array): Map<string, FeatureValues> {
  const features = new Map<string, FeatureValues>();
  const example = new Reader(bytes, 0, bytes.length);
  while (!example.done) {
    const key = example.varint32();
    if (key !== ((1 << 3) | WIRE_LENGTH)) {
      example.skip(key & 7);
      continue;
    }
    const [fStart, fEnd] = example.delimited();
    const featureMap = new Reader(bytes, fStart, fEnd);
    while (!featureMap.done) {
      const entryKey = featureMap.varint32();
      if (entryKey !== ((1 << 3) | WIRE_LENGTH)) {
        featureMap.skip(entryKey & 7);
        continue;
      }
      const [eStart, eEnd] = featureMap.delimited();
      const entry = new Reader(bytes, eStart, eEnd);
      let name = '';
      let value: FeatureValues | null = null;
      while (!entry.done) {
        const k = entry.varint32();
        if (k === ((1 << 3) | WIRE_LENGTH)) {
          const [s, e] = entry.delimited();
          name = utf8.decode(bytes.subarray(s, e));
        } else if (k === ((2 << 3) | WIRE_LENGTH)) {
          const [s, e] = entry.delimited();
          value = decodeFeature(bytes, s, e);
        } else entry.skip(k & 7);
      }
      // A feature with no kind set is an empty list (TensorFlow reads it so).
      features.set(name, value ?? { kind: 'int64', values: new Float64Array(0) });
    }
  }
  return features;
}

function decodeFeature(bytes: Uint8Array, start: number, end: number): FeatureValues | null {
  const feature = new Reader(bytes, start, end);
  let value: FeatureValues | null = null;
  while (!feature.done) {
    const key = feature.varint32();
    const wire = key & 7;
    const number = key >>> 3;
    if (wire !== WIRE_LENGTH || number < 1 || number > 3) {
      feature.skip(wire);
      continue;
    }
    const [s, e] = feature.delimited();
    value = number === 1 ? decodeBytesList(bytes, s, e) : number === 2 ? decodeFloatList(bytes, s, e) : decodeInt64List(bytes, s, e);
  }
  return value;
}

function decodeBytesList(bytes: Uint8Array, start: number, end: number): FeatureValues {
  const list = new Reader(bytes, start, end);
  const values: Uint8Array[] = [];
  while (!list.done) {
    const key = list.varint32();
    if (key !== ((1 << 3) | WIRE_LENGTH)) {
      list.skip(key & 7);
      continue;
    }
    const [s, e] = list.delimited();
    values.push(bytes.subarray(s, e));
  }
  return { kind: 'bytes', values };
}

function decodeFloatList(bytes: Uint8Array, start: number, end: number): FeatureValues {
  const list = new Reader(bytes, start, end);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const runs: Float32Array[] = [];
  const loose: number[] = [];
  while (!list.done) {
    const key = list.varint32();
    if (key === ((1 << 3) | WIRE_LENGTH)) {
      const [s, e] = list.delimited();
      if ((e - s) % 4 !== 0) throw new ProtobufError('packed floats not a multiple of 4 bytes');
      const run = new Float32Array((e - s) / 4);
      for (let i = 0; i < run.length; i++) run[i] = view.getFloat32(s + 4 * i, true);
      runs.push(run);
    } else if (key === ((1 << 3) | WIRE_FIXED32)) {
      list.advance(4);
      loose.push(view.getFloat32(list.pos - 4, true));
    } else list.skip(key & 7);
  }
  if (runs.length === 1 && loose.length === 0) return { kind: 'float', values: runs[0]! };
  return { kind: 'float', values: concatFloat32([...runs, Float32Array.from(loose)]) };
}

function decodeInt64List(bytes: Uint8Array, start: number, end: number): FeatureValues {
  const list = new Reader(bytes, start, end);
  const runs: Float64Array[] = [];
  const loose: number[] = [];
  while (!list.done) {
    const key = list.varint32();
    if (key === ((1 << 3) | WIRE_LENGTH)) {
      const [s, e] = list.delimited();
      let count = 0;
      for (let i = s; i < e; i++) if (bytes[i]! < 0x80) count++;
      const run = new Float64Array(count);
      const packed = new Reader(bytes, s, e);
      for (let i = 0; i < count; i++) run[i] = packed.int64();
      runs.push(run);
    } else if (key === ((1 << 3) | WIRE_VARINT)) {
      loose.push(list.int64());
    } else list.skip(key & 7);
  }
  if (runs.length === 1 && loose.length === 0) return { kind: 'int64', values: runs[0]! };
  const all = new Float64Array(runs.reduce((n, r) => n + r.length, 0) + loose.length);
  let at = 0;
  for (const run of runs) {
    all.set(run, at);
    at += run.length;
  }
  all.set(loose, at);
  return { kind: 'int64', values: all };
}

function concatFloat32(parts: Float32Array[]): Float32Array {
  const out = new Float32Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

/** A growable byte buffer for encoding. */
class Writer {
  bytes = new Uint8Array(1024);
  length = 0;

  private reserve(n: number): void {
    if (this.length + n <= this.bytes.length) return;
    let size = this.bytes.length * 2;
    while (size < this.length + n) size *= 2;
    const grown = new Uint8Array(size);
    grown.set(this.bytes.subarray(0, this.length));
    this.bytes = grown;
  }

  varint(value: number): void {
    this.reserve(10);
    if (value < 0) {
      // Negative int64: ten bytes of two's complement.
      let v = BigInt.asUintN(64, BigInt(value));
      while (v >= 0x80n) {
        this.bytes[this.length++] = Number(v & 0x7fn) | 0x80;
        v >>= 7n;
      }
      this.bytes[this.length++] = Number(v);
      return;
    }
    while (value >= 0x80) {
      this.bytes[this.length++] = (value % 128) | 0x80;
      value = Math.floor(value / 128);
    }
    this.bytes[this.length++] = value;
  }

  raw(bytes: Uint8Array): void {
    this.reserve(bytes.length);
    this.bytes.set(bytes, this.length);
    this.length += bytes.length;
  }

  /** A length-delimited field whose body `write` puts into a scratch writer. */
  message(field: number, write: (body: Writer) => void): void {
    const body = new Writer();
    write(body);
    this.varint((field << 3) | WIRE_LENGTH);
    this.varint(body.length);
    this.raw(body.bytes.subarray(0, body.length));
  }

  float32s(values: ArrayLike<number>): void {
    this.reserve(values.length * 4);
    const view = new DataView(this.bytes.buffer, this.bytes.byteOffset);
    for (let i = 0; i < values.length; i++) view.setFloat32(this.length + 4 * i, values[i]!, true);
    this.length += values.length * 4;
  }

  finish(): Uint8Array {
    return this.bytes.slice(0, this.length);
  }
}

const utf8Encoder = new TextEncoder();

/** A tf.train.Example with the features in the order given; numbers packed, as TensorFlow writes them. */
export function encodeExample(features: readonly (readonly [string, FeatureValues])[]): Uint8Array {
  const example = new Writer();
  example.message(1, (map) => {
    for (const [name, value] of features) {
      map.message(1, (entry) => {
        entry.message(1, (key) => key.raw(utf8Encoder.encode(name)));
        entry.message(2, (feature) => {
          if (value.kind === 'bytes') {
            feature.message(1, (list) => {
              for (const item of value.values) list.message(1, (b) => b.raw(item));
            });
          } else if (value.kind === 'float') {
            feature.message(2, (list) => list.message(1, (packed) => packed.float32s(value.values)));
          } else {
            feature.message(3, (list) =>
              list.message(1, (packed) => {
                for (let i = 0; i < value.values.length; i++) packed.varint(value.values[i]!);
              }),
            );
          }
        });
      });
    }
  });
  return example.finish();
}

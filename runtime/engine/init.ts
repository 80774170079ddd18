// Seeded initial values of every parameter of a model, the same on every engine: the TensorFlow.js
// engine builds its state from here and the CUDA engine uploads these arrays, so one seed gives
// one starting model, bit for bit, whatever trains it (docs/engine.md).
//
// Each parameter draws from its own stream, keyed by the train seed and the parameter's name, so
// adding a table or a layer does not change the starting values of the others. A stream is
// xoshiro128** (32-bit integer arithmetic, exact in JavaScript) seeded through splitmix32 from the
// seed and the murmur3 hash of the name; normals come from the Box-Muller transform in float64
// (V8's Math.log/cos/sin are its fdlibm port, the same on every machine) rounded to float32.

import type { InitializerIR, ModelIR } from '../../compiler/ir.js';
import { murmur3String } from '../transforms.js';
import type { NamedTensor } from './engine.js';

const TWO_POW_32 = 4294967296;

/** A deterministic stream of uniform and normal numbers. */
export class RandomStream {
  private s0: number;
  private s1: number;
  private s2: number;
  private s3: number;
  private spareNormal: number | null = null;

  /** The stream of `key` under `seed` (an integer in [0, 2^53)). */
  constructor(seed: number, key: string) {
    if (!Number.isSafeInteger(seed) || seed < 0) throw new Error(`internal: seed ${seed} is not a non-negative safe integer`);
    // splitmix32 over (seed low word, seed high word, key hash) fills the four state words.
    let x = (seed >>> 0) ^ Math.imul(Math.floor(seed / TWO_POW_32) >>> 0, 0x9e3779b1) ^ murmur3String(key, 0x5eed);
    const next = (): number => {
      x = (x + 0x9e3779b9) | 0;
      let z = x;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
      return (z ^ (z >>> 16)) >>> 0;
    };
    this.s0 = next();
    this.s1 = next();
    this.s2 = next();
    this.s3 = next();
    if ((this.s0 | this.s1 | this.s2 | this.s3) === 0) this.s0 = 1; // the one state xoshiro cannot leave
  }

  /** The next uint32 (xoshiro128**). */
  nextUint32(): number {
    const result = Math.imul(rotl(Math.imul(this.s1, 5), 7), 9) >>> 0;
    const t = this.s1 << 9;
    this.s2 ^= this.s0;
    this.s3 ^= this.s1;
    this.s1 ^= this.s2;
    this.s0 ^= this.s3;
    this.s2 ^= t;
    this.s3 = rotl(this.s3, 11);
    return result;
  }

  /** Uniform in [0, 1), a multiple of 2^-32. */
  uniform(): number {
    return this.nextUint32() / TWO_POW_32;
  }

  /** Standard normal (Box-Muller, both values of each pair used). */
  normal(): number {
    if (this.spareNormal !== null) {
      const z = this.spareNormal;
      this.spareNormal = null;
      return z;
    }
    const u1 = (this.nextUint32() + 0.5) / TWO_POW_32; // in (0, 1): log(u1) is finite
    const u2 = this.uniform();
    const r = Math.sqrt(-2 * Math.log(u1));
    const theta = 2 * Math.PI * u2;
    this.spareNormal = r * Math.sin(theta);
    return r * Math.cos(theta);
  }

  /** Standard normal redrawn until within two standard deviations (TF's truncated_normal). */
  truncatedNormal(): number {
    for (;;) {
      const z = this.normal();
      if (Math.abs(z) <= 2) return z;
    }
  }
}

function rotl(x: number, k: number): number {
  return (x << k) | (x >>> (32 - k));
}

/** The fan-in and fan-out the Glorot initializers scale by: rows and columns of the parameter. */
export interface Fans {
  fanIn: number;
  fanOut: number;
}

/**
 * TF's GlorotNormal draws from a truncated normal whose pre-truncation stddev is divided by this
 * constant (the stddev of a standard normal truncated to [-2, 2]), so that the values drawn have
 * stddev sqrt(2 / (fan_in + fan_out)).
 */
export const TRUNCATED_NORMAL_STDDEV = 0.87962566103423978;

/** Fills `out` with the values of `init` drawn from `stream`, rounded to float32. */
export function fillInitial(out: Float32Array, init: InitializerIR, fans: Fans, stream: RandomStream): Float32Array {
  switch (init.kind) {
    case 'zeros':
      return out.fill(0);
    case 'constant':
      return out.fill(init.value);
    case 'normal':
      for (let i = 0; i < out.length; i++) out[i] = init.mean + init.stddev * stream.normal();
      return out;
    case 'truncated_normal':
      for (let i = 0; i < out.length; i++) out[i] = init.mean + init.stddev * stream.truncatedNormal();
      return out;
    case 'uniform':
      return fillUniform(out, init.min, init.max, stream);
    case 'glorot_uniform': {
      const limit = Math.sqrt(6 / (fans.fanIn + fans.fanOut));
      return fillUniform(out, -limit, limit, stream);
    }
    case 'glorot_normal': {
      const stddev = Math.sqrt(2 / (fans.fanIn + fans.fanOut)) / TRUNCATED_NORMAL_STDDEV;
      for (let i = 0; i < out.length; i++) out[i] = stddev * stream.truncatedNormal();
      return out;
    }
  }
}

function fillUniform(out: Float32Array, min: number, max: number, stream: RandomStream): Float32Array {
  const width = max - min;
  for (let i = 0; i < out.length; i++) {
    // Rounding to float32 can reach `max` itself; keep the interval half-open as documented.
    const v = Math.fround(min + width * stream.uniform());
    out[i] = v < max ? v : min;
  }
  return out;
}

/** What a parameter is, for the optimizers and for engines that store kinds differently. */
export type ParameterRole =
  /** An embedding or wide table: rows x dim, updated sparsely (only the rows of the batch). */
  | 'table'
  /** Trained densely: `wide/numeric`, `wide/bias`, layer kernels, biases, batch-norm gamma and beta. */
  | 'dense'
  /** A batch-norm moving statistic: updated by averaging in training, not by an optimizer. */
  | 'statistic';

export interface ParameterSpec {
  name: string;
  /** [rows, dim] for tables, [inputs, units] for kernels, [n] for vectors. */
  shape: number[];
  part: 'wide' | 'deep';
  role: ParameterRole;
  init: InitializerIR;
  fans: Fans;
}

const ZEROS: InitializerIR = { kind: 'zeros' };
const ONES: InitializerIR = { kind: 'constant', value: 1 };

/**
 * Every parameter of `ir`, in a fixed order: the tables (as in `ir.tables`), `wide/bias` when the
 * model has a wide part, then per layer of the tower its kernel, bias and, for hidden layers with
 * batch norm, gamma, beta, moving_mean and moving_variance.
 */
export function parameterSpecs(ir: ModelIR): ParameterSpec[] {
  const specs: ParameterSpec[] = [];
  for (const t of ir.tables) {
    // `wide/numeric` holds one weight per numeric feature, all of them used by every row.
    const role: ParameterRole = t.name === 'wide/numeric' ? 'dense' : 'table';
    specs.push({ name: t.name, shape: [t.rows, t.dim], part: t.part, role, init: t.init, fans: { fanIn: t.rows, fanOut: t.dim } });
  }
  if (ir.wide.features.length > 0) specs.push(vector('wide/bias', 1, 'wide', 'dense', ZEROS));
  ir.deep.layers.forEach((layer, i) => {
    const fans = { fanIn: layer.inputs, fanOut: layer.units };
    specs.push({ name: `${layer.name}/kernel`, shape: [layer.inputs, layer.units], part: 'deep', role: 'dense', init: ir.deep.init, fans });
    specs.push(vector(`${layer.name}/bias`, layer.units, 'deep', 'dense', ZEROS));
    if (ir.deep.batchNorm && i < ir.deep.hiddenUnits.length) {
      specs.push(vector(`${layer.name}/gamma`, layer.units, 'deep', 'dense', ONES));
      specs.push(vector(`${layer.name}/beta`, layer.units, 'deep', 'dense', ZEROS));
      specs.push(vector(`${layer.name}/moving_mean`, layer.units, 'deep', 'statistic', ZEROS));
      specs.push(vector(`${layer.name}/moving_variance`, layer.units, 'deep', 'statistic', ONES));
    }
  });
  return specs;
}

function vector(name: string, n: number, part: 'wide' | 'deep', role: ParameterRole, init: InitializerIR): ParameterSpec {
  return { name, shape: [n], part, role, init, fans: { fanIn: n, fanOut: 1 } };
}

/** The starting value of one parameter under `seed`. */
export function initialValue(spec: ParameterSpec, seed: number): Float32Array {
  const size = spec.shape.reduce((a, b) => a * b, 1);
  return fillInitial(new Float32Array(size), spec.init, spec.fans, new RandomStream(seed, spec.name));
}

/** The starting values of every parameter of `ir` under `seed` (optimizer slots excluded). */
export function initialParameters(ir: ModelIR, seed: number): NamedTensor[] {
  return parameterSpecs(ir).map((spec) => ({ name: spec.name, shape: [...spec.shape], data: initialValue(spec, seed) }));
}

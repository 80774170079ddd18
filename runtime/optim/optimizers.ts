// The reference update rules of wndc's optimizers, engine-independent, over Float32Array weights.
// Every engine (TensorFlow.js, CUDA) must give the numbers these functions give; docs/language.md
// states the formulas for users, and each kernel below cites the TensorFlow op it follows.
//
// Arithmetic is float32, as in TensorFlow's kernels: every hyperparameter is rounded to float32
// (TF casts them to the variable's dtype) and every +, -, *, / and sqrt result is rounded with
// Math.fround. Those operations are correctly rounded in IEEE float32, so a port that performs the
// same operations in the same order without fused multiply-adds (nvcc: --fmad=false) reproduces
// the weights bit for bit. Only `pow` (FTRL with learning_rate_power != -0.5) is not portable
// to the last bit; per-step scalars (Adam's bias correction) are computed once on the host in
// float64 and rounded, and an engine passes them to its kernels (see `adamStepSize`).
//
// Steps: `step` is the global step, the number of updates applied before this one (0 on the
// first), the same count the learning-rate schedules take. Only Adam reads it (t = step + 1).
//
// Sparse updates touch only the rows listed, and every slot of other rows stays as it is, for
// every optimizer. That is TensorFlow's behaviour for FTRL, Adagrad, proximal Adagrad and
// momentum (their SparseApply* kernels), so a sparse update equals the dense update of the
// touched rows. For Adam it is a choice: TF1's AdamOptimizer decays the moments of every row on a
// sparse update (its sparse update equals the dense one with zero gradients elsewhere); wndc
// instead updates only the rows seen in the batch, like tf.contrib.opt.LazyAdamOptimizer /
// tfa.optimizers.LazyAdam, with the bias correction of the global step.

import type { OptimizerIR } from '../../compiler/ir.js';

const f32 = Math.fround;

/** TF's sgn: 0 for both zeros, where Math.sign(-0) would give -0 and so a -0 weight. */
function sign(x: number): number {
  return x > 0 ? 1 : x < 0 ? -1 : 0;
}

/** One state array of an optimizer, as long as the weights it belongs to. */
export interface SlotSpec {
  /** TensorFlow's name for the slot (`accum`, `linear`, `m`, `v`, `momentum`). */
  name: string;
  /** The value every element starts at. */
  init: number;
}

export interface Optimizer {
  readonly ir: OptimizerIR;
  /** The state arrays, in the order `applyDense` and `applySparse` take them. */
  readonly slots: readonly SlotSpec[];
  /** Fresh state for `size` weights: one Float32Array per slot, filled with its initial value. */
  createSlots(size: number): Float32Array[];
  /**
   * Updates every weight of `param` in place with the gradient `grad` (same length), at learning
   * rate `lr` (the schedule's rate for this step) and global step `step`.
   */
  applyDense(param: Float32Array, grad: Float32Array, slots: readonly Float32Array[], lr: number, step: number): void;
  /**
   * Updates the rows `rows` of a row-major `table` of width `dim` in place; `grads` holds one row
   * of `dim` gradients per entry of `rows`. Row ids must be unique (see `coalesceRows`); other rows
   * and their slots are not read or written.
   */
  applySparse(
    table: Float32Array,
    dim: number,
    rows: Int32Array,
    grads: Float32Array,
    slots: readonly Float32Array[],
    lr: number,
    step: number,
  ): void;
}

/** Updates coordinate `p` of `w` (and of the slots it was made for) with gradient `g`, a float32. */
type CoordinateUpdate = (w: Float32Array, p: number, g: number) => void;

/** The update of one step over given slots, its per-step scalars computed once. */
type Rule = (slots: readonly Float32Array[], lr: number, step: number) => CoordinateUpdate;

export function createOptimizer(ir: OptimizerIR): Optimizer {
  const rule = ruleFor(ir);
  const slots = slotLayout(ir);
  return {
    ir,
    slots,
    createSlots(size) {
      return slots.map((s) => new Float32Array(size).fill(s.init));
    },
    applyDense(param, grad, state, lr, step) {
      checkSlots(slots, state, param.length);
      if (grad.length !== param.length) throw new Error(`internal: gradient of length ${grad.length} for ${param.length} weights`);
      const update = rule(state, checkRate(ir, lr), checkStep(step));
      for (let p = 0; p < param.length; p++) update(param, p, grad[p]!);
    },
    applySparse(table, dim, rows, grads, state, lr, step) {
      checkSlots(slots, state, table.length);
      checkSparseShape(table.length, dim, rows, grads);
      const update = rule(state, checkRate(ir, lr), checkStep(step));
      for (let r = 0; r < rows.length; r++) {
        const base = rows[r]! * dim;
        const from = r * dim;
        for (let j = 0; j < dim; j++) update(table, base + j, grads[from + j]!);
      }
    },
  };
}

/** The state arrays of an optimizer: how many, their names and their initial values. */
export function slotLayout(ir: OptimizerIR): SlotSpec[] {
  switch (ir.kind) {
    case 'ftrl':
      return [
        { name: 'accum', init: ir.initialAccumulatorValue },
        { name: 'linear', init: 0 },
      ];
    case 'proximal_adagrad':
    case 'adagrad':
      return [{ name: 'accum', init: ir.initialAccumulatorValue }];
    case 'adam':
      return [
        { name: 'm', init: 0 },
        { name: 'v', init: 0 },
      ];
    case 'sgd':
      // Plain gradient descent keeps no state (compiler/lower.ts optimizerSlots counts the same).
      return ir.momentum > 0 ? [{ name: 'momentum', init: 0 }] : [];
  }
}

/**
 * Adam's step size for global step `step`: lr * sqrt(1 - beta2^t) / (1 - beta1^t) with t = step + 1
 * (TF1 AdamOptimizer's lr_t), in float64, rounded to float32 once.
 */
export function adamStepSize(lr: number, beta1: number, beta2: number, step: number): number {
  const t = step + 1;
  return f32((lr * Math.sqrt(1 - Math.pow(beta2, t))) / (1 - Math.pow(beta1, t)));
}

function ruleFor(ir: OptimizerIR): Rule {
  switch (ir.kind) {
    case 'ftrl':
      return ftrl(ir);
    case 'proximal_adagrad':
      return proximalAdagrad(ir);
    case 'adagrad':
      return adagrad(ir);
    case 'adam':
      return adam(ir);
    case 'sgd':
      return sgd(ir);
  }
}

type Ir<K extends OptimizerIR['kind']> = Extract<OptimizerIR, { kind: K }>;

/**
 * FTRL-proximal with L2 shrinkage: TF's ApplyFtrlV2 / SparseApplyFtrlV2 (training_ops.cc; the
 * raw-op docs of ApplyFtrlV2), as FtrlOptimizer and Keras Ftrl (beta 0) call them:
 *   g_s       = g + 2 * l2_shrinkage * w
 *   n_new     = n + g * g                      (the raw gradient, not g_s)
 *   z        += g_s - (n_new^-p - n^-p) / lr * w
 *   quadratic = n_new^-p / lr + 2 * l2
 *   w         = |z| > l1 ? (sign(z) * l1 - z) / quadratic : 0
 *   n         = n_new
 * with p = learning_rate_power; TF takes sqrt for p = -0.5, and so does this.
 */
function ftrl(ir: Ir<'ftrl'>): Rule {
  const l1 = f32(ir.l1);
  const twoL2 = f32(2 * f32(ir.l2));
  const twoShrinkage = f32(2 * f32(ir.l2Shrinkage));
  const power = f32(-ir.learningRatePower);
  const rate: (n: number) => number = power === 0.5 ? (n) => f32(Math.sqrt(n)) : (n) => f32(Math.pow(n, power));
  return (slots, lr) => {
    const [accum, linear] = slotArrays(slots, 2);
    const lr32 = f32(lr);
    return (w, p, g) => {
      const weight = w[p]!;
      const n = accum[p]!;
      const gShrunk = f32(g + f32(twoShrinkage * weight));
      const nNew = f32(n + f32(g * g));
      const rateNew = rate(nNew);
      const sigma = f32(f32(rateNew - rate(n)) / lr32);
      const z = f32(linear[p]! + f32(gShrunk - f32(sigma * weight)));
      const quadratic = f32(f32(rateNew / lr32) + twoL2);
      linear[p] = z;
      accum[p] = nNew;
      w[p] = Math.abs(z) > l1 ? f32(f32(f32(sign(z) * l1) - z) / quadratic) : 0;
    };
  };
}

/**
 * Proximal Adagrad: TF's ApplyProximalAdagrad / SparseApplyProximalAdagrad (training_ops.cc), as
 * ProximalAdagradOptimizer calls them (FOBOS with an Adagrad rate):
 *   n = n + g * g
 *   a = lr / sqrt(n)
 *   v = w - a * g
 *   w = sign(v) * max(|v| - a * l1, 0) / (1 + a * l2)
 * TF writes the l1 = 0 case as v / (1 + a * l2), which this formula gives bit for bit.
 */
function proximalAdagrad(ir: Ir<'proximal_adagrad'>): Rule {
  const l1 = f32(ir.l1);
  const l2 = f32(ir.l2);
  return (slots, lr) => {
    const [accum] = slotArrays(slots, 1);
    const lr32 = f32(lr);
    return (w, p, g) => {
      const n = f32(accum[p]! + f32(g * g));
      const a = f32(lr32 / f32(Math.sqrt(n)));
      const v = f32(w[p]! - f32(g * a));
      const shrunk = Math.max(f32(Math.abs(v) - f32(a * l1)), 0);
      accum[p] = n;
      w[p] = f32(f32(sign(v) * shrunk) / f32(1 + f32(l2 * a)));
    };
  };
}

/**
 * Adagrad with Keras's epsilon: TF's ApplyAdagradV2 / SparseApplyAdagradV2 (training_ops.cc), as
 * tf.keras.optimizers.Adagrad calls them:
 *   n = n + g * g
 *   w = w - lr * g / (sqrt(n) + epsilon)
 * TF1's AdagradOptimizer (ApplyAdagrad) has no epsilon: w - lr * g / sqrt(n).
 */
function adagrad(ir: Ir<'adagrad'>): Rule {
  const epsilon = f32(ir.epsilon);
  return (slots, lr) => {
    const [accum] = slotArrays(slots, 1);
    const lr32 = f32(lr);
    return (w, p, g) => {
      const n = f32(accum[p]! + f32(g * g));
      accum[p] = n;
      w[p] = f32(w[p]! - f32(f32(g * lr32) / f32(f32(Math.sqrt(n)) + epsilon)));
    };
  };
}

/**
 * Adam: TF1 AdamOptimizer, kernel ApplyAdam (training_ops.cc), epsilon outside the square root
 * (Kingma and Ba's epsilon-hat):
 *   lr_t = lr * sqrt(1 - beta2^t) / (1 - beta1^t)
 *   m    = m + (g - m) * (1 - beta1)          (= beta1 * m + (1 - beta1) * g)
 *   v    = v + (g * g - v) * (1 - beta2)
 *   w    = w - lr_t * m / (sqrt(v) + epsilon)
 * Sparse: only the rows given (LazyAdam), see the note at the top of this file.
 */
function adam(ir: Ir<'adam'>): Rule {
  const beta1 = f32(ir.beta1);
  const beta2 = f32(ir.beta2);
  const oneMinusBeta1 = f32(1 - beta1);
  const oneMinusBeta2 = f32(1 - beta2);
  const epsilon = f32(ir.epsilon);
  return (slots, lr, step) => {
    const [m, v] = slotArrays(slots, 2);
    const stepSize = adamStepSize(f32(lr), beta1, beta2, step);
    return (w, p, g) => {
      const mNew = f32(m[p]! + f32(f32(g - m[p]!) * oneMinusBeta1));
      const vNew = f32(v[p]! + f32(f32(f32(g * g) - v[p]!) * oneMinusBeta2));
      m[p] = mNew;
      v[p] = vNew;
      w[p] = f32(w[p]! - f32(f32(mNew * stepSize) / f32(f32(Math.sqrt(vNew)) + epsilon)));
    };
  };
}

/**
 * SGD: TF's ApplyGradientDescent (w = w - lr * g) without momentum; with momentum, TF1
 * MomentumOptimizer's ApplyMomentum / SparseApplyMomentum (training_ops.cc), which accumulates
 * gradients and applies the current rate to the whole accumulator:
 *   a = momentum * a + g
 *   w = w - lr * a                              (nesterov: false)
 *   w = w - (lr * g + lr * momentum * a)        (nesterov: true)
 * With a constant rate this equals Keras SGD's velocity form (u = -lr * a); under a schedule the
 * two differ, and wndc follows MomentumOptimizer (tfjs's MomentumOptimizer does the same).
 */
function sgd(ir: Ir<'sgd'>): Rule {
  const momentum = f32(ir.momentum);
  if (momentum === 0) {
    return (slots, lr) => {
      slotArrays(slots, 0);
      const lr32 = f32(lr);
      return (w, p, g) => {
        w[p] = f32(w[p]! - f32(g * lr32));
      };
    };
  }
  return (slots, lr) => {
    const [accum] = slotArrays(slots, 1);
    const lr32 = f32(lr);
    if (ir.nesterov) {
      return (w, p, g) => {
        const a = f32(f32(accum[p]! * momentum) + g);
        accum[p] = a;
        w[p] = f32(w[p]! - f32(f32(g * lr32) + f32(f32(a * momentum) * lr32)));
      };
    }
    return (w, p, g) => {
      const a = f32(f32(accum[p]! * momentum) + g);
      accum[p] = a;
      w[p] = f32(w[p]! - f32(a * lr32));
    };
  };
}

// ---------------------------------------------------------------------------------------------
// Checks of what engines pass in: a mismatch is a wndc bug, never a user error.

type SlotTuple = { 0: []; 1: [Float32Array]; 2: [Float32Array, Float32Array] };

/** The slot arrays as a tuple of the rule's arity (createOptimizer has checked their lengths). */
function slotArrays<N extends keyof SlotTuple>(slots: readonly Float32Array[], count: N): SlotTuple[N] {
  if (slots.length !== count) throw new Error(`internal: ${slots.length} slot arrays given, the rule keeps ${count}`);
  return slots as unknown as SlotTuple[N];
}

/**
 * FTRL divides by the rate, so a schedule that reaches 0 (cosine with alpha 0) would turn its
 * weights into NaN, in TensorFlow too; the compiler should reject that combination, and this
 * stops it here rather than train on NaN.
 */
function checkRate(ir: OptimizerIR, lr: number): number {
  if (!Number.isFinite(lr) || lr < 0) throw new Error(`internal: learning rate ${lr} is not a finite number >= 0`);
  if (ir.kind === 'ftrl' && f32(lr) === 0) throw new Error('internal: ftrl needs a learning rate > 0 (it divides by it), got 0 from the schedule');
  return lr;
}

function checkStep(step: number): number {
  if (!Number.isInteger(step) || step < 0) throw new Error(`internal: optimizer step ${step} is not a non-negative integer`);
  return step;
}

function checkSlots(layout: readonly SlotSpec[], state: readonly Float32Array[], size: number): void {
  if (state.length !== layout.length) throw new Error(`internal: ${state.length} slot arrays given, the optimizer keeps ${layout.length}`);
  state.forEach((slot, i) => {
    if (slot.length !== size) throw new Error(`internal: slot \`${layout[i]!.name}\` has ${slot.length} values for ${size} weights`);
  });
}

function checkSparseShape(size: number, dim: number, rows: Int32Array, grads: Float32Array): void {
  if (!Number.isInteger(dim) || dim < 1 || size % dim !== 0) throw new Error(`internal: table of ${size} values is not made of rows of width ${dim}`);
  if (grads.length !== rows.length * dim) throw new Error(`internal: ${grads.length} gradient values for ${rows.length} rows of width ${dim}`);
  const rowCount = size / dim;
  const seen = new Set<number>();
  for (const row of rows) {
    if (row < 0 || row >= rowCount) throw new Error(`internal: row ${row} outside a table of ${rowCount} rows`);
    if (seen.has(row)) throw new Error(`internal: row ${row} given twice to a sparse update; coalesce the rows first`);
    seen.add(row);
  }
}

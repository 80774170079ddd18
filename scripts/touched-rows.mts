// Distinct table rows touched per training step in the CUDA benchmark's synthetic Outbrain data.
// Usage: node --import tsx scripts/touched-rows.mts   (about 40 s; the data is cached as `wndc run` caches it)
// Measured in session 7 for docs/distributed.md ("What limits scaling"): the benchmark's ids are
// Zipf-like (docs/synth.md), so a step touches far fewer rows than uniform draws would.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { compileSource } from '../compiler/compile.js';
import { cacheRoot } from '../runtime/cache.js';
import { openShards } from '../runtime/data/shards.js';
import { specHash } from '../runtime/data/spec-hash.js';
import { synthSource } from '../runtime/data/synth.js';
import { encodeToFolder } from '../cli/preprocess.js';
import { DeviceOrders } from '../cli/run.js';
import { nativePlan } from '../runtime/engine/cuda/plan.js';

const SPEC = new URL('../examples/outbrain/outbrain.wnd', import.meta.url).pathname;
const ROWS = 262144;
const GLOBAL = 131072;

const result = compileSource(readFileSync(SPEC, 'utf8'), SPEC, 'wnd');
if (result.ir === undefined) throw new Error(JSON.stringify(result.diagnostics));
const ir = result.ir;
ir.train.batchSize = GLOBAL; // --global_batch_size 131072 (the spec's value too)
ir.train.mixedPrecision = 'bf16'; // --amp
const seed = ir.train.seed;

// cli/run.ts synthetic(): same folder name, same generator and split.
const hash = specHash(ir);
const cache = join(cacheRoot(), 'synthetic', `${ir.model}-${hash.slice(0, 12)}-${ROWS}-${seed}`);
if (!existsSync(join(cache, 'valid', 'manifest.json'))) {
  process.stderr.write(`generating ${ROWS} synthetic rows into ${cache}\n`);
  await encodeToFolder(ir, { train: synthSource(ir, { rows: ROWS, seed }), validFraction: 0.1, maxBadRows: 0 }, cache);
}
const train = openShards(join(cache, 'train'), { specHash: hash });

// Concatenate the train split as CudaEngine.preload does (concatShards).
const plan = nativePlan(ir, { precision: 'bf16', batchCapacity: GLOBAL, seed });
const { idsWidth, lengthsWidth } = plan.layout;
const N = train.rows;
const ids = new Int32Array(N * idsWidth);
const lengths = new Int32Array(N * lengthsWidth);
let at = 0;
for (let s = 0; s < train.shardCount; s++) {
  const shard = train.load(s);
  ids.set(shard.ids, at * idsWidth);
  lengths.set(shard.lengths, at * lengthsWidth);
  at += shard.rows;
}
if (at !== N) throw new Error('row count mismatch');

// Lookups of the engine plan, grouped by table parameter.
type L = { idOffset: number; width: number; lengthSlot: number };
const byTable = new Map<number, L[]>();
const add = (l: { table: number; idOffset: number; width: number; lengthSlot: number }) => {
  const list = byTable.get(l.table) ?? [];
  list.push({ idOffset: l.idOffset, width: l.width, lengthSlot: l.lengthSlot });
  byTable.set(l.table, list);
};
for (const l of plan.wide.lookups) add(l);
for (const p of plan.deep.pieces) if (p.kind === 'embedding') add(p.lookup);
const tables = [...byTable.keys()].sort((a, b) => a - b).map((i) => ({ index: i, param: plan.parameters[i]!, lookups: byTable.get(i)! }));

// Check ids are in range; count ids per row (mean) for the uniform model.
for (const t of tables) {
  for (const l of t.lookups) {
    for (let r = 0; r < N; r++) {
      const len = l.lengthSlot < 0 ? l.width : lengths[r * lengthsWidth + l.lengthSlot]!;
      if (len < 0 || len > l.width) throw new Error(`${t.param.name}: bad length ${len}`);
      for (let k = 0; k < len; k++) {
        const id = ids[r * idsWidth + l.idOffset + k]!;
        if (id < 0 || id >= t.param.rows) throw new Error(`${t.param.name}: id ${id} outside [0, ${t.param.rows})`);
      }
    }
  }
}

/** Distinct rows of each table touched by the given batches of dataset rows (their union). */
function touched(batches: Int32Array[]): number[] {
  return tables.map((t) => {
    const seen = new Uint8Array(t.param.rows);
    let count = 0;
    for (const rows of batches) {
      for (const r of rows) {
        for (const l of t.lookups) {
          const len = l.lengthSlot < 0 ? l.width : lengths[r * lengthsWidth + l.lengthSlot]!;
          const base = r * idsWidth + l.idOffset;
          for (let k = 0; k < len; k++) {
            const id = ids[base + k]!;
            if (seen[id] === 0) {
              seen[id] = 1;
              count++;
            }
          }
        }
      }
    }
    return count;
  });
}
/** Ids drawn per row (mean over the whole train split), for the uniform prediction. */
const drawsPerRow = tables.map((t) => {
  let n = 0;
  for (const l of t.lookups) for (let r = 0; r < N; r++) n += l.lengthSlot < 0 ? l.width : lengths[r * lengthsWidth + l.lengthSlot]!;
  return n / N;
});

// Benchmark orders: the run's order is each epoch's permutation cut to batchesPerEpoch batches, back to back.
function stepBatches(batchSize: number, rank: number, steps: number): Int32Array[] {
  const orders = new DeviceOrders(N, batchSize, seed + rank);
  const out: Int32Array[] = [];
  for (let epoch = 0; out.length < steps; epoch++) {
    const order = orders.epoch(epoch);
    for (let b = 0; b < orders.batchesPerEpoch && out.length < steps; b++) out.push(order.subarray(b * batchSize, (b + 1) * batchSize));
  }
  return out;
}
const STEPS = 3;
const half = GLOBAL / 2;
const r0 = stepBatches(half, 0, STEPS);
const r1 = stepBatches(half, 1, STEPS);
const one = stepBatches(GLOBAL, 0, STEPS);
const mean = (xs: number[][]) => tables.map((_, i) => xs.reduce((a, x) => a + x[i]!, 0) / xs.length);
const single = mean(r0.map((b) => touched([b])));
const singleR1 = mean(r1.map((b) => touched([b])));
const union = mean(r0.map((b, s) => touched([b, r1[s]!])));
const full = mean(one.map((b) => touched([b])));

const allRows = new Int32Array(N).map((_, i) => i);
const whole = touched([allRows]);
const uniform = (rows: number, draws: number) => rows * (1 - Math.exp(-draws / rows));
console.log(`spec ${SPEC}; data ${cache}; train rows ${N}; seed ${seed}; per-rank batches/epoch (65536) ${new DeviceOrders(N, half, seed).batchesPerEpoch}, (131072) ${new DeviceOrders(N, GLOBAL, seed).batchesPerEpoch}`);
const rowsOut = tables.map((t, i) => ({
  table: t.param.name,
  rows: t.param.rows,
  dim: t.param.dim,
  idsPerRow: Number(drawsPerRow[i]!.toFixed(3)),
  b65k: Math.round(single[i]!),
  b65k_rank1: Math.round(singleR1[i]!),
  union2x65k: Math.round(union[i]!),
  b131k: Math.round(full[i]!),
  trainSplit: whole[i],
  uniform65k: Math.round(uniform(t.param.rows, half * drawsPerRow[i]!)),
  uniform131k: Math.round(uniform(t.param.rows, GLOBAL * drawsPerRow[i]!)),
}));
console.table(rowsOut);
const MB = (floats: number) => ((floats * 4) / 1e6).toFixed(2);
const sum = (f: (i: number) => number) => tables.reduce((a, t, i) => a + f(i) * t.param.dim, 0);
console.log(`union (2 x 65,536) rows x dim: ${Math.round(sum((i) => union[i]!))} floats = ${MB(sum((i) => union[i]!))} MB fp32`);
console.log(`one 65,536 batch rows x dim:   ${Math.round(sum((i) => single[i]!))} floats = ${MB(sum((i) => single[i]!))} MB fp32`);
console.log(`one 131,072 batch rows x dim:  ${Math.round(sum((i) => full[i]!))} floats = ${MB(sum((i) => full[i]!))} MB fp32`);
console.log(`all tables whole rows x dim:   ${sum(() => 1) === 0 ? 0 : tables.reduce((a, t) => a + t.param.rows * t.param.dim, 0)} floats = ${MB(tables.reduce((a, t) => a + t.param.rows * t.param.dim, 0))} MB fp32`);
console.log(JSON.stringify({ perStep: rowsOut.map((r) => r) }));

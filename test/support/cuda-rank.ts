// One rank of the two-GPU equivalence test (test/cuda-distributed.test.ts):
//   node --import tsx test/support/cuda-rank.ts DIR RANK SIZE
// Trains DIR/spec.wnd on GPU RANK as rank RANK of SIZE over NCCL, on its share of each global batch
// of DIR/config.json (`amp`: bf16 or fp16 mixed precision, else strict fp32; `rank0Slots`: rank 0's
// optimizer slots doubled before the join, which its broadcast must give every rank), and writes its
// losses and final state to DIR/result-RANK.json (rank 0 also the exchange plan). The
// NCCL job id travels through DIR/id.bin (written by rank 0, renamed into place when complete).
import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { compileSource } from '../../compiler/compile.js';
import { CudaEngine } from '../../runtime/engine/cuda/engine.js';
import { randomBatch, sliceBatch } from './random-batch.js';
import { scaleSlots } from './scale-slots.js';

const [dir, rankText, sizeText] = process.argv.slice(2) as [string, string, string];
const rank = Number(rankText);
const size = Number(sizeText);
const config = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')) as { steps: number; batch: number; seed: number; amp?: 'bf16' | 'fp16'; rank0Slots?: boolean };
const ir = compileSource(readFileSync(join(dir, 'spec.wnd'), 'utf8'), 'spec.wnd', 'wnd').ir!;
if (config.amp !== undefined) ir.train.mixedPrecision = config.amp;
const engine = await CudaEngine.create({ device: rank, strictFp32: config.amp === undefined });
await engine.build(ir, config.seed);
if (config.rank0Slots === true && rank === 0) await engine.loadState(scaleSlots(await engine.state(), 2));
const idFile = join(dir, 'id.bin');
let id: Uint8Array;
if (rank === 0) {
  id = engine.newJobId();
  writeFileSync(`${idFile}.tmp`, id);
  renameSync(`${idFile}.tmp`, idFile);
} else {
  const deadline = Date.now() + 60_000;
  while (!existsSync(idFile)) {
    if (Date.now() > deadline) throw new Error(`rank ${rank}: no job id from rank 0 after 60 s`);
    await new Promise((r) => setTimeout(r, 20));
  }
  id = new Uint8Array(readFileSync(idFile));
}
engine.joinWorld(id, rank, size);
const per = config.batch / size;
const lr = { wide: ir.wide.optimizer.learningRate, deep: ir.deep.optimizer.learningRate };
const losses: number[] = [];
for (let step = 0; step < config.steps; step++) {
  const global = randomBatch(ir, config.batch, 1000 + step, config.batch);
  const result = await engine.trainStep(sliceBatch(ir, global, rank * per, per), step, lr, { offset: rank * per, total: config.batch });
  losses.push(result.loss);
}
const state = (await engine.state()).map((t) => ({ name: t.name, data: Array.from(t.data) }));
writeFileSync(join(dir, `result-${rank}.json`), JSON.stringify({ losses, state, exchange: engine.exchangePlan() }));
// Reading the state may read the other ranks' GPU memory (a table row's optimizer slots stay on the
// rank that updates it): no rank frees its memory before every rank has its state.
const deadline = Date.now() + 60_000;
for (let r = 0; r < size; r++) {
  while (!existsSync(join(dir, `result-${r}.json`))) {
    if (Date.now() > deadline) throw new Error(`rank ${rank}: no result from rank ${r} after 60 s`);
    await new Promise((done) => setTimeout(done, 20));
  }
}
engine.dispose();

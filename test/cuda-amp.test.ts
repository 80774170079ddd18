// Mixed precision on real data: the MovieLens example (examples/movielens) trained on the CUDA
// engine in strict fp32 and in bf16 (`--amp`), same seed, same batches, the spec's 10 epochs.
//
// Tolerances (docs/engine.md, "The CUDA engine"): the final validation AUC within 0.005 of the
// fp32 run's, and every epoch's mean training loss within 2% of the fp32 run's. bf16 keeps 8
// significant bits in the products (fp32 accumulation, fp32 master weights), so single steps differ
// by a few tenths of a percent; a wrong cast, a scale applied twice or a lost gradient moves the
// loss curve by far more than 2%, while a sound run stays well inside it.
//
// Skips, saying why, without a GPU (cudaAvailability()) or without ../shared/data/movielens_100k.
// On a GPU machine: `npm run build:cuda`, then `node --import tsx --test test/cuda-amp.test.ts`.

import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { runCli } from '../cli/main.js';
import { compileSource } from '../compiler/compile.js';
import type { ModelIR } from '../compiler/ir.js';
import { openShards } from '../runtime/data/shards.js';
import { specHash } from '../runtime/data/spec-hash.js';
import { CudaEngine } from '../runtime/engine/cuda/engine.js';
import { cudaAvailability } from '../runtime/engine/cuda/load-addon.js';
import { trainModel } from '../runtime/train/trainer.js';
import { REPO, SHARED_DATA } from './support/paths.js';

const AUC_TOLERANCE = 0.005;
const LOSS_TOLERANCE = 0.02;

const SPEC = join(REPO, 'examples', 'movielens', 'movielens.wnd');
const DATA = join(SHARED_DATA, 'movielens_100k');
const FILES = ['ml-100k.inter', 'ml-100k.user', 'ml-100k.item'];

function skipReason(): string | false {
  const cuda = cudaAvailability();
  if (!cuda.ok) return `no CUDA here: ${cuda.reason}`;
  const absent = FILES.filter((f) => !existsSync(join(DATA, f)));
  return absent.length === 0 ? false : `${DATA} lacks ${absent.join(', ')} (the datasets are not shipped; see README, "Results on real data")`;
}

function compileMovielens(): ModelIR {
  const result = compileSource(readFileSync(SPEC, 'utf8'), SPEC, 'wnd');
  assert.deepEqual(result.diagnostics.filter((d) => d.severity === 'error').map((d) => d.message), []);
  return result.ir!;
}

/** Train and validation shards made by the example's DuckDB queries (their paths are relative to the data folder). */
async function preprocess(): Promise<string> {
  const out = mkdtempSync(join(tmpdir(), 'wndc-amp-data-'));
  const query = (name: string) => `@${join(REPO, 'examples', 'movielens', name)}`;
  const before = process.cwd();
  process.chdir(DATA);
  try {
    let stderr = '';
    const code = await runCli(['preprocess', SPEC, '--sql', query('train.sql'), '--valid-sql', query('valid.sql'), '--out', out], { stdout: () => undefined, stderr: (s) => (stderr += s), cwd: DATA, color: false });
    assert.equal(code, 0, stderr);
  } finally {
    process.chdir(before);
  }
  return out;
}

interface Run {
  auc: number;
  /** Mean training loss of each epoch, from metrics.jsonl. */
  losses: number[];
  skippedSteps: number;
}

async function train(shards: string, mixedPrecision: 'off' | 'bf16'): Promise<Run> {
  const ir = compileMovielens();
  ir.train.seed = 0;
  ir.train.mixedPrecision = mixedPrecision;
  const engine = await CudaEngine.create({ strictFp32: true });
  const modelDir = mkdtempSync(join(tmpdir(), `wndc-amp-${mixedPrecision}-`));
  try {
    const hash = specHash(ir);
    const summary = await trainModel({ ir, engine, train: openShards(join(shards, 'train'), { specHash: hash }), valid: openShards(join(shards, 'valid'), { specHash: hash }), modelDir, wndcVersion: 'test' });
    const records = readFileSync(join(modelDir, 'metrics.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as { split: string; epoch: number; loss?: number });
    const losses = records.filter((r) => r.split === 'train').map((r) => r.loss!);
    assert.equal(losses.length, ir.train.epochs);
    return { auc: summary.lastEval!.metrics.auc!, losses, skippedSteps: engine.skippedSteps() };
  } finally {
    engine.dispose();
  }
}

test(`movielens on the GPU: bf16 ends within ${AUC_TOLERANCE} AUC of fp32 and tracks its loss within ${LOSS_TOLERANCE * 100}% every epoch`, { skip: skipReason() }, async () => {
  const shards = await preprocess();
  const fp32 = await train(shards, 'off');
  const bf16 = await train(shards, 'bf16');
  // The tfjs engine reaches AUC 0.778 with these settings (examples/movielens/README.md); fp32 on
  // the GPU computes the same model, so it must land close to it.
  assert.ok(fp32.auc > 0.765, `fp32 auc ${fp32.auc}`);
  assert.ok(Math.abs(bf16.auc - fp32.auc) <= AUC_TOLERANCE, `auc: bf16 ${bf16.auc}, fp32 ${fp32.auc}`);
  fp32.losses.forEach((loss, epoch) => {
    const other = bf16.losses[epoch]!;
    assert.ok(Math.abs(other - loss) <= LOSS_TOLERANCE * loss, `epoch ${epoch + 1} loss: bf16 ${other}, fp32 ${loss}`);
  });
  assert.equal(bf16.skippedSteps, 0, 'bf16 needs no loss scaling');
});

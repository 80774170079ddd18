// `wndc run` on the CPU engine: trains on synthetic data and beats chance, writes metrics and
// checkpoints, resumes to exactly the weights of an uninterrupted run, evaluates and predicts from
// the latest checkpoint, and refuses --amp on an engine without mixed precision.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { runCli } from '../cli/main.js';
import { compileSource } from '../compiler/compile.js';
import { loadLatestCheckpoint } from '../runtime/checkpoint.js';
import { synthSource, writeCsv } from '../runtime/data/synth.js';
import { REPO } from './support/paths.js';

process.env.WNDC_CACHE_DIR = mkdtempSync(join(tmpdir(), 'wndc-run-cache-'));

async function wndc(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const code = await runCli(args, { stdout: (s) => (stdout += s), stderr: (s) => (stderr += s), cwd: REPO, color: false });
  return { code, stdout, stderr };
}

const SPEC = 'examples/quickstart/quickstart.wnd';
const COMMON = ['--synthetic_rows', '12000', '--global_batch_size', '256', '--engine', 'tfjs-wasm'];

test('training on synthetic data beats chance and leaves metrics.jsonl and checkpoints', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'wndc-run-'));
  const r = await wndc(['run', SPEC, '--model_dir', dir, '--num_epochs', '2', ...COMMON]);
  assert.equal(r.code, 0, r.stderr);
  const out = JSON.parse(r.stdout) as Record<string, number>;
  // Chance for this data: AUC 0.5, MAP@12 about 0.47 (docs/synth.md); the ground truth reaches about 0.71.
  assert.ok(out.auc! > 0.6, `auc ${out.auc}`);
  assert.ok(out['map@12']! > 0.55, `map@12 ${out['map@12']}`);
  assert.deepEqual(readdirSync(dir).filter((f) => f.startsWith('ckpt-')).length, 2);
  const lines = readFileSync(join(dir, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { split: string; epoch: number });
  assert.deepEqual(lines.map((l) => `${l.split}@${l.epoch}`), ['train@1', 'valid@1', 'train@2', 'valid@2']);

  const evaluated = await wndc(['run', SPEC, '--model_dir', dir, '--evaluate', ...COMMON]);
  assert.equal(evaluated.code, 0, evaluated.stderr);
  const evaluation = JSON.parse(evaluated.stdout) as { auc: number; rows: number };
  assert.equal(evaluation.auc, out.auc);

  const predictions = join(dir, 'scores.csv');
  const validShards = join(process.env.WNDC_CACHE_DIR!, 'synthetic', readdirSync(join(process.env.WNDC_CACHE_DIR!, 'synthetic'))[0]!, 'valid');
  const predicted = await wndc(['run', SPEC, '--model_dir', dir, '--predict', predictions, '--data', validShards, ...COMMON]);
  assert.equal(predicted.code, 0, predicted.stderr);
  const scores = readFileSync(predictions, 'utf8').trim().split('\n');
  assert.equal(scores[0], 'row,request_id,clicked,score');
  assert.equal(scores.length - 1, evaluation.rows);
  scores.slice(1).forEach((line, i) => {
    const [row, , label, score] = line.split(',').map(Number);
    assert.equal(row, i);
    assert.ok(label === 0 || label === 1);
    assert.ok(score! > 0 && score! < 1, line);
  });

  // Raw rows are scored all, in file order: no validation split is taken off them.
  const ir = compileSource(readFileSync(join(REPO, SPEC), 'utf8'), SPEC, 'wnd').ir!;
  await writeCsv(synthSource(ir, { rows: 150, seed: 99 }), ir.columns, join(dir, 'new.csv'));
  const raw = await wndc(['run', SPEC, '--model_dir', dir, '--predict', join(dir, 'new.txt'), '--data', join(dir, 'new.csv'), ...COMMON]);
  assert.equal(raw.code, 0, raw.stderr);
  const rawLines = readFileSync(join(dir, 'new.txt'), 'utf8').trim().split('\n');
  assert.equal(rawLines.length, 151);
  // Each line carries the row's own request (@group) and item (@item) from the CSV.
  assert.equal(rawLines[0], 'row,request_id,item,clicked,score');
  const csv = readFileSync(join(dir, 'new.csv'), 'utf8').trim().split('\n');
  const header = csv[0]!.split(',');
  const [request, item] = ['request_id', 'item'].map((c) => header.indexOf(c));
  rawLines.slice(1).forEach((line, i) => {
    const fields = csv[i + 1]!.split(',');
    assert.deepEqual(line.split(',').slice(0, 3), [String(i), fields[request!], fields[item!]]);
  });
});

test('a run resumed from its checkpoint ends with the same weights as an uninterrupted run', async () => {
  const whole = mkdtempSync(join(tmpdir(), 'wndc-run-'));
  const split = mkdtempSync(join(tmpdir(), 'wndc-run-'));
  assert.equal((await wndc(['run', SPEC, '--model_dir', whole, '--num_epochs', '2', ...COMMON])).code, 0);
  assert.equal((await wndc(['run', SPEC, '--model_dir', split, '--num_epochs', '1', ...COMMON])).code, 0);
  const resumed = await wndc(['run', SPEC, '--model_dir', split, '--num_epochs', '2', ...COMMON]);
  assert.equal(resumed.code, 0, resumed.stderr);
  assert.match(resumed.stderr, /resumed from step \d+/);
  const a = loadLatestCheckpoint(whole)!;
  const b = loadLatestCheckpoint(split)!;
  assert.equal(a.meta.step, b.meta.step);
  assert.deepEqual(b.tensors, a.tensors);
});

test('--amp on the CPU engine is a clear error naming the engine that can', async () => {
  const r = await wndc(['run', SPEC, '--amp', ...COMMON]);
  assert.equal(r.code, 3);
  assert.equal(r.stderr.trim().split('\n').pop(), 'wndc: the tfjs engine cannot train in mixed precision (bf16); use `--engine cuda` on an NVIDIA GPU, or drop `--amp`');
});

test('--evaluate without a checkpoint, and conflicting modes, are usage errors', async () => {
  const empty = mkdtempSync(join(tmpdir(), 'wndc-run-'));
  const none = await wndc(['run', SPEC, '--model_dir', empty, '--evaluate', ...COMMON]);
  assert.equal(none.code, 3);
  assert.match(none.stderr, /no checkpoint in .*: train first/);
  const both = await wndc(['run', SPEC, '--evaluate', '--benchmark']);
  assert.equal(both.code, 2);
  assert.equal(both.stderr, 'wndc: choose one of --evaluate, --predict and --benchmark\n');
});

test('a run killed mid-epoch resumes from its last checkpoint to the weights of an uninterrupted run', async () => {
  const whole = mkdtempSync(join(tmpdir(), 'wndc-run-'));
  const killed = mkdtempSync(join(tmpdir(), 'wndc-run-'));
  const args = ['run', SPEC, '--num_epochs', '4', ...COMMON];
  assert.equal((await wndc([...args, '--model_dir', whole])).code, 0);
  // A separate process, killed (SIGKILL: no chance to clean up) once its first checkpoint exists.
  const child = spawn(process.execPath, ['--import', 'tsx', join(REPO, 'cli', 'wndc.ts'), ...args, '--model_dir', killed], { cwd: REPO, env: process.env, stdio: 'ignore' });
  const exited = new Promise<number | null>((done) => child.on('exit', (code) => done(code)));
  let wasKilled = false;
  for (;;) {
    await new Promise((r) => setTimeout(r, 20));
    if (child.exitCode !== null) break;
    if (readdirSync(killed).some((f) => f.startsWith('ckpt-'))) {
      child.kill('SIGKILL');
      wasKilled = true;
      break;
    }
  }
  await exited;
  assert.ok(wasKilled, 'the run ended before it could be killed');
  assert.deepEqual(readdirSync(killed).filter((f) => f.endsWith('.tmp')), [], 'no half-written checkpoint is visible');
  const before = loadLatestCheckpoint(killed)!.meta.step;
  const resumed = await wndc([...args, '--model_dir', killed]);
  assert.equal(resumed.code, 0, resumed.stderr);
  assert.match(resumed.stderr, new RegExp(`resumed from step ${before}\\b`));
  assert.deepEqual(loadLatestCheckpoint(killed)!.tensors, loadLatestCheckpoint(whole)!.tensors);
});

test('a loss that becomes NaN or infinite stops the run with a message and exit 3', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'wndc-run-'));
  const r = await wndc(['run', SPEC, '--model_dir', dir, '--num_epochs', '1', '--linear_learning_rate', '1e30', '--deep_learning_rate', '1e30', ...COMMON]);
  assert.equal(r.code, 3, r.stderr);
  assert.match(r.stderr, /wndc: the loss became (NaN|Infinity|-Infinity) at step \d+ \(epoch 1\); the last good checkpoint is kept in /);
  assert.match(r.stderr, /lower the learning rates, add a warm-up, or check the data for extreme values/);
  assert.deepEqual(readdirSync(dir).filter((f) => f.startsWith('ckpt-')), []);
});

test('a checkpoint of another version of the spec is refused, naming what differs', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'wndc-run-'));
  assert.equal((await wndc(['run', SPEC, '--model_dir', dir, '--num_epochs', '1', ...COMMON])).code, 0);
  const changed = join(dir, 'changed.wnd');
  writeFileSync(changed, readFileSync(join(REPO, SPEC), 'utf8').replace('embedding(user_id, dim: 16)', 'embedding(user_id, dim: 8)'));
  const r = await wndc(['run', changed, '--model_dir', dir, '--num_epochs', '2', ...COMMON]);
  assert.equal(r.code, 3);
  assert.match(r.stderr, /ckpt-\d+\.safetensors was written for another version of the spec:\n {2}`deep\/embeddings\/user_id_embedding` is 10000 x 16 in the checkpoint but 10000 x 8 in the spec\n/);
  assert.match(r.stderr, /use a new --model_dir, or delete the old checkpoints to start over/);
});
